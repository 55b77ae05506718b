//! Monitoring: Grafana `/api/health`, Prometheus firing alerts (`/api/v1/alerts`), Kibana
//! `/api/status`. Targets come from the profile's services (built in, overridable). Kibana
//! that is not there at all is a warning: many installations run OpenObserve instead.

use std::sync::Arc;

use serde_json::Value;

use super::http::{self, HttpError};
use super::{Area, Check, CheckError, CheckResult, Finding, one_line};
use crate::config::{Scheme, Service};
use crate::dial::{DialError, Dialer};

/// Alerts that fire by design (kube-prometheus' dead man's switch and inhibitor).
const ALWAYS_FIRING: &[&str] = &["Watchdog", "InfoInhibitor"];

/// The check for a service this module knows how to probe.
pub fn check_for(dialer: Arc<dyn Dialer>, svc: &Service) -> Option<Check> {
    let kind = match svc.name.as_str() {
        "grafana" => Kind::Grafana,
        "prometheus" => Kind::Prometheus,
        "kibana" => Kind::Kibana,
        _ => return None,
    };
    let svc = svc.clone();
    let subject = crate::dial::target(&svc.host, svc.port);
    let name = svc.name.clone();
    Some(Check::new(
        &name,
        Area::Monitoring,
        subject.clone(),
        probe(dialer, svc, kind, subject),
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Grafana,
    Prometheus,
    Kibana,
}

async fn probe(dialer: Arc<dyn Dialer>, svc: Service, kind: Kind, subject: String) -> CheckResult {
    if svc.scheme == Scheme::Https {
        return Err(CheckError::Failed(
            "https services are not probed yet; set scheme = \"http\" for an in-cluster target"
                .into(),
        ));
    }
    let path = match kind {
        Kind::Grafana => "/api/health",
        Kind::Prometheus => "/api/v1/alerts",
        Kind::Kibana => "/api/status",
    };
    let resp = match http::get(dialer.as_ref(), &svc.host, svc.port, path).await {
        Ok(r) => r,
        Err(HttpError::Dial(e)) if kind == Kind::Kibana && not_deployed(&e) => {
            return Ok(vec![Finding::warn(
                subject,
                format!(
                    "not reachable ({e}): not deployed? installations with OpenObserve have no Kibana"
                ),
            )]);
        }
        Err(e) => return Ok(vec![Finding::fail(subject, format!("unreachable: {e}"))]),
    };
    let json: Option<Value> = serde_json::from_slice(&resp.body).ok();
    Ok(match kind {
        Kind::Grafana => vec![grafana(&subject, resp.status, json.as_ref())],
        Kind::Prometheus => prometheus(&subject, resp.status, json.as_ref()),
        Kind::Kibana => vec![kibana(&subject, resp.status, json.as_ref())],
    })
}

/// Refused or unresolvable: nothing listens there, as opposed to something broken.
fn not_deployed(e: &DialError) -> bool {
    match e {
        DialError::Io { source, .. } => {
            source.kind() == std::io::ErrorKind::ConnectionRefused
                || source.to_string().contains("failed to lookup address")
                || source.to_string().contains("Name or service not known")
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
}
