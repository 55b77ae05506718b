//! Finding and reading the config file: its path (flag, environment, platform folder), the
//! checks OpenSSH makes on its own config (owned by the user or root, not writable by others,
//! a sane size; never a FIFO, which would hang), and errors
//! located at the file, line and key. Knows nothing of profiles' meaning or of SSH.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::schema::{ConfigFile, builtin_names, builtin_services};
use super::values::ProfileName;
use super::{CONFIG_ENV, ConfigError};

/// The largest config file read: far above any real one, far below what hurts memory.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// An environment variable's value; an empty one means unset, as in most CLIs.
pub fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Where the config file is: the flag, else `$PARAGON_ADMIN_CONFIG` (when not empty), else
/// the platform's config directory.
pub fn config_path(flag: Option<&Path>) -> Result<PathBuf, ConfigError> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = env_value(CONFIG_ENV) {
        return Ok(PathBuf::from(p));
    }
    let dir = dirs::config_dir().ok_or(ConfigError::NoConfigDir)?;
    Ok(dir.join("paragon-admin").join("config.toml"))
}

/// Reads and parses the config file; a missing file is `ConfigError::Missing`.
pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
    match read(path)? {
        Some(text) => parse(path, &text),
        None => Err(ConfigError::Missing {
            path: path.to_path_buf(),
        }),
    }
}

/// The file's text, `None` when there is no file. Refuses, as OpenSSH does for its own
/// config, a file that others may write or that another user owns (they could point
/// `identity_file` or `proxy_jump` anywhere), a FIFO, and anything larger than `MAX_CONFIG_BYTES` (`/dev/zero` never ends).
pub fn read(path: &Path) -> Result<Option<String>, ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    // Looked at before it is opened: opening a FIFO waits for a writer that may never come.
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_error(e)),
        Ok(meta) => refuse_special(path, &meta)?,
    }
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_error(e)),
    };
    let meta = file.metadata().map_err(read_error)?;
    refuse_special(path, &meta)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let mode = meta.permissions().mode();
        if meta.is_file() && mode & 0o022 != 0 {
            return Err(ConfigError::WritableByOthers {
                path: path.to_path_buf(),
                mode: mode & 0o7777,
            });
        }
        let me = rustix::process::getuid().as_raw();
        if meta.is_file() && meta.uid() != me && meta.uid() != 0 {
            return Err(ConfigError::BadOwner {
                path: path.to_path_buf(),
                owner: meta.uid(),
            });
        }
    }
    if meta.is_dir() {
        return Err(read_error(std::io::Error::from(
            std::io::ErrorKind::IsADirectory,
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
            max: MAX_CONFIG_BYTES,
        });
    }
    String::from_utf8(bytes).map(Some).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        ConfigError::Syntax {
            path: path.to_path_buf(),
            line: line_of(std::str::from_utf8(&e.as_bytes()[..at]).unwrap_or(""), at),
            message: "not UTF-8 text".into(),
        }
    })
}

/// A FIFO or a socket is refused by name (reading one can wait for ever). A device is left to
/// the size limit: `/dev/null` reads as an empty file, `/dev/zero` as one too large.
fn refuse_special(path: &Path, meta: &std::fs::Metadata) -> Result<(), ConfigError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        let kind = if t.is_fifo() {
            "FIFO"
        } else if t.is_socket() {
            "socket"
        } else {
            return Ok(());
        };
        Err(ConfigError::NotAFile {
            path: path.to_path_buf(),
            kind,
        })
    }
    #[cfg(not(unix))]
    {
        let _ = (path, meta);
        Ok(())
    }
}

/// Parses config text; `path` is only for the messages.
pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, ConfigError> {
    let file = toml::from_str::<ConfigFile>(text).map_err(|e| located_error(path, text, &e))?;
    let invalid = |at: usize, key: String, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        line: line_of(text, at),
        key,
        message,
    };
    let builtin = builtin_services();
    for (profile, p) in &file.profiles {
        if let Err(message) = profile.parse::<ProfileName>() {
            let at = find_table(text, profile).unwrap_or(0);
            return Err(invalid(at, format!("profiles.{profile}"), message));
        }
        for (name, svc) in &p.services {
            let known = builtin.iter().any(|b| &b.name == name);
            if svc.get_ref().target.is_none() && !known {
                return Err(invalid(
                    svc.span().start,
                    format!("profiles.{profile}.services.{name}"),
                    format!(
                        "a service that is not built in ({}) needs a target",
                        builtin_names()
                    ),
                ));
            }
        }
        for (key, limit) in &p.thresholds {
            if let Err(message) = super::thresholds::check(key, limit.get_ref()) {
                let key = format!("profiles.{profile}.thresholds.{key}");
                return Err(invalid(limit.span().start, key, message));
            }
        }
    }
    Ok(file)
}

/// The 1-based line of byte offset `at`.
fn line_of(text: &str, at: usize) -> usize {
    let at = at.min(text.len());
    text.as_bytes()[..at]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Where the profile `name`'s table starts, for a message about the name itself.
fn find_table(text: &str, name: &str) -> Option<usize> {
    ["[profiles.", "[profiles.\"", "[ profiles."]
        .iter()
        .find_map(|head| text.find(&format!("{head}{name}")))
        .or_else(|| text.find(name))
}

fn located_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let message = e.message().trim().replace('\n', " ");
    let Some(span) = e.span() else {
        return ConfigError::Syntax {
            path: path.to_path_buf(),
            line: 1,
            message,
        };
    };
    let start = span.start.min(text.len());
    let line = line_of(text, start);
    match key_at(text, start) {
        Some(key) => ConfigError::Invalid {
            path: path.to_path_buf(),
            line,
            key,
            message,
        },
        None => ConfigError::Syntax {
            path: path.to_path_buf(),
            line,
            message,
        },
    }
}

/// The dotted key that the byte offset `at` belongs to: the nearest `[table]` header above it
/// joined with the key on its own line.
fn key_at(text: &str, at: usize) -> Option<String> {
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let line = text[line_start..line_end].trim();
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && !l.starts_with("[["))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    if line.starts_with('[') {
        return Some(
            line.trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string(),
        );
    }
    let key = line.split_once('=')?.0.trim().trim_matches('"').to_string();
    if key.is_empty() {
        return None;
    }
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<ConfigFile, ConfigError> {
        parse(Path::new("c.toml"), s)
    }

    fn err(s: &str) -> String {
        parse_str(s).unwrap_err().to_string()
    }

    #[test]
    fn minimal_profile_gets_defaults() {
        let c = parse_str("[profiles.prod]\nhost = \"b.example.com\"\n").unwrap();
        let p = &c.profiles["prod"];
        assert_eq!(p.port.0, 22);
        assert_eq!(p.strict_host_key_checking, super::super::HostKeyPolicy::Ask);
        assert_eq!(p.keepalive_interval, 15);
        assert_eq!(p.connect_timeout.0, 10);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let msg = err("[profiles.prod]\nhost = \"b\"\nhots = 1\n");
        assert!(msg.starts_with("c.toml:3: profiles.prod.hots:"), "{msg}");
        assert!(msg.contains("unknown field"), "{msg}");
    }

    #[test]
    fn every_numeric_key_is_range_checked_with_its_line() {
        for (key, bad, range) in [
            ("port", "70000", "(1-65535 port)"),
            ("port", "0", "(1-65535 port)"),
            (
                "keepalive_interval",
                "18446744073709551615",
                "far too large",
            ),
            ("keepalive_interval", "3601", "(0-3600 seconds, 0 = off)"),
            ("keepalive_interval", "-1", "(0-3600"),
            ("connect_timeout", "0", "(1-600 seconds)"),
            ("connect_timeout", "99999999999", "(1-600 seconds)"),
        ] {
            let msg = err(&format!("[profiles.prod]\nhost = \"b\"\n{key} = {bad}\n"));
            assert!(
                msg.starts_with(&format!("c.toml:3: profiles.prod.{key}:")),
                "{msg}"
            );
            assert!(msg.contains(range), "{msg}");
        }
        let msg =
            err("[profiles.p]\nhost = \"b\"\n[profiles.p.services.grafana]\nlocal_port = 65536\n");
        assert!(
            msg.starts_with("c.toml:4: profiles.p.services.grafana.local_port:"),
            "{msg}"
        );
        assert!(msg.contains("(0-65535 port, 0 = any free port)"), "{msg}");
    }

    #[test]
    fn thresholds_are_checked_with_their_line_and_key() {
        let head = "[profiles.p]\nhost = \"b\"\n[profiles.p.thresholds]\n";
        let msg = err(&format!("{head}memory = {{ warn = 99 }}\n"));
        assert!(
            msg.starts_with("c.toml:4: profiles.p.thresholds.memory: warn (99) is above fail (97)"),
            "{msg}"
        );
        let msg = err(&format!("{head}cpu = 80\nmemroy = {{ fail = 90 }}\n"));
        assert!(
            msg.starts_with("c.toml:4: profiles.p.thresholds.cpu:"),
            "{msg}"
        );
        let msg = err(&format!("{head}memroy = {{ fail = 90 }}\n"));
        assert!(
            msg.starts_with("c.toml:4: profiles.p.thresholds.memroy: unknown signal"),
            "{msg}"
        );
        let msg = err(&format!("{head}disk_free = {{ warn = \"x\" }}\n"));
        assert!(msg.contains("expected a number"), "{msg}");
        let ok = parse_str(&format!("{head}memory = {{ warn = 85, fail = 92.5 }}\n")).unwrap();
        let t = crate::config::Thresholds::with(&ok.profiles["p"].thresholds);
        assert_eq!((t.get("memory").warn, t.get("memory").fail), (85.0, 92.5));
        assert_eq!(t.get("cpu").fail, 95.0);
    }

    #[test]
    fn a_wrong_type_says_expected_a_number() {
        let msg = err("[profiles.p]\nhost = \"b\"\nport = \"22\"\n");
        assert!(msg.starts_with("c.toml:3: profiles.p.port:"), "{msg}");
        assert!(msg.contains("expected a number"), "{msg}");
        assert!(!msg.contains("i64"), "{msg}");
        let msg = err("[profiles.p]\nhost = \"b\"\nkeepalive_interval = \"15\"\n");
        assert!(msg.contains("expected a number"), "{msg}");
    }

    #[test]
    fn bad_policy_and_host_are_located() {
        let msg = err("[profiles.p]\nhost = \"b\"\nstrict_host_key_checking = \"no\"\n");
        assert!(
            msg.starts_with("c.toml:3: profiles.p.strict_host_key_checking:"),
            "{msg}"
        );
        assert!(msg.contains("yes, accept-new, ask"), "{msg}");
        for bad in ["\"\"", "\"ssh://b\"", "\"a b\""] {
            let msg = err(&format!("[profiles.p]\nhost = {bad}\n"));
            assert!(msg.starts_with("c.toml:2: profiles.p.host:"), "{msg}");
        }
    }

    #[test]
    fn syntax_error_names_line() {
        assert!(err("[profiles.p]\nhost = \n").starts_with("c.toml:2"));
    }

    #[test]
    fn profile_names_follow_the_init_rule() {
        let msg = err("[profiles.ok]\nhost = \"b\"\n\n[profiles.\"a/b\"]\nhost = \"b\"\n");
        assert!(msg.starts_with("c.toml:4: profiles.a/b:"), "{msg}");
        assert!(msg.contains("not a profile name"), "{msg}");
    }

    #[test]
    fn service_without_target_must_be_builtin() {
        let msg = err("[profiles.p]\nhost = \"b\"\n\n[profiles.p.services.x]\nlocal_port = 1\n");
        assert!(msg.starts_with("c.toml:4: profiles.p.services.x:"), "{msg}");
        assert!(msg.contains("openobserve"), "{msg}");
        let msg = err("[profiles.p]\nhost = \"b\"\n[profiles.p.services.x]\ntarget = \"nohost\"\n");
        assert!(
            msg.starts_with("c.toml:4: profiles.p.services.x.target:"),
            "{msg}"
        );
    }

    #[test]
    fn datastores_and_kube_keys() {
        let c = parse_str("[profiles.p]\nhost = \"b\"\n[profiles.p.datastores]\npostgres = [\"db:5432\"]\ns3 = [\"http://minio:9000/\"]\n[profiles.p.kube]\napi_server = \"10.0.0.10:6443\"\n").unwrap();
        let p = &c.profiles["p"];
        assert_eq!(p.datastores.postgres[0].to_string(), "db:5432");
        assert_eq!(p.datastores.s3[0].to_string(), "http://minio:9000");
        assert_eq!(p.kube.api_server.as_ref().unwrap().port, 6443);
        let msg =
            err("[profiles.p]\nhost = \"b\"\n[profiles.p.datastores]\ns3 = [\"minio:9000\"]\n");
        assert!(
            msg.starts_with("c.toml:4: profiles.p.datastores.s3:"),
            "{msg}"
        );
    }

    #[test]
    fn a_file_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[profiles.p]\nhost = \"b\"\n").unwrap();
        for mode in [0o620, 0o602, 0o666] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let msg = load(&path).unwrap_err().to_string();
            assert!(msg.contains("writable by others"), "{msg}");
            assert!(msg.contains("chmod go-w"), "{msg}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load(&path).is_ok());
    }

    #[test]
    fn an_endless_or_huge_file_is_refused_naming_it() {
        let msg = load(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(msg.starts_with("/dev/zero is larger than"), "{msg}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "#".repeat(MAX_CONFIG_BYTES as usize + 1)).unwrap();
        let msg = load(&path).unwrap_err().to_string();
        assert!(msg.contains("config.toml is larger than 1 MiB"), "{msg}");
    }
}
