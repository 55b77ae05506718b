//! The resource metrics API, `metrics.k8s.io/v1beta1`, as metrics-server serves it through
//! the API server's aggregation layer (its APIService `v1beta1.metrics.k8s.io`): the group's
//! discovery, `NodeMetrics` and `PodMetrics` (get and list, `labelSelector` on lists), in
//! metrics-server's shapes (kubernetes-sigs/metrics-server pkg/api/{node,pod}.go and
//! k8s.io/metrics pkg/apis/metrics/v1beta1/types.go): each item's `metadata` carries the
//! object's name, namespace and labels and a `creationTimestamp` of the request's time,
//! `timestamp` is when the sample was taken and `window` what it spans; CPU in nanocores
//! (`123456789n`) and memory in KiB (`204800Ki`), as metrics-server writes them.
//!
//! The values are derived from the pods served: each running pod's containers use a share of
//! their requests and limits that depends only on the pod's and container's names, so the
//! same seed gives the same figures; a node uses what its pods use plus the system's own
//! share, at most 75 % of its allocatable. `memory_use` (the `--memory-use SERVICE=PERCENT` option) sets the working set of a
//! service's containers to a share of their memory limit. Nothing here knows of routing,
//! TLS or faults.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use super::selector::LabelSelector;
use super::store::{Res, World};

pub(crate) const GROUP: &str = "metrics.k8s.io";
pub(crate) const VERSION: &str = "v1beta1";

/// How long metrics-server's samples span (its `--metric-resolution`, 15 s by default).
const WINDOW: &str = "15s";
/// What a node's own daemons and kernel use beside its pods.
const SYSTEM_CPU_NANOS: u64 = 180_000_000;
const SYSTEM_MEMORY_BYTES: u64 = 1_200 * 1024 * 1024;

/// `SERVICE=PERCENT`: the pods of a service use PERCENT % of their memory limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryUse {
    pub service: String,
    pub percent: u32,
}

impl std::str::FromStr for MemoryUse {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (service, percent) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: write SERVICE=PERCENT, e.g. hermes=98"))?;
        let percent: u32 = percent
            .trim_end_matches('%')
            .parse()
            .ok()
            .filter(|p| (1..=200).contains(p))
            .ok_or_else(|| format!("{s:?}: the percentage must be a whole number from 1 to 200"))?;
        if service.is_empty() {
            return Err(format!("{s:?}: name the service before '='"));
        }
        Ok(MemoryUse {
            service: service.to_string(),
            percent,
        })
    }
}

/// The group as `/apis` lists it and `/apis/metrics.k8s.io` answers.
pub(crate) fn group() -> Value {
    let gv = json!({ "groupVersion": format!("{GROUP}/{VERSION}"), "version": VERSION });
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": GROUP,
        "versions": [gv.clone()],
        "preferredVersion": gv,
    })
}

/// `/apis/metrics.k8s.io/v1beta1`, as metrics-server registers its two resources.
pub(crate) fn resources() -> Value {
    let resource = |name: &str, namespaced: bool, kind: &str| {
        json!({
            "name": name,
            "singularName": "",
            "namespaced": namespaced,
            "kind": kind,
            "verbs": ["get", "list"],
        })
    };
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": format!("{GROUP}/{VERSION}"),
        "resources": [
            resource("nodes", false, "NodeMetrics"),
            resource("pods", true, "PodMetrics"),
        ],
    })
}

/// The aggregation layer's group, which holds the APIService that registers the metrics API.
pub(crate) const AGGREGATOR: &str = "apiregistration.k8s.io";

/// `/apis/apiregistration.k8s.io` and its `v1` resources: only `apiservices`.
pub(crate) fn aggregator_group() -> Value {
    let gv = json!({ "groupVersion": format!("{AGGREGATOR}/v1"), "version": "v1" });
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": AGGREGATOR,
        "versions": [gv.clone()],
        "preferredVersion": gv,
    })
}

pub(crate) fn aggregator_resources() -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": format!("{AGGREGATOR}/v1"),
        "resources": [{
            "name": "apiservices",
            "singularName": "apiservice",
            "namespaced": false,
            "kind": "APIService",
            "verbs": ["get", "list", "watch"],
            "categories": ["api-extensions"],
        }],
    })
}

/// The name of the one APIService served.
pub(crate) const API_SERVICE: &str = "v1beta1.metrics.k8s.io";

/// The APIService the metrics-server chart installs, Available (`kubectl get apiservice`),
/// pointing at the `metricsserver` release's Service; `since` is when it became available.
pub(crate) fn api_service(since: jiff::Timestamp) -> Value {
    json!({
        "kind": "APIService",
        "apiVersion": format!("{AGGREGATOR}/v1"),
        "metadata": {
            "name": API_SERVICE,
            "labels": {
                "app.kubernetes.io/instance": "metricsserver",
                "app.kubernetes.io/name": "metrics-server",
            },
            "creationTimestamp": since.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        },
        "spec": {
            "group": GROUP,
            "version": VERSION,
            "groupPriorityMinimum": 100,
            "versionPriority": 100,
            "insecureSkipTLSVerify": true,
            "service": { "name": "metrics-server", "namespace": "paragon", "port": 443 },
        },
        "status": {
            "conditions": [{
                "type": "Available",
                "status": "True",
                "reason": "Passed",
                "message": "all checks passed",
                "lastTransitionTime": since.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            }],
        },
    })
}

/// What a metrics request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Asked<'a> {
    Nodes,
    Node(&'a str),
    /// `None`: every namespace.
    Pods(Option<&'a str>),
    Pod(&'a str, &'a str),
}

impl<'a> Asked<'a> {
    /// The request under `/apis/metrics.k8s.io/v1beta1/`, `None` for a path it does not serve.
    pub(crate) fn of(rest: &[&'a str]) -> Option<Self> {
        Some(match rest {
            ["nodes"] => Asked::Nodes,
            ["nodes", name] => Asked::Node(name),
            ["pods"] => Asked::Pods(None),
            ["namespaces", ns, "pods"] => Asked::Pods(Some(ns)),
            ["namespaces", ns, "pods", name] => Asked::Pod(ns, name),
            _ => return None,
        })
    }
}

/// Why there is no answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum MetricsError {
    /// `(resource, name)`: no such node, or no metrics for such a pod (not running).
    NotFound(&'static str, String),
    BadSelector(String),
}

/// The answer to `asked`, as metrics-server writes it, at `now`.
pub(crate) fn answer(
    world: &World,
    memory_use: &[MemoryUse],
    asked: Asked<'_>,
    selector: Option<&str>,
    now: jiff::Timestamp,
) -> Result<Value, MetricsError> {
    let selector =
        LabelSelector::parse(selector.unwrap_or("")).map_err(|e| MetricsError::BadSelector(e.0))?;
    let pods = running_pods(world);
    let stamp = |t: jiff::Timestamp| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    // A sample is taken every resolution; this one some seconds ago.
    let sampled = stamp(now - jiff::SignedDuration::from_secs(7));
    let created = stamp(now);
    let pod_item = |p: &Used| {
        json!({
            "metadata": {
                "name": p.name,
                "namespace": p.namespace,
                "creationTimestamp": created,
                "labels": p.labels,
            },
            "timestamp": sampled,
            "window": WINDOW,
            "containers": p.containers.iter().map(|(name, cpu, mem)| json!({
                "name": name,
                "usage": { "cpu": nanocores(*cpu), "memory": kibibytes(*mem) },
            })).collect::<Vec<_>>(),
        })
    };
    let list = |kind: &str, items: Vec<Value>| {
        json!({
            "kind": kind,
            "apiVersion": format!("{GROUP}/{VERSION}"),
            "metadata": {},
            "items": items,
        })
    };
    let with_kind = |mut item: Value, kind: &str| {
        item["kind"] = json!(kind);
        item["apiVersion"] = json!(format!("{GROUP}/{VERSION}"));
        item
    };
    match asked {
        Asked::Pods(ns) => {
            let items = pods
                .iter()
                .filter(|p| ns.is_none_or(|ns| p.namespace == ns))
                .filter(|p| selector.matches(&p.label_pairs()))
                .map(|p| pod_item(&p.with(memory_use)))
                .collect();
            Ok(list("PodMetricsList", items))
        }
        Asked::Pod(ns, name) => pods
            .iter()
            .find(|p| p.namespace == ns && p.name == name)
            .map(|p| with_kind(pod_item(&p.with(memory_use)), "PodMetrics"))
            .ok_or_else(|| MetricsError::NotFound("pods", name.to_string())),
        Asked::Nodes | Asked::Node(_) => {
            let mut used: BTreeMap<String, (u64, u64)> = BTreeMap::new();
            for p in &pods {
                let p = p.with(memory_use);
                let u = used.entry(p.node.clone()).or_default();
                for (_, cpu, mem) in &p.containers {
                    u.0 += cpu;
                    u.1 += mem;
                }
            }
            let items: Vec<Value> = world
                .all(Res::Nodes)
                .iter()
                .filter(|n| match asked {
                    Asked::Node(name) => *n.name == *name,
                    _ => true,
                })
                .filter(|n| selector.matches(&n.labels))
                .map(|n| {
                    let (cpu, mem) = used.get(&*n.name).copied().unwrap_or_default();
                    let (cpu_cap, mem_cap) = busiest(n);
                    let labels: BTreeMap<&str, &str> =
                        n.labels.iter().map(|(k, v)| (&**k, &**v)).collect();
                    json!({
                        "metadata": {
                            "name": &*n.name,
                            "creationTimestamp": created,
                            "labels": labels,
                        },
                        "timestamp": sampled,
                        "window": WINDOW,
                        "usage": {
                            "cpu": nanocores((cpu + SYSTEM_CPU_NANOS).min(cpu_cap)),
                            "memory": kibibytes((mem + SYSTEM_MEMORY_BYTES).min(mem_cap)),
                        },
                    })
                })
                .collect();
            match asked {
                Asked::Node(name) => items
                    .into_iter()
                    .next()
                    .map(|n| with_kind(n, "NodeMetrics"))
                    .ok_or_else(|| MetricsError::NotFound("nodes", name.to_string())),
                _ => Ok(list("NodeMetricsList", items)),
            }
        }
    }
}

/// A running pod and what its containers use: `(name, nanocores, bytes)`.
#[derive(Debug, Clone)]
struct Used {
    namespace: String,
    name: String,
    node: String,
    labels: BTreeMap<String, String>,
    /// The service (`app.kubernetes.io/name`), for `memory_use`.
    service: Option<String>,
    containers: Vec<(String, u64, u64)>,
    /// Each container's memory limit, in the order of `containers`.
    limits: Vec<Option<u64>>,
}

impl Used {
    fn label_pairs(&self) -> Vec<(Box<str>, Box<str>)> {
        self.labels
            .iter()
            .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
            .collect()
    }

    /// With the memory of a service named in `memory_use` set to its share of the limit.
    fn with(&self, memory_use: &[MemoryUse]) -> Used {
        let mut u = self.clone();
        let Some(m) = memory_use
            .iter()
            .find(|m| self.service.as_deref() == Some(m.service.as_str()))
        else {
            return u;
        };
        for ((_, _, mem), limit) in u.containers.iter_mut().zip(&self.limits) {
            if let Some(limit) = limit {
                *mem = limit * u64::from(m.percent) / 100;
            }
        }
        u
    }
}

/// The pods metrics-server reports: running, on a node (the kubelet reports only those).
fn running_pods(world: &World) -> Vec<Used> {
    let mut buf = Vec::new();
    world
        .all(Res::Pods)
        .iter()
        .filter_map(|e| {
            buf.clear();
            e.write_object(&mut buf);
            let pod: Pod = serde_json::from_slice(&buf).ok()?;
            let status = pod.status.as_ref()?;
            if status.phase.as_deref() != Some("Running") {
                return None;
            }
            let spec = pod.spec.as_ref()?;
            let node = spec.node_name.clone()?;
            let name = pod.metadata.name.clone().unwrap_or_default();
            let labels = pod.metadata.labels.clone().unwrap_or_default();
            let mut containers = Vec::new();
            let mut limits = Vec::new();
            for c in &spec.containers {
                let res = c.resources.as_ref();
                let get = |which: Option<&BTreeMap<String, _>>, key: &str| {
                    which.and_then(|m| m.get(key)).and_then(
                        |q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity| {
                            parse_quantity(&q.0)
                        },
                    )
                };
                let requests = res.and_then(|r| r.requests.as_ref());
                let limit_map = res.and_then(|r| r.limits.as_ref());
                let share = |salt: &str, from: f64, span: f64| {
                    from + span * fraction(&format!("{name}/{}/{salt}", c.name))
                };
                // A container without a request uses a little: 10m to 50m.
                let cpu_request = get(requests, "cpu").unwrap_or(0.04);
                let cpu = (cpu_request * share("cpu", 0.05, 0.4) * 1e9) as u64;
                let memory_limit = get(limit_map, "memory");
                let memory_base = memory_limit
                    .or(get(requests, "memory"))
                    .unwrap_or(256.0 * 1024.0 * 1024.0);
                let memory = (memory_base * share("memory", 0.3, 0.3)) as u64;
                containers.push((c.name.clone(), cpu, memory));
                limits.push(memory_limit.map(|l| l as u64));
            }
            Some(Used {
                namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                name,
                node,
                service: labels.get("app.kubernetes.io/name").cloned(),
                labels,
                containers,
                limits,
            })
        })
        .collect()
}

/// The most a node reports using: 75 % of its allocatable (nanocores, bytes). A sandbox asked
/// for many pods on few nodes packs more onto a node than it could hold; its figures stay
/// those of a busy node, not of an impossible one.
fn busiest(node: &super::store::Entry) -> (u64, u64) {
    let mut buf = Vec::new();
    node.write_object(&mut buf);
    let v: Value = serde_json::from_slice(&buf).unwrap_or_default();
    let get = |k: &str| {
        v["status"]["allocatable"][k]
            .as_str()
            .and_then(parse_quantity)
            .unwrap_or(0.0)
    };
    (
        (get("cpu") * 0.75 * 1e9) as u64,
        (get("memory") * 0.75) as u64,
    )
}

/// A number in [0, 1) that depends only on `key` (FNV-1a).
fn fraction(key: &str) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// The quantities the generated pods carry (`250m`, `2`, `512Mi`, `1Gi`), as a plain number
/// (cores, bytes).
fn parse_quantity(q: &str) -> Option<f64> {
    const SUFFIXES: [(&str, f64); 7] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
    ];
    for (suffix, factor) in SUFFIXES {
        if let Some(n) = q.strip_suffix(suffix) {
            return n.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    q.parse().ok()
}

fn nanocores(n: u64) -> String {
    format!("{n}n")
}

fn kibibytes(bytes: u64) -> String {
    format!("{}Ki", bytes / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_use_parses_service_and_percent() {
        assert_eq!(
            "hermes=98".parse::<MemoryUse>(),
            Ok(MemoryUse {
                service: "hermes".into(),
                percent: 98
            })
        );
        assert!("hermes".parse::<MemoryUse>().is_err());
        assert!("hermes=0".parse::<MemoryUse>().is_err());
        assert!("=50".parse::<MemoryUse>().is_err());
    }

    #[test]
    fn quantities_and_their_written_forms() {
        assert_eq!(parse_quantity("250m"), Some(0.25));
        assert_eq!(parse_quantity("1Gi"), Some(1073741824.0));
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(nanocores(1_500_000), "1500000n");
        assert_eq!(kibibytes(2048 * 1024), "2048Ki");
        let f = fraction("hermes-1/hermes/cpu");
        assert!((0.0..1.0).contains(&f));
        assert_eq!(f, fraction("hermes-1/hermes/cpu"));
    }
}
