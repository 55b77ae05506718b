//! What paragon-admin remembers between runs that is neither configuration nor a secret, in
//! the user's state folder (`$XDG_STATE_HOME/paragon-admin/`, else
//! `~/.local/state/paragon-admin/`). Today one thing: the local port chosen once for a named
//! forward of a profile of a config file (a service whose `local_port` is 0, the API forward
//! of `kubeconfig`), so that bookmarks and written kubeconfigs keep working across runs.
//!
//! `ports.toml` is read and rewritten under an exclusive lock on `ports.toml.lock` (two
//! commands started at once agree on one port) and written with the one atomic writer. This
//! module knows profile and forward names as strings only: nothing of config files, forwards
//! or commands.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use crate::exit::{self, ExitStatus};

/// The state folder's name under `$XDG_STATE_HOME`.
const APP: &str = "paragon-admin";
const PORTS_FILE: &str = "ports.toml";

/// Where remembered ports are drawn from: below the range Linux (32768-60999) and Windows
/// (49152-65535) hand out for outgoing connections, so that a remembered port is not later
/// held by some connection's source port while its forward is down; above most services'
/// well-known ports.
const RANGE: RangeInclusive<u16> = 20000..=29999;

/// How many random ports in `RANGE` are tried before giving up.
const ATTEMPTS: usize = 64;

/// The name the API server's forward of `kubeconfig` is remembered under.
pub const KUBE_API: &str = "kube-api";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("no home folder for the state folder: set XDG_STATE_HOME or HOME")]
    NoHome,
    #[error(
        "{}:{line}: {message}: fix the file or delete it (its ports are then chosen again)",
        .path.display()
    )]
    Corrupt {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("cannot read {}: {cause}", .path.display())]
    Read { path: PathBuf, cause: io::Error },
    #[error("cannot write {}: {cause}", .path.display())]
    Write {
        path: PathBuf,
        cause: crate::files::WriteError,
    },
    #[error("cannot lock {}: {cause}", .path.display())]
    Lock { path: PathBuf, cause: io::Error },
    #[error(
        "no free local port for `{name}` among {ATTEMPTS} tried in {}-{}: choose one with LOCAL_PORT:{name}",
        RANGE.start(), RANGE.end()
    )]
    NoFreePort { name: String },
}

impl ExitStatus for StateError {
    /// A state file the user must fix, or a home to set, is a usage error (2); a folder
    /// refused by the writer keeps the writer's status; the rest is the machine's (1).
    fn exit_status(&self) -> u8 {
        match self {
            StateError::NoHome | StateError::Corrupt { .. } => exit::USAGE,
            StateError::Write { cause, .. } => cause.exit_status(),
            StateError::Read { .. } | StateError::Lock { .. } | StateError::NoFreePort { .. } => {
                exit::FAILED
            }
        }
    }
}

/// The state folder: `$XDG_STATE_HOME/paragon-admin`, else `~/.local/state/paragon-admin`. A
/// relative `XDG_STATE_HOME` is ignored, as the XDG base directory specification says.
pub fn state_dir() -> Result<PathBuf, StateError> {
    let xdg = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = match xdg {
        Some(p) => p,
        None => dirs::home_dir()
            .ok_or(StateError::NoHome)?
            .join(".local")
            .join("state"),
    };
    Ok(base.join(APP))
}

/// Profile key (`profile config-file`) -> forward name -> local port, as `ports.toml` holds it.
type Book = BTreeMap<String, BTreeMap<String, u16>>;

/// The remembered local ports, in one file.
#[derive(Debug, Clone)]
pub struct Ports {
    path: PathBuf,
}

impl Ports {
    /// The user's `ports.toml` in the state folder.
    pub fn user() -> Result<Ports, StateError> {
        Ok(Ports::at(state_dir()?.join(PORTS_FILE)))
    }

    /// The ports remembered in `path`.
    pub fn at(path: PathBuf) -> Ports {
        Ports { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The port remembered for `name` of `profile`, if any; reads without locking (the file
    /// is only ever replaced whole).
    pub fn remembered(&self, profile: &str, name: &str) -> Result<Option<u16>, StateError> {
        Ok(self
            .read()?
            .get(profile)
            .and_then(|names| names.get(name))
            .copied())
    }

    /// The port for `name` of the profile kept under `key` (`Resolved::state_key`): the
    /// remembered one, else one free now and not remembered for anything else, chosen and
    /// written under the lock. An entry under the bare profile name (`legacy`, as files
    /// before config files were told apart keep them) is taken over by the first file that
    /// asks, so a written kubeconfig keeps its port. Whether the remembered port is free now
    /// is for the listener to find out: the forward may be ours and running.
    pub fn stable_port(&self, key: &str, legacy: &str, name: &str) -> Result<u16, StateError> {
        if let Some(p) = self.remembered(key, name)? {
            return Ok(p);
        }
        let _lock = self.lock()?;
        // Read again under the lock: another command may have chosen meanwhile.
        let mut book = self.read()?;
        if let Some(p) = book.get(key).and_then(|n| n.get(name)) {
            return Ok(*p);
        }
        let adopted = match key == legacy {
            true => None,
            false => book.get_mut(legacy).and_then(|n| n.remove(name)),
        };
        if book.get(legacy).is_some_and(BTreeMap::is_empty) {
            book.remove(legacy);
        }
        let port = match adopted {
            Some(p) => p,
            None => choose_free(&book, name)?,
        };
        book.entry(key.to_string())
            .or_default()
            .insert(name.to_string(), port);
        self.write(&book)?;
        Ok(port)
    }

    fn read(&self) -> Result<Book, StateError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Book::new()),
            Err(cause) => {
                return Err(StateError::Read {
                    path: self.path.clone(),
                    cause,
                });
            }
        };
        toml::from_str(&text).map_err(|e| StateError::Corrupt {
            path: self.path.clone(),
            line: e.span().map_or(1, |s| line_of(&text, s.start)),
            message: e.message().trim().replace('\n', " "),
        })
    }

    fn write(&self, book: &Book) -> Result<(), StateError> {
        let werr = |cause| StateError::Write {
            path: self.path.clone(),
            cause,
        };
        let body =
            toml::to_string(book).map_err(|e| werr(io::Error::other(e.to_string()).into()))?;
        let text = format!(
            "# Local ports paragon-admin chose once per profile and forward, so that bookmarks and\n\
             # kubeconfigs keep working. Delete a line to have its port chosen again.\n\n{body}"
        );
        crate::files::write_atomic(&self.path, text.as_bytes(), crate::files::Access::Private)
            .map_err(werr)
    }

    /// An exclusive lock on `ports.toml.lock` beside the file, held until dropped.
    fn lock(&self) -> Result<File, StateError> {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let lerr = |cause| StateError::Lock {
            path: path.clone(),
            cause,
        };
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::files::create_private_dir(dir).map_err(lerr)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(lerr)?;
        file.lock().map_err(lerr)?;
        Ok(file)
    }
}

/// A port of `RANGE` that no entry of `book` holds and that can be bound on loopback now.
fn choose_free(book: &Book, name: &str) -> Result<u16, StateError> {
    let taken: std::collections::HashSet<u16> =
        book.values().flat_map(|n| n.values().copied()).collect();
    let rng = ring::rand::SystemRandom::new();
    let span = u32::from(RANGE.end() - RANGE.start()) + 1;
    for _ in 0..ATTEMPTS {
        let Ok(bytes) = ring::rand::generate::<[u8; 4]>(&rng) else {
            break;
        };
        let offset = u32::from_be_bytes(bytes.expose()) % span;
        let Ok(offset) = u16::try_from(offset) else {
            continue;
        };
        let port = RANGE.start() + offset;
        if !taken.contains(&port) && TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(port);
        }
    }
    Err(StateError::NoFreePort {
        name: name.to_string(),
    })
}

/// The 1-based line of byte offset `at`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports() -> (tempfile::TempDir, Ports) {
        let dir = tempfile::tempdir().unwrap();
        let p = Ports::at(dir.path().join("state").join(PORTS_FILE));
        (dir, p)
    }

    #[test]
    fn a_port_is_chosen_once_and_remembered() {
        let (_dir, p) = ports();
        assert_eq!(p.remembered("prod", "grafana").unwrap(), None);
        let first = p.stable_port("prod", "prod", "grafana").unwrap();
        assert!(RANGE.contains(&first));
        assert_eq!(p.stable_port("prod", "prod", "grafana").unwrap(), first);
        assert_eq!(
            Ports::at(p.path().to_path_buf())
                .remembered("prod", "grafana")
                .unwrap(),
            Some(first)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(p.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn no_two_entries_share_a_port() {
        let (_dir, p) = ports();
        let mut seen = std::collections::HashSet::new();
        for profile in ["prod", "staging"] {
            for name in ["grafana", "kibana", KUBE_API] {
                assert!(seen.insert(p.stable_port(profile, profile, name).unwrap()));
            }
        }
    }

    #[test]
    fn concurrent_choosers_agree_on_one_port() {
        let (_dir, p) = ports();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let p = p.clone();
                std::thread::spawn(move || p.stable_port("prod", "prod", "grafana").unwrap())
            })
            .collect();
        let chosen: std::collections::HashSet<u16> =
            threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(chosen.len(), 1, "{chosen:?}");
    }

    #[test]
    fn a_bare_profile_entry_is_taken_over_once_by_the_first_file() {
        let (_dir, p) = ports();
        let old = p.stable_port("lab", "lab", "grafana").unwrap();
        let first = p.stable_port("lab /a.toml", "lab", "grafana").unwrap();
        assert_eq!(first, old);
        let second = p.stable_port("lab /b.toml", "lab", "grafana").unwrap();
        assert_ne!(second, first);
        assert_eq!(p.remembered("lab", "grafana").unwrap(), None);
        assert_eq!(
            p.stable_port("lab /a.toml", "lab", "grafana").unwrap(),
            first
        );
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_file_and_line() {
        let (_dir, p) = ports();
        std::fs::create_dir_all(p.path().parent().unwrap()).unwrap();
        std::fs::write(p.path(), "[prod]\ngrafana = 24000\nkibana = \"x\"\n").unwrap();
        let e = p.stable_port("prod", "prod", "other").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("{}:3: ", p.path().display())),
            "{msg}"
        );
        assert_eq!(e.exit_status(), exit::USAGE);
    }
}
