//! Secrets in the platform keyring, service `paragon-admin`: get, set, delete, list names.
//!
//! One code path over keyring-core's stores. Linux: the Secret Service (GNOME Keyring,
//! KWallet) when the session bus offers it, as a desktop user expects; otherwise (CI,
//! servers, the bastion) the kernel keyutils store, which works headless and across
//! processes of the same user: keys are added to the session keyring, which for a process
//! without its own session is the user's `_uid_ses` keyring, and linked into the user's
//! persistent keyring, which the store links into the session keyring. macOS uses the
//! Keychain and Windows the Credential Manager. `-v` says which store is used. Values never
//! reach a log line, an error or a `Debug` output. Knows nothing of profiles or commands.

use std::fmt;
use std::sync::{Arc, OnceLock};

use tracing::info;

/// The keyring service every secret is stored under.
pub const SERVICE: &str = "paragon-admin";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the platform keyring is not available: {0}")]
    Unavailable(String),
    #[error("secret name `{name}` is not valid: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("no secret named `{name}`")]
    NotFound { name: String },
    #[error("keyring: secret `{name}`: {reason}")]
    Failed { name: String, reason: String },
}

/// A secret value: its `Debug` and `Display` print `[redacted]`.
#[derive(Clone)]
pub struct Secret(String);

impl crate::exit::ExitStatus for SecretError {
    /// An invalid name is a usage error (2); a keyring that fails, 1.
    fn exit_status(&self) -> u8 {
        match self {
            SecretError::InvalidName { .. } => crate::exit::USAGE,
            _ => crate::exit::FAILED,
        }
    }
}

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The secret that unlocks a profile's identity file: `PROFILE/identity-passphrase`.
pub fn identity_passphrase(profile: &str) -> String {
    format!("{profile}/identity-passphrase")
}

/// The password `health` logs in to Postgres with: `PROFILE/postgres-password`.
pub fn postgres_password(profile: &str) -> String {
    format!("{profile}/postgres-password")
}

/// The password `health` sends to Redis with `AUTH`: `PROFILE/redis-password`.
pub fn redis_password(profile: &str) -> String {
    format!("{profile}/redis-password")
}

/// A name is printable, without spaces, at most 200 bytes, made of `/`-separated parts that
/// are neither empty, `.` nor `..`, and does not start with `-`: `prod/identity-passphrase`.
pub fn validate_name(name: &str) -> Result<(), SecretError> {
    let bad = |reason| {
        Err(SecretError::InvalidName {
            name: name.escape_debug().to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > 200 {
        return bad("it is longer than 200 bytes");
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("it holds spaces or control characters");
    }
    if name.contains('@') {
        return bad("it holds `@` (the keyring's separator)");
    }
    if name.starts_with('-') {
        return bad("it starts with `-`, which reads as an option");
    }
    // Names look like paths (`PROFILE/what`): refuse the parts a path would resolve away, so
    // that two spellings can never name one secret or escape a profile's prefix.
    if name
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return bad("its `/`-separated parts must not be empty, `.` or `..`");
    }
    Ok(())
}

/// The store that holds the secrets in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Store {
    /// The freedesktop Secret Service on the session bus.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    SecretService,
    /// The Linux kernel's keyutils keyrings.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Keyutils,
    /// The platform's own (macOS Keychain, Windows Credential Manager).
    #[cfg_attr(target_os = "linux", allow(dead_code))]
    Native,
}

/// Chooses the store once per process and makes it keyring-core's default.
fn init_store() -> Result<Store, SecretError> {
    static INIT: OnceLock<Result<Store, String>> = OnceLock::new();
    INIT.get_or_init(|| {
        let (store, kind) = platform_store().map_err(|e| e.to_string())?;
        keyring_core::set_default_store(store);
        Ok(kind)
    })
    .clone()
    .map_err(SecretError::Unavailable)
}

/// The keyutils store adds keys to the session keyring and links them into the persistent
/// keyring. A process without a session keyring of its own (a CI job, a container, `sudo`)
/// would use the shared `_uid_ses` keyring, which the store's persistent-keyring lookup then
/// swaps for a fresh one, losing possession of the key it just added (AccessDenied). So each
/// thread that touches the store first joins a session keyring, as `keyctl session` does:
/// the one it has, else a new one; keys then live in the user's persistent keyring, which
/// every later process of the same user finds through its own session.
#[cfg(target_os = "linux")]
fn join_session_keyring() -> Result<(), SecretError> {
    use linux_keyutils::{KeyRing, KeyRingIdentifier};
    // A kernel without persistent keyrings: a new session keyring would die with this
    // process, so keep the shared per-user one (the store then never links, so no conflict).
    // The probe links the persistent keyring into this thread's own keyring only.
    if KeyRing::get_persistent(KeyRingIdentifier::Thread).is_err() {
        return Ok(());
    }
    KeyRing::from_special_id(KeyRingIdentifier::Session, true)
        .map(|_| ())
        .map_err(|e| SecretError::Unavailable(format!("no session keyring: {e}")))
}

#[cfg(not(target_os = "linux"))]
fn join_session_keyring() -> Result<(), SecretError> {
    Ok(())
}

type PlatformStore = (Arc<keyring_core::CredentialStore>, Store);

/// The Secret Service when one answers on the session bus (connecting opens a session with
/// it, so a bus without the service, as on a server, fails here); else keyutils.
#[cfg(target_os = "linux")]
fn platform_store() -> keyring_core::Result<PlatformStore> {
    match zbus_secret_service_keyring_store::Store::new() {
        Ok(store) => {
            info!("secrets: the Secret Service on the session bus (GNOME Keyring, KWallet)");
            Ok((store, Store::SecretService))
        }
        Err(e) => {
            info!("secrets: the kernel keyutils store (no Secret Service on a session bus: {e})");
            Ok((linux_keyutils_keyring_store::Store::new()?, Store::Keyutils))
        }
    }
}

#[cfg(target_os = "macos")]
fn platform_store() -> keyring_core::Result<PlatformStore> {
    info!("secrets: the macOS Keychain");
    Ok((
        apple_native_keyring_store::keychain::Store::new()?,
        Store::Native,
    ))
}

#[cfg(target_os = "windows")]
fn platform_store() -> keyring_core::Result<PlatformStore> {
    info!("secrets: the Windows Credential Manager");
    Ok((windows_native_keyring_store::Store::new()?, Store::Native))
}

#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
fn platform_store() -> keyring_core::Result<PlatformStore> {
    Err(keyring_core::Error::NoDefaultStore)
}

fn entry(name: &str) -> Result<keyring_core::Entry, SecretError> {
    validate_name(name)?;
    if init_store()? == Store::Keyutils {
        join_session_keyring()?;
    }
    keyring_core::Entry::new(SERVICE, name).map_err(|e| failed(name, &e))
}

fn failed(name: &str, e: &keyring_core::Error) -> SecretError {
    match e {
        keyring_core::Error::NoStorageAccess(_) | keyring_core::Error::NoDefaultStore => {
            SecretError::Unavailable(e.to_string())
        }
        // Other variants may carry the stored bytes (BadEncoding): say only what went wrong.
        keyring_core::Error::BadEncoding(_) | keyring_core::Error::BadDataFormat(..) => {
            SecretError::Failed {
                name: name.to_string(),
                reason: "the stored value is not UTF-8 text".to_string(),
            }
        }
        other => SecretError::Failed {
            name: name.to_string(),
            reason: other.to_string(),
        },
    }
}

/// The secret's value, or `None` when none is stored under `name`.
pub fn get(name: &str) -> Result<Option<Secret>, SecretError> {
    match entry(name)?.get_password() {
        Ok(v) => Ok(Some(Secret(v))),
        Err(keyring_core::Error::NoEntry) => Ok(None),
        Err(e) => Err(failed(name, &e)),
    }
}

/// Stores (or replaces) a secret.
pub fn set(name: &str, value: &Secret) -> Result<(), SecretError> {
    entry(name)?
        .set_password(value.expose())
        .map_err(|e| failed(name, &e))
}

/// Removes a secret; `NotFound` when there was none.
pub fn delete(name: &str) -> Result<(), SecretError> {
    match entry(name)?.delete_credential() {
        Ok(()) => Ok(()),
        Err(keyring_core::Error::NoEntry) => Err(SecretError::NotFound {
            name: name.to_string(),
        }),
        Err(e) => Err(failed(name, &e)),
    }
}

/// The names of the stored secrets, sorted, never their values.
pub fn list() -> Result<Vec<String>, SecretError> {
    if init_store()? == Store::Keyutils {
        join_session_keyring()?;
    }
    let spec = std::collections::HashMap::from([("service", SERVICE)]);
    let mut names: Vec<String> = match keyring_core::Entry::search(&spec) {
        Ok(entries) => entries
            .iter()
            .filter_map(|e| e.get_specifiers())
            .filter(|(service, _)| service == SERVICE)
            .map(|(_, user)| user)
            .collect(),
        Err(keyring_core::Error::NotSupportedByStore(_)) => list_platform()?,
        Err(e) => return Err(failed("*", &e)),
    };
    names.sort();
    names.dedup();
    Ok(names)
}

/// keyutils cannot be searched through the store: walk the session keyring (with the
/// keyrings linked into it, such as the persistent one) and read the descriptions the store
/// writes, `keyring:NAME@paragon-admin`.
#[cfg(target_os = "linux")]
fn list_platform() -> Result<Vec<String>, SecretError> {
    use linux_keyutils::{KeyRing, KeyRingIdentifier};
    let session = KeyRing::from_special_id(KeyRingIdentifier::Session, false)
        .map_err(|e| SecretError::Unavailable(e.to_string()))?;
    // As the store does for every entry: link the persistent keyring into the session.
    let _ = KeyRing::get_persistent(KeyRingIdentifier::Session);
    let suffix = format!("@{SERVICE}");
    let mut names = Vec::new();
    let mut seen = Vec::new();
    let mut rings = vec![(session, 0)];
    while let Some((ring, depth)) = rings.pop() {
        let Ok(links) = ring.get_links(4096) else {
            continue;
        };
        for node in links.iter() {
            if let Some(r) = node.as_ring() {
                if depth < 4 && !seen.contains(&r) {
                    seen.push(r);
                    rings.push((r, depth + 1));
                }
            } else if let Some(k) = node.as_key()
                && let Ok(meta) = k.metadata()
                && let Some(name) = meta
                    .get_description()
                    .strip_prefix("keyring:")
                    .and_then(|d| d.strip_suffix(suffix.as_str()))
            {
                names.push(name.to_string());
            }
        }
    }
    Ok(names)
}

#[cfg(not(target_os = "linux"))]
fn list_platform() -> Result<Vec<String>, SecretError> {
    Err(SecretError::Unavailable(
        "this platform's keyring cannot list secrets".to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_and_display_are_redacted() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_name("prod/identity-passphrase").is_ok());
        for bad in [
            "", "a b", "a\nb", "a@b", "..", "/", "-x", "a/../b", "a//b", "/a", "a/", ".", "a/.",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_name("a-b/c.d/..e").is_ok());
    }

    #[test]
    fn secret_names_are_built_per_profile_and_valid() {
        assert_eq!(identity_passphrase("prod"), "prod/identity-passphrase");
        assert_eq!(postgres_password("prod"), "prod/postgres-password");
        assert!(validate_name(&identity_passphrase("prod")).is_ok());
        assert!(validate_name(&postgres_password("prod")).is_ok());
    }
}
