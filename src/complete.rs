//! Dynamic completion: the candidates a shell asks the binary for while the user types
//! (profile names, service names, read from the user's own config file; the detached
//! forwards, asked of the profile's agent when one runs). Honours `--config`
//! and `--profile` typed earlier on the same line. A completer never prints an error into the
//! user's command line: a config that does not load offers no names. Knows nothing of SSH, of
//! how the completion scripts are generated, or of the clap definitions that name these
//! completers (`main` answers the shell's request with them).

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use clap_complete::engine::CompletionCandidate;

use crate::config;

/// The binary's name, as the scripts call it.
pub const BIN: &str = "paragon-admin";
/// The environment variable through which a shell asks the binary for candidates.
pub const COMPLETE_VAR: &str = "COMPLETE";

/// `--config` and `--profile` as typed so far on the line being completed.
#[derive(Debug, Default, PartialEq, Eq)]
struct Typed {
    config: Option<PathBuf>,
    profile: Option<String>,
}

/// Reads `--config FILE`, `--config=FILE`, `--profile NAME`, `--profile=NAME`, `-p NAME` and
/// `-pNAME` from the words of the line (the last one is the word being typed, not a value).
/// Words after `--` are not ours.
fn typed_options(words: &[OsString]) -> Typed {
    let mut typed = Typed::default();
    let done = words.len().saturating_sub(1);
    let mut i = 0;
    while i < done {
        let word = words[i].to_string_lossy();
        let next = || {
            words[..done]
                .get(i + 1)
                .map(|w| w.to_string_lossy().into_owned())
        };
        if word == "--" {
            break;
        } else if word == "--config" {
            typed.config = next().map(PathBuf::from);
            i += 1;
        } else if let Some(v) = word.strip_prefix("--config=") {
            typed.config = Some(PathBuf::from(v));
        } else if word == "--profile" || word == "-p" {
            typed.profile = next();
            i += 1;
        } else if let Some(v) = word.strip_prefix("--profile=") {
            typed.profile = Some(v.to_string());
        } else if let Some(v) = word.strip_prefix("-p").filter(|v| !v.is_empty()) {
            typed.profile = Some(v.to_string());
        }
        i += 1;
    }
    typed
}

/// The words of the line being completed: clap's protocol runs `BIN -- WORDS...`.
fn line_words() -> Vec<OsString> {
    std::env::args_os()
        .skip_while(|a| a != "--")
        .skip(1)
        .collect()
}

/// The config file for this line: `--config` typed on it, else the usual rule.
fn load_quietly(typed: &Typed) -> Option<(PathBuf, config::ConfigFile)> {
    let path = config::config_path(typed.config.as_deref()).ok()?;
    let file = config::load(&path).ok()?;
    Some((path, file))
}

/// Completes profile names from the config file the line (or the environment) points at.
pub fn complete_profiles(current: &OsStr) -> Vec<CompletionCandidate> {
    let Some((_, file)) = load_quietly(&typed_options(&line_words())) else {
        return Vec::new();
    };
    let prefix = current.to_string_lossy();
    file.profiles
        .iter()
        .filter(|(name, _)| name.starts_with(prefix.as_ref()))
        .map(|(name, p)| {
            CompletionCandidate::new(name)
                .help(Some(crate::dial::target(&p.host.0, p.port.0).into()))
        })
        .collect()
}

/// Completes service names: the built-ins and those of the chosen (or default) profile.
pub fn complete_services(current: &OsStr) -> Vec<CompletionCandidate> {
    let prefix = current.to_string_lossy();
    let typed = typed_options(&line_words());
    let mut services = config::builtin_services();
    if let Some((path, file)) = load_quietly(&typed) {
        let choice = config::profile_choice(typed.profile.as_deref());
        if let Ok((name, profile)) =
            file.select_named(&path, choice.as_ref().map(|(n, by)| (n.as_str(), *by)))
            && let Ok(resolved) = config::Resolved::new(name, path, profile)
        {
            services = resolved.services().into_values().collect();
        }
    }
    services
        .into_iter()
        .filter(|s| s.name.starts_with(prefix.as_ref()))
        .map(|s| {
            let help = crate::dial::target(&s.host, s.port);
            CompletionCandidate::new(s.name).help(Some(help.into()))
        })
        .collect()
}

/// Completes the names of Paragon's services (the installation's `app.kubernetes.io/name`
/// values), as `logs` takes them.
pub fn complete_paragon_services(current: &OsStr) -> Vec<CompletionCandidate> {
    let prefix = current.to_string_lossy();
    crate::diagnose::logs::SERVICES
        .iter()
        .filter(|s| s.starts_with(prefix.as_ref()))
        .map(CompletionCandidate::new)
        .collect()
}

/// How long completing `forward --stop` waits for the profile's agent: a shell must not hang
/// on a TAB.
const AGENT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Completes `forward --stop`: `all` and the forwards the chosen profile's agent holds (none
/// when no agent runs; it is never started for this).
pub fn complete_detached(current: &OsStr) -> Vec<CompletionCandidate> {
    let prefix = current.to_string_lossy();
    let mut found =
        vec![CompletionCandidate::new("all").help(Some("every detached forward".into()))];
    let typed = typed_options(&line_words());
    let resolved = load_quietly(&typed).and_then(|(path, file)| {
        let choice = config::profile_choice(typed.profile.as_deref());
        let (name, profile) = file
            .select_named(&path, choice.as_ref().map(|(n, by)| (n.as_str(), *by)))
            .ok()?;
        config::Resolved::new(name, path, profile).ok()
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    if let (Some(profile), Ok(runtime)) = (resolved, runtime) {
        let held = runtime.block_on(async {
            let ask = async {
                let agent = crate::agent::find(&profile).await.ok()??;
                agent.forwards().await.ok()
            };
            tokio::time::timeout(AGENT_WAIT, ask).await.ok().flatten()
        });
        for f in held.into_iter().flatten() {
            let help = f.target.unwrap_or_else(|| "SOCKS5".to_string());
            found.push(CompletionCandidate::new(f.name).help(Some(help.into())));
        }
    }
    found
        .into_iter()
        .filter(|c| c.get_value().to_string_lossy().starts_with(prefix.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(words: &[&str]) -> Typed {
        let words: Vec<OsString> = words.iter().map(OsString::from).collect();
        typed_options(&words)
    }

    #[test]
    fn options_typed_earlier_on_the_line_are_read() {
        let t = typed(&[
            "paragon-admin",
            "--config",
            "/c.toml",
            "-p",
            "lab",
            "forward",
            "g",
        ]);
        assert_eq!(t.config, Some(PathBuf::from("/c.toml")));
        assert_eq!(t.profile.as_deref(), Some("lab"));
        let t = typed(&[
            "paragon-admin",
            "--config=/x",
            "--profile=prod",
            "forward",
            "",
        ]);
        assert_eq!(
            (t.config, t.profile.as_deref()),
            (Some(PathBuf::from("/x")), Some("prod"))
        );
        assert_eq!(
            typed(&["paragon-admin", "-pstage", ""]).profile.as_deref(),
            Some("stage")
        );
    }

    #[test]
    fn logs_completes_paragon_service_names_by_prefix() {
        let names: Vec<String> = complete_paragon_services(OsStr::new("worker-a"))
            .iter()
            .map(|c| c.get_value().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["worker-actionkit", "worker-actions", "worker-auditlogs"]
        );
        assert_eq!(complete_paragon_services(OsStr::new("")).len(), 26);
    }

    #[test]
    fn the_word_being_typed_and_words_after_double_dash_are_not_options() {
        assert_eq!(typed(&["paragon-admin", "--profile"]), Typed::default());
        assert_eq!(
            typed(&["paragon-admin", "ssh", "--", "--profile", "x", ""]),
            Typed::default()
        );
    }
}
