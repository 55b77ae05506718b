//! Files that are never half-written: a temporary file beside the target, synced, then
//! renamed over it. Private (0600) unless told otherwise. It knows nothing of what they hold.
//!
//! A symlink is written through: the file it points at is replaced, atomically in that file's
//! own folder, keeping its mode, and the link stays (a config kept in a dotfiles repo). A
//! folder other users can write is refused (they could swap the file or plant a link), unless
//! it is sticky, as /tmp is, and the file there is ours.
//!
//! Its error, [`WriteError`], says its own exit status: a refused path is the user's to fix.

use std::fs::{Metadata, Permissions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Who may read a written file that does not exist yet; an existing file keeps its mode.
#[derive(Debug, Clone)]
pub enum Access {
    /// Only the owner (0600): kubeconfigs, profiles, known_hosts when new.
    Private,
    /// Anyone may read (0644): man pages, completion scripts.
    Public,
    /// Exactly these permissions (an existing file's, kept across the rewrite).
    Exactly(Permissions),
}

/// Why [`write_atomic`] did not write: a refusal of the path (each message names the path to
/// look at), or the system's own failure.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(
        "the folder {} can be written by other users (mode {mode:04o}), who could replace the file; choose another folder or run `chmod go-w {}`",
        .dir.display(), .dir.display()
    )]
    SharedFolder { dir: PathBuf, mode: u32 },
    #[error(
        "the folder {} belongs to another user (uid {uid}), who could replace the file; choose another folder",
        .dir.display()
    )]
    ForeignFolder { dir: PathBuf, uid: u32 },
    #[error(
        "{} belongs to another user in the shared folder {}; choose another name or folder",
        .path.display(), .dir.display()
    )]
    NotOurs { path: PathBuf, dir: PathBuf },
    #[error("{} is {kind}, not a regular file; name a file to write", .path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{}: too many levels of symbolic links", .path.display())]
    LinkLoop { path: PathBuf },
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl crate::exit::ExitStatus for WriteError {
    /// A refusal is about the path the user chose: a usage error (2); the system's failure
    /// is 1.
    fn exit_status(&self) -> u8 {
        match self {
            WriteError::Io(_) => crate::exit::FAILED,
            _ => crate::exit::USAGE,
        }
    }
}

/// The temporary files being written now: a process that a signal ends (and
/// `std::process::exit` runs no destructor) removes them first with `remove_unfinished`, so
/// no `.tmpXXXXXX` is left beside the config.
static UNFINISHED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// One temporary file in `UNFINISHED` while it lives.
struct Unfinished(PathBuf);

impl Unfinished {
    fn new(path: &Path) -> Unfinished {
        if let Ok(mut list) = UNFINISHED.lock() {
            list.push(path.to_path_buf());
        }
        Unfinished(path.to_path_buf())
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Ok(mut list) = UNFINISHED.lock() {
            list.retain(|p| p != &self.0);
        }
    }
}

/// Removes the temporary files of writes still under way; for a process about to exit on a
/// signal.
pub fn remove_unfinished() {
    if let Ok(mut list) = UNFINISHED.lock() {
        for path in list.drain(..) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Linux's own limit on symlinks followed while resolving one path (ELOOP).
const MAX_LINKS: usize = 40;

/// Writes `bytes` to `path` atomically; a missing parent folder is created private (0700).
/// Through a symlink, the file it points at is replaced and the link kept.
pub fn write_atomic(path: &Path, bytes: &[u8], access: Access) -> Result<(), WriteError> {
    let target = resolve_links(path)?;
    let dir = parent(&target);
    if !dir.exists() {
        create_private_dir(dir)?;
    }
    let existing = match std::fs::symlink_metadata(&target) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(m) = &existing
        && !m.is_file()
    {
        // Renaming over a device or FIFO would replace it (as root, /dev/null itself).
        return Err(WriteError::NotRegular {
            path: target,
            kind: kind_of(m),
        });
    }
    check_folder(&target, dir, existing.as_ref())?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    let _unfinished = Unfinished::new(tmp.path());
    let permissions = match &existing {
        Some(m) => Some(m.permissions()),
        None => permissions(access),
    };
    if let Some(p) = permissions {
        std::fs::set_permissions(tmp.path(), p)?;
    }
    if let Some(m) = &existing {
        keep_owner(tmp.as_file(), m);
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(&target).map_err(|e| e.error)?;
    Ok(())
}

/// The folder a path's last component lives in (`.` for a bare name).
fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Follows `path` while it is a symlink, to the file it finally names (which may not exist
/// yet). Each link must sit where only we could have put it.
fn resolve_links(path: &Path) -> Result<PathBuf, WriteError> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        let meta = match std::fs::symlink_metadata(&current) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(current),
            Err(e) => return Err(e.into()),
        };
        if !meta.file_type().is_symlink() {
            return Ok(current);
        }
        check_folder(&current, parent(&current), Some(&meta))?;
        let link = std::fs::read_link(&current)?;
        current = if link.is_absolute() {
            link
        } else {
            parent(&current).join(link)
        };
    }
    Err(WriteError::LinkLoop {
        path: path.to_path_buf(),
    })
}

fn kind_of(meta: &Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_dir() {
        return "a folder";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_socket() {
            return "a socket";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
    }
    "not a regular file"
}

/// Refuses `path` (`existing`: what is there now) in a folder other users can write: they
/// could rename it away or plant a link in its place. A sticky folder (/tmp) forbids that for
/// files they do not own, so there a new file, or one of ours, is safe.
#[cfg(unix)]
fn check_folder(path: &Path, dir: &Path, existing: Option<&Metadata>) -> Result<(), WriteError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir)?;
    let me = rustix::process::geteuid().as_raw();
    let mode = meta.mode() & 0o7777;
    let owner_is_trusted = meta.uid() == me || meta.uid() == 0;
    // Group write counts when the group is not ours: with per-user groups (Debian's default)
    // a 0775 home folder is still only the user's.
    let group_is_ours = meta.gid() == rustix::process::getegid().as_raw();
    let others_write = mode & 0o002 != 0 || (mode & 0o020 != 0 && !group_is_ours);
    if !owner_is_trusted {
        return Err(WriteError::ForeignFolder {
            dir: dir.to_path_buf(),
            uid: meta.uid(),
        });
    }
    if !others_write {
        return Ok(());
    }
    if mode & 0o1000 == 0 {
        return Err(WriteError::SharedFolder {
            dir: dir.to_path_buf(),
            mode,
        });
    }
    match existing {
        Some(m) if m.uid() != me => Err(WriteError::NotOurs {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
        }),
        _ => Ok(()),
    }
}

#[cfg(not(unix))]
fn check_folder(_path: &Path, _dir: &Path, _existing: Option<&Metadata>) -> Result<(), WriteError> {
    Ok(())
}

/// Root rewriting another user's file (`sudo`) gives the new file the old one's owner, so
/// the user can still write it. Best effort: for anyone else it fails, and the file is
/// ours anyway since the folder check passed.
#[cfg(unix)]
fn keep_owner(file: &std::fs::File, existing: &Metadata) {
    use std::os::unix::fs::MetadataExt;
    if existing.uid() != rustix::process::geteuid().as_raw() {
        let _ = std::os::unix::fs::fchown(file, Some(existing.uid()), Some(existing.gid()));
    }
}

#[cfg(not(unix))]
fn keep_owner(_file: &std::fs::File, _existing: &Metadata) {}

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

/// Creates `dir` and its missing parents, new ones private (0700).
#[cfg(unix)]
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt, symlink};

    use super::*;

    #[test]
    fn a_write_under_way_is_listed_for_removal_and_a_finished_one_is_not() {
        // `remove_unfinished` itself is not called here: it would take the files of the
        // other tests writing at the same time.
        let listed = |p: &Path| UNFINISHED.lock().unwrap().iter().any(|l| l == p);
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join(".tmpABC123");
        let under_way = Unfinished::new(&tmp);
        assert!(listed(&tmp));
        drop(under_way);
        assert!(!listed(&tmp));
        let target = dir.path().join("config.toml");
        write_atomic(&target, b"done", Access::Private).unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(left, std::slice::from_ref(&target));
        assert!(
            !UNFINISHED
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.starts_with(dir.path()))
        );
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn set_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn new_files_are_private_and_replace_the_old_one_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/f");
        write_atomic(&path, b"one", Access::Private).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("sub")), 0o700);
        write_atomic(&path, b"two", Access::Public).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        // An existing file keeps its mode.
        assert_eq!(mode(&path), 0o600);
        assert_eq!(
            std::fs::read_dir(dir.path().join("sub")).unwrap().count(),
            1
        );
    }

    #[test]
    fn a_symlink_is_written_through_keeping_the_link_and_the_targets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let dotfiles = dir.path().join("dotfiles");
        std::fs::create_dir(&dotfiles).unwrap();
        let real = dotfiles.join("config.toml");
        std::fs::write(&real, "old").unwrap();
        set_mode(&real, 0o640);
        // A chain: an absolute link to a relative one.
        let relative = dotfiles.join("current");
        symlink("config.toml", &relative).unwrap();
        let link = dir.path().join("config.toml");
        symlink(&relative, &link).unwrap();

        write_atomic(&link, b"new", Access::Private).unwrap();

        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
        assert!(std::fs::symlink_metadata(&relative).unwrap().is_symlink());
        assert_eq!(std::fs::read(&real).unwrap(), b"new");
        assert_eq!(mode(&real), 0o640);
        // The temporary file lived and died in the target's folder.
        assert_eq!(std::fs::read_dir(&dotfiles).unwrap().count(), 2);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_dangling_symlink_creates_its_target_and_a_loop_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("kubeconfig");
        symlink("elsewhere/real", &link).unwrap();
        write_atomic(&link, b"x", Access::Private).unwrap();
        let real = dir.path().join("elsewhere/real");
        assert_eq!(std::fs::read(&real).unwrap(), b"x");
        assert_eq!(mode(&real), 0o600);
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());

        let a = dir.path().join("a");
        symlink("b", &a).unwrap();
        symlink("a", dir.path().join("b")).unwrap();
        let e = write_atomic(&a, b"x", Access::Private).unwrap_err();
        assert!(matches!(e, WriteError::LinkLoop { .. }), "{e}");
    }

    #[test]
    fn a_fifo_or_folder_is_never_renamed_over() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let st = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(st.success());
        let link = dir.path().join("link");
        symlink(&fifo, &link).unwrap();
        for path in [&fifo, &link] {
            let e = write_atomic(path, b"x", Access::Private).unwrap_err();
            assert!(
                e.to_string().contains("is a FIFO, not a regular file"),
                "{e}"
            );
        }
        assert!(
            std::fs::symlink_metadata(&fifo)
                .unwrap()
                .file_type()
                .is_fifo()
        );
        let e = write_atomic(dir.path(), b"x", Access::Private).unwrap_err();
        assert!(matches!(e, WriteError::NotRegular { .. }), "{e}");
    }

    #[test]
    fn a_folder_others_can_write_is_refused_unless_sticky_and_the_file_ours() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        set_mode(&shared, 0o777);
        let e = write_atomic(&shared.join("f"), b"x", Access::Private).unwrap_err();
        assert!(
            matches!(e, WriteError::SharedFolder { mode: 0o777, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("chmod go-w"), "{e}");
        assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 0);

        set_mode(&shared, 0o1777);
        write_atomic(&shared.join("f"), b"x", Access::Private).unwrap();
        write_atomic(&shared.join("f"), b"y", Access::Private).unwrap();
        assert_eq!(std::fs::read(shared.join("f")).unwrap(), b"y");
    }

    #[test]
    fn refusals_are_usage_errors_and_the_systems_failures_are_not() {
        use crate::exit::{Error, ExitStatus};
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        symlink("a", &a).unwrap();
        let e = write_atomic(&a, b"x", Access::Private).unwrap_err();
        assert_eq!(e.exit_status(), crate::exit::USAGE);
        assert_eq!(
            e.to_string(),
            format!("{}: too many levels of symbolic links", a.display())
        );
        // The status survives a command's context.
        let e = Error::from(e).context("writing the man pages");
        assert_eq!(e.exit_status(), crate::exit::USAGE);

        // A file inside a file is the system saying no: 1, with the system's message.
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let e = write_atomic(&file.join("f"), b"x", Access::Private).unwrap_err();
        assert!(matches!(e, WriteError::Io(_)), "{e:?}");
        assert_eq!(e.exit_status(), crate::exit::FAILED);
        assert_eq!(e.to_string(), "Not a directory (os error 20)");
    }
}
