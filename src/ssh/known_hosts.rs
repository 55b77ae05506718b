//! OpenSSH's known_hosts format: parse, match a host and key, append a new line.
//!
//! Pure apart from `load` and `append`: no network, no prompts, no policy. Understands host
//! patterns (`*`, `?`, `!negation`), `[host]:port` names for ports other than 22, hashed
//! `|1|salt|hmac` names (HMAC-SHA1), and the `@revoked` and `@cert-authority` markers.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use russh::keys::ssh_key::{Algorithm, HashAlg, PublicKey};

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
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
    Patterns(Vec<String>),
}

/// One usable line of a known_hosts file.
#[derive(Debug, Clone)]
pub struct Entry {
    /// 1-based line number in the file.
    pub line: usize,
    pub marker: Marker,
    hosts: Hosts,
    pub key: PublicKey,
}

/// A parsed known_hosts file. Lines that cannot be parsed (an unknown key type, garbage) are
/// skipped, as OpenSSH skips them.
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
    /// The host is recorded with another key; the first such line and its key.
    Changed { line: usize, recorded: PublicKey },
    /// The key is marked `@revoked` for this host.
    Revoked { line: usize },
}

/// The name OpenSSH looks up and records: `host` on port 22, else `[host]:port`.
pub fn host_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// The SHA256 fingerprint as OpenSSH prints it: `SHA256:base64`.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The line `append` writes for a newly accepted key: `name type base64`.
pub fn entry_line(host: &str, port: u16, key: &PublicKey) -> String {
    let mut k = key.clone();
    k.set_comment("");
    let text = k.to_openssh().unwrap_or_default();
    format!("{} {}\n", host_name(host, port), text.trim())
}

impl KnownHosts {
    pub fn parse(text: &str) -> KnownHosts {
        let entries = text
            .lines()
            .enumerate()
            .filter_map(|(i, l)| parse_line(i + 1, l))
            .collect();
        KnownHosts { entries }
    }

    /// Looks up `key` for `host:port`. A revoked key wins over everything; then a recorded
    /// identical key; then any other plain key recorded for the host means the key changed.
    pub fn check(&self, host: &str, port: u16, key: &PublicKey) -> Verdict {
        let name = host_name(host, port);
        let matching: Vec<&Entry> = self.entries.iter().filter(|e| e.matches(&name)).collect();
        if let Some(e) = matching
            .iter()
            .find(|e| e.marker == Marker::Revoked && same_key(&e.key, key))
        {
            return Verdict::Revoked { line: e.line };
        }
        let plain: Vec<&&Entry> = matching
            .iter()
            .filter(|e| e.marker == Marker::None)
            .collect();
        if let Some(e) = plain.iter().find(|e| same_key(&e.key, key)) {
            return Verdict::Known { line: e.line };
        }
        // Prefer reporting a recorded key of the same type: that is the one that changed.
        let changed = plain
            .iter()
            .find(|e| e.key.algorithm() == key.algorithm())
            .or_else(|| plain.first());
        match changed {
            Some(e) => Verdict::Changed {
                line: e.line,
                recorded: e.key.clone(),
            },
            None => Verdict::Unknown,
        }
    }

    /// The key algorithms recorded for `host:port`, in file order, without repeats: the
    /// client asks the server for these first, as OpenSSH does.
    pub fn algorithms_for(&self, host: &str, port: u16) -> Vec<Algorithm> {
        let name = host_name(host, port);
        let mut out: Vec<Algorithm> = Vec::new();
        for e in self
            .entries
            .iter()
            .filter(|e| e.marker == Marker::None && e.matches(&name))
        {
            let a = e.key.algorithm();
            if !out.contains(&a) {
                out.push(a);
            }
        }
        out
    }
}

impl Entry {
    /// Whether this line's host field names `name` (`host` or `[host]:port`).
    pub fn matches(&self, name: &str) -> bool {
        match &self.hosts {
            Hosts::Hashed { salt, hash } => {
                let tag = ring::hmac::sign(
                    &ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, salt),
                    name.as_bytes(),
                );
                tag.as_ref() == hash.as_slice()
            }
            Hosts::Patterns(patterns) => {
                let mut hit = false;
                for p in patterns {
                    if let Some(neg) = p.strip_prefix('!') {
                        if wildcard_match(&neg.to_ascii_lowercase(), &name.to_ascii_lowercase()) {
                            return false;
                        }
                    } else if wildcard_match(&p.to_ascii_lowercase(), &name.to_ascii_lowercase()) {
                        hit = true;
                    }
                }
                hit
            }
        }
    }
}

fn same_key(a: &PublicKey, b: &PublicKey) -> bool {
    a.key_data() == b.key_data()
}

fn parse_line(line: usize, text: &str) -> Option<Entry> {
    let text = text.trim();
    if text.is_empty() || text.starts_with('#') {
        return None;
    }
    let mut fields = text.split_whitespace();
    let mut first = fields.next()?;
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => Marker::CertAuthority,
        m if m.starts_with('@') => return None,
        _ => Marker::None,
    };
    if marker != Marker::None {
        first = fields.next()?;
    }
    let hosts = parse_hosts(first)?;
    let key_type = fields.next()?;
    let blob = fields.next()?;
    let key = russh::keys::parse_public_key_base64(blob).ok()?;
    // The type named on the line must be the type inside the blob.
    if key.algorithm().as_str() != key_type {
        return None;
    }
    Some(Entry {
        line,
        marker,
        hosts,
        key,
    })
}

fn parse_hosts(field: &str) -> Option<Hosts> {
    if let Some(rest) = field.strip_prefix("|1|") {
        let (salt, hash) = rest.split_once('|')?;
        let salt = B64.decode(salt).ok()?;
        let hash = B64.decode(hash).ok()?;
        if salt.len() != 20 || hash.len() != 20 {
            return None;
        }
        return Some(Hosts::Hashed { salt, hash });
    }
    if field.starts_with('|') {
        return None; // another hash scheme OpenSSH does not know either
    }
    Some(Hosts::Patterns(
        field
            .split(',')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect(),
    ))
}

/// OpenSSH's `match_pattern`: `*` matches any run, `?` any one character.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Reads a known_hosts file; a missing file is an empty one.
pub fn load(path: &Path) -> std::io::Result<KnownHosts> {
    // A line that is not UTF-8 (a stray comment) must not hide the others.
    match std::fs::read(path) {
        Ok(bytes) => Ok(KnownHosts::parse(&String::from_utf8_lossy(&bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KnownHosts::default()),
        Err(e) => Err(e),
    }
}

/// Appends one line, keeping every existing byte: the new content is written to a temporary
/// file next to it and renamed over it, so a crash never leaves half a file. A file without
/// a final newline gets one first. The folder is created (0700) when missing.
pub fn append(path: &Path, line: &str) -> std::io::Result<()> {
    let (mut bytes, permissions) = match std::fs::read(path) {
        Ok(b) => (b, Some(std::fs::metadata(path)?.permissions())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Vec::new(), None),
        Err(e) => return Err(e),
    };
    if !bytes.is_empty() && !bytes.ends_with(b"\n") {
        bytes.push(b'\n');
    }
    bytes.extend_from_slice(line.as_bytes());
    let access = match permissions {
        Some(p) => crate::files::Access::Exactly(p),
        // OpenSSH's own mode for a new known_hosts.
        None => crate::files::Access::Public,
    };
    crate::files::write_atomic(path, &bytes, access)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real keys and lines from `ssh-keygen -t ...` and `ssh-keygen -H` (OpenSSH 9.2).
    const ED: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMVSHPfAH9OjPRCMgDLa7/+tmB0yszAzxznHH/GWAumb";
    const ED_FP: &str = "SHA256:5WSHxi5JiU6OY5Sh5JbkX6IlMIrNoA6r/gEpWzuEbHo";
    const EC: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBD0EBJwyoaet1VYyacaj1YO051Z7FYiTFslzKnknDCUdKix0Ua3F11cX9pmmWNheg6DMy9O2xraIhcFlpXDVAOk=";
    const EC_FP: &str = "SHA256:YxPwSCdmZFeGW0pTrZGCWLHeOUlRxN2l8I5MeH/EIio";
    const RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDqrTxQGbdFdCQ/cjUzzKHZCaSPBzHAI5i5G1t+k7Ijq3+6ZuT6xOj/ZX2xpwNdm3Fu5oatHFiewnsve8+DOIobxIUqF0bKmxxogtVnbQmqig40XmD832SAudYM0cK0UHabBRJjlO/4qznIAkBnnVsx/0onLpBJuYabiKuRX5LX0QwHLQ6Xsz/3vnGc0KKCT8DgqO4UedrVmIXDHV0+CFgDE6Mnf98118B2qPLV33d4vTdKND0pPmQ0noXo6mRqP6IZUyRVcufCAWwTChOm+uOx3HZRMZfHcy51PLFqtKEp0c2xrPAzx7K3K5x/gYi9chzks7dHPWfc3X+ujSvH6+HX";
    /// `bastion.example.com` with ED, hashed.
    const HASHED_22: &str = "|1|yJOvciKoEMw5fWD5Gxl3roFC6o4=|LvJ+jQqPlTQAMlrU8fXP1mBYEyY= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMVSHPfAH9OjPRCMgDLa7/+tmB0yszAzxznHH/GWAumb";
    /// `[10.0.0.5]:2222` with EC, hashed.
    const HASHED_2222: &str = "|1|U2urylnUkF+AzVYzUKyiKbkxf7g=|DgHE0yJQUevowQu/dFF78w2MrWI= ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBD0EBJwyoaet1VYyacaj1YO051Z7FYiTFslzKnknDCUdKix0Ua3F11cX9pmmWNheg6DMy9O2xraIhcFlpXDVAOk=";

    fn key(s: &str) -> PublicKey {
        PublicKey::from_openssh(s).unwrap()
    }

    #[test]
    fn hashed_entries_from_ssh_keygen_match_their_host_only() {
        let kh = KnownHosts::parse(&format!("{HASHED_22}\n{HASHED_2222}\n"));
        assert_eq!(kh.entries.len(), 2);
        assert!(matches!(
            kh.check("bastion.example.com", 22, &key(ED)),
            Verdict::Known { line: 1 }
        ));
        assert!(matches!(
            kh.check("10.0.0.5", 2222, &key(EC)),
            Verdict::Known { line: 2 }
        ));
        // Same host, other port: a different name, so unknown.
        assert!(matches!(
            kh.check("bastion.example.com", 2222, &key(ED)),
            Verdict::Unknown
        ));
        assert!(matches!(
            kh.check("10.0.0.5", 22, &key(EC)),
            Verdict::Unknown
        ));
        assert!(matches!(
            kh.check("other.example.com", 22, &key(ED)),
            Verdict::Unknown
        ));
    }

    #[test]
    fn hashed_entry_with_another_key_is_a_change() {
        let kh = KnownHosts::parse(&format!("{HASHED_22}\n"));
        match kh.check("bastion.example.com", 22, &key(RSA)) {
            Verdict::Changed { line, recorded } => {
                assert_eq!(line, 1);
                assert_eq!(fingerprint(&recorded), ED_FP);
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn bracketed_port_entries_match_only_that_port() {
        let kh = KnownHosts::parse(&format!("[b.example.com]:2222 {ED}\nb.example.com {EC}\n"));
        assert!(matches!(
            kh.check("b.example.com", 2222, &key(ED)),
            Verdict::Known { line: 1 }
        ));
        assert!(matches!(
            kh.check("b.example.com", 22, &key(EC)),
            Verdict::Known { line: 2 }
        ));
        assert!(matches!(
            kh.check("b.example.com", 2222, &key(EC)),
            Verdict::Changed { line: 1, .. }
        ));
        assert!(matches!(
            kh.check("b.example.com", 2200, &key(ED)),
            Verdict::Unknown
        ));
    }

    #[test]
    fn several_names_wildcards_and_negation() {
        let kh = KnownHosts::parse(&format!(
            "a.example.com,10.0.0.1 {ED}\n*.internal,!secret.internal {EC}\nh?st {RSA}\n"
        ));
        assert!(matches!(
            kh.check("10.0.0.1", 22, &key(ED)),
            Verdict::Known { line: 1 }
        ));
        assert!(matches!(
            kh.check("A.EXAMPLE.COM", 22, &key(ED)),
            Verdict::Known { .. }
        ));
        assert!(matches!(
            kh.check("db.internal", 22, &key(EC)),
            Verdict::Known { line: 2 }
        ));
        assert!(matches!(
            kh.check("secret.internal", 22, &key(EC)),
            Verdict::Unknown
        ));
        assert!(matches!(
            kh.check("host", 22, &key(RSA)),
            Verdict::Known { line: 3 }
        ));
        assert!(matches!(kh.check("hoost", 22, &key(RSA)), Verdict::Unknown));
    }

    #[test]
    fn revoked_key_is_refused_even_when_also_recorded() {
        let kh = KnownHosts::parse(&format!("b {ED}\n@revoked * {ED}\n"));
        assert!(matches!(
            kh.check("b", 22, &key(ED)),
            Verdict::Revoked { line: 2 }
        ));
        // Revocation is of that key only.
        assert!(matches!(kh.check("c", 22, &key(EC)), Verdict::Unknown));
    }

    #[test]
    fn cert_authority_lines_are_recognised_but_never_a_host_key() {
        let kh = KnownHosts::parse(&format!("@cert-authority *.example.com {ED}\n"));
        assert_eq!(kh.entries.len(), 1);
        assert_eq!(kh.entries[0].marker, Marker::CertAuthority);
        assert!(matches!(
            kh.check("b.example.com", 22, &key(ED)),
            Verdict::Unknown
        ));
    }

    #[test]
    fn comments_blank_unknown_markers_and_garbage_are_skipped() {
        let text = format!(
            "# comment\n\n@weird b {ED}\nb ssh-ed25519 notbase64\nb ssh-rsa {}\n|2|x|y {ED}\n  b {EC} a comment\n",
            ED.split(' ').nth(1).unwrap()
        );
        let kh = KnownHosts::parse(&text);
        assert_eq!(kh.entries.len(), 1, "{:?}", kh.entries);
        assert_eq!(kh.entries[0].line, 7);
    }

    #[test]
    fn fingerprints_are_openssh_sha256() {
        assert_eq!(fingerprint(&key(ED)), ED_FP);
        assert_eq!(fingerprint(&key(EC)), EC_FP);
    }

    #[test]
    fn entry_line_uses_brackets_off_port_22_and_drops_comments() {
        let k = key(&format!("{ED} someone@laptop"));
        assert_eq!(
            entry_line("10.0.0.5", 2222, &k),
            format!("[10.0.0.5]:2222 {ED}\n")
        );
        assert_eq!(entry_line("b", 22, &k), format!("b {ED}\n"));
        let kh = KnownHosts::parse(&entry_line("10.0.0.5", 2222, &k));
        assert!(matches!(
            kh.check("10.0.0.5", 2222, &k),
            Verdict::Known { .. }
        ));
    }

    #[test]
    fn algorithms_for_lists_recorded_types_in_order() {
        let kh = KnownHosts::parse(&format!("b {EC}\nb {ED}\nc {RSA}\nb {EC}\n"));
        let names: Vec<String> = kh
            .algorithms_for("b", 22)
            .iter()
            .map(|a| a.as_str().to_string())
            .collect();
        assert_eq!(names, ["ecdsa-sha2-nistp256", "ssh-ed25519"]);
    }

    #[test]
    fn append_keeps_existing_bytes_and_adds_a_missing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/known_hosts");
        append(&p, "a x y\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a x y\n");
        std::fs::write(&p, "# keep me").unwrap();
        append(&p, "b x y\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "# keep me\nb x y\n");
    }

    #[test]
    fn append_keeps_the_file_mode_and_creates_new_files_0644() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("known_hosts");
        append(&p, "a x y\n").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&p), 0o644);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        append(&p, "b x y\n").unwrap();
        assert_eq!(mode(&p), 0o600);
    }

    #[test]
    fn wildcard_matching() {
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*c", "abbbc"));
        assert!(!wildcard_match("a*c", "abbb"));
        assert!(wildcard_match("[10.0.0.?]:22*", "[10.0.0.5]:2222"));
    }
}
