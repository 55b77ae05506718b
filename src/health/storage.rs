//! PersistentVolumeClaims that are not Bound.

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ListParams};

use super::{CheckResult, Finding, human, subject};
use crate::kube::list::each_page;

/// Provisioning a volume takes seconds to a minute; longer is a failure.
const PENDING_GRACE: SignedDuration = SignedDuration::from_mins(5);

pub async fn check(client: kube::Client, now: Timestamp) -> CheckResult {
    let mut findings = Vec::new();
    let mut total = 0usize;
    each_page(
        &Api::<PersistentVolumeClaim>::all(client),
        ListParams::default(),
        |page| {
            total += page.len();
            findings.extend(page.iter().filter_map(|p| examine(p, now)));
        },
    )
    .await?;
    if findings.is_empty() {
        findings.push(Finding::ok("pvcs", format!("{total} PVCs, all Bound")));
    }
    Ok(findings)
}

pub fn examine(pvc: &PersistentVolumeClaim, now: Timestamp) -> Option<Finding> {
    let phase = pvc
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending");
    if phase == "Bound" {
        return None;
    }
    let s = subject(
        pvc.metadata.namespace.as_deref(),
        "pvc",
        pvc.metadata.name.as_deref().unwrap_or_default(),
    );
    let age = pvc
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| now.duration_since(t.0))
        .unwrap_or_default();
    let class = pvc
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .map(|c| format!(" (storage class {c})"))
        .unwrap_or_default();
    let msg = format!("{phase} for {}{class}, not Bound", human(age));
    Some(if phase == "Pending" && age <= PENDING_GRACE {
        Finding::warn(s, msg)
    } else {
        Finding::fail(s, msg)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Severity;
    use serde_json::json;

    #[test]
    fn old_pending_claim_fails_young_one_warns_bound_is_fine() {
        let now: Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
        let pvc = |created: &str, phase: &str| -> PersistentVolumeClaim {
            serde_json::from_value(
                json!({"metadata": {"name": "data", "namespace": "p", "creationTimestamp": created},
                "spec": {"storageClassName": "gp3"}, "status": {"phase": phase}}),
            )
            .unwrap()
        };
        let f = examine(&pvc("2026-01-01T11:30:00Z", "Pending"), now).unwrap();
        assert_eq!(f.severity, Severity::Fail);
        assert_eq!(f.message, "Pending for 30m (storage class gp3), not Bound");
        assert_eq!(
            examine(&pvc("2026-01-01T11:59:00Z", "Pending"), now)
                .unwrap()
                .severity,
            Severity::Warn
        );
        assert_eq!(examine(&pvc("2026-01-01T11:00:00Z", "Bound"), now), None);
    }
}
