//! Host-key policy: decides whether a server's key is trusted, outside the SSH handler.
//!
//! A recorded key is accepted; a revoked or changed key is refused under every policy with
//! known_hosts left untouched; an unknown key is refused (`yes`), recorded (`accept-new`), or
//! put to the person at the terminal (`ask`, refused without a terminal). As in OpenSSH, a
//! host name that is a pattern is never recorded, and a key that was accepted but cannot be
//! recorded (a read-only known_hosts) is used for this connection with a warning.
//!
//! A host certificate that an `@cert-authority` line vouches for (`host_cert`) is accepted
//! under every policy without a line of its own; one that is revoked is refused; any other
//! (expired, wrong principal, unknown CA) is said, and its plain key then follows the rules
//! above, as OpenSSH's `check_host_key` retries with the plain key.

use std::path::PathBuf;
use std::sync::Arc;

use russh::keys::PublicKeyOrCertificate;
use russh::keys::ssh_key::{Algorithm, Certificate, PublicKey};
use tokio::sync::watch;
use tracing::{info, warn};

use super::host_cert::{self, CertVerdict, Refusal, Revoked};
use super::known_hosts::{self, KnownHostsError, Verdict, fingerprint};
use crate::config::HostKeyPolicy;

#[derive(Debug, thiserror::Error)]
pub enum HostKeyError {
    #[error(
        "host key for {name} has CHANGED: {}:{line} records {recorded}, the server offered {offered}; \
this may be someone in the middle, or a reinstalled host: check the new key out of band, then remove \
the old one with `ssh-keygen -R '{name}' -f {}`", .known_hosts.display(), .known_hosts.display()
    )]
    Changed {
        name: String,
        known_hosts: PathBuf,
        line: usize,
        recorded: String,
        offered: String,
    },
    #[error("host key {offered} of {name} is marked @revoked in {}:{line}: refusing to connect", .known_hosts.display())]
    Revoked {
        name: String,
        known_hosts: PathBuf,
        line: usize,
        offered: String,
    },
    #[error(transparent)]
    Unknown(Box<UnknownHostKey>),
    #[error("host key {offered} of {name} was not accepted")]
    Declined { name: String, offered: String },
    #[error(transparent)]
    Certificate(Box<RefusedCertificate>),
    #[error("host certificate of {name} ({id}) is marked @revoked in {}:{line} ({what}): refusing to connect", .known_hosts.display())]
    CertificateRevoked {
        name: String,
        id: String,
        known_hosts: PathBuf,
        line: usize,
        what: &'static str,
    },
    #[error(transparent)]
    KnownHosts(#[from] KnownHostsError),
    #[error(
        "host key {offered} of {name} is not in {} and the host name is a pattern (it holds one of @?*#[]|'\"\\,! or a blank): refusing to record a wildcard; connect by the host's own name", .known_hosts.display()
    )]
    NotRecordable {
        name: String,
        known_hosts: PathBuf,
        offered: String,
    },
    #[error("cannot ask about the host key of {name}: {reason}")]
    Prompt { name: String, reason: String },
}

impl crate::exit::ExitStatus for HostKeyError {
    /// The bastion could not be verified: OpenSSH's 255.
    fn exit_status(&self) -> u8 {
        crate::exit::UNREACHABLE
    }
}

/// An unknown host key that the policy refused, with how to verify and accept it.
#[derive(Debug, thiserror::Error)]
#[error(
    "host key of {name} is not in {} ({policy}): the server offered {key_type} {offered}; \
verify it on the host (`ssh-keyscan -p {port} {host} | ssh-keygen -lf -` from a trusted network, \
or `ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` there), then rerun on a terminal to accept it, \
or set strict_host_key_checking = \"accept-new\" in profile `{profile}`", .known_hosts.display()
)]
pub struct UnknownHostKey {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub known_hosts: PathBuf,
    pub policy: &'static str,
    pub key_type: String,
    pub offered: String,
    pub profile: String,
}

/// A host certificate that was not trusted, and why its plain key was not either.
#[derive(Debug, thiserror::Error)]
#[error(
    "host certificate of {name} ({id}) is refused: {reason}; and its key is not trusted by itself either: {plain}"
)]
pub struct RefusedCertificate {
    pub name: String,
    /// The certificate's key id and serial, as OpenSSH logs them.
    pub id: String,
    pub reason: Refusal,
    pub plain: HostKeyError,
}

/// The policy for one host: where its keys are recorded and what to do with a new one.
pub struct HostKeyCheck {
    pub host: String,
    pub port: u16,
    pub known_hosts: PathBuf,
    pub policy: HostKeyPolicy,
    /// Whether new lines are hashed (`HashKnownHosts yes`).
    pub hash: bool,
    pub profile: String,
    /// Set while a person is answering, so that the connect deadline pauses.
    pub prompting: Arc<watch::Sender<bool>>,
    /// The key or certificate this check accepted, to check again later (`recheck`).
    pub accepted: std::sync::Mutex<Option<Accepted>>,
}

/// A host key or certificate as accepted.
#[derive(Clone)]
pub enum Accepted {
    Key(PublicKey),
    Certificate(Box<Certificate>),
}

impl HostKeyCheck {
    fn name(&self) -> String {
        known_hosts::host_name(&self.host, self.port)
    }

    /// The key types known_hosts records for this host (unreadable file: none).
    pub fn recorded_algorithms(&self) -> Vec<Algorithm> {
        known_hosts::load(&self.known_hosts)
            .map(|k| k.algorithms_for(&self.host, self.port))
            .unwrap_or_default()
    }

    /// Accepts the server's key or certificate, or says why not.
    pub async fn verify(&self, offered: &PublicKeyOrCertificate) -> Result<(), HostKeyError> {
        match offered {
            PublicKeyOrCertificate::PublicKey { key, .. } => self.verify_key(key).await?,
            PublicKeyOrCertificate::Certificate(cert) => self.verify_certificate(cert).await?,
        }
        if let Ok(mut a) = self.accepted.lock() {
            *a = Some(match offered {
                PublicKeyOrCertificate::PublicKey { key, .. } => Accepted::Key(key.clone()),
                PublicKeyOrCertificate::Certificate(c) => {
                    Accepted::Certificate(Box::new(c.clone()))
                }
            });
        }
        Ok(())
    }

    /// Checks the key accepted at connect time against known_hosts as it is now, for a
    /// session that lives on: the error a new connection would give when the key (or its
    /// certificate or CA) has since been marked `@revoked`, another key is now recorded for
    /// the host, or (under `strict_host_key_checking = yes` only) its line was removed.
    /// Lines about other hosts change nothing; neither does a known_hosts that cannot be
    /// read now.
    pub fn recheck(&self) -> Result<(), HostKeyError> {
        let Some(offered) = self.accepted.lock().ok().and_then(|a| a.clone()) else {
            return Ok(());
        };
        let Ok(recorded) = known_hosts::load(&self.known_hosts) else {
            return Ok(());
        };
        let key = match &offered {
            Accepted::Key(key) => key.clone(),
            Accepted::Certificate(cert) => {
                let now = super::user_cert::now();
                match host_cert::check(&recorded, &self.host, self.port, cert, now) {
                    CertVerdict::Trusted { .. } => return Ok(()),
                    CertVerdict::Revoked { line, what } => {
                        return Err(self.certificate_revoked(cert, line, what));
                    }
                    CertVerdict::Refused(_) => PublicKey::new(cert.public_key().clone(), ""),
                }
            }
        };
        match recorded.check(&self.host, self.port, &key) {
            v @ (Verdict::Revoked { .. } | Verdict::Changed { .. }) => Err(self.refusal(&key, v)),
            // Its line removed: a new connection would be refused only under `yes`.
            Verdict::Unknown if self.policy == HostKeyPolicy::Yes => {
                Err(self.unknown(&key, "strict_host_key_checking = yes"))
            }
            _ => Ok(()),
        }
    }

    fn certificate_revoked(&self, cert: &Certificate, line: usize, what: Revoked) -> HostKeyError {
        HostKeyError::CertificateRevoked {
            name: self.name(),
            id: format!("key id \"{}\", serial {}", cert.key_id(), cert.serial()),
            known_hosts: self.known_hosts.clone(),
            line,
            what: match what {
                Revoked::HostKey => "its host key",
                Revoked::Authority => "its CA",
            },
        }
    }

    /// The refusal of `key` for a revoked or changed verdict.
    fn refusal(&self, key: &PublicKey, v: Verdict) -> HostKeyError {
        match v {
            Verdict::Changed { line, recorded } => HostKeyError::Changed {
                name: self.name(),
                known_hosts: self.known_hosts.clone(),
                line,
                recorded: format!("{} {}", recorded.algorithm(), fingerprint(&recorded)),
                offered: format!("{} {}", key.algorithm(), fingerprint(key)),
            },
            Verdict::Revoked { line } => HostKeyError::Revoked {
                name: self.name(),
                known_hosts: self.known_hosts.clone(),
                line,
                offered: fingerprint(key),
            },
            _ => HostKeyError::Declined {
                name: self.name(),
                offered: fingerprint(key),
            },
        }
    }

    /// A host certificate: trusted through an `@cert-authority` line under every policy;
    /// refused outright when revoked; otherwise, as OpenSSH does, the plain key inside goes
    /// through the plain-key rules, and the certificate's fault is said either way.
    async fn verify_certificate(&self, cert: &Certificate) -> Result<(), HostKeyError> {
        let recorded = known_hosts::load(&self.known_hosts)?;
        let id = format!("key id \"{}\", serial {}", cert.key_id(), cert.serial());
        let now = super::user_cert::now();
        let reason = match host_cert::check(&recorded, &self.host, self.port, cert, now) {
            CertVerdict::Trusted { line } => {
                info!(
                    "host certificate {id} of {} signed by the CA of {}:{line}, valid until {}",
                    self.name(),
                    self.known_hosts.display(),
                    host_cert::format_time(cert.valid_before())
                );
                return Ok(());
            }
            CertVerdict::Revoked { line, what } => {
                return Err(self.certificate_revoked(cert, line, what));
            }
            CertVerdict::Refused(reason) => reason,
        };
        let key = PublicKey::new(cert.public_key().clone(), "");
        if matches!(reason, Refusal::NoAuthority { .. }) {
            info!(
                "host certificate {id} of {}: {reason}; checking its key",
                self.name()
            );
        } else {
            warn!(
                "host certificate {id} of {} is refused: {reason}; checking its key",
                self.name()
            );
        }
        self.verify_key(&key).await.map_err(|plain| {
            HostKeyError::Certificate(Box::new(RefusedCertificate {
                name: self.name(),
                id,
                reason,
                plain,
            }))
        })
    }

    async fn verify_key(&self, key: &PublicKey) -> Result<(), HostKeyError> {
        let recorded = known_hosts::load(&self.known_hosts)?;
        match recorded.check(&self.host, self.port, key) {
            Verdict::Known { line } => {
                info!(
                    "host key {} matches {}:{line}",
                    fingerprint(key),
                    self.known_hosts.display()
                );
                Ok(())
            }
            v @ (Verdict::Revoked { .. } | Verdict::Changed { .. }) => Err(self.refusal(key, v)),
            Verdict::Unknown => self.decide_unknown(key).await,
        }
    }

    async fn decide_unknown(&self, key: &PublicKey) -> Result<(), HostKeyError> {
        if self.policy == HostKeyPolicy::Yes {
            return Err(self.unknown(key, "strict_host_key_checking = yes"));
        }
        if !known_hosts::recordable(&self.host) {
            return Err(HostKeyError::NotRecordable {
                name: self.name(),
                known_hosts: self.known_hosts.clone(),
                offered: fingerprint(key),
            });
        }
        match self.policy {
            HostKeyPolicy::Yes => Err(self.unknown(key, "strict_host_key_checking = yes")),
            HostKeyPolicy::AcceptNew => {
                self.record(key);
                Ok(())
            }
            HostKeyPolicy::Ask => {
                if !crate::prompt::interactive() {
                    return Err(self.unknown(key, "no terminal to ask on"));
                }
                if self.ask(key).await? {
                    self.record(key);
                    Ok(())
                } else {
                    Err(HostKeyError::Declined {
                        name: self.name(),
                        offered: fingerprint(key),
                    })
                }
            }
        }
    }

    fn unknown(&self, key: &PublicKey, policy: &'static str) -> HostKeyError {
        HostKeyError::Unknown(Box::new(UnknownHostKey {
            name: self.name(),
            host: self.host.clone(),
            port: self.port,
            known_hosts: self.known_hosts.clone(),
            policy,
            key_type: key.algorithm().to_string(),
            offered: fingerprint(key),
            profile: self.profile.clone(),
        }))
    }

    /// Records an accepted key. A failure is said and the connection goes on, as OpenSSH
    /// does ("Failed to add the host to the list of known hosts"): the key was accepted.
    fn record(&self, key: &PublicKey) {
        // `known_hosts = "/dev/null"` (OpenSSH's way to remember nothing): the write would
        // succeed and record nothing, so saying "permanently added" would be untrue.
        if std::fs::metadata(&self.known_hosts).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
            tracing::info!(
                "{} is not a file: the key of {} is trusted for this connection only",
                self.known_hosts.display(),
                self.name()
            );
            return;
        }
        let recorded = known_hosts::entry_line(&self.host, self.port, key, self.hash)
            .and_then(|line| known_hosts::append(&self.known_hosts, &line));
        match recorded {
            Ok(()) => warn!(
                "permanently added {} ({} {}) to {}",
                self.name(),
                key.algorithm(),
                fingerprint(key),
                self.known_hosts.display()
            ),
            Err(e) => warn!("{e}; the key is trusted for this connection only"),
        }
    }

    async fn ask(&self, key: &PublicKey) -> Result<bool, HostKeyError> {
        let question = format!(
            "The authenticity of host {} can't be established.\n{} key fingerprint is {}.\nRecord it in {} and continue connecting",
            self.name(),
            key.algorithm(),
            fingerprint(key),
            self.known_hosts.display()
        );
        let hint = "set strict_host_key_checking = \"accept-new\" to record new keys".to_string();
        self.prompting.send_replace(true);
        let answer =
            tokio::task::spawn_blocking(move || crate::prompt::confirm(&question, false, &hint))
                .await;
        self.prompting.send_replace(false);
        match answer {
            Ok(Ok(yes)) => Ok(yes),
            Ok(Err(e)) => Err(HostKeyError::Prompt {
                name: self.name(),
                reason: e.to_string(),
            }),
            Err(e) => Err(HostKeyError::Prompt {
                name: self.name(),
                reason: e.to_string(),
            }),
        }
    }
}
