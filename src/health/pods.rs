//! Pods: CrashLoopBackOff, image pull errors, Pending too long (with the scheduler's reason),
//! OOMKilled, restarts in the last hour, containers not ready. Pods are listed a page at a
//! time and only the problems are kept.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ListParams};

use super::{CheckResult, Finding, human, one_line, subject};
use crate::kube::list::each_page;

/// A pod may be Pending this long (image pulls, volume attach) before it is a failure.
const PENDING_GRACE: SignedDuration = SignedDuration::from_mins(5);
/// Restarts and OOM kills within this window are reported.
const RECENT: SignedDuration = SignedDuration::from_hours(1);

const IMAGE_PULL: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "ErrImageNeverPull",
];
const CANNOT_START: &[&str] = &[
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

pub async fn check(client: kube::Client, now: Timestamp) -> CheckResult {
    let api: Api<Pod> = Api::all(client);
    let mut findings = Vec::new();
    let (mut total, mut running) = (0usize, 0usize);
    each_page(&api, ListParams::default(), |page| {
        for pod in &page {
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
        format!("{total} pods, {running} running"),
    ));
    Ok(findings)
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
    if phase == "Succeeded" {
        return Vec::new();
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
    if out.is_empty() && phase == "Pending" && age > PENDING_GRACE {
        let scheduled = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False");
        let why = match scheduled {
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
    if phase == "Failed" {
        out.push(Finding::warn(
            &s,
            format!(
                "Failed ({}){}",
                status.reason.as_deref().unwrap_or("no reason given"),
                status
                    .message
                    .as_deref()
                    .map(|m| format!(": {}", one_line(m, 100)))
                    .unwrap_or_default()
            ),
        ));
    }
    out
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
    if phase == "Running" && !c.ready {
        return Some(Finding::warn(s, format!("container {name} is not ready")));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Severity;
    use serde_json::json;

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
    }
}
