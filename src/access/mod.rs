//! Access without shared keys: OpenSSH certificate authorities, grants (signed user
//! certificates), signed host keys, the local ledger of what was signed, and the key
//! revocation list for the bastion's `RevokedKeys`.
//!
//! A CA's private key is stored encrypted (OpenSSH format, bcrypt-pbkdf + AES-256-CTR) in the
//! config folder; its random passphrase lives only in the keyring (`access/NAME/ca-passphrase`).
//! Certificates are built and signed with the RustCrypto `ssh-key` crate. Knows nothing of
//! clap, SSH sessions or printing.

pub mod krl;
mod time;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use russh::keys::ssh_key::certificate::{Builder, CertType};
use russh::keys::ssh_key::{Algorithm, Certificate, HashAlg, LineEnding, PrivateKey, PublicKey};
use serde::{Deserialize, Serialize};

use crate::files::{Access, WriteError, write_atomic};
use crate::secrets::{self, Secret, SecretError};

pub use time::parse_duration;

/// The command a read-only grant forces; the bastion image provides it (it allows only read
/// verbs of kubectl and helm).
pub const READ_ONLY_COMMAND: &str = "paragon-read-only";
/// A grant starts this long before it is signed, for clocks a little behind ours.
const CLOCK_SKEW: u64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("no config folder: set XDG_CONFIG_HOME or HOME")]
    NoConfigDir,
    #[error(
        "CA name `{0}` is not valid: use letters, digits, `.`, `_` and `-` (at most 64, not starting with `.` or `-`)"
    )]
    BadName(String),
    #[error("CA `{name}` already exists in {}: choose another name", .dir.display())]
    Exists { name: String, dir: PathBuf },
    #[error("no CA named `{name}` in {}: run `paragon-admin access ca init {name}`", .dir.display())]
    NoCa { name: String, dir: PathBuf },
    #[error("CA `{name}` is a {is} CA; this needs a {wanted} CA")]
    WrongKind {
        name: String,
        is: &'static str,
        wanted: &'static str,
    },
    #[error("several CAs exist ({0}): name one with --ca")]
    WhichCa(String),
    #[error("no CA exists: run `paragon-admin access ca init NAME`")]
    NoCas,
    #[error("cannot read {}: {cause}", .path.display())]
    Read { path: PathBuf, cause: String },
    #[error(
        "the passphrase of CA `{name}` is not in the keyring (secret `{secret}`): the CA cannot sign here"
    )]
    NoPassphrase { name: String, secret: String },
    #[error("the CA key {} does not open with its keyring passphrase (secret `{secret}`)", .path.display())]
    WrongPassphrase { path: PathBuf, secret: String },
    #[error("{} is not an OpenSSH public key: {cause}", .path.display())]
    BadPublicKey { path: PathBuf, cause: String },
    #[error("cannot sign the certificate: {0}")]
    Sign(String),
    #[error("no grant has serial or key id `{0}` in the ledger (`paragon-admin access list`)")]
    NoGrant(String),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Write(#[from] WriteError),
}

impl crate::exit::ExitStatus for AccessError {
    fn exit_status(&self) -> u8 {
        match self {
            AccessError::Secret(e) => e.exit_status(),
            AccessError::Write(e) => e.exit_status(),
            AccessError::Sign(_) | AccessError::NoConfigDir => crate::exit::FAILED,
            _ => crate::exit::USAGE,
        }
    }
}

/// What a CA signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaKind {
    User,
    Host,
}

impl CaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CaKind::User => "user",
            CaKind::Host => "host",
        }
    }
}

/// One certificate signed, as the ledger keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Grant {
    pub serial: u64,
    pub key_id: String,
    pub kind: CaKind,
    pub ca: String,
    pub principals: Vec<String>,
    pub valid_after: u64,
    pub valid_before: u64,
    /// The certified key's SHA256 fingerprint.
    pub key: String,
    pub read_only: bool,
    pub revoked: bool,
}

/// What to sign.
pub struct Request<'a> {
    pub ca: Option<&'a str>,
    pub key: &'a Path,
    pub principals: &'a [String],
    pub valid_for: u64,
    pub key_id: Option<&'a str>,
    pub read_only: bool,
}

/// The folder holding the CAs, the ledger and the KRL: `CONFIG/paragon-admin/access`.
pub struct Store {
    pub dir: PathBuf,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The keyring secret that holds a CA's passphrase.
pub fn passphrase_secret(name: &str) -> String {
    format!("access/{name}/ca-passphrase")
}

fn validate_name(name: &str) -> Result<(), AccessError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(AccessError::BadName(name.to_string()))
    }
}

fn read_text(path: &Path) -> Result<String, AccessError> {
    std::fs::read_to_string(path).map_err(|e| AccessError::Read {
        path: path.to_path_buf(),
        cause: e.to_string(),
    })
}

impl Store {
    pub fn open() -> Result<Store, AccessError> {
        let dir = dirs::config_dir().ok_or(AccessError::NoConfigDir)?;
        Ok(Store {
            dir: dir.join("paragon-admin").join("access"),
        })
    }

    fn ca_path(&self, name: &str) -> PathBuf {
        self.dir.join("ca").join(name)
    }

    fn kind_path(&self, name: &str) -> PathBuf {
        self.dir.join("ca").join(format!("{name}.kind"))
    }

    fn ledger_path(&self) -> PathBuf {
        self.dir.join("ledger.json")
    }

    /// The KRL `revoke` writes, for the bastion's `RevokedKeys`.
    pub fn krl_path(&self) -> PathBuf {
        self.dir.join("revoked_keys.krl")
    }

    /// Makes an Ed25519 CA: its passphrase (random) into the keyring, then the encrypted key.
    pub fn init_ca(&self, name: &str, kind: CaKind) -> Result<PublicKey, AccessError> {
        validate_name(name)?;
        let path = self.ca_path(name);
        if path.exists() {
            return Err(AccessError::Exists {
                name: name.to_string(),
                dir: self.dir.join("ca"),
            });
        }
        let mut rng = russh::keys::key::safe_rng();
        let mut key = PrivateKey::random(&mut rng, Algorithm::Ed25519)
            .map_err(|e| AccessError::Sign(e.to_string()))?;
        key.set_comment(format!("paragon-admin {} CA {name}", kind.as_str()));
        let mut raw = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw)
            .map_err(|_| AccessError::Sign("the system gave no randomness".into()))?;
        let passphrase = Secret::new(base64::engine::general_purpose::STANDARD.encode(raw));
        secrets::set(&passphrase_secret(name), &passphrase)?;
        let encrypted = key
            .encrypt(&mut rng, passphrase.expose())
            .map_err(|e| AccessError::Sign(e.to_string()))?;
        let text = encrypted
            .to_openssh(LineEnding::LF)
            .map_err(|e| AccessError::Sign(e.to_string()))?;
        write_atomic(&path, text.as_bytes(), Access::Private)?;
        let public = key.public_key().to_openssh().unwrap_or_default();
        write_atomic(
            &path.with_extension("pub"),
            format!("{public}\n").as_bytes(),
            Access::Public,
        )?;
        write_atomic(
            &self.kind_path(name),
            kind.as_str().as_bytes(),
            Access::Private,
        )?;
        Ok(key.public_key().clone())
    }

    /// The CA names, sorted.
    pub fn cas(&self) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(self.dir.join("ca"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_str()?.to_string();
                n.strip_suffix(".kind").map(str::to_string)
            })
            .collect();
        out.sort();
        out
    }

    /// The CA `name`, else the only one.
    pub fn choose(&self, name: Option<&str>) -> Result<String, AccessError> {
        if let Some(n) = name {
            validate_name(n)?;
            return Ok(n.to_string());
        }
        let all = self.cas();
        match all.as_slice() {
            [] => Err(AccessError::NoCas),
            [one] => Ok(one.clone()),
            _ => Err(AccessError::WhichCa(all.join(", "))),
        }
    }

    /// A CA's public key and kind.
    pub fn ca(&self, name: &str) -> Result<(PublicKey, CaKind), AccessError> {
        let kind_path = self.kind_path(name);
        if !kind_path.exists() {
            return Err(AccessError::NoCa {
                name: name.to_string(),
                dir: self.dir.join("ca"),
            });
        }
        let kind = match read_text(&kind_path)?.trim() {
            "host" => CaKind::Host,
            _ => CaKind::User,
        };
        let pub_path = self.ca_path(name).with_extension("pub");
        let public = read_public(&pub_path)?;
        Ok((public, kind))
    }

    fn signing_key(&self, name: &str) -> Result<PrivateKey, AccessError> {
        let secret = passphrase_secret(name);
        let passphrase = secrets::get(&secret)?.ok_or_else(|| AccessError::NoPassphrase {
            name: name.to_string(),
            secret: secret.clone(),
        })?;
        let path = self.ca_path(name);
        let wrong = || AccessError::WrongPassphrase {
            path: path.clone(),
            secret: secret.clone(),
        };
        let key = PrivateKey::from_openssh(read_text(&path)?).map_err(|_| wrong())?;
        key.decrypt(passphrase.expose()).map_err(|_| wrong())
    }

    /// Signs `req.key` with the CA (a user CA for `CaKind::User`, a host CA for `Host`),
    /// records it in the ledger and returns the certificate.
    pub fn sign(&self, req: &Request<'_>, kind: CaKind) -> Result<Certificate, AccessError> {
        let name = self.choose(req.ca)?;
        let (_, ca_kind) = self.ca(&name)?;
        if ca_kind != kind {
            return Err(AccessError::WrongKind {
                name,
                is: ca_kind.as_str(),
                wanted: kind.as_str(),
            });
        }
        let subject = read_public(req.key)?;
        let ca_key = self.signing_key(&name)?;
        let mut ledger = self.ledger()?;
        let serial = ledger.iter().map(|g| g.serial).max().unwrap_or(0) + 1;
        let now = now();
        let valid_after = now.saturating_sub(CLOCK_SKEW);
        let valid_before = now.saturating_add(req.valid_for);
        let key_id = match req.key_id {
            Some(k) => k.to_string(),
            None if !subject.comment().is_empty() => subject.comment().to_string(),
            None => req.principals.join(","),
        };
        let cert = build(
            &subject,
            &ca_key,
            kind,
            serial,
            &key_id,
            req,
            valid_after,
            valid_before,
        )
        .map_err(|e| AccessError::Sign(e.to_string()))?;
        ledger.push(Grant {
            serial,
            key_id,
            kind,
            ca: name,
            principals: req.principals.to_vec(),
            valid_after,
            valid_before,
            key: subject.fingerprint(HashAlg::Sha256).to_string(),
            read_only: req.read_only,
            revoked: false,
        });
        self.save_ledger(&ledger)?;
        Ok(cert)
    }

    /// The grants made, in order.
    pub fn ledger(&self) -> Result<Vec<Grant>, AccessError> {
        let path = self.ledger_path();
        if !path.exists() {
            return Ok(Vec::new());
        }
        serde_json::from_str(&read_text(&path)?).map_err(|e| AccessError::Read {
            path,
            cause: e.to_string(),
        })
    }

    fn save_ledger(&self, ledger: &[Grant]) -> Result<(), AccessError> {
        let text =
            serde_json::to_vec_pretty(ledger).map_err(|e| AccessError::Sign(e.to_string()))?;
        write_atomic(&self.ledger_path(), &text, Access::Private)?;
        Ok(())
    }

    /// Marks the grants whose serial or key id is `what` revoked, and writes the KRL of every
    /// revoked grant; returns the grants revoked now.
    pub fn revoke(&self, what: &str) -> Result<Vec<Grant>, AccessError> {
        let mut ledger = self.ledger()?;
        let mut hit = Vec::new();
        for g in &mut ledger {
            if g.serial.to_string() == what || g.key_id == what {
                g.revoked = true;
                hit.push(g.clone());
            }
        }
        if hit.is_empty() {
            return Err(AccessError::NoGrant(what.to_string()));
        }
        self.save_ledger(&ledger)?;
        self.write_krl(&ledger)?;
        Ok(hit)
    }

    fn write_krl(&self, ledger: &[Grant]) -> Result<(), AccessError> {
        let mut by_ca: BTreeMap<Vec<u8>, Vec<u64>> = BTreeMap::new();
        for g in ledger.iter().filter(|g| g.revoked) {
            let (ca, _) = self.ca(&g.ca)?;
            let blob = ca
                .to_bytes()
                .map_err(|e| AccessError::Sign(e.to_string()))?;
            by_ca.entry(blob).or_default().push(g.serial);
        }
        let version = ledger.iter().filter(|g| g.revoked).count() as u64;
        write_atomic(
            &self.krl_path(),
            &krl::write(&by_ca, version, now()),
            Access::Public,
        )?;
        Ok(())
    }
}

fn read_public(path: &Path) -> Result<PublicKey, AccessError> {
    PublicKey::from_openssh(read_text(path)?.trim()).map_err(|e| AccessError::BadPublicKey {
        path: path.to_path_buf(),
        cause: e.to_string(),
    })
}

#[allow(clippy::too_many_arguments)]
fn build(
    subject: &PublicKey,
    ca: &PrivateKey,
    kind: CaKind,
    serial: u64,
    key_id: &str,
    req: &Request<'_>,
    valid_after: u64,
    valid_before: u64,
) -> Result<Certificate, russh::keys::ssh_key::Error> {
    let mut b = Builder::new_with_random_nonce(
        &mut russh::keys::key::safe_rng(),
        subject.key_data().clone(),
        valid_after,
        valid_before,
    )?;
    b.serial(serial)?;
    b.key_id(key_id)?;
    for p in req.principals {
        b.valid_principal(p.clone())?;
    }
    match kind {
        CaKind::Host => {
            b.cert_type(CertType::Host)?;
        }
        CaKind::User if req.read_only => {
            b.cert_type(CertType::User)?;
            // No PTY, no agent or X11 forwarding, no ~/.ssh/rc: only the forced command and
            // the port forward to the API.
            b.critical_option("force-command", READ_ONLY_COMMAND)?;
            b.extension("permit-port-forwarding", "")?;
        }
        CaKind::User => {
            b.cert_type(CertType::User)?;
            // ssh-keygen's defaults for a user certificate.
            for e in [
                "permit-X11-forwarding",
                "permit-agent-forwarding",
                "permit-port-forwarding",
                "permit-pty",
                "permit-user-rc",
            ] {
                b.extension(e, "")?;
            }
        }
    }
    b.comment(key_id)?;
    b.sign(ca)
}

/// Where `access grant` writes the certificate of `key`: `alice.pub` -> `alice-cert.pub`, as
/// `ssh-keygen -s` names it.
pub fn cert_path_for(key: &Path) -> PathBuf {
    let s = key.to_string_lossy();
    let base = s.strip_suffix(".pub").unwrap_or(&s);
    PathBuf::from(format!("{base}-cert.pub"))
}

/// Writes a certificate in OpenSSH's one-line form (readable by all, as ssh-keygen writes it).
pub fn write_certificate(path: &Path, cert: &Certificate) -> Result<(), AccessError> {
    let text = cert
        .to_openssh()
        .map_err(|e| AccessError::Sign(e.to_string()))?;
    write_atomic(path, format!("{text}\n").as_bytes(), Access::Public)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_names_are_plain_words() {
        assert!(validate_name("ops-2026.user_ca").is_ok());
        for bad in ["", ".x", "-x", "a/b", "a b", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_certificate_lands_beside_the_key_as_ssh_keygen_names_it() {
        assert_eq!(
            cert_path_for(Path::new("d/alice.pub")),
            Path::new("d/alice-cert.pub")
        );
        assert_eq!(
            cert_path_for(Path::new("alice")),
            Path::new("alice-cert.pub")
        );
    }
}
