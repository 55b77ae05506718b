//! Files that are never half-written: a temporary file beside the target, synced, then
//! renamed over it. Private (0600) unless told otherwise. It knows nothing of what they hold.

use std::fs::Permissions;
use std::io::{self, Write};
use std::path::Path;

/// Who may read a written file.
#[derive(Debug, Clone)]
pub enum Access {
    /// Only the owner (0600): kubeconfigs, profiles, known_hosts when new.
    Private,
    /// Anyone may read (0644): man pages, completion scripts.
    Public,
    /// Exactly these permissions (an existing file's, kept across the rewrite).
    Exactly(Permissions),
}

/// Writes `bytes` to `path` atomically; a missing parent folder is created private (0700).
pub fn write_atomic(path: &Path, bytes: &[u8], access: Access) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.exists() {
        create_private_dir(dir)?;
    }
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    if let Some(p) = permissions(access) {
        std::fs::set_permissions(tmp.path(), p)?;
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(unix)]
fn permissions(access: Access) -> Option<Permissions> {
    use std::os::unix::fs::PermissionsExt;
    Some(match access {
        Access::Private => Permissions::from_mode(0o600),
        Access::Public => Permissions::from_mode(0o644),
        Access::Exactly(p) => p,
    })
}

/// Elsewhere a new file inherits its folder's access rules.
#[cfg(not(unix))]
fn permissions(access: Access) -> Option<Permissions> {
    match access {
        Access::Exactly(p) => Some(p),
        Access::Private | Access::Public => None,
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn new_files_are_private_and_replace_the_old_one_whole() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/f");
        write_atomic(&path, b"one", Access::Private).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(dir.path().join("sub"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        write_atomic(&path, b"two", Access::Public).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("sub")).unwrap().count(),
            1
        );
    }
}
