//! Host certificates against known_hosts' `@cert-authority` lines, as OpenSSH's
//! `check_host_key` (sshconnect.c) and `sshkey_cert_check_host` (sshkey.c) decide.
//!
//! Pure: the caller gives the parsed known_hosts and the time. A certificate is trusted when
//! an `@cert-authority` line for the host names its signer, its signature holds, it is a host
//! certificate valid now, it lists the dialled name among its principals (principals may be
//! patterns), it carries no critical option and is not signed with SHA-1 RSA. An `@revoked`
//! line for the certificate's key or for its CA refuses it outright; every other refusal lets
//! the caller fall back to the plain key inside, as OpenSSH does.

use std::fmt;

use russh::keys::ssh_key::certificate::CertType;
use russh::keys::ssh_key::{Algorithm, Certificate, HashAlg, PublicKey};

use super::known_hosts::{KnownHosts, Marker, fingerprint, host_name};
use crate::openssh::match_pattern;

/// What known_hosts says about a host certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertVerdict {
    /// Signed by the CA of this `@cert-authority` line and valid for the host.
    Trusted { line: usize },
    /// The certificate's key, or its CA, is `@revoked` on this line: no fallback.
    Revoked { line: usize, what: Revoked },
    /// Not trusted as a certificate; the plain key may still be (OpenSSH retries with it).
    Refused(Refusal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    HostKey,
    Authority,
}

/// Why a host certificate was not trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No `@cert-authority` line names the host.
    NoAuthority {
        ca: String,
    },
    /// `@cert-authority` lines name the host, but none is the certificate's signer.
    UnknownAuthority {
        ca: String,
        line: usize,
    },
    /// The CA's signature over the certificate does not verify.
    BadSignature {
        ca: String,
    },
    NotHostCertificate,
    NotYetValid {
        valid_after: u64,
    },
    Expired {
        valid_before: u64,
    },
    NoPrincipals,
    WrongPrincipal {
        name: String,
        principals: Vec<String>,
    },
    CriticalOptions,
    /// Signed with `ssh-rsa` (SHA-1), which OpenSSH's CASignatureAlgorithms leaves out.
    WeakSignature,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoAuthority { ca } => {
                write!(
                    f,
                    "its CA {ca} is unknown: no @cert-authority line names this host"
                )
            }
            Refusal::UnknownAuthority { ca, line } => write!(
                f,
                "its CA {ca} is unknown: the @cert-authority line for this host (line {line}) names another CA"
            ),
            Refusal::BadSignature { ca } => write!(f, "its signature by CA {ca} does not verify"),
            Refusal::NotHostCertificate => write!(f, "it is a user certificate, not a host one"),
            Refusal::NotYetValid { valid_after } => {
                write!(f, "it is not valid before {}", format_time(*valid_after))
            }
            Refusal::Expired { valid_before } => {
                write!(f, "it expired at {}", format_time(*valid_before))
            }
            Refusal::NoPrincipals => write!(f, "it lists no principals"),
            Refusal::WrongPrincipal { name, principals } => write!(
                f,
                "{name} is not among its principals ({})",
                principals.join(", ")
            ),
            Refusal::CriticalOptions => write!(f, "it carries critical options"),
            Refusal::WeakSignature => {
                write!(
                    f,
                    "its CA signed it with ssh-rsa (SHA-1), which is not accepted"
                )
            }
        }
    }
}

/// A certificate time as OpenSSH prints it (UTC here), `forever` for the largest.
pub fn format_time(secs: u64) -> String {
    if secs == u64::MAX {
        return "forever".to_string();
    }
    let Ok(secs) = i64::try_from(secs) else {
        return "forever".to_string();
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-date for the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Decides `cert` for `host:port` at `now` (seconds since the epoch). The CA lines are
/// those for `[host]:port` (or `host` on 22); when none name it on another port, those for
/// the bare host, as OpenSSH's "checking without port identifier".
pub fn check(
    known: &KnownHosts,
    host: &str,
    port: u16,
    cert: &Certificate,
    now: u64,
) -> CertVerdict {
    let verdict = check_name(known, &host_name(host, port), host, cert, now);
    if port != 22
        && let CertVerdict::Refused(Refusal::NoAuthority { .. }) = verdict
    {
        return check_name(known, &host_name(host, 22), host, cert, now);
    }
    verdict
}

fn check_name(
    known: &KnownHosts,
    name: &str,
    host: &str,
    cert: &Certificate,
    now: u64,
) -> CertVerdict {
    let ca = PublicKey::new(cert.signature_key().clone(), "");
    let ca_fp = fingerprint(&ca);
    let matching = || known.entries.iter().filter(|e| e.matches(name.as_bytes()));
    for e in matching().filter(|e| e.marker == Marker::Revoked) {
        if e.key.key_data() == cert.public_key() {
            return CertVerdict::Revoked {
                line: e.line,
                what: Revoked::HostKey,
            };
        }
        if e.key.key_data() == cert.signature_key() {
            return CertVerdict::Revoked {
                line: e.line,
                what: Revoked::Authority,
            };
        }
    }
    let mut other_ca = None;
    let mut trusted = None;
    for e in matching().filter(|e| e.marker == Marker::CertAuthority) {
        if e.key.key_data() == cert.signature_key() {
            trusted = Some(e.line);
            break;
        }
        other_ca = Some(e.line);
    }
    let Some(line) = trusted else {
        return CertVerdict::Refused(match other_ca {
            Some(line) => Refusal::UnknownAuthority { ca: ca_fp, line },
            None => Refusal::NoAuthority { ca: ca_fp },
        });
    };
    match check_host(cert, &host.to_ascii_lowercase(), now, &ca) {
        Ok(()) => CertVerdict::Trusted { line },
        Err(r) => CertVerdict::Refused(r),
    }
}

/// sshkey.c's `sshkey_cert_check_host`, plus the signature (which OpenSSH checks on
/// reading the certificate).
fn check_host(cert: &Certificate, name: &str, now: u64, ca: &PublicKey) -> Result<(), Refusal> {
    if cert.cert_type() != CertType::Host {
        return Err(Refusal::NotHostCertificate);
    }
    if now < cert.valid_after() {
        return Err(Refusal::NotYetValid {
            valid_after: cert.valid_after(),
        });
    }
    if now >= cert.valid_before() {
        return Err(Refusal::Expired {
            valid_before: cert.valid_before(),
        });
    }
    let principals = cert.valid_principals();
    if principals.is_empty() {
        return Err(Refusal::NoPrincipals);
    }
    if !principals
        .iter()
        .any(|p| match_pattern(name.as_bytes(), p.as_bytes()))
    {
        return Err(Refusal::WrongPrincipal {
            name: name.to_string(),
            principals: principals.to_vec(),
        });
    }
    if !cert.critical_options().is_empty() {
        return Err(Refusal::CriticalOptions);
    }
    if cert.signature().algorithm() == (Algorithm::Rsa { hash: None }) {
        return Err(Refusal::WeakSignature);
    }
    // Time and CA were checked above, so a failure here is the signature.
    cert.validate_at(now, [&ca.fingerprint(HashAlg::Sha256)])
        .map_err(|_| Refusal::BadSignature {
            ca: fingerprint(ca),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::ssh_key::certificate::Builder;
    use russh::keys::ssh_key::{LineEnding, PrivateKey};

    const NOW: u64 = 1_800_000_000;

    fn key() -> PrivateKey {
        PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519).unwrap()
    }

    fn cert(
        ca: &PrivateKey,
        host: &PrivateKey,
        principals: &[&str],
        after: u64,
        before: u64,
    ) -> Certificate {
        let mut b = Builder::new_with_random_nonce(
            &mut russh::keys::key::safe_rng(),
            host.public_key(),
            after,
            before,
        )
        .unwrap();
        b.cert_type(CertType::Host).unwrap();
        b.key_id("h").unwrap();
        for p in principals {
            b.valid_principal(*p).unwrap();
        }
        b.sign(ca).unwrap()
    }

    fn line(marker: &str, hosts: &str, k: &PrivateKey) -> String {
        format!(
            "{marker} {hosts} {}\n",
            k.public_key().to_openssh().unwrap()
        )
    }

    #[test]
    fn a_listed_ca_valid_now_for_the_dialled_name_is_trusted() {
        let (ca, host) = (key(), key());
        let c = cert(&ca, &host, &["bastion.example.com"], NOW - 10, NOW + 10);
        let kh = KnownHosts::parse(line("@cert-authority", "*.example.com", &ca).as_bytes());
        assert_eq!(
            check(&kh, "Bastion.example.com", 22, &c, NOW),
            CertVerdict::Trusted { line: 1 }
        );
        let _ = LineEnding::LF;
    }

    #[test]
    fn principal_patterns_match_as_in_openssh() {
        let (ca, host) = (key(), key());
        let c = cert(&ca, &host, &["*.example.com"], 0, u64::MAX);
        let kh = KnownHosts::parse(line("@cert-authority", "*", &ca).as_bytes());
        assert_eq!(
            check(&kh, "b.example.com", 22, &c, NOW),
            CertVerdict::Trusted { line: 1 }
        );
        assert!(matches!(
            check(&kh, "b.example.org", 22, &c, NOW),
            CertVerdict::Refused(Refusal::WrongPrincipal { .. })
        ));
    }

    #[test]
    fn expiry_and_not_yet_valid_are_told_apart() {
        let (ca, host) = (key(), key());
        let kh = KnownHosts::parse(line("@cert-authority", "*", &ca).as_bytes());
        let old = cert(&ca, &host, &["b"], NOW - 100, NOW);
        assert_eq!(
            check(&kh, "b", 22, &old, NOW),
            CertVerdict::Refused(Refusal::Expired { valid_before: NOW })
        );
        let early = cert(&ca, &host, &["b"], NOW + 1, NOW + 100);
        assert!(matches!(
            check(&kh, "b", 22, &early, NOW),
            CertVerdict::Refused(Refusal::NotYetValid { .. })
        ));
    }

    #[test]
    fn an_unknown_ca_is_named_and_a_revoked_ca_or_key_wins() {
        let (ca, other, host) = (key(), key(), key());
        let c = cert(&ca, &host, &["b"], 0, u64::MAX);
        let none = KnownHosts::parse(b"");
        assert!(matches!(
            check(&none, "b", 22, &c, NOW),
            CertVerdict::Refused(Refusal::NoAuthority { .. })
        ));
        let wrong = KnownHosts::parse(line("@cert-authority", "b", &other).as_bytes());
        assert!(matches!(
            check(&wrong, "b", 22, &c, NOW),
            CertVerdict::Refused(Refusal::UnknownAuthority { line: 1, .. })
        ));
        let text = line("@cert-authority", "*", &ca) + &line("@revoked", "*", &ca);
        assert_eq!(
            check(&KnownHosts::parse(text.as_bytes()), "b", 22, &c, NOW),
            CertVerdict::Revoked {
                line: 2,
                what: Revoked::Authority
            }
        );
        let text = line("@cert-authority", "*", &ca) + &line("@revoked", "b", &host);
        assert_eq!(
            check(&KnownHosts::parse(text.as_bytes()), "b", 22, &c, NOW),
            CertVerdict::Revoked {
                line: 2,
                what: Revoked::HostKey
            }
        );
    }

    #[test]
    fn a_bare_host_ca_serves_other_ports_and_a_ported_one_only_its_port() {
        let (ca, host) = (key(), key());
        let c = cert(&ca, &host, &["b"], 0, u64::MAX);
        let bare = KnownHosts::parse(line("@cert-authority", "b", &ca).as_bytes());
        assert_eq!(
            check(&bare, "b", 2222, &c, NOW),
            CertVerdict::Trusted { line: 1 }
        );
        let ported = KnownHosts::parse(line("@cert-authority", "[b]:2222", &ca).as_bytes());
        assert!(matches!(
            check(&ported, "b", 22, &c, NOW),
            CertVerdict::Refused(_)
        ));
    }

    #[test]
    fn a_user_certificate_is_not_a_host_certificate() {
        let (ca, host) = (key(), key());
        let mut b = Builder::new_with_random_nonce(
            &mut russh::keys::key::safe_rng(),
            host.public_key(),
            0,
            u64::MAX,
        )
        .unwrap();
        b.cert_type(CertType::User).unwrap();
        b.valid_principal("b").unwrap();
        let c = b.sign(&ca).unwrap();
        let kh = KnownHosts::parse(line("@cert-authority", "*", &ca).as_bytes());
        assert_eq!(
            check(&kh, "b", 22, &c, NOW),
            CertVerdict::Refused(Refusal::NotHostCertificate)
        );
    }

    #[test]
    fn times_print_as_utc() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(1_800_000_000), "2027-01-15T08:00:00Z");
        assert_eq!(format_time(u64::MAX), "forever");
    }
}
