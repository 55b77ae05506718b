//! `monitoring install` through a real OpenSSH sshd whose `kubectl` is the real one, against
//! the sandbox (which takes kubectl's client-side apply of ConfigMaps as an API server does):
//! the dry run changes nothing, the apply creates the dashboard and rules ConfigMaps, a second
//! apply changes nothing, new thresholds change both; the rule file read back with kubectl
//! loads into a real Prometheus, where `monitoring status` finds every rule.

use std::process::Command;

use serde_json::Value;

use crate::agent::Kept;
use crate::support::prometheus::Prometheus;
use crate::support::sandbox::{SandboxProc, kubectl_path};

/// `monitoring install ARGS --output json`: each object's (name, change, applied).
fn install(kept: &Kept, mode: &str) -> Vec<(String, String, String)> {
    let r = kept.run(&["monitoring", "install", mode, "--output", "json"]);
    assert_eq!(r.status, Some(0), "{}{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["rules_as"], "configmap", "{v}");
    v["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let s = |k: &str| o[k].as_str().unwrap_or("-").to_string();
            (s("name"), s("change"), s("applied"))
        })
        .collect()
}

fn both(change: &str, applied: &str) -> Vec<(String, String, String)> {
    ["paragon-capacity-dashboard", "paragon-capacity-rules"]
        .iter()
        .map(|n| (n.to_string(), change.to_string(), applied.to_string()))
        .collect()
}

#[test]
fn install_applies_the_dashboard_and_rules_once_and_prometheus_loads_what_it_wrote() {
    let sandbox = SandboxProc::start(&[]);
    let kept = Kept::new("");
    kept.sshd.kubectl_with(&sandbox.kubeconfig);
    let kubectl = |args: &[&str]| {
        let out = Command::new(kubectl_path())
            .arg("--kubeconfig")
            .arg(&sandbox.kubeconfig)
            .args(["--namespace", "paragon"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{:?}", out);
        String::from_utf8(out.stdout).unwrap()
    };

    // The dry run: the manifests on stdout, what would change on stderr, nothing written.
    let r = kept.run(&["monitoring", "install", "--dry-run"]);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(
        r.stdout.contains("grafana_dashboard: '1'")
            || r.stdout.contains("grafana_dashboard: \"1\""),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("paragon-capacity.rules.yml"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr
            .contains("ConfigMap/paragon-capacity-rules: would be created"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("no PrometheusRule resource in this cluster"),
        "{}",
        r.stderr
    );
    assert_eq!(
        kubectl(&[
            "get",
            "configmap",
            "-l",
            "app.kubernetes.io/name=paragon-capacity",
            "-o",
            "name"
        ]),
        ""
    );

    // Applied: created; applied again: unchanged, nothing sent.
    assert_eq!(install(&kept, "--apply"), both("create", "created"));
    assert_eq!(install(&kept, "--apply"), both("unchanged", "unchanged"));
    assert_eq!(install(&kept, "--dry-run"), both("unchanged", "-"));
    assert_eq!(
        kubectl(&[
            "get",
            "configmap",
            "-l",
            "grafana_dashboard=1",
            "-o",
            "name"
        ]),
        "configmap/paragon-capacity-dashboard\n"
    );
    let dashboard: Value = serde_json::from_str(&kubectl(&[
        "get",
        "configmap",
        "paragon-capacity-dashboard",
        "-o",
        "jsonpath={.data.paragon-capacity\\.json}",
    ]))
    .unwrap();
    assert_eq!(dashboard["uid"], "paragon-capacity");
    let rules = kubectl(&[
        "get",
        "configmap",
        "paragon-capacity-rules",
        "-o",
        "jsonpath={.data.paragon-capacity\\.rules\\.yml}",
    ]);
    let generated = rules.matches("- alert: ").count();
    assert!(generated > 20, "{rules}");

    // The rule file as the cluster holds it, in a real Prometheus: every rule loaded.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("paragon-capacity.rules.yml");
    std::fs::write(&file, &rules).unwrap();
    let prometheus = Prometheus::start(dir.path(), &[], Some(&file), None);
    let service = format!(
        "[profiles.test.services.prometheus]\ntarget = \"127.0.0.1:{}\"\nvia = \"bastion\"\n",
        prometheus.port
    );
    kept.sshd.configure_with(&kept.home, &service);
    let r = kept.run(&["monitoring", "status", "--output", "json"]);
    assert_eq!(r.status, Some(0), "{}{}", r.stdout, r.stderr);
    let s: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        (s["loaded"].as_u64(), s["missing"].as_u64()),
        (Some(generated as u64), Some(0)),
        "{s}"
    );

    // New thresholds: both objects change (the rules' levels, the dashboard's lines).
    kept.sshd.configure_with(
        &kept.home,
        &format!("{service}[profiles.test.thresholds]\nmemory = {{ warn = 80 }}\n"),
    );
    assert_eq!(install(&kept, "--apply"), both("update", "configured"));
    assert!(
        kubectl(&[
            "get",
            "configmap",
            "paragon-capacity-rules",
            "-o",
            "jsonpath={.data.paragon-capacity\\.rules\\.yml}"
        ])
        .contains(">= 80"),
    );
    assert_eq!(install(&kept, "--apply"), both("unchanged", "unchanged"));
    // A connection of its own (no agent) sends the manifests on stdin the same way.
    let r = kept.run(&["--no-agent", "monitoring", "install", "--apply"]);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout.matches("unchanged").count(), 2, "{}", r.stdout);
}

#[test]
fn install_fails_with_kubectls_own_words_and_255_without_the_bastion() {
    let kept = Kept::new("");
    kept.sshd.install(
        "kubectl",
        "#!/bin/sh\necho 'error: You must be logged in to the server (Unauthorized)' >&2\nexit 1\n",
    );
    let r = kept.run(&["monitoring", "install", "--apply"]);
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "`kubectl api-resources --api-group=monitoring.coreos.com -o name` on the bastion exited 1: error: You must be logged in to the server (Unauthorized)"
        ),
        "{}",
        r.stderr
    );
    assert_eq!(r.stdout, "");
    // Neither mode or both: a usage error.
    assert_eq!(kept.run(&["monitoring", "install"]).status, Some(2));
    let r = kept.run(&["monitoring", "install", "--apply", "--dry-run"]);
    assert_eq!(r.status, Some(2), "{}", r.stderr);

    let home = crate::support::Home::new();
    home.write_config("[profiles.t]\nhost = \"127.0.0.1\"\nport = 1\n");
    let r = crate::support::run(
        home.paragon()
            .args(["--no-agent", "monitoring", "install", "--dry-run"])
            .stdin(std::process::Stdio::null()),
    );
    assert_eq!(r.status, Some(255), "{}", r.stderr);
}
