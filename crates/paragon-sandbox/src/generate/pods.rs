//! Pods and their containers in each state the generator knows (ready, not ready,
//! crash-looping, pulling, unschedulable, finished), as the kubelet reports them. The
//! workloads decide which pods exist; this room only draws them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStatus, EphemeralContainer, HTTPGetAction, HostIP, PersistentVolumeClaimVolumeSource,
    Pod, PodIP, PodReadinessGate, PodSchedulingGate, PodSpec, PodStatus, PodTemplateSpec, Probe,
    ResourceRequirements, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::tables::Workload;
use super::{APP_NAME, Gen, INSTANCE, MINUTE, fault_annotations, labels, quantities, s, time};
use crate::store::{Cell, Res};
use crate::{Fault, SandboxError};

/// How a generated pod is doing.
#[derive(Debug, Clone)]
pub(super) enum PodState {
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
    /// Held by `spec.schedulingGates` (the scheduler's `SchedulingGated` condition).
    SchedulingGated,
    /// Evicted for memory at `at`: the old shape (`status.reason` `Evicted`) or the
    /// current one (only the `DisruptionTarget` condition).
    Evicted {
        at: i64,
        current: bool,
    },
    /// Ran to an OOM kill at `at` with restartPolicy Never: `Failed`, the reason only in the
    /// container's terminated state.
    FailedOom {
        at: i64,
    },
    /// The container's postStart hook failed; the kubelet killed it and waits to retry.
    PostStartHook,
    /// The container ran to its end: exit 0, or exit 1 when `failed`.
    Finished {
        finished: i64,
        failed: bool,
    },
}

/// A container's previous run, as `lastState.terminated` reports it.
#[derive(Debug, Clone)]
pub(super) struct Terminated {
    pub reason: &'static str,
    pub exit_code: i32,
    pub started: i64,
    pub finished: i64,
}

/// The kubelet eviction manager's message (pkg/kubelet/eviction/helpers.go); `{c}` is the
/// container.
pub(super) const EVICTION_MESSAGE: &str = "The node was low on resource: memory. Threshold quantity: 100Mi, available: 91Mi. Container {c} was using 1532Mi, request is 1Gi, has larger consumption of memory. ";

/// A shape beyond the pod's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Extra {
    None,
    /// Deleted at this time and still there (`deletionTimestamp`, grace period 30 s).
    Terminating(i64),
    /// A readiness gate no controller has set, since this time.
    ReadinessGate(i64),
    /// An init container that ran and a native sidecar (an init container with
    /// `restartPolicy: Always`) that runs beside the main one.
    Sidecars,
    /// An ephemeral container `kubectl debug` added, finished at this time.
    Ephemeral(i64),
}

/// What a pod needs beyond its workload.
pub(super) struct PodPlan<'a> {
    pub w: &'a Workload,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub owner: OwnerReference,
    pub node: Option<usize>,
    pub created: i64,
    pub state: PodState,
    pub fault: Option<Fault>,
    pub image: String,
    pub memory: &'a str,
    pub restart_policy: &'static str,
    pub claim: Option<String>,
    pub extra: Extra,
}

impl Gen<'_> {
    pub(super) fn container(&self, w: &Workload, image: &str, memory: &str) -> Container {
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

    pub(super) fn pod_template(
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

    pub(super) fn workload_labels(w: &Workload) -> BTreeMap<String, String> {
        if w.release.is_empty() {
            labels(&[("k8s-app", w.name)])
        } else {
            labels(&[(INSTANCE, w.release), (APP_NAME, w.name)])
        }
    }

    /// Labels and annotations Helm puts on the objects of a release.
    pub(super) fn helm_meta(meta: &mut ObjectMeta, w: &Workload) {
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

    pub(super) fn image_id(&mut self, image: &str) -> String {
        let repo = image.split(':').next().unwrap_or(image);
        format!("{repo}@sha256:{}", self.rng.hex(64))
    }

    /// Makes a pod; returns its uid and IP (empty when unscheduled).
    pub(super) fn pod(&mut self, mut p: PodPlan<'_>) -> Result<(String, String), SandboxError> {
        let w = p.w;
        let node = p.node.map(|n| self.nodes[n].clone());
        let ip = node.as_ref().map(|_| self.pod_ip());
        let mut meta = self.meta(
            Some(w.namespace),
            &p.name,
            Some(std::mem::take(&mut p.labels)),
            p.created,
        );
        // a bare pod (no controller) has no owner
        meta.owner_references = (!p.owner.name.is_empty()).then(|| vec![p.owner.clone()]);
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
        let mut spec = PodSpec {
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
        let image_id = self.image_id(&p.image);
        let container_id = format!("containerd://{}", self.rng.hex(64));
        let (phase, conditions, statuses, mut status_text, ready_text, restarts, last_restart) =
            self.draw_state(&p, &image_id, &container_id);
        let mut status = PodStatus {
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
        let mut ready_text = ready_text.to_string();
        let mut gates_text = "<none>".to_string();
        match &p.state {
            PodState::SchedulingGated => {
                spec.scheduling_gates = Some(vec![PodSchedulingGate {
                    name: "kueue.x-k8s.io/admission".into(),
                }]);
            }
            PodState::Evicted { current: false, .. } => {
                status.reason = s("Evicted");
                status.message = s(EVICTION_MESSAGE.replace("{c}", w.name));
            }
            _ => {}
        }
        match p.extra {
            Extra::None => {}
            Extra::Terminating(at) => {
                meta.deletion_timestamp = time(at + 30);
                meta.deletion_grace_period_seconds = Some(30);
                status_text = "Terminating".into();
            }
            Extra::ReadinessGate(since) => {
                let gate = format!(
                    "target-health.elbv2.k8s.aws/k8s-paragon-ingressn-{}",
                    self.rng.hex(10)
                );
                spec.readiness_gates = Some(vec![PodReadinessGate {
                    condition_type: gate.clone(),
                }]);
                // the kubelet's wording (pkg/kubelet/status/generate.go)
                if let Some(ready) = status
                    .conditions
                    .as_mut()
                    .and_then(|c| c.iter_mut().find(|c| c.type_ == "Ready"))
                {
                    ready.status = "False".into();
                    ready.reason = s("ReadinessGatesNotReady");
                    ready.message = s(format!(
                        "corresponding condition of pod readiness gate \"{gate}\" does not exist."
                    ));
                    ready.last_transition_time = time(since);
                }
                gates_text = "0/1".into();
            }
            Extra::Sidecars => {
                self.add_sidecars(&mut spec, &mut status, created);
                ready_text = "2/2".into();
            }
            Extra::Ephemeral(finished) => {
                let name = format!("debugger-{}", self.rng.suffix(5));
                spec.ephemeral_containers = Some(vec![EphemeralContainer {
                    name: name.clone(),
                    image: s("docker.io/library/busybox:1.36"),
                    image_pull_policy: s("IfNotPresent"),
                    stdin: Some(true),
                    tty: Some(true),
                    target_container_name: s(w.name),
                    termination_message_path: s("/dev/termination-log"),
                    termination_message_policy: s("File"),
                    ..Default::default()
                }]);
                status.ephemeral_container_statuses = Some(vec![ContainerStatus {
                    name,
                    image: "docker.io/library/busybox:1.36".into(),
                    image_id: self.image_id("docker.io/library/busybox:1.36"),
                    container_id: s(format!("containerd://{}", self.rng.hex(64))),
                    ready: false,
                    restart_count: 0,
                    state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code: 0,
                            reason: s("Completed"),
                            started_at: time(finished - 15 * MINUTE),
                            finished_at: time(finished),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]);
            }
        }
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
            Cell::text(gates_text),
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

    /// prometheus-operator's init container (ran once) and its config-reloader as a native
    /// sidecar: an init container with `restartPolicy: Always`, running and ready.
    fn add_sidecars(&mut self, spec: &mut PodSpec, status: &mut PodStatus, created: i64) {
        let image = "quay.io/prometheus-operator/prometheus-config-reloader:v0.77.1";
        let init = |name: &str, always: bool| Container {
            name: name.into(),
            image: s(image),
            image_pull_policy: s("IfNotPresent"),
            restart_policy: always.then(|| "Always".to_string()),
            termination_message_path: s("/dev/termination-log"),
            termination_message_policy: s("File"),
            ..Default::default()
        };
        spec.init_containers = Some(vec![
            init("init-config-reloader", false),
            init("config-reloader", true),
        ]);
        let image_id = self.image_id(image);
        let mut one = |name: &str, state: ContainerState, ready: bool| ContainerStatus {
            name: name.into(),
            image: image.into(),
            image_id: image_id.clone(),
            container_id: s(format!("containerd://{}", self.rng.hex(64))),
            ready,
            started: Some(state.running.is_some()),
            restart_count: 0,
            state: Some(state),
            ..Default::default()
        };
        let done = ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: 0,
                reason: s("Completed"),
                started_at: time(created + 3),
                finished_at: time(created + 4),
                ..Default::default()
            }),
            ..Default::default()
        };
        let running = ContainerState {
            running: Some(ContainerStateRunning {
                started_at: time(created + 5),
            }),
            ..Default::default()
        };
        status.init_container_statuses = Some(vec![
            one("init-config-reloader", done, false),
            one("config-reloader", running, true),
        ]);
    }
}
