//! Warning events of the last hour, grouped by reason and object.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ListParams};

use super::{CheckResult, Finding, Severity, one_line, subject};
use crate::kube::list::each_page;

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

/// One group: the events of one reason on one object.
#[derive(Debug, Default)]
struct Group {
    count: i32,
    message: String,
    last: Option<Timestamp>,
}

pub async fn check(client: kube::Client, now: Timestamp) -> CheckResult {
    let mut groups: BTreeMap<(String, String), Group> = BTreeMap::new();
    each_page(
        &Api::<Event>::all(client),
        ListParams::default().fields("type=Warning"),
        |page| {
            for e in &page {
                add(&mut groups, e, now);
            }
        },
    )
    .await?;
    let mut findings: Vec<Finding> = groups
        .into_iter()
        .map(|((subj, reason), g)| {
            let msg = format!("{}× {reason}: {}", g.count, one_line(&g.message, 120));
            Finding::new(severity(&reason, g.count), subj, msg)
        })
        .collect();
    if findings.is_empty() {
        findings.push(Finding::ok("events", "no warning events in the last hour"));
    }
    Ok(findings)
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
    if e.type_.as_deref() != Some("Warning") {
        return;
    }
    let Some(last) = last_seen(e) else { return };
    if now.duration_since(last) > WINDOW {
        return;
    }
    let o = &e.involved_object;
    let kind = o.kind.as_deref().unwrap_or("object").to_lowercase();
    let subj = subject(
        o.namespace.as_deref().or(e.metadata.namespace.as_deref()),
        &kind,
        o.name.as_deref().unwrap_or_default(),
    );
    let reason = e.reason.clone().unwrap_or_else(|| "Unknown".into());
    let g = groups.entry((subj, reason)).or_default();
    g.count += e.count.unwrap_or(1).max(1);
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
}
