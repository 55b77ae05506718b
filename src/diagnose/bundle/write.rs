//! The bundle's writer: redacts each file as it arrives and appends it to a `tar.gz` opened
//! with mode 0600 under a temporary name, renamed into place when complete. Runs on a
//! blocking thread (tar and gzip are synchronous). `redactions.json` is the last entry.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::{BundleError, File, Written};
use crate::diagnose::redact::Redactor;

pub(super) type Handle = tokio::task::JoinHandle<Result<Vec<Written>, BundleError>>;

/// Starts the writer: into `output`, or, for a preview, nowhere.
pub(super) fn start(
    output: Option<PathBuf>,
    mut rx: mpsc::Receiver<File>,
    redactor: Arc<Redactor>,
) -> Handle {
    tokio::task::spawn_blocking(move || {
        let mut archive = match &output {
            Some(path) => Some(open(path)?),
            None => None,
        };
        let err = |path: &Path| {
            let path = path.display().to_string();
            move |source| BundleError::Write { path, source }
        };
        let mut written = Vec::new();
        let mtime = jiff::Timestamp::now().as_second().max(0) as u64;
        while let Some(file) = rx.blocking_recv() {
            let text = String::from_utf8_lossy(&file.data);
            let mut counts = Default::default();
            let clean = redactor.redact(&text, &mut counts);
            if let (Some(a), Some(path)) = (archive.as_mut(), &output) {
                append(a, &file.path, clean.as_bytes(), mtime).map_err(err(path))?;
            }
            written.push(Written {
                path: file.path,
                bytes: clean.len(),
                redactions: counts,
            });
        }
        let report = serde_json::json!({
            "marker": crate::diagnose::redact::HIDDEN,
            "files": written.iter().filter(|w| !w.redactions.is_empty())
                .map(|w| (w.path.clone(), serde_json::to_value(&w.redactions).unwrap_or_default()))
                .collect::<serde_json::Map<_, _>>(),
        });
        let report = serde_json::to_vec_pretty(&report).unwrap_or_default();
        if let (Some(mut a), Some(path)) = (archive, &output) {
            append(&mut a, "redactions.json", &report, mtime).map_err(err(path))?;
            let gz = a.into_inner().map_err(err(path))?;
            let mut file = gz.finish().map_err(err(path))?;
            file.flush().map_err(err(path))?;
            file.sync_all().map_err(err(path))?;
            std::fs::rename(partial(path), path).map_err(err(path))?;
        }
        written.push(Written {
            path: "redactions.json".into(),
            bytes: report.len(),
            redactions: Default::default(),
        });
        Ok(written)
    })
}

/// Waits for the writer to take every file and close the bundle.
pub(super) async fn finish(handle: Handle) -> Result<Vec<Written>, BundleError> {
    match handle.await {
        Ok(r) => r,
        Err(e) => Err(BundleError::Write {
            path: "the bundle".into(),
            source: std::io::Error::other(e.to_string()),
        }),
    }
}

type Archive = tar::Builder<flate2::write::GzEncoder<std::fs::File>>;

/// The temporary name the bundle is written under.
fn partial(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

fn open(path: &Path) -> Result<Archive, BundleError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let file = options
        .open(partial(path))
        .map_err(|source| BundleError::Write {
            path: path.display().to_string(),
            source,
        })?;
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    Ok(tar::Builder::new(gz))
}

/// One entry, mode 0600, under the bundle's top folder.
fn append(a: &mut Archive, path: &str, data: &[u8], mtime: u64) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(mtime);
    header.set_entry_type(tar::EntryType::Regular);
    a.append_data(&mut header, path, data)
}
