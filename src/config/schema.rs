//! What the config file may say: the tables and keys, their defaults and ranges (the types
//! in `values`), and the services every installation has. Knows nothing of where the file
//! is or how it is read.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::values::{
    HostKeyPolicy, HostName, HostPort, HttpUrl, JumpHost, NonEmpty, Persist, Port, Scheme, Seconds,
    UrlPath, keepalive_interval, local_port,
};

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
    /// Hash the host names of new known_hosts lines; unset: as `~/.ssh/config` says.
    pub hash_known_hosts: Option<bool>,
    pub proxy_jump: Option<JumpHost>,
    /// Seconds between keepalives, 0 (off) to 3600.
    #[serde(default = "default_keepalive", deserialize_with = "keepalive_interval")]
    pub keepalive_interval: u64,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Seconds,
    /// How long the kept agent stays after its last use; 0: no agent.
    #[serde(default)]
    pub persist: Persist,
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

pub(super) fn default_port() -> Port {
    Port(22)
}
pub(super) fn default_keepalive() -> u64 {
    15
}
pub(super) fn default_connect_timeout() -> Seconds {
    Seconds(10)
}

/// `[profiles.X.services.NAME]`: a service in the private network.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// HOST:PORT as resolved on the bastion.
    pub target: Option<HostPort>,
    /// The local port to listen on; 0 = any free port.
    #[serde(default, deserialize_with = "local_port")]
    pub local_port: Option<u16>,
    /// The URL scheme, for the printed URL.
    pub scheme: Option<Scheme>,
    /// The URL path, for the printed URL and `--open`.
    pub path: Option<UrlPath>,
    /// How forwards and checks reach it: `auto` (the bastion, else the Kubernetes API),
    /// `api` or `bastion`.
    pub via: Option<Via>,
    /// A PEM bundle of the CAs an `https` target's certificate is verified against, instead
    /// of the system's roots; relative to the config file, absolute once resolved.
    pub ca_file: Option<toml::Spanned<std::path::PathBuf>>,
}

/// How a service is reached: dialed from the bastion, or through the API server's
/// `pods/portforward` (for a bastion outside the cluster network).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// The bastion first; the API when the bastion cannot reach the target
    #[default]
    Auto,
    /// Always through the Kubernetes API (pods/portforward)
    Api,
    /// Always dialed from the bastion
    Bastion,
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
    /// A PEM bundle of the CAs `https` endpoints are verified against, instead of the
    /// system's roots; relative to the config file, absolute once resolved.
    pub ca_file: Option<toml::Spanned<std::path::PathBuf>>,
}

/// A service with every field decided (deserialized only from what `Serialize` wrote, as the
/// kept agent's socket carries it; the config file's shape is `ServiceConfig`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub local_port: u16,
    pub scheme: Scheme,
    pub path: String,
    pub via: Via,
    /// The CA bundle an `https` target is verified against; `None`: the system's roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<std::path::PathBuf>,
}

impl Service {
    /// The URL a browser opens for this service on `local`.
    pub fn url(&self, local: std::net::SocketAddr) -> String {
        format!("{}://{}{}", self.scheme, local, self.path)
    }
}

/// The monitoring and logging services every installation has, in the `paragon` namespace
/// (PARAGON.md): (name, port, the path a browser opens). The monitoring release runs Grafana
/// on 4500 and Prometheus on 9090; logging is OpenObserve (5080, health `GET /healthz`) since
/// 2024, Kibana (5601) on older installations.
const BUILTIN_SERVICES: &[(&str, u16, &str)] = &[
    ("grafana", 4500, "/"),
    ("kibana", 5601, "/app/home"),
    ("openobserve", 5080, "/web/"),
    ("prometheus", 9090, "/"),
];

/// The built-in services, each on its own port locally.
pub fn builtin_services() -> Vec<Service> {
    BUILTIN_SERVICES
        .iter()
        .map(|&(name, port, path)| Service {
            name: name.to_string(),
            host: format!("{name}.paragon.svc.cluster.local"),
            port,
            local_port: port,
            scheme: Scheme::Http,
            path: path.to_string(),
            via: Via::Auto,
            ca_file: None,
        })
        .collect()
}

/// The names of the built-in services, for messages.
pub fn builtin_names() -> String {
    BUILTIN_SERVICES
        .iter()
        .map(|s| s.0)
        .collect::<Vec<_>>()
        .join(", ")
}
