//! The sandbox: a simulated Kubernetes API server serving a generated Paragon installation.
//!
//! No real API server runs on our machines, so the health checks, the scale benchmarks and
//! the demo run against this one. It serves HTTPS with its own CA and a bearer token, the
//! discovery documents, and `get`/`list` (with `limit`/`continue`, `labelSelector` and
//! `fieldSelector`, as full objects, metadata-only lists or server-side `Table`s) for
//! namespaces, nodes, pods, events (core `v1` and `events.k8s.io/v1`), PVCs, storage classes,
//! secrets, configmaps, services, deployments, statefulsets, daemonsets, replicasets, jobs and
//! cronjobs. The objects are k8s-openapi
//! types, generated once from a seed and kept pre-serialized; nothing changes while it runs
//! but what two writes do: deleting a ReplicaSet's pod, which `replace` replaces with a new
//! one, as a real ReplicaSet would, and ConfigMaps created and patched as `kubectl apply`
//! sends them (`write`, with the `/openapi/v3` answer kubectl validates against); other writes
//! are refused, and a watch stays open without events until its
//! timeout (at most 30 minutes) or until the sandbox stops. `pods/log` answers with lines made from the pod's
//! state (`logs`). `pods/portforward` (`portforward`: kubelet's WebSocket channels, and SPDY
//! (`spdy`) plain or tunnelled in a WebSocket, as kubectl speaks it) reaches the monitoring
//! pods, which are small real HTTP servers on loopback (`backends`). A port-forward that
//! carries nothing for `streaming_idle_timeout` (the kubelet's default, 4 h) is closed, as the
//! kubelet closes it. The real `kubectl` works against it, `kubectl port-forward` included.
//! The resource metrics API (`metrics.k8s.io/v1beta1` and its APIService, `metrics`) serves
//! usage derived from the pods, so `kubectl top` works too.
//!
//! This crate knows nothing of paragon-admin itself: no command line, no config, no dialer,
//! no output and no exit statuses; the product maps its errors and writes its kubeconfig.
//!
//! Beside it, for `paragon-admin demo`: `bastion`, an embedded SSH bastion (russh's server,
//! loopback only, forwarding only to the sandbox's services), and `web`, a demo page standing
//! in for Grafana.
//!
//! # The generated installation (see `generate`)
//!
//! Namespaces `default`, `kube-system`, `kube-public`, `kube-node-lease` and `paragon`.
//! Everything of Paragon lives in `paragon`, as on a real installation: the Helm releases
//! `paragon-on-prem`, `paragon-monitoring`, `paragon-logging`, `ingress` and `metricsserver`,
//! with pods labelled `app.kubernetes.io/instance=<release>` and
//! `app.kubernetes.io/name=<service>`:
//! - `paragon-on-prem`: one Deployment per microservice (cerberus, hermes, zeus, dashboard,
//!   passport, connect, account, pheme, hades, flipt, api-triggerkit, release and the
//!   workers), 2 replicas each and 4 for worker-workflows, plus the `minio` StatefulSet and
//!   the `restart-paragon-pods-cronjob` CronJob with its last completed Job (one pod in phase
//!   `Succeeded`).
//! - `paragon-monitoring`: grafana (4500), prometheus (StatefulSet, 9090), bull-exporter,
//!   kafka-, postgres- and redis-exporter, kube-state-metrics, pgadmin, redis-insight and the
//!   node-exporter DaemonSet.
//! - `paragon-logging`: elasticsearch (StatefulSet), kibana (5601) and the fluent-bit
//!   DaemonSet. `ingress`: ingress-nginx-controller. `metricsserver`: metrics-server.
//! - `kube-system`: coredns and the kube-proxy DaemonSet.
//!
//! Each workload has its Service, ReplicaSets with owner references, and pods with container
//! statuses; StatefulSets have bound PVCs. Helm keeps each release's history as secrets
//! `sh.helm.release.v1.<release>.v<N>` (type `helm.sh/release.v1`, labels `owner=helm`,
//! `name`, `status`, `version`, `modifiedAt`, and a real gzip+base64 release payload): the
//! latest revision `deployed`, older ones `superseded`. TLS secrets `paragon-tls` (valid 60
//! more days) and `ingress-nginx-admission` (valid years) hold real certificates.
//!
//! Shapes a healthy real cluster has, and so does a clean sandbox: StorageClasses `gp2`
//! (default) and `gp3` binding `WaitForFirstConsumer` and `efs-sc` binding `Immediate`; PVC
//! `paragon/redis-insight-data` Pending on `gp2` with no pod using it, and the PV controller's
//! `WaitForFirstConsumer` event; every event served in both shapes (the scheduler's
//! `Scheduled` events new-style, with `eventTime` and no count); a `RegisteredNode` event per
//! node (namespace `default`, no namespace in `involvedObject`); and `Unhealthy` Warnings
//! about pods the daily restart replaced, which no longer exist. Helm release `cache-replay`
//! was uninstalled with `--keep-history` (latest revision `uninstalled`) and `reloader` is
//! kept with `HELM_DRIVER=configmap` (ConfigMaps labelled `owner=helm`). Pod
//! `paragon/report-export-*` is held by Kueue's scheduling gate (phase `Pending`,
//! `PodScheduled` False `SchedulingGated`); `prometheus-0` has an init container and its
//! config-reloader as a native sidecar (READY 2/2); the first cerberus pod has a finished
//! ephemeral `debugger-*` container; every node reports `NetworkUnavailable` False
//! (`RouteCreated`). TLS secrets `grafana-tls` (openssl's "Bag Attributes" before the PEM)
//! and `kibana-tls` (blank lines before it) hold certificates valid 200 and 150 more days.
//!
//! A clean sandbox is healthy: every node Ready with no pressure, every running pod Ready,
//! every Deployment, StatefulSet and DaemonSet fully available, every Helm release's latest
//! revision `deployed`, certificates valid for more than 30 days, only `Normal` events about existing objects, and
//! restart counts 0 except `prometheus-0`, whose 2 restarts are days old.
//!
//! `pods` scales the installation: the extra pods become replicas of the worker
//! Deployments, round robin. DaemonSets run one pod per node.
//!
//! Every object a fault produces or changes carries the annotation
//! `sandbox.paragon.io/fault: <fault name>`; what each fault does is documented on [`Fault`].

mod api;
mod api_faults;
mod backends;
pub mod bastion;
mod discovery;
mod fault;
mod follow;
mod generate;
pub mod listen;
mod logs;
mod metrics;
mod negotiate;
pub mod planted;
mod portforward;
mod replace;
mod reply;
mod rng;
mod selector;
mod server;
mod spdy;
mod store;
mod target;
mod tls;
pub mod web;
mod write;

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use generate::natural_pod_count;
pub use tls::TlsError;

/// The first line of every kubeconfig the sandbox makes: a file that starts with it is one
/// the sandbox may replace.
pub const KUBECONFIG_HEADER: &str = "# written by paragon-admin sandbox";

/// The annotation every object changed by a fault carries; its value is the fault's name.
pub const FAULT_ANNOTATION: &str = "sandbox.paragon.io/fault";

/// What the sandbox generates and where it listens.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Where to listen; port 0 picks a free port. Ignored by [`Sandbox::start_on`].
    pub listen: SocketAddr,
    /// Number of nodes (at least 1).
    pub nodes: usize,
    /// Total pods of the clean installation; 0 for its natural size (about 70 pods on 3
    /// nodes). Faults `crashloop`, `image-pull` and `pending` each add one pod.
    pub pods: usize,
    /// Seeds every generated name, address and choice: the same seed gives the same names.
    pub seed: u64,
    pub faults: Vec<Fault>,
    /// A port-forward that carries nothing, either way, for this long is closed, as the
    /// kubelet closes it after its `streamingConnectionIdleTimeout`.
    pub streaming_idle_timeout: std::time::Duration,
    /// Services whose pods report, in `metrics.k8s.io`, this share of their memory limit
    /// (the others use 30 to 60 %).
    pub memory_use: Vec<MemoryUse>,
    /// Whether `pods/portforward` accepts SPDY tunneled in a WebSocket
    /// (`SPDY/3.1+portforward.k8s.io`, API servers since 1.31); `false` answers it as an
    /// older API server does (400, the channel protocols only).
    pub portforward_tunnel: bool,
}

/// The kubelet's default `streamingConnectionIdleTimeout`.
pub const STREAMING_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(4 * 3600);

/// A duration as the kubelet's configuration writes it (`4h`, `90s`, `2m30s`), not zero.
pub fn parse_idle_timeout(text: &str) -> Result<std::time::Duration, String> {
    let d: jiff::SignedDuration = text
        .parse()
        .map_err(|e| format!("{text:?} is not a duration such as 4h, 90s or 2m30s ({e})"))?;
    std::time::Duration::try_from(d)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{text:?}: the idle timeout must be longer than zero"))
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            nodes: 3,
            pods: 0,
            seed: 1,
            faults: Vec::new(),
            streaming_idle_timeout: STREAMING_IDLE_TIMEOUT,
            memory_use: Vec::new(),
            portforward_tunnel: true,
        }
    }
}

pub use fault::{Fault, FaultError, Forbidden};
pub use metrics::MemoryUse;

/// Why the sandbox cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("the sandbox needs at least one node")]
    NoNodes,
    #[error(
        "--pods {asked} is smaller than the installation itself ({min} pods on {nodes} nodes); \
         ask for at least {min}, or 0 for the natural size"
    )]
    TooFewPods {
        asked: usize,
        min: usize,
        nodes: usize,
    },
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot generate the installation: {0}")]
    Generate(String),
}

/// A running sandbox; it serves until [`Sandbox::shutdown`] or until dropped.
#[derive(Debug)]
pub struct Sandbox {
    addr: SocketAddr,
    bound: SocketAddr,
    ca_pem: String,
    token: tls::Token,
    stats: Stats,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

/// What was generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub namespaces: usize,
    pub nodes: usize,
    pub pods: usize,
    pub objects: usize,
}

impl Sandbox {
    /// Generates the installation, binds `opts.listen` and serves in background tasks.
    pub async fn start(opts: SandboxOptions) -> Result<Sandbox, SandboxError> {
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|source| SandboxError::Bind {
                addr: opts.listen,
                source,
            })?;
        Self::start_on(listener, opts).await
    }

    /// As [`Sandbox::start`], on a listener the caller has bound (`opts.listen` is ignored).
    pub async fn start_on(
        listener: tokio::net::TcpListener,
        opts: SandboxOptions,
    ) -> Result<Sandbox, SandboxError> {
        let bind_err = |source| SandboxError::Bind {
            addr: opts.listen,
            source,
        };
        let local = listener.local_addr().map_err(bind_err)?;
        let addr = if local.ip().is_unspecified() {
            let loopback = if local.is_ipv4() {
                std::net::IpAddr::from([127, 0, 0, 1])
            } else {
                std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
            };
            SocketAddr::new(loopback, local.port())
        } else {
            local
        };
        let now = jiff::Timestamp::now().as_second();
        let creds = tls::credentials(local.ip(), now)?;
        let world = {
            let opts = opts.clone();
            let ca = creds.ca_pem.clone();
            tokio::task::spawn_blocking(move || generate::generate(&opts, now, &ca))
                .await
                .map_err(|e| SandboxError::Generate(e.to_string()))??
        };
        let stats = Stats {
            namespaces: world.all(store::Res::Namespaces).len(),
            nodes: world.all(store::Res::Nodes).len(),
            pods: world.all(store::Res::Pods).len(),
            objects: store::ALL.iter().map(|r| world.all(*r).len()).sum(),
        };
        let cancel = CancellationToken::new();
        let backends = backends::Backends::start(cancel.child_token())
            .await
            .map_err(|source| SandboxError::Bind {
                addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                source,
            })?;
        let api = api::Api {
            world: std::sync::RwLock::new(Arc::new(world)),
            backends: Arc::new(backends),
            token: creds.token.clone(),
            addr,
            stopped: cancel.clone(),
            faults: api_faults::ApiFaults::new(&opts.faults),
            streaming_idle_timeout: opts.streaming_idle_timeout,
            portforward_tunnel: opts.portforward_tunnel,
            log_secrets: opts.faults.contains(&Fault::LogSecrets),
            memory_use: opts.memory_use.clone(),
        };
        let task = tokio::spawn(server::serve(
            listener,
            creds.server_config.clone(),
            Arc::new(api),
            cancel.clone(),
        ));
        tracing::info!(%addr, pods = stats.pods, nodes = stats.nodes, "sandbox serving");
        Ok(Sandbox {
            addr,
            bound: local,
            ca_pem: creds.ca_pem,
            token: creds.token,
            stats,
            cancel,
            task: Some(task),
        })
    }

    /// As [`Sandbox::start_on`], with a std listener (made non-blocking here).
    pub async fn start_on_std(
        listener: std::net::TcpListener,
        opts: SandboxOptions,
    ) -> Result<Sandbox, SandboxError> {
        let bind_err = |source| SandboxError::Bind {
            addr: opts.listen,
            source,
        };
        listener.set_nonblocking(true).map_err(bind_err)?;
        let listener = tokio::net::TcpListener::from_std(listener).map_err(bind_err)?;
        Self::start_on(listener, opts).await
    }

    /// The address clients connect to (loopback when listening on an unspecified address).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address the listener is bound to, as the system reports it (`0.0.0.0:PORT` when
    /// listening on every interface).
    pub fn bound(&self) -> SocketAddr {
        self.bound
    }

    /// `https://ADDR`.
    pub fn server_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The PEM of the CA that signed the serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The bearer token every request must carry.
    pub fn token(&self) -> &str {
        &self.token.0
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// A kubeconfig with one cluster, user and context, all named `sandbox`.
    pub fn kubeconfig_yaml(&self) -> String {
        let ca = base64::engine::general_purpose::STANDARD.encode(self.ca_pem.as_bytes());
        format!(
            "{KUBECONFIG_HEADER}; valid only while it runs\n\
             apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: sandbox\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\n\
             users:\n\
             - name: sandbox\n  user:\n    token: {}\n\
             contexts:\n\
             - name: sandbox\n  context:\n    cluster: sandbox\n    user: sandbox\n\
             current-context: sandbox\n\
             preferences: {{}}\n",
            self.server_url(),
            self.token.0,
        )
    }

    /// Stops accepting, closes the connections and waits (at most a few seconds) for the
    /// serving tasks to end.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn idle_timeouts_read_as_the_kubelets_configuration_writes_them() {
        assert_eq!(parse_idle_timeout("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_idle_timeout("4h"), Ok(STREAMING_IDLE_TIMEOUT));
        assert_eq!(parse_idle_timeout("2m30s"), Ok(Duration::from_secs(150)));
        assert!(
            parse_idle_timeout("0s")
                .unwrap_err()
                .contains("longer than zero")
        );
        assert!(parse_idle_timeout("-3s").is_err());
        assert!(
            parse_idle_timeout("soon")
                .unwrap_err()
                .contains("not a duration")
        );
    }
}
