//! The installation as data: Paragon's services and ports (PARAGON.md), the other workloads
//! of its releases and of the cluster, and the Helm releases. Nothing here builds objects.

use super::{DAY, PARAGON};

/// The Paragon microservices of the `paragon-on-prem` release and their ports (PARAGON.md);
/// the ones off by default (cache-replay, health-checker) are left out.
pub(crate) const SERVICES: [(&str, u16); 23] = [
    ("cerberus", 1700),
    ("hermes", 1702),
    ("zeus", 1703),
    ("dashboard", 1704),
    ("passport", 1706),
    ("connect", 1707),
    ("account", 1708),
    ("pheme", 1709),
    ("hades", 1710),
    ("worker-actions", 1712),
    ("worker-credentials", 1713),
    ("worker-crons", 1714),
    ("worker-proxy", 1715),
    ("worker-triggers", 1716),
    ("worker-workflows", 1717),
    ("worker-deployments", 1718),
    ("release", 1719),
    ("worker-actionkit", 1721),
    ("flipt", 1722),
    ("worker-eventlogs", 1723),
    ("api-triggerkit", 1725),
    ("worker-triggerkit", 1726),
    ("worker-auditlogs", 1727),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Deployment,
    StatefulSet,
    DaemonSet,
}

/// One workload of the installation before it becomes objects.
#[derive(Debug, Clone)]
pub(crate) struct Workload {
    pub namespace: &'static str,
    /// The Helm release; empty for the cluster's own add-ons in kube-system.
    pub release: &'static str,
    pub name: &'static str,
    pub shape: Shape,
    pub replicas: usize,
    pub image: String,
    pub port: u16,
    pub probe: Option<(&'static str, u16)>,
    pub cpu: &'static str,
    pub memory: &'static str,
    /// Size of each StatefulSet replica's `data` claim.
    pub storage: Option<&'static str>,
}

/// A row of [`OTHERS`]; `{app}` in the image stands for Paragon's app version.
struct Row {
    release: &'static str,
    name: &'static str,
    shape: Shape,
    replicas: usize,
    image: &'static str,
    port: u16,
    probe: Option<(&'static str, u16)>,
    cpu: &'static str,
    memory: &'static str,
    storage: Option<&'static str>,
}

#[allow(clippy::too_many_arguments)] // one row of the table below
const fn row(
    release: &'static str,
    name: &'static str,
    shape: Shape,
    replicas: usize,
    image: &'static str,
    port: u16,
    probe: Option<(&'static str, u16)>,
    cpu: &'static str,
    memory: &'static str,
    storage: Option<&'static str>,
) -> Row {
    Row {
        release,
        name,
        shape,
        replicas,
        image,
        port,
        probe,
        cpu,
        memory,
        storage,
    }
}

const ON_PREM: &str = "paragon-on-prem";
const MON: &str = "paragon-monitoring";
const LOG: &str = "paragon-logging";
use Shape::{DaemonSet as Ds, Deployment as Dep, StatefulSet as Sts};

/// Every workload of `paragon` beyond the microservices, then kube-system's (release "");
/// DaemonSets have 0 replicas: they run one pod per node.
#[rustfmt::skip]
const OTHERS: [Row; 18] = [
    row(ON_PREM, "minio", Sts, 1, "quay.io/minio/minio:RELEASE.2024-10-13T13-34-11Z", 9000, Some(("/minio/health/live", 9000)), "250m", "1Gi", Some("100Gi")),
    row(MON, "grafana", Dep, 1, "docker.io/grafana/grafana:11.2.2", 4500, Some(("/api/health", 4500)), "100m", "256Mi", None),
    row(MON, "prometheus", Sts, 1, "quay.io/prometheus/prometheus:v2.54.1", 9090, Some(("/-/ready", 9090)), "500m", "2Gi", Some("50Gi")),
    row(MON, "bull-exporter", Dep, 1, "docker.io/useparagon/bull-exporter:{app}", 9538, Some(("/healthz", 9538)), "50m", "128Mi", None),
    row(MON, "kafka-exporter", Dep, 1, "docker.io/danielqsj/kafka-exporter:v1.8.0", 9308, Some(("/healthz", 9308)), "50m", "64Mi", None),
    row(MON, "postgres-exporter", Dep, 1, "quay.io/prometheuscommunity/postgres-exporter:v0.15.0", 9187, Some(("/", 9187)), "50m", "64Mi", None),
    row(MON, "redis-exporter", Dep, 1, "docker.io/oliver006/redis_exporter:v1.62.0", 9121, Some(("/health", 9121)), "50m", "64Mi", None),
    row(MON, "kube-state-metrics", Dep, 1, "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.13.0", 8080, Some(("/healthz", 8080)), "100m", "256Mi", None),
    row(MON, "pgadmin", Dep, 1, "docker.io/dpage/pgadmin4:8.11", 80, Some(("/misc/ping", 80)), "100m", "256Mi", None),
    row(MON, "redis-insight", Dep, 1, "docker.io/redis/redisinsight:2.56", 5540, Some(("/api/health", 5540)), "100m", "256Mi", None),
    row(MON, "node-exporter", Ds, 0, "quay.io/prometheus/node-exporter:v1.8.2", 9100, Some(("/", 9100)), "50m", "64Mi", None),
    row(LOG, "elasticsearch", Sts, 1, "docker.elastic.co/elasticsearch/elasticsearch:7.17.24", 9200, Some(("/_cluster/health?local=true", 9200)), "500m", "2Gi", Some("30Gi")),
    row(LOG, "kibana", Dep, 1, "docker.elastic.co/kibana/kibana:7.17.24", 5601, Some(("/api/status", 5601)), "250m", "1Gi", None),
    row(LOG, "fluent-bit", Ds, 0, "cr.fluentbit.io/fluent/fluent-bit:3.1.9", 2020, Some(("/api/v1/health", 2020)), "50m", "128Mi", None),
    row("ingress", "ingress-nginx-controller", Dep, 2, "registry.k8s.io/ingress-nginx/controller:v1.11.3", 80, Some(("/healthz", 10254)), "100m", "256Mi", None),
    row("metricsserver", "metrics-server", Dep, 1, "registry.k8s.io/metrics-server/metrics-server:v0.7.2", 10250, Some(("/readyz", 10250)), "100m", "200Mi", None),
    row("", "coredns", Dep, 2, "registry.k8s.io/coredns/coredns:v1.11.3", 53, Some(("/health", 8080)), "100m", "70Mi", None),
    row("", "kube-proxy", Ds, 0, "registry.k8s.io/kube-proxy:v1.33.1", 10256, None, "100m", "64Mi", None),
];

/// The whole installation, microservices first, in generation order.
pub(crate) fn workloads(app_version: &str) -> Vec<Workload> {
    let services = SERVICES.iter().map(|&(name, port)| {
        let probe = if name == "flipt" {
            "/health"
        } else {
            "/healthz"
        };
        let heavy = name.starts_with("worker-") || name == "hermes" || name == "zeus";
        Workload {
            namespace: PARAGON,
            release: ON_PREM,
            name,
            shape: Shape::Deployment,
            replicas: if name == "worker-workflows" { 4 } else { 2 },
            image: format!("docker.io/useparagon/{name}:{app_version}"),
            port,
            probe: Some((probe, port)),
            cpu: if heavy { "500m" } else { "250m" },
            memory: if heavy { "1Gi" } else { "512Mi" },
            storage: None,
        }
    });
    let others = OTHERS.iter().map(|r| Workload {
        namespace: if r.release.is_empty() {
            "kube-system"
        } else {
            PARAGON
        },
        release: r.release,
        name: r.name,
        shape: r.shape,
        replicas: r.replicas,
        image: r.image.replace("{app}", app_version),
        port: r.port,
        probe: r.probe,
        cpu: r.cpu,
        memory: r.memory,
        storage: r.storage,
    });
    services.chain(others).collect()
}

/// Pods of the clean installation on `nodes` nodes before `--pods` scales it.
pub fn natural_pod_count(nodes: usize) -> usize {
    let w = workloads("0");
    let fixed: usize = w.iter().map(|w| w.replicas).sum();
    let daemons = w.iter().filter(|w| w.shape == Shape::DaemonSet).count();
    // + the restart CronJob's last Job's pod and the batch pod held by its scheduling gate
    fixed + daemons * nodes + 2
}

/// Where Helm keeps a release's history (`HELM_DRIVER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Driver {
    Secret,
    ConfigMap,
}

/// A Helm release of the installation: its chart, the chart's version (`None`: Paragon's app
/// version), how long ago it was last deployed, where Helm stores it, and whether it was
/// uninstalled with `--keep-history` (its latest revision `uninstalled`).
pub(crate) struct Release {
    pub name: &'static str,
    pub chart: &'static str,
    pub version: Option<&'static str>,
    pub age: i64,
    pub driver: Driver,
    pub uninstalled: bool,
}

const fn release(
    name: &'static str,
    chart: &'static str,
    version: Option<&'static str>,
    age: i64,
) -> Release {
    Release {
        name,
        chart,
        version,
        age,
        driver: Driver::Secret,
        uninstalled: false,
    }
}

/// The five releases of PARAGON.md, then `cache-replay` (off by default, so uninstalled
/// with `--keep-history`) and `reloader`, installed with `HELM_DRIVER=configmap`.
pub(crate) const RELEASES: [Release; 7] = [
    release(ON_PREM, "paragon-onprem", None, 20 * DAY),
    release(MON, "paragon-monitoring", None, 20 * DAY),
    release(LOG, "paragon-logging", None, 60 * DAY),
    release("ingress", "ingress-nginx", Some("1.11.3"), 90 * DAY),
    release("metricsserver", "metrics-server", Some("0.7.2"), 100 * DAY),
    Release {
        uninstalled: true,
        ..release("cache-replay", "paragon-cache-replay", None, 30 * DAY)
    },
    Release {
        driver: Driver::ConfigMap,
        ..release("reloader", "reloader", Some("1.0.121"), 45 * DAY)
    },
];
