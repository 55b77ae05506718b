//! Where a profile's agent lives: its socket, its start lock and its log, named by the
//! profile's connection id (a hash of the config file and the profile name, as OpenSSH's
//! `ControlPath %C`), in a folder only this user can enter: `$XDG_RUNTIME_DIR/paragon-admin/`
//! when that folder is ours, else `paragon-admin/agents/` in the user's own state folder
//! (`$XDG_STATE_HOME`, else `~/.local/state`), never a predictable name in a shared `/tmp`
//! that another user could take first. The folder is created 0700 and refused when it is not
//! ours or others can reach into it. Knows nothing of what travels through the socket.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::config::Resolved;

use super::AgentError;

/// The longest socket path the system takes (`sun_path` is 108 bytes with its NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// The files of one profile's agent.
#[derive(Debug, Clone)]
pub struct Paths {
    pub folder: PathBuf,
    pub socket: PathBuf,
    /// Held while an agent is being started, so two commands start one agent.
    pub lock: PathBuf,
    /// What the agent logs once detached from the terminal.
    pub log: PathBuf,
}

impl Paths {
    pub fn for_profile(profile: &Resolved) -> Result<Paths, AgentError> {
        let folder = folder()?;
        let id = profile.connection_id();
        Ok(Paths {
            socket: folder.join(format!("{id}.sock")),
            lock: folder.join(format!("{id}.lock")),
            log: folder.join(format!("{id}.log")),
            folder,
        })
    }

    /// Why the socket cannot be bound or reached here, when its path is too long for a Unix
    /// socket (a deep `XDG_RUNTIME_DIR` or home).
    pub fn too_long(&self) -> Option<String> {
        let len = self.socket.as_os_str().len();
        (len > MAX_SOCKET_PATH).then(|| {
            format!(
                "the agent's socket path {} is {len} bytes, over the {MAX_SOCKET_PATH} a socket path may have",
                self.socket.display()
            )
        })
    }
}

/// The private folder of this user's agents, created when missing.
pub fn folder() -> Result<PathBuf, AgentError> {
    let folder = match runtime_dir() {
        Some(run) => run.join("paragon-admin"),
        None => state_folder()?,
    };
    match std::fs::DirBuilder::new().mode(0o700).create(&folder) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(AgentError::Folder {
                path: folder,
                reason: format!(
                    "cannot create it: {e}: set XDG_RUNTIME_DIR to a folder of your own, or use --no-agent"
                ),
            });
        }
    }
    check_private(&folder)?;
    Ok(folder)
}

/// `$XDG_RUNTIME_DIR` when it is set, absolute and ours. Root working in another user's
/// environment (`sudo -E`) gets none: files root made there would lock that user out.
fn runtime_dir() -> Option<PathBuf> {
    let run = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())?;
    match std::fs::metadata(&run) {
        Ok(m) if m.uid() == uid() => Some(run),
        Ok(m) => {
            tracing::debug!(
                "XDG_RUNTIME_DIR {} belongs to uid {}, not to us: not used",
                run.display(),
                m.uid()
            );
            None
        }
        Err(_) => None,
    }
}

/// `paragon-admin/agents` in the user's state folder, its missing parents made 0700. A home
/// that is not ours (root with another user's `HOME`) is left alone: the folder is then
/// `paragon-admin-UID` in the temporary folder (refused, with the fix, if another user made it).
fn state_folder() -> Result<PathBuf, AgentError> {
    let refuse = |path: PathBuf, reason: String| AgentError::Folder { path, reason };
    let xdg = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = match xdg {
        Some(p) => p,
        None => {
            let Some(home) = std::env::var_os("HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
            else {
                return Err(refuse(
                    PathBuf::from("~"),
                    "no home folder: set XDG_RUNTIME_DIR or HOME, or use --no-agent".into(),
                ));
            };
            if std::fs::metadata(&home).is_ok_and(|m| m.uid() != uid()) {
                return Ok(std::env::temp_dir().join(format!("paragon-admin-{}", uid())));
            }
            home.join(".local").join("state")
        }
    };
    let folder = base.join("paragon-admin").join("agents");
    crate::files::create_private_dir(&folder).map_err(|e| {
        refuse(
            folder.clone(),
            format!("cannot create it: {e}: set XDG_RUNTIME_DIR to a folder of your own, or use --no-agent"),
        )
    })?;
    Ok(folder)
}

/// Refuses a folder that is a symbolic link, is not ours, or lets group or others in: anyone
/// who could place a socket there could answer in the agent's name.
fn check_private(folder: &Path) -> Result<(), AgentError> {
    let refuse = |reason: String| AgentError::Folder {
        path: folder.to_path_buf(),
        reason,
    };
    let meta = std::fs::symlink_metadata(folder).map_err(|e| refuse(e.to_string()))?;
    if !meta.is_dir() {
        return Err(refuse(
            "it is not a folder: remove it, set XDG_RUNTIME_DIR to a folder of your own, or use --no-agent"
                .to_string(),
        ));
    }
    if meta.uid() != uid() {
        return Err(refuse(format!(
            "it belongs to uid {}, not to us: set XDG_RUNTIME_DIR to a folder of your own, or use --no-agent",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(refuse(format!(
            "others may enter it (mode {mode:04o}): run `chmod 700 {}`",
            folder.display()
        )));
    }
    Ok(())
}

pub fn uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// The inode of the socket file, to tell our own socket from one that replaced it.
pub fn inode(path: &Path) -> Option<u64> {
    std::fs::symlink_metadata(path).ok().map(|m| m.ino())
}

/// Every agent socket in this user's folder.
pub fn all_sockets() -> Result<Vec<PathBuf>, AgentError> {
    let folder = folder()?;
    let entries = std::fs::read_dir(&folder).map_err(|e| AgentError::Folder {
        path: folder.clone(),
        reason: e.to_string(),
    })?;
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sock"))
        .collect();
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_folder_others_can_enter_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = check_private(dir.path()).unwrap_err().to_string();
        assert!(e.contains("mode 0755") && e.contains("chmod 700"), "{e}");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        check_private(dir.path()).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        assert!(check_private(&link).is_err());
    }
}
