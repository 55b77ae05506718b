//! Nodes: Ready, memory/disk/PID pressure, NetworkUnavailable, any other condition that is
//! True (node-problem-detector's and the providers' conditions all mean a problem when True),
//! cordoned, kubelet version skew.

use k8s_openapi::api::core::v1::Node;
use kube::api::Api;

use super::api::parse_git_version;
use super::{CheckResult, Finding, count};
use crate::kube::list::each_page;

/// Conditions that, when True, mean the node cannot run its pods properly: a failure.
/// Other conditions that are True (KernelDeadlock, ReadonlyFilesystem, a provider's own) are
/// warnings: every condition but Ready means a problem when True.
const FAILING: &[&str] = &[
    "MemoryPressure",
    "DiskPressure",
    "PIDPressure",
    "NetworkUnavailable",
];

/// Kubelets may be up to three minor versions older than the API server, never newer.
const MAX_KUBELET_LAG: u32 = 3;

/// The nodes' findings; `api_version` is the API server's, once the API check has read it.
pub async fn check(
    client: kube::Client,
    api_version: impl Future<Output = Option<(u32, u32)>>,
) -> CheckResult {
    let api_version = api_version.await;
    let api: Api<Node> = Api::all(client);
    let mut findings = Vec::new();
    let (mut total, mut ready) = (0usize, 0usize);
    each_page(&api, super::lists(), |page| {
        for node in &page {
            total += 1;
            let found = examine(node, api_version);
            if !found.iter().any(|f| f.message.starts_with("not Ready")) {
                ready += 1;
            }
            findings.extend(found);
        }
    })
    .await?;
    if findings.is_empty() {
        findings.push(Finding::ok(
            "nodes",
            format!("{} Ready, no pressure", count(total, "node", "nodes")),
        ));
    } else if ready > 0 {
        findings.push(Finding::ok(
            "nodes",
            format!("{ready} of {} Ready", count(total, "node", "nodes")),
        ));
    }
    Ok(findings)
}

/// The problems of one node.
pub fn examine(node: &Node, api_version: Option<(u32, u32)>) -> Vec<Finding> {
    let name = node.metadata.name.as_deref().unwrap_or_default();
    let subject = format!("node/{name}");
    let mut out = Vec::new();
    let conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let ready = conditions.iter().find(|c| c.type_ == "Ready");
    match ready {
        Some(c) if c.status == "True" => {}
        Some(c) => out.push(Finding::fail(
            &subject,
            format!(
                "not Ready ({}): {}",
                c.status,
                super::one_line(
                    c.message
                        .as_deref()
                        .or(c.reason.as_deref())
                        .unwrap_or("no reason given"),
                    120
                )
            ),
        )),
        None => out.push(Finding::fail(
            &subject,
            "not Ready: no Ready condition reported",
        )),
    }
    for c in conditions.iter().filter(|c| c.type_ != "Ready") {
        if c.status != "True" {
            continue;
        }
        let why = match (c.reason.as_deref(), c.message.as_deref()) {
            (Some(r), Some(m)) if !m.is_empty() => format!("{r}: {}", super::one_line(m, 100)),
            (Some(r), _) => r.to_string(),
            (None, Some(m)) => super::one_line(m, 100),
            (None, None) => "no reason given".to_string(),
        };
        let msg = format!("{} ({why})", c.type_);
        out.push(if FAILING.contains(&c.type_.as_str()) {
            Finding::fail(&subject, msg)
        } else {
            Finding::warn(&subject, msg)
        });
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        out.push(Finding::warn(
            &subject,
            "cordoned: no new pods are scheduled here",
        ));
    }
    let kubelet = node
        .status
        .as_ref()
        .and_then(|s| s.node_info.as_ref())
        .map(|i| i.kubelet_version.as_str());
    if let (Some(kv), Some((amaj, amin))) = (kubelet, api_version)
        && let Some((kmaj, kmin)) = parse_git_version(kv)
    {
        if kmaj != amaj || kmin > amin {
            out.push(Finding::warn(
                &subject,
                format!("kubelet {kv} is newer than the API server {amaj}.{amin}"),
            ));
        } else if amin - kmin > MAX_KUBELET_LAG {
            out.push(Finding::warn(
                &subject,
                format!("kubelet {kv} is more than {MAX_KUBELET_LAG} minor versions behind the API server {amaj}.{amin}"),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Severity;
    use serde_json::json;

    fn node(v: serde_json::Value) -> Node {
        serde_json::from_value(v).unwrap()
    }

    fn healthy() -> serde_json::Value {
        json!({"metadata": {"name": "n1"}, "status": {
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "MemoryPressure", "status": "False"}],
            "nodeInfo": {"kubeletVersion": "v1.33.1", "machineID": "", "systemUUID": "", "bootID": "",
              "kernelVersion": "", "osImage": "", "containerRuntimeVersion": "", "kubeProxyVersion": "",
              "operatingSystem": "linux", "architecture": "amd64"}}})
    }

    #[test]
    fn healthy_node_has_no_findings() {
        assert!(examine(&node(healthy()), Some((1, 33))).is_empty());
    }

    #[test]
    fn unknown_ready_and_pressure_fail() {
        let mut v = healthy();
        v["status"]["conditions"] = json!([
            {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown", "message": "Kubelet stopped posting node status."},
            {"type": "MemoryPressure", "status": "True", "reason": "KubeletHasInsufficientMemory"}]);
        let f = examine(&node(v), Some((1, 33)));
        assert_eq!(f.len(), 2);
        assert!(
            f.iter()
                .all(|f| f.severity == Severity::Fail && f.subject == "node/n1")
        );
        assert!(
            f[0].message.contains("Kubelet stopped posting"),
            "{}",
            f[0].message
        );
        assert!(
            f[1].message.starts_with("MemoryPressure"),
            "{}",
            f[1].message
        );
    }

    #[test]
    fn cordoned_and_skewed_warn() {
        let mut v = healthy();
        v["spec"] = json!({"unschedulable": true});
        v["status"]["nodeInfo"]["kubeletVersion"] = json!("v1.28.0");
        let f = examine(&node(v), Some((1, 33)));
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f.iter().all(|f| f.severity == Severity::Warn));
        assert!(f[1].message.contains("behind"), "{}", f[1].message);
    }

    #[test]
    fn network_unavailable_fails_and_other_true_conditions_warn() {
        // The route controller's and node-problem-detector's shapes.
        let mut v = healthy();
        v["status"]["conditions"] = json!([
            {"type": "Ready", "status": "True", "reason": "KubeletReady"},
            {"type": "NetworkUnavailable", "status": "True", "reason": "NoRouteCreated",
             "message": "Node created without a route"},
            {"type": "KernelDeadlock", "status": "True", "reason": "DockerHung",
             "message": "task docker:7 blocked for more than 120 seconds."},
            {"type": "ReadonlyFilesystem", "status": "False", "reason": "FilesystemIsNotReadOnly"}]);
        let f = examine(&node(v), Some((1, 33)));
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(f[0].severity, Severity::Fail);
        assert_eq!(
            f[0].message,
            "NetworkUnavailable (NoRouteCreated: Node created without a route)"
        );
        assert_eq!(f[1].severity, Severity::Warn);
        assert!(
            f[1].message.starts_with("KernelDeadlock (DockerHung"),
            "{}",
            f[1].message
        );
    }
}
