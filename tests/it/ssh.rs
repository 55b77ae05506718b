//! `paragon-admin ssh`, `kubectl`, `helm`: exit statuses, streams, host keys, authentication,
//! against a real OpenSSH sshd started by `support::sshd`.

use std::process::Command;

use crate::support::sshd::Sshd;

/// OpenSSH's own client against the fixture, as a reference for what the fixture offers.
fn openssh(sshd: &Sshd, known_hosts: &std::path::Path, cmd: &str) -> std::process::Output {
    Command::new("ssh")
        .args([
            "-F",
            "none",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
        ])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .arg("-i")
        .arg(&sshd.client_key)
        .arg("-p")
        .arg(sshd.port.to_string())
        .arg(format!("root@{}", sshd.options.listen))
        .arg(cmd)
        .output()
        .expect("ssh must be installed (openssh-client)")
}

#[test]
fn fixture_serves_openssh_with_helm_on_path_and_restarts_on_same_port() {
    let mut sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let kh = sshd.write_known_hosts(&dir.path().join("known_hosts"));
    let out = openssh(&sshd, &kh, "helm 'a b' ''");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        sshd.log()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "<a b>\n<>\n");
    let port = sshd.port;
    sshd.restart();
    assert_eq!(sshd.port, port);
    let out = openssh(&sshd, &kh, "exit 3");
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
