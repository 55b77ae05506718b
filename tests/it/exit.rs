//! The exit-status contract (DESIGN.md), pinned through the real binary: each status the
//! error's own type chooses, and each cause printed once.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

use crate::support::sshd::{Sshd, SshdOptions};
use crate::support::{Home, run};

/// A profile whose bastion is never contacted (the error comes first), with `extra` lines.
fn unreachable_profile(home: &Home, extra: &str) {
    home.write_config(&format!(
        "[profiles.p]\nhost = \"127.0.0.1\"\nport = 1\n{extra}\n"
    ));
}

#[test]
fn unknown_ssh_config_alias_in_init_exits_2() {
    let home = Home::new();
    let ssh = home.path().join(".ssh");
    std::fs::create_dir(&ssh).unwrap();
    std::fs::write(ssh.join("config"), "Host known\n  HostName k.example.com\n").unwrap();
    let r = run(home
        .paragon()
        .args(["init", "--non-interactive", "--from-ssh-config", "nope"]));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("`nope` is not a Host"), "{}", r.stderr);
    assert!(!home.config_path().exists());
}

#[test]
fn unreadable_kubeconfig_exits_2_in_health_and_in_kubeconfig() {
    let home = Home::new();
    unreachable_profile(
        &home,
        "[profiles.p.kube]\nkubeconfig = \"no-such-kubeconfig\"\n",
    );
    let health = run(home.paragon().args(["health", "--local"]));
    let kubeconfig = run(home.paragon().args(["kubeconfig"]));
    for r in [&health, &kubeconfig] {
        assert_eq!(r.status, Some(2), "{}", r.stderr);
        assert!(r.stderr.contains("no-such-kubeconfig"), "{}", r.stderr);
    }
    // An invalid one too, not only a missing one.
    std::fs::write(home.path().join("no-such-kubeconfig"), "clusters: [[[\n").unwrap();
    for cmd in [&["health", "--local"][..], &["kubeconfig"][..]] {
        let r = run(home.paragon().args(cmd));
        assert_eq!(r.status, Some(2), "{cmd:?}: {}", r.stderr);
    }
}

/// A bastion whose every session command kills the sshd process serving the session (sshd's
/// `ForceCommand`, so no shell start-up file can put the real kubectl first): the connection
/// drops while the kubeconfig is being fetched.
fn bastion_that_drops_on_exec(scripts: &Path) -> (Sshd, Home) {
    let script = scripts.join("drop-session");
    std::fs::write(
        &script,
        "#!/bin/sh\n# kill the nearest sshd ancestor: the session's own process\npid=$$\n\
         while [ \"$pid\" -gt 1 ]; do\n  pid=$(cut -d' ' -f4 /proc/$pid/stat)\n  \
         case \"$(cat /proc/$pid/comm)\" in sshd*) kill -9 \"$pid\"; exit 0;; esac\ndone\nexit 99\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sshd = Sshd::start_with(SshdOptions {
        extra_config: vec![format!("ForceCommand {}", script.display())],
        ..SshdOptions::default()
    });
    let home = Home::new();
    sshd.configure(&home);
    (sshd, home)
}

#[test]
fn ssh_drop_while_fetching_the_bastions_kubeconfig_exits_255() {
    let scripts = tempfile::tempdir().unwrap();
    let (_sshd, home) = bastion_that_drops_on_exec(scripts.path());
    for cmd in [&["health"][..], &["kubeconfig"][..]] {
        let r = run(home.paragon().args(cmd).stdin(Stdio::null()));
        assert_eq!(r.status, Some(255), "{cmd:?}: {}{}", r.stderr, r.stdout);
        assert!(r.stderr.contains("kubectl config view"), "{}", r.stderr);
    }
}

#[test]
fn a_cause_is_printed_once() {
    let home = Home::new();
    // A folder where the config file should be: the read fails with the OS's reason.
    std::fs::create_dir(home.config_path()).unwrap();
    let r = run(home.paragon().arg("profiles"));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    let line = r.stderr.trim();
    assert_eq!(line.lines().count(), 1, "{line}");
    assert_eq!(line.matches("directory").count(), 1, "{line}");
    assert!(line.starts_with("paragon-admin: cannot read "), "{line}");
}

#[test]
fn man_dir_in_a_folder_others_can_write_is_refused_with_2() {
    let home = Home::new();
    let dir = home.path().join("shared-man");
    std::fs::create_dir(&dir).unwrap();
    // Writable by all and not sticky: the files module refuses it.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let r = run(home.paragon().args(["man", "--dir"]).arg(&dir));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("can be written by other users"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "a file was written"
    );
}
