//! Monitoring: Grafana `/api/health`, Prometheus firing alerts (`/api/v1/alerts`), Kibana
//! `/api/status`, OpenObserve `/healthz`, each reached by the route the forwards take
//! (`route`): dialed from the bastion first, then through the API server's `pods/portforward`
//! when the bastion cannot connect (a VM bastion outside the cluster network), or as `--via`
//! or the service's `via` say. A target the profile configures is dialed as configured. A
//! built-in default (a `*.svc.cluster.local` name, which resolves only inside the cluster)
//! that the bastion cannot reach is looked up as a Service in the installation's namespace,
//! for its real port, and reached through the API. Each finding says where its target came
//! from and which route it took. A logging service (Kibana or OpenObserve) that is not there
//! at all is a warning, and fine when the other answers (the report settles that): an
//! installation runs one or the other.

use k8s_openapi::api::core::v1::Service as KubeService;
use kube::api::Api;
use serde_json::Value;

use super::http::{self, HttpError};
use super::route::{Bastion, Route, Routes, transport};
use super::{Area, Check, CheckResult, Finding, one_line};
use crate::config::{Probe, Service};
use crate::dial::DialError;
use crate::kube::NAMESPACE;

/// Where a probe's target came from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    /// The profile names HOST:PORT.
    Configured,
    /// A Service found through the API, with its port.
    Discovered { port: u16 },
    /// The built-in in-cluster name (no Service found, or no API to ask).
    Default,
}

impl Origin {
    fn describe(&self, svc: &Service) -> String {
        match self {
            Origin::Configured => "target configured".into(),
            Origin::Discovered { port } => {
                format!("target discovered: service {NAMESPACE}/{}:{port}", svc.name)
            }
            Origin::Default => "target the built-in default".into(),
        }
    }
}

/// How the finding of a logging service that is not there begins: the report turns it from a
/// warning to ok when the other logging service answers.
pub(super) const NOT_DEPLOYED: &str = "not deployed";

/// Alerts that fire by design (kube-prometheus' dead man's switch and inhibitor).
const ALWAYS_FIRING: &[&str] = &["Watchdog", "InfoInhibitor"];

/// The check for a service whose built-in row has a probe (`config::builtin_probe`). `kube`,
/// when there is an API, is asked for the Service behind a built-in default target.
pub fn check_for(routes: Routes, kube: Option<kube::Client>, svc: &Service) -> Option<Check> {
    let kind = crate::config::builtin_probe(&svc.name)?;
    let svc = svc.clone();
    let is_default = crate::config::builtin_services()
        .iter()
        .any(|b| b.name == svc.name && b.host == svc.host && b.port == svc.port);
    let subject = crate::dial::target(&svc.host, svc.port);
    let name = svc.name.clone();
    let kube = kube.filter(|_| is_default);
    Some(Check::new(
        &name,
        Area::Monitoring,
        subject.clone(),
        probe(routes, kube, svc, kind, subject, is_default),
    ))
}

/// What a probe got by its route, and what the finding says about the way there.
struct Probed {
    answer: Result<http::Response, HttpError>,
    route: Route,
    origin: Origin,
    /// Why the bastion could not connect, when `auto` then took the API.
    bastion_failed: Option<DialError>,
}

async fn probe(
    routes: Routes,
    kube: Option<kube::Client>,
    svc: Service,
    kind: Probe,
    subject: String,
    is_default: bool,
) -> CheckResult {
    let origin = if is_default {
        Origin::Default
    } else {
        Origin::Configured
    };
    let path = kind.path();
    let bastion_failed = match routes.ask_bastion(&svc, path).await {
        Bastion::Answered(answer) => {
            let probed = Probed {
                answer,
                route: Route::Bastion,
                origin,
                bastion_failed: None,
            };
            return Ok(judge(kind, &svc, &subject, probed, &routes));
        }
        Bastion::TakeApi(why) => why,
    };
    // The API route. A built-in default names the Service by the cluster's DNS: the API says
    // whether it exists and on which port.
    let mut port = svc.port;
    let mut origin = origin;
    if let Some(client) = &kube {
        match discover(client, &svc.name).await {
            Ok(Some(p)) => {
                port = p;
                origin = Origin::Discovered { port: p };
            }
            Ok(None) => {
                let none = format!("no service {NAMESPACE}/{}", svc.name);
                let how = routes.describe(Route::Api);
                let mut f = if kind.optional() {
                    Finding::warn(
                        subject,
                        format!(
                            "{NOT_DEPLOYED}: {none} (an installation runs Kibana or OpenObserve); {how}"
                        ),
                    )
                } else {
                    Finding::fail(subject, format!("{none}; {how}"))
                };
                f.route = Some(Route::Api);
                return Ok(vec![f]);
            }
            Err(e) => tracing::debug!("cannot look up service {}: {e}", svc.name),
        }
    }
    let answer = routes
        .get(Route::Api, &svc.host, port, path, transport(&svc))
        .await;
    let probed = Probed {
        answer,
        route: Route::Api,
        origin,
        bastion_failed,
    };
    Ok(judge(kind, &svc, &subject, probed, &routes))
}

/// The findings for an answer (or its absence), each ending with where the target came from
/// and the route taken (`; target ...`: the table leaves it out of a healthy row).
fn judge(kind: Probe, svc: &Service, subject: &str, p: Probed, routes: &Routes) -> Vec<Finding> {
    let mut how = format!("{}; {}", p.origin.describe(svc), routes.describe(p.route));
    if let Some(e) = &p.bastion_failed {
        how.push_str(&format!(", the bastion could not connect: {e}"));
    }
    let mut found = match p.answer {
        Ok(resp) => {
            let json: Option<Value> = serde_json::from_slice(&resp.body).ok();
            let mut found = match kind {
                Probe::Grafana => vec![grafana(subject, resp.status, json.as_ref())],
                Probe::Prometheus => prometheus(subject, resp.status, json.as_ref()),
                Probe::Kibana => vec![kibana(subject, resp.status, json.as_ref())],
                Probe::OpenObserve => vec![openobserve(subject, resp.status, json.as_ref())],
            };
            for f in &mut found {
                f.message = format!("{}; {how}", f.message);
            }
            found
        }
        Err(HttpError::Dial(e)) if kind.optional() && not_deployed(&e) => vec![Finding::warn(
            subject,
            format!(
                "{NOT_DEPLOYED}: nothing answers ({e}) (an installation runs Kibana or OpenObserve); {how}"
            ),
        )],
        Err(e) => vec![Finding::fail(subject, format!("unreachable: {e}; {how}"))],
    };
    for f in &mut found {
        f.route = Some(p.route);
    }
    found
}

/// The port of Service `name` in the installation's namespace, `None` if there is no such
/// Service. The port named like the service or `http`/`web` wins, else the first.
async fn discover(client: &kube::Client, name: &str) -> Result<Option<u16>, kube::Error> {
    let api: Api<KubeService> = Api::namespaced(client.clone(), NAMESPACE);
    Ok(api.get_opt(name).await?.and_then(|s| service_port(&s)))
}

fn service_port(s: &KubeService) -> Option<u16> {
    let ports = s.spec.as_ref()?.ports.as_ref()?;
    let name = s.metadata.name.as_deref().unwrap_or_default();
    ports
        .iter()
        .find(|p| matches!(p.name.as_deref(), Some(n) if n == name || n == "http" || n == "web"))
        .or(ports.first())
        .and_then(|p| u16::try_from(p.port).ok())
}

/// Refused or unresolvable: nothing listens there, as opposed to something broken.
fn not_deployed(e: &DialError) -> bool {
    match e {
        DialError::Io { cause, .. } => {
            cause.kind() == std::io::ErrorKind::ConnectionRefused
                || cause.to_string().contains("failed to lookup address")
                || cause.to_string().contains("Name or service not known")
        }
        DialError::Rejected { .. } | DialError::Unresolved { .. } => true,
        _ => false,
    }
}

fn grafana(subject: &str, status: u16, json: Option<&Value>) -> Finding {
    let db = json.and_then(|j| j.get("database")).and_then(Value::as_str);
    let version = json.and_then(|j| j.get("version")).and_then(Value::as_str);
    match (status, db) {
        (200, Some("ok")) => Finding::ok(
            subject,
            format!(
                "healthy{}",
                version
                    .map(|v| format!(", Grafana {v}"))
                    .unwrap_or_default()
            ),
        ),
        (200, Some(other)) => Finding::fail(subject, format!("database is {other}")),
        (200, None) => Finding::warn(subject, "answered /api/health without a database status"),
        (s, _) => Finding::fail(subject, format!("/api/health answered HTTP {s}")),
    }
}

fn prometheus(subject: &str, status: u16, json: Option<&Value>) -> Vec<Finding> {
    if status != 200 {
        return vec![Finding::fail(
            subject,
            format!("/api/v1/alerts answered HTTP {status}"),
        )];
    }
    let Some(alerts) = json
        .and_then(|j| j.pointer("/data/alerts"))
        .and_then(Value::as_array)
    else {
        return vec![Finding::fail(
            subject,
            "/api/v1/alerts answered without data.alerts",
        )];
    };
    let mut out = Vec::new();
    for a in alerts {
        if a.get("state").and_then(Value::as_str) != Some("firing") {
            continue;
        }
        let labels = a.get("labels");
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        let name = label("alertname").unwrap_or("unnamed");
        if ALWAYS_FIRING.contains(&name) {
            continue;
        }
        let summary = a
            .pointer("/annotations/summary")
            .or_else(|| a.pointer("/annotations/description"))
            .or_else(|| a.pointer("/annotations/message"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let on = ["namespace", "pod", "instance", "service"]
            .iter()
            .find_map(|k| label(k).map(|v| format!(" on {v}")))
            .unwrap_or_default();
        let severity = label("severity").unwrap_or("none");
        let msg = format!(
            "alert {name} firing{on} (severity {severity}): {}",
            one_line(summary, 120)
        );
        out.push(if severity == "critical" {
            Finding::fail(subject, msg)
        } else {
            Finding::warn(subject, msg)
        });
    }
    if out.is_empty() {
        out.push(Finding::ok(subject, "no alerts firing"));
    }
    out
}

/// OpenObserve's `/healthz` answers 200 `{"status":"ok"}`.
fn openobserve(subject: &str, status: u16, json: Option<&Value>) -> Finding {
    match (
        status,
        json.and_then(|j| j.get("status")).and_then(Value::as_str),
    ) {
        (200, Some("ok") | None) => Finding::ok(subject, "healthy (/healthz answered 200)"),
        (200, Some(other)) => Finding::warn(subject, format!("/healthz status {other}")),
        (s, _) => Finding::fail(subject, format!("/healthz answered HTTP {s}")),
    }
}

fn kibana(subject: &str, status: u16, json: Option<&Value>) -> Finding {
    // Kibana 8 reports status.overall.level; 7 reports status.overall.state.
    let overall = json.and_then(|j| j.pointer("/status/overall"));
    let level = overall
        .and_then(|o| o.get("level").or_else(|| o.get("state")))
        .and_then(Value::as_str);
    match (status, level) {
        (200, Some("available" | "green")) => Finding::ok(subject, "available"),
        (_, Some(l @ ("degraded" | "yellow"))) => Finding::warn(subject, format!("status {l}")),
        (_, Some(l)) => Finding::fail(subject, format!("status {l}")),
        (s, None) => Finding::fail(
            subject,
            format!("/api/status answered HTTP {s} without a status"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Severity;
    use serde_json::json;

    #[test]
    fn firing_alerts_become_findings_and_watchdog_is_ignored() {
        let j = json!({"status": "success", "data": {"alerts": [
            {"state": "firing", "labels": {"alertname": "Watchdog", "severity": "none"}},
            {"state": "pending", "labels": {"alertname": "Slow"}},
            {"state": "firing", "labels": {"alertname": "RedisDown", "severity": "critical", "instance": "redis:6379"},
             "annotations": {"summary": "Redis is down"}},
            {"state": "firing", "labels": {"alertname": "HighLatency", "severity": "warning"}}]}});
        let f = prometheus("prometheus", 200, Some(&j));
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].severity, Severity::Fail);
        assert_eq!(
            f[0].message,
            "alert RedisDown firing on redis:6379 (severity critical): Redis is down"
        );
        assert_eq!(f[1].severity, Severity::Warn);
        let quiet = json!({"status": "success", "data": {"alerts": []}});
        assert_eq!(prometheus("p", 200, Some(&quiet))[0].severity, Severity::Ok);
    }

    #[test]
    fn grafana_and_kibana_statuses() {
        assert_eq!(
            grafana(
                "g",
                200,
                Some(&json!({"database": "ok", "version": "11.1.0"}))
            )
            .message,
            "healthy, Grafana 11.1.0"
        );
        assert_eq!(grafana("g", 503, None).severity, Severity::Fail);
        assert_eq!(
            kibana(
                "k",
                200,
                Some(&json!({"status": {"overall": {"level": "available"}}}))
            )
            .severity,
            Severity::Ok
        );
        assert_eq!(
            kibana(
                "k",
                200,
                Some(&json!({"status": {"overall": {"state": "red"}}}))
            )
            .severity,
            Severity::Fail
        );
    }

    #[test]
    fn openobserve_health_and_the_port_of_a_discovered_service() {
        assert_eq!(
            openobserve("o", 200, Some(&json!({"status": "ok"}))).severity,
            Severity::Ok
        );
        assert_eq!(openobserve("o", 503, None).severity, Severity::Fail);
        // The chart's Service shape: the port named like the service wins.
        let s: KubeService = serde_json::from_value(json!({
            "metadata": {"name": "grafana", "namespace": "paragon"},
            "spec": {"ports": [{"name": "metrics", "port": 9100}, {"name": "grafana", "port": 4500, "targetPort": 3000}]}}))
        .unwrap();
        assert_eq!(service_port(&s), Some(4500));
        let s: KubeService = serde_json::from_value(json!({
            "metadata": {"name": "openobserve"}, "spec": {"ports": [{"port": 5080}]}}))
        .unwrap();
        assert_eq!(service_port(&s), Some(5080));
    }

    #[test]
    fn a_finding_says_where_its_target_came_from() {
        let svc = crate::config::builtin_services()
            .into_iter()
            .find(|s| s.name == "grafana")
            .unwrap();
        assert_eq!(
            Origin::Discovered { port: 4500 }.describe(&svc),
            "target discovered: service paragon/grafana:4500"
        );
        assert_eq!(
            Origin::Default.describe(&svc),
            "target the built-in default"
        );
        assert_eq!(Origin::Configured.describe(&svc), "target configured");
    }
}
