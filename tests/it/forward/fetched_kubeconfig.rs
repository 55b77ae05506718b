//! The bastion cannot make this machine read the operator's files (issue 10): a kubeconfig
//! fetched from the bastion (`kubectl config view` run there, here a fake `kubectl` on the
//! real sshd's PATH) that names a local file is refused, naming the field, by both users of
//! fetched kubeconfigs: `health` (the kube client) and `kubeconfig --write`.

use std::path::Path;

use crate::support::sshd::Sshd;
use crate::support::{Home, run};

const SECRET: &str = "operator-vault-token-8d1f";

/// A fake `kubectl` on the bastion that prints a kubeconfig whose user reads `token_file`.
fn bastion_prints_kubeconfig_with_token_file(sshd: &Sshd, token_file: &Path) {
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n\
         users:\n- name: ops\n  user:\n    tokenFile: {}\n\
         contexts:\n- name: c\n  context:\n    cluster: c\n    user: ops\ncurrent-context: c\n",
        token_file.display()
    );
    sshd.install(
        "kubectl",
        &format!("#!/bin/sh\ncat <<'EOF'\n{kubeconfig}EOF\n"),
    );
}

/// An operator's secret file on this machine, which the bastion's kubeconfig points at.
fn local_secret(home: &Home) -> std::path::PathBuf {
    let path = home.path().join(".vault-token");
    std::fs::write(&path, SECRET).unwrap();
    path
}

#[test]
fn fetched_kubeconfig_naming_a_local_file_is_refused_by_kubeconfig_write() {
    let sshd = Sshd::start();
    let home = Home::new();
    sshd.configure(&home);
    bastion_prints_kubeconfig_with_token_file(&sshd, &local_secret(&home));
    let out = home.path().join("paragon.kubeconfig");
    let r = run(home.paragon().arg("kubeconfig").arg("--write").arg(&out));
    assert_ne!(r.status, Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("`tokenFile`"), "{}", r.stderr);
    assert!(r.stderr.contains("user `ops`"), "{}", r.stderr);
    assert!(!out.exists(), "a kubeconfig naming the file was written");
    assert!(!r.stdout.contains(SECRET) && !r.stderr.contains(SECRET));
}

#[test]
fn fetched_kubeconfig_naming_a_local_file_is_refused_by_health() {
    let sshd = Sshd::start();
    let home = Home::new();
    sshd.configure(&home);
    bastion_prints_kubeconfig_with_token_file(&sshd, &local_secret(&home));
    let r = run(home.paragon().args(["health", "--output", "json"]));
    assert_eq!(r.status, Some(1), "{}\n{}", r.stdout, r.stderr);
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let refused = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["message"].as_str().unwrap_or("").contains("`tokenFile`"));
    assert!(refused.is_some(), "no check names tokenFile: {}", r.stdout);
    assert!(!r.stdout.contains(SECRET) && !r.stderr.contains(SECRET));
}
