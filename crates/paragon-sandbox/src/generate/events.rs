//! Events as the components that record them write them, served in both shapes the API
//! server has: core `v1` Events and `events.k8s.io/v1` Events, one converted from the other
//! as the API server converts them (kubernetes `pkg/apis/events/v1/conversion.go`: `note` is
//! `message`, `regarding` is `involvedObject`, `deprecated*` are `count`, `source`,
//! `firstTimestamp` and `lastTimestamp`). Controllers on the legacy recorder (kubelet,
//! controller-manager) write count and timestamps; those on the new recorder (the
//! scheduler) write `eventTime`, `series`, `reportingController` and `action` only.

use k8s_openapi::Resource;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::api::events::v1::{Event as EventV1, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

use super::{DAY, FirstPod, Gen, MINUTE, PARAGON, fault_annotations, has, s, time};
use crate::store::{Cell, Res};
use crate::{Fault, SandboxError};

/// The object an event is about; `namespace` is empty for a cluster-scoped object (a node),
/// whose events live in `default`.
pub(super) struct Involved {
    pub kind: &'static str,
    pub api_version: &'static str,
    pub namespace: &'static str,
    pub name: String,
    pub uid: String,
}

/// One event from the legacy recorder: what happened to `about`, who saw it, when first and
/// last, how often.
pub(super) struct EventPlan<'a> {
    pub about: &'a Involved,
    pub reason: &'a str,
    pub message: &'a str,
    pub type_: &'a str,
    pub component: &'a str,
    pub first: i64,
    pub last: i64,
    pub count: i32,
    pub fault: Option<Fault>,
}

/// One event from the `events.k8s.io` recorder: seen at `time`, and, when repeated, a
/// `series` of (count, last observed).
pub(super) struct NewEventPlan<'a> {
    pub about: &'a Involved,
    pub reason: &'a str,
    pub note: &'a str,
    pub type_: &'a str,
    pub controller: &'a str,
    pub action: &'a str,
    pub time: i64,
    pub series: Option<(i32, i64)>,
    pub fault: Option<Fault>,
}

fn micro(unix: i64) -> Option<MicroTime> {
    jiff::Timestamp::from_second(unix).ok().map(MicroTime)
}

fn reference(about: &Involved) -> ObjectReference {
    ObjectReference {
        api_version: s(about.api_version),
        kind: s(about.kind),
        name: s(about.name.clone()),
        namespace: (!about.namespace.is_empty()).then(|| about.namespace.to_string()),
        uid: s(about.uid.clone()),
        ..Default::default()
    }
}

/// The namespace an event about `about` is stored in.
fn home(about: &Involved) -> &'static str {
    if about.namespace.is_empty() {
        "default"
    } else {
        about.namespace
    }
}

impl Gen<'_> {
    pub(super) fn event(&mut self, p: EventPlan<'_>) -> Result<(), SandboxError> {
        let EventPlan {
            about,
            reason,
            message,
            type_,
            component,
            first,
            last,
            count,
            fault,
        } = p;
        let name = format!("{}.{}", about.name, self.rng.hex(16));
        let mut meta = self.meta(Some(home(about)), &name, None, first);
        meta.annotations = fault_annotations(fault);
        let host = (component == "kubelet")
            .then(|| self.nodes.first().map(|n| n.name.clone()))
            .flatten();
        let source_text = match &host {
            Some(h) => format!("{component}, {h}"),
            None => component.to_string(),
        };
        let fields = vec![
            about.kind.to_string(),
            about.namespace.to_string(),
            about.name.clone(),
            about.uid.clone(),
            about.api_version.to_string(),
            reason.to_string(),
            component.to_string(),
            component.to_string(),
            type_.to_string(),
        ];
        let cells = vec![
            Cell::AgeOr(Some(last), "<unknown>"),
            Cell::text(type_),
            Cell::text(reason),
            Cell::text(format!("{}/{}", about.kind.to_lowercase(), about.name)),
            Cell::text(message),
            Cell::text(source_text),
            Cell::AgeOr(Some(first), "<unknown>"),
            Cell::text(count.to_string()),
            Cell::text(name.as_str()),
        ];
        let ev = Event {
            metadata: meta,
            involved_object: reference(about),
            reason: s(reason),
            message: s(message),
            type_: s(type_),
            source: Some(EventSource {
                component: s(component),
                host,
            }),
            first_timestamp: time(first),
            last_timestamp: time(last),
            count: Some(count),
            reporting_component: s(component),
            reporting_instance: s(""),
            ..Default::default()
        };
        let v1 = EventV1 {
            metadata: ev.metadata.clone(),
            regarding: Some(ev.involved_object.clone()),
            note: ev.message.clone(),
            reason: ev.reason.clone(),
            type_: ev.type_.clone(),
            deprecated_source: ev.source.clone(),
            deprecated_first_timestamp: ev.first_timestamp.clone(),
            deprecated_last_timestamp: ev.last_timestamp.clone(),
            deprecated_count: ev.count,
            reporting_controller: ev.reporting_component.clone(),
            reporting_instance: ev.reporting_instance.clone(),
            ..Default::default()
        };
        self.push(Res::Events, ev, fields, cells.clone())?;
        self.push(Res::EventsV1, v1, vec![], cells)
    }

    /// An event of the new recorder, and the core Event the API server converts it to:
    /// no `count`, `firstTimestamp` or `lastTimestamp`, and `eventTime` and `series` kept.
    pub(super) fn new_event(&mut self, p: NewEventPlan<'_>) -> Result<(), SandboxError> {
        let about = p.about;
        let name = format!("{}.{}", about.name, self.rng.hex(16));
        let mut meta = self.meta(Some(home(about)), &name, None, p.time);
        meta.annotations = fault_annotations(p.fault);
        let instance = format!("{}-{}", p.controller, self.rng.suffix(10));
        let (count, last) = p.series.unwrap_or((1, p.time));
        let fields = vec![
            about.kind.to_string(),
            about.namespace.to_string(),
            about.name.clone(),
            about.uid.clone(),
            about.api_version.to_string(),
            p.reason.to_string(),
            p.controller.to_string(),
            String::new(),
            p.type_.to_string(),
        ];
        let cells = vec![
            Cell::AgeOr(Some(last), "<unknown>"),
            Cell::text(p.type_),
            Cell::text(p.reason),
            Cell::text(format!("{}/{}", about.kind.to_lowercase(), about.name)),
            Cell::text(p.note),
            Cell::text(p.controller),
            Cell::AgeOr(Some(p.time), "<unknown>"),
            Cell::text(count.to_string()),
            Cell::text(name.as_str()),
        ];
        let v1 = EventV1 {
            metadata: meta,
            event_time: micro(p.time),
            series: p
                .series
                .and_then(|(count, last)| micro(last).map(|l| (count, l)))
                .map(|(count, last_observed_time)| EventSeries {
                    count,
                    last_observed_time,
                }),
            reporting_controller: s(p.controller),
            reporting_instance: s(instance),
            action: s(p.action),
            reason: s(p.reason),
            regarding: Some(reference(about)),
            note: s(p.note),
            type_: s(p.type_),
            ..Default::default()
        };
        let core = Event {
            metadata: v1.metadata.clone(),
            involved_object: reference(about),
            reason: v1.reason.clone(),
            message: v1.note.clone(),
            type_: v1.type_.clone(),
            event_time: v1.event_time.clone(),
            series: v1
                .series
                .as_ref()
                .map(|se| k8s_openapi::api::core::v1::EventSeries {
                    count: Some(se.count),
                    last_observed_time: Some(se.last_observed_time.clone()),
                }),
            action: v1.action.clone(),
            reporting_component: v1.reporting_controller.clone(),
            reporting_instance: v1.reporting_instance.clone(),
            source: Some(EventSource::default()),
            ..Default::default()
        };
        self.push(Res::Events, core, fields, cells.clone())?;
        self.push(Res::EventsV1, v1, vec![], cells)
    }

    pub(super) fn warning_events(&mut self) -> Result<(), SandboxError> {
        if !has(self.opts, Fault::WarningEvents) {
            return Ok(());
        }
        let f = Some(Fault::WarningEvents);
        if let Some(FirstPod { name, uid, ip, .. }) = self.first_pods.get("hermes").cloned() {
            let about = Involved {
                kind: Pod::KIND,
                api_version: Pod::API_VERSION,
                namespace: PARAGON,
                name,
                uid,
            };
            self.event(EventPlan { about: &about, reason: "Unhealthy", message: &format!("Readiness probe failed: Get \"http://{ip}:1702/healthz\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"), type_: "Warning", component: "kubelet", first: self.now - 9 * MINUTE, last: self.now - 7 * MINUTE, count: 3, fault: f })?;
        }
        if let Some(FirstPod { name, uid, .. }) = self.first_pods.get("zeus").cloned() {
            let about = Involved {
                kind: Pod::KIND,
                api_version: Pod::API_VERSION,
                namespace: PARAGON,
                name,
                uid,
            };
            self.event(EventPlan { about: &about, reason: "DNSConfigForming", message: "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: paragon.svc.cluster.local svc.cluster.local cluster.local ec2.internal", type_: "Warning", component: "kubelet", first: self.now - 40 * MINUTE, last: self.now - 3 * MINUTE, count: 12, fault: f })?;
        }
        Ok(())
    }

    /// The node controller registers every node when the controller-manager starts (here,
    /// after a control-plane upgrade two days ago). Node events live in `default`, their
    /// `involvedObject` has no namespace and, as the node controller writes it, the node's
    /// name for a uid.
    pub(super) fn node_events(&mut self) -> Result<(), SandboxError> {
        let when = self.now - 2 * DAY;
        for n in self.nodes.clone() {
            let about = Involved {
                kind: "Node",
                api_version: "v1",
                namespace: "",
                name: n.name.clone(),
                uid: n.name.clone(),
            };
            self.event(EventPlan {
                about: &about,
                reason: "RegisteredNode",
                message: &format!(
                    "Node {} event: Registered Node {} in Controller",
                    n.name, n.name
                ),
                type_: "Normal",
                component: "node-controller",
                first: when,
                last: when,
                count: 1,
                fault: None,
            })?;
        }
        Ok(())
    }

    /// Today's rollout restart replaced every Paragon pod; the old pods of some services
    /// failed their readiness probe while shutting down. The events outlive the pods they
    /// are about: Warnings about objects that no longer exist.
    pub(super) fn replaced_pod_events(&mut self) -> Result<(), SandboxError> {
        for service in ["hermes", "zeus", "connect"] {
            let (Some(hash), Some(port)) = (
                self.replaced.get(service).cloned(),
                super::tables::SERVICES
                    .iter()
                    .find(|(n, _)| *n == service)
                    .map(|(_, p)| *p),
            ) else {
                continue;
            };
            let name = format!("{service}-{hash}-{}", self.rng.suffix(5));
            let about = Involved {
                kind: Pod::KIND,
                api_version: Pod::API_VERSION,
                namespace: PARAGON,
                name,
                uid: self.rng.uid(),
            };
            let ip = self.pod_ip();
            let killed = self.restart + 40;
            self.event(EventPlan {
                about: &about,
                reason: "Killing",
                message: &format!("Stopping container {service}"),
                type_: "Normal",
                component: "kubelet",
                first: killed,
                last: killed,
                count: 1,
                fault: None,
            })?;
            self.event(EventPlan {
                about: &about,
                reason: "Unhealthy",
                message: &format!(
                    "Readiness probe failed: Get \"http://{ip}:{port}/healthz\": dial tcp {ip}:{port}: connect: connection refused"
                ),
                type_: "Warning",
                component: "kubelet",
                first: killed + 2,
                last: killed + 12,
                count: 2,
                fault: None,
            })?;
        }
        Ok(())
    }

    /// The scheduler's events (new-style: `eventTime`, `action`, no count): `Scheduled` for
    /// the first pods of some services, and, with the `pending` fault, `FailedScheduling`
    /// repeated as a `series` of 41.
    pub(super) fn scheduler_events(&mut self) -> Result<(), SandboxError> {
        for service in ["cerberus", "hermes", "zeus"] {
            let Some(p) = self.first_pods.get(service).cloned() else {
                continue;
            };
            let about = Involved {
                kind: Pod::KIND,
                api_version: Pod::API_VERSION,
                namespace: PARAGON,
                name: p.name.clone(),
                uid: p.uid,
            };
            self.new_event(NewEventPlan {
                about: &about,
                reason: "Scheduled",
                note: &format!("Successfully assigned paragon/{} to {}", p.name, p.node),
                type_: "Normal",
                controller: "default-scheduler",
                action: "Binding",
                time: p.created,
                series: None,
                fault: None,
            })?;
        }
        if let Some((name, uid)) = self.fault_pods.get(&Fault::Pending).cloned() {
            let n = self.nodes.len();
            let about = Involved {
                kind: Pod::KIND,
                api_version: Pod::API_VERSION,
                namespace: PARAGON,
                name,
                uid,
            };
            self.new_event(NewEventPlan {
                about: &about,
                reason: "FailedScheduling",
                note: &format!(
                    "0/{n} nodes are available: {n} Insufficient memory. preemption: 0/{n} nodes are available: {n} No preemption victims found for incoming pod."
                ),
                type_: "Warning",
                controller: "default-scheduler",
                action: "Scheduling",
                time: self.now - 25 * MINUTE,
                series: Some((41, self.now - 30)),
                fault: Some(Fault::Pending),
            })?;
        }
        Ok(())
    }
}
