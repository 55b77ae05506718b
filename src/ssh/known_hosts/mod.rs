//! OpenSSH's known_hosts format: parse, match a host and key, append a new line.
//!
//! Pure apart from `load` and `append` (in `file`): no network, no prompts, no policy. It follows
//! OpenSSH 9.2's hostfile.c line for line where users can tell: only space and tab separate
//! fields, host names are lower-cased before matching and hashing, `|1|salt|hmac` names
//! (HMAC-SHA1) are compared as OpenSSH re-encodes them, a key type may be any name of the
//! blob's key (`rsa-sha2-256` for an `ssh-rsa` key), certificates on plain lines are keys that
//! never match a plain key, and `@revoked` and `@cert-authority` markers are read.

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use russh::keys::ssh_key::public::KeyData;
use russh::keys::ssh_key::{Algorithm, Certificate, HashAlg, PublicKey};

use crate::openssh::{ListMatch, match_host_list};

mod file;
#[cfg(test)]
mod tests;

pub use file::{append, load};

/// The largest known_hosts read: far above any real file (a line is under 1 KiB), small
/// enough that `/dev/zero` or a wrong path costs no memory to speak of.
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// OpenSSH's tag of a hashed host name.
const HASH_MAGIC: &str = "|1|";
/// OpenSSH refuses salts whose base64 is longer (hostfile.c `extract_salt`).
const MAX_SALT_BASE64: usize = 1024;
/// HMAC-SHA1: salt and hash are both 20 bytes.
const SHA1_LEN: usize = 20;

/// Bytes in a host name that make OpenSSH refuse to record it (sshconnect.c), plus the ones
/// that would turn the recorded name into a pattern list (`,`, `!`) or split the line.
const NOT_RECORDABLE: &[u8] = b"@?*#[]|'\"\\,! \t\r\n";

/// Each key type name OpenSSH 9.2 reads on a known_hosts line, and the type its blob must
/// carry: signature names (`rsa-sha2-*`) are names of the same key.
const KEY_TYPES: &[(&str, &str)] = &[
    ("ssh-ed25519", "ssh-ed25519"),
    (
        "ssh-ed25519-cert-v01@openssh.com",
        "ssh-ed25519-cert-v01@openssh.com",
    ),
    ("sk-ssh-ed25519@openssh.com", "sk-ssh-ed25519@openssh.com"),
    (
        "sk-ssh-ed25519-cert-v01@openssh.com",
        "sk-ssh-ed25519-cert-v01@openssh.com",
    ),
    ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256"),
    (
        "ecdsa-sha2-nistp256-cert-v01@openssh.com",
        "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    ),
    ("ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384"),
    (
        "ecdsa-sha2-nistp384-cert-v01@openssh.com",
        "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    ),
    ("ecdsa-sha2-nistp521", "ecdsa-sha2-nistp521"),
    (
        "ecdsa-sha2-nistp521-cert-v01@openssh.com",
        "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    ),
    (
        "sk-ecdsa-sha2-nistp256@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    ),
    (
        "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
        "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
    ),
    (
        "webauthn-sk-ecdsa-sha2-nistp256@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    ),
    ("ssh-dss", "ssh-dss"),
    (
        "ssh-dss-cert-v01@openssh.com",
        "ssh-dss-cert-v01@openssh.com",
    ),
    ("ssh-rsa", "ssh-rsa"),
    ("rsa-sha2-256", "ssh-rsa"),
    ("rsa-sha2-512", "ssh-rsa"),
    (
        "ssh-rsa-cert-v01@openssh.com",
        "ssh-rsa-cert-v01@openssh.com",
    ),
    (
        "rsa-sha2-256-cert-v01@openssh.com",
        "ssh-rsa-cert-v01@openssh.com",
    ),
    (
        "rsa-sha2-512-cert-v01@openssh.com",
        "ssh-rsa-cert-v01@openssh.com",
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum KnownHostsError {
    // `cause`, not `source`: a failed write is logged by itself (the key is then trusted for
    // the connection only) and health findings show these, so the cause is in the message.
    #[error("cannot read {}: {cause}", .path.display())]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "{} is larger than {} MiB, too large for a known_hosts file: point known_hosts at the right file",
        .path.display(), MAX_FILE_BYTES / (1024 * 1024)
    )]
    TooLarge { path: PathBuf },
    #[error("{} is not a regular file: point known_hosts at a file (or /dev/null to record nothing)", .path.display())]
    NotAFile { path: PathBuf },
    #[error("cannot record the host key in {}: {cause}", .path.display())]
    Write {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot hash the known_hosts line: the system gave no random salt")]
    NoRandomness,
}

impl crate::exit::ExitStatus for KnownHostsError {
    /// Without its known_hosts the bastion cannot be verified: OpenSSH's 255.
    fn exit_status(&self) -> u8 {
        crate::exit::UNREACHABLE
    }
}

/// What a line's marker says about its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    None,
    /// `@revoked`: the key must never be accepted for the matching hosts.
    Revoked,
    /// `@cert-authority`: a CA that signs host certificates (recognised; never a host key).
    CertAuthority,
}

#[derive(Debug, Clone)]
enum Hosts {
    /// `|1|salt|hash` as written, with its decoded salt.
    Hashed { field: Vec<u8>, salt: Vec<u8> },
    /// A comma-separated pattern list, as written.
    Patterns(Vec<u8>),
}

/// The key on a line: a plain key, or a certificate (which no plain key ever equals).
#[derive(Debug, Clone)]
pub enum LineKey {
    Plain(PublicKey),
    Certificate(Box<Certificate>),
}

impl LineKey {
    /// The public key itself (a certificate's signed key).
    pub(crate) fn key_data(&self) -> &KeyData {
        match self {
            LineKey::Plain(k) => k.key_data(),
            LineKey::Certificate(c) => c.public_key(),
        }
    }

    /// The key as a plain public key, for messages.
    pub fn public_key(&self) -> PublicKey {
        match self {
            LineKey::Plain(k) => k.clone(),
            LineKey::Certificate(c) => PublicKey::new(c.public_key().clone(), ""),
        }
    }

    /// OpenSSH's `sshkey_equal` against a plain offered key: same type, same key.
    fn equals(&self, offered: &PublicKey) -> bool {
        matches!(self, LineKey::Plain(k) if k.key_data() == offered.key_data())
    }
}

/// One usable line of a known_hosts file.
#[derive(Debug, Clone)]
pub struct Entry {
    /// 1-based line number in the file.
    pub line: usize,
    pub marker: Marker,
    hosts: Hosts,
    pub key: LineKey,
}

/// A parsed known_hosts file. Lines OpenSSH would skip (an unknown key type, a blob of
/// another type, a field split by anything but space or tab, garbage) are skipped.
#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    pub entries: Vec<Entry>,
}

/// The result of looking a host's key up.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// The key is recorded for this host.
    Known { line: usize },
    /// The host has no recorded key.
    Unknown,
    /// The host is recorded with another key; the line OpenSSH names and its key.
    Changed { line: usize, recorded: PublicKey },
    /// The key is marked `@revoked` for this host.
    Revoked { line: usize },
}

/// The name OpenSSH looks up and records: the host in lower case on port 22, else
/// `[host]:port`.
pub fn host_name(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

/// Whether OpenSSH would record a key under `host`: a name holding pattern or field
/// characters (`*.x`, `a,b`) would become a wildcard or a broken line.
pub fn recordable(host: &str) -> bool {
    !host.is_empty() && !host.bytes().any(|b| NOT_RECORDABLE.contains(&b))
}

/// The SHA256 fingerprint as OpenSSH prints it: `SHA256:base64`.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The line `append` writes for a newly accepted key: `name type base64`, the name hashed
/// (`|1|salt|hash`, as `HashKnownHosts yes` writes it) when `hashed`. Fails only when the
/// system has no randomness for the salt.
pub fn entry_line(
    host: &str,
    port: u16,
    key: &PublicKey,
    hashed: bool,
) -> Result<String, KnownHostsError> {
    let name = host_name(host, port);
    let name = if hashed {
        let mut salt = [0u8; SHA1_LEN];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
            .map_err(|_| KnownHostsError::NoRandomness)?;
        hashed_name(&salt, name.as_bytes())
    } else {
        name
    };
    // The key as OpenSSH writes it, without the server's comment.
    let text = PublicKey::new(key.key_data().clone(), "")
        .to_openssh()
        .unwrap_or_default();
    Ok(format!("{name} {}\n", text.trim()))
}

/// `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`, as OpenSSH's `host_hash` writes it.
fn hashed_name(salt: &[u8], name: &[u8]) -> String {
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, salt),
        name,
    );
    format!(
        "{HASH_MAGIC}{}|{}",
        B64.encode(salt),
        B64.encode(tag.as_ref())
    )
}

impl KnownHosts {
    /// Parses a known_hosts file's bytes as OpenSSH reads them: lines end at `\n` (or a NUL,
    /// where C stops reading), fields are separated by spaces and tabs only.
    pub fn parse(text: &[u8]) -> KnownHosts {
        let entries = text
            .split(|b| *b == b'\n')
            .enumerate()
            .filter_map(|(i, l)| {
                let l = l.split(|b| *b == 0).next().unwrap_or_default();
                parse_line(i + 1, l)
            })
            .collect();
        KnownHosts { entries }
    }

    /// Looks up `key` for `host:port` as OpenSSH's `check_host_key` does: a recorded equal
    /// key is known; any other key recorded for the name (of whatever type, certificates
    /// included) means it changed; a matching `@revoked` key wins over both. On a port other
    /// than 22, a host with nothing recorded under `[host]:port` is known when the bare host
    /// name records this very key (OpenSSH's "found matching key w/out port").
    pub fn check(&self, host: &str, port: u16, key: &PublicKey) -> Verdict {
        let verdict = self.check_name(&host_name(host, port), key);
        if matches!(verdict, Verdict::Unknown)
            && port != 22
            && let Verdict::Known { line } = self.check_name(&host_name(host, 22), key)
        {
            return Verdict::Known { line };
        }
        verdict
    }

    fn check_name(&self, name: &str, key: &PublicKey) -> Verdict {
        let matching = || self.entries.iter().filter(|e| e.matches(name.as_bytes()));
        if let Some(e) =
            matching().find(|e| e.marker == Marker::Revoked && e.key.key_data() == key.key_data())
        {
            return Verdict::Revoked { line: e.line };
        }
        let mut verdict = Verdict::Unknown;
        for e in matching().filter(|e| e.marker == Marker::None) {
            if e.key.equals(key) {
                return Verdict::Known { line: e.line };
            }
            // OpenSSH names the last different key it met ("Offending key in file:line").
            verdict = Verdict::Changed {
                line: e.line,
                recorded: e.key.public_key(),
            };
        }
        verdict
    }

    /// The key algorithms recorded for `host:port`, in file order, without repeats: the
    /// client asks the server for these first, as OpenSSH does.
    pub fn algorithms_for(&self, host: &str, port: u16) -> Vec<Algorithm> {
        let name = host_name(host, port);
        let mut out: Vec<Algorithm> = Vec::new();
        for e in self
            .entries
            .iter()
            .filter(|e| e.marker == Marker::None && e.matches(name.as_bytes()))
        {
            if let LineKey::Plain(k) = &e.key
                && !out.contains(&k.algorithm())
            {
                out.push(k.algorithm());
            }
        }
        out
    }
}

impl Entry {
    /// Whether this line's host field names `name` (`host` or `[host]:port`, lower case).
    pub fn matches(&self, name: &[u8]) -> bool {
        match &self.hosts {
            Hosts::Hashed { field, salt } => hashed_name(salt, name).as_bytes() == field,
            Hosts::Patterns(list) => match_host_list(name, list) == ListMatch::Positive,
        }
    }
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn skip_blanks(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| is_blank(**b)).count();
    &s[n..]
}

/// Splits off the first field: up to the first space or tab.
fn split_field(s: &[u8]) -> (&[u8], &[u8]) {
    let n = s.iter().position(|b| is_blank(*b)).unwrap_or(s.len());
    (&s[..n], &s[n..])
}

/// hostfile.c's `hostkeys_foreach_file` for one line.
fn parse_line(line: usize, text: &[u8]) -> Option<Entry> {
    let rest = skip_blanks(text);
    if rest.is_empty() || rest[0] == b'#' {
        return None;
    }
    let (marker, rest) = parse_marker(rest)?;
    let (hosts, rest) = split_field(rest);
    let hosts = parse_hosts(hosts)?;
    let rest = skip_blanks(rest);
    if rest.is_empty() || rest[0] == b'#' {
        return None;
    }
    let key = parse_key(rest)?;
    Some(Entry {
        line,
        marker,
        hosts,
        key,
    })
}

/// hostfile.c's `check_markers`: one `@marker`, ended by the line's first space (or else
/// its first tab), then blanks.
fn parse_marker(s: &[u8]) -> Option<(Marker, &[u8])> {
    if s.first() != Some(&b'@') {
        return Some((Marker::None, s));
    }
    let end = s
        .iter()
        .position(|b| *b == b' ')
        .or_else(|| s.iter().position(|b| *b == b'\t'))?;
    let marker = match &s[..end] {
        b"@cert-authority" => Marker::CertAuthority,
        b"@revoked" => Marker::Revoked,
        _ => return None,
    };
    let rest = skip_blanks(&s[end..]);
    // Only one marker is allowed.
    (rest.first() != Some(&b'@')).then_some((marker, rest))
}

fn parse_hosts(field: &[u8]) -> Option<Hosts> {
    if field.first() != Some(&b'|') {
        return Some(Hosts::Patterns(field.to_vec()));
    }
    // hostfile.c's `extract_salt`: a bad salt makes the line unusable for every host.
    let rest = field.strip_prefix(HASH_MAGIC.as_bytes())?;
    let end = rest.iter().position(|b| *b == b'|')?;
    if end == 0 || end > MAX_SALT_BASE64 {
        return None;
    }
    let salt = decode_base64(&rest[..end])?;
    (salt.len() == SHA1_LEN).then(|| Hosts::Hashed {
        field: field.to_vec(),
        salt,
    })
}

/// OpenSSH's `b64_pton`: white space (C's `isspace`) anywhere is skipped.
fn decode_base64(s: &[u8]) -> Option<Vec<u8>> {
    let clean: Vec<u8> = s
        .iter()
        .copied()
        .filter(|b| !matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
        .collect();
    B64.decode(clean).ok()
}

/// sshkey.c's `sshkey_read`: a type name OpenSSH knows, blanks, a base64 blob whose key is
/// of that type.
fn parse_key(s: &[u8]) -> Option<LineKey> {
    let (type_name, rest) = split_field(s);
    if rest.is_empty() {
        return None;
    }
    let (_, blob_type) = KEY_TYPES
        .iter()
        .find(|(name, _)| name.as_bytes() == type_name)?;
    let (blob, _comment) = split_field(skip_blanks(rest));
    let blob = decode_base64(blob)?;
    if wire_type(&blob)? != blob_type.as_bytes() {
        return None;
    }
    if blob_type.contains("-cert-v01@") {
        Certificate::from_bytes(&blob)
            .ok()
            .map(|c| LineKey::Certificate(Box::new(c)))
    } else {
        PublicKey::from_bytes(&blob).ok().map(LineKey::Plain)
    }
}

/// The key type name a wire-format key blob starts with.
fn wire_type(blob: &[u8]) -> Option<&[u8]> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    blob.get(4..4 + len)
}
