//! Pods: CrashLoopBackOff, image pull and start errors, Pending too long (with the scheduler's
//! reason; pods held by `schedulingGates` wait on purpose: past 30 min a warning naming the
//! gates),
//! OOMKilled, restarts in the last hour, containers not ready past a short grace, pods not
//! Ready because of a readiness gate, pods stuck Terminating past their grace period, and failed or evicted pods with the reason wherever
//! the kubelet put it. Pods are listed a page at a time and only the problems are kept.

use k8s_openapi::api::core::v1::{
    ContainerStatus, Pod, PodCondition, PodReadinessGate, PodSchedulingGate, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ObjectMeta};
use serde::Deserialize;

use super::{CheckResult, Finding, count, human, one_line, subject};
use crate::kube::list::each_page;

/// A pod may be Pending this long (image pulls, volume attach) before it is a failure.
const PENDING_GRACE: SignedDuration = SignedDuration::from_mins(5);
/// A container may be running but not ready this long after it started (a readiness probe's
/// initial delay, a warm-up) before it is a warning.
const NOT_READY_GRACE: SignedDuration = SignedDuration::from_secs(90);
/// A pod held by scheduling gates (a queue such as Kueue admitting it) may wait this long
/// before the wait is worth a warning.
const GATED_GRACE: SignedDuration = SignedDuration::from_mins(30);
/// Restarts and OOM kills within this window are reported.
const RECENT: SignedDuration = SignedDuration::from_hours(1);

const IMAGE_PULL: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "ErrImageNeverPull",
];
/// Waiting reasons of a container the kubelet cannot start (kubelet's `kuberuntime` names).
const CANNOT_START: &[&str] = &[
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "PostStartHookError",
    "PreStartHookError",
];
/// A pod still there this long after its deletion deadline is stuck: a finalizer, or a node
/// that no longer answers, holds it.
const TERMINATING_GRACE: SignedDuration = SignedDuration::from_mins(5);

pub async fn check(client: kube::Client, now: Timestamp) -> CheckResult {
    let api: Api<Examined> = Api::all(client);
    let mut findings = Vec::new();
    let (mut total, mut running) = (0usize, 0usize);
    each_page(&api, super::lists(), |page| {
        for Examined(pod) in &page {
            total += 1;
            if pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
                running += 1;
            }
            findings.extend(examine(pod, now));
        }
    })
    .await?;
    findings.push(Finding::ok(
        "pods",
        format!("{}, {running} running", count(total, "pod", "pods")),
    ));
    Ok(findings)
}

/// A pod with what `examine` reads, and nothing else: all of its status; of its metadata the
/// name, namespace, creation and deletion times and finalizers; of its spec the scheduling and
/// readiness gates. The rest (the containers' spec, volumes, labels, managed fields) is
/// skipped as it is read, not built: decoding whole pods was the largest part of the report's
/// CPU in this process, and a page of 5,000 of them most of its memory. A field `examine`
/// starts reading must be kept here too; a test compares the two on the sandbox's pods.
#[derive(Clone, Debug)]
struct Examined(Pod);

crate::kube::list::listed_as!(Examined, Pod, 0.metadata);

impl<'de> Deserialize<'de> for Examined {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Meta {
            name: Option<String>,
            namespace: Option<String>,
            creation_timestamp: Option<Time>,
            deletion_timestamp: Option<Time>,
            finalizers: Option<Vec<String>>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Gates {
            scheduling_gates: Option<Vec<PodSchedulingGate>>,
            readiness_gates: Option<Vec<PodReadinessGate>>,
        }
        #[derive(Deserialize)]
        struct Lean {
            metadata: Option<Meta>,
            spec: Option<Gates>,
            status: Option<PodStatus>,
        }
        let Lean {
            metadata,
            spec,
            status,
        } = Lean::deserialize(d)?;
        let metadata = metadata.map_or_else(ObjectMeta::default, |m| ObjectMeta {
            name: m.name,
            namespace: m.namespace,
            creation_timestamp: m.creation_timestamp,
            deletion_timestamp: m.deletion_timestamp,
            finalizers: m.finalizers,
            ..ObjectMeta::default()
        });
        let spec = spec.map(|g| PodSpec {
            scheduling_gates: g.scheduling_gates,
            readiness_gates: g.readiness_gates,
            ..PodSpec::default()
        });
        Ok(Examined(Pod {
            metadata,
            spec,
            status,
        }))
    }
}

/// The problems of one pod, most specific first: a container's problem is reported rather
/// than the Pending phase it causes.
pub fn examine(pod: &Pod, now: Timestamp) -> Vec<Finding> {
    let meta = &pod.metadata;
    let s = subject(
        meta.namespace.as_deref(),
        "pod",
        meta.name.as_deref().unwrap_or_default(),
    );
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    let phase = status.phase.as_deref().unwrap_or("Unknown");
    if let Some(f) = stuck_terminating(&s, pod, now) {
        return vec![f];
    }
    if phase == "Succeeded" {
        return Vec::new();
    }
    if phase == "Failed" {
        return vec![Finding::warn(
            &s,
            format!("Failed: {}", failure_reason(pod)),
        )];
    }
    let mut out = Vec::new();
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for c in containers {
        if let Some(f) = container(&s, c, phase, now) {
            out.push(f);
        }
    }
    let age = meta
        .creation_timestamp
        .as_ref()
        .map(|t| now.duration_since(t.0))
        .unwrap_or_default();
    let gates: Vec<&str> = pod
        .spec
        .as_ref()
        .and_then(|sp| sp.scheduling_gates.as_ref())
        .into_iter()
        .flatten()
        .map(|g| g.name.as_str())
        .collect();
    if out.is_empty() && phase == "Pending" && !gates.is_empty() {
        if age <= GATED_GRACE {
            return out;
        }
        // Held on purpose (a queue or quota controller removes the gates when it admits the
        // pod), but nothing runs meanwhile: worth saying, not a failure.
        out.push(Finding::warn(
            &s,
            format!(
                "waiting on purpose for {}: scheduling gates {}",
                human(age),
                gates.join(", ")
            ),
        ));
    }
    if out.is_empty() && phase == "Pending" && age > PENDING_GRACE {
        let why = match condition(pod, "PodScheduled").filter(|c| c.status == "False") {
            Some(c) => format!(
                ": {}: {}",
                c.reason.as_deref().unwrap_or("not scheduled"),
                one_line(c.message.as_deref().unwrap_or(""), 140)
            ),
            None => String::new(),
        };
        out.push(Finding::fail(
            &s,
            format!("Pending for {}{why}", human(age)),
        ));
    }
    if out.is_empty()
        && phase == "Running"
        && let Some(f) = held_by_readiness_gate(&s, pod)
    {
        out.push(f);
    }
    out
}

fn condition<'a>(pod: &'a Pod, type_: &str) -> Option<&'a PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// A pod still present well after `deletionTimestamp` (the end of its grace period).
fn stuck_terminating(s: &str, pod: &Pod, now: Timestamp) -> Option<Finding> {
    let deadline = pod.metadata.deletion_timestamp.as_ref()?.0;
    let past = now.duration_since(deadline);
    if past <= TERMINATING_GRACE {
        return None;
    }
    let holders = match pod.metadata.finalizers.as_deref() {
        Some(f) if !f.is_empty() => format!(": finalizers {} hold it", f.join(", ")),
        _ => ": its node may no longer answer (check the node, or delete with --force)".into(),
    };
    Some(Finding::fail(
        s,
        format!(
            "stuck Terminating {} past its grace period{holders}",
            human(past)
        ),
    ))
}

/// Why a pod failed: `status.reason` (older evictions), else the `DisruptionTarget`
/// condition (current evictions and preemptions set only that), else the first container
/// that terminated with an error.
fn failure_reason(pod: &Pod) -> String {
    let status = pod.status.as_ref();
    let with_message = |reason: &str, message: Option<&str>| match message {
        Some(m) if !m.trim().is_empty() => format!("{reason}: {}", one_line(m, 120)),
        _ => reason.to_string(),
    };
    if let Some(r) = status.and_then(|s| s.reason.as_deref()) {
        return with_message(r, status.and_then(|s| s.message.as_deref()));
    }
    if let Some(c) = condition(pod, "DisruptionTarget").filter(|c| c.status == "True") {
        return with_message(
            c.reason.as_deref().unwrap_or("DisruptionTarget"),
            c.message.as_deref(),
        );
    }
    let terminated = status
        .into_iter()
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .filter_map(|c| Some((&c.name, c.state.as_ref()?.terminated.as_ref()?)))
        .find(|(_, t)| t.exit_code != 0);
    match terminated {
        Some((name, t)) => with_message(
            &format!(
                "container {name} exited {}{}",
                t.exit_code,
                t.reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ),
            t.message.as_deref(),
        ),
        None => "no reason given".into(),
    }
}

/// Every container ready, yet the pod is not Ready: a readiness gate (`spec.readinessGates`,
/// set by a load balancer controller) holds it out of its Services.
fn held_by_readiness_gate(s: &str, pod: &Pod) -> Option<Finding> {
    if condition(pod, "Ready").is_none_or(|c| c.status == "True") {
        return None;
    }
    let all_ready = pod
        .status
        .as_ref()?
        .container_statuses
        .as_ref()
        .is_some_and(|cs| !cs.is_empty() && cs.iter().all(|c| c.ready));
    if !all_ready {
        return None;
    }
    let gates: Vec<String> = pod
        .spec
        .as_ref()?
        .readiness_gates
        .iter()
        .flatten()
        .filter(|g| condition(pod, &g.condition_type).is_none_or(|c| c.status != "True"))
        .map(|g| g.condition_type.clone())
        .collect();
    let why = if gates.is_empty() {
        "its Ready condition is False".to_string()
    } else {
        format!("readiness gate {} is not True", gates.join(", "))
    };
    Some(Finding::warn(
        s,
        format!("containers ready but the pod is not Ready: {why}, so no Service sends it traffic"),
    ))
}

fn container(s: &str, c: &ContainerStatus, phase: &str, now: Timestamp) -> Option<Finding> {
    let name = &c.name;
    let waiting = c.state.as_ref().and_then(|st| st.waiting.as_ref());
    let last = c.last_state.as_ref().and_then(|st| st.terminated.as_ref());
    let last_desc = last
        .map(|t| {
            format!(
                ", last exit {} {}",
                t.exit_code,
                t.reason.as_deref().unwrap_or("")
            )
            .trim_end()
            .to_string()
        })
        .unwrap_or_default();
    if let Some(w) = waiting {
        let reason = w.reason.as_deref().unwrap_or("");
        if reason == "CrashLoopBackOff" {
            return Some(Finding::fail(
                s,
                format!(
                    "container {name} in CrashLoopBackOff ({} restarts{last_desc})",
                    c.restart_count
                ),
            ));
        }
        if IMAGE_PULL.contains(&reason) || CANNOT_START.contains(&reason) {
            return Some(Finding::fail(
                s,
                format!(
                    "container {name}: {reason}: {}",
                    one_line(w.message.as_deref().unwrap_or("no message"), 140)
                ),
            ));
        }
    }
    let terminated_now = c.state.as_ref().and_then(|st| st.terminated.as_ref());
    if terminated_now.is_some_and(|t| t.reason.as_deref() == Some("OOMKilled")) {
        return Some(Finding::fail(
            s,
            format!("container {name} was OOMKilled and is not running"),
        ));
    }
    let last_ago = last
        .and_then(|t| t.finished_at.as_ref())
        .map(|t| now.duration_since(t.0));
    let recent = last_ago.is_some_and(|d| d <= RECENT);
    if recent && last.is_some_and(|t| t.reason.as_deref() == Some("OOMKilled")) {
        return Some(Finding::fail(
            s,
            format!(
                "container {name} was OOMKilled {} ago ({} restarts): raise its memory limit or find the leak",
                human(last_ago.unwrap_or_default()),
                c.restart_count
            ),
        ));
    }
    if recent && c.restart_count > 0 {
        return Some(Finding::warn(
            s,
            format!(
                "container {name} restarted {} ago ({} restarts{last_desc})",
                human(last_ago.unwrap_or_default()),
                c.restart_count
            ),
        ));
    }
    // An init container that ran to completion is never ready again (only a native sidecar,
    // still running, is): the kubelet reports it terminated with exit code 0.
    let completed = c
        .state
        .as_ref()
        .and_then(|st| st.terminated.as_ref())
        .is_some_and(|t| t.exit_code == 0);
    let warming_up = c
        .state
        .as_ref()
        .and_then(|st| st.running.as_ref())
        .and_then(|r| r.started_at.as_ref())
        .is_some_and(|t| now.duration_since(t.0) < NOT_READY_GRACE);
    if phase == "Running" && !c.ready && !completed && !warming_up {
        return Some(Finding::warn(s, format!("container {name} is not ready")));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Severity;
    use serde_json::json;

    /// The lean pods the check lists give the same findings as whole ones, on every pod of a
    /// sandbox with each of its pod and node faults switched on (scheduling and readiness
    /// gates, a pod stuck Terminating behind a finalizer, crash loops, evictions, ...).
    #[tokio::test]
    async fn lean_pods_give_the_same_findings_as_whole_ones() {
        use crate::sandbox::{Fault, Sandbox, SandboxOptions};
        let faults = Fault::ALL
            .into_iter()
            .filter(|f| !f.name().starts_with("api-"))
            .collect();
        let sandbox = Sandbox::start(SandboxOptions {
            faults,
            ..SandboxOptions::default()
        })
        .await
        .unwrap();
        let client = crate::kube::sandbox_client(&sandbox).await;
        let lp = kube::api::ListParams::default();
        let whole = Api::<Pod>::all(client.clone()).list(&lp).await.unwrap();
        let lean = Api::<Examined>::all(client).list(&lp).await.unwrap();
        assert_eq!(whole.items.len(), lean.items.len());
        let now = Timestamp::now();
        let mut messages = Vec::new();
        for (w, Examined(l)) in whole.items.iter().zip(&lean.items) {
            let (fw, fl) = (examine(w, now), examine(l, now));
            let read = |f: &[Finding]| -> Vec<(Severity, String, String)> {
                f.iter()
                    .map(|f| (f.severity, f.subject.clone(), f.message.clone()))
                    .collect()
            };
            assert_eq!(read(&fw), read(&fl), "pod {:?}", w.metadata.name);
            messages.extend(fw.into_iter().map(|f| f.message));
        }
        // The sandbox's stuck pod has no finalizer: one that has.
        let held = json!({
            "metadata": {"name": "old", "namespace": "paragon",
                         "creationTimestamp": "2026-01-01T00:00:00Z",
                         "deletionTimestamp": "2026-01-01T00:10:00Z",
                         "finalizers": ["example.com/cleanup"], "labels": {"app": "old"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": "Running"}});
        let w: Pod = serde_json::from_value(held.clone()).unwrap();
        let Examined(l) = serde_json::from_value(held).unwrap();
        let (fw, fl) = (examine(&w, now), examine(&l, now));
        assert_eq!(fw.len(), 1);
        assert_eq!(fw[0].message, fl[0].message);
        messages.push(fw[0].message.clone());
        // The comparison covers the fields the lean pod keeps outside the status.
        for needle in [
            "Terminating",
            "finalizers example.com/cleanup",
            "gate",
            "CrashLoopBackOff",
            "Evicted",
        ] {
            assert!(
                messages.iter().any(|m| m.contains(needle)),
                "no finding mentions {needle}: {messages:#?}"
            );
        }
        sandbox.shutdown().await;
    }

    fn now() -> Timestamp {
        "2026-01-01T12:00:00Z".parse().unwrap()
    }

    fn pod(phase: &str, created: &str, statuses: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p1", "namespace": "paragon", "creationTimestamp": created},
            "status": {"phase": phase, "containerStatuses": statuses}}))
        .unwrap()
    }

    fn cs(extra: serde_json::Value) -> serde_json::Value {
        let mut v = json!({"name": "c", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
            "state": {"running": {"startedAt": "2026-01-01T10:00:00Z"}}});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    }

    #[test]
    fn healthy_pod_and_old_restarts_are_fine() {
        let p = pod(
            "Running",
            "2026-01-01T00:00:00Z",
            json!([cs(json!({"restartCount": 2,
            "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2025-12-29T00:00:00Z"}}}))]),
        );
        assert!(examine(&p, now()).is_empty());
    }

    #[test]
    fn crashloop_fails_with_restart_count() {
        let p = pod(
            "Running",
            "2026-01-01T11:00:00Z",
            json!([cs(json!({"ready": false, "restartCount": 9,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2026-01-01T11:58:00Z"}}}))]),
        );
        let f = examine(&p, now());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Fail);
        assert_eq!(f[0].subject, "paragon/pod/p1");
        assert!(
            f[0].message
                .contains("CrashLoopBackOff (9 restarts, last exit 1 Error)"),
            "{}",
            f[0].message
        );
    }

    #[test]
    fn image_pull_is_reported_instead_of_pending() {
        let p = pod(
            "Pending",
            "2026-01-01T11:00:00Z",
            json!([cs(json!({"ready": false,
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"x:9\""}}}))]),
        );
        let f = examine(&p, now());
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].message.contains("ImagePullBackOff"),
            "{}",
            f[0].message
        );
    }

    #[test]
    fn pending_too_long_names_the_scheduler_reason() {
        let mut p = pod("Pending", "2026-01-01T11:35:00Z", json!(null));
        p.status.as_mut().unwrap().conditions = Some(vec![
            serde_json::from_value(json!({
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient memory."}))
            .unwrap(),
        ]);
        let f = examine(&p, now());
        assert_eq!(f[0].severity, Severity::Fail);
        assert!(
            f[0].message
                .starts_with("Pending for 25m: Unschedulable: 0/3"),
            "{}",
            f[0].message
        );
        let young = pod("Pending", "2026-01-01T11:58:00Z", json!(null));
        assert!(examine(&young, now()).is_empty());
    }

    #[test]
    fn recent_oom_kill_fails_and_recent_restart_warns() {
        let p = pod(
            "Running",
            "2026-01-01T00:00:00Z",
            json!([cs(json!({"restartCount": 1,
            "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": "2026-01-01T11:48:00Z"}}}))]),
        );
        let f = examine(&p, now());
        assert_eq!(f[0].severity, Severity::Fail);
        assert!(
            f[0].message.contains("OOMKilled 12m ago"),
            "{}",
            f[0].message
        );
        let p = pod(
            "Running",
            "2026-01-01T00:00:00Z",
            json!([cs(json!({"restartCount": 1,
            "lastState": {"terminated": {"exitCode": 2, "reason": "Error", "finishedAt": "2026-01-01T11:48:00Z"}}}))]),
        );
        assert_eq!(examine(&p, now())[0].severity, Severity::Warn);
    }

    #[test]
    fn running_container_not_ready_warns() {
        let p = pod(
            "Running",
            "2026-01-01T00:00:00Z",
            json!([cs(json!({"ready": false}))]),
        );
        let f = examine(&p, now());
        assert_eq!(
            (f[0].severity, f[0].message.as_str()),
            (Severity::Warn, "container c is not ready")
        );
        // Just started: within the grace a readiness probe's initial delay takes.
        let warming = pod(
            "Running",
            "2026-01-01T11:59:00Z",
            json!([cs(json!({"ready": false,
                "state": {"running": {"startedAt": "2026-01-01T11:59:30Z"}}}))]),
        );
        assert!(examine(&warming, now()).is_empty());
        let slow = pod(
            "Running",
            "2026-01-01T11:55:00Z",
            json!([cs(json!({"ready": false,
                "state": {"running": {"startedAt": "2026-01-01T11:55:00Z"}}}))]),
        );
        assert_eq!(examine(&slow, now())[0].severity, Severity::Warn);
    }

    #[test]
    fn a_completed_init_container_beside_a_native_sidecar_is_not_a_problem() {
        // prometheus-operator's shape: an init container that ran once, and its
        // config-reloader as a native sidecar (restartPolicy Always), as the kubelet reports them.
        let p = from(json!({
            "metadata": {"name": "prometheus-0", "namespace": "paragon", "creationTimestamp": "2026-01-01T10:00:00Z"},
            "spec": {"containers": [{"name": "prometheus"}],
              "initContainers": [{"name": "init-config-reloader"}, {"name": "config-reloader", "restartPolicy": "Always"}]},
            "status": {"phase": "Running",
              "initContainerStatuses": [
                {"name": "init-config-reloader", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "config-reloader", "ready": true, "started": true, "restartCount": 0, "image": "i", "imageID": "",
                 "state": {"running": {"startedAt": "2026-01-01T10:00:05Z"}}}],
              "containerStatuses": [
                {"name": "prometheus", "ready": true, "restartCount": 0, "image": "i", "imageID": "",
                 "state": {"running": {"startedAt": "2026-01-01T10:00:06Z"}}}],
              "conditions": [{"type": "Ready", "status": "True"}]}}));
        assert!(examine(&p, now()).is_empty(), "{:?}", examine(&p, now()));
        // A native sidecar that is not ready is still a warning.
        let mut p = p;
        if let Some(st) = p
            .status
            .as_mut()
            .and_then(|s| s.init_container_statuses.as_mut())
        {
            st[1].ready = false;
        }
        assert_eq!(examine(&p, now()).len(), 1);
    }

    /// A pod from its JSON shape as the API serves it.
    fn from(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_pod_held_by_scheduling_gates_is_pending_on_purpose() {
        // The scheduler's shape: PodScheduled False with reason SchedulingGated.
        let p = from(json!({
            "metadata": {"name": "g", "namespace": "paragon", "creationTimestamp": "2026-01-01T10:00:00Z"},
            "spec": {"containers": [{"name": "c"}], "schedulingGates": [{"name": "example.com/quota"}]},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
              "reason": "SchedulingGated", "message": "Scheduling is blocked due to non-empty scheduling gates"}]}}));
        let f = examine(&p, now());
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(
            (f[0].severity, f[0].message.as_str()),
            (
                Severity::Warn,
                "waiting on purpose for 2h: scheduling gates example.com/quota"
            )
        );
        // A queue admits within minutes as a rule: a short wait says nothing.
        let mut young = p.clone();
        young.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-01-01T11:52:00Z".parse().unwrap(),
            ));
        assert!(examine(&young, now()).is_empty());
    }

    #[test]
    fn ready_containers_in_a_pod_held_by_a_readiness_gate_warn_naming_the_gate() {
        let p = from(json!({
            "metadata": {"name": "web", "namespace": "paragon", "creationTimestamp": "2026-01-01T10:00:00Z"},
            "spec": {"containers": [{"name": "c"}],
              "readinessGates": [{"conditionType": "target-health.elbv2.k8s.aws/k8s-paragon-web"}]},
            "status": {"phase": "Running",
              "conditions": [
                {"type": "ContainersReady", "status": "True"},
                {"type": "Ready", "status": "False", "reason": "ReadinessGatesNotReady",
                 "message": "corresponding condition of pod readiness gate \"target-health.elbv2.k8s.aws/k8s-paragon-web\" does not exist."}],
              "containerStatuses": [cs(json!({}))]}}));
        let f = examine(&p, now());
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].severity, Severity::Warn);
        assert!(
            f[0].message
                .contains("readiness gate target-health.elbv2.k8s.aws/k8s-paragon-web is not True"),
            "{}",
            f[0].message
        );
    }

    #[test]
    fn a_pod_terminating_long_past_its_grace_period_fails_naming_its_finalizers() {
        let mut v = json!({
            "metadata": {"name": "old", "namespace": "paragon", "creationTimestamp": "2026-01-01T00:00:00Z",
              "deletionTimestamp": "2026-01-01T11:00:30Z", "deletionGracePeriodSeconds": 30,
              "finalizers": ["example.com/cleanup"]},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Running", "containerStatuses": [cs(json!({}))]}});
        let f = examine(&from(v.clone()), now());
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].severity, Severity::Fail);
        assert_eq!(
            f[0].message,
            "stuck Terminating 59m past its grace period: finalizers example.com/cleanup hold it"
        );
        // Within the grace period (the deadline is still ahead): a normal shutdown.
        v["metadata"]["deletionTimestamp"] = json!("2026-01-01T12:00:20Z");
        assert!(examine(&from(v), now()).is_empty());
    }

    #[test]
    fn post_start_hook_error_fails_like_create_container_error() {
        let p = pod(
            "Running",
            "2026-01-01T11:00:00Z",
            json!([cs(json!({"ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "PostStartHookError",
              "message": "PostStartHook failed"}}}))]),
        );
        let f = examine(&p, now());
        assert_eq!(f[0].severity, Severity::Fail);
        assert_eq!(
            f[0].message,
            "container c: PostStartHookError: PostStartHook failed"
        );
    }

    #[test]
    fn an_eviction_names_its_reason_from_the_disruption_target_condition() {
        // Kubernetes 1.31+ kubelet eviction: no status.reason, only the condition.
        let p = from(json!({
            "metadata": {"name": "ev", "namespace": "paragon", "creationTimestamp": "2026-01-01T10:00:00Z"},
            "status": {"phase": "Failed", "conditions": [{"type": "DisruptionTarget", "status": "True",
              "reason": "TerminationByKubelet", "message": "The node was low on resource: memory."}]}}));
        let f = examine(&p, now());
        assert_eq!(
            f[0].message,
            "Failed: TerminationByKubelet: The node was low on resource: memory."
        );
        // The older shape: status.reason Evicted.
        let p = from(json!({
            "metadata": {"name": "ev", "namespace": "paragon"},
            "status": {"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: ephemeral-storage."}}));
        assert_eq!(
            examine(&p, now())[0].message,
            "Failed: Evicted: The node was low on resource: ephemeral-storage."
        );
    }

    #[test]
    fn a_failed_pod_names_the_container_that_failed_when_the_pod_has_no_reason() {
        let p = pod(
            "Failed",
            "2026-01-01T10:00:00Z",
            json!([cs(
                json!({"ready": false, "state": {"terminated": {"exitCode": 3, "reason": "Error",
              "message": "migration 42 failed", "finishedAt": "2026-01-01T10:05:00Z"}}})
            )]),
        );
        let f = examine(&p, now());
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(
            f[0].message,
            "Failed: container c exited 3 (Error): migration 42 failed"
        );
    }
}
