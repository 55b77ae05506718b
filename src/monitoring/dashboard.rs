//! The Grafana dashboard (its JSON model, for Grafana's import or its sidecar): one row per
//! group of signals, one time-series panel per signal drawing the report's own query with its
//! warning and failure levels as threshold lines, and the runbook entry in the description.

use serde_json::{Value, json};

use crate::config::Thresholds;
use crate::config::thresholds::Direction;
use crate::health::signals::{Group, SIGNALS};

/// The dashboard's uid and title.
pub const UID: &str = "paragon-capacity";
const TITLE: &str = "Paragon capacity";

/// The dashboard at `thresholds`.
pub fn dashboard(thresholds: &Thresholds) -> Value {
    let mut panels = Vec::new();
    let mut y = 0;
    let mut id = 1;
    for group in Group::ALL {
        panels.push(json!({
            "id": id, "type": "row", "title": group.title(), "collapsed": false,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": [],
        }));
        id += 1;
        y += 1;
        for (i, signal) in SIGNALS.iter().filter(|s| s.group == group).enumerate() {
            let level = signal.level();
            let limit = thresholds.get(signal.key);
            let steps = match level.direction {
                Direction::Above => json!([
                    {"color": "green", "value": null},
                    {"color": "orange", "value": limit.warn},
                    {"color": "red", "value": limit.fail},
                ]),
                Direction::Below => json!([
                    {"color": "red", "value": null},
                    {"color": "orange", "value": limit.fail},
                    {"color": "green", "value": limit.warn},
                ]),
            };
            let legend = match signal.by {
                "mountpoint" => "{{instance}} {{mountpoint}}".to_string(),
                by => format!("{{{{{by}}}}}"),
            };
            let x = if i % 2 == 0 { 0 } else { 12 };
            panels.push(json!({
                "id": id,
                "type": "timeseries",
                "title": format!("{}: {}", signal.noun, signal.what),
                "description": format!("{} (source: {}). Runbook: {}", signal.key, signal.source, signal.runbook()),
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
                "targets": [{
                    "refId": "A",
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "expr": signal.query,
                    "legendFormat": legend,
                }],
                "fieldConfig": {
                    "defaults": {
                        "unit": level.unit.grafana(),
                        "thresholds": {"mode": "absolute", "steps": steps},
                        "custom": {"thresholdsStyle": {"mode": "line"}},
                    },
                    "overrides": [],
                },
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
            }));
            id += 1;
            if x == 12 {
                y += 8;
            }
        }
        if SIGNALS.iter().filter(|s| s.group == group).count() % 2 == 1 {
            y += 8;
        }
    }
    json!({
        "uid": UID,
        "title": TITLE,
        "tags": ["paragon", "paragon-admin"],
        "editable": true,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "1m",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [{
            "name": "datasource", "type": "datasource", "query": "prometheus",
            "label": "Prometheus", "current": {}, "hide": 0,
        }]},
        "panels": panels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_group_and_one_panel_per_signal_with_its_levels() {
        let d = dashboard(&Thresholds::default());
        let panels = d["panels"].as_array().unwrap();
        let rows: Vec<_> = panels
            .iter()
            .filter(|p| p["type"] == "row")
            .map(|p| p["title"].as_str().unwrap())
            .collect();
        assert_eq!(
            rows,
            [
                "CPU",
                "Memory",
                "Restarts",
                "Queues",
                "PostgreSQL",
                "Redis",
                "Disk",
                "Errors"
            ]
        );
        assert_eq!(panels.len(), rows.len() + SIGNALS.len());
        let memory = panels
            .iter()
            .find(|p| {
                p["targets"][0]["expr"]
                    .as_str()
                    .is_some_and(|e| e.contains("working_set"))
            })
            .unwrap();
        assert_eq!(
            memory["fieldConfig"]["defaults"]["thresholds"]["steps"][1]["value"],
            90.0
        );
        // Panels never overlap: each (x, y) is used once.
        let mut seen = std::collections::BTreeSet::new();
        for p in panels {
            assert!(
                seen.insert((p["gridPos"]["x"].as_u64(), p["gridPos"]["y"].as_u64())),
                "{p}"
            );
        }
    }
}
