//! Capacity (area `capacity`): each signal of `signals` is one PromQL instant query to the
//! profile's Prometheus (`/api/v1/query`, with Prometheus' own `timeout` set inside the
//! check's deadline), reached by the route the monitoring probes take: dialed from the bastion,
//! else through the API server's `pods/portforward`. Each series is judged against the
//! signal's levels; a finding names the service, queue or instance and its value against the
//! level it crossed, and the series within their levels become one finding naming the worst.
//! Without a Prometheus each signal is reported as not checked, saying why.

use std::time::Duration;

use serde_json::Value;

use super::metrics;
use super::route::Routes;
use super::signals::{self, Empty, SIGNALS, Series, Signal};
use super::{Area, Check, Finding, Severity, count};
use crate::config::thresholds::{Direction, Limit};
use crate::config::{Service, Thresholds};

/// The capacity check: the first signal's query against `prometheus`, when the profile has
/// one, then every other signal's at once. Without a Prometheus that answers, CPU and memory
/// come from the metrics API (`metrics`) when `kube` has one, and the other signals are one
/// finding naming them not checked and why (the monitoring check already says why
/// Prometheus is down); a signal whose own query fails is its own finding.
pub fn check(
    routes: &Routes,
    prometheus: Option<&Service>,
    kube: Option<kube::Client>,
    thresholds: &Thresholds,
    timeout: Duration,
) -> Check {
    let (routes, svc, thresholds) = (routes.clone(), prometheus.cloned(), thresholds.clone());
    Check::new("capacity", Area::Capacity, "prometheus", async move {
        let Some(svc) = svc else {
            let why = "no Prometheus to ask (a profile names one: the built-in prometheus service)";
            return Ok(without_prometheus(kube, &thresholds, why).await);
        };
        // One query first: when Prometheus cannot be reached, the others are not sent. Each
        // is a new connection through the bastion, and an sshd resolves a target's name with
        // its one thread, so twenty lookups of a name it cannot resolve stall every other
        // channel of the session (the report's other checks) while they last.
        let Some((first, rest)) = SIGNALS.split_first() else {
            return Ok(Vec::new());
        };
        let first = query(&routes, &svc, first.query, timeout).await;
        if let Err(Unanswered::Prometheus(why)) = &first {
            return Ok(without_prometheus(kube, &thresholds, why).await);
        }
        let rest = futures::future::join_all(
            rest.iter()
                .map(|signal| query(&routes, &svc, signal.query, timeout)),
        )
        .await;
        let asked = std::iter::once(first).chain(rest);
        let mut out = Vec::new();
        for (signal, answer) in SIGNALS.iter().zip(asked) {
            let found = match answer {
                Ok(series) => judge(signal, thresholds.get(signal.key), &series),
                Err(Unanswered::Prometheus(why) | Unanswered::Query(why)) => {
                    let mut f =
                        Finding::warn(signal.key, format!("{}: not checked: {why}", signal.key));
                    f.checked = false;
                    vec![f]
                }
            };
            out.extend(found);
        }
        Ok(out)
    })
}

/// The findings when no Prometheus answers (`why`): CPU and memory from the metrics API when
/// the cluster serves one, and one finding naming every signal not checked.
async fn without_prometheus(
    kube: Option<kube::Client>,
    thresholds: &Thresholds,
    why: &str,
) -> Vec<Finding> {
    let not_checked = |keys: Vec<&str>, why: String| {
        let mut f = Finding::warn(
            "capacity",
            format!("not checked ({}): {why}", keys.join(", ")),
        );
        f.checked = false;
        f
    };
    let all = SIGNALS.iter().map(|s| s.key);
    let Some(client) = kube else {
        return vec![not_checked(all.collect(), why.to_string())];
    };
    let usage = match metrics::usage(client).await {
        Ok(u) => u,
        Err(e) => return vec![not_checked(all.collect(), format!("{why}; {e}"))],
    };
    let mut out = Vec::new();
    for signal in SIGNALS.iter().filter(|s| metrics::KEYS.contains(&s.key)) {
        let series = usage.of(signal.key);
        let mut found = if !series.is_empty() {
            judge(signal, thresholds.get(signal.key), series)
        } else if signal.key == "cpu" && usage.unlimited_cpu > 0 {
            // Paragon's chart sets memory limits only: no CPU limit is nothing to judge by.
            vec![Finding::ok(
                signal.key,
                "cpu: no container in the installation has a CPU limit to measure against",
            )]
        } else {
            let mut f = Finding::warn(
                signal.key,
                format!(
                    "{}: not checked: the metrics API reported nothing for it",
                    signal.key
                ),
            );
            f.checked = false;
            vec![f]
        };
        for f in &mut found {
            f.message = format!("{}; from the metrics API (metrics.k8s.io)", f.message);
        }
        out.extend(found);
    }
    let others = all.filter(|k| !metrics::KEYS.contains(k)).collect();
    out.push(not_checked(
        others,
        format!("{why}; CPU and memory came from the metrics API"),
    ));
    out
}

/// Why a query has no answer.
#[derive(Debug, Clone)]
pub enum Unanswered {
    /// Prometheus could not be reached or does not speak its API there.
    Prometheus(String),
    /// Prometheus refused this query (a bad expression, its own timeout).
    Query(String),
}

/// Runs `promql` as an instant query: bastion first, then the API route as `via` allows.
/// Prometheus is told to give up a second before our own deadline.
pub async fn query(
    routes: &Routes,
    svc: &Service,
    promql: &str,
    timeout: Duration,
) -> Result<Vec<Series>, Unanswered> {
    let within = timeout
        .saturating_sub(Duration::from_secs(1))
        .max(Duration::from_secs(1));
    let path = format!(
        "/api/v1/query?query={}&timeout={}s",
        percent_encoded(promql),
        within.as_secs()
    );
    let (answer, route) = routes.get_service(svc, &path).await;
    let target = crate::dial::target(&svc.host, svc.port);
    let how = routes.describe(route);
    let resp = answer.map_err(|e| {
        Unanswered::Prometheus(format!("Prometheus {target} unreachable: {e}; {how}"))
    })?;
    let json = serde_json::from_slice::<Value>(&resp.body).ok();
    if json.as_ref().and_then(|j| j.get("status")).is_none() {
        return Err(Unanswered::Prometheus(format!(
            "{target} answered /api/v1/query with HTTP {} and no Prometheus API answer; {how}",
            resp.status
        )));
    }
    parse(&resp.body).map_err(|why| {
        Unanswered::Query(format!(
            "Prometheus {target} answered HTTP {}: {why}",
            resp.status
        ))
    })
}

/// `s` as a URL query value: every byte but RFC 3986's unreserved ones as `%XX`.
fn percent_encoded(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The series of a `/api/v1/query` answer (a vector; a scalar is one unlabelled series).
pub fn parse(body: &[u8]) -> Result<Vec<Series>, String> {
    let json: Value = serde_json::from_slice(body).map_err(|_| "not a Prometheus API answer")?;
    if json.get("status").and_then(Value::as_str) != Some("success") {
        let error = json
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no error given");
        return Err(super::one_line(error, 200));
    }
    let number = |v: Option<&Value>| -> Option<f64> { v?.get(1)?.as_str()?.parse().ok() };
    let data = json.get("data");
    match data
        .and_then(|d| d.get("resultType"))
        .and_then(Value::as_str)
    {
        Some("vector") => {
            let result = data
                .and_then(|d| d.get("result"))
                .and_then(Value::as_array)
                .ok_or("a vector without result")?;
            Ok(result
                .iter()
                .filter_map(|r| {
                    Some(Series {
                        labels: r.get("metric")?.as_object()?.clone(),
                        value: number(r.get("value"))?,
                    })
                })
                .collect())
        }
        Some("scalar") => Ok(number(data.and_then(|d| d.get("result")))
            .map(|value| Series {
                labels: Default::default(),
                value,
            })
            .into_iter()
            .collect()),
        other => Err(format!(
            "unexpected result type {}",
            other.unwrap_or("none")
        )),
    }
}

/// How bad `value` is against `limit` for a signal going bad in `direction`.
pub fn severity(direction: Direction, limit: Limit, value: f64) -> Severity {
    let (fail, warn) = match direction {
        Direction::Above => (value >= limit.fail, value >= limit.warn),
        Direction::Below => (value <= limit.fail, value <= limit.warn),
    };
    if value.is_nan() {
        Severity::Ok
    } else if fail {
        Severity::Fail
    } else if warn {
        Severity::Warn
    } else {
        Severity::Ok
    }
}

/// `(warn at 90 %, fail at 97 %)`; `below` for signals bad when low.
fn levels(signal: &Signal, limit: Limit) -> String {
    let l = signal.level();
    let at = match l.direction {
        Direction::Above => "at",
        Direction::Below => "below",
    };
    if limit.warn == limit.fail {
        format!("(fail {at} {})", l.unit.format(limit.fail))
    } else {
        format!(
            "(warn {at} {}, fail {at} {})",
            l.unit.format(limit.warn),
            l.unit.format(limit.fail)
        )
    }
}

/// The findings for one signal's series.
pub fn judge(signal: &Signal, limit: Limit, series: &[Series]) -> Vec<Finding> {
    let level = signal.level();
    if series.is_empty() {
        return match signal.empty {
            Empty::Ok(why) => vec![Finding::ok(signal.key, format!("{}: {why}", signal.key))],
            Empty::NotChecked => {
                let mut f = Finding::warn(
                    signal.key,
                    format!(
                        "{}: not checked: Prometheus has no series for it: is {} scraped?",
                        signal.key, signal.source
                    ),
                );
                f.checked = false;
                vec![f]
            }
        };
    }
    let mut judged: Vec<(Severity, String, f64)> = series
        .iter()
        .map(|s| {
            let sev = severity(level.direction, limit, s.value);
            (sev, signals::subject_of(signal, &s.labels), s.value)
        })
        .collect();
    // Worst first: highest value for "above", lowest for "below".
    judged.sort_by(|a, b| match level.direction {
        Direction::Above => b.2.total_cmp(&a.2),
        Direction::Below => a.2.total_cmp(&b.2),
    });
    let line = |subject: &str, v: f64| {
        format!(
            "{} {subject}: {} {} {}",
            signal.noun,
            signal.what,
            level.unit.format(v),
            levels(signal, limit)
        )
    };
    // The signal's key leads every message: two signals can be about the same service.
    let key = signal.key;
    let mut out: Vec<Finding> = judged
        .iter()
        .filter(|(sev, ..)| *sev != Severity::Ok)
        .map(|(sev, subject, v)| {
            Finding::new(
                *sev,
                format!("{} {subject}", signal.noun),
                format!("{key}: {}", line(subject, *v)),
            )
        })
        .collect();
    let fine: Vec<_> = judged
        .iter()
        .filter(|(sev, ..)| *sev == Severity::Ok)
        .collect();
    if let Some((_, worst, v)) = fine.first() {
        let many = format!("{}s", signal.noun);
        out.push(Finding::ok(
            signal.key,
            format!(
                "{key}: {} within levels; worst {}",
                count(fine.len(), signal.noun, &many),
                line(worst, *v)
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sig(key: &str) -> &'static Signal {
        SIGNALS.iter().find(|s| s.key == key).unwrap()
    }

    fn series(label: &str, values: &[(&str, f64)]) -> Vec<Series> {
        values
            .iter()
            .map(|(name, value)| Series {
                labels: json!({ label: name }).as_object().unwrap().clone(),
                value: *value,
            })
            .collect()
    }

    #[test]
    fn a_query_is_percent_encoded() {
        assert_eq!(
            percent_encoded(r#"sum by (x) (m{a="b"}) / 2"#),
            "sum%20by%20%28x%29%20%28m%7Ba%3D%22b%22%7D%29%20%2F%202"
        );
    }

    #[test]
    fn a_vector_answer_and_an_error_answer() {
        let ok = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"container":"hermes"},"value":[1700000000.1,"93.5"]}]}}"#;
        let s = parse(ok).unwrap();
        assert_eq!(s[0].value, 93.5);
        assert_eq!(s[0].labels["container"], "hermes");
        let bad =
            br#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected"}"#;
        assert_eq!(parse(bad).unwrap_err(), "1:5: parse error: unexpected");
        assert!(parse(b"<html>").is_err());
    }

    #[test]
    fn each_series_is_judged_against_its_levels_and_named() {
        let limit = Limit {
            warn: 90.0,
            fail: 97.0,
        };
        let f = judge(
            sig("memory"),
            limit,
            &series(
                "container",
                &[
                    ("hermes", 98.2),
                    ("zeus", 91.0),
                    ("pheme", 40.0),
                    ("flipt", 12.0),
                ],
            ),
        );
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].severity, Severity::Fail);
        assert_eq!(f[0].subject, "service hermes");
        assert_eq!(
            f[0].message,
            "memory: service hermes: memory working set of its limit (largest pod) 98.2 % (warn at 90 %, fail at 97 %)"
        );
        assert_eq!(f[1].severity, Severity::Warn);
        assert_eq!(f[2].severity, Severity::Ok);
        assert!(
            f[2].message
                .starts_with("memory: 2 services within levels; worst service pheme:"),
            "{}",
            f[2].message
        );
    }

    #[test]
    fn low_is_bad_for_free_space_and_empty_means_per_signal() {
        let limit = Limit {
            warn: 15.0,
            fail: 5.0,
        };
        assert_eq!(severity(Direction::Below, limit, 4.0), Severity::Fail);
        assert_eq!(severity(Direction::Below, limit, 10.0), Severity::Warn);
        assert_eq!(severity(Direction::Below, limit, 50.0), Severity::Ok);
        let none = judge(sig("queue_backlog"), limit, &[]);
        assert!(!none[0].checked);
        assert!(
            none[0].message.contains("is bull-exporter scraped?"),
            "{}",
            none[0].message
        );
        let none = judge(sig("postgres_replication_lag"), limit, &[]);
        assert!(none[0].checked && none[0].severity == Severity::Ok);
    }
}
