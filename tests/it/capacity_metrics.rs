//! Capacity without Prometheus: the sandbox serves the resource metrics API
//! (`metrics.k8s.io/v1beta1`) as metrics-server does, the real `kubectl top` reads it, and the
//! health report judges CPU and memory from it when no Prometheus answers.

use serde_json::Value;

use crate::support::sandbox::SandboxProc;
use crate::support::{Home, run};

/// hermes' pods at 98 % of their memory limit (over the default failure level, 97 %), zeus'
/// at 93 % (over the warning level, 90 %); the others at 30 to 60 %.
const HOT: [&str; 4] = ["--memory-use", "hermes=98", "--memory-use", "zeus=93"];

/// A pod's container's memory limit in bytes, from the pod list.
fn memory_limit(pods: &Value, pod: &str) -> u64 {
    let p = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["metadata"]["name"] == pod)
        .unwrap_or_else(|| panic!("no pod {pod}"));
    let limit = p["spec"]["containers"][0]["resources"]["limits"]["memory"]
        .as_str()
        .unwrap();
    let (n, unit) = limit.split_at(limit.find(|c: char| !c.is_ascii_digit()).unwrap());
    let factor = match unit {
        "Mi" => 1024 * 1024,
        "Gi" => 1024 * 1024 * 1024,
        other => panic!("unit {other}"),
    };
    n.parse::<u64>().unwrap() * factor
}

#[test]
fn kubectl_top_reads_the_sandboxes_metrics_api_in_metrics_servers_shapes() {
    let sandbox = SandboxProc::start(&HOT);
    // Discovery: the group, its resources, and the APIService that registers it.
    let groups: Value =
        serde_json::from_str(&sandbox.kubectl_ok(&["get", "--raw", "/apis"])).unwrap();
    let metrics = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "metrics.k8s.io")
        .unwrap_or_else(|| panic!("no metrics.k8s.io in {groups}"));
    assert_eq!(metrics["preferredVersion"]["version"], "v1beta1");
    let service = sandbox.kubectl_json(&["get", "apiservice", "v1beta1.metrics.k8s.io"]);
    assert_eq!(service["status"]["conditions"][0]["type"], "Available");
    assert_eq!(service["status"]["conditions"][0]["status"], "True");

    // The list's exact shape.
    let raw: Value = serde_json::from_str(&sandbox.kubectl_ok(&[
        "get",
        "--raw",
        "/apis/metrics.k8s.io/v1beta1/namespaces/paragon/pods?labelSelector=app.kubernetes.io/name%3Dhermes",
    ]))
    .unwrap();
    assert_eq!(raw["kind"], "PodMetricsList");
    assert_eq!(raw["apiVersion"], "metrics.k8s.io/v1beta1");
    let items = raw["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{raw:#}");
    let pods = sandbox.kubectl_json(&["get", "pods", "-n", "paragon"]);
    for item in items {
        let name = item["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with("hermes-"), "{item}");
        assert_eq!(item["metadata"]["namespace"], "paragon");
        assert_eq!(
            item["metadata"]["labels"]["app.kubernetes.io/name"],
            "hermes"
        );
        assert!(item["metadata"]["creationTimestamp"].is_string(), "{item}");
        assert!(item["timestamp"].as_str().unwrap().ends_with('Z'), "{item}");
        assert_eq!(item["window"], "15s");
        let c = &item["containers"][0];
        assert_eq!(c["name"], "hermes");
        let cpu = c["usage"]["cpu"].as_str().unwrap();
        assert!(
            cpu.strip_suffix('n').unwrap().parse::<u64>().unwrap() > 0,
            "{cpu}"
        );
        let memory = c["usage"]["memory"].as_str().unwrap();
        let kib: u64 = memory.strip_suffix("Ki").unwrap().parse().unwrap();
        assert_eq!(kib, memory_limit(&pods, name) * 98 / 100 / 1024, "{item}");
    }

    // The real kubectl top, pods and nodes.
    let top = sandbox.kubectl_ok(&["top", "pods", "-n", "paragon", "--containers"]);
    let hermes: Vec<&str> = top.lines().filter(|l| l.starts_with("hermes-")).collect();
    assert_eq!(hermes.len(), 2, "{top}");
    assert!(hermes[0].contains("Mi"), "{top}");
    assert!(top.lines().count() > 40, "{top}");
    let nodes = sandbox.kubectl_ok(&["top", "nodes"]);
    let lines: Vec<&str> = nodes.lines().collect();
    assert_eq!(lines.len(), 4, "{nodes}");
    assert!(
        lines[0].contains("CPU(%)") && lines[0].contains("MEMORY(%)"),
        "{nodes}"
    );
    for l in &lines[1..] {
        assert_eq!(l.matches('%').count(), 2, "{nodes}");
    }
}

#[test]
fn without_prometheus_health_judges_cpu_and_memory_from_the_metrics_api() {
    let sandbox = SandboxProc::start(&HOT);
    let closed = crate::support::closed_port();
    let home = Home::new();
    home.write_config(&format!(
        "[profiles.t]\nhost = \"127.0.0.1\"\n\
         [profiles.t.services.prometheus]\ntarget = \"127.0.0.1:{closed}\"\nvia = \"bastion\"\n"
    ));
    let r = run(home.paragon().args([
        "health",
        "--local",
        "--output",
        "json",
        "--timeout",
        "20",
        "--kubeconfig",
        sandbox.kubeconfig.to_str().unwrap(),
    ]));
    let v: Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", r.stdout, r.stderr));
    let capacity: Vec<&Value> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["area"] == "capacity")
        .collect();
    let find = |subject: &str| {
        capacity
            .iter()
            .find(|c| c["subject"] == subject)
            .unwrap_or_else(|| panic!("no capacity finding about {subject}: {capacity:#?}"))
    };
    let from = "; from the metrics API (metrics.k8s.io)";
    // Over the levels: each names the service and the value against its levels.
    let hermes = find("service hermes");
    assert_eq!(hermes["status"], "fail");
    assert_eq!(
        hermes["message"],
        format!(
            "memory: service hermes: memory working set of its limit (largest pod) 98.0 % (warn at 90 %, fail at 97 %){from}"
        )
    );
    let zeus = find("service zeus");
    assert_eq!(zeus["status"], "warn");
    assert!(
        zeus["message"]
            .as_str()
            .unwrap()
            .contains(" 93.0 % (warn at 90 %"),
        "{zeus}"
    );
    // The quiet services pass, and so do the nodes.
    for key in ["memory", "node_cpu", "node_memory"] {
        let f = find(key);
        assert_eq!(
            (&f["status"], &f["checked"]),
            (&"ok".into(), &true.into()),
            "{f}"
        );
        assert!(f["message"].as_str().unwrap().ends_with(from), "{f}");
    }
    let quiet = find("memory")["message"].as_str().unwrap();
    assert!(
        quiet.starts_with("memory: 37 services within levels; worst service "),
        "{quiet}"
    );
    assert!(
        !quiet.contains("hermes") && !quiet.contains("zeus"),
        "{quiet}"
    );
    // Paragon's chart sets no CPU limits: nothing to judge CPU against, and it says so.
    assert_eq!(find("cpu")["status"], "ok");
    // Every other signal: not checked, and why.
    let rest = find("capacity");
    assert_eq!(rest["checked"], false, "{rest}");
    let msg = rest["message"].as_str().unwrap();
    assert!(
        msg.starts_with("not checked (cpu_throttling, oom_kills, restarts, queue_backlog,"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("Prometheus 127.0.0.1:{closed} unreachable"))
            && msg.ends_with("; CPU and memory came from the metrics API"),
        "{msg}"
    );
    assert_eq!(r.status, Some(1), "{}", r.stderr);
}
