//! PersistentVolumeClaims that are not Bound. A claim Pending because its StorageClass binds
//! `WaitForFirstConsumer` and no pod uses it yet is normal (the default classes of EKS, AKS,
//! GKE and local-path work this way): the class's `volumeBindingMode`, the scheduler's
//! `selected-node` annotation and the claim's latest event tell it apart from a stuck one.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ListParams};

use super::{CheckResult, Finding, count, human, one_line, subject};
use crate::kube::list::each_page;

/// Provisioning a volume takes seconds to a minute; longer is a failure.
const PENDING_GRACE: SignedDuration = SignedDuration::from_mins(5);
/// The annotation the scheduler sets on a `WaitForFirstConsumer` claim once a pod that uses
/// it is placed: from then on the claim should bind.
const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// The PV controller's event on a claim that waits for its first consumer.
const WAITING_REASON: &str = "WaitForFirstConsumer";

/// What else is known about a Pending claim.
#[derive(Debug, Default, Clone)]
pub struct Context {
    /// The class's `volumeBindingMode`, if the class could be read.
    pub binding_mode: Option<String>,
    /// The claim's latest event: (reason, message).
    pub last_event: Option<(String, String)>,
}

pub async fn check(client: kube::Client, now: Timestamp) -> CheckResult {
    let mut pending = Vec::new();
    let mut total = 0usize;
    each_page(
        &Api::<PersistentVolumeClaim>::all(client.clone()),
        super::lists(),
        |page| {
            total += page.len();
            pending.extend(page.into_iter().filter(|p| phase(p) != "Bound"));
        },
    )
    .await?;
    // Classes and events only for the few claims not Bound.
    let mut modes: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut findings = Vec::new();
    let mut waiting = 0usize;
    for pvc in &pending {
        let class = pvc.spec.as_ref().and_then(|s| s.storage_class_name.clone());
        let binding_mode = match class {
            Some(c) => match modes.get(&c) {
                Some(m) => m.clone(),
                None => {
                    let m = binding_mode(&client, &c).await;
                    modes.insert(c, m.clone());
                    m
                }
            },
            None => None,
        };
        let ctx = Context {
            binding_mode,
            last_event: last_event(&client, pvc).await,
        };
        match examine(pvc, now, &ctx) {
            Some(f) => findings.push(f),
            None => waiting += 1,
        }
    }
    if findings.is_empty() {
        let also = if waiting > 0 {
            format!(", {waiting} waiting for a first consumer")
        } else {
            String::new()
        };
        findings.push(Finding::ok(
            "pvcs",
            format!(
                "{}, {} Bound{also}",
                count(total, "PVC", "PVCs"),
                total - waiting
            ),
        ));
    }
    Ok(findings)
}

fn phase(pvc: &PersistentVolumeClaim) -> &str {
    pvc.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// The class's binding mode; a class that cannot be read (forbidden, gone) leaves the
/// decision to the claim's events.
async fn binding_mode(client: &kube::Client, class: &str) -> Option<String> {
    let api: Api<StorageClass> = Api::all(client.clone());
    match api.get_opt(class).await {
        Ok(Some(sc)) => Some(sc.volume_binding_mode.unwrap_or_else(|| "Immediate".into())),
        Ok(None) => None,
        Err(e) => {
            tracing::debug!("cannot read storage class {class}: {e}");
            None
        }
    }
}

/// The claim's most recent event, by the time it last happened.
async fn last_event(
    client: &kube::Client,
    pvc: &PersistentVolumeClaim,
) -> Option<(String, String)> {
    let ns = pvc.metadata.namespace.as_deref()?;
    let name = pvc.metadata.name.as_deref()?;
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    // One claim's events, all of them in one answer (the newest is wanted, and a page could
    // leave it out): not the report's paged lists.
    let lp = ListParams::default().fields(&format!(
        "involvedObject.kind=PersistentVolumeClaim,involvedObject.name={name}"
    ));
    let list = match api.list(&lp).await {
        Ok(l) => l,
        Err(e) => {
            tracing::debug!("cannot list the events of pvc {ns}/{name}: {e}");
            return None;
        }
    };
    list.items
        .into_iter()
        .max_by_key(super::events::last_seen)
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
}

/// The finding for a claim not Bound, or none when it waits for its first consumer.
pub fn examine(pvc: &PersistentVolumeClaim, now: Timestamp, ctx: &Context) -> Option<Finding> {
    let phase = phase(pvc);
    if phase == "Bound" {
        return None;
    }
    let selected = pvc
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(SELECTED_NODE));
    let waits_for_consumer = ctx.binding_mode.as_deref() == Some("WaitForFirstConsumer")
        || ctx
            .last_event
            .as_ref()
            .is_some_and(|(r, _)| r == WAITING_REASON);
    if phase == "Pending" && waits_for_consumer && !selected {
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
    let event = match &ctx.last_event {
        Some((reason, message)) if reason != WAITING_REASON => {
            format!(": {reason}: {}", one_line(message, 120))
        }
        _ => String::new(),
    };
    let msg = format!("{phase} for {}{class}, not Bound{event}", human(age));
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

    fn now() -> Timestamp {
        "2026-01-01T12:00:00Z".parse().unwrap()
    }

    fn pvc(created: &str, phase: &str) -> PersistentVolumeClaim {
        serde_json::from_value(
            json!({"metadata": {"name": "data", "namespace": "p", "creationTimestamp": created},
            "spec": {"storageClassName": "gp3"}, "status": {"phase": phase}}),
        )
        .unwrap()
    }

    #[test]
    fn old_pending_claim_fails_young_one_warns_bound_is_fine() {
        let none = Context::default();
        let f = examine(&pvc("2026-01-01T11:30:00Z", "Pending"), now(), &none).unwrap();
        assert_eq!(f.severity, Severity::Fail);
        assert_eq!(f.message, "Pending for 30m (storage class gp3), not Bound");
        assert_eq!(
            examine(&pvc("2026-01-01T11:59:00Z", "Pending"), now(), &none)
                .unwrap()
                .severity,
            Severity::Warn
        );
        assert_eq!(
            examine(&pvc("2026-01-01T11:00:00Z", "Bound"), now(), &none),
            None
        );
    }

    #[test]
    fn a_claim_waiting_for_its_first_consumer_is_not_a_problem() {
        let old = pvc("2026-01-01T08:00:00Z", "Pending");
        let by_class = Context {
            binding_mode: Some("WaitForFirstConsumer".into()),
            last_event: None,
        };
        assert_eq!(examine(&old, now(), &by_class), None);
        // The class unreadable (RBAC): the PV controller's event says the same.
        let by_event = Context {
            binding_mode: None,
            last_event: Some((
                "WaitForFirstConsumer".into(),
                "waiting for first consumer to be created before binding".into(),
            )),
        };
        assert_eq!(examine(&old, now(), &by_event), None);
    }

    #[test]
    fn a_consumer_placed_but_the_claim_unbound_fails_with_the_latest_event() {
        let mut claim = pvc("2026-01-01T11:00:00Z", "Pending");
        claim.metadata.annotations =
            Some([(SELECTED_NODE.to_string(), "ip-10-0-1-5".to_string())].into());
        let ctx = Context {
            binding_mode: Some("WaitForFirstConsumer".into()),
            last_event: Some((
                "ProvisioningFailed".into(),
                "failed to provision volume: InvalidParameterValue".into(),
            )),
        };
        let f = examine(&claim, now(), &ctx).unwrap();
        assert_eq!(f.severity, Severity::Fail);
        assert_eq!(
            f.message,
            "Pending for 1h (storage class gp3), not Bound: ProvisioningFailed: failed to provision volume: InvalidParameterValue"
        );
        // Immediate binding: no waiting for a consumer.
        let immediate = Context {
            binding_mode: Some("Immediate".into()),
            last_event: None,
        };
        let claim = pvc("2026-01-01T11:00:00Z", "Pending");
        assert_eq!(
            examine(&claim, now(), &immediate).unwrap().severity,
            Severity::Fail
        );
    }
}
