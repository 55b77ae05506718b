//! Generating the installation from a seed: every object built once as a k8s-openapi type,
//! turned into a table row and serialized straight into the store, so the world exists in
//! one copy. What is generated, and what each fault changes, is documented in `mod.rs` and on
//! `Fault`.

use std::collections::BTreeMap;
use std::io::Write as _;

use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, DaemonSetStatus, Deployment, DeploymentCondition, DeploymentSpec,
    DeploymentStatus, DeploymentStrategy, ReplicaSet, ReplicaSetSpec, ReplicaSetStatus,
    RollingUpdateDeployment, StatefulSet, StatefulSetSpec, StatefulSetStatus,
};
use k8s_openapi::api::batch::v1::{
    CronJob, CronJobSpec, CronJobStatus, Job, JobCondition, JobSpec, JobStatus, JobTemplateSpec,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, ContainerPort, ContainerState, ContainerStateRunning,
    ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, Event, EventSource,
    HTTPGetAction, HostIP, Namespace, NamespaceSpec, NamespaceStatus, Node, NodeAddress,
    NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo, ObjectReference, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, PersistentVolumeClaimVolumeSource, Pod,
    PodCondition, PodIP, PodSpec, PodStatus, PodTemplateSpec, Probe, ResourceRequirements, Secret,
    Service, ServicePort, ServiceSpec, Taint, Toleration, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::{Metadata, Resource};
use serde::Serialize;

use super::rng::Rng;
use super::store::{Cell, Entry, Res, World};
use super::tls;
use super::{FAULT_ANNOTATION, Fault, SandboxError, SandboxOptions};

const MINUTE: i64 = 60;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

/// The namespace everything of Paragon lives in.
pub(crate) const PARAGON: &str = "paragon";
const INSTANCE: &str = "app.kubernetes.io/instance";
const APP_NAME: &str = "app.kubernetes.io/name";

/// The Paragon microservices of the `paragon-on-prem` release and their ports (PARAGON.md);
/// the ones off by default (cache-replay, health-checker) are left out.
const SERVICES: [(&str, u16); 23] = [
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
enum Shape {
    Deployment,
    StatefulSet,
    DaemonSet,
}

/// One workload of the installation before it becomes objects.
#[derive(Debug, Clone)]
struct Workload {
    namespace: &'static str,
    /// The Helm release; empty for the cluster's own add-ons in kube-system.
    release: &'static str,
    name: &'static str,
    shape: Shape,
    replicas: usize,
    image: String,
    port: u16,
    probe: Option<(&'static str, u16)>,
    cpu: &'static str,
    memory: &'static str,
    /// Size of each StatefulSet replica's `data` claim.
    storage: Option<&'static str>,
}

fn workloads(app_version: &str) -> Vec<Workload> {
    let w = |namespace, release, name, shape, replicas, image: &str, port, probe, cpu, memory| {
        Workload {
            namespace,
            release,
            name,
            shape,
            replicas,
            image: image.to_string(),
            port,
            probe,
            cpu,
            memory,
            storage: None,
        }
    };
    let mut all: Vec<Workload> = SERVICES
        .iter()
        .map(|(name, port)| {
            let probe = if *name == "flipt" {
                "/health"
            } else {
                "/healthz"
            };
            let replicas = if *name == "worker-workflows" { 4 } else { 2 };
            let heavy = name.starts_with("worker-") || *name == "hermes" || *name == "zeus";
            w(
                PARAGON,
                "paragon-on-prem",
                *name,
                Shape::Deployment,
                replicas,
                &format!("docker.io/useparagon/{name}:{app_version}"),
                *port,
                Some((probe, *port)),
                if heavy { "500m" } else { "250m" },
                if heavy { "1Gi" } else { "512Mi" },
            )
        })
        .collect();
    let mut minio = w(
        PARAGON,
        "paragon-on-prem",
        "minio",
        Shape::StatefulSet,
        1,
        "quay.io/minio/minio:RELEASE.2024-10-13T13-34-11Z",
        9000,
        Some(("/minio/health/live", 9000)),
        "250m",
        "1Gi",
    );
    minio.storage = Some("100Gi");
    all.push(minio);
    let mon = "paragon-monitoring";
    all.push(w(
        PARAGON,
        mon,
        "grafana",
        Shape::Deployment,
        1,
        "docker.io/grafana/grafana:11.2.2",
        4500,
        Some(("/api/health", 4500)),
        "100m",
        "256Mi",
    ));
    let mut prometheus = w(
        PARAGON,
        mon,
        "prometheus",
        Shape::StatefulSet,
        1,
        "quay.io/prometheus/prometheus:v2.54.1",
        9090,
        Some(("/-/ready", 9090)),
        "500m",
        "2Gi",
    );
    prometheus.storage = Some("50Gi");
    all.push(prometheus);
    all.push(w(
        PARAGON,
        mon,
        "bull-exporter",
        Shape::Deployment,
        1,
        &format!("docker.io/useparagon/bull-exporter:{app_version}"),
        9538,
        Some(("/healthz", 9538)),
        "50m",
        "128Mi",
    ));
    all.push(w(
        PARAGON,
        mon,
        "kafka-exporter",
        Shape::Deployment,
        1,
        "docker.io/danielqsj/kafka-exporter:v1.8.0",
        9308,
        Some(("/healthz", 9308)),
        "50m",
        "64Mi",
    ));
    all.push(w(
        PARAGON,
        mon,
        "postgres-exporter",
        Shape::Deployment,
        1,
        "quay.io/prometheuscommunity/postgres-exporter:v0.15.0",
        9187,
        Some(("/", 9187)),
        "50m",
        "64Mi",
    ));
    all.push(w(
        PARAGON,
        mon,
        "redis-exporter",
        Shape::Deployment,
        1,
        "docker.io/oliver006/redis_exporter:v1.62.0",
        9121,
        Some(("/health", 9121)),
        "50m",
        "64Mi",
    ));
    all.push(w(
        PARAGON,
        mon,
        "kube-state-metrics",
        Shape::Deployment,
        1,
        "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.13.0",
        8080,
        Some(("/healthz", 8080)),
        "100m",
        "256Mi",
    ));
    all.push(w(
        PARAGON,
        mon,
        "pgadmin",
        Shape::Deployment,
        1,
        "docker.io/dpage/pgadmin4:8.11",
        80,
        Some(("/misc/ping", 80)),
        "100m",
        "256Mi",
    ));
    all.push(w(
        PARAGON,
        mon,
        "redis-insight",
        Shape::Deployment,
        1,
        "docker.io/redis/redisinsight:2.56",
        5540,
        Some(("/api/health", 5540)),
        "100m",
        "256Mi",
    ));
    all.push(w(
        PARAGON,
        mon,
        "node-exporter",
        Shape::DaemonSet,
        0,
        "quay.io/prometheus/node-exporter:v1.8.2",
        9100,
        Some(("/", 9100)),
        "50m",
        "64Mi",
    ));
    let log = "paragon-logging";
    let mut es = w(
        PARAGON,
        log,
        "elasticsearch",
        Shape::StatefulSet,
        1,
        "docker.elastic.co/elasticsearch/elasticsearch:7.17.24",
        9200,
        Some(("/_cluster/health?local=true", 9200)),
        "500m",
        "2Gi",
    );
    es.storage = Some("30Gi");
    all.push(es);
    all.push(w(
        PARAGON,
        log,
        "kibana",
        Shape::Deployment,
        1,
        "docker.elastic.co/kibana/kibana:7.17.24",
        5601,
        Some(("/api/status", 5601)),
        "250m",
        "1Gi",
    ));
    all.push(w(
        PARAGON,
        log,
        "fluent-bit",
        Shape::DaemonSet,
        0,
        "cr.fluentbit.io/fluent/fluent-bit:3.1.9",
        2020,
        Some(("/api/v1/health", 2020)),
        "50m",
        "128Mi",
    ));
    all.push(w(
        PARAGON,
        "ingress",
        "ingress-nginx-controller",
        Shape::Deployment,
        2,
        "registry.k8s.io/ingress-nginx/controller:v1.11.3",
        80,
        Some(("/healthz", 10254)),
        "100m",
        "256Mi",
    ));
    all.push(w(
        PARAGON,
        "metricsserver",
        "metrics-server",
        Shape::Deployment,
        1,
        "registry.k8s.io/metrics-server/metrics-server:v0.7.2",
        10250,
        Some(("/readyz", 10250)),
        "100m",
        "200Mi",
    ));
    all.push(w(
        "kube-system",
        "",
        "coredns",
        Shape::Deployment,
        2,
        "registry.k8s.io/coredns/coredns:v1.11.3",
        53,
        Some(("/health", 8080)),
        "100m",
        "70Mi",
    ));
    all.push(w(
        "kube-system",
        "",
        "kube-proxy",
        Shape::DaemonSet,
        0,
        "registry.k8s.io/kube-proxy:v1.33.1",
        10256,
        None,
        "100m",
        "64Mi",
    ));
    all
}

/// Pods of the clean installation on `nodes` nodes before `--pods` scales it.
pub fn natural_pod_count(nodes: usize) -> usize {
    let w = workloads("0");
    let fixed: usize = w.iter().map(|w| w.replicas).sum();
    let daemons = w.iter().filter(|w| w.shape == Shape::DaemonSet).count();
    // + the restart CronJob's last Job's pod
    fixed + daemons * nodes + 1
}

fn s(v: impl Into<String>) -> Option<String> {
    Some(v.into())
}

fn time(unix: i64) -> Option<Time> {
    jiff::Timestamp::from_second(unix).ok().map(Time)
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect()
}

fn fault_annotations(fault: Option<Fault>) -> Option<BTreeMap<String, String>> {
    fault.map(|f| labels(&[(FAULT_ANNOTATION, f.name())]))
}

fn selector_text(l: &BTreeMap<String, String>) -> String {
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A node as pods see it.
#[derive(Debug, Clone)]
struct NodeInfo {
    name: String,
    ip: String,
    created: i64,
}

/// How a generated pod is doing.
#[derive(Debug, Clone)]
enum PodState {
    /// Running and ready; `last` is the container's previous termination, if it restarted.
    Ready {
        restarts: i32,
        last: Option<Terminated>,
    },
    /// Running, the readiness probe failing since `since`.
    NotReady {
        since: i64,
    },
    CrashLoop,
    ImagePull,
    Unschedulable(String),
    /// The container ran to its end: exit 0, or exit 1 when `failed`.
    Finished {
        finished: i64,
        failed: bool,
    },
}

#[derive(Debug, Clone)]
struct Terminated {
    reason: &'static str,
    exit_code: i32,
    started: i64,
    finished: i64,
}

/// What a pod needs beyond its workload.
struct PodPlan<'a> {
    w: &'a Workload,
    name: String,
    labels: BTreeMap<String, String>,
    owner: OwnerReference,
    node: Option<usize>,
    created: i64,
    state: PodState,
    fault: Option<Fault>,
    image: String,
    memory: &'a str,
    restart_policy: &'static str,
    claim: Option<String>,
}

struct Gen<'a> {
    opts: &'a SandboxOptions,
    rng: Rng,
    now: i64,
    resource_version: u64,
    tables: Vec<Vec<Entry>>,
    nodes: Vec<NodeInfo>,
    next_node: usize,
    next_pod_ip: u32,
    next_service_ip: u32,
    /// Daily rollout restart of the Paragon services (the restart CronJob, 14:00 UTC).
    restart: i64,
    /// When the installation was first deployed.
    installed: i64,
    app_version: String,
    /// Pod names of some services, for the events that mention them.
    first_pods: BTreeMap<&'static str, (String, String, String)>,
}

fn has(opts: &SandboxOptions, f: Fault) -> bool {
    opts.faults.contains(&f)
}

/// Generates the whole world.
pub(crate) fn generate(
    opts: &SandboxOptions,
    now: i64,
    cluster_ca_pem: &str,
) -> Result<World, SandboxError> {
    if opts.nodes == 0 {
        return Err(SandboxError::NoNodes);
    }
    let natural = natural_pod_count(opts.nodes);
    if opts.pods != 0 && opts.pods < natural {
        return Err(SandboxError::TooFewPods {
            asked: opts.pods,
            min: natural,
            nodes: opts.nodes,
        });
    }
    let mut rng = Rng::new(opts.seed);
    let app_version = format!("2025.{}.{}", 1 + rng.below(12), rng.range(1, 28));
    let mut all = workloads(&app_version);
    let extra = opts.pods.saturating_sub(natural);
    let workers: Vec<usize> = all
        .iter()
        .enumerate()
        .filter(|(_, w)| w.release == "paragon-on-prem" && w.name.starts_with("worker-"))
        .map(|(i, _)| i)
        .collect();
    for i in 0..extra {
        all[workers[i % workers.len()]].replicas += 1;
    }

    // The last 14:00 UTC at least ten minutes ago.
    let today = now - now.rem_euclid(DAY) + 14 * HOUR;
    let restart = if today <= now - 10 * MINUTE {
        today
    } else {
        today - DAY
    };
    let mut g = Gen {
        opts,
        now,
        resource_version: 1000 + rng.below(1_000_000),
        tables: (0..super::store::ALL.len()).map(|_| Vec::new()).collect(),
        nodes: Vec::new(),
        next_node: 0,
        next_pod_ip: 0,
        next_service_ip: 0,
        restart,
        installed: now - rng.range(120, 200) * DAY,
        first_pods: BTreeMap::new(),
        app_version: app_version.clone(),
        rng,
    };
    g.next_node = g.rng.below(opts.nodes as u64) as usize;
    g.namespaces()?;
    g.nodes()?;
    for w in &all {
        match w.shape {
            Shape::Deployment => g.deployment(w)?,
            Shape::StatefulSet => g.statefulset(w)?,
            Shape::DaemonSet => g.daemonset(w)?,
        }
        if w.name != "kube-proxy" && w.name != "fluent-bit" {
            g.service(w)?;
        }
    }
    g.cluster_services()?;
    g.restart_cronjob()?;
    if has(opts, Fault::MigrationFailed) {
        g.failed_migration()?;
    }
    g.helm_releases(&app_version)?;
    g.tls_secrets()?;
    g.config(cluster_ca_pem, &all)?;
    g.fault_pvc()?;
    g.warning_events()?;
    let rv = g.resource_version + 1;
    Ok(World::new(rv, g.tables))
}

impl Gen<'_> {
    fn push<K>(
        &mut self,
        res: Res,
        obj: K,
        fields: Vec<String>,
        cells: Vec<Cell>,
    ) -> Result<(), SandboxError>
    where
        K: Metadata<Ty = ObjectMeta> + Serialize,
    {
        let e = Entry::new(res, obj, fields, cells)
            .map_err(|e| SandboxError::Generate(e.to_string()))?;
        self.tables[res as usize].push(e);
        Ok(())
    }

    fn meta(
        &mut self,
        namespace: Option<&str>,
        name: &str,
        labels: Option<BTreeMap<String, String>>,
        created: i64,
    ) -> ObjectMeta {
        self.resource_version += 1;
        ObjectMeta {
            name: s(name),
            namespace: namespace.map(str::to_string),
            uid: s(self.rng.uid()),
            resource_version: s(self.resource_version.to_string()),
            creation_timestamp: time(created),
            labels,
            ..Default::default()
        }
    }

    fn pod_ip(&mut self) -> String {
        let n = self.next_pod_ip;
        self.next_pod_ip += 1;
        // 10.1.0.0/16 onwards, skipping .0 and .255 of each /24.
        let host = n % 254 + 1;
        let net = n / 254;
        format!("10.{}.{}.{host}", 1 + net / 256 % 254, net % 256)
    }

    fn take_node(&mut self) -> usize {
        let n = self.next_node % self.nodes.len();
        self.next_node += 1;
        n
    }

    fn namespaces(&mut self) -> Result<(), SandboxError> {
        for name in [
            "default",
            "kube-system",
            "kube-public",
            "kube-node-lease",
            PARAGON,
        ] {
            let created = if name == PARAGON {
                self.installed
            } else {
                self.installed - DAY
            };
            let meta = self.meta(
                None,
                name,
                Some(labels(&[("kubernetes.io/metadata.name", name)])),
                created,
            );
            let ns = Namespace {
                metadata: meta,
                spec: Some(NamespaceSpec {
                    finalizers: Some(vec!["kubernetes".into()]),
                }),
                status: Some(NamespaceStatus {
                    phase: s("Active"),
                    ..Default::default()
                }),
            };
            self.push(
                Res::Namespaces,
                ns,
                vec!["Active".into()],
                vec![Cell::text(name), Cell::text("Active"), Cell::Age(created)],
            )?;
        }
        Ok(())
    }

    fn nodes(&mut self) -> Result<(), SandboxError> {
        let count = self.opts.nodes;
        let total_pods = self.opts.pods.max(natural_pod_count(count)) + 3;
        let max_pods = (total_pods.div_ceil(count) + 20).max(110);
        let third = 16 + self.rng.below(32) as usize;
        let zones = ["us-east-1a", "us-east-1b", "us-east-1c"];
        for i in 0..count {
            let ip = format!("10.0.{}.{}", third + i / 250, i % 250 + 4);
            let name = format!("ip-{}.ec2.internal", ip.replace('.', "-"));
            let created = self.now - self.rng.range(12 * DAY, 40 * DAY);
            let zone = zones[i % zones.len()];
            let mut l = labels(&[
                ("beta.kubernetes.io/arch", "amd64"),
                ("beta.kubernetes.io/os", "linux"),
                ("kubernetes.io/arch", "amd64"),
                ("kubernetes.io/os", "linux"),
                ("kubernetes.io/hostname", &name),
                ("node.kubernetes.io/instance-type", "m6i.2xlarge"),
                ("topology.kubernetes.io/region", "us-east-1"),
                ("topology.kubernetes.io/zone", zone),
                ("eks.amazonaws.com/nodegroup", "paragon-workers"),
            ]);
            l.insert("eks.amazonaws.com/capacityType".into(), "ON_DEMAND".into());
            let not_ready = i == count - 1 && has(self.opts, Fault::NodeNotReady);
            let pressure = i == 0 && has(self.opts, Fault::NodePressure);
            let fault = if not_ready {
                Some(Fault::NodeNotReady)
            } else if pressure {
                Some(Fault::NodePressure)
            } else {
                None
            };
            let mut meta = self.meta(None, &name, Some(l), created);
            meta.annotations = Some(labels(&[
                ("alpha.kubernetes.io/provided-node-ip", &ip),
                ("node.alpha.kubernetes.io/ttl", "0"),
                (
                    "volumes.kubernetes.io/controller-managed-attach-detach",
                    "true",
                ),
            ]));
            if let (Some(a), Some(f)) = (meta.annotations.as_mut(), fault) {
                a.insert(FAULT_ANNOTATION.into(), f.name().into());
            }
            let heartbeat = self.now - self.rng.range(5, 40);
            let cond = |t: &str, status: &str, reason: &str, message: &str, hb: i64, since: i64| {
                NodeCondition {
                    type_: t.into(),
                    status: status.into(),
                    reason: s(reason),
                    message: s(message),
                    last_heartbeat_time: time(hb),
                    last_transition_time: time(since),
                }
            };
            let up = created + 40;
            let conditions = if not_ready {
                let (hb, since) = (self.now - 6 * MINUTE, self.now - 5 * MINUTE);
                let msg = "Kubelet stopped posting node status.";
                vec![
                    cond(
                        "MemoryPressure",
                        "Unknown",
                        "NodeStatusUnknown",
                        msg,
                        hb,
                        since,
                    ),
                    cond(
                        "DiskPressure",
                        "Unknown",
                        "NodeStatusUnknown",
                        msg,
                        hb,
                        since,
                    ),
                    cond(
                        "PIDPressure",
                        "Unknown",
                        "NodeStatusUnknown",
                        msg,
                        hb,
                        since,
                    ),
                    cond("Ready", "Unknown", "NodeStatusUnknown", msg, hb, since),
                ]
            } else {
                let memory = if pressure {
                    cond(
                        "MemoryPressure",
                        "True",
                        "KubeletHasInsufficientMemory",
                        "kubelet has insufficient memory available",
                        heartbeat,
                        self.now - 15 * MINUTE,
                    )
                } else {
                    cond(
                        "MemoryPressure",
                        "False",
                        "KubeletHasSufficientMemory",
                        "kubelet has sufficient memory available",
                        heartbeat,
                        up,
                    )
                };
                vec![
                    memory,
                    cond(
                        "DiskPressure",
                        "False",
                        "KubeletHasNoDiskPressure",
                        "kubelet has no disk pressure",
                        heartbeat,
                        up,
                    ),
                    cond(
                        "PIDPressure",
                        "False",
                        "KubeletHasSufficientPID",
                        "kubelet has sufficient PID available",
                        heartbeat,
                        up,
                    ),
                    cond(
                        "Ready",
                        "True",
                        "KubeletReady",
                        "kubelet is posting ready status",
                        heartbeat,
                        up + 20,
                    ),
                ]
            };
            let mut taints = Vec::new();
            if not_ready {
                for effect in ["NoSchedule", "NoExecute"] {
                    taints.push(Taint {
                        key: "node.kubernetes.io/unreachable".into(),
                        effect: effect.into(),
                        time_added: if effect == "NoExecute" {
                            time(self.now - 5 * MINUTE)
                        } else {
                            None
                        },
                        value: None,
                    });
                }
            }
            if pressure {
                taints.push(Taint {
                    key: "node.kubernetes.io/memory-pressure".into(),
                    effect: "NoSchedule".into(),
                    time_added: time(self.now - 15 * MINUTE),
                    value: None,
                });
            }
            let capacity = quantities(&[
                ("cpu", "8"),
                ("ephemeral-storage", "104845292Ki"),
                ("hugepages-1Gi", "0"),
                ("hugepages-2Mi", "0"),
                ("memory", "32386688Ki"),
                ("pods", &max_pods.to_string()),
            ]);
            let allocatable = quantities(&[
                ("cpu", "7910m"),
                ("ephemeral-storage", "95551679124"),
                ("hugepages-1Gi", "0"),
                ("hugepages-2Mi", "0"),
                ("memory", "31369856Ki"),
                ("pods", &max_pods.to_string()),
            ]);
            let instance = format!("i-0{}", self.rng.hex(16));
            let node_info = NodeSystemInfo {
                architecture: "amd64".into(),
                boot_id: self.rng.uid(),
                container_runtime_version: "containerd://1.7.27".into(),
                kernel_version: "6.1.134-152.225.amzn2023.x86_64".into(),
                kube_proxy_version: "v1.33.1-eks-b9364f6".into(),
                kubelet_version: "v1.33.1-eks-b9364f6".into(),
                machine_id: self.rng.hex(32),
                operating_system: "linux".into(),
                os_image: "Amazon Linux 2023.7.20250512".into(),
                system_uuid: self.rng.uid(),
                swap: None,
            };
            let status_text = if not_ready { "NotReady" } else { "Ready" };
            let cells = vec![
                Cell::text(name.as_str()),
                Cell::text(status_text),
                Cell::text("<none>"),
                Cell::Age(created),
                Cell::text(node_info.kubelet_version.as_str()),
                Cell::text(ip.as_str()),
                Cell::text("<none>"),
                Cell::text(node_info.os_image.as_str()),
                Cell::text(node_info.kernel_version.as_str()),
                Cell::text(node_info.container_runtime_version.as_str()),
            ];
            let node = Node {
                metadata: meta,
                spec: Some(NodeSpec {
                    provider_id: s(format!("aws:///{zone}/{instance}")),
                    taints: if taints.is_empty() {
                        None
                    } else {
                        Some(taints)
                    },
                    ..Default::default()
                }),
                status: Some(NodeStatus {
                    addresses: Some(vec![
                        NodeAddress {
                            type_: "InternalIP".into(),
                            address: ip.clone(),
                        },
                        NodeAddress {
                            type_: "InternalDNS".into(),
                            address: name.clone(),
                        },
                        NodeAddress {
                            type_: "Hostname".into(),
                            address: name.clone(),
                        },
                    ]),
                    allocatable: Some(allocatable),
                    capacity: Some(capacity),
                    conditions: Some(conditions),
                    node_info: Some(node_info),
                    ..Default::default()
                }),
            };
            self.push(Res::Nodes, node, vec!["false".into()], cells)?;
            self.nodes.push(NodeInfo { name, ip, created });
        }
        Ok(())
    }

    fn container(&self, w: &Workload, image: &str, memory: &str) -> Container {
        let probe = w.probe.map(|(path, port)| Probe {
            http_get: Some(HTTPGetAction {
                path: s(path),
                port: IntOrString::Int(i32::from(port)),
                scheme: s("HTTP"),
                ..Default::default()
            }),
            period_seconds: Some(10),
            timeout_seconds: Some(5),
            failure_threshold: Some(3),
            success_threshold: Some(1),
            ..Default::default()
        });
        Container {
            name: w.name.into(),
            image: s(image),
            image_pull_policy: s("IfNotPresent"),
            ports: Some(vec![ContainerPort {
                container_port: i32::from(w.port),
                name: s("http"),
                protocol: s("TCP"),
                ..Default::default()
            }]),
            readiness_probe: probe.clone(),
            liveness_probe: probe,
            resources: Some(ResourceRequirements {
                requests: Some(quantities(&[("cpu", w.cpu), ("memory", memory)])),
                limits: Some(quantities(&[("memory", memory)])),
                ..Default::default()
            }),
            termination_message_path: s("/dev/termination-log"),
            termination_message_policy: s("File"),
            ..Default::default()
        }
    }

    fn pod_template(
        &self,
        w: &Workload,
        l: &BTreeMap<String, String>,
        image: &str,
        memory: &str,
    ) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(l.clone()),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![self.container(w, image, memory)],
                ..Default::default()
            }),
        }
    }

    fn workload_labels(w: &Workload) -> BTreeMap<String, String> {
        if w.release.is_empty() {
            labels(&[("k8s-app", w.name)])
        } else {
            labels(&[(INSTANCE, w.release), (APP_NAME, w.name)])
        }
    }

    /// Labels and annotations Helm puts on the objects of a release.
    fn helm_meta(meta: &mut ObjectMeta, w: &Workload) {
        if w.release.is_empty() {
            return;
        }
        if let Some(l) = meta.labels.as_mut() {
            l.insert("app.kubernetes.io/managed-by".into(), "Helm".into());
        }
        let a = meta.annotations.get_or_insert_with(BTreeMap::new);
        a.insert("meta.helm.sh/release-name".into(), w.release.into());
        a.insert("meta.helm.sh/release-namespace".into(), w.namespace.into());
    }

    fn image_id(&mut self, image: &str) -> String {
        let repo = image.split(':').next().unwrap_or(image);
        format!("{repo}@sha256:{}", self.rng.hex(64))
    }

    /// Makes a pod; returns its uid and IP (empty when unscheduled).
    fn pod(&mut self, p: PodPlan<'_>) -> Result<(String, String), SandboxError> {
        let w = p.w;
        let node = p.node.map(|n| self.nodes[n].clone());
        let ip = node.as_ref().map(|_| self.pod_ip());
        let mut meta = self.meta(Some(w.namespace), &p.name, Some(p.labels), p.created);
        meta.owner_references = Some(vec![p.owner]);
        meta.annotations = fault_annotations(p.fault);
        let mut container = self.container(w, &p.image, p.memory);
        let mut volumes = None;
        if let Some(claim) = &p.claim {
            container.volume_mounts = Some(vec![VolumeMount {
                name: "data".into(),
                mount_path: "/data".into(),
                ..Default::default()
            }]);
            volumes = Some(vec![Volume {
                name: "data".into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim.clone(),
                    read_only: None,
                }),
                ..Default::default()
            }]);
        }
        let toleration = |key: &str| Toleration {
            key: s(key),
            operator: s("Exists"),
            effect: s("NoExecute"),
            toleration_seconds: Some(300),
            value: None,
        };
        let spec = PodSpec {
            containers: vec![container],
            node_name: node.as_ref().map(|n| n.name.clone()),
            restart_policy: s(p.restart_policy),
            scheduler_name: s("default-scheduler"),
            service_account_name: s(if w.release.is_empty() {
                w.name
            } else {
                w.release
            }),
            termination_grace_period_seconds: Some(30),
            dns_policy: s("ClusterFirst"),
            enable_service_links: Some(true),
            preemption_policy: s("PreemptLowerPriority"),
            priority: Some(0),
            tolerations: Some(vec![
                toleration("node.kubernetes.io/not-ready"),
                toleration("node.kubernetes.io/unreachable"),
            ]),
            volumes,
            ..Default::default()
        };

        let created = p.created;
        let cond = |t: &str, ok: bool, at: i64, reason: Option<&str>| PodCondition {
            type_: t.into(),
            status: if ok { "True" } else { "False" }.into(),
            last_transition_time: time(at),
            reason: reason.map(str::to_string),
            ..Default::default()
        };
        let image_id = self.image_id(&p.image);
        let container_id = format!("containerd://{}", self.rng.hex(64));
        let base_status =
            |ready: bool,
             restart_count: i32,
             state: ContainerState,
             last: Option<ContainerState>| ContainerStatus {
                name: w.name.into(),
                image: p.image.clone(),
                image_id: image_id.clone(),
                container_id: s(container_id.clone()),
                ready,
                started: Some(state.running.is_some()),
                restart_count,
                state: Some(state),
                last_state: last,
                ..Default::default()
            };
        let terminated = |t: &Terminated| ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: t.exit_code,
                reason: s(t.reason),
                started_at: time(t.started),
                finished_at: time(t.finished),
                container_id: s(format!(
                    "containerd://{}",
                    &container_id[13..].chars().rev().collect::<String>()
                )),
                ..Default::default()
            }),
            ..Default::default()
        };
        let running = |since: i64| ContainerState {
            running: Some(ContainerStateRunning {
                started_at: time(since),
            }),
            ..Default::default()
        };
        let scheduled = created + 1;
        let started = created + 6;
        let (phase, conditions, statuses, status_text, ready_text, restarts, last_restart) =
            match &p.state {
                PodState::Ready { restarts, last } => {
                    let since = last.as_ref().map_or(started, |t| t.finished + 1);
                    let ready_at = since + 12;
                    (
                        "Running",
                        vec![
                            cond("PodReadyToStartContainers", true, created + 4, None),
                            cond("Initialized", true, scheduled, None),
                            cond("Ready", true, ready_at, None),
                            cond("ContainersReady", true, ready_at, None),
                            cond("PodScheduled", true, scheduled, None),
                        ],
                        Some(vec![base_status(
                            true,
                            *restarts,
                            running(since),
                            last.as_ref().map(terminated),
                        )]),
                        "Running".to_string(),
                        "1/1",
                        *restarts,
                        last.as_ref().map(|t| t.finished),
                    )
                }
                PodState::NotReady { since } => (
                    "Running",
                    vec![
                        cond("PodReadyToStartContainers", true, created + 4, None),
                        cond("Initialized", true, scheduled, None),
                        cond("Ready", false, *since, Some("ContainersNotReady")),
                        cond("ContainersReady", false, *since, Some("ContainersNotReady")),
                        cond("PodScheduled", true, scheduled, None),
                    ],
                    Some(vec![base_status(false, 0, running(started), None)]),
                    "Running".to_string(),
                    "0/1",
                    0,
                    None,
                ),
                PodState::CrashLoop => {
                    let last = Terminated {
                        reason: "Error",
                        exit_code: 1,
                        started: self.now - 2 * MINUTE - 4,
                        finished: self.now - 2 * MINUTE,
                    };
                    let waiting = ContainerState {
                        waiting: Some(ContainerStateWaiting {
                            reason: s("CrashLoopBackOff"),
                            message: s(format!(
                                "back-off 5m0s restarting failed container={} pod={}",
                                w.name, p.name
                            )),
                        }),
                        ..Default::default()
                    };
                    (
                        "Running",
                        vec![
                            cond("PodReadyToStartContainers", true, created + 4, None),
                            cond("Initialized", true, scheduled, None),
                            cond("Ready", false, created + 4, Some("ContainersNotReady")),
                            cond(
                                "ContainersReady",
                                false,
                                created + 4,
                                Some("ContainersNotReady"),
                            ),
                            cond("PodScheduled", true, scheduled, None),
                        ],
                        Some(vec![base_status(
                            false,
                            9,
                            waiting,
                            Some(terminated(&last)),
                        )]),
                        "CrashLoopBackOff".to_string(),
                        "0/1",
                        9,
                        Some(last.finished),
                    )
                }
                PodState::ImagePull => {
                    let waiting = ContainerState {
                        waiting: Some(ContainerStateWaiting {
                            reason: s("ImagePullBackOff"),
                            message: s(format!("Back-off pulling image \"{}\"", p.image)),
                        }),
                        ..Default::default()
                    };
                    let mut st = base_status(false, 0, waiting, None);
                    st.image_id = String::new();
                    st.container_id = None;
                    (
                        "Pending",
                        vec![
                            cond("PodReadyToStartContainers", true, created + 4, None),
                            cond("Initialized", true, scheduled, None),
                            cond("Ready", false, scheduled, Some("ContainersNotReady")),
                            cond(
                                "ContainersReady",
                                false,
                                scheduled,
                                Some("ContainersNotReady"),
                            ),
                            cond("PodScheduled", true, scheduled, None),
                        ],
                        Some(vec![st]),
                        "ImagePullBackOff".to_string(),
                        "0/1",
                        0,
                        None,
                    )
                }
                PodState::Unschedulable(message) => {
                    let mut c = cond("PodScheduled", false, created, Some("Unschedulable"));
                    c.message = s(message.clone());
                    (
                        "Pending",
                        vec![c],
                        None,
                        "Pending".to_string(),
                        "0/1",
                        0,
                        None,
                    )
                }
                PodState::Finished { finished, failed } => {
                    let (exit_code, reason, why, text) = if *failed {
                        (1, "Error", "PodFailed", "Error")
                    } else {
                        (0, "Completed", "PodCompleted", "Completed")
                    };
                    let done = ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code,
                            reason: s(reason),
                            started_at: time(started),
                            finished_at: time(*finished),
                            container_id: s(container_id.clone()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    };
                    (
                        if *failed { "Failed" } else { "Succeeded" },
                        vec![
                            cond("PodReadyToStartContainers", false, *finished + 1, None),
                            cond("Initialized", true, scheduled, Some(why)),
                            cond("Ready", false, *finished + 1, Some(why)),
                            cond("ContainersReady", false, *finished + 1, Some(why)),
                            cond("PodScheduled", true, scheduled, None),
                        ],
                        Some(vec![base_status(false, 0, done, None)]),
                        text.to_string(),
                        "0/1",
                        0,
                        None,
                    )
                }
            };
        let status = PodStatus {
            phase: s(phase),
            conditions: Some(conditions),
            container_statuses: statuses,
            host_ip: node.as_ref().map(|n| n.ip.clone()),
            host_ips: node.as_ref().map(|n| vec![HostIP { ip: n.ip.clone() }]),
            pod_ip: ip.clone(),
            pod_ips: ip.as_ref().map(|ip| vec![PodIP { ip: ip.clone() }]),
            qos_class: s("Burstable"),
            start_time: node.as_ref().map(|_| created + 1).and_then(time),
            ..Default::default()
        };
        let node_name = node.as_ref().map_or(String::new(), |n| n.name.clone());
        let fields = vec![
            node_name.clone(),
            p.restart_policy.to_string(),
            "default-scheduler".to_string(),
            spec.service_account_name.clone().unwrap_or_default(),
            phase.to_string(),
            ip.clone().unwrap_or_default(),
            String::new(),
        ];
        let none = |v: Option<String>| Cell::text(v.unwrap_or_else(|| "<none>".into()));
        let cells = vec![
            Cell::text(p.name.as_str()),
            Cell::text(ready_text),
            Cell::text(status_text),
            Cell::Restarts(restarts, last_restart),
            Cell::Age(created),
            none(ip),
            none(node.map(|n| n.name)),
            Cell::text("<none>"),
            Cell::text("<none>"),
        ];
        let uid = meta.uid.clone().unwrap_or_default();
        let pod_ip = status.pod_ip.clone().unwrap_or_default();
        let pod = Pod {
            metadata: meta,
            spec: Some(spec),
            status: Some(status),
        };
        self.push(Res::Pods, pod, fields, cells)?;
        Ok((uid, pod_ip))
    }

    fn owner<K: Resource>(name: &str, meta: &ObjectMeta) -> OwnerReference {
        OwnerReference {
            api_version: K::API_VERSION.into(),
            kind: K::KIND.into(),
            name: name.into(),
            uid: meta.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    fn deployment(&mut self, w: &Workload) -> Result<(), SandboxError> {
        let paragon = w.release == "paragon-on-prem";
        // Paragon's services are rollout-restarted daily; the rest was last changed with its
        // release or the cluster.
        let (pods_created, revision) = if paragon {
            (
                self.restart,
                ((self.restart - self.installed) / DAY + 3) as i32,
            )
        } else {
            (
                self.now - self.rng.range(9 * DAY, 30 * DAY),
                2 + self.rng.below(4) as i32,
            )
        };
        let rollout = match w.name {
            "worker-actions" if paragon && has(self.opts, Fault::CrashLoop) => {
                Some(Fault::CrashLoop)
            }
            "hermes" if paragon && has(self.opts, Fault::ImagePull) => Some(Fault::ImagePull),
            "zeus" if paragon && has(self.opts, Fault::Pending) => Some(Fault::Pending),
            _ => None,
        };
        let unavailable =
            paragon && w.name == "passport" && has(self.opts, Fault::DeploymentUnavailable);
        let oom = paragon && w.name == "worker-workflows" && has(self.opts, Fault::OomKilled);

        let sel = Self::workload_labels(w);
        let mut dmeta = self.meta(Some(w.namespace), w.name, Some(sel.clone()), self.installed);
        Self::helm_meta(&mut dmeta, w);
        let generation = i64::from(revision) + if rollout.is_some() { 1 } else { 0 };
        dmeta.generation = Some(generation);
        let a = dmeta.annotations.get_or_insert_with(BTreeMap::new);
        a.insert(
            "deployment.kubernetes.io/revision".into(),
            (revision + i32::from(rollout.is_some())).to_string(),
        );
        if let Some(f) = rollout.or(unavailable.then_some(Fault::DeploymentUnavailable)) {
            a.insert(FAULT_ANNOTATION.into(), f.name().into());
        }
        let deploy_owner = Self::owner::<Deployment>(w.name, &dmeta);
        let deploy_ref = Involved {
            kind: Deployment::KIND,
            api_version: Deployment::API_VERSION,
            namespace: w.namespace,
            name: w.name.to_string(),
            uid: deploy_owner.uid.clone(),
        };
        let replicas = w.replicas;

        // ReplicaSets: yesterday's (scaled to 0), the current one, and a new one mid-rollout.
        let hash = self.rng.suffix(10);
        let old_hash = self.rng.suffix(10);
        let new_hash = self.rng.suffix(10);
        let rs_created = pods_created - 2;
        let mut rs_labels = sel.clone();
        rs_labels.insert("pod-template-hash".into(), hash.clone());
        let ready = if unavailable { 0 } else { replicas };
        self.replicaset(
            w,
            &deploy_owner,
            &old_hash,
            rs_created - DAY,
            revision - 1,
            0,
            0,
            None,
        )?;
        let rs_owner = self.replicaset(
            w,
            &deploy_owner,
            &hash,
            rs_created,
            revision,
            replicas,
            ready,
            unavailable.then_some(Fault::DeploymentUnavailable),
        )?;

        let mut names: Vec<String> = (0..replicas)
            .map(|_| format!("{}-{hash}-{}", w.name, self.rng.suffix(5)))
            .collect();
        names.sort();
        for (i, name) in names.iter().enumerate() {
            let node = self.take_node();
            let created = pods_created + self.rng.range(5, 90);
            let (state, fault) = if unavailable {
                (
                    PodState::NotReady {
                        since: self.now - 15 * MINUTE,
                    },
                    Some(Fault::DeploymentUnavailable),
                )
            } else if oom && i == 0 {
                let finished = self.now - 12 * MINUTE;
                (
                    PodState::Ready {
                        restarts: 1,
                        last: Some(Terminated {
                            reason: "OOMKilled",
                            exit_code: 137,
                            started: created + 6,
                            finished,
                        }),
                    },
                    Some(Fault::OomKilled),
                )
            } else {
                (
                    PodState::Ready {
                        restarts: 0,
                        last: None,
                    },
                    None,
                )
            };
            let (uid, ip) = self.pod(PodPlan {
                w,
                name: name.clone(),
                labels: rs_labels.clone(),
                owner: rs_owner.clone(),
                node: Some(node),
                created,
                state,
                fault,
                image: w.image.clone(),
                memory: w.memory,
                restart_policy: "Always",
                claim: None,
            })?;
            if i == 0 {
                self.first_pods.insert(w.name, (name.clone(), uid, ip));
            }
        }

        if let Some(f) = rollout {
            let (image, memory, state, age) = match f {
                Fault::CrashLoop => (w.image.clone(), w.memory, PodState::CrashLoop, 40 * MINUTE),
                Fault::ImagePull => {
                    let tag = format!("{}-rc{}", w.image, 1 + self.rng.below(5));
                    (tag, w.memory, PodState::ImagePull, 20 * MINUTE)
                }
                _ => {
                    let n = self.nodes.len();
                    let message = format!(
                        "0/{n} nodes are available: {n} Insufficient memory. preemption: 0/{n} nodes are available: {n} No preemption victims found for incoming pod."
                    );
                    (
                        w.image.clone(),
                        "48Gi",
                        PodState::Unschedulable(message),
                        25 * MINUTE,
                    )
                }
            };
            let created = self.now - age;
            let rs_owner = self.replicaset(
                w,
                &deploy_owner,
                &new_hash,
                created - 1,
                revision + 1,
                1,
                0,
                Some(f),
            )?;
            let mut l = sel.clone();
            l.insert("pod-template-hash".into(), new_hash.clone());
            let node = if matches!(state, PodState::Unschedulable(_)) {
                None
            } else {
                Some(self.take_node())
            };
            let name = format!("{}-{new_hash}-{}", w.name, self.rng.suffix(5));
            self.pod(PodPlan {
                w,
                name,
                labels: l,
                owner: rs_owner,
                node,
                created,
                state,
                fault: Some(f),
                image,
                memory,
                restart_policy: "Always",
                claim: None,
            })?;
        }

        let r = replicas as i32;
        let surge = i32::from(rollout.is_some());
        let current_rs = if rollout.is_some() { &new_hash } else { &hash };
        let transition = pods_created + 100;
        let cond = |t: &str, ok: bool, reason: &str, message: String, at: i64, update: i64| {
            DeploymentCondition {
                type_: t.into(),
                status: if ok { "True" } else { "False" }.into(),
                reason: s(reason),
                message: s(message),
                last_transition_time: time(at),
                last_update_time: time(update),
            }
        };
        let rs_name = format!("{}-{current_rs}", w.name);
        let available_cond = if unavailable {
            cond(
                "Available",
                false,
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
                self.now - 15 * MINUTE,
                self.now - 15 * MINUTE,
            )
        } else {
            cond(
                "Available",
                true,
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
                self.installed + 120,
                self.installed + 120,
            )
        };
        let progressing = if rollout.is_some() {
            cond(
                "Progressing",
                true,
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{rs_name}\" is progressing."),
                self.installed + 60,
                self.now - 60,
            )
        } else {
            cond(
                "Progressing",
                true,
                "NewReplicaSetAvailable",
                format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
                self.installed + 60,
                transition,
            )
        };
        let nz = |v: i32| (v != 0).then_some(v);
        let status = DeploymentStatus {
            observed_generation: Some(generation),
            replicas: Some(r + surge),
            updated_replicas: Some(if rollout.is_some() { 1 } else { r }),
            ready_replicas: nz(ready as i32),
            available_replicas: nz(ready as i32),
            unavailable_replicas: nz(r + surge - ready as i32),
            conditions: Some(vec![available_cond, progressing]),
            ..Default::default()
        };
        let template = self.pod_template(w, &sel, &w.image, w.memory);
        let cells = vec![
            Cell::text(w.name),
            Cell::text(format!("{ready}/{r}")),
            Cell::Int(i64::from(status.updated_replicas.unwrap_or(0))),
            Cell::Int(i64::from(status.available_replicas.unwrap_or(0))),
            Cell::Age(self.installed),
            Cell::text(w.name),
            Cell::text(w.image.as_str()),
            Cell::text(selector_text(&sel)),
        ];
        let d = Deployment {
            metadata: dmeta,
            spec: Some(DeploymentSpec {
                replicas: Some(r),
                selector: LabelSelector {
                    match_labels: Some(sel.clone()),
                    match_expressions: None,
                },
                template,
                strategy: Some(DeploymentStrategy {
                    type_: s("RollingUpdate"),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(IntOrString::String("25%".into())),
                        max_unavailable: Some(IntOrString::String("25%".into())),
                    }),
                }),
                revision_history_limit: Some(10),
                progress_deadline_seconds: Some(600),
                ..Default::default()
            }),
            status: Some(status),
        };
        self.push(Res::Deployments, d, vec![], cells)?;
        if paragon {
            self.event(
                &deploy_ref,
                "ScalingReplicaSet",
                &format!("Scaled up replica set {}-{hash} from 0 to {r}", w.name),
                "Normal",
                "deployment-controller",
                pods_created,
                pods_created,
                1,
                None,
            )?;
        }
        Ok(())
    }

    /// Makes a ReplicaSet of Deployment `w`; returns the owner reference its pods carry.
    #[allow(clippy::too_many_arguments)]
    fn replicaset(
        &mut self,
        w: &Workload,
        owner: &OwnerReference,
        hash: &str,
        created: i64,
        revision: i32,
        replicas: usize,
        ready: usize,
        fault: Option<Fault>,
    ) -> Result<OwnerReference, SandboxError> {
        let name = format!("{}-{hash}", w.name);
        let sel = Self::workload_labels(w);
        let mut l = sel.clone();
        l.insert("pod-template-hash".into(), hash.to_string());
        let mut meta = self.meta(Some(w.namespace), &name, Some(l.clone()), created);
        meta.owner_references = Some(vec![owner.clone()]);
        meta.generation = Some(if replicas == 0 { 2 } else { 1 });
        let mut a = labels(&[
            (
                "deployment.kubernetes.io/desired-replicas",
                &w.replicas.to_string(),
            ),
            (
                "deployment.kubernetes.io/max-replicas",
                &(w.replicas + w.replicas.div_ceil(4)).to_string(),
            ),
            ("deployment.kubernetes.io/revision", &revision.to_string()),
        ]);
        if let Some(f) = fault {
            a.insert(FAULT_ANNOTATION.into(), f.name().into());
        }
        meta.annotations = Some(a);
        let reference = Self::owner::<ReplicaSet>(&name, &meta);
        let (r, ready) = (replicas as i32, ready as i32);
        let nz = |v: i32| (v != 0).then_some(v);
        let template = self.pod_template(w, &l, &w.image, w.memory);
        let cells = vec![
            Cell::text(name.as_str()),
            Cell::Int(i64::from(r)),
            Cell::Int(i64::from(r)),
            Cell::Int(i64::from(ready)),
            Cell::Age(created),
            Cell::text(w.name),
            Cell::text(w.image.as_str()),
            Cell::text(selector_text(&l)),
        ];
        let rs = ReplicaSet {
            metadata: meta,
            spec: Some(ReplicaSetSpec {
                replicas: Some(r),
                selector: LabelSelector {
                    match_labels: Some(l),
                    match_expressions: None,
                },
                template: Some(template),
                min_ready_seconds: None,
            }),
            status: Some(ReplicaSetStatus {
                replicas: r,
                fully_labeled_replicas: nz(r),
                ready_replicas: nz(ready),
                available_replicas: nz(ready),
                observed_generation: Some(if replicas == 0 { 2 } else { 1 }),
                ..Default::default()
            }),
        };
        self.push(Res::ReplicaSets, rs, vec![r.to_string()], cells)?;
        Ok(reference)
    }

    fn statefulset(&mut self, w: &Workload) -> Result<(), SandboxError> {
        let created = self.installed + self.rng.range(0, 300);
        let pods_created = self.now - self.rng.range(6 * DAY, 20 * DAY);
        let sel = Self::workload_labels(w);
        let mut meta = self.meta(Some(w.namespace), w.name, Some(sel.clone()), created);
        Self::helm_meta(&mut meta, w);
        meta.generation = Some(1);
        let owner = Self::owner::<StatefulSet>(w.name, &meta);
        let revision = format!("{}-{}", w.name, self.rng.suffix(10));
        let storage = w.storage.unwrap_or("10Gi");
        for i in 0..w.replicas {
            let name = format!("{}-{i}", w.name);
            let claim = format!("data-{name}");
            self.pvc(
                w.namespace,
                &claim,
                &sel,
                storage,
                "gp3",
                created + 5,
                true,
                None,
            )?;
            let mut l = sel.clone();
            l.insert("apps.kubernetes.io/pod-index".into(), i.to_string());
            l.insert("controller-revision-hash".into(), revision.clone());
            l.insert("statefulset.kubernetes.io/pod-name".into(), name.clone());
            // prometheus restarted twice, days ago: a clean cluster's restarts are old ones
            let state = if w.name == "prometheus" && i == 0 {
                PodState::Ready {
                    restarts: 2,
                    last: Some(Terminated {
                        reason: "Error",
                        exit_code: 1,
                        started: pods_created + 10,
                        finished: pods_created + 2 * DAY,
                    }),
                }
            } else {
                PodState::Ready {
                    restarts: 0,
                    last: None,
                }
            };
            let node = self.take_node();
            self.pod(PodPlan {
                w,
                name,
                labels: l,
                owner: owner.clone(),
                node: Some(node),
                created: pods_created,
                state,
                fault: None,
                image: w.image.clone(),
                memory: w.memory,
                restart_policy: "Always",
                claim: Some(claim),
            })?;
        }
        let r = w.replicas as i32;
        let cells = vec![
            Cell::text(w.name),
            Cell::text(format!("{r}/{r}")),
            Cell::Age(created),
            Cell::text(w.name),
            Cell::text(w.image.as_str()),
        ];
        let template = self.pod_template(w, &sel, &w.image, w.memory);
        let sts = StatefulSet {
            metadata: meta,
            spec: Some(StatefulSetSpec {
                replicas: Some(r),
                selector: LabelSelector {
                    match_labels: Some(sel),
                    match_expressions: None,
                },
                service_name: s(w.name),
                template,
                pod_management_policy: s("OrderedReady"),
                revision_history_limit: Some(10),
                ..Default::default()
            }),
            status: Some(StatefulSetStatus {
                replicas: r,
                ready_replicas: Some(r),
                available_replicas: Some(r),
                current_replicas: Some(r),
                updated_replicas: Some(r),
                current_revision: s(revision.clone()),
                update_revision: s(revision),
                observed_generation: Some(1),
                collision_count: Some(0),
                ..Default::default()
            }),
        };
        self.push(Res::StatefulSets, sts, vec![], cells)
    }

    fn daemonset(&mut self, w: &Workload) -> Result<(), SandboxError> {
        let created = self.installed + self.rng.range(0, 300);
        let sel = Self::workload_labels(w);
        let mut meta = self.meta(Some(w.namespace), w.name, Some(sel.clone()), created);
        Self::helm_meta(&mut meta, w);
        meta.generation = Some(1);
        let owner = Self::owner::<DaemonSet>(w.name, &meta);
        let revision = self.rng.suffix(10);
        for node in 0..self.nodes.len() {
            let mut l = sel.clone();
            l.insert("controller-revision-hash".into(), revision.clone());
            l.insert("pod-template-generation".into(), "1".into());
            let name = format!("{}-{}", w.name, self.rng.suffix(5));
            let node_created = self.nodes[node].created;
            let created = node_created.max(created) + self.rng.range(20, 120);
            self.pod(PodPlan {
                w,
                name,
                labels: l,
                owner: owner.clone(),
                node: Some(node),
                created,
                state: PodState::Ready {
                    restarts: 0,
                    last: None,
                },
                fault: None,
                image: w.image.clone(),
                memory: w.memory,
                restart_policy: "Always",
                claim: None,
            })?;
        }
        let n = self.nodes.len() as i32;
        let cells = vec![
            Cell::text(w.name),
            Cell::Int(i64::from(n)),
            Cell::Int(i64::from(n)),
            Cell::Int(i64::from(n)),
            Cell::Int(i64::from(n)),
            Cell::Int(i64::from(n)),
            Cell::text("kubernetes.io/os=linux"),
            Cell::Age(created),
            Cell::text(w.name),
            Cell::text(w.image.as_str()),
            Cell::text(selector_text(&sel)),
        ];
        let mut template = self.pod_template(w, &sel, &w.image, w.memory);
        if let Some(spec) = template.spec.as_mut() {
            spec.node_selector = Some(labels(&[("kubernetes.io/os", "linux")]));
        }
        let ds = DaemonSet {
            metadata: meta,
            spec: Some(DaemonSetSpec {
                selector: LabelSelector {
                    match_labels: Some(sel),
                    match_expressions: None,
                },
                template,
                revision_history_limit: Some(10),
                ..Default::default()
            }),
            status: Some(DaemonSetStatus {
                desired_number_scheduled: n,
                current_number_scheduled: n,
                number_ready: n,
                number_available: Some(n),
                updated_number_scheduled: Some(n),
                number_misscheduled: 0,
                observed_generation: Some(1),
                ..Default::default()
            }),
        };
        self.push(Res::DaemonSets, ds, vec![], cells)
    }

    #[allow(clippy::too_many_arguments)]
    fn pvc(
        &mut self,
        namespace: &str,
        name: &str,
        l: &BTreeMap<String, String>,
        size: &str,
        class: &str,
        created: i64,
        bound: bool,
        fault: Option<Fault>,
    ) -> Result<(), SandboxError> {
        let mut meta = self.meta(Some(namespace), name, Some(l.clone()), created);
        let volume = bound.then(|| format!("pvc-{}", self.rng.uid()));
        let mut a = BTreeMap::new();
        if bound {
            a.insert(
                "pv.kubernetes.io/bind-completed".to_string(),
                "yes".to_string(),
            );
            a.insert(
                "pv.kubernetes.io/bound-by-controller".to_string(),
                "yes".to_string(),
            );
            a.insert(
                "volume.kubernetes.io/storage-provisioner".to_string(),
                "ebs.csi.aws.com".to_string(),
            );
        }
        if let Some(f) = fault {
            a.insert(FAULT_ANNOTATION.into(), f.name().into());
        }
        meta.annotations = Some(a);
        meta.finalizers = Some(vec!["kubernetes.io/pvc-protection".into()]);
        let phase = if bound { "Bound" } else { "Pending" };
        let cells = vec![
            Cell::text(name),
            Cell::text(phase),
            Cell::text(volume.clone().unwrap_or_default()),
            Cell::text(if bound { size } else { "" }),
            Cell::text(if bound { "RWO" } else { "" }),
            Cell::text(class),
            Cell::text("<unset>"),
            Cell::Age(created),
            Cell::text("Filesystem"),
        ];
        let pvc = PersistentVolumeClaim {
            metadata: meta,
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(quantities(&[("storage", size)])),
                    limits: None,
                }),
                storage_class_name: s(class),
                volume_mode: s("Filesystem"),
                volume_name: volume,
                ..Default::default()
            }),
            status: Some(PersistentVolumeClaimStatus {
                phase: s(phase),
                access_modes: bound.then(|| vec!["ReadWriteOnce".into()]),
                capacity: bound.then(|| quantities(&[("storage", size)])),
                ..Default::default()
            }),
        };
        self.push(Res::PersistentVolumeClaims, pvc, vec![], cells)
    }

    fn fault_pvc(&mut self) -> Result<(), SandboxError> {
        if !has(self.opts, Fault::PvcPending) {
            return Ok(());
        }
        let l = labels(&[(INSTANCE, "paragon-monitoring"), (APP_NAME, "pgadmin")]);
        let created = self.now - 30 * MINUTE;
        self.pvc(
            PARAGON,
            "pgadmin-data",
            &l,
            "10Gi",
            "gp3-encrypted",
            created,
            false,
            Some(Fault::PvcPending),
        )
    }

    fn next_service_ip(&mut self) -> String {
        let n = self.next_service_ip;
        self.next_service_ip += 1;
        let v = 256 + n * 7;
        format!("172.20.{}.{}", v / 254 % 254, v % 254 + 1)
    }

    fn service(&mut self, w: &Workload) -> Result<(), SandboxError> {
        let sel = Self::workload_labels(w);
        let (name, port) = match w.name {
            "coredns" => ("kube-dns", 53),
            other => (other, w.port),
        };
        let lb = w.name == "ingress-nginx-controller";
        let ip = if name == "kube-dns" {
            "172.20.0.10".to_string()
        } else {
            self.next_service_ip()
        };
        let mut meta = self.meta(
            Some(w.namespace),
            name,
            Some(sel.clone()),
            self.installed + 30,
        );
        Self::helm_meta(&mut meta, w);
        let mut ports = vec![ServicePort {
            name: s(if name == "kube-dns" { "dns" } else { "http" }),
            port: i32::from(port),
            protocol: s(if name == "kube-dns" { "UDP" } else { "TCP" }),
            target_port: Some(IntOrString::Int(i32::from(port))),
            node_port: lb.then_some(31080),
            ..Default::default()
        }];
        if lb {
            ports.push(ServicePort {
                name: s("https"),
                port: 443,
                protocol: s("TCP"),
                target_port: Some(IntOrString::Int(443)),
                node_port: Some(31443),
                ..Default::default()
            });
        }
        let ports_text = ports
            .iter()
            .map(|p| match p.node_port {
                Some(np) => format!("{}:{np}/{}", p.port, p.protocol.clone().unwrap_or_default()),
                None => format!("{}/{}", p.port, p.protocol.clone().unwrap_or_default()),
            })
            .collect::<Vec<_>>()
            .join(",");
        let kind = if lb { "LoadBalancer" } else { "ClusterIP" };
        // 203.0.113.0/24 is a documentation range: nothing real answers there.
        let external = if lb { "203.0.113.10" } else { "<none>" };
        let cells = vec![
            Cell::text(name),
            Cell::text(kind),
            Cell::text(ip.as_str()),
            Cell::text(external),
            Cell::text(ports_text),
            Cell::Age(self.installed + 30),
            Cell::text(selector_text(&sel)),
        ];
        let svc = Service {
            metadata: meta,
            spec: Some(ServiceSpec {
                type_: s(kind),
                cluster_ip: s(ip.clone()),
                cluster_ips: Some(vec![ip]),
                ports: Some(ports),
                selector: Some(sel),
                session_affinity: s("None"),
                ip_families: Some(vec!["IPv4".into()]),
                ip_family_policy: s("SingleStack"),
                internal_traffic_policy: s("Cluster"),
                external_traffic_policy: lb.then(|| "Cluster".to_string()),
                ..Default::default()
            }),
            status: lb.then(|| k8s_openapi::api::core::v1::ServiceStatus {
                load_balancer: Some(k8s_openapi::api::core::v1::LoadBalancerStatus {
                    ingress: Some(vec![k8s_openapi::api::core::v1::LoadBalancerIngress {
                        ip: s(external),
                        ..Default::default()
                    }]),
                }),
                conditions: None,
            }),
        };
        self.push(Res::Services, svc, vec![], cells)
    }

    fn cluster_services(&mut self) -> Result<(), SandboxError> {
        let created = self.installed - DAY;
        let meta = self.meta(
            Some("default"),
            "kubernetes",
            Some(labels(&[
                ("component", "apiserver"),
                ("provider", "kubernetes"),
            ])),
            created,
        );
        let cells = vec![
            Cell::text("kubernetes"),
            Cell::text("ClusterIP"),
            Cell::text("172.20.0.1"),
            Cell::text("<none>"),
            Cell::text("443/TCP"),
            Cell::Age(created),
            Cell::text("<none>"),
        ];
        let svc = Service {
            metadata: meta,
            spec: Some(ServiceSpec {
                type_: s("ClusterIP"),
                cluster_ip: s("172.20.0.1"),
                cluster_ips: Some(vec!["172.20.0.1".into()]),
                ports: Some(vec![ServicePort {
                    name: s("https"),
                    port: 443,
                    protocol: s("TCP"),
                    target_port: Some(IntOrString::Int(443)),
                    ..Default::default()
                }]),
                session_affinity: s("None"),
                ..Default::default()
            }),
            status: None,
        };
        self.push(Res::Services, svc, vec![], cells)
    }

    fn restart_cronjob(&mut self) -> Result<(), SandboxError> {
        let name = "restart-paragon-pods-cronjob";
        let l = labels(&[(INSTANCE, "paragon-on-prem"), (APP_NAME, name)]);
        let mut meta = self.meta(Some(PARAGON), name, Some(l.clone()), self.installed + 60);
        meta.annotations = Some(labels(&[
            ("meta.helm.sh/release-name", "paragon-on-prem"),
            ("meta.helm.sh/release-namespace", PARAGON),
        ]));
        let cron_owner = Self::owner::<CronJob>(name, &meta);
        let cron_uid = cron_owner.uid.clone();
        let started = self.restart;
        let finished = self.restart + 38;
        let job_name = format!("{name}-{}", self.restart / 60);
        let job_template = |l: &BTreeMap<String, String>| {
            JobTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(l.clone()),
                ..Default::default()
            }),
            spec: Some(JobSpec {
                backoff_limit: Some(2),
                template: PodTemplateSpec {
                    metadata: None,
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "kubectl".into(),
                            image: s("docker.io/bitnami/kubectl:1.33"),
                            command: Some(vec![
                                "/bin/sh".into(),
                                "-c".into(),
                                "kubectl rollout restart deployment -n paragon -l app.kubernetes.io/instance=paragon-on-prem".into(),
                            ]),
                            ..Default::default()
                        }],
                        restart_policy: s("OnFailure"),
                        service_account_name: s("paragon-on-prem"),
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
        }
        };
        let cells = vec![
            Cell::text(name),
            Cell::text("0 14 * * *"),
            Cell::text("<none>"),
            Cell::Bool(false),
            Cell::Int(0),
            Cell::AgeOr(Some(started), "<none>"),
            Cell::Age(self.installed + 60),
        ];
        let cron = CronJob {
            metadata: meta,
            spec: Some(CronJobSpec {
                schedule: "0 14 * * *".into(),
                concurrency_policy: s("Forbid"),
                successful_jobs_history_limit: Some(1),
                failed_jobs_history_limit: Some(1),
                suspend: Some(false),
                job_template: job_template(&l),
                ..Default::default()
            }),
            status: Some(CronJobStatus {
                active: None,
                last_schedule_time: time(started),
                last_successful_time: time(finished),
            }),
        };
        self.push(Res::CronJobs, cron, vec![], cells)?;

        let mut jl = l.clone();
        jl.insert("batch.kubernetes.io/job-name".into(), job_name.clone());
        let mut jmeta = self.meta(Some(PARAGON), &job_name, Some(jl.clone()), started);
        jmeta.owner_references = Some(vec![cron_owner]);
        let job_owner = Self::owner::<Job>(&job_name, &jmeta);
        let cells = vec![
            Cell::text(job_name.as_str()),
            Cell::text("Complete"),
            Cell::text("1/1"),
            Cell::text(super::store::human_duration(finished - started)),
            Cell::Age(started),
        ];
        let cond = |t: &str| JobCondition {
            type_: t.into(),
            status: "True".into(),
            last_probe_time: time(finished),
            last_transition_time: time(finished),
            ..Default::default()
        };
        let mut tmpl = job_template(&jl).spec.unwrap_or_default();
        tmpl.completions = Some(1);
        tmpl.parallelism = Some(1);
        let job = Job {
            metadata: jmeta,
            spec: Some(tmpl),
            status: Some(JobStatus {
                succeeded: Some(1),
                ready: Some(0),
                start_time: time(started),
                completion_time: time(finished),
                conditions: Some(vec![cond("SuccessCriteriaMet"), cond("Complete")]),
                ..Default::default()
            }),
        };
        self.push(Res::Jobs, job, vec!["1".into()], cells)?;

        let kubectl = Workload {
            namespace: PARAGON,
            release: "paragon-on-prem",
            name: "kubectl",
            shape: Shape::Deployment,
            replicas: 1,
            image: "docker.io/bitnami/kubectl:1.33".into(),
            port: 8080,
            probe: None,
            cpu: "50m",
            memory: "64Mi",
            storage: None,
        };
        jl.insert(
            "batch.kubernetes.io/controller-uid".into(),
            job_owner.uid.clone(),
        );
        let pod_name = format!("{job_name}-{}", self.rng.suffix(5));
        let node = self.take_node();
        self.pod(PodPlan {
            w: &kubectl,
            name: pod_name,
            labels: jl,
            owner: job_owner.clone(),
            node: Some(node),
            created: started,
            state: PodState::Finished {
                finished,
                failed: false,
            },
            fault: None,
            image: kubectl.image.clone(),
            memory: kubectl.memory,
            restart_policy: "OnFailure",
            claim: None,
        })?;
        let cron_ref = Involved {
            kind: CronJob::KIND,
            api_version: CronJob::API_VERSION,
            namespace: PARAGON,
            name: name.to_string(),
            uid: cron_uid,
        };
        let job_ref = Involved {
            kind: Job::KIND,
            api_version: Job::API_VERSION,
            namespace: PARAGON,
            name: job_name.clone(),
            uid: job_owner.uid,
        };
        self.event(
            &cron_ref,
            "SuccessfulCreate",
            &format!("Created job {job_name}"),
            "Normal",
            "cronjob-controller",
            started,
            started,
            1,
            None,
        )?;
        self.event(
            &cron_ref,
            "SawCompletedJob",
            &format!("Saw completed job: {job_name}, condition: Complete"),
            "Normal",
            "cronjob-controller",
            finished + 1,
            finished + 1,
            1,
            None,
        )?;
        self.event(
            &job_ref,
            "Completed",
            "Job completed",
            "Normal",
            "job-controller",
            finished,
            finished,
            1,
            None,
        )
    }

    /// A Helm pre-upgrade hook Job `migrations-postgres-hermes` that failed and, as Helm
    /// deletes these hooks only on success, stayed behind with its failed pod.
    fn failed_migration(&mut self) -> Result<(), SandboxError> {
        let name = "migrations-postgres-hermes";
        let started = self.now - 30 * MINUTE;
        let finished = started + 45;
        let fault = Some(Fault::MigrationFailed);
        let l = labels(&[
            (INSTANCE, "paragon-on-prem"),
            (APP_NAME, name),
            ("batch.kubernetes.io/job-name", name),
        ]);
        let mut meta = self.meta(Some(PARAGON), name, Some(l.clone()), started);
        let mut a = labels(&[
            ("helm.sh/hook", "pre-install,pre-upgrade"),
            (
                "helm.sh/hook-delete-policy",
                "before-hook-creation,hook-succeeded",
            ),
            ("helm.sh/hook-weight", "-5"),
        ]);
        a.insert(
            FAULT_ANNOTATION.into(),
            Fault::MigrationFailed.name().into(),
        );
        meta.annotations = Some(a);
        let owner = Self::owner::<Job>(name, &meta);
        let image = format!("docker.io/useparagon/hermes:{}", self.app_version);
        let migrations = Workload {
            namespace: PARAGON,
            release: "paragon-on-prem",
            name: "migrations",
            shape: Shape::Deployment,
            replicas: 1,
            image: image.clone(),
            port: 1702,
            probe: None,
            cpu: "250m",
            memory: "512Mi",
            storage: None,
        };
        let cond = |t: &str, reason: &str| JobCondition {
            type_: t.into(),
            status: "True".into(),
            reason: s(reason),
            message: s("Job has reached the specified backoff limit"),
            last_probe_time: time(finished + 1),
            last_transition_time: time(finished + 1),
        };
        let template = self.pod_template(&migrations, &l, &image, "512Mi");
        let job = Job {
            metadata: meta,
            spec: Some(JobSpec {
                backoff_limit: Some(0),
                completions: Some(1),
                parallelism: Some(1),
                template,
                ..Default::default()
            }),
            status: Some(JobStatus {
                failed: Some(1),
                ready: Some(0),
                start_time: time(started),
                conditions: Some(vec![
                    cond("FailureTarget", "BackoffLimitExceeded"),
                    cond("Failed", "BackoffLimitExceeded"),
                ]),
                ..Default::default()
            }),
        };
        let cells = vec![
            Cell::text(name),
            Cell::text("Failed"),
            Cell::text("0/1"),
            Cell::text(super::store::human_duration(finished - started)),
            Cell::Age(started),
        ];
        self.push(Res::Jobs, job, vec!["0".into()], cells)?;
        let mut pl = l;
        pl.insert(
            "batch.kubernetes.io/controller-uid".into(),
            owner.uid.clone(),
        );
        let pod_name = format!("{name}-{}", self.rng.suffix(5));
        let node = self.take_node();
        self.pod(PodPlan {
            w: &migrations,
            name: pod_name,
            labels: pl,
            owner,
            node: Some(node),
            created: started,
            state: PodState::Finished {
                finished,
                failed: true,
            },
            fault,
            image,
            memory: "512Mi",
            restart_policy: "Never",
            claim: None,
        })?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn event(
        &mut self,
        about: &Involved,
        reason: &str,
        message: &str,
        type_: &str,
        component: &str,
        first: i64,
        last: i64,
        count: i32,
        fault: Option<Fault>,
    ) -> Result<(), SandboxError> {
        let name = format!("{}.{}", about.name, self.rng.hex(16));
        let mut meta = self.meta(Some(about.namespace), &name, None, first);
        meta.annotations = fault_annotations(fault);
        let host = (component == "kubelet")
            .then(|| self.nodes.first().map(|n| n.name.clone()))
            .flatten();
        let source_text = match &host {
            Some(h) => format!("{component}, {h}"),
            None => component.to_string(),
        };
        let fields = vec![
            about.kind.to_string(),
            about.namespace.to_string(),
            about.name.clone(),
            about.uid.clone(),
            about.api_version.to_string(),
            reason.to_string(),
            component.to_string(),
            component.to_string(),
            type_.to_string(),
        ];
        let cells = vec![
            Cell::AgeOr(Some(last), "<unknown>"),
            Cell::text(type_),
            Cell::text(reason),
            Cell::text(format!("{}/{}", about.kind.to_lowercase(), about.name)),
            Cell::text(message),
            Cell::text(source_text),
            Cell::AgeOr(Some(first), "<unknown>"),
            Cell::text(count.to_string()),
            Cell::text(name.as_str()),
        ];
        let ev = Event {
            metadata: meta,
            involved_object: ObjectReference {
                api_version: s(about.api_version),
                kind: s(about.kind),
                name: s(about.name.clone()),
                namespace: s(about.namespace),
                uid: s(about.uid.clone()),
                ..Default::default()
            },
            reason: s(reason),
            message: s(message),
            type_: s(type_),
            source: Some(EventSource {
                component: s(component),
                host,
            }),
            first_timestamp: time(first),
            last_timestamp: time(last),
            count: Some(count),
            reporting_component: s(component),
            reporting_instance: s(""),
            ..Default::default()
        };
        self.push(Res::Events, ev, fields, cells)
    }

    fn warning_events(&mut self) -> Result<(), SandboxError> {
        if !has(self.opts, Fault::WarningEvents) {
            return Ok(());
        }
        let f = Some(Fault::WarningEvents);
        if let Some((name, uid, ip)) = self.first_pods.get("hermes").cloned() {
            let about = Involved {
                kind: Pod::KIND,
                api_version: Pod::API_VERSION,
                namespace: PARAGON,
                name,
                uid,
            };
            self.event(
                &about,
                "Unhealthy",
                &format!("Readiness probe failed: Get \"http://{ip}:1702/healthz\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"),
                "Warning",
                "kubelet",
                self.now - 9 * MINUTE,
                self.now - 7 * MINUTE,
                3,
                f,
            )?;
        }
        if let Some((name, uid, _)) = self.first_pods.get("zeus").cloned() {
            let about = Involved {
                kind: Pod::KIND,
                api_version: Pod::API_VERSION,
                namespace: PARAGON,
                name,
                uid,
            };
            self.event(
                &about,
                "DNSConfigForming",
                "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: paragon.svc.cluster.local svc.cluster.local cluster.local ec2.internal",
                "Warning",
                "kubelet",
                self.now - 40 * MINUTE,
                self.now - 3 * MINUTE,
                12,
                f,
            )?;
        }
        Ok(())
    }

    /// Helm's release history as secrets, with real payloads.
    fn helm_releases(&mut self, app_version: &str) -> Result<(), SandboxError> {
        let releases = [
            (
                "paragon-on-prem",
                "paragon-onprem",
                app_version.to_string(),
                20 * DAY,
            ),
            (
                "paragon-monitoring",
                "paragon-monitoring",
                app_version.to_string(),
                20 * DAY,
            ),
            (
                "paragon-logging",
                "paragon-logging",
                app_version.to_string(),
                60 * DAY,
            ),
            ("ingress", "ingress-nginx", "1.11.3".to_string(), 90 * DAY),
            (
                "metricsserver",
                "metrics-server",
                "0.7.2".to_string(),
                100 * DAY,
            ),
        ];
        for (release, chart, version, age) in releases {
            let revisions = 2 + self.rng.below(6) as i64;
            let last_deployed = self.now - age - self.rng.range(0, DAY);
            let failed = release == "paragon-on-prem" && has(self.opts, Fault::FailedRelease);
            let total = revisions + i64::from(failed);
            for rev in 1..=total {
                let when = if rev == revisions + 1 {
                    self.now - 25 * MINUTE
                } else {
                    last_deployed - (revisions - rev) * 14 * DAY
                };
                let (status, description, fault) = if rev == revisions + 1 {
                    (
                        "failed",
                        format!("Upgrade \"{release}\" failed: context deadline exceeded"),
                        Some(Fault::FailedRelease),
                    )
                } else if rev == revisions {
                    (
                        "deployed",
                        if rev == 1 {
                            "Install complete".to_string()
                        } else {
                            "Upgrade complete".to_string()
                        },
                        None,
                    )
                } else {
                    (
                        "superseded",
                        if rev == 1 {
                            "Install complete".to_string()
                        } else {
                            "Upgrade complete".to_string()
                        },
                        None,
                    )
                };
                let first_deployed = last_deployed - (revisions - 1) * 14 * DAY;
                let payload = helm_payload(
                    release,
                    chart,
                    &version,
                    rev,
                    status,
                    &description,
                    first_deployed,
                    when,
                )?;
                let name = format!("sh.helm.release.v1.{release}.v{rev}");
                let l = labels(&[
                    ("modifiedAt", &when.to_string()),
                    ("name", release),
                    ("owner", "helm"),
                    ("status", status),
                    ("version", &rev.to_string()),
                ]);
                let mut meta = self.meta(Some(PARAGON), &name, Some(l), when);
                meta.annotations = fault_annotations(fault);
                let secret = Secret {
                    metadata: meta,
                    type_: s("helm.sh/release.v1"),
                    data: Some(BTreeMap::from([(
                        "release".to_string(),
                        ByteString(payload.into_bytes()),
                    )])),
                    ..Default::default()
                };
                self.secret(secret, when)?;
            }
        }
        Ok(())
    }

    fn secret(&mut self, secret: Secret, created: i64) -> Result<(), SandboxError> {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let type_ = secret.type_.clone().unwrap_or_else(|| "Opaque".into());
        let count = secret.data.as_ref().map_or(0, BTreeMap::len);
        let cells = vec![
            Cell::text(name),
            Cell::text(type_.as_str()),
            Cell::Int(count as i64),
            Cell::Age(created),
        ];
        self.push(Res::Secrets, secret, vec![type_], cells)
    }

    fn tls_secrets(&mut self) -> Result<(), SandboxError> {
        let expiring = has(self.opts, Fault::ExpiringCert);
        let (valid_days, fault) = if expiring {
            (9, Some(Fault::ExpiringCert))
        } else {
            (60, None)
        };
        let not_after = self.now + valid_days * DAY;
        let not_before = not_after - 90 * DAY;
        let ingress = tls::tls_secret(
            "Paragon Ingress CA",
            &["paragon.example.com", "*.paragon.example.com"],
            not_before,
            not_after,
        )?;
        let l = labels(&[(INSTANCE, "paragon-on-prem"), (APP_NAME, "paragon-tls")]);
        self.tls_secret("paragon-tls", l, ingress, not_before, fault)?;
        let created = self.installed + 100;
        let admission = tls::tls_secret(
            "ingress-nginx-admission CA",
            &[
                "ingress-nginx-controller-admission",
                "ingress-nginx-controller-admission.paragon.svc",
            ],
            created,
            created + 100 * 365 * DAY / 10,
        )?;
        let l = labels(&[(INSTANCE, "ingress"), (APP_NAME, "ingress-nginx")]);
        self.tls_secret("ingress-nginx-admission", l, admission, created, None)
    }

    fn tls_secret(
        &mut self,
        name: &str,
        l: BTreeMap<String, String>,
        data: tls::TlsSecretData,
        created: i64,
        fault: Option<Fault>,
    ) -> Result<(), SandboxError> {
        let mut meta = self.meta(Some(PARAGON), name, Some(l), created);
        meta.annotations = fault_annotations(fault);
        let secret = Secret {
            metadata: meta,
            type_: s("kubernetes.io/tls"),
            data: Some(BTreeMap::from([
                ("ca.crt".to_string(), ByteString(data.ca_pem.into_bytes())),
                (
                    "tls.crt".to_string(),
                    ByteString(data.cert_pem.into_bytes()),
                ),
                ("tls.key".to_string(), ByteString(data.key_pem.into_bytes())),
            ])),
            ..Default::default()
        };
        self.secret(secret, created)
    }

    /// ConfigMaps and the remaining secrets.
    fn config(&mut self, cluster_ca_pem: &str, all: &[Workload]) -> Result<(), SandboxError> {
        for ns in [
            "default",
            "kube-node-lease",
            "kube-public",
            "kube-system",
            PARAGON,
        ] {
            let created = if ns == PARAGON {
                self.installed
            } else {
                self.installed - DAY
            };
            self.configmap(
                ns,
                "kube-root-ca.crt",
                None,
                created,
                &[("ca.crt", cluster_ca_pem)],
            )?;
        }
        let ports: Vec<(String, String)> = all
            .iter()
            .filter(|w| w.release == "paragon-on-prem" && w.shape == Shape::Deployment)
            .map(|w| {
                (
                    format!("{}_PORT", w.name.to_uppercase().replace('-', "_")),
                    w.port.to_string(),
                )
            })
            .collect();
        let pairs: Vec<(&str, &str)> = ports
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let on_prem = labels(&[(INSTANCE, "paragon-on-prem"), (APP_NAME, "paragon-config")]);
        self.configmap(
            PARAGON,
            "paragon-config",
            Some(on_prem),
            self.installed,
            &pairs,
        )?;
        let mon = labels(&[(INSTANCE, "paragon-monitoring"), (APP_NAME, "prometheus")]);
        self.configmap(
            PARAGON,
            "prometheus-server",
            Some(mon),
            self.installed,
            &[("prometheus.yml", "global:\n  scrape_interval: 30s\nscrape_configs:\n  - job_name: kubernetes-pods\n    kubernetes_sd_configs:\n      - role: pod\n")],
        )?;
        let graf = labels(&[(INSTANCE, "paragon-monitoring"), (APP_NAME, "grafana")]);
        self.configmap(
            PARAGON,
            "grafana",
            Some(graf),
            self.installed,
            &[(
                "grafana.ini",
                "[server]\nhttp_port = 4500\n[analytics]\ncheck_for_updates = false\n",
            )],
        )?;
        let fb = labels(&[(INSTANCE, "paragon-logging"), (APP_NAME, "fluent-bit")]);
        self.configmap(PARAGON, "fluent-bit", Some(fb), self.installed, &[("fluent-bit.conf", "[SERVICE]\n    HTTP_Server On\n    HTTP_Port 2020\n[INPUT]\n    Name tail\n    Path /var/log/containers/*.log\n[OUTPUT]\n    Name es\n    Host elasticsearch\n    Port 9200\n")])?;
        let dns = labels(&[("k8s-app", "kube-dns")]);
        self.configmap("kube-system", "coredns", Some(dns), self.installed - DAY, &[("Corefile", ".:53 {\n    errors\n    health\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n      pods insecure\n      fallthrough in-addr.arpa ip6.arpa\n    }\n    prometheus :9153\n    forward . /etc/resolv.conf\n    cache 30\n    loop\n    reload\n    loadbalance\n}\n")])?;

        let mut values = Vec::new();
        for key in [
            "POSTGRES_PASSWORD",
            "REDIS_PASSWORD",
            "MINIO_ROOT_PASSWORD",
            "LICENSE",
            "SECRET_KEY",
        ] {
            values.push((key.to_string(), self.rng.hex(32)));
        }
        let meta = self.meta(
            Some(PARAGON),
            "paragon-secrets",
            Some(labels(&[
                (INSTANCE, "paragon-on-prem"),
                (APP_NAME, "paragon-secrets"),
            ])),
            self.installed,
        );
        let secret = Secret {
            metadata: meta,
            type_: s("Opaque"),
            data: Some(
                values
                    .into_iter()
                    .map(|(k, v)| (k, ByteString(v.into_bytes())))
                    .collect(),
            ),
            ..Default::default()
        };
        self.secret(secret, self.installed)?;
        let admin = self.rng.hex(24);
        let meta = self.meta(
            Some(PARAGON),
            "grafana",
            Some(labels(&[
                (INSTANCE, "paragon-monitoring"),
                (APP_NAME, "grafana"),
            ])),
            self.installed,
        );
        let secret = Secret {
            metadata: meta,
            type_: s("Opaque"),
            data: Some(BTreeMap::from([
                ("admin-user".to_string(), ByteString(b"admin".to_vec())),
                ("admin-password".to_string(), ByteString(admin.into_bytes())),
            ])),
            ..Default::default()
        };
        self.secret(secret, self.installed)
    }

    fn configmap(
        &mut self,
        namespace: &str,
        name: &str,
        l: Option<BTreeMap<String, String>>,
        created: i64,
        data: &[(&str, &str)],
    ) -> Result<(), SandboxError> {
        let meta = self.meta(Some(namespace), name, l, created);
        let cells = vec![
            Cell::text(name),
            Cell::Int(data.len() as i64),
            Cell::Age(created),
        ];
        let cm = ConfigMap {
            metadata: meta,
            data: Some(labels(data)),
            ..Default::default()
        };
        self.push(Res::ConfigMaps, cm, vec![], cells)
    }
}

/// The object an event is about.
struct Involved {
    kind: &'static str,
    api_version: &'static str,
    namespace: &'static str,
    name: String,
    uid: String,
}

/// Helm 3's storage format: base64(gzip(JSON of the release)).
#[allow(clippy::too_many_arguments)]
fn helm_payload(
    release: &str,
    chart: &str,
    version: &str,
    revision: i64,
    status: &str,
    description: &str,
    first_deployed: i64,
    last_deployed: i64,
) -> Result<String, SandboxError> {
    let stamp = |t: i64| {
        jiff::Timestamp::from_second(t)
            .map(|t| t.to_string())
            .unwrap_or_default()
    };
    let json = serde_json::json!({
        "name": release,
        "info": {
            "first_deployed": stamp(first_deployed),
            "last_deployed": stamp(last_deployed),
            "deleted": "",
            "description": description,
            "status": status,
        },
        "chart": {
            "metadata": {
                "name": chart,
                "version": version,
                "appVersion": version,
                "apiVersion": "v2",
            },
            "templates": [],
            "values": {},
        },
        "config": {},
        "manifest": "",
        "version": revision,
        "namespace": PARAGON,
    });
    let err =
        |e: std::io::Error| SandboxError::Generate(format!("cannot compress a helm release: {e}"));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    serde_json::to_writer(&mut gz, &json).map_err(|e| SandboxError::Generate(e.to_string()))?;
    gz.flush().map_err(err)?;
    let bytes = gz.finish().map_err(err)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::store::ALL;
    use serde::de::DeserializeOwned;

    const CA: &str = "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n";
    const NOW: i64 = 1_780_000_000;

    fn world(faults: &[Fault]) -> World {
        let opts = SandboxOptions {
            faults: faults.to_vec(),
            ..Default::default()
        };
        generate(&opts, NOW, CA).unwrap()
    }

    fn objects<K: DeserializeOwned>(w: &World, res: Res) -> Vec<K> {
        w.all(res)
            .iter()
            .map(|e| {
                let mut out = Vec::new();
                e.write_object(&mut out);
                serde_json::from_slice(&out).unwrap()
            })
            .collect()
    }

    fn faulted(meta: &ObjectMeta, f: Fault) -> bool {
        meta.annotations
            .as_ref()
            .and_then(|a| a.get(FAULT_ANNOTATION))
            .is_some_and(|v| v == f.name())
    }

    fn ts(t: &Option<Time>) -> i64 {
        t.as_ref().unwrap().0.as_second()
    }

    fn cond<'a>(conds: &'a Option<Vec<PodCondition>>, t: &str) -> &'a PodCondition {
        conds
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == t)
            .unwrap()
    }

    fn deployment(w: &World, name: &str) -> Deployment {
        objects::<Deployment>(w, Res::Deployments)
            .into_iter()
            .find(|d| d.metadata.name.as_deref() == Some(name))
            .unwrap()
    }

    fn available(d: &Deployment) -> &DeploymentCondition {
        let st = d.status.as_ref().unwrap();
        st.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Available")
            .unwrap()
    }

    #[test]
    fn every_served_object_parses_as_its_kubernetes_type() {
        let w = world(&Fault::ALL);
        for res in ALL {
            let n = match res {
                Res::Namespaces => objects::<Namespace>(&w, res).len(),
                Res::Nodes => objects::<Node>(&w, res).len(),
                Res::Pods => objects::<Pod>(&w, res).len(),
                Res::Events => objects::<Event>(&w, res).len(),
                Res::PersistentVolumeClaims => objects::<PersistentVolumeClaim>(&w, res).len(),
                Res::Secrets => objects::<Secret>(&w, res).len(),
                Res::ConfigMaps => objects::<ConfigMap>(&w, res).len(),
                Res::Services => objects::<Service>(&w, res).len(),
                Res::Deployments => objects::<Deployment>(&w, res).len(),
                Res::StatefulSets => objects::<StatefulSet>(&w, res).len(),
                Res::DaemonSets => objects::<DaemonSet>(&w, res).len(),
                Res::ReplicaSets => objects::<ReplicaSet>(&w, res).len(),
                Res::Jobs => objects::<Job>(&w, res).len(),
                Res::CronJobs => objects::<CronJob>(&w, res).len(),
            };
            assert!(n > 0, "{res:?} is empty");
            for e in w.all(res) {
                assert_eq!(
                    e.cells.len(),
                    res.kind().columns.len(),
                    "{res:?} {}",
                    e.name
                );
            }
        }
    }

    #[test]
    fn fault_names_match_the_command_line() {
        use clap::ValueEnum as _;
        for f in Fault::ALL {
            let v = f.to_possible_value().unwrap();
            assert_eq!(v.get_name(), f.name());
            assert_eq!(serde_json::to_value(f).unwrap(), f.name());
        }
        assert_eq!(Fault::value_variants().len(), Fault::ALL.len());
    }

    #[test]
    fn same_seed_same_names_other_seed_other_names() {
        let names = |seed| {
            let opts = SandboxOptions {
                seed,
                ..Default::default()
            };
            let w = generate(&opts, NOW, CA).unwrap();
            w.all(Res::Pods)
                .iter()
                .map(|e| e.name.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(5), names(5));
        assert_ne!(names(5), names(6));
    }

    #[test]
    fn clean_installation_is_healthy() {
        let w = world(&[]);
        let hour_ago = NOW - HOUR;
        for node in objects::<Node>(&w, Res::Nodes) {
            for c in node.status.unwrap().conditions.unwrap() {
                let want = if c.type_ == "Ready" { "True" } else { "False" };
                assert_eq!(c.status, want, "{:?} {}", node.metadata.name, c.type_);
            }
            assert!(node.spec.unwrap().taints.is_none());
        }
        for pod in objects::<Pod>(&w, Res::Pods) {
            let st = pod.status.unwrap();
            if st.phase.as_deref() == Some("Succeeded") {
                continue;
            }
            assert_eq!(
                st.phase.as_deref(),
                Some("Running"),
                "{:?}",
                pod.metadata.name
            );
            assert_eq!(cond(&st.conditions, "Ready").status, "True");
            for c in st.container_statuses.unwrap() {
                assert!(c.ready);
                if c.restart_count > 0 {
                    let last = c.last_state.unwrap().terminated.unwrap();
                    assert!(ts(&last.finished_at) < hour_ago, "{:?}", pod.metadata.name);
                }
            }
        }
        for d in objects::<Deployment>(&w, Res::Deployments) {
            let st = d.status.as_ref().unwrap();
            assert_eq!(st.available_replicas, d.spec.as_ref().unwrap().replicas);
            assert_eq!(available(&d).status, "True");
        }
        for s in objects::<StatefulSet>(&w, Res::StatefulSets) {
            assert_eq!(s.status.unwrap().ready_replicas, s.spec.unwrap().replicas);
        }
        for d in objects::<DaemonSet>(&w, Res::DaemonSets) {
            let st = d.status.unwrap();
            assert_eq!(st.number_ready, st.desired_number_scheduled);
        }
        for p in objects::<PersistentVolumeClaim>(&w, Res::PersistentVolumeClaims) {
            assert_eq!(p.status.unwrap().phase.as_deref(), Some("Bound"));
        }
        for e in objects::<Event>(&w, Res::Events) {
            assert_eq!(e.type_.as_deref(), Some("Normal"));
        }
        let secrets = objects::<Secret>(&w, Res::Secrets);
        let releases: Vec<_> = secrets
            .iter()
            .filter(|s| s.type_.as_deref() == Some("helm.sh/release.v1"))
            .collect();
        assert_eq!(
            releases.len(),
            w.all(Res::Secrets)
                .iter()
                .filter(|e| e
                    .labels
                    .iter()
                    .any(|(k, v)| &**k == "owner" && &**v == "helm"))
                .count()
        );
        for name in [
            "paragon-on-prem",
            "paragon-monitoring",
            "paragon-logging",
            "ingress",
            "metricsserver",
        ] {
            let latest = releases
                .iter()
                .filter(|s| s.metadata.labels.as_ref().unwrap()["name"] == name)
                .max_by_key(|s| {
                    s.metadata.labels.as_ref().unwrap()["version"]
                        .parse::<u32>()
                        .unwrap()
                })
                .unwrap();
            assert_eq!(
                latest.metadata.labels.as_ref().unwrap()["status"],
                "deployed",
                "{name}"
            );
        }
        // Nothing carries a fault annotation.
        for res in ALL {
            for e in w.all(res) {
                let mut out = Vec::new();
                e.write_object(&mut out);
                assert!(!String::from_utf8(out).unwrap().contains(FAULT_ANNOTATION));
            }
        }
    }

    #[test]
    fn paragon_services_follow_the_installation_facts() {
        let w = world(&[]);
        for (name, port) in SERVICES {
            let d = deployment(&w, name);
            let l = d.metadata.labels.as_ref().unwrap();
            assert_eq!(l[INSTANCE], "paragon-on-prem");
            assert_eq!(l[APP_NAME], name);
            let want = if name == "worker-workflows" { 4 } else { 2 };
            assert_eq!(d.spec.as_ref().unwrap().replicas, Some(want));
            let svc = w.get(Res::Services, PARAGON, name).unwrap();
            let mut out = Vec::new();
            svc.write_object(&mut out);
            let svc: Service = serde_json::from_slice(&out).unwrap();
            assert_eq!(svc.spec.unwrap().ports.unwrap()[0].port, i32::from(port));
        }
        let pods = objects::<Pod>(&w, Res::Pods);
        let hermes: Vec<_> = pods
            .iter()
            .filter(|p| {
                p.metadata
                    .labels
                    .as_ref()
                    .unwrap()
                    .get(APP_NAME)
                    .map(String::as_str)
                    == Some("hermes")
            })
            .collect();
        assert_eq!(hermes.len(), 2);
        let owner = &hermes[0].metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.kind, "ReplicaSet");
        let rs = w.get(Res::ReplicaSets, PARAGON, &owner.name).unwrap();
        let mut out = Vec::new();
        rs.write_object(&mut out);
        let rs: ReplicaSet = serde_json::from_slice(&out).unwrap();
        assert_eq!(rs.metadata.uid.as_deref(), Some(owner.uid.as_str()));
        assert_eq!(rs.metadata.owner_references.unwrap()[0].kind, "Deployment");
        for name in ["grafana", "prometheus", "kibana"] {
            assert!(w.get(Res::Services, PARAGON, name).is_some(), "{name}");
        }
    }

    #[test]
    fn pods_option_scales_worker_replicas_exactly() {
        let opts = SandboxOptions {
            nodes: 50,
            pods: 3000,
            ..Default::default()
        };
        let w = generate(&opts, NOW, CA).unwrap();
        assert_eq!(w.all(Res::Pods).len(), 3000);
        assert_eq!(w.all(Res::Nodes).len(), 50);
        let small = SandboxOptions {
            nodes: 50,
            pods: 10,
            ..Default::default()
        };
        assert!(matches!(
            generate(&small, NOW, CA),
            Err(SandboxError::TooFewPods { .. })
        ));
    }

    fn fault_pods(w: &World, f: Fault) -> Vec<Pod> {
        objects::<Pod>(w, Res::Pods)
            .into_iter()
            .filter(|p| faulted(&p.metadata, f))
            .collect()
    }

    #[test]
    fn crashloop_fault() {
        let w = world(&[Fault::CrashLoop]);
        let pods = fault_pods(&w, Fault::CrashLoop);
        assert_eq!(pods.len(), 1);
        let st = pods[0].status.as_ref().unwrap();
        assert_eq!(st.phase.as_deref(), Some("Running"));
        let c = &st.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            c.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("CrashLoopBackOff")
        );
        assert!(c.restart_count > 5);
        assert_eq!(
            pods[0].metadata.labels.as_ref().unwrap()[APP_NAME],
            "worker-actions"
        );
        let d = deployment(&w, "worker-actions");
        assert_eq!(d.status.as_ref().unwrap().available_replicas, Some(2));
        assert_eq!(available(&d).status, "True");
    }

    #[test]
    fn image_pull_fault() {
        let w = world(&[Fault::ImagePull]);
        let pods = fault_pods(&w, Fault::ImagePull);
        assert_eq!(pods.len(), 1);
        let st = pods[0].status.as_ref().unwrap();
        assert_eq!(st.phase.as_deref(), Some("Pending"));
        assert_eq!(cond(&st.conditions, "PodScheduled").status, "True");
        let c = &st.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            c.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("ImagePullBackOff")
        );
    }

    #[test]
    fn pending_fault() {
        let w = world(&[Fault::Pending]);
        let pods = fault_pods(&w, Fault::Pending);
        assert_eq!(pods.len(), 1);
        let st = pods[0].status.as_ref().unwrap();
        assert_eq!(st.phase.as_deref(), Some("Pending"));
        let c = cond(&st.conditions, "PodScheduled");
        assert_eq!(
            (c.status.as_str(), c.reason.as_deref()),
            ("False", Some("Unschedulable"))
        );
        assert!(
            c.message
                .as_deref()
                .unwrap()
                .contains("Insufficient memory")
        );
        assert!(ts(&pods[0].metadata.creation_timestamp) < NOW - 10 * MINUTE);
        assert!(pods[0].spec.as_ref().unwrap().node_name.is_none());
    }

    #[test]
    fn oom_killed_fault() {
        let w = world(&[Fault::OomKilled]);
        let pods = fault_pods(&w, Fault::OomKilled);
        assert_eq!(pods.len(), 1);
        let st = pods[0].status.as_ref().unwrap();
        assert_eq!(cond(&st.conditions, "Ready").status, "True");
        let c = &st.container_statuses.as_ref().unwrap()[0];
        let last = c.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(
            (last.reason.as_deref(), last.exit_code),
            (Some("OOMKilled"), 137)
        );
        assert!(ts(&last.finished_at) > NOW - HOUR);
    }

    #[test]
    fn node_faults() {
        let w = world(&[Fault::NodeNotReady, Fault::NodePressure]);
        let nodes = objects::<Node>(&w, Res::Nodes);
        let bad: Vec<_> = nodes
            .iter()
            .filter(|n| faulted(&n.metadata, Fault::NodeNotReady))
            .collect();
        assert_eq!(bad.len(), 1);
        let conds = bad[0].status.as_ref().unwrap().conditions.as_ref().unwrap();
        assert!(
            conds
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "Unknown")
        );
        let pressed: Vec<_> = nodes
            .iter()
            .filter(|n| faulted(&n.metadata, Fault::NodePressure))
            .collect();
        assert_eq!(pressed.len(), 1);
        let conds = pressed[0]
            .status
            .as_ref()
            .unwrap()
            .conditions
            .as_ref()
            .unwrap();
        assert!(
            conds
                .iter()
                .any(|c| c.type_ == "MemoryPressure" && c.status == "True")
        );
        assert!(
            conds
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        );
    }

    #[test]
    fn deployment_unavailable_fault() {
        let w = world(&[Fault::DeploymentUnavailable]);
        let d = deployment(&w, "passport");
        assert!(faulted(&d.metadata, Fault::DeploymentUnavailable));
        let st = d.status.as_ref().unwrap();
        assert_eq!(st.available_replicas.unwrap_or(0), 0);
        assert_eq!(available(&d).status, "False");
        assert_eq!(fault_pods(&w, Fault::DeploymentUnavailable).len(), 2);
        let unavailable: Vec<_> = objects::<Deployment>(&w, Res::Deployments)
            .into_iter()
            .filter(|d| available(d).status == "False")
            .collect();
        assert_eq!(unavailable.len(), 1);
    }

    #[test]
    fn pvc_pending_fault() {
        let w = world(&[Fault::PvcPending]);
        let pending: Vec<_> = objects::<PersistentVolumeClaim>(&w, Res::PersistentVolumeClaims)
            .into_iter()
            .filter(|p| p.status.as_ref().unwrap().phase.as_deref() == Some("Pending"))
            .collect();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].metadata.name.as_deref(), Some("pgadmin-data"));
    }

    #[test]
    fn failed_release_fault() {
        let w = world(&[Fault::FailedRelease]);
        let secrets = objects::<Secret>(&w, Res::Secrets);
        let mut on_prem: Vec<_> = secrets
            .iter()
            .filter(|s| {
                s.metadata
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.get("name").map(String::as_str) == Some("paragon-on-prem"))
            })
            .collect();
        on_prem.sort_by_key(|s| {
            s.metadata.labels.as_ref().unwrap()["version"]
                .parse::<u32>()
                .unwrap()
        });
        let status = |s: &Secret| s.metadata.labels.as_ref().unwrap()["status"].clone();
        assert_eq!(status(on_prem[on_prem.len() - 1]), "failed");
        assert_eq!(status(on_prem[on_prem.len() - 2]), "deployed");
        // The payload is what Helm writes: base64 of gzip of the release JSON.
        let data = &on_prem[on_prem.len() - 1].data.as_ref().unwrap()["release"].0;
        let gz = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap();
        let mut json = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut json)
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["info"]["status"], "failed");
    }

    #[test]
    fn expiring_cert_fault_and_clean_cert() {
        let days_left = |faults: &[Fault]| {
            let w = world(faults);
            let e = w.get(Res::Secrets, PARAGON, "paragon-tls").unwrap();
            let mut out = Vec::new();
            e.write_object(&mut out);
            let s: Secret = serde_json::from_slice(&out).unwrap();
            assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
            let pem = String::from_utf8(s.data.unwrap()["tls.crt"].0.clone()).unwrap();
            assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
            (not_after(&pem) - NOW) / DAY
        };
        let clean = days_left(&[]);
        assert!(clean > 30, "{clean}");
        let expiring = days_left(&[Fault::ExpiringCert]);
        assert!((0..30).contains(&expiring), "{expiring}");
    }

    /// notAfter of a PEM certificate, read from its DER by hand (UTCTime, as rcgen writes
    /// dates before 2050).
    fn not_after(pem: &str) -> i64 {
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        // Returns (content start, content end) of the TLV at `at`.
        let tlv = |at: usize| -> (usize, usize) {
            let len = der[at + 1] as usize;
            if len < 0x80 {
                (at + 2, at + 2 + len)
            } else {
                let n = len & 0x7f;
                let l = der[at + 2..at + 2 + n]
                    .iter()
                    .fold(0usize, |a, b| a << 8 | *b as usize);
                (at + 2 + n, at + 2 + n + l)
            }
        };
        let (cert, _) = tlv(0);
        let (tbs, _) = tlv(cert);
        let mut at = tbs;
        if der[at] == 0xa0 {
            at = tlv(at).1; // version
        }
        at = tlv(at).1; // serial
        at = tlv(at).1; // signature algorithm
        at = tlv(at).1; // issuer
        let (validity, _) = tlv(at);
        let not_after_at = tlv(validity).1;
        assert_eq!(der[not_after_at], 0x17, "UTCTime");
        let (s, e) = tlv(not_after_at);
        let t = std::str::from_utf8(&der[s..e]).unwrap();
        let stamp = format!(
            "20{}-{}-{}T{}:{}:{}Z",
            &t[0..2],
            &t[2..4],
            &t[4..6],
            &t[6..8],
            &t[8..10],
            &t[10..12]
        );
        stamp.parse::<jiff::Timestamp>().unwrap().as_second()
    }

    #[test]
    fn migration_failed_fault() {
        let clean = world(&[]);
        assert!(
            clean
                .all(Res::Jobs)
                .iter()
                .all(|e| !e.name.starts_with("migrations-postgres-"))
        );
        let w = world(&[Fault::MigrationFailed]);
        let jobs: Vec<Job> = objects::<Job>(&w, Res::Jobs)
            .into_iter()
            .filter(|j| faulted(&j.metadata, Fault::MigrationFailed))
            .collect();
        assert_eq!(jobs.len(), 1);
        assert_eq!(
            jobs[0].metadata.name.as_deref(),
            Some("migrations-postgres-hermes")
        );
        let st = jobs[0].status.as_ref().unwrap();
        assert_eq!(st.failed, Some(1));
        let failed = st
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Failed")
            .unwrap();
        assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));
        let pods = fault_pods(&w, Fault::MigrationFailed);
        assert_eq!(pods.len(), 1);
        assert_eq!(
            pods[0].status.as_ref().unwrap().phase.as_deref(),
            Some("Failed")
        );
        let owner = &pods[0].metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Job", jobs[0].metadata.uid.as_deref().unwrap())
        );
    }

    #[test]
    fn warning_events_fault() {
        let w = world(&[Fault::WarningEvents]);
        let warnings: Vec<_> = objects::<Event>(&w, Res::Events)
            .into_iter()
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .collect();
        assert_eq!(warnings.len(), 2);
        for e in &warnings {
            assert!(ts(&e.last_timestamp) > NOW - HOUR);
            assert!(faulted(&e.metadata, Fault::WarningEvents));
            let pod = w.get(
                Res::Pods,
                PARAGON,
                e.involved_object.name.as_deref().unwrap(),
            );
            assert!(pod.is_some());
        }
    }
}
