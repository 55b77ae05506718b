//! The bundle's writer: redacts each file as it arrives and appends it to a `tar.gz` opened
//! with mode 0600 under a temporary name, renamed into place when complete. Runs on a
//! blocking thread (tar and gzip are synchronous). `redactions.json` is the last entry.
//! A file streamed in parts (a cluster list, one page at a time) is redacted part by part
//! into a spool, an unnamed temporary file beside the bundle (already redacted, so no secret
//! reaches it), and appended when it ends: a tar entry states its size before its data.

use std::collections::HashMap;
use std::io::{Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::{BundleError, Entry, Written};
use crate::diagnose::redact::{Counts, Redactor};

/// A streamed file, until it ends: its redacted parts so far (none kept for a preview).
struct Spool {
    file: Option<std::fs::File>,
    bytes: usize,
    counts: Counts,
}

pub(super) type Handle = tokio::task::JoinHandle<Result<Vec<Written>, BundleError>>;

/// Starts the writer: into `output`, or, for a preview, nowhere.
pub(super) fn start(
    output: Option<PathBuf>,
    mut rx: mpsc::Receiver<Entry>,
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
        let mut spools: HashMap<String, Spool> = HashMap::new();
        while let Some(entry) = rx.blocking_recv() {
            let file = match entry {
                Entry::File(file) => file,
                Entry::Part(part) => {
                    let spool = match spools.entry(part.path) {
                        std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                        std::collections::hash_map::Entry::Vacant(v) => {
                            let file = match &output {
                                Some(path) => Some(spool_beside(path).map_err(err(path))?),
                                None => None,
                            };
                            v.insert(Spool {
                                file,
                                bytes: 0,
                                counts: Counts::new(),
                            })
                        }
                    };
                    let text = String::from_utf8_lossy(&part.data);
                    let clean = redactor.redact(&text, &mut spool.counts);
                    if let (Some(f), Some(path)) = (spool.file.as_mut(), &output) {
                        f.write_all(clean.as_bytes()).map_err(err(path))?;
                    }
                    spool.bytes += clean.len();
                    continue;
                }
                Entry::End(name) => {
                    let Some(spool) = spools.remove(&name) else {
                        continue;
                    };
                    if let (Some(a), Some(mut f), Some(path)) =
                        (archive.as_mut(), spool.file, &output)
                    {
                        f.seek(SeekFrom::Start(0)).map_err(err(path))?;
                        append_from(a, &name, &mut f, spool.bytes, mtime).map_err(err(path))?;
                    }
                    written.push(Written {
                        path: name,
                        bytes: spool.bytes,
                        redactions: spool.counts,
                    });
                    continue;
                }
            };
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
        // A streamed file whose collector did not finish (its deadline passed) is left out:
        // the manifest says it timed out, and half a list would not parse.
        drop(spools);
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

/// One entry, mode 0600.
fn append(a: &mut Archive, path: &str, data: &[u8], mtime: u64) -> std::io::Result<()> {
    append_from(a, path, data, data.len(), mtime)
}

/// One entry of `size` bytes read from `data`, mode 0600.
fn append_from(
    a: &mut Archive,
    path: &str,
    data: impl std::io::Read,
    size: usize,
    mtime: u64,
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(size as u64);
    header.set_mode(0o600);
    header.set_mtime(mtime);
    header.set_entry_type(tar::EntryType::Regular);
    a.append_data(&mut header, path, data)
}

/// An unnamed temporary file in the bundle's folder (gone when closed, whatever happens),
/// for a streamed file's redacted parts.
fn spool_beside(path: &Path) -> std::io::Result<std::fs::File> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    tempfile::tempfile_in(dir)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Read as _;

    use super::super::File;
    use super::*;

    fn part(path: &str, data: &str) -> Entry {
        Entry::Part(File {
            path: path.into(),
            data: data.as_bytes().to_vec(),
        })
    }

    #[tokio::test]
    async fn streamed_files_are_whole_entries_redacted_part_by_part() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("b.tar.gz");
        let (tx, rx) = mpsc::channel(2);
        let writer = start(Some(out.clone()), rx, Arc::new(Redactor::new()));
        // Two streamed files interleaved, a whole file between their parts, and one that
        // never ends (its collector timed out).
        let entries = [
            part("a.json", "[\n{\"password\": \"p1\"}"),
            part("b.json", "[\n{\"n\": 1}"),
            Entry::File(File {
                path: "whole.txt".into(),
                data: b"token=t1".to_vec(),
            }),
            part("a.json", ",\n{\"password\": \"p2\"}"),
            part("c.json", "[\n"),
            part("a.json", "\n]\n"),
            Entry::End("a.json".into()),
            part("b.json", "\n]\n"),
            Entry::End("b.json".into()),
        ];
        for e in entries {
            tx.send(e).await.unwrap();
        }
        drop(tx);
        let written = finish(writer).await.unwrap();
        let a = written.iter().find(|w| w.path == "a.json").unwrap();
        assert_eq!(a.redactions.get("json-secret"), Some(&2));
        assert!(written.iter().all(|w| w.path != "c.json"));

        let gz = flate2::read::GzDecoder::new(std::fs::File::open(&out).unwrap());
        let mut archive = tar::Archive::new(gz);
        let mut got = BTreeMap::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().display().to_string();
            let mut text = String::new();
            e.read_to_string(&mut text).unwrap();
            got.insert(path, text);
        }
        let names: Vec<&str> = got.keys().map(String::as_str).collect();
        assert_eq!(names, ["a.json", "b.json", "redactions.json", "whole.txt"]);
        let a: serde_json::Value = serde_json::from_str(&got["a.json"]).unwrap();
        assert_eq!(
            a,
            serde_json::json!([{"password": "***HIDDEN***"}, {"password": "***HIDDEN***"}])
        );
        assert_eq!(got["b.json"], "[\n{\"n\": 1}\n]\n");
        assert_eq!(got["whole.txt"], "token=***HIDDEN***");
        // Nothing but the bundle is left in its folder (the spools had no name).
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
