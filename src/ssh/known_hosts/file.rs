//! Reading and appending a known_hosts file as OpenSSH does: in place, capped, never
//! replacing what the path points at. Knows nothing of the format beyond lines.

use std::io::{Read as _, Write as _};
use std::path::Path;

use super::{KnownHosts, KnownHostsError, MAX_FILE_BYTES};

/// Reads a known_hosts file; a missing file is an empty one. At most `MAX_FILE_BYTES` are
/// read (`/dev/zero` never ends); `/dev/null` reads as empty; a FIFO or a socket, which
/// could block forever, is refused.
pub fn load(path: &Path) -> Result<KnownHosts, KnownHostsError> {
    let read_error = |cause| KnownHostsError::Read {
        path: path.to_path_buf(),
        cause,
    };
    if !exists(path, read_error)? {
        return Ok(KnownHosts::default());
    }
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(KnownHostsError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(KnownHosts::parse(&bytes))
}

/// Whether `path` is there: `false` when missing; a kind that could block (a FIFO, a
/// socket) or is no file at all is refused; any other failure goes through `io_error`, so
/// that reading and appending each name their own operation.
fn exists(
    path: &Path,
    io_error: impl FnOnce(std::io::Error) -> KnownHostsError,
) -> Result<bool, KnownHostsError> {
    match std::fs::metadata(path) {
        Ok(m) if !readable_kind(&m) => Err(KnownHostsError::NotAFile {
            path: path.to_path_buf(),
        }),
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error(e)),
    }
}

/// A regular file or a character device (`/dev/null`): what can be read without blocking.
fn readable_kind(m: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        m.file_type().is_file() || m.file_type().is_char_device()
    }
    #[cfg(not(unix))]
    {
        m.file_type().is_file()
    }
}

/// Appends one line in place, as OpenSSH does (`fopen(path, "a")`): through a symlink
/// (the link stays), into a file bind-mounted alone or kept in a read-only folder, into
/// `/dev/null` (recording nothing); a read-only file fails. The line goes out in one
/// `O_APPEND` write under an exclusive lock, so concurrent first connections never lose a
/// line; a file without a final newline gets one first. A new file is created with mode
/// 0666 less the umask (OpenSSH's), its missing folder private (0700).
pub fn append(path: &Path, line: &str) -> Result<(), KnownHostsError> {
    let write_error = |cause| KnownHostsError::Write {
        path: path.to_path_buf(),
        cause,
    };
    if !exists(path, write_error)?
        && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        create_private_dir(dir).map_err(write_error)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(write_error)?;
    // Other writers (OpenSSH) append without locking; the single O_APPEND write keeps
    // their lines whole too. The lock orders ours around the final-newline check.
    file.lock().map_err(write_error)?;
    let mut out = Vec::with_capacity(line.len() + 1);
    if !ends_with_newline(&file).map_err(write_error)? {
        out.push(b'\n');
    }
    out.extend_from_slice(line.as_bytes());
    file.write_all(&out).map_err(write_error)?;
    Ok(())
}

/// Whether the file is empty or its last byte is a newline.
fn ends_with_newline(file: &std::fs::File) -> std::io::Result<bool> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt as _;
        let mut last = [0u8; 1];
        file.read_exact_at(&mut last, len - 1)?;
        Ok(last[0] == b'\n')
    }
    #[cfg(not(unix))]
    {
        use std::io::{Seek as _, SeekFrom};
        let mut f = file;
        let mut last = [0u8; 1];
        f.seek(SeekFrom::Start(len - 1))?;
        f.read_exact(&mut last)?;
        Ok(last[0] == b'\n')
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir)
}
