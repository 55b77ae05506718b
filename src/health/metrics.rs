//! Capacity without Prometheus: CPU and memory from the resource metrics API
//! (`metrics.k8s.io/v1beta1`, served by metrics-server, which Paragon installs as its
//! `metricsserver` release). Per service (the container's name, as the Prometheus signals
//! name it) the busiest or largest pod's usage against its container limit, per node the
//! usage against its allocatable, as series of the signals the Prometheus queries answer, for
//! `capacity` to judge at the same levels. Lists go page by page; the pods' limits come from
//! a pod list of the installation's namespace. Knows nothing of Prometheus, of routes or of
//! levels.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, ApiResource, DynamicObject, ObjectMeta};
use serde::Deserialize;
use serde_json::json;

use super::signals::Series;
use crate::kube::NAMESPACE;
use crate::kube::list::each_page;

/// The signals this API answers; the others need Prometheus.
pub const KEYS: [&str; 4] = ["cpu", "memory", "node_cpu", "node_memory"];

/// Why the metrics API gave no figures.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error(
        "the cluster serves no metrics API (metrics.k8s.io/v1beta1 not found: is metrics-server running?)"
    )]
    Absent,
    #[error("the metrics API failed: {0}")]
    Failed(String),
}

fn failed(e: kube::Error) -> MetricsError {
    match e {
        kube::Error::Api(s) if s.code == 404 => MetricsError::Absent,
        kube::Error::Api(s) if s.code == 503 => {
            MetricsError::Failed(format!("unavailable (503): {}", s.message))
        }
        e => MetricsError::Failed(crate::kube::one_line(&e)),
    }
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "metrics.k8s.io".into(),
        version: "v1beta1".into(),
        api_version: "metrics.k8s.io/v1beta1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// A pod as the limits need it: its name and its containers' limits. A list of these reads
/// the same JSON as a list of `Pod`s, but builds none of the rest (a full `Pod` is most of the
/// report's time in this process on a large cluster).
#[derive(Clone, Debug, Deserialize)]
struct PodLimits {
    #[serde(deserialize_with = "name_only")]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: LimitsSpec,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct LimitsSpec {
    #[serde(default)]
    containers: Vec<ContainerLimits>,
}

#[derive(Clone, Debug, Deserialize)]
struct ContainerLimits {
    name: String,
    #[serde(default)]
    resources: Limits,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct Limits {
    #[serde(default)]
    limits: BTreeMap<String, Quantity>,
}

/// An object's metadata, keeping its name only.
fn name_only<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    #[derive(Deserialize)]
    struct Named {
        name: Option<String>,
    }
    let Named { name } = Named::deserialize(d)?;
    Ok(ObjectMeta {
        name,
        ..ObjectMeta::default()
    })
}

crate::kube::list::listed_as!(PodLimits, Pod, metadata);

/// What the metrics API says, as series of the signals of `KEYS` (labelled as the
/// Prometheus queries label them: `container` for a service, `instance` for a node).
#[derive(Debug, Default)]
pub struct Usage {
    pub cpu: Vec<Series>,
    pub memory: Vec<Series>,
    pub node_cpu: Vec<Series>,
    pub node_memory: Vec<Series>,
    /// Containers with no CPU limit (Paragon's chart sets none), left out of `cpu`.
    pub unlimited_cpu: usize,
}

impl Usage {
    /// The series of signal `key`, one of `KEYS`.
    pub fn of(&self, key: &str) -> &[Series] {
        match key {
            "cpu" => &self.cpu,
            "memory" => &self.memory,
            "node_cpu" => &self.node_cpu,
            "node_memory" => &self.node_memory,
            _ => &[],
        }
    }
}

/// The usage of the installation's containers and of the nodes, against limits and
/// allocatable, in % (the worst pod per service).
pub async fn usage(client: kube::Client) -> Result<Usage, MetricsError> {
    let pod_metrics: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), NAMESPACE, &resource("PodMetrics", "pods"));
    let node_metrics: Api<DynamicObject> =
        Api::all_with(client.clone(), &resource("NodeMetrics", "nodes"));
    // The four lists side by side: each is a round trip per page through the bastion.
    let mut used_pods = Vec::new();
    let used_pods_listed = each_page(&pod_metrics, super::lists(), |page| used_pods.extend(page));
    let mut used_nodes = Vec::new();
    let used_nodes_listed = each_page(&node_metrics, super::lists(), |page| {
        used_nodes.extend(page)
    });
    // Limits: (pod, container) -> (cpu cores, memory bytes).
    let mut limits: BTreeMap<(String, String), (Option<f64>, Option<f64>)> = BTreeMap::new();
    let pods: Api<PodLimits> = Api::namespaced(client.clone(), NAMESPACE);
    let limits_listed = each_page(&pods, super::lists(), |page| {
        for p in page {
            let name = p.metadata.name.unwrap_or_default();
            for c in p.spec.containers {
                let get = |k: &str| c.resources.limits.get(k).and_then(|q| quantity(&q.0));
                limits.insert((name.clone(), c.name), (get("cpu"), get("memory")));
            }
        }
    });
    let mut allocatable: BTreeMap<String, (Option<f64>, Option<f64>)> = BTreeMap::new();
    let nodes: Api<Node> = Api::all(client);
    let allocatable_listed = each_page(&nodes, super::lists(), |page| {
        for n in page {
            let a = n.status.and_then(|s| s.allocatable).unwrap_or_default();
            let get = |k: &str| a.get(k).and_then(|q| quantity(&q.0));
            allocatable.insert(
                n.metadata.name.unwrap_or_default(),
                (get("cpu"), get("memory")),
            );
        }
    });
    futures::try_join!(
        used_pods_listed,
        used_nodes_listed,
        limits_listed,
        allocatable_listed
    )
    .map_err(failed)?;

    // Per service, the worst pod's share of its limit.
    let mut cpu: BTreeMap<String, f64> = BTreeMap::new();
    let mut memory: BTreeMap<String, f64> = BTreeMap::new();
    let mut unlimited_cpu = 0usize;
    for pm in &used_pods {
        let pod = pm.metadata.name.clone().unwrap_or_default();
        for c in pm.data["containers"].as_array().into_iter().flatten() {
            let Some(name) = c["name"].as_str() else {
                continue;
            };
            let usage = |k: &str| c["usage"][k].as_str().and_then(quantity);
            let (cpu_limit, memory_limit) = limits
                .get(&(pod.clone(), name.to_string()))
                .copied()
                .unwrap_or_default();
            let share = |used: Option<f64>, limit: Option<f64>| {
                Some(used? / limit.filter(|l| *l > 0.0)? * 100.0)
            };
            match share(usage("cpu"), cpu_limit) {
                Some(s) => worst(&mut cpu, name, s),
                None => unlimited_cpu += 1,
            }
            if let Some(s) = share(usage("memory"), memory_limit) {
                worst(&mut memory, name, s);
            }
        }
    }
    let mut node_cpu = BTreeMap::new();
    let mut node_memory = BTreeMap::new();
    for nm in &used_nodes {
        let name = nm.metadata.name.clone().unwrap_or_default();
        let usage = |k: &str| nm.data["usage"][k].as_str().and_then(quantity);
        let (a_cpu, a_memory) = allocatable.get(&name).copied().unwrap_or_default();
        if let (Some(u), Some(a)) = (usage("cpu"), a_cpu.filter(|a| *a > 0.0)) {
            node_cpu.insert(name.clone(), u / a * 100.0);
        }
        if let (Some(u), Some(a)) = (usage("memory"), a_memory.filter(|a| *a > 0.0)) {
            node_memory.insert(name, u / a * 100.0);
        }
    }

    let series = |label: &str, values: BTreeMap<String, f64>| -> Vec<Series> {
        values
            .into_iter()
            .map(|(subject, value)| Series {
                labels: json!({ label: subject })
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                value,
            })
            .collect()
    };
    Ok(Usage {
        cpu: series("container", cpu),
        memory: series("container", memory),
        node_cpu: series("instance", node_cpu),
        node_memory: series("instance", node_memory),
        unlimited_cpu,
    })
}

fn worst(map: &mut BTreeMap<String, f64>, name: &str, value: f64) {
    let v = map.entry(name.to_string()).or_insert(value);
    if value > *v {
        *v = value;
    }
}

/// A Kubernetes quantity (`250m`, `123456789n`, `512Mi`, `1G`, `1.5`, `1e3`) as a plain
/// number of cores or bytes; `None` for what is not one.
pub fn quantity(q: &str) -> Option<f64> {
    const SUFFIXES: [(&str, f64); 13] = [
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("Ei", 1_152_921_504_606_846_976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    let q = q.trim();
    for (suffix, factor) in SUFFIXES {
        if let Some(n) = q.strip_suffix(suffix) {
            return n.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    // Plain, or decimal exponent (`1e3`, `12E6`); `P` and `E` as SI suffixes are left out:
    // `E` would read as an exponent.
    q.parse::<f64>().ok().filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_as_metrics_server_and_pod_specs_write_them() {
        assert_eq!(quantity("250m"), Some(0.25));
        let nanocores = quantity("123456789n").unwrap();
        assert!((nanocores - 0.123456789).abs() < 1e-12, "{nanocores}");
        assert_eq!(quantity("2048Ki"), Some(2_097_152.0));
        assert_eq!(quantity("1Gi"), Some(1_073_741_824.0));
        assert_eq!(quantity("2"), Some(2.0));
        assert_eq!(quantity("1e3"), Some(1000.0));
        assert_eq!(quantity("1.5G"), Some(1.5e9));
        assert_eq!(quantity("lots"), None);
    }
}
