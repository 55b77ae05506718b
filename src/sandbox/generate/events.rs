//! Core `v1` Events as the components that record them write them.

use k8s_openapi::Resource;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};

use super::{Gen, MINUTE, PARAGON, fault_annotations, has, s, time};
use crate::sandbox::store::{Cell, Res};
use crate::sandbox::{Fault, SandboxError};

/// The object an event is about.
pub(super) struct Involved {
    pub kind: &'static str,
    pub api_version: &'static str,
    pub namespace: &'static str,
    pub name: String,
    pub uid: String,
}

/// One event: what happened to `about`, who saw it, when first and last, how often.
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
        let mut meta = self.meta(Some(about.namespace), &name, None, first);
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
            involved_object: ObjectReference {
                api_version: s(about.api_version),
                kind: s(about.kind),
                name: s(about.name.clone()),
                namespace: s(about.namespace),
                uid: s(about.uid.clone()),
                ..Default::default()
            },
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
        self.push(Res::Events, ev, fields, cells)
    }

    pub(super) fn warning_events(&mut self) -> Result<(), SandboxError> {
        if !has(self.opts, Fault::WarningEvents) {
            return Ok(());
        }
        let f = Some(Fault::WarningEvents);
        if let Some((name, uid, ip)) = self.first_pods.get("hermes").cloned() {
            let about = Involved {
                kind: Pod::KIND,
                api_version: Pod::API_VERSION,
                namespace: PARAGON,
                name,
                uid,
            };
            self.event(EventPlan { about: &about, reason: "Unhealthy", message: &format!("Readiness probe failed: Get \"http://{ip}:1702/healthz\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"), type_: "Warning", component: "kubelet", first: self.now - 9 * MINUTE, last: self.now - 7 * MINUTE, count: 3, fault: f })?;
        }
        if let Some((name, uid, _)) = self.first_pods.get("zeus").cloned() {
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
}
