//! The support bundle: collectors run concurrently, each with its own deadline and all under
//! a total one; every file they produce passes through the redactor and is streamed into a
//! `tar.gz` (mode 0600) as it comes, so memory holds one file (or one page of a cluster list)
//! at a time. What each collector
//! did, how long it took and what failed is `manifest.json`; what the redactor hid, per file
//! and rule, is `redactions.json`. `--preview` runs the same pipeline without writing.
//! Knows nothing of clap or of how the bastion is reached.

mod collect;
mod write;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc;

use super::redact::{Counts, Redactor};
use crate::health::Progress;
pub use collect::Sources;

/// How the bundle is made.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the bundle goes; `None`: preview only.
    pub output: Option<PathBuf>,
    /// The whole bundle's deadline.
    pub timeout: Duration,
    /// The deadline of each collector whose work is bounded (a datastore, the bastion, the
    /// health checks), never past the total; the cluster's lists and logs, which grow with
    /// the installation, have the total.
    pub collector_timeout: Duration,
    /// Logs newer than this.
    pub since: Duration,
    /// The installation's namespace (its logs are collected).
    pub namespace: String,
    /// The profile, for the manifest.
    pub profile: String,
    /// Collect each Helm release's user-supplied chart values (redacted like every file).
    pub include_values: bool,
}

/// One file of the bundle, before redaction.
#[derive(Debug)]
pub struct File {
    pub path: String,
    pub data: Vec<u8>,
}

/// What a collector hands the writer: a whole file, or a file streamed in parts (one page of
/// a list at a time: memory holds one part, not the file), which `End` completes.
#[derive(Debug)]
pub enum Entry {
    File(File),
    /// The next part of the file at its path (its first part starts it).
    Part(File),
    /// The streamed file at this path is complete.
    End(String),
}

impl From<File> for Entry {
    fn from(f: File) -> Entry {
        Entry::File(f)
    }
}

/// What a collector hands the writer.
pub type Sink = mpsc::Sender<Entry>;

/// Entries waiting for the writer: few, so that memory holds a few pages or logs at most.
const QUEUE: usize = 8;

/// How a collector ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Ok,
    Failed,
    TimedOut,
}

/// A collector's line in the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct Collected {
    pub name: &'static str,
    /// Where it read from (the API server, the bastion, a datastore's address).
    pub source: String,
    pub outcome: Outcome,
    pub elapsed_ms: u128,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// `manifest.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub format: u32,
    pub profile: String,
    pub created: String,
    pub namespace: String,
    pub timeout_s: u64,
    pub elapsed_ms: u128,
    pub collectors: Vec<Collected>,
}

/// One file's line in `redactions.json` and in the preview.
#[derive(Debug, Clone, Serialize)]
pub struct Written {
    pub path: String,
    pub bytes: usize,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub redactions: Counts,
}

/// What was made.
#[derive(Debug, Serialize)]
pub struct Outcomes {
    pub manifest: Manifest,
    pub files: Vec<Written>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<PathBuf>,
}

impl Outcomes {
    /// Exit 0 when every collector finished, 1 when one failed or timed out (the bundle is
    /// still written).
    pub fn exit_status(&self) -> u8 {
        if self
            .manifest
            .collectors
            .iter()
            .all(|c| c.outcome == Outcome::Ok)
        {
            0
        } else {
            crate::exit::FAILED
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot write the bundle {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

impl crate::exit::ExitStatus for BundleError {
    fn exit_status(&self) -> u8 {
        crate::exit::FAILED
    }
}

/// Runs every collector, streams their files through the redactor into the bundle (or the
/// preview), and adds the manifest and the redaction report last.
pub async fn make(
    sources: Sources,
    options: Options,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<Outcomes, BundleError> {
    let started = Instant::now();
    let created = jiff::Timestamp::now();
    let (tx, rx) = mpsc::channel::<Entry>(QUEUE);
    let writer = write::start(options.output.clone(), rx, Arc::new(Redactor::new()));
    let total_deadline = tokio::time::Instant::now() + options.timeout;
    let collectors = collect::all(&sources, &options);
    progress(Progress::Total(collectors.len()));
    let runs = collectors.into_iter().map(|c| {
        let tx = tx.clone();
        let per = if c.bounded {
            options.collector_timeout
        } else {
            options.timeout
        };
        async move {
            let begun = Instant::now();
            let deadline = (tokio::time::Instant::now() + per).min(total_deadline);
            let (outcome, errors) = match tokio::time::timeout_at(deadline, (c.run)(tx)).await {
                Ok(errors) if errors.is_empty() => (Outcome::Ok, errors),
                Ok(errors) => (Outcome::Failed, errors),
                Err(_) => (
                    Outcome::TimedOut,
                    vec![format!(
                        "did not finish within {}s",
                        per.min(options.timeout).as_secs()
                    )],
                ),
            };
            progress(Progress::Done(c.name));
            Collected {
                name: c.name,
                source: c.source,
                outcome,
                elapsed_ms: begun.elapsed().as_millis(),
                errors,
            }
        }
    });
    let collectors: Vec<Collected> = futures::future::join_all(runs).await;
    let manifest = Manifest {
        format: 1,
        profile: options.profile.clone(),
        created: created.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        namespace: options.namespace.clone(),
        timeout_s: options.timeout.as_secs(),
        elapsed_ms: started.elapsed().as_millis(),
        collectors,
    };
    let manifest_json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    let _ = tx
        .send(Entry::File(File {
            path: "manifest.json".into(),
            data: manifest_json,
        }))
        .await;
    drop(tx);
    let files = write::finish(writer).await?;
    Ok(Outcomes {
        manifest,
        files,
        output: options.output,
    })
}

/// `paragon-bundle-PROFILE-YYYYMMDDTHHMMSSZ.tar.gz`.
pub fn default_name(profile: &str, now: jiff::Timestamp) -> String {
    format!(
        "paragon-bundle-{profile}-{}.tar.gz",
        now.strftime("%Y%m%dT%H%M%SZ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_name_carries_the_profile_and_utc_time() {
        let t: jiff::Timestamp = "2026-12-07T04:05:06Z".parse().unwrap();
        assert_eq!(
            default_name("prod", t),
            "paragon-bundle-prod-20261207T040506Z.tar.gz"
        );
    }
}
