//! The API server's discovery documents: `/version`, the API groups and the resources each
//! serves, as kubectl and kube-rs ask for them before anything else. Built from the store's
//! kind table, so a kind the store serves is discovered with no second list to keep in step.
//! It knows nothing of routing, TLS or the world's objects.

use super::store::ALL;

pub(super) fn version() -> serde_json::Value {
    serde_json::json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": "v1.33.1-paragon-sandbox",
        "gitCommit": "8adc0f041b8e7ad1d30e29cc59c6ae7a15e19828",
        "gitTreeState": "clean",
        "buildDate": "2025-05-15T08:19:08Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

const GROUPS: [&str; 4] = ["apps", "batch", "storage.k8s.io", "events.k8s.io"];

pub(super) fn group_of(name: &str) -> Option<serde_json::Value> {
    GROUPS.contains(&name).then(|| {
        let gv = serde_json::json!({ "groupVersion": format!("{name}/v1"), "version": "v1" });
        serde_json::json!({
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": name,
            "versions": [gv.clone()],
            "preferredVersion": gv,
        })
    })
}

pub(super) fn group_list() -> serde_json::Value {
    let groups: Vec<serde_json::Value> = GROUPS
        .iter()
        .filter_map(|g| {
            group_of(g).map(|mut v| {
                if let Some(o) = v.as_object_mut() {
                    o.remove("kind");
                    o.remove("apiVersion");
                }
                v
            })
        })
        .collect();
    let mut groups = groups;
    // The aggregated metrics API (metrics-server) and the group that registers it.
    for mut g in [super::metrics::group(), super::metrics::aggregator_group()] {
        if let Some(o) = g.as_object_mut() {
            o.remove("kind");
            o.remove("apiVersion");
        }
        groups.push(g);
    }
    serde_json::json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

pub(super) fn resource_list(group: &str) -> serde_json::Value {
    let resources: Vec<serde_json::Value> = ALL
        .iter()
        .map(|r| r.kind())
        .filter(|k| k.group == group)
        .map(|k| {
            let mut v = serde_json::json!({
                "name": k.plural,
                "singularName": k.singular,
                "namespaced": k.namespaced,
                "kind": k.kind,
                "verbs": ["get", "list", "watch"],
            });
            if !k.short_names.is_empty() {
                v["shortNames"] = serde_json::json!(k.short_names);
            }
            if matches!(
                k.plural,
                "pods"
                    | "services"
                    | "deployments"
                    | "statefulsets"
                    | "daemonsets"
                    | "replicasets"
                    | "jobs"
                    | "cronjobs"
            ) {
                v["categories"] = serde_json::json!(["all"]);
            }
            v
        })
        .collect();
    let mut resources = resources;
    if group.is_empty() {
        resources.push(serde_json::json!({
            "name": "pods/log",
            "singularName": "",
            "namespaced": true,
            "kind": "Pod",
            "verbs": ["get"],
        }));
    }
    let gv = if group.is_empty() {
        "v1".to_string()
    } else {
        format!("{group}/v1")
    };
    serde_json::json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    })
}
