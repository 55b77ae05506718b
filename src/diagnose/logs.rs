//! The logs of every pod of a Paragon service, a pod or a workload, in the installation's
//! namespace: read once, or followed (new pods picked up, pods that go away noted), each line
//! tagged with its pod and container. Knows nothing of how lines are printed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The label Paragon's charts put the service's name in.
pub const SERVICE_LABEL: &str = "app.kubernetes.io/name";

/// How often `follow` looks for pods that started or went away.
const POLL: Duration = Duration::from_secs(2);

/// Each request to the API server may take this long before it is given up.
const REQUEST_DEADLINE: Duration = Duration::from_secs(30);

/// Paragon's services (the chart's `app.kubernetes.io/name` values), for completion.
pub const SERVICES: [&str; 26] = [
    "account",
    "api-triggerkit",
    "cache-replay",
    "cerberus",
    "connect",
    "dashboard",
    "flipt",
    "hades",
    "health-checker",
    "hermes",
    "minio",
    "passport",
    "pheme",
    "release",
    "worker-actionkit",
    "worker-actions",
    "worker-auditlogs",
    "worker-credentials",
    "worker-crons",
    "worker-deployments",
    "worker-eventlogs",
    "worker-proxy",
    "worker-triggerkit",
    "worker-triggers",
    "worker-workflows",
    "zeus",
];

#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    #[error(
        "no service, pod or workload named `{name}` in namespace {namespace}: try `paragon-admin kubectl get pods -n {namespace}`"
    )]
    NotFound { name: String, namespace: String },
    #[error("cannot list {what} in namespace {namespace}: {message}")]
    List {
        what: &'static str,
        namespace: String,
        message: String,
    },
    #[error("the API server did not answer within {0:?}")]
    Timeout(Duration),
}

impl crate::exit::ExitStatus for LogsError {
    fn exit_status(&self) -> u8 {
        crate::exit::FAILED
    }
}

/// What to read, as `kubectl logs` takes it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub namespace: String,
    /// A service (`app.kubernetes.io/name`), a pod, or a Deployment/StatefulSet/DaemonSet.
    pub target: String,
    pub container: Option<String>,
    pub since_seconds: Option<i64>,
    pub tail: Option<i64>,
    pub previous: bool,
    pub timestamps: bool,
}

/// Which pods a target means; followed, the same rule finds pods that start later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Pods with these labels (a service or a workload's selector).
    Labels(String),
    /// One pod by name.
    Pod(String),
}

/// What `follow` and `read` report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Line(Line),
    /// A pod that started after following began.
    Started(String),
    /// A pod that went away while followed.
    Gone(String),
    /// A container whose log could not be read (still starting, no previous run, ...).
    Unreadable {
        pod: String,
        container: String,
        message: String,
    },
}

/// One log line and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Line {
    pub pod: String,
    pub container: String,
    /// Whether the pod has several containers (the prefix then names the container).
    #[serde(skip)]
    pub several: bool,
    /// The API server's RFC 3339 timestamp, with `--timestamps`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    pub line: String,
}

async fn deadline<T>(
    f: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<Result<T, kube::Error>, LogsError> {
    tokio::time::timeout(REQUEST_DEADLINE, f)
        .await
        .map_err(|_| LogsError::Timeout(REQUEST_DEADLINE))
}

fn list_error(what: &'static str, namespace: &str, e: &kube::Error) -> LogsError {
    LogsError::List {
        what,
        namespace: namespace.to_string(),
        message: crate::kube::one_line(e),
    }
}

/// Which pods `target` names: a service's label first, then a pod, then a workload.
pub async fn select(
    client: &kube::Client,
    namespace: &str,
    target: &str,
) -> Result<Selection, LogsError> {
    let by_label = format!("{SERVICE_LABEL}={target}");
    if !pods(client, namespace, &Selection::Labels(by_label.clone()))
        .await?
        .is_empty()
    {
        return Ok(Selection::Labels(by_label));
    }
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    if deadline(pod_api.get_opt(target))
        .await?
        .map_err(|e| list_error("pods", namespace, &e))?
        .is_some()
    {
        return Ok(Selection::Pod(target.to_string()));
    }
    let selector = |s: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>| {
        s.and_then(|s| s.match_labels.as_ref()).map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
    };
    let ns = namespace;
    let found = if let Some(d) =
        deadline(Api::<Deployment>::namespaced(client.clone(), ns).get_opt(target))
            .await?
            .map_err(|e| list_error("deployments", ns, &e))?
    {
        selector(d.spec.as_ref().map(|s| &s.selector))
    } else if let Some(s) =
        deadline(Api::<StatefulSet>::namespaced(client.clone(), ns).get_opt(target))
            .await?
            .map_err(|e| list_error("statefulsets", ns, &e))?
    {
        selector(s.spec.as_ref().map(|s| &s.selector))
    } else if let Some(d) =
        deadline(Api::<DaemonSet>::namespaced(client.clone(), ns).get_opt(target))
            .await?
            .map_err(|e| list_error("daemonsets", ns, &e))?
    {
        selector(d.spec.as_ref().map(|s| &s.selector))
    } else {
        None
    };
    match found {
        Some(labels) if !labels.is_empty() => Ok(Selection::Labels(labels)),
        _ => Err(LogsError::NotFound {
            name: target.to_string(),
            namespace: namespace.to_string(),
        }),
    }
}

/// The pods the selection names now, by name.
pub async fn pods(
    client: &kube::Client,
    namespace: &str,
    selection: &Selection,
) -> Result<Vec<Pod>, LogsError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut found = Vec::new();
    match selection {
        Selection::Labels(labels) => {
            let lp = ListParams::default().labels(labels);
            deadline(crate::kube::list::each_page(&api, lp, |page| {
                found.extend(page)
            }))
            .await?
            .map_err(|e| list_error("pods", namespace, &e))?;
        }
        Selection::Pod(name) => {
            let pod = deadline(api.get_opt(name))
                .await?
                .map_err(|e| list_error("pods", namespace, &e))?;
            found.extend(pod);
        }
    }
    found.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    Ok(found)
}

/// The containers of `pod` to read: the one asked for, else all of them.
fn containers(pod: &Pod, asked: Option<&str>) -> Vec<String> {
    let all: Vec<String> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default();
    match asked {
        Some(c) => all.into_iter().filter(|n| n == c).collect(),
        None => all,
    }
}

fn params(req: &Request, container: &str, follow: bool, whole: bool) -> LogParams {
    LogParams {
        container: Some(container.to_string()),
        follow,
        previous: req.previous,
        since_seconds: if whole { None } else { req.since_seconds },
        tail_lines: if whole { None } else { req.tail },
        timestamps: req.timestamps,
        ..LogParams::default()
    }
}

/// Splits the API server's timestamp off a line when it was asked for.
fn line(pod: &str, container: &str, several: bool, timestamps: bool, text: &str) -> Line {
    let (time, text) = match text.split_once(' ') {
        Some((t, rest)) if timestamps => (Some(t.to_string()), rest),
        _ => (None, text),
    };
    Line {
        pod: pod.to_string(),
        container: container.to_string(),
        several,
        time,
        line: text.to_string(),
    }
}

/// Reads the logs of every selected pod once, pod after pod (containers in spec order).
pub async fn read(
    client: &kube::Client,
    req: &Request,
    selection: &Selection,
    events: &mpsc::Sender<Event>,
) -> Result<(), LogsError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &req.namespace);
    let pods = pods(client, &req.namespace, selection).await?;
    let mut wanted: Vec<(String, String, bool)> = Vec::new();
    for pod in &pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let cs = containers(pod, req.container.as_deref());
        let several = cs.len() > 1;
        wanted.extend(cs.into_iter().map(|c| (name.clone(), c, several)));
    }
    let fetches = wanted.into_iter().map(|(name, c, several)| {
        let api = api.clone();
        let p = params(req, &c, false, false);
        async move {
            let r = deadline(api.logs(&name, &p)).await;
            (name, c, several, r)
        }
    });
    // A few at a time, in order: a service's pods read concurrently, printed as they come.
    let mut results = futures::stream::iter(fetches).buffered(4);
    while let Some((pod, container, several, r)) = results.next().await {
        let event_of =
            |text: &str| Event::Line(line(&pod, &container, several, req.timestamps, text));
        match r {
            Ok(Ok(text)) => {
                for l in text.lines() {
                    if events.send(event_of(l)).await.is_err() {
                        return Ok(());
                    }
                }
            }
            Ok(Err(e)) => {
                let _ = events
                    .send(Event::Unreadable {
                        pod: pod.clone(),
                        container: container.clone(),
                        message: crate::kube::one_line(&e),
                    })
                    .await;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Follows every selected pod until `stop`: the pods there now from `since`/`tail` on, the
/// pods that start later from their first line; a pod that goes away is reported once.
pub async fn follow(
    client: &kube::Client,
    req: &Request,
    selection: &Selection,
    events: mpsc::Sender<Event>,
    stop: CancellationToken,
) -> Result<(), LogsError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &req.namespace);
    let mut followed: BTreeMap<String, CancellationToken> = BTreeMap::new();
    let mut first = true;
    loop {
        let now: BTreeSet<String> = match pods(client, &req.namespace, selection).await {
            Ok(pods) => {
                for pod in &pods {
                    let Some(name) = pod.metadata.name.clone() else {
                        continue;
                    };
                    if followed.contains_key(&name) {
                        continue;
                    }
                    if !first && events.send(Event::Started(name.clone())).await.is_err() {
                        return Ok(());
                    }
                    let token = stop.child_token();
                    let cs = containers(pod, req.container.as_deref());
                    let several = cs.len() > 1;
                    for c in cs {
                        let p = params(req, &c, true, !first);
                        tokio::spawn(follow_one(
                            api.clone(),
                            name.clone(),
                            c,
                            several,
                            p,
                            events.clone(),
                            token.clone(),
                        ));
                    }
                    followed.insert(name, token);
                }
                pods.into_iter().filter_map(|p| p.metadata.name).collect()
            }
            // The first list is the answer to the user's request; later ones are retried.
            Err(e) if first => return Err(e),
            Err(e) => {
                tracing::warn!("{e}");
                followed.keys().cloned().collect()
            }
        };
        let gone: Vec<String> = followed
            .keys()
            .filter(|n| !now.contains(*n))
            .cloned()
            .collect();
        for name in gone {
            if let Some(token) = followed.remove(&name) {
                token.cancel();
            }
            if events.send(Event::Gone(name)).await.is_err() {
                return Ok(());
            }
        }
        first = false;
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = events.closed() => return Ok(()),
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Streams one container's log until it ends, the pod goes or `stop`.
async fn follow_one(
    api: Api<Pod>,
    pod: String,
    container: String,
    several: bool,
    params: LogParams,
    events: mpsc::Sender<Event>,
    stop: CancellationToken,
) {
    let stream = tokio::select! {
        _ = stop.cancelled() => return,
        r = deadline(api.log_stream(&pod, &params)) => r,
    };
    let opened = match stream {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(crate::kube::one_line(&e)),
        Err(e) => Err(e.to_string()),
    };
    let reader = match opened {
        Ok(r) => r,
        Err(message) => {
            let _ = events
                .send(Event::Unreadable {
                    pod,
                    container,
                    message,
                })
                .await;
            return;
        }
    };
    let mut lines = reader.lines();
    loop {
        let next = tokio::select! {
            _ = stop.cancelled() => return,
            l = lines.try_next() => l,
        };
        match next {
            Ok(Some(text)) => {
                let l = line(&pod, &container, several, params.timestamps, &text);
                if events.send(Event::Line(l)).await.is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(%pod, %container, "log stream ended: {e}");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_split_off_only_when_asked_for() {
        let l = line("p", "c", false, true, "2026-01-01T00:00:00Z hello world");
        assert_eq!(l.time.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(l.line, "hello world");
        let l = line("p", "c", false, false, "2026-01-01T00:00:00Z hello");
        assert_eq!(
            (l.time, l.line.as_str()),
            (None, "2026-01-01T00:00:00Z hello")
        );
    }

    #[test]
    fn a_container_asked_for_narrows_the_pod_to_it() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]}
        }))
        .unwrap();
        assert_eq!(containers(&pod, None), ["a", "b"]);
        assert_eq!(containers(&pod, Some("b")), ["b"]);
        assert!(containers(&pod, Some("x")).is_empty());
    }
}
