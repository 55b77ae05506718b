//! Authentication: the ssh-agent's keys and certificates first, then the identity file (the
//! profile's, else the usual ~/.ssh/id_ed25519, id_ecdsa, id_rsa), each followed by its
//! certificate (`certificate_file`, else `KEY-cert.pub`) when it has a valid one. A passphrase comes from the keyring
//! secret `PROFILE/identity-passphrase`, else a prompt on a terminal.
//!
//! Identity files are read as OpenSSH reads them: a key others may read is refused, and what
//! is not a private key file (a folder, a FIFO, a public key, something enormous) is named
//! for what it is. Knows nothing of commands, forwards or the host-key policy.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::client::Handle;
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::ssh_key::{Certificate, HashAlg, PrivateKey};
use russh::keys::{PrivateKeyWithHashAlg, PublicKey};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::{Client, SshError, user_cert};
use crate::config::Resolved;

/// What was offered to the bastion and refused, for the error that says so and for the
/// `doctor`: each key with the authorized_keys line that would let it in, each certificate
/// with its key id and principals.
#[derive(Debug, Clone, Default)]
pub struct Refused {
    /// What the ssh-agent gave, when `SSH_AUTH_SOCK` is set.
    pub agent: Option<AgentKeys>,
    pub offered: Vec<Offered>,
}

/// The ssh-agent, as it answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentKeys {
    Unreachable,
    NoAnswer,
    /// It listed this many keys and certificates.
    Listed(usize),
}

/// One key or certificate offered and refused.
#[derive(Debug, Clone)]
pub struct Offered {
    /// `ssh-agent`, or the identity (or certificate) file.
    pub from: String,
    /// `SHA256:...` of the key (of the certificate's key for a certificate).
    pub fingerprint: String,
    /// Whether the ssh-agent holds it (else it is an identity file's).
    pub from_agent: bool,
    /// For a key: its authorized_keys line (`ssh-ed25519 AAAA... comment`).
    pub authorized_keys_line: Option<String>,
    /// For a certificate: what the bastion checks of it.
    pub certificate: Option<OfferedCertificate>,
}

#[derive(Debug, Clone)]
pub struct OfferedCertificate {
    pub key_id: String,
    /// Empty: any user (OpenSSH's reading of no principals).
    pub principals: Vec<String>,
    /// `SHA256:...` of the CA that signed it: the bastion must trust it
    /// (`TrustedUserCAKeys`, or a `cert-authority` line).
    pub ca_fingerprint: String,
}

impl Offered {
    /// The key or certificate in words: `/home/u/.ssh/id_ed25519 (SHA256:...)`, or for a
    /// certificate its key id, principals (and whether they name `user`) and CA.
    pub fn words(&self, user: &str) -> String {
        let Some(c) = &self.certificate else {
            return format!("{} ({})", self.from, self.fingerprint);
        };
        let principals = match c.principals.is_empty() {
            true => "any".to_string(),
            false => c.principals.join(","),
        };
        let named = c.principals.is_empty() || c.principals.iter().any(|p| p == user);
        format!(
            "certificate {} (key id \"{}\", principals {principals}{}, signed by CA {})",
            self.from,
            c.key_id,
            if named { "" } else { ", not the user" },
            c.ca_fingerprint
        )
    }

    fn key(from: String, from_agent: bool, key: &PublicKey) -> Offered {
        Offered {
            from,
            from_agent,
            fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
            authorized_keys_line: key.to_openssh().ok(),
            certificate: None,
        }
    }

    fn certificate(from: String, from_agent: bool, cert: &Certificate) -> Offered {
        Offered {
            from,
            from_agent,
            fingerprint: cert.public_key().fingerprint(HashAlg::Sha256).to_string(),
            authorized_keys_line: None,
            certificate: Some(OfferedCertificate {
                key_id: cert.key_id().to_string(),
                principals: cert.valid_principals().to_vec(),
                ca_fingerprint: cert
                    .signature_key()
                    .fingerprint(HashAlg::Sha256)
                    .to_string(),
            }),
        }
    }
}

impl Refused {
    /// What was tried, in words: `ssh-agent (2 keys), /home/u/.ssh/id_ed25519 (SHA256:...),
    /// ...`; `user` is the bastion's user a certificate must name.
    pub fn tried(&self, user: &str) -> String {
        let mut words: Vec<String> = Vec::new();
        match self.agent {
            Some(AgentKeys::Unreachable) => words.push("ssh-agent (unreachable)".into()),
            Some(AgentKeys::NoAnswer) => words.push("ssh-agent (no answer)".into()),
            Some(AgentKeys::Listed(n)) => words.push(format!("ssh-agent ({n} keys)")),
            None => {}
        }
        words.extend(self.offered.iter().map(|o| o.words(user)));
        if words.is_empty() {
            return "nothing: no ssh-agent and no identity file; set identity_file in the profile"
                .to_string();
        }
        words.join(", ")
    }

    /// The authorized_keys lines that would let one of the offered keys in, each once: those
    /// of the identity files (the keys the profile, or the usual `~/.ssh` names, point at),
    /// else those of the ssh-agent's keys.
    pub fn authorized_keys_lines(&self) -> Vec<&str> {
        let from_files = self
            .offered
            .iter()
            .any(|o| !o.from_agent && o.authorized_keys_line.is_some());
        let mut out: Vec<&str> = Vec::new();
        for line in self
            .offered
            .iter()
            .filter(|o| !(from_files && o.from_agent))
            .filter_map(|o| o.authorized_keys_line.as_deref())
        {
            // The same key from the agent and from its file: the type and data decide.
            let key = |l: &str| l.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
            if !out.iter().any(|o| key(o) == key(line)) {
                out.push(line);
            }
        }
        out
    }
}

/// The error message's tail after `tried`: where the lines would go, then the lines, each
/// in backquotes (the message is one line, as every error is).
pub(super) fn refused_hint(user: &str, refused: &Refused) -> String {
    let lines = refused.authorized_keys_lines();
    if lines.is_empty() {
        return String::new();
    }
    let quoted: Vec<String> = lines.iter().map(|l| format!("`{l}`")).collect();
    format!(
        "; to let {} in, add {} to ~{user}/.ssh/authorized_keys on the bastion: {}",
        if lines.len() == 1 { "it" } else { "a key" },
        if lines.len() == 1 {
            "this line"
        } else {
            "one of these lines"
        },
        quoted.join(" or ")
    )
}

/// What the bastion accepted: the key or certificate (the last one offered), and the
/// certificate file when it was one.
pub(super) struct Accepted {
    pub offered: Offered,
    pub certificate: Option<user_cert::InUse>,
}

pub(super) async fn authenticate(
    handle: &mut Handle<Client>,
    user: &str,
    target: &str,
    profile: &Resolved,
    prompting: &Arc<watch::Sender<bool>>,
) -> Result<Accepted, SshError> {
    let mut refused = Refused::default();
    if std::env::var_os("SSH_AUTH_SOCK").is_some_and(|s| !s.is_empty())
        && let Some(offered) = try_agent(handle, user, target, &mut refused).await?
    {
        return Ok(Accepted {
            offered,
            certificate: None,
        });
    }
    for path in identity_files(profile) {
        let key = Arc::new(load_identity(&path, &profile.name, prompting).await?);
        let hash = rsa_hash(handle, key.public_key(), target).await?;
        let offered = Offered::key(path.display().to_string(), false, &public_of(&path, &key));
        refused.offered.push(offered.clone());
        let result = handle
            .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key.clone(), hash))
            .await
            .map_err(|cause| handshake(target, cause))?;
        if result.success() {
            debug!("authenticated with {}", path.display());
            return Ok(Accepted {
                offered,
                certificate: None,
            });
        }
        // Then its certificate, as OpenSSH offers an identity's key and then its certificate.
        let Some((cert_path, cert)) =
            usable_certificate(&path, profile, Some(key.public_key()), false)
        else {
            continue;
        };
        let offered = Offered::certificate(cert_path.display().to_string(), false, &cert);
        refused.offered.push(offered.clone());
        let valid_before = cert.valid_before();
        let result = handle
            .authenticate_openssh_cert(user, key, cert)
            .await
            .map_err(|cause| handshake(target, cause))?;
        if result.success() {
            debug!("authenticated with certificate {}", cert_path.display());
            return Ok(Accepted {
                offered,
                certificate: Some(user_cert::InUse {
                    path: cert_path,
                    valid_before,
                }),
            });
        }
    }
    Err(SshError::AuthFailed {
        user: user.to_string(),
        target: target.to_string(),
        refused,
    })
}

/// The identity's public key with the comment of its `.pub` file when it has one (a private
/// key file of the PEM form carries none).
fn public_of(path: &Path, key: &PrivateKey) -> PublicKey {
    let mut public = key.public_key().clone();
    if public.comment().is_empty()
        && let Some(file) = std::fs::read_to_string(path.with_extension("pub"))
            .ok()
            .and_then(|t| PublicKey::from_openssh(t.trim()).ok())
            .filter(|p| p.key_data() == public.key_data())
    {
        public.set_comment(file.comment().clone());
    }
    public
}

/// Offers each agent key; the one accepted, if one was.
async fn try_agent(
    handle: &mut Handle<Client>,
    user: &str,
    target: &str,
    refused: &mut Refused,
) -> Result<Option<Offered>, SshError> {
    let mut agent = match AgentClient::connect_env().await {
        Ok(a) => a,
        Err(e) => {
            debug!("ssh-agent unreachable: {e}");
            refused.agent = Some(AgentKeys::Unreachable);
            return Ok(None);
        }
    };
    let identities = match agent.request_identities().await {
        Ok(ids) => ids,
        Err(e) => {
            debug!("ssh-agent did not list keys: {e}");
            refused.agent = Some(AgentKeys::NoAnswer);
            return Ok(None);
        }
    };
    refused.agent = Some(AgentKeys::Listed(identities.len()));
    // In the agent's order, keys and certificates alike, as OpenSSH offers them.
    for id in identities {
        let result = match id {
            AgentIdentity::PublicKey { key, comment } => {
                let mut shown = key.clone();
                if shown.comment().is_empty() {
                    shown.set_comment(comment);
                }
                refused
                    .offered
                    .push(Offered::key("ssh-agent key".to_string(), true, &shown));
                let hash = rsa_hash(handle, &key, target).await?;
                handle
                    .authenticate_publickey_with(user, key, hash, &mut agent)
                    .await
            }
            AgentIdentity::Certificate { certificate, .. } => {
                let about = user_cert::describe(&certificate);
                if let Some(why) = user_cert::unusable(&certificate, None, user_cert::now()) {
                    warn!("ssh-agent certificate ({about}) is not offered: {why}");
                    continue;
                }
                info!("offering ssh-agent certificate ({about})");
                refused.offered.push(Offered::certificate(
                    "from the ssh-agent".to_string(),
                    true,
                    &certificate,
                ));
                let key = PublicKey::new(certificate.public_key().clone(), "");
                let hash = rsa_hash(handle, &key, target).await?;
                handle
                    .authenticate_certificate_with(user, certificate, hash, &mut agent)
                    .await
            }
        };
        match result {
            Ok(r) if r.success() => return Ok(refused.offered.pop()),
            Ok(_) => {}
            Err(e) => debug!("ssh-agent key failed: {e}"),
        }
    }
    Ok(None)
}

/// For RSA keys, the best signature hash the server accepts; none for other keys.
async fn rsa_hash(
    handle: &Handle<Client>,
    key: &PublicKey,
    target: &str,
) -> Result<Option<HashAlg>, SshError> {
    if !key.algorithm().is_rsa() {
        return Ok(None);
    }
    Ok(handle
        .best_supported_rsa_hash()
        .await
        .map_err(|cause| handshake(target, cause))?
        .flatten()
        .or(Some(HashAlg::Sha256)))
}

fn handshake(target: &str, cause: russh::Error) -> SshError {
    SshError::Handshake {
        target: target.to_string(),
        cause,
    }
}

/// The identity files to offer: the profile's, else the usual ones that exist.
fn identity_files(profile: &Resolved) -> Vec<PathBuf> {
    match &profile.identity_file {
        Some(p) => vec![p.clone()],
        None => default_identity_files(),
    }
}

/// The certificate of `identity` (the profile's `certificate_file`, else `KEY-cert.pub`) when
/// it can be offered for `key` now. `report`: said at `-v` when it can, and as a warning when
/// not (before connecting, once); otherwise only at debug level.
fn usable_certificate(
    identity: &Path,
    profile: &Resolved,
    key: Option<&PublicKey>,
    report: bool,
) -> Option<(PathBuf, Certificate)> {
    let path = user_cert::certificate_path(identity, profile.certificate_file.as_deref())?;
    let refused = |text: String| {
        if report {
            warn!("{text}");
        } else {
            debug!("{text}");
        }
    };
    let cert = match user_cert::read(&path) {
        Ok(c) => c,
        Err(why) => {
            refused(format!(
                "certificate {} is not offered: {why}",
                path.display()
            ));
            return None;
        }
    };
    let about = user_cert::describe(&cert);
    let key = key.map(PublicKey::key_data);
    if let Some(why) = user_cert::unusable(&cert, key, user_cert::now()) {
        refused(format!(
            "certificate {} ({about}) is not offered: {why}",
            path.display()
        ));
        return None;
    }
    if report {
        info!("certificate {}: {about}", path.display());
    } else {
        debug!("offering certificate {}", path.display());
    }
    Some((path, cert))
}

/// Says, before connecting, what each identity's certificate is, and which cannot be offered
/// (expired, not yet valid, unreadable) and why.
pub fn report_certificates(profile: &Resolved) {
    for identity in identity_files(profile) {
        let key = std::fs::read_to_string(identity.with_extension("pub"))
            .ok()
            .and_then(|t| PublicKey::from_openssh(t.trim()).ok());
        let _ = usable_certificate(&identity, profile, key.as_ref(), true);
    }
}

/// Each identity's certificate in words (key id, serial, principals, validity), and why it
/// would not be offered now when it would not: for `profiles`.
pub fn certificate_summaries(profile: &Resolved) -> Vec<String> {
    let mut out = Vec::new();
    for identity in identity_files(profile) {
        let Some(path) =
            user_cert::certificate_path(&identity, profile.certificate_file.as_deref())
        else {
            continue;
        };
        let text = match user_cert::read(&path) {
            Ok(cert) => {
                let key = std::fs::read_to_string(identity.with_extension("pub"))
                    .ok()
                    .and_then(|t| PublicKey::from_openssh(t.trim()).ok());
                let about = user_cert::describe(&cert);
                match user_cert::unusable(
                    &cert,
                    key.as_ref().map(PublicKey::key_data),
                    user_cert::now(),
                ) {
                    Some(why) => format!("{about} (not offered: {why})"),
                    None => about,
                }
            }
            Err(why) => format!("{} (not offered: {why})", path.display()),
        };
        out.push(text);
    }
    out
}

pub(crate) fn default_identity_files() -> Vec<PathBuf> {
    let Some(home) = dirs::home_dir() else {
        return Vec::new();
    };
    ["id_ed25519", "id_ecdsa", "id_rsa"]
        .iter()
        .map(|n| home.join(".ssh").join(n))
        .filter(|p| p.is_file())
        .collect()
}

/// The most a private key file may hold: OpenSSH's own cap (`MAX_KEY_FILE_SIZE` in its
/// authfile.c). The largest real key (RSA 16384) is about 12 KiB; an endless file such as
/// `/dev/zero` stops here instead of filling memory.
const MAX_KEY_FILE_SIZE: u64 = 1024 * 1024;

/// Reads an identity file's text, refusing what OpenSSH refuses and naming what is wrong.
pub(crate) fn read_identity_file(path: &Path) -> Result<String, SshError> {
    let bad = |reason: String| SshError::IdentityFile {
        path: path.to_path_buf(),
        reason,
    };
    // Checked before opening: opening a FIFO would wait for a writer forever.
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if let Some(kind) = not_a_key_file(&meta) {
        return Err(bad(format!(
            "it is {kind}, not a key file; identity_file names a private key such as ~/.ssh/id_ed25519"
        )));
    }
    if meta.is_file() && meta.len() > MAX_KEY_FILE_SIZE {
        return Err(too_large(path));
    }
    let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut bytes = Vec::new();
    // A device (or a file that grew since) is read up to the cap and no further.
    file.take(MAX_KEY_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(e.to_string()))?;
    if bytes.len() as u64 > MAX_KEY_FILE_SIZE {
        return Err(too_large(path));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(bad("it is empty".to_string()));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| bad("it is not text, so not an OpenSSH or PEM private key".to_string()))?;
    if is_public_key(&text) {
        let private = path
            .to_str()
            .and_then(|p| p.strip_suffix(".pub"))
            .map(PathBuf::from)
            .filter(|p| p.is_file());
        return Err(bad(match private {
            Some(p) => format!(
                "it is a public key; set identity_file to the private key {}",
                p.display()
            ),
            None => {
                "it is a public key; identity_file names the private key (the file without `.pub`)"
                    .to_string()
            }
        }));
    }
    // After the public-key check: a `.pub` file is meant to be readable by all.
    if meta.is_file() {
        refuse_unprotected(path, &meta)?;
    }
    Ok(text)
}

fn too_large(path: &Path) -> SshError {
    SshError::IdentityFile {
        path: path.to_path_buf(),
        reason: format!(
            "it is larger than {} KiB, which no private key is (OpenSSH's limit too)",
            MAX_KEY_FILE_SIZE / 1024
        ),
    }
}

/// What a file that cannot hold a key is, in words; `None` for files and devices (a device
/// is read up to the cap, as OpenSSH reads one).
fn not_a_key_file(meta: &std::fs::Metadata) -> Option<&'static str> {
    let kind = meta.file_type();
    if kind.is_dir() {
        return Some("a folder");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if kind.is_socket() {
            return Some("a socket");
        }
    }
    None
}

/// OpenSSH ignores a private key of its user that group or others may access ("UNPROTECTED
/// PRIVATE KEY FILE"): such a key may already be copied. Refused here with the fix.
#[cfg(unix)]
fn refuse_unprotected(path: &Path, meta: &std::fs::Metadata) -> Result<(), SshError> {
    use std::os::unix::fs::MetadataExt;
    let mode = meta.mode() & 0o777;
    if meta.uid() != rustix::process::getuid().as_raw() || mode & 0o077 == 0 {
        return Ok(());
    }
    Err(SshError::IdentityFile {
        path: path.to_path_buf(),
        reason: format!(
            "UNPROTECTED PRIVATE KEY FILE: permissions {mode:04o} are too open, others may read \
             it, so it is refused as OpenSSH refuses it; run `chmod 600 {}`",
            path.display()
        ),
    })
}

#[cfg(not(unix))]
fn refuse_unprotected(_path: &Path, _meta: &std::fs::Metadata) -> Result<(), SshError> {
    Ok(())
}

/// Whether the text is a public key or certificate (`ssh-ed25519 AAAA... comment`, or the
/// RFC 4716 form) rather than a private key.
fn is_public_key(text: &str) -> bool {
    let text = text.trim();
    if text.starts_with("---- BEGIN SSH2 PUBLIC KEY ----") {
        return true;
    }
    let first = text.lines().next().unwrap_or_default();
    PublicKey::from_openssh(first).is_ok()
        || russh::keys::ssh_key::Certificate::from_openssh(first).is_ok()
}

/// Reads a private key, unlocking it with the stored or prompted passphrase when needed.
async fn load_identity(
    path: &Path,
    profile: &str,
    prompting: &Arc<watch::Sender<bool>>,
) -> Result<PrivateKey, SshError> {
    let text = read_identity_file(path)?;
    match russh::keys::decode_secret_key(&text, None) {
        Ok(k) => return Ok(k),
        Err(russh::keys::Error::KeyIsEncrypted) => {}
        Err(e) => {
            return Err(SshError::IdentityFile {
                path: path.to_path_buf(),
                reason: format!("it is not an OpenSSH or PEM private key ({e})"),
            });
        }
    }
    let secret = crate::secrets::identity_passphrase(profile);
    // The keyring may be a D-Bus service (Secret Service): a blocking call, off the runtime.
    let lookup = {
        let secret = secret.clone();
        tokio::task::spawn_blocking(move || crate::secrets::get(&secret)).await
    };
    let (passphrase, from) = match lookup.unwrap_or(Ok(None)) {
        Ok(Some(p)) => (p, format!("the keyring secret `{secret}`")),
        other => {
            if let Err(e) = other {
                debug!("keyring: {e}");
            }
            if !crate::prompt::interactive() {
                return Err(SshError::PassphraseNeeded {
                    path: path.to_path_buf(),
                    secret,
                });
            }
            let question = format!("Passphrase for {}", path.display());
            let hint = format!("store it with `paragon-admin secrets set {secret}`");
            prompting.send_replace(true);
            let answer =
                tokio::task::spawn_blocking(move || crate::prompt::password(&question, &hint))
                    .await;
            prompting.send_replace(false);
            match answer {
                Ok(Ok(p)) => (crate::secrets::Secret::new(p), "the prompt".to_string()),
                _ => {
                    return Err(SshError::PassphraseNeeded {
                        path: path.to_path_buf(),
                        secret,
                    });
                }
            }
        }
    };
    russh::keys::decode_secret_key(&text, Some(passphrase.expose())).map_err(|_| {
        SshError::WrongPassphrase {
            path: path.to_path_buf(),
            from,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(from: &str, agent: bool, line: &str) -> Offered {
        Offered {
            from: from.to_string(),
            from_agent: agent,
            fingerprint: format!("SHA256:{from}"),
            authorized_keys_line: Some(line.to_string()),
            certificate: None,
        }
    }

    #[test]
    fn the_lines_offered_are_the_identity_files_first_each_once() {
        let mut r = Refused {
            agent: Some(AgentKeys::Listed(2)),
            offered: vec![
                key("ssh-agent key", true, "ssh-ed25519 AAAA1 me@laptop"),
                key("ssh-agent key", true, "ssh-rsa BBBB other"),
            ],
        };
        // The agent's keys alone: each of them.
        assert_eq!(
            r.authorized_keys_lines(),
            ["ssh-ed25519 AAAA1 me@laptop", "ssh-rsa BBBB other"]
        );
        assert!(refused_hint("ops", &r).contains("one of these lines"));
        // With an identity file: its key only, once even when the agent holds it too.
        r.offered.push(key(
            "/home/me/.ssh/id_ed25519",
            false,
            "ssh-ed25519 AAAA1 me",
        ));
        assert_eq!(r.authorized_keys_lines(), ["ssh-ed25519 AAAA1 me"]);
        assert_eq!(
            refused_hint("ops", &r),
            "; to let it in, add this line to ~ops/.ssh/authorized_keys on the bastion: `ssh-ed25519 AAAA1 me`"
        );
        let tried = r.tried("ops");
        assert!(
            tried.starts_with("ssh-agent (2 keys), ssh-agent key (SHA256:ssh-agent key)"),
            "{tried}"
        );
        assert!(tried.ends_with("/home/me/.ssh/id_ed25519 (SHA256:/home/me/.ssh/id_ed25519)"));
        let none = Refused::default();
        assert!(none.tried("ops").starts_with("nothing: no ssh-agent"));
        assert_eq!(refused_hint("ops", &none), "");
    }
}
