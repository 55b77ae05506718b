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
/// (PARAGON.md), one row each: the monitoring release runs Grafana on 4500 and Prometheus on
/// 9090; logging is OpenObserve (5080) since 2024, Kibana (5601) on older installations.
/// Adding a service is adding a row: `forward` and the completions know it by name, its
/// `--help` lists it, and `health` checks it with the row's probe.
const BUILTIN_SERVICES: &[Builtin] = &[
    Builtin {
        name: "grafana",
        port: 4500,
        path: "/",
        probe: Some(Probe::Grafana),
    },
    Builtin {
        name: "kibana",
        port: 5601,
        path: "/app/home",
        probe: Some(Probe::Kibana),
    },
    Builtin {
        name: "openobserve",
        port: 5080,
        path: "/web/",
        probe: Some(Probe::OpenObserve),
    },
    Builtin {
        name: "prometheus",
        port: 9090,
        path: "/",
        probe: Some(Probe::Prometheus),
    },
];

/// A row of `BUILTIN_SERVICES`.
struct Builtin {
    name: &'static str,
    port: u16,
    /// The path a browser opens.
    path: &'static str,
    /// How `health` checks it; `None`: it only forwards.
    probe: Option<Probe>,
}

/// How `health` checks a built-in service (`health::monitoring` judges the answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// `GET /api/health`.
    Grafana,
    /// The firing alerts, `GET /api/v1/alerts`.
    Prometheus,
    /// `GET /api/status`.
    Kibana,
    /// `GET /healthz`.
    OpenObserve,
}

impl Probe {
    /// The path the probe asks for.
    pub fn path(self) -> &'static str {
        match self {
            Probe::Grafana => "/api/health",
            Probe::Prometheus => "/api/v1/alerts",
            Probe::Kibana => "/api/status",
            Probe::OpenObserve => "/healthz",
        }
    }

    /// Logging: an installation runs Kibana or OpenObserve, rarely both, so one that is not
    /// there at all is a warning.
    pub fn optional(self) -> bool {
        matches!(self, Probe::Kibana | Probe::OpenObserve)
    }
}

/// The probe of the built-in service called `name` (a profile's service of that name is
/// checked the same way, wherever it points); `None` for any other name.
pub fn builtin_probe(name: &str) -> Option<Probe> {
    BUILTIN_SERVICES
        .iter()
        .find(|b| b.name == name)
        .and_then(|b| b.probe)
}

/// The built-in services, each on its own port locally.
pub fn builtin_services() -> Vec<Service> {
    BUILTIN_SERVICES
        .iter()
        .map(|b| Service {
            name: b.name.to_string(),
            host: format!("{}.paragon.svc.cluster.local", b.name),
            port: b.port,
            local_port: b.port,
            scheme: Scheme::Http,
            path: b.path.to_string(),
            via: Via::Auto,
            ca_file: None,
        })
        .collect()
}

/// The names of the built-in services, for messages.
pub fn builtin_names() -> String {
    BUILTIN_SERVICES
        .iter()
        .map(|b| b.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_built_in_service_says_its_probe_and_other_names_have_none() {
        let probes: Vec<_> = builtin_services()
            .iter()
            .map(|s| (s.name.clone(), builtin_probe(&s.name)))
            .collect();
        assert_eq!(
            probes,
            [
                ("grafana".to_string(), Some(Probe::Grafana)),
                ("kibana".to_string(), Some(Probe::Kibana)),
                ("openobserve".to_string(), Some(Probe::OpenObserve)),
                ("prometheus".to_string(), Some(Probe::Prometheus)),
            ]
        );
        assert_eq!(builtin_probe("postgres"), None);
        assert_eq!(builtin_probe("Grafana"), None);
        assert_eq!(builtin_names(), "grafana, kibana, openobserve, prometheus");
    }
}
