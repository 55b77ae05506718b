//! Warning events of the last hour, grouped by reason and object. Both shapes are read: the
//! core/v1 one (`count`, `lastTimestamp`) and the `events.k8s.io` one that current
//! components write (`series.count`, `series.lastObservedTime`, `eventTime`). Events are
//! judged in the light of the object's current state: warnings about pods that no longer
//! exist (the old pods of a finished rolling update failing readiness while shutting down)
//! are counted, not reported.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::Api;

use super::{CheckError, CheckResult, Finding, Severity, one_line, subject};
use crate::kube::list::{each_metadata_page, each_page};

const WINDOW: SignedDuration = SignedDuration::from_hours(1);
/// A warning repeated this often within the hour is a failure whatever its reason.
const REPEATED: i32 = 10;
/// Reasons that mean something is broken now, not merely noisy.
const SERIOUS: &[&str] = &[
    "Unhealthy",
    "BackOff",
    "Failed",
    "FailedScheduling",
    "FailedMount",
    "FailedAttachVolume",
    "FailedCreate",
    "FailedCreatePodSandBox",
    "Evicted",
    "OOMKilling",
    "NodeNotReady",
    "ProvisioningFailed",
];

/// Kinds without a namespace: their events live in `default` but name no namespace.
const CLUSTER_SCOPED: &[&str] = &[
    "Node",
    "PersistentVolume",
    "Namespace",
    "StorageClass",
    "CSINode",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PriorityClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
];

/// The pods that exist now, by (namespace, name) with their uid; `None` when they could not
/// be listed (then every event counts, as before).
pub type LivePods = Option<BTreeMap<(String, String), String>>;

/// One group: the events of one reason on one object.
#[derive(Debug, Default)]
struct Group {
    count: i32,
    message: String,
    last: Option<Timestamp>,
}

pub async fn check(client: kube::Client, now: Timestamp) -> CheckResult {
    let mut groups: BTreeMap<(String, String), Group> = BTreeMap::new();
    let mut events = Vec::new();
    // The pods are listed beside the events, not after them: through a far bastion each list
    // is a round trip per page, and most clusters have warnings about pods.
    let api = Api::<Event>::all(client.clone());
    let warnings = super::lists().fields("type=Warning");
    let keep = |page: Vec<Event>| events.extend(page.into_iter().filter(|e| recent(e, now)));
    let (listed, live) = futures::join!(each_page(&api, warnings, keep), live_pods(&client));
    listed?;
    let live = if events
        .iter()
        .any(|e| e.involved_object.kind.as_deref() == Some("Pod"))
    {
        live?
    } else {
        None
    };
    let mut gone = BTreeSet::new();
    for e in &events {
        if about_a_gone_pod(e, &live) {
            gone.insert(e.involved_object.name.clone().unwrap_or_default());
        } else {
            add(&mut groups, e, now);
        }
    }
    let mut findings: Vec<Finding> = groups
        .into_iter()
        .map(|((subj, reason), g)| {
            let msg = format!("{}× {reason}: {}", g.count, one_line(&g.message, 120));
            Finding::new(severity(&reason, g.count), subj, msg)
        })
        .collect();
    if findings.is_empty() {
        let also = match gone.len() {
            0 => String::new(),
            1 => " (warnings about 1 pod that no longer exists left out)".to_string(),
            n => format!(" (warnings about {n} pods that no longer exist left out)"),
        };
        findings.push(Finding::ok(
            "events",
            format!("no warning events in the last hour{also}"),
        ));
    }
    Ok(findings)
}

/// The pods there are now (metadata only). A list that fails (forbidden, say) leaves every
/// event counted; one whose continued page expired restarts the check (`restarting_once`).
async fn live_pods(client: &kube::Client) -> Result<LivePods, CheckError> {
    let mut live = BTreeMap::new();
    let listed = each_metadata_page(&Api::<Pod>::all(client.clone()), super::lists(), |page| {
        for m in page {
            if let (Some(ns), Some(name)) = (m.namespace, m.name) {
                live.insert((ns, name), m.uid.unwrap_or_default());
            }
        }
    })
    .await;
    match listed.map_err(CheckError::from) {
        Ok(()) => Ok(Some(live)),
        Err(e @ CheckError::Expired(_)) => Err(e),
        Err(e) => {
            tracing::debug!("cannot list pods to judge events: {e}");
            Ok(None)
        }
    }
}

/// An event about a pod that is gone, or replaced by a new pod of the same name (a
/// StatefulSet's): the problem it reported went with it.
fn about_a_gone_pod(e: &Event, live: &LivePods) -> bool {
    let o = &e.involved_object;
    let Some(live) = live else { return false };
    if o.kind.as_deref() != Some("Pod") {
        return false;
    }
    let ns = o
        .namespace
        .clone()
        .or_else(|| e.metadata.namespace.clone())
        .unwrap_or_default();
    let key = (ns, o.name.clone().unwrap_or_default());
    match (live.get(&key), o.uid.as_deref()) {
        (None, _) => true,
        (Some(uid), Some(event_uid)) => {
            !event_uid.is_empty() && !uid.is_empty() && uid != event_uid
        }
        (Some(_), None) => false,
    }
}

fn recent(e: &Event, now: Timestamp) -> bool {
    e.type_.as_deref() == Some("Warning")
        && last_seen(e).is_some_and(|last| now.duration_since(last) <= WINDOW)
}

/// How often it happened: a series' count (events.k8s.io), else `count`, else once.
fn occurrences(e: &Event) -> i32 {
    e.series
        .as_ref()
        .and_then(|s| s.count)
        .into_iter()
        .chain(e.count)
        .max()
        .unwrap_or(1)
        .max(1)
}

/// A serious reason, or any reason repeated often, fails; other warnings warn.
fn severity(reason: &str, count: i32) -> Severity {
    if count >= REPEATED || SERIOUS.contains(&reason) {
        Severity::Fail
    } else {
        Severity::Warn
    }
}

/// When an event last happened: its series, its lastTimestamp, its eventTime, its creation.
pub(super) fn last_seen(e: &Event) -> Option<Timestamp> {
    e.series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref().map(|t| t.0))
        .or(e.last_timestamp.as_ref().map(|t| t.0))
        .or(e.event_time.as_ref().map(|t| t.0))
        .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

fn add(groups: &mut BTreeMap<(String, String), Group>, e: &Event, now: Timestamp) {
    if !recent(e, now) {
        return;
    }
    let Some(last) = last_seen(e) else { return };
    let o = &e.involved_object;
    let kind = o.kind.as_deref().unwrap_or("object");
    let namespace = match o.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => Some(ns),
        _ if CLUSTER_SCOPED.contains(&kind) => None,
        _ => e.metadata.namespace.as_deref(),
    };
    let subj = subject(
        namespace,
        &kind.to_lowercase(),
        o.name.as_deref().unwrap_or_default(),
    );
    let reason = e.reason.clone().unwrap_or_else(|| "Unknown".into());
    let g = groups.entry((subj, reason)).or_default();
    g.count += occurrences(e);
    if g.last.is_none_or(|l| last > l) {
        g.last = Some(last);
        g.message = e.message.clone().unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(reason: &str, count: i32, last: &str) -> Event {
        serde_json::from_value(json!({"metadata": {"name": "e", "namespace": "paragon"},
            "type": "Warning", "reason": reason, "count": count, "lastTimestamp": last,
            "message": "m", "involvedObject": {"kind": "Pod", "name": "hermes-1", "namespace": "paragon"}}))
        .unwrap()
    }

    #[test]
    fn events_group_by_reason_and_object_within_the_hour() {
        let now: Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
        let mut g = BTreeMap::new();
        add(
            &mut g,
            &event("DNSConfigForming", 4, "2026-01-01T11:55:00Z"),
            now,
        );
        add(
            &mut g,
            &event("DNSConfigForming", 8, "2026-01-01T11:50:00Z"),
            now,
        );
        add(&mut g, &event("Unhealthy", 3, "2026-01-01T10:00:00Z"), now);
        assert_eq!(g.len(), 1);
        let ((subj, reason), grp) = g.into_iter().next().unwrap();
        assert_eq!(
            (subj.as_str(), reason.as_str(), grp.count),
            ("paragon/pod/hermes-1", "DNSConfigForming", 12)
        );
    }

    #[test]
    fn serious_or_repeated_warnings_fail() {
        assert_eq!(severity("Unhealthy", 3), Severity::Fail);
        assert_eq!(severity("DNSConfigForming", 12), Severity::Fail);
        assert_eq!(severity("DNSConfigForming", 2), Severity::Warn);
    }

    fn now() -> Timestamp {
        "2026-01-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_new_style_event_reports_its_series_count_and_time_and_can_repeat_into_a_failure() {
        // The scheduler's events.k8s.io/v1 event as the core/v1 API serves it: no count,
        // no lastTimestamp, an eventTime and a series.
        let e: Event = serde_json::from_value(json!({
            "metadata": {"name": "web.181a", "namespace": "paragon"},
            "type": "Warning", "reason": "FailedScheduling", "action": "Scheduling",
            "eventTime": "2026-01-01T11:00:00.000000Z", "reportingComponent": "default-scheduler",
            "firstTimestamp": null, "lastTimestamp": null,
            "series": {"count": 41, "lastObservedTime": "2026-01-01T11:50:00.000000Z"},
            "message": "0/3 nodes are available: 3 Insufficient cpu.",
            "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "paragon"}}))
        .unwrap();
        let mut g = BTreeMap::new();
        add(&mut g, &e, now());
        let (_, grp) = g.into_iter().next().unwrap();
        assert_eq!(grp.count, 41);
        assert_eq!(grp.last, Some("2026-01-01T11:50:00Z".parse().unwrap()));
        // A reason that alone only warns fails once repeated ten times.
        assert_eq!(severity("NetworkNotReady", grp.count), Severity::Fail);
        // An eventTime alone (first occurrence) is the time, and counts once.
        let mut single = e.clone();
        single.series = None;
        assert_eq!(occurrences(&single), 1);
        assert_eq!(
            last_seen(&single),
            Some("2026-01-01T11:00:00Z".parse().unwrap())
        );
    }

    #[test]
    fn events_about_cluster_scoped_objects_name_no_namespace() {
        // The kubelet records node events in `default`, naming no namespace on the node.
        let e: Event = serde_json::from_value(json!({
            "metadata": {"name": "n1.17", "namespace": "default"},
            "type": "Warning", "reason": "NodeNotReady", "count": 1,
            "lastTimestamp": "2026-01-01T11:59:00Z", "message": "Node n1 status is now: NodeNotReady",
            "involvedObject": {"kind": "Node", "name": "n1", "uid": "n1"}}))
        .unwrap();
        let mut g = BTreeMap::new();
        add(&mut g, &e, now());
        assert_eq!(g.keys().next().unwrap().0, "node/n1");
    }

    #[test]
    fn warnings_about_pods_that_are_gone_or_replaced_are_left_out() {
        let mut e = event("Unhealthy", 3, "2026-01-01T11:55:00Z");
        e.involved_object.uid = Some("old-uid".into());
        let live = |uid: &str| -> LivePods {
            Some(
                [(
                    ("paragon".to_string(), "hermes-1".to_string()),
                    uid.to_string(),
                )]
                .into(),
            )
        };
        assert!(!about_a_gone_pod(&e, &live("old-uid")));
        assert!(
            about_a_gone_pod(&e, &live("new-uid")),
            "replaced by a pod of the same name"
        );
        assert!(about_a_gone_pod(&e, &Some(BTreeMap::new())), "gone");
        assert!(
            !about_a_gone_pod(&e, &None),
            "pods could not be listed: the event counts"
        );
    }
}
