//! User certificates: where OpenSSH finds one for an identity (the profile's
//! `certificate_file`, else `KEY-cert.pub` beside the key), reading it with the file named in
//! every error, a one-line description (key id, serial, principals, validity) for `-v` and
//! `profiles`, and whether it can be offered now (a user certificate, in its validity, for
//! this very key). Knows nothing of the network.

use std::path::{Path, PathBuf};

use russh::keys::ssh_key::Certificate;
use russh::keys::ssh_key::certificate::CertType;
use russh::keys::ssh_key::public::KeyData;

use super::host_cert::format_time;

/// The most a certificate file may hold (a certificate is a few KiB at most).
const MAX_CERT_FILE_SIZE: u64 = 256 * 1024;

/// The certificate file for `identity`: `configured` when given, else `IDENTITY-cert.pub`
/// when it exists (OpenSSH's default `CertificateFile`).
pub fn certificate_path(identity: &Path, configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(c) = configured {
        return Some(c.to_path_buf());
    }
    let mut beside = identity.as_os_str().to_owned();
    beside.push("-cert.pub");
    let beside = PathBuf::from(beside);
    beside.is_file().then_some(beside)
}

/// The certificate file a session authenticated with: the kept connection renews its session
/// from that file when a newer certificate appears there before this one expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InUse {
    pub path: PathBuf,
    /// Seconds since the epoch at which the certificate stops working.
    pub valid_before: u64,
}

/// When a certificate that ends at `valid_before` stops working, as of `now`: `expires in
/// 12m`, or `expired 3m ago: run ...` with what gets a new one.
pub fn expiry(valid_before: u64, now: u64) -> String {
    let span = |secs: u64| match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    };
    if valid_before == u64::MAX {
        "never expires".to_string()
    } else if now < valid_before {
        format!("expires in {}", span(valid_before - now))
    } else {
        format!(
            "expired {} ago: run `paragon-admin access grant` or get a new certificate",
            span(now - valid_before)
        )
    }
}

/// Reads an OpenSSH certificate file (`TYPE-cert-v01@openssh.com BASE64 comment`).
pub fn read(path: &Path) -> Result<Certificate, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("it is not a file".to_string());
    }
    if meta.len() > MAX_CERT_FILE_SIZE {
        return Err("it is too large for a certificate".to_string());
    }
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    Certificate::from_openssh(text.trim())
        .map_err(|e| format!("it is not an OpenSSH certificate ({e})"))
}

/// `key id "alice", serial 3, principals ops, valid 2026-12-07T03:00:00Z to 2026-12-07T11:00:00Z`.
pub fn describe(cert: &Certificate) -> String {
    let principals = if cert.valid_principals().is_empty() {
        "any".to_string()
    } else {
        cert.valid_principals().join(",")
    };
    format!(
        "key id \"{}\", serial {}, principals {principals}, valid {} to {}",
        cert.key_id(),
        cert.serial(),
        format_time(cert.valid_after()),
        format_time(cert.valid_before())
    )
}

/// Seconds since the epoch now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Why `cert` cannot be offered for `key` at `now`, if it cannot.
pub fn unusable(cert: &Certificate, key: Option<&KeyData>, now: u64) -> Option<String> {
    if cert.cert_type() != CertType::User {
        return Some("it is a host certificate, not a user one".to_string());
    }
    if let Some(k) = key
        && cert.public_key() != k
    {
        return Some("it certifies another key than the identity's".to_string());
    }
    if now < cert.valid_after() {
        return Some(format!(
            "it is not valid before {}",
            format_time(cert.valid_after())
        ));
    }
    if now >= cert.valid_before() {
        return Some(format!(
            "it expired at {}",
            format_time(cert.valid_before())
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::ssh_key::certificate::Builder;
    use russh::keys::ssh_key::{Algorithm, PrivateKey};

    fn key() -> PrivateKey {
        PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519).unwrap()
    }

    fn user_cert(ca: &PrivateKey, k: &PrivateKey, after: u64, before: u64) -> Certificate {
        let mut b = Builder::new_with_random_nonce(
            &mut russh::keys::key::safe_rng(),
            k.public_key(),
            after,
            before,
        )
        .unwrap();
        b.cert_type(CertType::User).unwrap();
        b.key_id("alice").unwrap();
        b.serial(3).unwrap();
        b.valid_principal("ops").unwrap();
        b.sign(ca).unwrap()
    }

    #[test]
    fn expiry_says_when_a_certificate_stops_working_and_what_to_do_after() {
        assert_eq!(expiry(1000 + 12 * 60, 1000), "expires in 12m");
        assert_eq!(expiry(1000 + 30, 1000), "expires in 30s");
        assert_eq!(
            expiry(1000, 1000 + 3 * 60),
            "expired 3m ago: run `paragon-admin access grant` or get a new certificate"
        );
        assert_eq!(expiry(u64::MAX, 1000), "never expires");
    }

    #[test]
    fn a_certificate_says_its_id_principals_and_validity() {
        let (ca, k) = (key(), key());
        let c = user_cert(&ca, &k, 0, u64::MAX);
        assert_eq!(
            describe(&c),
            "key id \"alice\", serial 3, principals ops, valid 1970-01-01T00:00:00Z to forever"
        );
    }

    #[test]
    fn expired_early_and_foreign_certificates_are_not_offered() {
        let (ca, k, other) = (key(), key(), key());
        let c = user_cert(&ca, &k, 100, 200);
        assert_eq!(unusable(&c, Some(k.public_key().key_data()), 150), None);
        assert!(
            unusable(&c, Some(k.public_key().key_data()), 200)
                .unwrap()
                .contains("expired")
        );
        assert!(unusable(&c, None, 99).unwrap().contains("not valid before"));
        assert!(
            unusable(&c, Some(other.public_key().key_data()), 150)
                .unwrap()
                .contains("another key")
        );
    }

    #[test]
    fn the_configured_file_wins_over_the_one_beside_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let id = dir.path().join("id_ed25519");
        assert_eq!(certificate_path(&id, None), None);
        std::fs::write(dir.path().join("id_ed25519-cert.pub"), "x").unwrap();
        assert_eq!(
            certificate_path(&id, None),
            Some(dir.path().join("id_ed25519-cert.pub"))
        );
        let set = dir.path().join("mine.pub");
        assert_eq!(certificate_path(&id, Some(&set)), Some(set));
    }
}
