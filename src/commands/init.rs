//! `paragon-admin init`: asks (or takes from flags) what a profile needs, checks the bastion's
//! host key once on a terminal, and writes the profile with `config::write_profile`.
//!
//! Every answer goes through the parser the config file uses, so that what the wizard accepts
//! always loads. Host aliases of ~/.ssh/config are resolved by `crate::openssh`.

use std::path::Path;

use crate::cli::{Globals, InitArgs};
use crate::config::{
    self, ConfigError, ConfigFile, HostKeyPolicy, HostName, JumpHost, Port, ProfileDraft,
    ProfileName, Resolved, WriteOptions,
};
use crate::exit::Error;
use crate::openssh::{self, Resolver, SshAlias};
use crate::prompt::{self, PromptError};
use crate::secrets::{self, Secret};
use crate::ssh::Bastion;

const HINT: &str = "pass --non-interactive and give the answers as flags (--host, --user, ...)";

pub async fn run(g: &Globals, a: &InitArgs) -> Result<u8, Error> {
    let path = config::config_path(g.config.as_deref())?;
    let ask = !a.non_interactive;
    if ask && !prompt::interactive() {
        return Err(PromptError::NoTerminal {
            question: "init".to_string(),
            hint: HINT.to_string(),
        }
        .into());
    }
    if ask {
        prompt::restore_terminal_on_interrupt();
    }
    let existing_file = match config::load(&path) {
        Ok(f) => f,
        Err(ConfigError::Missing { .. }) => ConfigFile::default(),
        Err(e) => return Err(e.into()),
    };
    let existing = existing_file.profiles.keys().cloned().collect::<Vec<_>>();

    let mut name = profile_name(g, a, ask, &existing)?;
    // A name typed at the prompt (not given with --profile) that exists and is not to be
    // replaced is asked again, rather than ending the wizard.
    let name_was_asked = ask && a.name.is_none() && g.profile.is_none();
    let mut force = a.force;
    while existing.contains(&name) && !force {
        let replace = ask
            && prompt::confirm(
                &format!(
                    "Profile `{name}` exists in {}.\nReplace its connection settings",
                    path.display()
                ),
                false,
                HINT,
            )?;
        if replace {
            force = true;
        } else if name_was_asked {
            name = prompt::input("Another profile name", None, HINT, valid_name)?;
        } else {
            return Err(ConfigError::ProfileExists { path, name }.into());
        }
    }

    let (host, alias) = bastion_host(a, ask)?;
    let from = |f: fn(&SshAlias) -> Option<String>| alias.as_ref().and_then(f);

    let port = match (&a.port, from(|s| s.port.map(|p| p.to_string()))) {
        (Some(p), _) => Port::parse(p).map_err(|m| answer("--port", m))?,
        (None, Some(p)) => Port::parse(&p).map_err(|m| answer("ssh config Port", m))?,
        (None, None) if ask => {
            let p = prompt::input("SSH port", Some("22"), HINT, |s| Port::parse(s).map(|_| ()))?;
            Port::parse(&p).map_err(|m| answer("port", m))?
        }
        (None, None) => Port(22),
    };

    let user = match (&a.user, from(|s| s.user.clone())) {
        (Some(u), _) => Some(non_empty("--user", u)?),
        (None, Some(u)) => Some(u),
        (None, None) if ask => {
            let local = config::local_user_name();
            Some(prompt::input(
                "User on the bastion",
                Some(&local),
                HINT,
                |s| non_empty("user", s).map(|_| ()).map_err(|e| e.to_string()),
            )?)
        }
        (None, None) => None,
    };

    let identity_file = match (&a.identity_file, from(|s| s.identity_file.clone())) {
        (Some(f), _) => Some(from_here("--identity-file", f)?),
        (None, Some(f)) => Some(f),
        (None, None) if ask => choose_identity().await?,
        (None, None) => None,
    };
    if let Some(f) = &identity_file {
        let p = config::expand_path(f, path.parent().unwrap_or(Path::new(".")))?;
        if !p.is_file() {
            eprintln!(
                "warning: identity file {} does not exist (yet)",
                p.display()
            );
        }
    }

    let proxy_jump = match (&a.proxy_jump, from(|s| s.proxy_jump.clone())) {
        (Some(j), _) => Some(JumpHost::parse(j).map_err(|m| answer("--proxy-jump", m))?),
        (None, Some(j)) => {
            Some(JumpHost::parse(&j).map_err(|m| answer("ssh config ProxyJump", m))?)
        }
        (None, None) if ask => {
            let j = prompt::input(
                "Jump host to go through, [user@]host[:port] (empty: none)",
                Some(""),
                HINT,
                |s| {
                    if s.is_empty() {
                        Ok(())
                    } else {
                        JumpHost::parse(s).map(|_| ())
                    }
                },
            )?;
            if j.is_empty() {
                None
            } else {
                Some(JumpHost::parse(&j).map_err(|m| answer("jump host", m))?)
            }
        }
        (None, None) => None,
    };

    let strict_host_key_checking = match &a.strict_host_key_checking {
        Some(p) => p
            .parse::<HostKeyPolicy>()
            .map_err(|m| answer("--strict-host-key-checking", m))?,
        None if ask => {
            let choices = [
                (
                    HostKeyPolicy::Ask,
                    "ask: show a new host key and ask (default)",
                ),
                (
                    HostKeyPolicy::AcceptNew,
                    "accept-new: record a new host key, refuse a changed one",
                ),
                (HostKeyPolicy::Yes, "yes: only keys already in known_hosts"),
            ];
            let items: Vec<String> = choices.iter().map(|c| c.1.to_string()).collect();
            let i = prompt::select(
                "Host key policy for hosts not yet in known_hosts",
                &items,
                0,
                HINT,
            )?;
            choices[i].0
        }
        None => HostKeyPolicy::Ask,
    };

    let known_hosts = match &a.known_hosts {
        Some(k) => Some(from_here("--known-hosts", k)?),
        None => None,
    };

    let builtin: Vec<(String, u16)> = config::builtin_services()
        .into_iter()
        .map(|s| (s.name, s.local_port))
        .collect();
    let listed: Vec<String> = builtin.iter().map(|(n, p)| format!("{n} {p}")).collect();
    let services = if ask
        && prompt::confirm(
            &format!(
                "The default service forwards (local ports): {}\nWrite them into the profile, to edit later",
                listed.join(", ")
            ),
            true,
            HINT,
        )? {
        builtin
    } else {
        Vec::new()
    };

    let draft = ProfileDraft {
        host,
        port,
        user,
        identity_file,
        known_hosts,
        strict_host_key_checking,
        proxy_jump,
        services,
    };
    if ask {
        let resolved = Resolved::new(name.clone(), path.clone(), draft.to_profile())?;
        offer_passphrase(&name, &resolved)?;
        check_host_key(&resolved).await?;
    }
    let make_default = should_be_default(a, ask, &name, &existing_file)?;
    let options = WriteOptions {
        force,
        make_default,
    };
    config::write_profile(&path, &name, &draft, options)?;
    if !g.quiet {
        eprintln!(
            "wrote profile `{name}` to {}; try: paragon-admin --profile {name} ssh",
            path.display()
        );
    }
    Ok(0)
}

fn answer(what: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Answer {
        what: what.to_string(),
        message: message.into(),
    }
}

fn non_empty(what: &str, s: &str) -> Result<String, ConfigError> {
    let s = s.trim();
    if s.is_empty() {
        Err(answer(what, "must not be empty"))
    } else {
        Ok(s.to_string())
    }
}

/// A path given as a flag, as every CLI takes it: relative to the current folder (the file
/// would otherwise read it relative to its own folder). `~/...` is kept for the file.
fn from_here(what: &str, s: &str) -> Result<String, ConfigError> {
    let s = non_empty(what, s)?;
    let path = Path::new(&s);
    if s == "~" || s.starts_with("~/") || path.is_absolute() {
        return Ok(s);
    }
    let here = std::env::current_dir().map_err(|e| answer(what, format!("{s}: {e}")))?;
    Ok(here.join(path).display().to_string())
}

fn valid_name(s: &str) -> Result<(), String> {
    s.parse::<ProfileName>().map(|_| ())
}

/// The profile's name: `--profile` (or its alias `--name`), else asked, else `default`.
fn profile_name(
    g: &Globals,
    a: &InitArgs,
    ask: bool,
    existing: &[String],
) -> Result<String, Error> {
    Ok(match a.name.as_ref().or(g.profile.as_ref()) {
        Some(n) => {
            valid_name(n).map_err(|m| answer("--profile", m))?;
            n.clone()
        }
        None if ask => {
            let default = if existing.is_empty() { "prod" } else { "" };
            prompt::input(
                "Profile name",
                (!default.is_empty()).then_some(default),
                HINT,
                valid_name,
            )?
        }
        None => "default".to_string(),
    })
}

/// Whether the profile becomes `default_profile`: the first one always, a later one with
/// `--default` or when the person says so. Without either, the file's default is kept.
fn should_be_default(
    a: &InitArgs,
    ask: bool,
    name: &str,
    file: &ConfigFile,
) -> Result<bool, Error> {
    let others = file.profiles.keys().any(|p| p != name);
    if a.default || !others {
        return Ok(true);
    }
    if file.default_profile.as_deref() == Some(name) || !ask {
        return Ok(false);
    }
    let current = file
        .default_profile
        .as_deref()
        .map(|d| format!(" (now `{d}`)"))
        .unwrap_or_default();
    Ok(prompt::confirm(
        &format!("Make `{name}` the default profile{current}"),
        file.default_profile.is_none(),
        HINT,
    )?)
}

/// The bastion's host, and the ~/.ssh/config Host it came from when it was an alias.
fn bastion_host(a: &InitArgs, ask: bool) -> Result<(HostName, Option<SshAlias>), Error> {
    let named = match (&a.from_ssh_config, &a.host) {
        (Some(alias), _) => Some(openssh::resolve_alias(alias)?),
        (None, Some(h)) if openssh::is_alias(h) => Some(openssh::resolve_alias(h)?),
        (None, Some(h)) => {
            return Ok((HostName::parse(h).map_err(|m| answer("--host", m))?, None));
        }
        (None, None) if ask => {
            let h = prompt::input(
                "Bastion host (a name, an address, or a Host alias of ~/.ssh/config)",
                None,
                HINT,
                |s| HostName::parse(s).map(|_| ()),
            )?;
            if openssh::is_alias(&h) {
                Some(openssh::resolve_alias(&h)?)
            } else {
                return Ok((HostName::parse(&h).map_err(|m| answer("host", m))?, None));
            }
        }
        (None, None) => {
            return Err(answer(
                "--host",
                "required with --non-interactive (or --from-ssh-config ALIAS)",
            )
            .into());
        }
    };
    let Some(alias) = named else {
        return Err(answer("--host", "missing").into());
    };
    let how = match alias.resolver {
        Resolver::OpenSsh => "resolved by `ssh -G`",
        Resolver::HostBlocks => "read from its Host blocks (ssh is not installed)",
    };
    eprintln!(
        "Host {} of ~/.ssh/config, {how}: {}{}{}{}",
        alias.alias,
        alias.host_name,
        alias.port.map(|p| format!(" port {p}")).unwrap_or_default(),
        alias
            .user
            .as_ref()
            .map(|u| format!(" user {u}"))
            .unwrap_or_default(),
        alias
            .proxy_jump
            .as_ref()
            .map(|j| format!(" via {j}"))
            .unwrap_or_default(),
    );
    // A flag still wins over the alias for the host itself, as for every other answer.
    let host = match (&a.from_ssh_config, &a.host) {
        (Some(_), Some(h)) => HostName::parse(h).map_err(|m| answer("--host", m))?,
        _ => HostName::parse(&alias.host_name).map_err(|m| answer("ssh config HostName", m))?,
    };
    Ok((host, Some(alias)))
}

/// Offers the key files of ~/.ssh and the agent; `None` means OpenSSH's defaults (the
/// agent's keys, then ~/.ssh/id_*).
async fn choose_identity() -> Result<Option<String>, Error> {
    let keys = dirs::home_dir()
        .map(|h| openssh::key_files(&h.join(".ssh")))
        .unwrap_or_default();
    let agent = openssh::agent_keys().await;
    let mut items: Vec<String> = keys
        .iter()
        .map(|k| format!("{} ({})", k.display, k.description))
        .collect();
    items.push(if agent.is_empty() {
        "no identity file: the agent's keys if one runs, then ~/.ssh/id_*".to_string()
    } else {
        format!(
            "the ssh-agent's keys ({}), then ~/.ssh/id_*",
            agent.join("; ")
        )
    });
    items.push("another file...".to_string());
    let default = if keys.is_empty() || !agent.is_empty() {
        keys.len()
    } else {
        0
    };
    let i = prompt::select("Identity to log in with", &items, default, HINT)?;
    if i < keys.len() {
        return Ok(Some(keys[i].display.clone()));
    }
    if i == keys.len() {
        return Ok(None);
    }
    let f = prompt::input("Identity file", None, HINT, |s| {
        if s.is_empty() {
            Err("must not be empty".to_string())
        } else {
            Ok(())
        }
    })?;
    Ok(Some(f))
}

/// For an identity file with a passphrase, offers to store the passphrase in the keyring
/// under the name the SSH client looks up (`PROFILE/identity-passphrase`).
fn offer_passphrase(name: &str, resolved: &Resolved) -> Result<(), Error> {
    let Some(path) = &resolved.identity_file else {
        return Ok(());
    };
    if openssh::is_encrypted(path) != Some(true) {
        return Ok(());
    }
    let secret_name = secrets::identity_passphrase(name);
    let question = format!(
        "{} has a passphrase.\nStore it in the keyring as `{secret_name}`, so that you are not asked each time",
        path.display()
    );
    if !prompt::confirm(&question, true, HINT)? {
        return Ok(());
    }
    for _ in 0..3 {
        let pass = Secret::new(prompt::password(
            &format!("Passphrase for {}", path.display()),
            HINT,
        )?);
        if openssh::passphrase_unlocks(path, pass.expose()) {
            secrets::set(&secret_name, &pass)?;
            eprintln!("stored `{secret_name}` in the keyring");
            return Ok(());
        }
        eprintln!("that passphrase does not unlock {}", path.display());
    }
    eprintln!("passphrase not stored; later: paragon-admin secrets set {secret_name}");
    Ok(())
}

/// Connects once, so that the host key is shown, confirmed and recorded in known_hosts by the
/// same code every later connection uses. Asked whatever the profile's policy: this is the
/// moment a person is there to compare fingerprints. A failure is reported, not fatal.
async fn check_host_key(resolved: &Resolved) -> Result<(), Error> {
    let p = &resolved.settings;
    let target = crate::dial::target(&p.host.0, p.port.0);
    if !prompt::confirm(
        &format!("Connect to {target} now to check its host key and the login"),
        true,
        HINT,
    )? {
        return Ok(());
    }
    let mut once = resolved.clone();
    once.settings.strict_host_key_checking = HostKeyPolicy::Ask;
    match Bastion::connect(&once).await {
        Ok(_) => eprintln!(
            "connected to {target} as {}; its host key is in {}",
            resolved.user,
            resolved.known_hosts.display()
        ),
        Err(e) => eprintln!("warning: {e}; the profile is written anyway"),
    }
    Ok(())
}
