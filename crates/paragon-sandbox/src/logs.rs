//! Container logs for `kubectl logs`: plausible lines made from the served pod itself (its
//! container, image, port and state), the health probe lines timed up to the request, the
//! requests and jobs a Paragon service logs, and (with the `log-secrets` fault) the planted
//! secrets of `planted`. `follow` streams the lines written after the request.

use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus, Pod};

/// What the API server answers a log request with.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LogError {
    /// 400, with the API server's message.
    BadRequest(String),
}

/// How a log request asks.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct LogQuery<'a> {
    pub container: Option<&'a str>,
    pub previous: bool,
    pub tail: Option<usize>,
    pub timestamps: bool,
    /// Only lines written at or after this second (`sinceSeconds`, `sinceTime`).
    pub since: Option<i64>,
    /// The `log-secrets` fault: the running containers' logs carry `planted` secrets.
    pub secrets: bool,
}

/// Probe lines cover at most this much time before the request.
const PROBE_HISTORY: i64 = 600;

pub(crate) fn pod_log(pod: &Pod, q: LogQuery<'_>, now: i64) -> Result<String, LogError> {
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let spec = pod.spec.as_ref();
    let containers: Vec<&str> = spec
        .map(|s| s.containers.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    let container = match q.container {
        Some(c) if containers.contains(&c) => c,
        Some(c) => {
            return Err(LogError::BadRequest(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        None => containers.first().copied().unwrap_or(""),
    };
    if spec.and_then(|s| s.node_name.as_ref()).is_none() {
        return Err(LogError::BadRequest(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: pod has not been scheduled"
        )));
    }
    let status: Option<&ContainerStatus> = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == container));
    let Some(status) = status else {
        return Err(LogError::BadRequest(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        )));
    };
    let port = spec
        .and_then(|s| s.containers.iter().find(|c| c.name == container))
        .and_then(|c| c.ports.as_ref())
        .and_then(|p| p.first())
        .map_or(0, |p| p.container_port);
    let c = Running {
        name: container,
        version: status.image.rsplit(':').next().unwrap_or("latest"),
        port,
    };
    let state = status.state.as_ref();
    let last = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref());

    let mut log = Log::default();
    if q.previous {
        let Some(t) = last else {
            return Err(LogError::BadRequest(format!(
                "previous terminated container \"{container}\" in pod \"{name}\" not found"
            )));
        };
        c.crashed_run(&mut log, t, now);
    } else if let Some(running) = state.and_then(|s| s.running.as_ref()) {
        let start = secs(&running.started_at).unwrap_or(now);
        c.startup(&mut log, start);
        let first_probe = (now - PROBE_HISTORY).max(start + 10);
        log.lines.extend(probe_lines(first_probe - 1, now, start));
        if q.secrets && now - 60 > start + 2 {
            let planted = super::planted::lines(container);
            log.lines
                .extend(planted.into_iter().map(|(dt, l)| (now - 60 + dt, l)));
        }
    } else if let Some(done) = state.and_then(|s| s.terminated.as_ref()) {
        let (start, end) = run_times(done, now);
        if container == "kubectl" {
            log.plain(start, "restarting the Paragon deployments");
            log.plain(end, "deployment.apps restarted");
        } else if done.exit_code != 0 {
            log.json(start, "info", "running migrations", &[]);
            log.json(
                end,
                "error",
                "migration failed",
                &[("error", "relation \"workflow_executions\" already exists")],
            );
        } else {
            log.json(start, "info", "running migrations", &[]);
            log.json(end, "info", "migrations complete", &[]);
        }
    } else if let Some(waiting) = state.and_then(|s| s.waiting.as_ref()) {
        match (waiting.reason.as_deref(), last) {
            // A crash-looping container shows its last attempt's output.
            (Some("CrashLoopBackOff"), Some(t)) => c.crashed_run(&mut log, t, now),
            (reason, _) => {
                let why = match reason {
                    Some("ImagePullBackOff" | "ErrImagePull") => "trying and failing to pull image",
                    Some(other) => other,
                    None => "ContainerCreating",
                };
                return Err(LogError::BadRequest(format!(
                    "container \"{container}\" in pod \"{name}\" is waiting to start: {why}"
                )));
            }
        }
    }
    let mut lines = log.lines;
    lines.sort_by_key(|(at, _)| *at);
    Ok(render(&lines, q))
}

/// The probe and request lines a running container writes after `after` up to `until`, for a
/// container started at `start`: a probe every 10 s, a handled request every minute.
pub(crate) fn probe_lines(after: i64, until: i64, start: i64) -> Vec<(i64, String)> {
    let mut lines = Vec::new();
    let mut t = after + 1;
    t += (10 - t.rem_euclid(10)).rem_euclid(10);
    while t <= until {
        if t > start + 2 {
            let ms = 1 + (t / 10).rem_euclid(7);
            let d = [("durationMs", ms.to_string())];
            lines.push((t, json_line(t, "info", "GET /healthz 200", &d)));
            if t.rem_euclid(60) == 0 {
                let ms = 20 + (t / 60).rem_euclid(90);
                let extra = [
                    ("durationMs", ms.to_string()),
                    (
                        "projectId",
                        "2f1c9d0e-6a4b-4c1e-9b7a-3d5e8f0a1b2c".to_string(),
                    ),
                ];
                lines.push((t, json_line(t, "info", "POST /sdk/actions 200", &extra)));
            }
        }
        t += 10;
    }
    lines
}

/// The lines as the API server writes them: `since` and `tail` applied, timestamps if asked.
pub(crate) fn render(lines: &[(i64, String)], q: LogQuery<'_>) -> String {
    let from = q.since.map_or(0, |since| {
        lines.iter().take_while(|(at, _)| *at < since).count()
    });
    let lines = &lines[from..];
    let skip = q.tail.map_or(0, |n| lines.len().saturating_sub(n));
    let mut out = String::new();
    for (at, line) in &lines[skip..] {
        if q.timestamps {
            out.push_str(&stamp(*at));
            out.push(' ');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The lines of one log, each with the second it was written at.
#[derive(Default)]
struct Log {
    lines: Vec<(i64, String)>,
}

impl Log {
    /// A JSON line, as the Paragon services write them.
    fn json(&mut self, at: i64, level: &str, msg: &str, extra: &[(&str, &str)]) {
        let extra: Vec<(&str, String)> = extra.iter().map(|(k, v)| (*k, v.to_string())).collect();
        self.lines.push((at, json_line(at, level, msg, &extra)));
    }

    fn plain(&mut self, at: i64, line: &str) {
        self.lines.push((at, line.to_string()));
    }
}

/// The container whose log is asked for, as its lines name it.
struct Running<'a> {
    name: &'a str,
    version: &'a str,
    port: i32,
}

impl Running<'_> {
    /// The lines every start writes.
    fn startup(&self, log: &mut Log, at: i64) {
        let starting = format!("starting {}", self.name);
        log.json(at, "info", &starting, &[("version", self.version)]);
        log.json(at + 1, "info", "configuration loaded", &[]);
        let db = [("host", "postgres.paragon.svc")];
        log.json(at + 1, "info", "connected to postgres", &db);
        let cache = [("host", "redis.paragon.svc")];
        log.json(at + 1, "info", "connected to redis", &cache);
        let port = self.port.to_string();
        log.json(at + 2, "info", "listening", &[("port", &port)]);
    }

    /// A run that ended in `t`: its start, then what it wrote before it died (the heap
    /// warnings of an OOM kill, else a failed dependency and its exit code).
    fn crashed_run(&self, log: &mut Log, t: &ContainerStateTerminated, now: i64) {
        let (start, end) = run_times(t, now);
        self.startup(log, start);
        if t.reason.as_deref() == Some("OOMKilled") {
            log.json(
                end - 30,
                "warn",
                "heap usage high",
                &[("heapUsedPercent", "93")],
            );
            log.json(
                end - 2,
                "warn",
                "heap usage high",
                &[("heapUsedPercent", "99")],
            );
        } else {
            let error = [("error", "connect ECONNREFUSED")];
            log.json(end - 1, "error", "cannot connect to postgres", &error);
            log.json(
                end,
                "fatal",
                "exiting",
                &[("code", &t.exit_code.to_string())],
            );
        }
    }
}

/// When a terminated run started and ended (`now` where the status does not say).
fn run_times(t: &ContainerStateTerminated, now: i64) -> (i64, i64) {
    (
        secs(&t.started_at).unwrap_or(now),
        secs(&t.finished_at).unwrap_or(now),
    )
}

fn secs(t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> Option<i64> {
    t.as_ref().map(|t| t.0.as_second())
}

pub(crate) fn stamp(unix: i64) -> String {
    jiff::Timestamp::from_second(unix).map_or_else(|_| unix.to_string(), |t| t.to_string())
}

fn json_line(at: i64, level: &str, msg: &str, extra: &[(&str, String)]) -> String {
    let mut v = serde_json::json!({ "level": level, "time": stamp(at), "msg": msg });
    for (k, val) in extra {
        v[*k] = serde_json::Value::String(val.clone());
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
        ContainerStateWaiting, PodSpec, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    const NOW: i64 = 1_780_000_000;

    fn t(unix: i64) -> Option<Time> {
        jiff::Timestamp::from_second(unix).ok().map(Time)
    }

    fn pod(state: ContainerState, last: Option<ContainerState>, restarts: i32) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("hermes-abc".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "hermes".into(),
                    ..Default::default()
                }],
                node_name: Some("node-1".into()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                container_statuses: Some(vec![ContainerStatus {
                    name: "hermes".into(),
                    image: "docker.io/useparagon/hermes:2025.6.1".into(),
                    restart_count: restarts,
                    state: Some(state),
                    last_state: last,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn running(since: i64) -> ContainerState {
        ContainerState {
            running: Some(ContainerStateRunning {
                started_at: t(since),
            }),
            ..Default::default()
        }
    }

    fn terminated(reason: &str, end: i64) -> ContainerState {
        ContainerState {
            terminated: Some(ContainerStateTerminated {
                reason: Some(reason.into()),
                exit_code: 137,
                started_at: t(end - 3600),
                finished_at: t(end),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn waiting(reason: &str) -> ContainerState {
        ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.into()),
                message: None,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn running_container_logs_startup_and_recent_probes_with_tail() {
        let p = pod(running(NOW - 86_400), None, 0);
        let all = pod_log(&p, LogQuery::default(), NOW).unwrap();
        assert!(all.lines().next().unwrap().contains("starting hermes"));
        assert!(all.lines().last().unwrap().contains("GET /healthz 200"));
        assert!(all.lines().count() < 80);
        let q = LogQuery {
            tail: Some(2),
            timestamps: true,
            ..Default::default()
        };
        let tail = pod_log(&p, q, NOW).unwrap();
        assert_eq!(tail.lines().count(), 2);
        assert!(tail.starts_with("2026-"));
    }

    #[test]
    fn previous_logs_need_a_terminated_container() {
        let p = pod(
            running(NOW - 60),
            Some(terminated("OOMKilled", NOW - 61)),
            1,
        );
        let q = LogQuery {
            previous: true,
            ..Default::default()
        };
        assert!(pod_log(&p, q, NOW).unwrap().contains("heap usage high"));
        let clean = pod(running(NOW - 60), None, 0);
        assert!(
            matches!(pod_log(&clean, q, NOW), Err(LogError::BadRequest(m)) if m.contains("not found"))
        );
    }

    #[test]
    fn a_crash_looping_container_shows_its_last_run_as_previous_does() {
        let looping = waiting("CrashLoopBackOff");
        let p = pod(looping, Some(terminated("Error", NOW - 5)), 4);
        let current = pod_log(&p, LogQuery::default(), NOW).unwrap();
        let previous = LogQuery {
            previous: true,
            ..Default::default()
        };
        assert_eq!(current, pod_log(&p, previous, NOW).unwrap());
        assert!(current.lines().next().unwrap().contains("starting hermes"));
        let last = current.lines().last().unwrap();
        assert!(
            last.contains("\"exiting\"") && last.contains("\"137\""),
            "{last}"
        );
    }

    #[test]
    fn waiting_containers_explain_why_there_is_no_log() {
        let p = pod(waiting("ImagePullBackOff"), None, 0);
        let Err(LogError::BadRequest(m)) = pod_log(&p, LogQuery::default(), NOW) else {
            panic!("no error")
        };
        assert!(
            m.contains("is waiting to start: trying and failing to pull image"),
            "{m}"
        );
        let q = LogQuery {
            container: Some("other"),
            ..Default::default()
        };
        assert!(pod_log(&pod(running(NOW), None, 0), q, NOW).is_err());
    }
}
