//! What the local OpenSSH setup already knows: the Host aliases of `~/.ssh/config` and what
//! one resolves to (for `init`, and for every connection), the key files in `~/.ssh`, and
//! OpenSSH's wildcard matching, shared by the whole crate.
//!
//! An alias is resolved by OpenSSH itself (`ssh -G -F ~/.ssh/config ALIAS`) when `ssh` is
//! installed, so that Match blocks, Include, tokens and first-value-wins behave exactly as
//! they do for `ssh`; for `init` without it, a small reader of Host blocks does the common
//! cases. Only the keys a profile has are taken: HostName, Port, User, IdentityFile,
//! ProxyJump, UserKnownHostsFile, HashKnownHosts. It knows nothing of our own config file or
//! of prompts.

use std::path::{Path, PathBuf};
use std::process::Command;

use russh::keys::ssh_key::HashAlg;

/// The identity files OpenSSH tries when none is configured; `ssh -G` lists them all, which
/// means "not set".
const DEFAULT_IDENTITY_FILES: [&str; 7] = [
    "~/.ssh/id_rsa",
    "~/.ssh/id_ecdsa",
    "~/.ssh/id_ecdsa_sk",
    "~/.ssh/id_ed25519",
    "~/.ssh/id_ed25519_sk",
    "~/.ssh/id_xmss",
    "~/.ssh/id_dsa",
];

#[derive(Debug, thiserror::Error)]
pub enum OpenSshError {
    #[error("no home directory to find ~/.ssh/config")]
    NoHome,
    #[error("`{alias}` is not a Host in {}", .file.display())]
    UnknownAlias { alias: String, file: PathBuf },
    // `cause`, not `source`: shown through SshError's transparent variant in health findings
    // and forward messages, which print the error by itself.
    #[error("cannot read {}: {cause}", .file.display())]
    Read {
        file: PathBuf,
        cause: std::io::Error,
    },
    #[error("`ssh -G {alias}` failed: {message}")]
    Resolve { alias: String, message: String },
    #[error(
        "Host {alias} jumps through several hosts ({jumps}); a profile has one proxy_jump: give --proxy-jump"
    )]
    SeveralJumps { alias: String, jumps: String },
}

impl crate::exit::ExitStatus for OpenSshError {
    /// The user's OpenSSH setup or the alias they named is at fault: a usage error (2).
    fn exit_status(&self) -> u8 {
        crate::exit::USAGE
    }
}

/// How an alias was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolver {
    /// `ssh -G`, OpenSSH's own resolution.
    OpenSsh,
    /// Our reader of Host blocks (no `ssh` installed).
    HostBlocks,
}

/// What a Host alias resolves to; `None` where the config leaves OpenSSH's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshAlias {
    pub alias: String,
    pub host_name: String,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub identity_file: Option<String>,
    pub proxy_jump: Option<String>,
    /// UserKnownHostsFile's first file, when not OpenSSH's default.
    pub known_hosts: Option<String>,
    /// HashKnownHosts.
    pub hash_known_hosts: bool,
    pub resolver: Resolver,
}

/// `~/.ssh/config` under the home directory ($HOME).
pub fn user_config() -> Result<PathBuf, OpenSshError> {
    Ok(dirs::home_dir()
        .ok_or(OpenSshError::NoHome)?
        .join(".ssh/config"))
}

/// The literal names of `Host` lines (no wildcard, no negation) in `text`.
pub fn host_aliases(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((key, rest)) = split_directive(line) else {
            continue;
        };
        if key.eq_ignore_ascii_case("host") {
            for pattern in rest.split_whitespace() {
                if !pattern.contains(['*', '?', '!']) && !out.iter().any(|a| a == pattern) {
                    out.push(pattern.to_string());
                }
            }
        }
    }
    out
}

/// Whether `name` is a Host alias in the user's `~/.ssh/config` (no file: no aliases).
pub fn is_alias(name: &str) -> bool {
    user_config()
        .ok()
        .and_then(|f| std::fs::read_to_string(f).ok())
        .is_some_and(|t| host_aliases(&t).iter().any(|a| a == name))
}

/// Resolves a Host alias of `~/.ssh/config`: with `ssh -G` when `ssh` is installed, else by
/// reading the Host blocks.
pub fn resolve_alias(alias: &str) -> Result<SshAlias, OpenSshError> {
    let file = user_config()?;
    let text = std::fs::read_to_string(&file).map_err(|cause| OpenSshError::Read {
        file: file.clone(),
        cause,
    })?;
    if !host_aliases(&text).iter().any(|a| a == alias) {
        return Err(OpenSshError::UnknownAlias {
            alias: alias.to_string(),
            file,
        });
    }
    let resolved = match ssh_g(&file, alias)? {
        Some(a) => a,
        None => from_host_blocks(alias, &text),
    };
    one_jump(resolved)
}

/// What `~/.ssh/config` says about `host` when connecting to it, by OpenSSH's own
/// resolution: `None` (said at -v) when there is no such file or no `ssh` to ask, and the
/// profile is used alone. The system-wide ssh_config is not read (`-F`), as for `init`.
pub fn resolve_for_connect(host: &str) -> Result<Option<SshAlias>, OpenSshError> {
    let file = user_config()?;
    if !file.is_file() {
        tracing::info!("no {}: the profile is used as it is", file.display());
        return Ok(None);
    }
    match ssh_g(&file, host)? {
        Some(a) => {
            tracing::info!("{host}: resolved with `ssh -G -F {}`", file.display());
            one_jump(a).map(Some)
        }
        None => {
            tracing::info!(
                "`ssh` is not installed: {} is not read, the profile is used as it is",
                file.display()
            );
            Ok(None)
        }
    }
}

/// `ssh -G -F FILE -- HOST`; `None` when `ssh` is not installed.
fn ssh_g(file: &Path, host: &str) -> Result<Option<SshAlias>, OpenSshError> {
    match Command::new("ssh")
        .arg("-G")
        .arg("-F")
        .arg(file)
        .arg("--")
        .arg(host)
        .stdin(std::process::Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => Ok(Some(from_ssh_g(
            host,
            &String::from_utf8_lossy(&out.stdout),
        ))),
        Ok(out) => Err(OpenSshError::Resolve {
            alias: host.to_string(),
            message: String::from_utf8_lossy(&out.stderr)
                .trim()
                .replace('\n', " "),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(OpenSshError::Resolve {
            alias: host.to_string(),
            message: e.to_string(),
        }),
    }
}

/// A profile has one jump host: a ProxyJump chain is refused.
fn one_jump(resolved: SshAlias) -> Result<SshAlias, OpenSshError> {
    if let Some(j) = &resolved.proxy_jump
        && j.contains(',')
    {
        return Err(OpenSshError::SeveralJumps {
            alias: resolved.alias.clone(),
            jumps: j.clone(),
        });
    }
    Ok(resolved)
}

/// Whether `ssh -G`'s UserKnownHostsFile is OpenSSH's default (`~/.ssh/known_hosts
/// ~/.ssh/known_hosts2`, printed with the account's home).
fn default_known_hosts(files: &[&str]) -> bool {
    match files {
        [one, two] => one.ends_with("/.ssh/known_hosts") && two.strip_suffix('2') == Some(one),
        _ => false,
    }
}

/// Reads `ssh -G` output: one `key value` per line, keys in lower case, every option present
/// (defaults included), so a default identity file list means "not set".
pub fn from_ssh_g(alias: &str, output: &str) -> SshAlias {
    let mut host_name = alias.to_string();
    let mut port = None;
    let mut user = None;
    let mut identities: Vec<String> = Vec::new();
    let mut proxy_jump = None;
    let mut known_hosts = None;
    let mut hash_known_hosts = false;
    for line in output.lines() {
        let Some((key, value)) = line.split_once(' ') else {
            continue;
        };
        let value = value.trim();
        match key {
            "hostname" => host_name = value.to_string(),
            "port" => port = value.parse::<u16>().ok().filter(|p| *p != 22),
            "user" => user = Some(value.to_string()),
            "identityfile" => identities.push(value.to_string()),
            "proxyjump" if !value.eq_ignore_ascii_case("none") => {
                proxy_jump = Some(value.to_string());
            }
            "userknownhostsfile" => {
                let files: Vec<&str> = value.split_whitespace().collect();
                if !default_known_hosts(&files) {
                    known_hosts = files.first().map(|f| f.to_string());
                }
            }
            "hashknownhosts" => hash_known_hosts = value.eq_ignore_ascii_case("yes"),
            _ => {}
        }
    }
    let defaults_only = identities
        .iter()
        .all(|i| DEFAULT_IDENTITY_FILES.contains(&i.as_str()));
    SshAlias {
        alias: alias.to_string(),
        host_name,
        port,
        user,
        identity_file: if defaults_only {
            None
        } else {
            identities
                .into_iter()
                .find(|i| !DEFAULT_IDENTITY_FILES.contains(&i.as_str()))
        },
        proxy_jump,
        known_hosts,
        hash_known_hosts,
        resolver: Resolver::OpenSsh,
    }
}

/// Reads the Host blocks that match `alias` as OpenSSH does for the common cases: the first
/// value of each key wins, patterns with `*`, `?` and `!`, `%h` and `%%` in HostName. Match
/// blocks and Include are not followed (that is what `ssh -G` is preferred for).
pub fn from_host_blocks(alias: &str, text: &str) -> SshAlias {
    let mut r = SshAlias {
        alias: alias.to_string(),
        host_name: alias.to_string(),
        port: None,
        user: None,
        identity_file: None,
        proxy_jump: None,
        known_hosts: None,
        hash_known_hosts: false,
        resolver: Resolver::HostBlocks,
    };
    let mut host_name: Option<String> = None;
    let mut seen_hash = false;
    let mut active = true; // before any Host line, options apply to every host
    for line in text.lines() {
        let Some((key, value)) = split_directive(line) else {
            continue;
        };
        let key = key.to_ascii_lowercase();
        if key == "host" {
            active = host_matches(alias, value);
            continue;
        }
        if key == "match" {
            active = false;
            continue;
        }
        if !active {
            continue;
        }
        let value = value.trim_matches('"').to_string();
        match key.as_str() {
            "hostname" if host_name.is_none() => host_name = Some(value),
            "port" if r.port.is_none() => r.port = value.parse().ok().filter(|p| *p != 22),
            "user" if r.user.is_none() => r.user = Some(value),
            "identityfile" if r.identity_file.is_none() => r.identity_file = Some(value),
            "proxyjump" if r.proxy_jump.is_none() => {
                r.proxy_jump = (!value.eq_ignore_ascii_case("none")).then_some(value);
            }
            "userknownhostsfile" if r.known_hosts.is_none() => {
                r.known_hosts = value.split_whitespace().next().map(str::to_string);
            }
            "hashknownhosts" if !seen_hash => {
                seen_hash = true;
                r.hash_known_hosts = value.eq_ignore_ascii_case("yes");
            }
            _ => {}
        }
    }
    if let Some(h) = host_name {
        r.host_name = h.replace("%h", alias).replace("%%", "%");
    }
    r
}

/// `Key value` or `Key=value`, without comments and blank lines.
fn split_directive(line: &str) -> Option<(&str, &str)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let end = line.find(|c: char| c.is_whitespace() || c == '=')?;
    let (key, rest) = line.split_at(end);
    let rest = rest.trim_start().strip_prefix('=').unwrap_or(rest).trim();
    Some((key, rest))
}

/// OpenSSH's Host matching: any positive pattern matches and no negated one does. Both
/// sides are compared in lower case (`ssh` lower-cases the host it is given).
fn host_matches(name: &str, patterns: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let mut matched = false;
    for p in patterns.split_whitespace() {
        let p = p.to_ascii_lowercase();
        if let Some(neg) = p.strip_prefix('!') {
            if match_pattern(name.as_bytes(), neg.as_bytes()) {
                return false;
            }
        } else if match_pattern(name.as_bytes(), p.as_bytes()) {
            matched = true;
        }
    }
    matched
}

/// The longest sub-pattern OpenSSH's `match_pattern_list` takes (its 1,024-byte buffer gives
/// up one byte before the terminator's); a longer one makes the whole list match nothing.
pub const MAX_SUBPATTERN: usize = 1022;

/// OpenSSH's `match_pattern` (match.c), the one wildcard matcher of this crate: `*` matches
/// any run of bytes, `?` any one byte, every other byte itself (case matters: callers
/// lower-case). Used for ssh_config Host lines here and known_hosts host fields in `ssh`.
pub fn match_pattern(text: &[u8], pattern: &[u8]) -> bool {
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was and the text position it is currently standing for.
    let mut star: Option<(usize, usize)> = None;
    while ti < text.len() {
        if pi < pattern.len() && (pattern[pi] == b'?' || pattern[pi] == text[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < pattern.len() && pattern[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            // Let the `*` take one more byte and retry what follows it.
            star = Some((sp, st + 1));
            pi = sp + 1;
            ti = st + 1;
        } else {
            return false;
        }
    }
    pattern[pi..].iter().all(|b| *b == b'*')
}

/// What a comma-separated host pattern list says about a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListMatch {
    /// A `!pattern` matched: the name is excluded, whatever else matches.
    Negated,
    /// A positive pattern matched and no negated one.
    Positive,
    /// Nothing matched (or a sub-pattern was too long, as in OpenSSH).
    None,
}

/// OpenSSH's `match_hostname`: `host` against a comma-separated list of patterns, each
/// maybe `!`-negated, both lower-cased (ASCII only, as C's `tolower`). Empty sub-patterns
/// match only the empty name; a sub-pattern longer than `MAX_SUBPATTERN` ends the walk
/// with no match, even after a positive one, exactly as match.c does.
pub fn match_host_list(host: &[u8], list: &[u8]) -> ListMatch {
    let host = host.to_ascii_lowercase();
    let mut positive = false;
    let mut rest = list;
    while !rest.is_empty() {
        let negated = rest[0] == b'!';
        if negated {
            rest = &rest[1..];
        }
        let end = rest.iter().position(|b| *b == b',').unwrap_or(rest.len());
        if end > MAX_SUBPATTERN {
            return ListMatch::None;
        }
        let sub = rest[..end].to_ascii_lowercase();
        rest = rest.get(end + 1..).unwrap_or_default();
        if match_pattern(&host, &sub) {
            if negated {
                return ListMatch::Negated;
            }
            positive = true;
        }
    }
    if positive {
        ListMatch::Positive
    } else {
        ListMatch::None
    }
}

/// A private key file in `~/.ssh` (one with a `.pub` beside it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFile {
    /// As the profile records it: `~/.ssh/NAME`.
    pub display: String,
    pub path: PathBuf,
    /// `ssh-ed25519 SHA256:...`, from the `.pub` file.
    pub description: String,
}

/// The key pairs in `dir` (normally `~/.ssh`), sorted by name, the usual `id_*` first.
pub fn key_files(dir: &Path) -> Vec<KeyFile> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut keys: Vec<KeyFile> = entries
        .flatten()
        .filter_map(|e| {
            let pub_path = e.path();
            if pub_path.extension()? != "pub" {
                return None;
            }
            let path = pub_path.with_extension("");
            if !path.is_file() {
                return None;
            }
            let text = std::fs::read_to_string(&pub_path).ok()?;
            let key = russh::keys::PublicKey::from_openssh(text.trim()).ok()?;
            let name = path.file_name()?.to_string_lossy().into_owned();
            Some(KeyFile {
                display: format!("~/.ssh/{name}"),
                description: format!(
                    "{} {}",
                    key.algorithm().as_str(),
                    key.fingerprint(HashAlg::Sha256)
                ),
                path,
            })
        })
        .collect();
    keys.sort_by_key(|k| (!k.display.starts_with("~/.ssh/id_"), k.display.clone()));
    keys
}

/// A private key file's text, if it is a regular file no larger than OpenSSH reads one
/// (1 MiB, its `MAX_KEY_FILE_SIZE`): a FIFO, a device or `/dev/zero` is never read.
fn key_file_text(path: &Path) -> Option<String> {
    use std::io::Read as _;
    const MAX_KEY_FILE_SIZE: u64 = 1024 * 1024;
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_KEY_FILE_SIZE {
        return None;
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_KEY_FILE_SIZE)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// Whether a private key file needs a passphrase; `None` when it cannot be read as a key.
pub fn is_encrypted(path: &Path) -> Option<bool> {
    let text = key_file_text(path)?;
    match russh::keys::decode_secret_key(&text, None) {
        Ok(_) => Some(false),
        Err(russh::keys::Error::KeyIsEncrypted) => Some(true),
        Err(_) => None,
    }
}

/// Whether `passphrase` unlocks the key file at `path`.
pub fn passphrase_unlocks(path: &Path, passphrase: &str) -> bool {
    key_file_text(path)
        .is_some_and(|t| russh::keys::decode_secret_key(&t, Some(passphrase)).is_ok())
}

/// The keys the ssh-agent holds, as `type fingerprint comment` (no agent: none).
pub async fn agent_keys() -> Vec<String> {
    if std::env::var_os("SSH_AUTH_SOCK").is_none_or(|s| s.is_empty()) {
        return Vec::new();
    }
    let listed = tokio::time::timeout(std::time::Duration::from_secs(3), async {
        let mut agent = russh::keys::agent::client::AgentClient::connect_env()
            .await
            .ok()?;
        agent.request_identities().await.ok()
    })
    .await;
    listed
        .ok()
        .flatten()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|id| match id {
            russh::keys::agent::AgentIdentity::PublicKey { key, comment } => Some(format!(
                "{} {} {}",
                key.algorithm().as_str(),
                key.fingerprint(HashAlg::Sha256),
                comment
            )),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "\
# work
Host prod prod-alt
    HostName bastion.example.com
    Port 2222
    User ops
    IdentityFile ~/.ssh/paragon
    ProxyJump jump@j.example.com

Host *.internal !secret.internal
    User internal

Host web
    HostName=%h.example.com

Match host x
    User matched

Host *
    User fallback
    Port 2200
";

    #[test]
    fn aliases_are_the_literal_host_names() {
        assert_eq!(host_aliases(CONFIG), ["prod", "prod-alt", "web"]);
    }

    #[test]
    fn host_blocks_first_value_wins_and_star_fills_the_rest() {
        let a = from_host_blocks("prod", CONFIG);
        assert_eq!(a.host_name, "bastion.example.com");
        assert_eq!(a.port, Some(2222));
        assert_eq!(a.user.as_deref(), Some("ops"));
        assert_eq!(a.identity_file.as_deref(), Some("~/.ssh/paragon"));
        assert_eq!(a.proxy_jump.as_deref(), Some("jump@j.example.com"));
        let w = from_host_blocks("web", CONFIG);
        assert_eq!(w.host_name, "web.example.com");
        assert_eq!(w.user.as_deref(), Some("fallback"));
        assert_eq!(w.port, Some(2200));
        assert_eq!(
            from_host_blocks("a.internal", CONFIG).user.as_deref(),
            Some("internal")
        );
        assert_eq!(
            from_host_blocks("secret.internal", CONFIG).user.as_deref(),
            Some("fallback")
        );
    }

    #[test]
    fn ssh_g_defaults_mean_unset() {
        let out = "user root\nhostname h.example.com\nport 22\nidentityfile ~/.ssh/id_rsa\nidentityfile ~/.ssh/id_ed25519\nproxyjump none\n\
                   userknownhostsfile /root/.ssh/known_hosts /root/.ssh/known_hosts2\nhashknownhosts no\n";
        let a = from_ssh_g("h", out);
        assert_eq!(a.host_name, "h.example.com");
        assert_eq!(a.port, None);
        assert_eq!(a.identity_file, None);
        assert_eq!(a.proxy_jump, None);
        assert_eq!(a.known_hosts, None);
        assert!(!a.hash_known_hosts);
        let out = "hostname b\nport 2222\nidentityfile ~/.ssh/paragon\nidentityfile ~/.ssh/id_rsa\nproxyjump j:22\n\
                   userknownhostsfile /home/o/kh /home/o/kh2\nhashknownhosts yes\n";
        let a = from_ssh_g("h", out);
        assert_eq!(a.known_hosts.as_deref(), Some("/home/o/kh"));
        assert!(a.hash_known_hosts);
        assert_eq!(a.port, Some(2222));
        assert_eq!(a.identity_file.as_deref(), Some("~/.ssh/paragon"));
        assert_eq!(a.proxy_jump.as_deref(), Some("j:22"));
    }

    #[test]
    fn wildcards_match_as_openssh_match_pattern() {
        assert!(match_pattern(b"", b"*"));
        assert!(match_pattern(b"abbbc", b"a*c"));
        assert!(!match_pattern(b"abbb", b"a*c"));
        assert!(match_pattern(b"[10.0.0.5]:2222", b"[10.0.0.?]:22*"));
        assert!(match_pattern(b"aXbXc", b"a*b*c"));
        assert!(!match_pattern(b"Host", b"host"));
        assert!(!match_pattern(b"x", b""));
    }

    #[test]
    fn host_lists_negate_lower_case_and_give_up_on_long_patterns() {
        assert_eq!(
            match_host_list(b"DB.internal", b"*.INTERNAL"),
            ListMatch::Positive
        );
        assert_eq!(
            match_host_list(b"secret.internal", b"*.internal,!secret.*"),
            ListMatch::Negated
        );
        assert_eq!(match_host_list(b"a", b"b,,c"), ListMatch::None);
        assert_eq!(match_host_list(b"", b"b,,c"), ListMatch::Positive);
        let long = format!("a,{}", "x".repeat(MAX_SUBPATTERN + 1));
        assert_eq!(match_host_list(b"a", long.as_bytes()), ListMatch::None);
        let fits = format!("a,{}", "x".repeat(MAX_SUBPATTERN));
        assert_eq!(match_host_list(b"a", fits.as_bytes()), ListMatch::Positive);
    }

    #[test]
    fn endless_or_special_key_files_are_never_read() {
        // /dev/zero would fill memory; a FIFO would wait for a writer forever.
        assert_eq!(is_encrypted(Path::new("/dev/zero")), None);
        assert!(!passphrase_unlocks(Path::new("/dev/zero"), "x"));
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(1024 * 1024 + 1)
            .unwrap();
        assert_eq!(is_encrypted(&big), None);
    }
}
