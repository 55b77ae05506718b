//! The state a pod is drawn in: phase, conditions and container statuses for each
//! `PodState`, as the kubelet reports them, with the STATUS, READY and RESTARTS columns
//! kubectl shows. `pods` builds the rest of the pod around it; this room decides nothing
//! about which pods exist or what they run.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, PodCondition,
};

use super::{Gen, MINUTE, s, time};

use super::pods::{EVICTION_MESSAGE, PodPlan, PodState, Terminated};

/// What `draw_state` returns: phase, conditions, container statuses, and kubectl's STATUS,
/// READY, RESTARTS and the time of the last restart.
pub(super) type Drawn = (
    &'static str,
    Vec<PodCondition>,
    Option<Vec<ContainerStatus>>,
    String,
    &'static str,
    i32,
    Option<i64>,
);

impl Gen<'_> {
    /// The phase, conditions and container statuses of a pod in `p.state`, as the kubelet
    /// reports them, and the STATUS, READY and RESTARTS that kubectl shows for it.
    pub(super) fn draw_state(&self, p: &PodPlan<'_>, image_id: &str, container_id: &str) -> Drawn {
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
        // The kubelet's five conditions of a pod whose sandbox has started: its containers
        // ready, or not (ContainersNotReady), since `at`.
        let started_conditions = |ready: bool, at: i64| {
            let why = (!ready).then_some("ContainersNotReady");
            vec![
                cond("PodReadyToStartContainers", true, created + 4, None),
                cond("Initialized", true, scheduled, None),
                cond("Ready", ready, at, why),
                cond("ContainersReady", ready, at, why),
                cond("PodScheduled", true, scheduled, None),
            ]
        };
        // A container waiting to start again after a failed run: CrashLoopBackOff and a
        // failed postStart hook differ only in the reason, message and count.
        let restarting =
            |reason: &'static str, message: String, restarts: i32, last: Terminated| {
                let waiting = ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: s(reason),
                        message: s(message),
                    }),
                    ..Default::default()
                };
                (
                    "Running",
                    started_conditions(false, created + 4),
                    Some(vec![base_status(
                        false,
                        restarts,
                        waiting,
                        Some(terminated(&last)),
                    )]),
                    reason.to_string(),
                    "0/1",
                    restarts,
                    Some(last.finished),
                )
            };
        match &p.state {
            PodState::Ready { restarts, last } => {
                let since = last.as_ref().map_or(started, |t| t.finished + 1);
                let ready_at = since + 12;
                (
                    "Running",
                    started_conditions(true, ready_at),
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
                started_conditions(false, *since),
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
                restarting(
                    "CrashLoopBackOff",
                    format!(
                        "back-off 5m0s restarting failed container={} pod={}",
                        w.name, p.name
                    ),
                    9,
                    last,
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
                    started_conditions(false, scheduled),
                    Some(vec![st]),
                    "ImagePullBackOff".to_string(),
                    "0/1",
                    0,
                    None,
                )
            }
            PodState::SchedulingGated => {
                // kube-scheduler's message for a gated pod (pkg/scheduler/schedule_one.go)
                let mut c = cond("PodScheduled", false, created, Some("SchedulingGated"));
                c.message = s("Scheduling is blocked due to non-empty scheduling gates");
                (
                    "Pending",
                    vec![c],
                    None,
                    "SchedulingGated".to_string(),
                    "0/1",
                    0,
                    None,
                )
            }
            PodState::Evicted { at, current } => {
                let killed = ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: 137,
                        reason: s("Error"),
                        started_at: time(started),
                        finished_at: time(*at),
                        container_id: s(container_id.clone()),
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                let mut conditions = vec![
                    cond("PodReadyToStartContainers", false, *at, None),
                    cond("Initialized", true, scheduled, None),
                    cond("Ready", false, *at, Some("PodFailed")),
                    cond("ContainersReady", false, *at, Some("PodFailed")),
                    cond("PodScheduled", true, scheduled, None),
                ];
                if *current {
                    let mut d = cond("DisruptionTarget", true, *at, Some("TerminationByKubelet"));
                    d.message = s(EVICTION_MESSAGE.replace("{c}", w.name));
                    conditions.insert(0, d);
                }
                (
                    "Failed",
                    conditions,
                    Some(vec![base_status(false, 0, killed, None)]),
                    if *current { "Error" } else { "Evicted" }.to_string(),
                    "0/1",
                    0,
                    None,
                )
            }
            PodState::FailedOom { at } => {
                let oom = ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: 137,
                        reason: s("OOMKilled"),
                        started_at: time(started),
                        finished_at: time(*at),
                        container_id: s(container_id.clone()),
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                (
                    "Failed",
                    vec![
                        cond("PodReadyToStartContainers", false, *at + 1, None),
                        cond("Initialized", true, scheduled, None),
                        cond("Ready", false, *at + 1, Some("PodFailed")),
                        cond("ContainersReady", false, *at + 1, Some("PodFailed")),
                        cond("PodScheduled", true, scheduled, None),
                    ],
                    Some(vec![base_status(false, 0, oom, None)]),
                    "OOMKilled".to_string(),
                    "0/1",
                    0,
                    None,
                )
            }
            PodState::PostStartHook => {
                let last = Terminated {
                    reason: "Error",
                    exit_code: 137,
                    started: self.now - 3 * MINUTE - 10,
                    finished: self.now - 3 * MINUTE,
                };
                // The kubelet's wording (pkg/kubelet/kuberuntime/kuberuntime_container.go)
                let hook = "/bin/sh -c /opt/paragon/warmup.sh";
                restarting(
                    "PostStartHookError",
                    format!(
                        "Exec lifecycle hook ([{hook}]) for Container \"{}\" in Pod \"{}_{}({})\" failed - error: command '{hook}' exited with 1: , message: \"warm-up failed: cache not reachable\\n\"",
                        w.name, p.name, w.namespace, p.name
                    ),
                    3,
                    last,
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
