//! Authentication: the ssh-agent's keys first, then the identity file (the profile's, else
//! the usual ~/.ssh/id_ed25519, id_ecdsa, id_rsa). A passphrase comes from the keyring
//! secret `PROFILE/identity-passphrase`, else a prompt on a terminal.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::client::Handle;
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::ssh_key::{HashAlg, PrivateKey};
use russh::keys::{PrivateKeyWithHashAlg, PublicKey};
use tokio::sync::watch;
use tracing::debug;

use super::{Client, SshError};
use crate::config::Resolved;

pub(super) async fn authenticate(
    handle: &mut Handle<Client>,
    user: &str,
    target: &str,
    profile: &Resolved,
    prompting: &Arc<watch::Sender<bool>>,
) -> Result<(), SshError> {
    let mut tried: Vec<String> = Vec::new();
    if std::env::var_os("SSH_AUTH_SOCK").is_some_and(|s| !s.is_empty())
        && try_agent(handle, user, target, &mut tried).await?
    {
        return Ok(());
    }
    let files = match &profile.identity_file {
        Some(p) => vec![p.clone()],
        None => default_identity_files(),
    };
    for path in files {
        let key = load_identity(&path, &profile.name, prompting).await?;
        let hash = rsa_hash(handle, key.public_key(), target).await?;
        tried.push(path.display().to_string());
        let result = handle
            .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
            .await
            .map_err(|source| SshError::Handshake {
                target: target.to_string(),
                source,
            })?;
        if result.success() {
            debug!("authenticated with {}", path.display());
            return Ok(());
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
    let keys: Vec<PublicKey> = identities
        .into_iter()
        .filter_map(|id| match id {
            AgentIdentity::PublicKey { key, .. } => Some(key),
            AgentIdentity::Certificate { .. } => None,
        })
        .collect();
    tried.push(format!("ssh-agent ({} keys)", keys.len()));
    for key in keys {
        let hash = rsa_hash(handle, &key, target).await?;
        match handle
            .authenticate_publickey_with(user, key, hash, &mut agent)
            .await
        {
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
        .map_err(|source| SshError::Handshake {
            target: target.to_string(),
            source,
        })?
        .flatten()
        .or(Some(HashAlg::Sha256)))
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

/// Reads a private key, unlocking it with the stored or prompted passphrase when needed.
async fn load_identity(
    path: &Path,
    profile: &str,
    prompting: &Arc<watch::Sender<bool>>,
) -> Result<PrivateKey, SshError> {
    let text = std::fs::read_to_string(path).map_err(|e| SshError::IdentityFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    match russh::keys::decode_secret_key(&text, None) {
        Ok(k) => return Ok(k),
        Err(russh::keys::Error::KeyIsEncrypted) => {}
        Err(e) => {
            return Err(SshError::IdentityFile {
                path: path.to_path_buf(),
                reason: e.to_string(),
            });
        }
    }
    let secret = crate::secrets::identity_passphrase(profile);
    let (passphrase, from) = match crate::secrets::get(&secret) {
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
