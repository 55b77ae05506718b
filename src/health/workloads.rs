//! Workloads: Deployments, StatefulSets and DaemonSets below their desired count or stuck
//! rolling out; Jobs that failed, and leftover `migrations-postgres-*` hook Jobs (Helm deletes
//! them only on success, so one still there means a migration failed).

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use kube::api::Api;

use super::{CheckResult, Finding, count, subject};
use crate::kube::list::each_page;

pub async fn check(client: kube::Client) -> CheckResult {
    let mut findings = Vec::new();
    let mut total = 0usize;
    each_page(
        &Api::<Deployment>::all(client.clone()),
        super::lists(),
        |page| {
            total += page.len();
            findings.extend(page.iter().flat_map(deployment));
        },
    )
    .await?;
    each_page(
        &Api::<StatefulSet>::all(client.clone()),
        super::lists(),
        |page| {
            total += page.len();
            findings.extend(page.iter().flat_map(statefulset));
        },
    )
    .await?;
    each_page(&Api::<DaemonSet>::all(client), super::lists(), |page| {
        total += page.len();
        findings.extend(page.iter().flat_map(daemonset));
    })
    .await?;
    if findings.is_empty() {
        findings.push(Finding::ok(
            "workloads",
            format!(
                "{} fully available",
                count(
                    total,
                    "deployment, statefulset or daemonset",
                    "deployments, statefulsets and daemonsets"
                )
            ),
        ));
    }
    Ok(findings)
}

pub async fn check_jobs(client: kube::Client) -> CheckResult {
    let mut findings = Vec::new();
    let mut total = 0usize;
    each_page(&Api::<Job>::all(client), super::lists(), |page| {
        total += page.len();
        findings.extend(page.iter().flat_map(job));
    })
    .await?;
    if findings.is_empty() {
        findings.push(Finding::ok(
            "jobs",
            format!("{}, none failed", count(total, "job", "jobs")),
        ));
    }
    Ok(findings)
}

fn name_of(m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, kind: &str) -> String {
    subject(
        m.namespace.as_deref(),
        kind,
        m.name.as_deref().unwrap_or_default(),
    )
}

pub fn deployment(d: &Deployment) -> Option<Finding> {
    let s = name_of(&d.metadata, "deployment");
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = d.status.as_ref();
    let available = status.and_then(|s| s.available_replicas).unwrap_or(0);
    let conditions = status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    if let Some(c) = conditions
        .iter()
        .find(|c| c.type_ == "Progressing" && c.status == "False")
    {
        return Some(Finding::fail(
            s,
            format!(
                "rollout stuck ({}): {available}/{desired} available",
                c.reason.as_deref().unwrap_or("Progressing is False")
            ),
        ));
    }
    if desired > 0 && available < desired {
        let unavailable = conditions
            .iter()
            .any(|c| c.type_ == "Available" && c.status == "False");
        let msg = format!("{available}/{desired} replicas available");
        return Some(if available == 0 || unavailable {
            Finding::fail(s, format!("{msg}: below minimum availability"))
        } else {
            Finding::warn(s, msg)
        });
    }
    None
}

pub fn statefulset(st: &StatefulSet) -> Option<Finding> {
    let s = name_of(&st.metadata, "statefulset");
    let desired = st.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = st.status.as_ref();
    let ready = status.and_then(|s| s.ready_replicas).unwrap_or(0);
    if desired > 0 && ready < desired {
        let msg = format!("{ready}/{desired} replicas ready");
        return Some(if ready == 0 {
            Finding::fail(s, msg)
        } else {
            Finding::warn(s, msg)
        });
    }
    let updated = status.and_then(|s| s.updated_replicas).unwrap_or(0);
    let current = status.and_then(|s| s.current_revision.as_deref());
    let update = status.and_then(|s| s.update_revision.as_deref());
    if let (Some(c), Some(u)) = (current, update)
        && c != u
        && updated < desired
    {
        return Some(Finding::warn(
            s,
            format!("rolling out: {updated}/{desired} replicas updated to {u}"),
        ));
    }
    None
}

pub fn daemonset(ds: &DaemonSet) -> Option<Finding> {
    let s = name_of(&ds.metadata, "daemonset");
    let status = ds.status.as_ref()?;
    let desired = status.desired_number_scheduled;
    let available = status.number_available.unwrap_or(0);
    if desired > 0 && available < desired {
        let msg = format!("{available}/{desired} pods available");
        return Some(if available == 0 {
            Finding::fail(s, msg)
        } else {
            Finding::warn(s, msg)
        });
    }
    let updated = status.updated_number_scheduled.unwrap_or(desired);
    if updated < desired {
        return Some(Finding::warn(
            s,
            format!("rolling out: {updated}/{desired} pods updated"),
        ));
    }
    None
}

pub fn job(j: &Job) -> Option<Finding> {
    let name = j.metadata.name.as_deref().unwrap_or_default();
    let s = name_of(&j.metadata, "job");
    let status = j.status.as_ref();
    let failed = status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
        .iter()
        .find(|c| c.type_ == "Failed" && c.status == "True");
    if let Some(c) = failed {
        return Some(Finding::fail(
            s,
            format!(
                "failed ({}){}",
                c.reason.as_deref().unwrap_or("no reason given"),
                c.message
                    .as_deref()
                    .map(|m| format!(": {}", super::one_line(m, 100)))
                    .unwrap_or_default()
            ),
        ));
    }
    if name.starts_with("migrations-postgres-") {
        let failures = status.and_then(|s| s.failed).unwrap_or(0);
        return Some(Finding::fail(
            s,
            format!(
                "leftover database migration job ({failures} failed pods): Helm deletes it only on success"
            ),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Severity;
    use serde_json::json;

    fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn deployment_mid_rollout_but_available_is_fine() {
        let d: Deployment = from(json!({"metadata": {"name": "w", "namespace": "paragon"},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"availableReplicas": 2, "updatedReplicas": 1, "unavailableReplicas": 1,
              "conditions": [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True"}]}}));
        assert_eq!(deployment(&d), None);
    }

    #[test]
    fn deployment_without_available_replicas_fails() {
        let d: Deployment = from(
            json!({"metadata": {"name": "passport", "namespace": "paragon"},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"availableReplicas": 0,
              "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}]}}),
        );
        let f = deployment(&d).unwrap();
        assert_eq!(f.severity, Severity::Fail);
        assert_eq!(f.subject, "paragon/deployment/passport");
        assert!(f.message.starts_with("0/2"), "{}", f.message);
    }

    #[test]
    fn stuck_rollout_fails() {
        let d: Deployment = from(json!({"metadata": {"name": "x", "namespace": "p"},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"availableReplicas": 2,
              "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}}));
        assert!(
            deployment(&d)
                .unwrap()
                .message
                .contains("ProgressDeadlineExceeded")
        );
    }

    #[test]
    fn leftover_migration_job_fails_and_completed_job_is_fine() {
        let j: Job = from(
            json!({"metadata": {"name": "migrations-postgres-zeus", "namespace": "paragon"},
            "status": {"failed": 1}}),
        );
        assert_eq!(job(&j).unwrap().severity, Severity::Fail);
        let j: Job = from(
            json!({"metadata": {"name": "restart-1", "namespace": "paragon"},
            "status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}}),
        );
        assert_eq!(job(&j), None);
    }

    #[test]
    fn partly_ready_statefulset_warns_and_empty_daemonset_fails() {
        let st: StatefulSet = from(json!({"metadata": {"name": "pg", "namespace": "p"},
            "spec": {"replicas": 3, "selector": {}, "serviceName": "pg", "template": {}},
            "status": {"replicas": 3, "readyReplicas": 2}}));
        assert_eq!(statefulset(&st).unwrap().severity, Severity::Warn);
        let ds: DaemonSet = from(json!({"metadata": {"name": "fb", "namespace": "p"},
            "status": {"desiredNumberScheduled": 3, "numberAvailable": 0, "currentNumberScheduled": 3,
              "numberMisscheduled": 0, "numberReady": 0}}));
        assert_eq!(daemonset(&ds).unwrap().severity, Severity::Fail);
    }

    #[test]
    fn statefulset_mid_rollout_warns() {
        let st: StatefulSet = from(json!({"metadata": {"name": "pg", "namespace": "p"},
            "spec": {"replicas": 3, "selector": {}, "serviceName": "pg", "template": {}},
            "status": {"replicas": 3, "readyReplicas": 3, "updatedReplicas": 1,
              "currentRevision": "pg-1", "updateRevision": "pg-2"}}));
        let f = statefulset(&st).unwrap();
        assert_eq!(
            (f.severity, f.message.as_str()),
            (Severity::Warn, "rolling out: 1/3 replicas updated to pg-2")
        );
    }
}
