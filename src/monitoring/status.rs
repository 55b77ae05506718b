//! Which of our generated rules an installation's Prometheus has loaded and which are firing:
//! its `/api/v1/rules` matched against `rules::rules` by group name, alert name and severity,
//! and its `/api/v1/alerts` by alert name and severity. Prometheus is asked by the route the
//! health report takes to it (`Routes::get_service`: the bastion, else the API route), each
//! request under a deadline. Knows nothing of clap or of how the result is printed.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::rules::{GROUP, RuleFile};
use crate::config::Service;
use crate::health::route::Routes;

/// What Prometheus holds of our rules.
#[derive(Debug, Serialize)]
pub struct Status {
    /// The Prometheus asked (HOST:PORT) and by which route.
    pub prometheus: String,
    pub route: String,
    pub loaded: usize,
    pub missing: usize,
    pub firing: usize,
    pub rules: Vec<RuleStatus>,
}

/// One generated rule.
#[derive(Debug, Serialize)]
pub struct RuleStatus {
    pub alert: String,
    pub severity: String,
    /// In Prometheus' group `paragon-capacity`.
    pub loaded: bool,
    /// Prometheus' own word on the rule (`ok`, `err`, `unknown`) with its last error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The alerts of this rule Prometheus reports firing: each one's subject (the labels
    /// beyond the rule's own).
    pub firing: Vec<String>,
    /// How many are pending (true, not yet held for the rule's `for`).
    pub pending: usize,
}

impl Status {
    /// Every generated rule is loaded.
    pub fn complete(&self) -> bool {
        self.missing == 0
    }
}

/// Why there is no status.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("Prometheus {target} unreachable: {reason}; {route}")]
    Unreachable {
        target: String,
        reason: String,
        route: String,
    },
    #[error("Prometheus {target} answered {path} with {reason}; {route}")]
    Answered {
        target: String,
        path: &'static str,
        reason: String,
        route: String,
    },
}

/// Asks the Prometheus `svc` for its rules and alerts and matches them against `expected`.
pub async fn status(
    routes: &Routes,
    svc: &Service,
    expected: &RuleFile,
    timeout: Duration,
) -> Result<Status, StatusError> {
    let (rules, route) = ask(routes, svc, "/api/v1/rules?type=alert", timeout).await?;
    let (alerts, _) = ask(routes, svc, "/api/v1/alerts", timeout).await?;
    Ok(Status {
        prometheus: crate::dial::target(&svc.host, svc.port),
        route,
        ..compare(expected, &rules, &alerts)
    })
}

/// The `data` of Prometheus' answer to `path`, and the route that carried it.
async fn ask(
    routes: &Routes,
    svc: &Service,
    path: &'static str,
    timeout: Duration,
) -> Result<(Value, String), StatusError> {
    let target = crate::dial::target(&svc.host, svc.port);
    let Ok((answer, route)) = tokio::time::timeout(timeout, routes.get_service(svc, path)).await
    else {
        return Err(StatusError::Unreachable {
            target,
            reason: format!("no answer within {}s", timeout.as_secs()),
            route: routes.describe(match routes.via(svc.via) {
                crate::config::Via::Api => crate::health::route::Route::Api,
                _ => crate::health::route::Route::Bastion,
            }),
        });
    };
    let route = routes.describe(route);
    let resp = answer.map_err(|e| StatusError::Unreachable {
        target: target.clone(),
        reason: e.to_string(),
        route: route.clone(),
    })?;
    let answered = |reason: String| StatusError::Answered {
        target: target.clone(),
        path: path.split('?').next().unwrap_or(path),
        reason,
        route: route.clone(),
    };
    let json: Value = serde_json::from_slice(&resp.body)
        .map_err(|_| answered(format!("HTTP {} and no Prometheus API answer", resp.status)))?;
    if json.get("status").and_then(Value::as_str) != Some("success") {
        let error = json
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no error given");
        return Err(answered(format!(
            "HTTP {}: {}",
            resp.status,
            crate::health::one_line(error, 200)
        )));
    }
    let data = json.get("data").cloned().unwrap_or(Value::Null);
    Ok((data, route))
}

/// Our rules against the `data` of `/api/v1/rules` and of `/api/v1/alerts`.
fn compare(expected: &RuleFile, rules: &Value, alerts: &Value) -> Status {
    let list = |v: Option<&Value>| v.and_then(Value::as_array).cloned().unwrap_or_default();
    let ours: Vec<Value> = list(rules.get("groups"))
        .into_iter()
        .filter(|g| g.get("name").and_then(Value::as_str) == Some(GROUP))
        .flat_map(|g| list(g.get("rules")))
        .collect();
    let alerts = list(alerts.get("alerts"));
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let mut out = Vec::new();
    for rule in expected.groups.iter().flat_map(|g| &g.rules) {
        let severity = rule.labels.get("severity").cloned().unwrap_or_default();
        let same = |name: Option<&Value>, labels: Option<&Value>| {
            name.and_then(Value::as_str) == Some(rule.alert.as_str())
                && labels
                    .and_then(|l| l.get("severity"))
                    .and_then(Value::as_str)
                    == Some(severity.as_str())
        };
        let found = ours.iter().find(|r| same(r.get("name"), r.get("labels")));
        let mut firing = Vec::new();
        let mut pending = 0;
        for a in alerts.iter().filter(|a| {
            same(
                a.get("labels").and_then(|l| l.get("alertname")),
                a.get("labels"),
            )
        }) {
            match a.get("state").and_then(Value::as_str) {
                Some("firing") => firing.push(subject(a, &rule.labels)),
                Some("pending") => pending += 1,
                _ => {}
            }
        }
        firing.sort();
        out.push(RuleStatus {
            alert: rule.alert.clone(),
            severity,
            loaded: found.is_some(),
            health: found.and_then(|r| text(r, "health")),
            last_error: found
                .and_then(|r| text(r, "lastError"))
                .filter(|e| !e.is_empty()),
            firing,
            pending,
        });
    }
    let loaded = out.iter().filter(|r| r.loaded).count();
    Status {
        prometheus: String::new(),
        route: String::new(),
        loaded,
        missing: out.len() - loaded,
        firing: out.iter().map(|r| r.firing.len()).sum(),
        rules: out,
    }
}

/// An alert's subject: its labels beyond the alert name and the rule's own, as `k=v`.
fn subject(alert: &Value, own: &std::collections::BTreeMap<String, String>) -> String {
    let Some(labels) = alert.get("labels").and_then(Value::as_object) else {
        return String::new();
    };
    labels
        .iter()
        .filter(|(k, _)| *k != "alertname" && !own.contains_key(*k))
        .filter_map(|(k, v)| Some(format!("{k}={}", v.as_str()?)))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Thresholds;
    use serde_json::json;

    #[test]
    fn rules_match_by_group_name_and_severity_and_alerts_by_name_and_severity() {
        let expected = super::super::rules::rules(&Thresholds::default(), "5m");
        let total = expected.groups[0].rules.len();
        let rules = json!({"groups": [
            {"name": "someone-else", "rules": [
                {"name": "ParagonRestarts", "labels": {"severity": "warning"}, "health": "ok"}]},
            {"name": GROUP, "rules": [
                {"name": "ParagonMemory", "labels": {"severity": "critical"}, "health": "err",
                 "lastError": "bad data"},
                {"name": "ParagonMemory", "labels": {"severity": "info"}, "health": "ok"}]}]});
        let alerts = json!({"alerts": [
            {"labels": {"alertname": "ParagonMemory", "severity": "critical", "signal": "memory",
                        "container": "hermes", "pod": "hermes-1"}, "state": "firing"},
            {"labels": {"alertname": "ParagonMemory", "severity": "warning"}, "state": "pending"}]});
        let s = compare(&expected, &rules, &alerts);
        assert_eq!((s.loaded, s.missing, s.firing), (1, total - 1, 1));
        let critical = s
            .rules
            .iter()
            .find(|r| r.alert == "ParagonMemory" && r.severity == "critical")
            .unwrap();
        assert!(critical.loaded);
        assert_eq!(critical.last_error.as_deref(), Some("bad data"));
        assert_eq!(critical.firing, ["container=hermes,pod=hermes-1"]);
        let warning = s
            .rules
            .iter()
            .find(|r| r.alert == "ParagonMemory" && r.severity == "warning")
            .unwrap();
        assert!(!warning.loaded);
        assert_eq!((warning.firing.len(), warning.pending), (0, 1));
        assert!(!s.complete());
    }
}
