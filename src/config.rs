//! Profiles: where the config file is, what it may say, and which profile a command uses.
//!
//! Every error names the file, and for a bad key also the line and the key, so that a typo
//! is found without reading this code. It knows nothing of SSH or of clap.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

/// The name of the environment variable that names the config file.
pub const CONFIG_ENV: &str = "PARAGON_ADMIN_CONFIG";
/// The name of the environment variable that names the profile.
pub const PROFILE_ENV: &str = "PARAGON_ADMIN_PROFILE";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no config file at {path}: run `paragon-admin init` to create one")]
    Missing { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
    #[error("{path}:{line}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: no profiles: add a [profiles.NAME] table or run `paragon-admin init`")]
    NoProfiles { path: PathBuf },
    #[error("{path}: profile `{name}` not found (profiles: {known})")]
    UnknownProfile {
        path: PathBuf,
        name: String,
        known: String,
    },
    #[error(
        "{path}: several profiles and none chosen: pass --profile NAME or set default_profile (profiles: {known})"
    )]
    Ambiguous { path: PathBuf, known: String },
    #[error("no home directory to resolve `{path}`")]
    NoHome { path: String },
    #[error("cannot find the platform config directory: pass --config FILE")]
    NoConfigDir,
    #[error("{what}: {message}")]
    Answer { what: String, message: String },
    #[error("{path}: profile `{name}` already exists: pass --force to replace it")]
    ProfileExists { path: PathBuf, name: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl crate::exit::ExitStatus for ConfigError {
    /// Always a usage or configuration error (2).
    fn exit_status(&self) -> u8 {
        crate::exit::USAGE
    }
}

/// The whole config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub default_profile: Option<String>,
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// One bastion and how to reach it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub host: HostName,
    #[serde(default = "default_port")]
    pub port: Port,
    pub user: Option<NonEmpty>,
    pub identity_file: Option<NonEmpty>,
    pub known_hosts: Option<NonEmpty>,
    #[serde(default)]
    pub strict_host_key_checking: HostKeyPolicy,
    pub proxy_jump: Option<JumpHost>,
    #[serde(default = "default_keepalive")]
    pub keepalive_interval: u64,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Seconds,
    /// Services to forward and check, by name; overrides and additions to `builtin_services`.
    #[serde(default)]
    pub services: BTreeMap<String, toml::Spanned<ServiceConfig>>,
    /// How to reach the Kubernetes API.
    #[serde(default)]
    pub kube: KubeConfig,
    /// Datastores to check, as seen from the bastion.
    #[serde(default)]
    pub datastores: Datastores,
}

/// `[profiles.X.services.NAME]`: a service in the private network.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// HOST:PORT as resolved on the bastion.
    pub target: Option<HostPort>,
    /// The local port to listen on; 0 = any free port.
    pub local_port: Option<u16>,
    /// The URL scheme, for the printed URL.
    pub scheme: Option<Scheme>,
    /// The URL path, for the printed URL and `--open`.
    pub path: Option<UrlPath>,
}

/// A service with every field decided.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Service {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub local_port: u16,
    pub scheme: Scheme,
    pub path: String,
}

impl Service {
    /// The URL a browser opens for this service on `local`.
    pub fn url(&self, local: std::net::SocketAddr) -> String {
        format!("{}://{}{}", self.scheme, local, self.path)
    }
}

/// The monitoring services every installation has (PARAGON.md: the monitoring release runs
/// Grafana on 4500 and Prometheus on 9090; older logging releases run Kibana on 5601).
pub fn builtin_services() -> Vec<Service> {
    let svc = |name: &str, port: u16, path: &str| Service {
        name: name.to_string(),
        host: format!("{name}.paragon.svc.cluster.local"),
        port,
        local_port: port,
        scheme: Scheme::Http,
        path: path.to_string(),
    };
    vec![
        svc("grafana", 4500, "/"),
        svc("kibana", 5601, "/app/home"),
        // OpenObserve replaced Elasticsearch and Kibana in mid-2024 (ZO_HTTP_PORT 5080).
        svc("openobserve", 5080, "/"),
        svc("prometheus", 9090, "/"),
    ]
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

/// A URL path: starts with `/`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UrlPath(pub String);

impl<'de> Deserialize<'de> for UrlPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if !s.starts_with('/') || s.chars().any(char::is_whitespace) {
            return Err(serde::de::Error::custom(format!(
                "`{s}` is not a URL path (it starts with `/`)"
            )));
        }
        Ok(UrlPath(s))
    }
}

/// `HOST:PORT` (IPv6 in brackets), port required.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not HOST:PORT");
        if !s.contains(':') {
            return Err(bad());
        }
        let (host, port) = split_host_port(s, 0).ok_or_else(bad)?;
        if port == 0 {
            return Err(bad());
        }
        Ok(HostPort {
            host: parse_host(&host)?,
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::dial::target(&self.host, self.port))
    }
}

impl<'de> Deserialize<'de> for HostPort {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        HostPort::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `[profiles.X.kube]`: where the cluster's API is and which credentials to use.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeConfig {
    /// The API server's private endpoint, HOST:PORT as seen from the bastion.
    pub api_server: Option<HostPort>,
    /// A kubeconfig file on this machine; else the bastion's own is fetched into memory.
    pub kubeconfig: Option<NonEmpty>,
    /// The kubeconfig context to use; else its current context.
    pub context: Option<NonEmpty>,
}

/// `[profiles.X.datastores]`: endpoints as seen from the bastion.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Datastores {
    #[serde(default)]
    pub postgres: Vec<HostPort>,
    #[serde(default)]
    pub redis: Vec<HostPort>,
    /// S3-compatible endpoints (MinIO), as `http://HOST:PORT`.
    #[serde(default)]
    pub s3: Vec<HttpUrl>,
}

/// An `http://` or `https://` URL with a host and port.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HttpUrl {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
}

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let (scheme, rest, default) = if let Some(r) = s.strip_prefix("http://") {
            (Scheme::Http, r, 80)
        } else if let Some(r) = s.strip_prefix("https://") {
            (Scheme::Https, r, 443)
        } else {
            return Err(serde::de::Error::custom(format!(
                "`{s}` is not an http:// or https:// URL"
            )));
        };
        let authority = rest.trim_end_matches('/');
        let (host, port) = split_host_port(authority, default)
            .filter(|(h, _)| !h.is_empty() && !h.contains('/'))
            .ok_or_else(|| serde::de::Error::custom(format!("`{s}` has no valid host:port")))?;
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

fn default_port() -> Port {
    Port(22)
}
fn default_keepalive() -> u64 {
    15
}
fn default_connect_timeout() -> Seconds {
    Seconds(10)
}

/// What to do with a host key that known_hosts does not hold yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
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

impl std::str::FromStr for HostKeyPolicy {
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

/// A host name or address: not empty, no spaces, no scheme.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostName(pub String);

impl<'de> Deserialize<'de> for HostName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_host(&s)
            .map(HostName)
            .map_err(serde::de::Error::custom)
    }
}

impl HostName {
    /// Validates a host name or address as the config file does.
    pub fn parse(s: &str) -> Result<Self, String> {
        parse_host(s).map(HostName)
    }
}

fn parse_host(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.contains("://") {
        return Err(format!("`{s}` is a URL; give only the host name"));
    }
    if s.chars().any(|c| c.is_whitespace() || c == '/' || c == '@') {
        return Err(format!("`{s}` is not a host name"));
    }
    Ok(s.trim_start_matches('[').trim_end_matches(']').to_string())
}

/// A TCP port, 1 to 65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Port(pub u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        match u16::try_from(n) {
            Ok(p) if p > 0 => Ok(Port(p)),
            _ => Err(serde::de::Error::custom(format!(
                "port {n} is out of range (1-65535)"
            ))),
        }
    }
}

impl Port {
    /// Validates a port as the config file does.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().parse::<u16>() {
            Ok(p) if p > 0 => Ok(Port(p)),
            _ => Err(format!("`{s}` is not a port (1-65535)")),
        }
    }
}

/// A whole number of seconds, at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Seconds(pub u64);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        match u64::try_from(n) {
            Ok(s) if s > 0 => Ok(Seconds(s)),
            _ => Err(serde::de::Error::custom(format!(
                "{n} is not a positive number of seconds"
            ))),
        }
    }
}

/// A string that must not be empty.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NonEmpty(pub String);

impl<'de> Deserialize<'de> for NonEmpty {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim().is_empty() {
            return Err(serde::de::Error::custom("must not be empty"));
        }
        Ok(NonEmpty(s))
    }
}

/// `[user@]host[:port]` of an SSH host to jump through, as OpenSSH's `-J`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JumpHost {
    pub user: Option<String>,
    pub host: String,
    pub port: u16,
}

impl JumpHost {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (user, rest) = match s.rsplit_once('@') {
            Some((u, r)) if !u.is_empty() => (Some(u.to_string()), r),
            Some(_) => return Err(format!("`{s}` has an empty user name")),
            None => (None, s),
        };
        let (host, port) =
            split_host_port(rest, 22).ok_or_else(|| format!("`{s}` is not [user@]host[:port]"))?;
        let host = parse_host(&host)?;
        Ok(JumpHost { user, host, port })
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

impl<'de> Deserialize<'de> for JumpHost {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        JumpHost::parse(&s).map_err(serde::de::Error::custom)
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

/// A profile chosen and resolved: paths expanded, defaults filled.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub name: String,
    pub file: PathBuf,
    pub profile: Profile,
    pub user: String,
    pub identity_file: Option<PathBuf>,
    pub known_hosts: PathBuf,
}

/// Where the config file is: the flag, else the environment (clap folds both into `flag`),
/// else the platform's config directory.
pub fn config_path(flag: Option<&Path>) -> Result<PathBuf, ConfigError> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    let dir = dirs::config_dir().ok_or(ConfigError::NoConfigDir)?;
    Ok(dir.join("paragon-admin").join("config.toml"))
}

/// Reads and parses the config file; a missing file is `ConfigError::Missing`.
pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError::Missing {
                path: path.to_path_buf(),
            });
        }
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    parse(path, &text)
}

/// Parses config text; `path` is only for the messages.
pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, ConfigError> {
    let file = toml::from_str::<ConfigFile>(text).map_err(|e| located_error(path, text, &e))?;
    let builtin = builtin_services();
    for (profile, p) in &file.profiles {
        for (name, svc) in &p.services {
            let known = builtin.iter().any(|b| &b.name == name);
            if svc.get_ref().target.is_none() && !known {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    line: text[..svc.span().start.min(text.len())].matches('\n').count() + 1,
                    key: format!("profiles.{profile}.services.{name}"),
                    message: "a service that is not built in (grafana, kibana, openobserve, prometheus) needs a target".into(),
                });
            }
        }
    }
    Ok(file)
}

fn located_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let message = e.message().trim().replace('\n', " ");
    let Some(span) = e.span() else {
        return ConfigError::Syntax {
            path: path.to_path_buf(),
            line: 1,
            message,
        };
    };
    let start = span.start.min(text.len());
    let line = text[..start].matches('\n').count() + 1;
    match key_at(text, start) {
        Some(key) => ConfigError::Invalid {
            path: path.to_path_buf(),
            line,
            key,
            message,
        },
        None => ConfigError::Syntax {
            path: path.to_path_buf(),
            line,
            message,
        },
    }
}

/// The dotted key that the byte offset `at` belongs to: the nearest `[table]` header above it
/// joined with the key on its own line.
fn key_at(text: &str, at: usize) -> Option<String> {
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let line = text[line_start..line_end].trim();
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && !l.starts_with("[["))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    if line.starts_with('[') {
        return Some(
            line.trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string(),
        );
    }
    let key = line.split_once('=')?.0.trim().trim_matches('"').to_string();
    if key.is_empty() {
        return None;
    }
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key,
    })
}

impl ConfigFile {
    /// Picks the profile: `name`, else `default_profile`, else the only one.
    pub fn select(
        &self,
        path: &Path,
        name: Option<&str>,
    ) -> Result<(String, Profile), ConfigError> {
        let known = || self.profiles.keys().cloned().collect::<Vec<_>>().join(", ");
        if self.profiles.is_empty() {
            return Err(ConfigError::NoProfiles {
                path: path.to_path_buf(),
            });
        }
        let chosen = match name.or(self.default_profile.as_deref()) {
            Some(n) => n.to_string(),
            None if self.profiles.len() == 1 => {
                self.profiles.keys().next().cloned().unwrap_or_default()
            }
            None => {
                return Err(ConfigError::Ambiguous {
                    path: path.to_path_buf(),
                    known: known(),
                });
            }
        };
        match self.profiles.get(&chosen) {
            Some(p) => Ok((chosen, p.clone())),
            None => Err(ConfigError::UnknownProfile {
                path: path.to_path_buf(),
                name: chosen,
                known: known(),
            }),
        }
    }
}

/// Loads the file and resolves the chosen profile.
pub fn resolve(config: Option<&Path>, profile: Option<&str>) -> Result<Resolved, ConfigError> {
    let file = config_path(config)?;
    let parsed = load(&file)?;
    let (name, profile) = parsed.select(&file, profile)?;
    Resolved::new(name, file, profile)
}

impl Resolved {
    pub fn new(name: String, file: PathBuf, profile: Profile) -> Result<Self, ConfigError> {
        let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let user = match &profile.user {
            Some(u) => u.0.clone(),
            None => local_user_name(),
        };
        let identity_file = profile
            .identity_file
            .as_ref()
            .map(|p| expand_path(&p.0, &base))
            .transpose()?;
        let known_hosts = expand_path(
            profile
                .known_hosts
                .as_ref()
                .map_or("~/.ssh/known_hosts", |k| k.0.as_str()),
            &base,
        )?;
        Ok(Resolved {
            name,
            file,
            profile,
            user,
            identity_file,
            known_hosts,
        })
    }
}

impl Resolved {
    /// The built-in services with this profile's overrides, and the profile's own, by name.
    pub fn services(&self) -> BTreeMap<String, Service> {
        let mut all: BTreeMap<String, Service> = builtin_services()
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect();
        for (name, cfg) in &self.profile.services {
            let cfg = cfg.get_ref();
            let base = all.remove(name);
            let Some(target) = cfg.target.clone().or_else(|| {
                base.as_ref().map(|b| HostPort {
                    host: b.host.clone(),
                    port: b.port,
                })
            }) else {
                continue; // `parse` refuses a new service without a target
            };
            all.insert(
                name.clone(),
                Service {
                    name: name.clone(),
                    local_port: cfg
                        .local_port
                        .or(base.as_ref().map(|b| b.local_port))
                        .unwrap_or(target.port),
                    scheme: cfg
                        .scheme
                        .or(base.as_ref().map(|b| b.scheme))
                        .unwrap_or(Scheme::Http),
                    path: cfg
                        .path
                        .as_ref()
                        .map(|p| p.0.clone())
                        .or(base.map(|b| b.path))
                        .unwrap_or_else(|| "/".to_string()),
                    host: target.host,
                    port: target.port,
                },
            );
        }
        all
    }
}

/// The local user's name, as OpenSSH would use it when none is given.
pub fn local_user_name() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "root".to_string())
}

/// Expands `~/` to the home directory; a relative path is taken from `base` (the config
/// file's folder), so a profile means the same thing from any working directory.
pub fn expand_path(p: &str, base: &Path) -> Result<PathBuf, ConfigError> {
    if p == "~" || p.starts_with("~/") {
        let home = dirs::home_dir().ok_or_else(|| ConfigError::NoHome { path: p.into() })?;
        return Ok(home.join(p.trim_start_matches('~').trim_start_matches('/')));
    }
    let path = PathBuf::from(p);
    Ok(if path.is_absolute() {
        path
    } else {
        base.join(path)
    })
}

/// A profile to write: the answers of `paragon-admin init`, each already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileDraft {
    pub host: HostName,
    pub port: Port,
    pub user: Option<String>,
    pub identity_file: Option<String>,
    pub known_hosts: Option<String>,
    pub strict_host_key_checking: HostKeyPolicy,
    pub proxy_jump: Option<JumpHost>,
    /// Services to write as `[profiles.NAME.services.SERVICE]` with their local port.
    pub services: Vec<(String, u16)>,
}

impl ProfileDraft {
    /// The profile this draft writes, as `load` would read it back.
    pub fn to_profile(&self) -> Profile {
        let non_empty = |s: &Option<String>| s.clone().map(NonEmpty);
        Profile {
            host: self.host.clone(),
            port: self.port,
            user: non_empty(&self.user),
            identity_file: non_empty(&self.identity_file),
            known_hosts: non_empty(&self.known_hosts),
            strict_host_key_checking: self.strict_host_key_checking,
            proxy_jump: self.proxy_jump.clone(),
            keepalive_interval: default_keepalive(),
            connect_timeout: default_connect_timeout(),
            services: BTreeMap::new(),
            kube: KubeConfig::default(),
            datastores: Datastores::default(),
        }
    }
}

/// Writes `[profiles.NAME]` into the config file at `path`, creating the file (and its
/// folder) when missing. An existing profile is replaced only with `force`, and then only
/// the keys `init` asks about change: comments, other keys, other profiles and the rest of
/// the file are kept byte for byte (toml_edit edits the document in place). The result is
/// checked with `parse` before it replaces the file, atomically (temporary file + rename),
/// with mode 0600.
pub fn write_profile(
    path: &Path,
    name: &str,
    draft: &ProfileDraft,
    force: bool,
) -> Result<(), ConfigError> {
    use toml_edit::{DocumentMut, Item, Table, value};
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    // Refuse to edit a file that does not load: the error says where it is wrong.
    let before = parse(path, &text)?;
    if before.profiles.contains_key(name) && !force {
        return Err(ConfigError::ProfileExists {
            path: path.to_path_buf(),
            name: name.to_string(),
        });
    }
    let mut doc: DocumentMut =
        text.parse()
            .map_err(|e: toml_edit::TomlError| ConfigError::Syntax {
                path: path.to_path_buf(),
                line: 1,
                message: e.message().to_string(),
            })?;
    let invalid = |key: &str| ConfigError::Invalid {
        path: path.to_path_buf(),
        line: 1,
        key: key.to_string(),
        message: "is not a table".to_string(),
    };
    if !doc.contains_key("profiles") {
        let mut t = Table::new();
        t.set_implicit(true);
        doc.insert("profiles", Item::Table(t));
    }
    let profiles = doc["profiles"]
        .as_table_mut()
        .ok_or_else(|| invalid("profiles"))?;
    if !profiles.contains_key(name) {
        profiles.insert(name, Item::Table(Table::new()));
    }
    let table = profiles[name]
        .as_table_mut()
        .ok_or_else(|| invalid(&format!("profiles.{name}")))?;
    let wanted: Vec<(&str, Option<toml_edit::Item>)> = vec![
        ("host", Some(value(draft.host.0.as_str()))),
        (
            "port",
            (draft.port.0 != 22).then(|| value(i64::from(draft.port.0))),
        ),
        ("user", draft.user.as_deref().map(value)),
        ("identity_file", draft.identity_file.as_deref().map(value)),
        ("known_hosts", draft.known_hosts.as_deref().map(value)),
        (
            "strict_host_key_checking",
            Some(value(draft.strict_host_key_checking.to_string())),
        ),
        (
            "proxy_jump",
            draft.proxy_jump.as_ref().map(|j| value(j.to_string())),
        ),
    ];
    for (key, item) in wanted {
        match item {
            // Assigning to an existing key keeps its place and the comments above it.
            Some(item) => table[key] = item,
            None => {
                table.remove(key);
            }
        }
    }
    if !draft.services.is_empty() {
        if !table.contains_key("services") {
            let mut t = Table::new();
            t.set_implicit(true);
            table.insert("services", Item::Table(t));
        }
        let services = table["services"]
            .as_table_mut()
            .ok_or_else(|| invalid(&format!("profiles.{name}.services")))?;
        for (service, local_port) in &draft.services {
            if !services.contains_key(service) {
                services.insert(service, Item::Table(Table::new()));
            }
            let s = services[service.as_str()]
                .as_table_mut()
                .ok_or_else(|| invalid(&format!("profiles.{name}.services.{service}")))?;
            s["local_port"] = value(i64::from(*local_port));
        }
    }
    let new_text = doc.to_string();
    parse(path, &new_text)?.select(path, Some(name))?;
    crate::files::write_atomic(path, new_text.as_bytes(), crate::files::Access::Private).map_err(
        |source| ConfigError::Write {
            path: path.to_path_buf(),
            source,
        },
    )
}

#[cfg(test)]
mod write_tests {
    use super::*;

    fn draft(host: &str) -> ProfileDraft {
        ProfileDraft {
            host: HostName::parse(host).unwrap(),
            port: Port(2222),
            user: Some("ops".into()),
            identity_file: Some("~/.ssh/id_ed25519".into()),
            known_hosts: None,
            strict_host_key_checking: HostKeyPolicy::Yes,
            proxy_jump: Some(JumpHost::parse("jump@j.example.com").unwrap()),
            services: vec![("grafana".into(), 4500)],
        }
    }

    #[test]
    fn new_file_is_created_0600_and_loads_with_the_profile() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.toml");
        write_profile(&path, "prod", &draft("b.example.com"), false).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let file = load(&path).unwrap();
        let (name, p) = file.select(&path, None).unwrap();
        assert_eq!(name, "prod");
        assert_eq!(p.host.0, "b.example.com");
        assert_eq!(p.port, Port(2222));
        assert_eq!(p.proxy_jump.unwrap().to_string(), "jump@j.example.com:22");
        assert_eq!(p.services["grafana"].get_ref().local_port, Some(4500));
    }

    #[test]
    fn existing_profile_needs_force_and_force_keeps_comments_and_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let original = "# my bastions\ndefault_profile = \"stage\"\n\n[profiles.stage]\nhost = \"s\"\n\n# production: careful\n[profiles.prod]\n# the old one\nhost = \"old\"\nkeepalive_interval = 30 # seconds\n";
        std::fs::write(&path, original).unwrap();
        let e = write_profile(&path, "prod", &draft("new.example.com"), false).unwrap_err();
        assert!(e.to_string().contains("pass --force"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), original);
        write_profile(&path, "prod", &draft("new.example.com"), true).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        for kept in [
            "# my bastions\n",
            "[profiles.stage]\nhost = \"s\"\n",
            "# production: careful\n[profiles.prod]\n",
            "# the old one\nhost = \"new.example.com\"",
            "keepalive_interval = 30 # seconds\n",
        ] {
            assert!(text.contains(kept), "{kept:?} missing from:\n{text}");
        }
        let p = &load(&path).unwrap().profiles["prod"];
        assert_eq!(p.keepalive_interval, 30);
        assert_eq!(p.user.as_ref().unwrap().0, "ops");
    }

    #[test]
    fn an_invalid_file_is_not_edited() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[profiles.x]\nhots = 1\n").unwrap();
        let e = write_profile(&path, "prod", &draft("b"), false).unwrap_err();
        assert!(e.to_string().contains(":2: profiles.x.hots"), "{e}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "[profiles.x]\nhots = 1\n"
        );
    }

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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<ConfigFile, ConfigError> {
        parse(Path::new("c.toml"), s)
    }

    #[test]
    fn minimal_profile_gets_defaults() {
        let c = parse_str("[profiles.prod]\nhost = \"b.example.com\"\n").unwrap();
        let p = &c.profiles["prod"];
        assert_eq!(p.port, Port(22));
        assert_eq!(p.strict_host_key_checking, HostKeyPolicy::Ask);
        assert_eq!(p.keepalive_interval, 15);
        assert_eq!(p.connect_timeout, Seconds(10));
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = parse_str("[profiles.prod]\nhost = \"b\"\nhots = 1\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("c.toml:3: profiles.prod.hots:"), "{msg}");
        assert!(msg.contains("unknown field"), "{msg}");
    }

    #[test]
    fn port_out_of_range_is_an_error_with_line() {
        let e = parse_str("[profiles.prod]\nhost = \"b\"\nport = 70000\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("c.toml:3: profiles.prod.port:"), "{msg}");
        assert!(msg.contains("out of range"), "{msg}");
    }

    #[test]
    fn wrong_type_and_bad_policy_are_errors() {
        let e = parse_str("[profiles.p]\nhost = \"b\"\nport = \"22\"\n").unwrap_err();
        assert!(
            e.to_string().starts_with("c.toml:3: profiles.p.port:"),
            "{e}"
        );
        let e = parse_str("[profiles.p]\nhost = \"b\"\nstrict_host_key_checking = \"no\"\n")
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("c.toml:3: profiles.p.strict_host_key_checking:"),
            "{e}"
        );
    }

    #[test]
    fn syntax_error_names_line() {
        let e = parse_str("[profiles.p]\nhost = \n").unwrap_err();
        assert!(e.to_string().starts_with("c.toml:2"), "{e}");
    }

    #[test]
    fn host_must_be_a_host() {
        for bad in ["\"\"", "\"ssh://b\"", "\"a b\""] {
            let e = parse_str(&format!("[profiles.p]\nhost = {bad}\n")).unwrap_err();
            assert!(
                e.to_string().starts_with("c.toml:2: profiles.p.host:"),
                "{e}"
            );
        }
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
    fn profile_selection() {
        let one = parse_str("[profiles.a]\nhost = \"h\"\n").unwrap();
        assert_eq!(one.select(Path::new("c"), None).unwrap().0, "a");
        let two = parse_str("[profiles.a]\nhost = \"h\"\n[profiles.b]\nhost = \"h\"\n").unwrap();
        let e = two.select(Path::new("c"), None).unwrap_err().to_string();
        assert!(e.contains("profiles: a, b"), "{e}");
        let e = two
            .select(Path::new("c"), Some("x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`x` not found (profiles: a, b)"), "{e}");
        let def = parse_str(
            "default_profile = \"b\"\n[profiles.a]\nhost = \"h\"\n[profiles.b]\nhost = \"h\"\n",
        )
        .unwrap();
        assert_eq!(def.select(Path::new("c"), None).unwrap().0, "b");
    }

    #[test]
    fn relative_paths_are_taken_from_the_config_folder() {
        let p = expand_path("keys/id", Path::new("/etc/pa")).unwrap();
        assert_eq!(p, PathBuf::from("/etc/pa/keys/id"));
        assert_eq!(
            expand_path("/abs", Path::new("/etc")).unwrap(),
            PathBuf::from("/abs")
        );
    }

    #[test]
    fn services_merge_builtins_with_overrides() {
        let text = "[profiles.p]\nhost = \"b\"\n[profiles.p.services.grafana]\ntarget = \"g.mon:3000\"\nlocal_port = 0\n\
                    [profiles.p.services.pgadmin]\ntarget = \"10.0.0.5:80\"\npath = \"/browser/\"\n";
        let c = parse_str(text).unwrap();
        let (name, p) = c.select(Path::new("c"), None).unwrap();
        let r = Resolved::new(name, PathBuf::from("/c.toml"), p).unwrap();
        let s = r.services();
        assert_eq!(
            (
                s["grafana"].host.as_str(),
                s["grafana"].port,
                s["grafana"].local_port
            ),
            ("g.mon", 3000, 0)
        );
        assert_eq!(s["prometheus"].port, 9090);
        assert_eq!(s["pgadmin"].path, "/browser/");
        assert_eq!(s["pgadmin"].local_port, 80);
    }

    #[test]
    fn service_without_target_must_be_builtin() {
        let e =
            parse_str("[profiles.p]\nhost = \"b\"\n\n[profiles.p.services.x]\nlocal_port = 1\n")
                .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("c.toml:4: profiles.p.services.x:"),
            "{e}"
        );
        let e =
            parse_str("[profiles.p]\nhost = \"b\"\n[profiles.p.services.x]\ntarget = \"nohost\"\n")
                .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("c.toml:4: profiles.p.services.x.target:"),
            "{e}"
        );
    }

    #[test]
    fn datastores_and_kube_keys() {
        let c = parse_str("[profiles.p]\nhost = \"b\"\n[profiles.p.datastores]\npostgres = [\"db:5432\"]\ns3 = [\"http://minio:9000/\"]\n[profiles.p.kube]\napi_server = \"10.0.0.10:6443\"\n").unwrap();
        let p = &c.profiles["p"];
        assert_eq!(p.datastores.postgres[0].to_string(), "db:5432");
        assert_eq!(p.datastores.s3[0].to_string(), "http://minio:9000");
        assert_eq!(p.kube.api_server.as_ref().unwrap().port, 6443);
        let e = parse_str(
            "[profiles.p]\nhost = \"b\"\n[profiles.p.datastores]\ns3 = [\"minio:9000\"]\n",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("c.toml:4: profiles.p.datastores.s3:"),
            "{e}"
        );
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
