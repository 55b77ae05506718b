//! What a healing kubeconfig's cluster entry said when it was written, kept in the entry
//! itself (its exec plugin's environment) so that `kube-credential` can tell, with what it
//! fetches anyway, when the cluster has moved on: another CA (kubectl would say `x509:
//! certificate signed by unknown authority`), another server name or local address. The CA
//! is kept as a short hash, never as data; a cluster's CA is no secret, but a large bundle
//! would not fit in an environment variable.
//!
//! Also how the entry was written (`--write FILE` or `--merge`), so the plugin can say
//! exactly what to run to write it again. Knows nothing of commands or the agent.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use kube::config::Cluster;

use crate::ssh::quote::quote;

/// The exec environment variable that holds the stamp of the written cluster entry.
pub const STAMP_ENV: &str = "PARAGON_ADMIN_WRITTEN_CLUSTER";
/// The exec environment variable that says where the entry was written: a file, or `--merge`.
pub const WRITTEN_ENV: &str = "PARAGON_ADMIN_WRITTEN_TO";

const MERGE: &str = "--merge";

/// Where a healing kubeconfig entry was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// `kubeconfig --write FILE` (absolute).
    File(PathBuf),
    /// `kubeconfig --merge`.
    Merge,
}

impl Written {
    /// As kept in `WRITTEN_ENV`.
    fn to_env(&self) -> String {
        match self {
            Written::File(p) => p.display().to_string(),
            Written::Merge => MERGE.to_string(),
        }
    }

    /// Read back from `WRITTEN_ENV`.
    pub fn from_env(value: &str) -> Option<Written> {
        match value {
            "" => None,
            MERGE => Some(Written::Merge),
            path => Some(Written::File(PathBuf::from(path))),
        }
    }
}

/// What kubectl checks the API server against, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    server: String,
    tls_server_name: String,
    /// The first 16 hex digits of the SHA-256 of the CA data (or of its file's path), `-`
    /// without one.
    ca: String,
    insecure: bool,
}

impl Stamp {
    pub fn of(cluster: &Cluster) -> Stamp {
        let ca = match (
            &cluster.certificate_authority_data,
            &cluster.certificate_authority,
        ) {
            (Some(data), _) if !data.trim().is_empty() => short_hash(data.trim()),
            (_, Some(file)) if !file.is_empty() => short_hash(&format!("file:{file}")),
            _ => "-".to_string(),
        };
        Stamp {
            server: cluster.server.clone().unwrap_or_default(),
            tls_server_name: cluster
                .tls_server_name
                .clone()
                .unwrap_or_else(|| "-".to_string()),
            ca,
            insecure: cluster.insecure_skip_tls_verify.unwrap_or(false),
        }
    }

    /// One line of `key=value` words (no value holds a space: a URL, a host name, hex).
    pub fn to_text(&self) -> String {
        format!(
            "server={} tls-server-name={} ca={} insecure={}",
            self.server, self.tls_server_name, self.ca, self.insecure
        )
    }

    /// Read back from `to_text`; `None` for anything else (a hand-edited value).
    pub fn parse(text: &str) -> Option<Stamp> {
        let mut fields: HashMap<&str, &str> = HashMap::new();
        for word in text.split_whitespace() {
            let (k, v) = word.split_once('=')?;
            fields.insert(k, v);
        }
        Some(Stamp {
            server: fields.get("server")?.to_string(),
            tls_server_name: fields.get("tls-server-name")?.to_string(),
            ca: fields.get("ca")?.to_string(),
            insecure: fields.get("insecure")?.parse().ok()?,
        })
    }

    /// What differs in `now` from this written stamp, in words; empty when nothing does.
    pub fn changes(&self, now: &Stamp) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.ca != now.ca {
            out.push("its certificate authority");
        }
        if self.tls_server_name != now.tls_server_name {
            out.push("the API server's TLS name");
        }
        if self.server != now.server {
            out.push("the local address of its API forward");
        }
        if self.insecure != now.insecure {
            out.push("insecure-skip-tls-verify");
        }
        out
    }
}

/// The exec environment of a written entry: its stamp and where it was written.
pub fn exec_env(stamp: &Stamp, written: &Written) -> Vec<HashMap<String, String>> {
    [
        (STAMP_ENV, stamp.to_text()),
        (WRITTEN_ENV, written.to_env()),
    ]
    .into_iter()
    .map(|(name, value)| {
        HashMap::from([
            ("name".to_string(), name.to_string()),
            ("value".to_string(), value),
        ])
    })
    .collect()
}

/// The command that writes the entry again, as it was written: `--write FILE` (with `--force`
/// for a default kubeconfig, which it then replaces) or `--merge --force` (its entry exists);
/// `paragon-admin kubeconfig --write FILE` when where is not known.
pub fn rerun(written: Option<&Written>, profile: &str, config: Option<&Path>) -> String {
    let mut words = vec!["paragon-admin".to_string(), "kubeconfig".to_string()];
    match written {
        Some(Written::File(path)) => {
            words.push("--write".to_string());
            words.push(quote(&path.display().to_string()).into_owned());
            if super::is_default(path) {
                words.push("--force".to_string());
            }
        }
        Some(Written::Merge) => words.extend(["--merge".to_string(), "--force".to_string()]),
        None => words.extend(["--write".to_string(), "FILE".to_string()]),
    }
    words.push("--profile".to_string());
    words.push(quote(profile).into_owned());
    if let Some(c) = config {
        words.push("--config".to_string());
        words.push(quote(&c.display().to_string()).into_owned());
    }
    words.join(" ")
}

fn short_hash(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(server: &str, ca: &str) -> Cluster {
        Cluster {
            server: Some(server.to_string()),
            certificate_authority_data: Some(ca.to_string()),
            tls_server_name: Some("api.internal".to_string()),
            ..Cluster::default()
        }
    }

    #[test]
    fn a_stamp_reads_back_and_names_what_changed() {
        let written = Stamp::of(&cluster("https://127.0.0.1:24000", "Q0E="));
        let text = written.to_text();
        assert!(!text.contains("Q0E="), "{text}");
        assert_eq!(Stamp::parse(&text), Some(written.clone()));
        assert!(written.changes(&written).is_empty());
        let new_ca = Stamp::of(&cluster("https://127.0.0.1:24000", "TkVX"));
        assert_eq!(written.changes(&new_ca), ["its certificate authority"]);
        let moved = Stamp::of(&cluster("https://127.0.0.1:24001", "Q0E="));
        assert_eq!(
            written.changes(&moved),
            ["the local address of its API forward"]
        );
        assert_eq!(Stamp::parse("whatever"), None);
        assert_eq!(Stamp::parse("server=x"), None);
    }

    #[test]
    fn where_it_was_written_reads_back() {
        for w in [Written::File("/home/u/.kube/p".into()), Written::Merge] {
            assert_eq!(Written::from_env(&w.to_env()), Some(w.clone()));
        }
        assert_eq!(Written::from_env(""), None);
        let env = exec_env(&Stamp::of(&Cluster::default()), &Written::Merge);
        assert_eq!(
            rerun(
                Some(&Written::File("/tmp/my kc".into())),
                "prod",
                Some(Path::new("/etc/p.toml"))
            ),
            "paragon-admin kubeconfig --write '/tmp/my kc' --profile prod --config /etc/p.toml"
        );
        assert_eq!(
            rerun(Some(&Written::Merge), "prod", None),
            "paragon-admin kubeconfig --merge --force --profile prod"
        );
        assert_eq!(env[0]["name"], STAMP_ENV);
        assert_eq!(env[1]["value"], "--merge");
    }
}
