//! Prometheus alerting rules for the capacity signals: per signal a `warning` rule at its
//! warning level and a `critical` one at its failure level (one rule when both levels are
//! the same), each with a summary naming the subject and value and a description naming the
//! README's runbook entry. As a rule file (`promtool check rules` accepts it) or wrapped in
//! a prometheus-operator `PrometheusRule`.

use serde::Serialize;

use crate::config::Thresholds;
use crate::config::thresholds::Direction;
use crate::health::signals::{SIGNALS, Signal};

/// The rule group's name, also the PrometheusRule's.
pub const GROUP: &str = "paragon-capacity";

/// Which document to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A Prometheus rule file (`rule_files:`).
    Prometheus,
    /// A `monitoring.coreos.com/v1` PrometheusRule.
    Kubernetes,
}

#[derive(Debug, Serialize)]
pub struct RuleFile {
    pub groups: Vec<Group>,
}

#[derive(Debug, Serialize)]
pub struct Group {
    pub name: String,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Serialize)]
pub struct Rule {
    pub alert: String,
    pub expr: String,
    #[serde(rename = "for")]
    pub for_: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PrometheusRule<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata,
    spec: &'a RuleFile,
}

#[derive(Serialize)]
struct Metadata {
    name: &'static str,
    namespace: &'static str,
    labels: std::collections::BTreeMap<&'static str, &'static str>,
}

/// The rules for every signal at `thresholds`, each holding for `hold` (`5m`, `0s`) before it fires.
pub fn rules(thresholds: &Thresholds, hold: &str) -> RuleFile {
    let mut rules = Vec::new();
    for signal in SIGNALS {
        let limit = thresholds.get(signal.key);
        let mut levels = vec![("critical", limit.fail)];
        if limit.warn != limit.fail {
            levels.insert(0, ("warning", limit.warn));
        }
        for (severity, at) in levels {
            rules.push(rule(signal, severity, at, hold));
        }
    }
    RuleFile {
        groups: vec![Group {
            name: GROUP.into(),
            rules,
        }],
    }
}

fn rule(signal: &Signal, severity: &str, at: f64, hold: &str) -> Rule {
    let level = signal.level();
    let op = match level.direction {
        Direction::Above => ">=",
        Direction::Below => "<=",
    };
    let subject = match signal.by {
        "mountpoint" => "{{ $labels.instance }} {{ $labels.mountpoint }}".to_string(),
        by => format!("{{{{ $labels.{by} }}}}"),
    };
    let value = format!("{{{{ $value | printf \"%.1f\" }}}}{}", level.unit.suffix());
    let labels = [
        ("severity", severity.to_string()),
        ("signal", signal.key.to_string()),
    ];
    let word = match level.direction {
        Direction::Above => "at or above",
        Direction::Below => "at or below",
    };
    let annotations = [
        (
            "summary",
            format!("{} {subject}: {} {value}", signal.noun, signal.what),
        ),
        (
            "description",
            format!(
                "{} {subject}: {} is {value}, {word} the {severity} level {} (source: {}). Runbook: {}",
                signal.noun,
                signal.what,
                level.unit.format(at),
                signal.source,
                signal.runbook()
            ),
        ),
        ("runbook_url", signal.runbook()),
    ];
    Rule {
        alert: signal.alert_name(),
        expr: format!("({}) {op} {at}", signal.query),
        for_: hold.to_string(),
        labels: labels
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        annotations: annotations
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    }
}

/// The YAML document in `format`.
pub fn render(file: &RuleFile, format: Format) -> Result<String, serde_saphyr::ser::Error> {
    match format {
        Format::Prometheus => serde_saphyr::to_string(file),
        Format::Kubernetes => serde_saphyr::to_string(&prometheus_rule(file)),
    }
}

/// The PrometheusRule of `file` as a JSON object (what `monitoring install` applies).
pub fn prometheus_rule_object(file: &RuleFile) -> Result<serde_json::Value, serde_json::Error> {
    serde_json::to_value(prometheus_rule(file))
}

/// The labels of every object `monitoring` writes into the cluster.
pub const LABELS: [(&str, &str); 2] = [
    ("app.kubernetes.io/name", GROUP),
    ("app.kubernetes.io/managed-by", "paragon-admin"),
];

fn prometheus_rule(file: &RuleFile) -> PrometheusRule<'_> {
    PrometheusRule {
        api_version: "monitoring.coreos.com/v1",
        kind: "PrometheusRule",
        metadata: Metadata {
            name: GROUP,
            namespace: crate::kube::NAMESPACE,
            labels: LABELS.into_iter().collect(),
        },
        spec: file,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_signal_has_a_warning_and_a_critical_rule_at_its_levels() {
        let f = rules(&Thresholds::default(), "5m");
        let r = &f.groups[0].rules;
        let memory: Vec<_> = r.iter().filter(|r| r.alert == "ParagonMemory").collect();
        assert_eq!(memory.len(), 2);
        assert!(memory[0].expr.ends_with(") >= 90"), "{}", memory[0].expr);
        assert_eq!(memory[1].labels["severity"], "critical");
        assert!(memory[1].annotations["description"].contains("README.md#runbook-memory"));
        // Equal levels: only the critical rule.
        assert_eq!(r.iter().filter(|r| r.alert == "ParagonOomKills").count(), 1);
        let disk = r.iter().find(|r| r.alert == "ParagonDiskFree").unwrap();
        assert!(disk.expr.ends_with(") <= 15"), "{}", disk.expr);
        assert_eq!(
            disk.annotations["summary"],
            "filesystem {{ $labels.instance }} {{ $labels.mountpoint }}: free {{ $value | printf \"%.1f\" }} %"
        );
    }

    #[test]
    fn the_kubernetes_form_is_a_prometheus_rule() {
        let y = render(&rules(&Thresholds::default(), "5m"), Format::Kubernetes).unwrap();
        assert!(
            y.starts_with("apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\n"),
            "{y}"
        );
        assert!(y.contains("namespace: paragon"), "{y}");
    }
}
