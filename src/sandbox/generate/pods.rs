//! Pods and their containers in each state the generator knows (ready, not ready,
//! crash-looping, pulling, unschedulable, finished), as the kubelet reports them. The
//! workloads decide which pods exist; this room only draws them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HTTPGetAction, HostIP,
    PersistentVolumeClaimVolumeSource, Pod, PodCondition, PodIP, PodSpec, PodStatus,
    PodTemplateSpec, Probe, ResourceRequirements, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::tables::Workload;
use super::{APP_NAME, Gen, INSTANCE, MINUTE, fault_annotations, labels, quantities, s, time};
use crate::sandbox::store::{Cell, Res};
use crate::sandbox::{Fault, SandboxError};

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

/// What `draw_state` returns: phase, conditions, container statuses, and kubectl's STATUS,
/// READY, RESTARTS and the time of the last restart.
type Drawn = (
    &'static str,
    Vec<PodCondition>,
    Option<Vec<ContainerStatus>>,
    String,
    &'static str,
    i32,
    Option<i64>,
);

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
        meta.owner_references = Some(vec![p.owner.clone()]);
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
        let image_id = self.image_id(&p.image);
        let container_id = format!("containerd://{}", self.rng.hex(64));
        let (phase, conditions, statuses, status_text, ready_text, restarts, last_restart) =
            self.draw_state(&p, &image_id, &container_id);
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

    /// The phase, conditions and container statuses of a pod in `p.state`, as the kubelet
    /// reports them, and the STATUS, READY and RESTARTS that kubectl shows for it.
    fn draw_state(&self, p: &PodPlan<'_>, image_id: &str, container_id: &str) -> Drawn {
        let w = p.w;
        let created = p.created;
        let image_id = image_id.to_string();
        let container_id = container_id.to_string();
        let cond = |t: &str, ok: bool, at: i64, reason: Option<&str>| PodCondition {
            type_: t.into(),
            status: if ok { "True" } else { "False" }.into(),
            last_transition_time: time(at),
            reason: reason.map(str::to_string),
            ..Default::default()
        };
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
        }
    }
}
