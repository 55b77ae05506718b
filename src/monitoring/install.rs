//! What `monitoring install` puts into the cluster, and what it changes: the dashboard as a
//! ConfigMap labelled `grafana_dashboard: "1"` (the Grafana chart's dashboard sidecar loads
//! every such ConfigMap of its namespace), and the rules as a PrometheusRule when the cluster
//! serves `prometheusrules.monitoring.coreos.com` (prometheus-operator), else as a ConfigMap
//! holding the rule file, which the release's Prometheus mounts into its `rule_files`.
//!
//! Pure: the objects, the comparison with what the cluster holds (`kubectl get -o json`) and
//! the reading of `kubectl apply`'s answer. Knows nothing of SSH or of how kubectl is run.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::rules::{self, LABELS, RuleFile};

/// The dashboard's ConfigMap, and its one key (the file the sidecar writes for Grafana).
pub const DASHBOARD_CONFIGMAP: &str = "paragon-capacity-dashboard";
pub const DASHBOARD_FILE: &str = "paragon-capacity.json";
/// The rules' ConfigMap (without prometheus-operator), and its one key.
pub const RULES_CONFIGMAP: &str = "paragon-capacity-rules";
pub const RULES_FILE: &str = "paragon-capacity.rules.yml";
/// The resource whose presence says prometheus-operator runs.
pub const PROMETHEUS_RULES: &str = "prometheusrules.monitoring.coreos.com";

/// How the rules are installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RulesAs {
    PrometheusRule,
    ConfigMap,
}

impl RulesAs {
    /// From `kubectl api-resources -o name`'s list: a PrometheusRule when the CRD is served.
    pub fn from_api_resources(names: &str) -> RulesAs {
        if names.lines().any(|l| l.trim() == PROMETHEUS_RULES) {
            RulesAs::PrometheusRule
        } else {
            RulesAs::ConfigMap
        }
    }
}

/// One object to apply.
#[derive(Debug, Clone, Serialize)]
pub struct Object {
    pub kind: &'static str,
    pub name: &'static str,
    /// The object as applied.
    pub manifest: Value,
}

impl Object {
    /// The name kubectl gives it (`configmap/NAME`, `prometheusrule.monitoring.coreos.com/NAME`).
    pub fn reference(&self) -> String {
        match self.kind {
            "PrometheusRule" => format!("prometheusrule.monitoring.coreos.com/{}", self.name),
            kind => format!("{}/{}", kind.to_lowercase(), self.name),
        }
    }

    /// What `kubectl apply` would change: the object's content (`data`, or the rule's `spec`)
    /// and its labels, against the cluster's copy.
    fn change_against(&self, live: Option<&Value>) -> Change {
        let Some(live) = live else {
            return Change::Create;
        };
        let content = |v: &Value| match self.kind {
            "PrometheusRule" => v.get("spec").cloned(),
            _ => v.get("data").cloned(),
        };
        let labels_kept = self.manifest["metadata"]["labels"]
            .as_object()
            .into_iter()
            .flatten()
            .all(|(k, v)| live["metadata"]["labels"].get(k) == Some(v));
        if content(&self.manifest) == content(live) && labels_kept {
            Change::Unchanged
        } else {
            Change::Update
        }
    }
}

/// What applying does to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Create,
    Update,
    Unchanged,
}

impl Change {
    /// As kubectl says it after applying.
    pub fn applied(self) -> &'static str {
        match self {
            Change::Create => "created",
            Change::Update => "configured",
            Change::Unchanged => "unchanged",
        }
    }
}

/// Why the objects cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot write the {what}: {reason}")]
    Render { what: &'static str, reason: String },
    #[error("kubectl on the bastion answered what is not a Kubernetes list ({0})")]
    NotAList(String),
}

/// The dashboard and the rules at `file`, for the namespace of the monitoring release.
pub fn objects(
    file: &RuleFile,
    dashboard: &Value,
    rules_as: RulesAs,
) -> Result<Vec<Object>, InstallError> {
    let render = |what, reason: String| InstallError::Render { what, reason };
    let labels = |extra: &[(&str, &str)]| -> BTreeMap<String, String> {
        LABELS
            .iter()
            .chain(extra)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let config_map = |name: &'static str, extra: &[(&str, &str)], key: &str, text: String| Object {
        kind: "ConfigMap",
        name,
        manifest: json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": crate::kube::NAMESPACE,
                "labels": labels(extra),
            },
            "data": { key: text },
        }),
    };
    let mut dashboard_json =
        serde_json::to_string_pretty(dashboard).map_err(|e| render("dashboard", e.to_string()))?;
    dashboard_json.push('\n');
    let mut out = vec![config_map(
        DASHBOARD_CONFIGMAP,
        &[("grafana_dashboard", "1")],
        DASHBOARD_FILE,
        dashboard_json,
    )];
    out.push(match rules_as {
        RulesAs::PrometheusRule => Object {
            kind: "PrometheusRule",
            name: rules::GROUP,
            manifest: rules::prometheus_rule_object(file)
                .map_err(|e| render("rules", e.to_string()))?,
        },
        RulesAs::ConfigMap => config_map(
            RULES_CONFIGMAP,
            &[],
            RULES_FILE,
            rules::render(file, rules::Format::Prometheus)
                .map_err(|e| render("rules", e.to_string()))?,
        ),
    });
    Ok(out)
}

/// The objects as one YAML stream (what `kubectl apply -f -` reads and `--dry-run` prints).
pub fn manifests(objects: &[Object]) -> Result<String, InstallError> {
    let mut out = String::new();
    for o in objects {
        let yaml = serde_saphyr::to_string(&o.manifest).map_err(|e| InstallError::Render {
            what: "manifests",
            reason: e.to_string(),
        })?;
        out.push_str("---\n");
        out.push_str(&yaml);
    }
    Ok(out)
}

/// `kubectl get REFS -o json --ignore-not-found`: what the cluster holds of them (nothing
/// printed when none exists; a `List`, or the one object).
pub fn live_objects(stdout: &str) -> Result<Vec<Value>, InstallError> {
    if stdout.trim().is_empty() {
        return Ok(Vec::new());
    }
    let v: Value = serde_json::from_str(stdout)
        .map_err(|e| InstallError::NotAList(crate::health::one_line(&e.to_string(), 120)))?;
    match v.get("kind").and_then(Value::as_str) {
        Some("List") => Ok(v["items"].as_array().cloned().unwrap_or_default()),
        Some(_) => Ok(vec![v]),
        None => Err(InstallError::NotAList("no kind".into())),
    }
}

/// Each object's change against `live`.
pub fn plan(objects: &[Object], live: &[Value]) -> Vec<Change> {
    objects
        .iter()
        .map(|o| {
            let found = live
                .iter()
                .find(|l| l["kind"] == o.kind && l["metadata"]["name"] == o.name);
            o.change_against(found)
        })
        .collect()
}

/// What `kubectl apply` said it did to each of `objects` (`configmap/NAME created`), or
/// `None` for an object it did not name.
pub fn applied(objects: &[Object], stdout: &str) -> Vec<Option<String>> {
    objects
        .iter()
        .map(|o| {
            let reference = o.reference();
            stdout.lines().find_map(|l| {
                let (name, what) = l.trim().split_once(' ')?;
                (name == reference).then(|| what.trim().to_string())
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Thresholds;

    fn ours(rules_as: RulesAs) -> Vec<Object> {
        let t = Thresholds::default();
        let d = serde_json::to_value(super::super::dashboard::dashboard(&t)).unwrap();
        objects(&rules::rules(&t, "5m"), &d, rules_as).unwrap()
    }

    #[test]
    fn the_dashboard_is_a_labelled_config_map_and_the_rules_follow_the_cluster() {
        let o = ours(RulesAs::ConfigMap);
        assert_eq!(
            o[0].manifest["metadata"]["labels"]["grafana_dashboard"],
            "1"
        );
        assert_eq!(o[0].manifest["metadata"]["namespace"], "paragon");
        assert!(
            o[1].manifest["data"][RULES_FILE]
                .as_str()
                .unwrap()
                .contains("name: paragon-capacity")
        );
        let o = ours(RulesAs::PrometheusRule);
        assert_eq!(o[1].manifest["kind"], "PrometheusRule");
        assert_eq!(
            o[1].reference(),
            "prometheusrule.monitoring.coreos.com/paragon-capacity"
        );
        let names = "prometheuses.monitoring.coreos.com\nprometheusrules.monitoring.coreos.com\n";
        assert_eq!(RulesAs::from_api_resources(names), RulesAs::PrometheusRule);
        assert_eq!(RulesAs::from_api_resources(""), RulesAs::ConfigMap);
    }

    #[test]
    fn the_plan_creates_what_is_missing_and_leaves_what_matches() {
        let o = ours(RulesAs::ConfigMap);
        assert_eq!(plan(&o, &[]), [Change::Create, Change::Create]);
        let mut live: Vec<Value> = o.iter().map(|o| o.manifest.clone()).collect();
        // The server's additions change nothing.
        live[0]["metadata"]["uid"] = json!("u");
        live[0]["metadata"]["labels"]["team"] = json!("ops");
        assert_eq!(plan(&o, &live), [Change::Unchanged, Change::Unchanged]);
        live[1]["data"][RULES_FILE] = json!("groups: []\n");
        live[0]["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("grafana_dashboard");
        assert_eq!(plan(&o, &live), [Change::Update, Change::Update]);
        let list = json!({"kind": "List", "items": [live[0]]}).to_string();
        assert_eq!(live_objects(&list).unwrap().len(), 1);
        assert!(live_objects("").unwrap().is_empty());
        assert!(live_objects("error").is_err());
    }

    #[test]
    fn kubectls_answer_names_each_object() {
        let o = ours(RulesAs::ConfigMap);
        let said = applied(
            &o,
            "configmap/paragon-capacity-dashboard unchanged\nconfigmap/paragon-capacity-rules created\n",
        );
        assert_eq!(said, [Some("unchanged".into()), Some("created".into())]);
        assert_eq!(applied(&o, ""), [None, None]);
    }
}
