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

pub(super) async fn authenticate(
    handle: &mut Handle<Client>,
    user: &str,
    target: &str,
    profile: &Resolved,
    prompting: &Arc<watch::Sender<bool>>,
) -> Result<Option<user_cert::InUse>, SshError> {
    let mut tried: Vec<String> = Vec::new();
    if std::env::var_os("SSH_AUTH_SOCK").is_some_and(|s| !s.is_empty())
        && try_agent(handle, user, target, &mut tried).await?
    {
        return Ok(None);
    }
    for path in identity_files(profile) {
        let key = Arc::new(load_identity(&path, &profile.name, prompting).await?);
        let hash = rsa_hash(handle, key.public_key(), target).await?;
        tried.push(path.display().to_string());
        let result = handle
            .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key.clone(), hash))
            .await
            .map_err(|cause| handshake(target, cause))?;
        if result.success() {
            debug!("authenticated with {}", path.display());
            return Ok(None);
        }
        // Then its certificate, as OpenSSH offers an identity's key and then its certificate.
        let Some((cert_path, cert)) =
            usable_certificate(&path, profile, Some(key.public_key()), false)
        else {
            continue;
        };
        tried.push(cert_path.display().to_string());
        let valid_before = cert.valid_before();
        let result = handle
            .authenticate_openssh_cert(user, key, cert)
            .await
            .map_err(|cause| handshake(target, cause))?;
        if result.success() {
            debug!("authenticated with certificate {}", cert_path.display());
            return Ok(Some(user_cert::InUse {
                path: cert_path,
                valid_before,
            }));
        }
    }
    Err(SshError::AuthFailed {
        user: user.to_string(),
        target: target.to_string(),
        tried: if tried.is_empty() {
            "nothing: no ssh-agent and no identity file; set identity_file in the profile"
                .to_string()
        } else {
            tried.join(", ")
        },
    })
}

/// Offers each agent key; true when one was accepted.
async fn try_agent(
    handle: &mut Handle<Client>,
    user: &str,
    target: &str,
    tried: &mut Vec<String>,
) -> Result<bool, SshError> {
    let mut agent = match AgentClient::connect_env().await {
        Ok(a) => a,
        Err(e) => {
            debug!("ssh-agent unreachable: {e}");
            tried.push("ssh-agent (unreachable)".to_string());
            return Ok(false);
        }
    };
    let identities = match agent.request_identities().await {
        Ok(ids) => ids,
        Err(e) => {
            debug!("ssh-agent did not list keys: {e}");
            tried.push("ssh-agent (no answer)".to_string());
            return Ok(false);
        }
    };
    tried.push(format!("ssh-agent ({} keys)", identities.len()));
    // In the agent's order, keys and certificates alike, as OpenSSH offers them.
    for id in identities {
        let result = match id {
            AgentIdentity::PublicKey { key, .. } => {
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
                let key = PublicKey::new(certificate.public_key().clone(), "");
                let hash = rsa_hash(handle, &key, target).await?;
                handle
                    .authenticate_certificate_with(user, certificate, hash, &mut agent)
                    .await
            }
        };
        match result {
            Ok(r) if r.success() => return Ok(true),
            Ok(_) => {}
            Err(e) => debug!("ssh-agent key failed: {e}"),
        }
    }
    Ok(false)
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

fn default_identity_files() -> Vec<PathBuf> {
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
fn read_identity_file(path: &Path) -> Result<String, SshError> {
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
