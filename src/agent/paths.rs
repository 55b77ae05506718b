//! Where a profile's agent lives: its socket, its start lock and its log, in a folder only
//! this user can enter: `$XDG_RUNTIME_DIR/paragon-admin/`, else `paragon-admin-UID` under the
//! temporary folder, created 0700 and refused when it is not ours or others can reach into it.
//! Knows nothing of what travels through the socket.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::AgentError;

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
    pub fn for_profile(profile: &str) -> Result<Paths, AgentError> {
        let folder = folder()?;
        Ok(Paths {
            socket: folder.join(format!("{profile}.sock")),
            lock: folder.join(format!("{profile}.lock")),
            log: folder.join(format!("{profile}.log")),
            folder,
        })
    }
}

/// The private folder of this user's agents, created when missing.
pub fn folder() -> Result<PathBuf, AgentError> {
    let folder = match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(run) => PathBuf::from(run).join("paragon-admin"),
        None => std::env::temp_dir().join(format!("paragon-admin-{}", uid())),
    };
    match std::fs::DirBuilder::new().mode(0o700).create(&folder) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(AgentError::Folder {
                path: folder,
                reason: format!("cannot create it: {e}"),
            });
        }
    }
    check_private(&folder)?;
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
        return Err(refuse("it is not a folder: remove it".to_string()));
    }
    if meta.uid() != uid() {
        return Err(refuse(format!(
            "it belongs to uid {}, not to us: remove it",
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

/// Every agent socket in this user's folder, with its profile name.
pub fn all_sockets() -> Result<Vec<(String, PathBuf)>, AgentError> {
    let folder = folder()?;
    let entries = std::fs::read_dir(&folder).map_err(|e| AgentError::Folder {
        path: folder.clone(),
        reason: e.to_string(),
    })?;
    let mut found: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            let name = path
                .file_name()?
                .to_str()?
                .strip_suffix(".sock")?
                .to_string();
            Some((name, path))
        })
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
