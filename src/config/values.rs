//! The value types of the config file: one `FromStr` (or one range) per type, used both by
//! serde (`try_from`) when the file is read and by `init` when an answer is typed, so that
//! what the wizard accepts always loads. Knows nothing of files, profiles or SSH.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// Implements `TryFrom<String>` through `FromStr`, for `#[serde(try_from = "String")]`.
macro_rules! from_string {
    ($($t:ty),*) => {$(
        impl TryFrom<String> for $t {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                s.parse()
            }
        }
    )*};
}

from_string!(
    HostName,
    NonEmpty,
    JumpHost,
    HostPort,
    HttpUrl,
    UrlPath,
    HostKeyPolicy,
    ProfileName
);

/// A TOML integer. Its one job is the message for a wrong type: "expected a number", not the
/// name of a Rust integer type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Number(pub i64);

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Number;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Number, E> {
                Ok(Number(n))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Number, E> {
                i64::try_from(n)
                    .map(Number)
                    .map_err(|_| E::custom(format!("{n} is far too large")))
            }
        }
        d.deserialize_i64(Visitor)
    }
}

/// `n` when it lies in `min..=max`, else a message naming the range and the unit.
pub fn in_range<T: TryFrom<i64>>(n: Number, min: i64, max: i64, unit: &str) -> Result<T, String> {
    if (min..=max).contains(&n.0)
        && let Ok(v) = T::try_from(n.0)
    {
        return Ok(v);
    }
    Err(format!("{} is out of range ({min}-{max} {unit})", n.0))
}

/// A TCP port, 1 to 65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(try_from = "Number")]
pub struct Port(pub u16);

impl TryFrom<Number> for Port {
    type Error = String;
    fn try_from(n: Number) -> Result<Self, String> {
        in_range(n, 1, 65535, "port").map(Port)
    }
}

impl Port {
    /// Validates a typed port as the config file does.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().parse::<u16>() {
            Ok(p) if p > 0 => Ok(Port(p)),
            _ => Err(format!("`{s}` is not a port (1-65535)")),
        }
    }
}

/// `connect_timeout`: whole seconds, 1 to 600.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(try_from = "Number")]
pub struct Seconds(pub u64);

impl TryFrom<Number> for Seconds {
    type Error = String;
    fn try_from(n: Number) -> Result<Self, String> {
        in_range(n, 1, 600, "seconds").map(Seconds)
    }
}

/// `keepalive_interval`: seconds between keepalives, 0 (off) to 3600. A larger value would
/// overflow the SSH client's timer arithmetic.
pub fn keepalive_interval<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    in_range(Number::deserialize(d)?, 0, 3600, "seconds, 0 = off").map_err(serde::de::Error::custom)
}

/// A service's `local_port`: 0 (any free port) to 65535.
pub fn local_port<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    in_range(Number::deserialize(d)?, 0, 65535, "port, 0 = any free port")
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// A profile's name. It is also part of keyring secret names (`NAME/identity-passphrase`):
/// letters, digits, `-`, `_`, `.`, at most 64, not starting with `.` or `-`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct ProfileName(pub String);

impl FromStr for ProfileName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if !s.is_empty() && s.len() <= 64 && s.chars().all(safe) && !s.starts_with(['.', '-']) {
            Ok(ProfileName(s.to_string()))
        } else {
            Err(format!(
                "`{s}` is not a profile name (letters, digits, `-`, `_`, `.`, not first `.` or `-`; at most 64)"
            ))
        }
    }
}

/// A host name or address: not empty, no spaces, no scheme; IPv6 brackets removed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct HostName(pub String);

impl FromStr for HostName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        if s.contains("://") {
            return Err(format!("`{s}` is a URL; give only the host name"));
        }
        if s.chars().any(|c| c.is_whitespace() || c == '/' || c == '@') {
            return Err(format!("`{s}` is not a host name"));
        }
        Ok(HostName(
            s.trim_start_matches('[').trim_end_matches(']').to_string(),
        ))
    }
}

impl HostName {
    /// Validates a host name or address as the config file does.
    pub fn parse(s: &str) -> Result<Self, String> {
        s.parse()
    }
}

/// A string that must not be empty.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct NonEmpty(pub String);

impl FromStr for NonEmpty {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Err("must not be empty".into());
        }
        Ok(NonEmpty(s.to_string()))
    }
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Http,
    Https,
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        })
    }
}

/// A URL path: starts with `/`, no spaces.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct UrlPath(pub String);

impl FromStr for UrlPath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if !s.starts_with('/') || s.chars().any(char::is_whitespace) {
            return Err(format!("`{s}` is not a URL path (it starts with `/`)"));
        }
        Ok(UrlPath(s.to_string()))
    }
}

/// `HOST:PORT` (IPv6 in brackets), port required.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl FromStr for HostPort {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not HOST:PORT");
        if !s.contains(':') {
            return Err(bad());
        }
        let (host, port) = split_host_port(s, 0).ok_or_else(bad)?;
        if port == 0 {
            return Err(bad());
        }
        Ok(HostPort {
            host: HostName::parse(&host)?.0,
            port,
        })
    }
}

impl HostPort {
    pub fn parse(s: &str) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::dial::target(&self.host, self.port))
    }
}

/// An `http://` or `https://` URL with a host and port.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct HttpUrl {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
}

impl FromStr for HttpUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (scheme, rest, default) = if let Some(r) = s.strip_prefix("http://") {
            (Scheme::Http, r, 80)
        } else if let Some(r) = s.strip_prefix("https://") {
            (Scheme::Https, r, 443)
        } else {
            return Err(format!("`{s}` is not an http:// or https:// URL"));
        };
        let authority = rest.trim_end_matches('/');
        let (host, port) = split_host_port(authority, default)
            .filter(|(h, _)| !h.is_empty() && !h.contains('/'))
            .ok_or_else(|| format!("`{s}` has no valid host:port"))?;
        Ok(HttpUrl { scheme, host, port })
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}",
            self.scheme,
            crate::dial::target(&self.host, self.port)
        )
    }
}

/// `persist`: how long the kept agent stays after its last use, as `30s`, `10m`, `2h` or a
/// number of seconds; `0` means no agent. At most a week: an agent is no daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Persist(pub std::time::Duration);

/// The longest `persist`, in seconds (7 days).
const MAX_PERSIST: u64 = 7 * 24 * 3600;

impl Default for Persist {
    fn default() -> Self {
        Persist(std::time::Duration::from_secs(600))
    }
}

impl FromStr for Persist {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a duration (such as 30s, 10m, 2h, or 0 for no agent)");
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let n: u64 = digits.parse().map_err(|_| bad())?;
        let scale = match unit {
            "" | "s" => 1,
            "m" => 60,
            "h" => 3600,
            _ => return Err(bad()),
        };
        match n.checked_mul(scale) {
            Some(secs) if secs <= MAX_PERSIST => Ok(Persist(std::time::Duration::from_secs(secs))),
            _ => Err(format!("`{s}` is out of range (0 to 7 days)")),
        }
    }
}

impl<'de> Deserialize<'de> for Persist {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Persist;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"10m\", or 0")
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Persist, E> {
                n.to_string().parse().map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Persist, E> {
                n.to_string().parse().map_err(E::custom)
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Persist, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// What to do with a host key that known_hosts does not hold yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(try_from = "String")]
pub enum HostKeyPolicy {
    /// Only a recorded key is accepted.
    Yes,
    /// An unknown host's key is recorded and accepted.
    AcceptNew,
    /// Ask on a terminal; refuse without one.
    #[default]
    Ask,
}

impl fmt::Display for HostKeyPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostKeyPolicy::Yes => "yes",
            HostKeyPolicy::AcceptNew => "accept-new",
            HostKeyPolicy::Ask => "ask",
        })
    }
}

impl FromStr for HostKeyPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "yes" => Ok(HostKeyPolicy::Yes),
            "accept-new" => Ok(HostKeyPolicy::AcceptNew),
            "ask" => Ok(HostKeyPolicy::Ask),
            _ => Err(format!(
                "`{s}` is not a host key policy (yes, accept-new, ask)"
            )),
        }
    }
}

/// `[user@]host[:port]` of an SSH host to jump through, as OpenSSH's `-J`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct JumpHost {
    pub user: Option<String>,
    pub host: String,
    pub port: u16,
}

impl FromStr for JumpHost {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (user, rest) = match s.rsplit_once('@') {
            Some((u, r)) if !u.is_empty() => (Some(u.to_string()), r),
            Some(_) => return Err(format!("`{s}` has an empty user name")),
            None => (None, s),
        };
        let (host, port) =
            split_host_port(rest, 22).ok_or_else(|| format!("`{s}` is not [user@]host[:port]"))?;
        let host = HostName::parse(&host)?.0;
        Ok(JumpHost { user, host, port })
    }
}

impl JumpHost {
    pub fn parse(s: &str) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for JumpHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Splits `host:port`, `[v6]:port`, or a bare host (with `default` as its port).
pub fn split_host_port(s: &str, default: u16) -> Option<(String, u16)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok().filter(|p| *p > 0)?,
            None if after.is_empty() => default,
            None => return None,
        };
        return Some((host.to_string(), port));
    }
    match s.rsplit_once(':') {
        Some((h, _)) if h.contains(':') => Some((s.to_string(), default)), // bare IPv6
        Some((h, p)) => Some((h.to_string(), p.parse().ok().filter(|p| *p > 0)?)),
        None => Some((s.to_string(), default)),
    }
}

/// Reads a PEM CA bundle (`ca_file`) into a root store: every `CERTIFICATE` block, the text
/// around blocks skipped as openssl does. A file that cannot be read, holds no certificate or
/// one that does not parse is an error saying so.
pub fn read_ca_bundle(path: &std::path::Path) -> Result<rustls::RootCertStore, String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for (i, cert) in CertificateDer::pem_slice_iter(&pem).enumerate() {
        let cert = cert.map_err(|e| format!("{shown} is not a PEM CA bundle: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("{shown}: certificate {} is not usable as a CA: {e}", i + 1))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "{shown} holds no PEM certificate: name a file of `-----BEGIN CERTIFICATE-----` blocks"
        ));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_parsers() {
        assert!(Port::parse("0").is_err());
        assert!(Port::parse("65536").is_err());
        assert_eq!(Port::parse("2222").unwrap(), Port(2222));
        assert!(HostName::parse("ssh://x").is_err());
        assert_eq!(
            "accept-new".parse::<HostKeyPolicy>().unwrap(),
            HostKeyPolicy::AcceptNew
        );
        assert!("no".parse::<HostKeyPolicy>().is_err());
    }

    #[test]
    fn persist_takes_seconds_minutes_hours_and_zero() {
        let secs = |s: &str| s.parse::<Persist>().map(|p| p.0.as_secs());
        assert_eq!(secs("0"), Ok(0));
        assert_eq!(secs("2s"), Ok(2));
        assert_eq!(secs("10m"), Ok(600));
        assert_eq!(secs("2h"), Ok(7200));
        assert_eq!(secs("90"), Ok(90));
        for bad in ["", "m", "10 m", "1d", "-1", "10.5m"] {
            assert!(
                secs(bad).unwrap_err().contains("is not a duration"),
                "{bad}"
            );
        }
        assert!(secs("200h").unwrap_err().contains("out of range"));
    }

    #[test]
    fn profile_names_are_safe_keyring_prefixes() {
        for good in ["prod", "eu-west.1", "a_b", "A9"] {
            assert!(good.parse::<ProfileName>().is_ok(), "{good}");
        }
        let long = "x".repeat(65);
        for bad in ["", "..", ".hidden", "-x", "a/b", "a b", "é", long.as_str()] {
            assert!(bad.parse::<ProfileName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges_name_their_bounds() {
        assert_eq!(
            in_range::<u16>(Number(0), 1, 65535, "port").unwrap_err(),
            "0 is out of range (1-65535 port)"
        );
        assert_eq!(in_range::<u64>(Number(3600), 0, 3600, "s").unwrap(), 3600);
        assert!(in_range::<u64>(Number(-1), 0, 3600, "s").is_err());
    }

    #[test]
    fn jump_host_forms() {
        let j = JumpHost::parse("ops@jump.example.com:2222").unwrap();
        assert_eq!(
            (j.user.as_deref(), j.host.as_str(), j.port),
            (Some("ops"), "jump.example.com", 2222)
        );
        let j = JumpHost::parse("[2001:db8::1]:22").unwrap();
        assert_eq!((j.host.as_str(), j.port), ("2001:db8::1", 22));
        assert_eq!(JumpHost::parse("jump").unwrap().port, 22);
        assert!(JumpHost::parse("@jump").is_err());
        assert!(JumpHost::parse("jump:x").is_err());
    }

    #[test]
    fn split_host_port_forms() {
        assert_eq!(split_host_port("h:80", 1), Some(("h".into(), 80)));
        assert_eq!(split_host_port("h", 1), Some(("h".into(), 1)));
        assert_eq!(split_host_port("[::1]:80", 1), Some(("::1".into(), 80)));
        assert_eq!(split_host_port("::1", 1), Some(("::1".into(), 1)));
        assert_eq!(split_host_port("h:0", 1), None);
    }
}
