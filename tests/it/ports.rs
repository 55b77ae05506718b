//! Stable local ports (issue 13): a service without a local port of its own, and the API
//! forward of `kubeconfig`, listen on a port chosen once per profile and remembered in the
//! user's state folder (`~/.local/state/paragon-admin/ports.toml` in the test's HOME), so
//! bookmarks keep working. The forwards run against a real sshd.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::sshd::Sshd;
use crate::support::{Home, run};

/// A service that has no local port of its own; its target need not answer.
const WEB: &str = "[profiles.NAME.services.web]\ntarget = \"127.0.0.1:9\"\nlocal_port = 0\n";

/// A kubeconfig for `kubeconfig` to rewrite; its API server is never dialed here.
const KUBECONFIG: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://api.test:6443\n\
users:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n";

fn web(profile: &str) -> String {
    WEB.replace("NAME", profile)
}

fn ports_file(home: &Home) -> PathBuf {
    home.path().join(".local/state/paragon-admin/ports.toml")
}

/// A running paragon-admin, killed in `Drop`.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` and returns it with the first port `port_in` finds in a stdout line, read
/// within 30 s.
fn listening(mut cmd: Command, port_in: fn(&str) -> Option<u16>) -> (Running, u16) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let running = Running(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(port) = port_in(&line) {
                let _ = tx.send(port);
                return;
            }
        }
    });
    let Ok(port) = rx.recv_timeout(Duration::from_secs(30)) else {
        drop(running);
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut err);
        panic!("no port on stdout; stderr: {err}");
    };
    (running, port)
}

/// The local port of a JSON `listening` event.
fn event_port(line: &str) -> Option<u16> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    (v["event"] == "listening").then_some(())?;
    v["local"].as_str()?.rsplit(':').next()?.parse().ok()
}

/// The port of the printed kubeconfig's `server: https://127.0.0.1:PORT`.
fn server_port(line: &str) -> Option<u16> {
    line.trim()
        .strip_prefix("server: https://127.0.0.1:")?
        .parse()
        .ok()
}

/// `forward --via bastion SPEC` of `profile`, listening; its local port.
fn forward_port(home: &Home, profile: &str, spec: &str) -> u16 {
    let mut c = home.paragon();
    c.args([
        "--profile",
        profile,
        "--output",
        "json",
        "forward",
        "--via",
        "bastion",
        spec,
    ]);
    let (running, port) = listening(c, event_port);
    drop(running);
    port
}

#[test]
fn a_service_without_a_local_port_keeps_the_same_one_across_runs_and_profiles_do_not_share() {
    let sshd = Sshd::start();
    let home = Home::new();
    let kh = sshd.write_known_hosts(&home.path().join("known_hosts"));
    std::fs::write(home.path().join("k.yaml"), KUBECONFIG).unwrap();
    home.write_config(&format!(
        "{}{}",
        sshd.profile_toml_named(
            "test",
            &kh,
            "yes",
            &format!(
                "{}[profiles.test.kube]\nkubeconfig = \"k.yaml\"\n",
                web("test")
            )
        ),
        sshd.profile_toml_named("other", &kh, "yes", &web("other")),
    ));
    let first = forward_port(&home, "test", "web");
    assert_ne!(first, 0);
    assert_eq!(
        forward_port(&home, "test", "web"),
        first,
        "a second run moved"
    );
    let text = std::fs::read_to_string(ports_file(&home)).unwrap();
    assert!(text.contains(&format!("web = {first}")), "{text}");
    let other = forward_port(&home, "other", "web");
    assert_ne!(other, first, "two profiles share a port");
    assert_eq!(forward_port(&home, "other", "web"), other);
    // An explicit LOCAL_PORT wins and changes nothing remembered.
    assert_ne!(forward_port(&home, "test", "0:web"), first);
    assert_eq!(forward_port(&home, "test", "web"), first);
    // The API forward of `kubeconfig` is remembered too (it listens before it connects).
    let kube = || {
        let mut c = home.paragon();
        c.args(["--profile", "test", "kubeconfig"]);
        let (running, port) = listening(c, server_port);
        drop(running);
        port
    };
    let api = kube();
    assert!(![first, other].contains(&api));
    assert_eq!(kube(), api);
}

#[test]
fn a_remembered_port_taken_by_someone_else_is_a_usage_error_naming_it() {
    let home = Home::new();
    home.write_config(&format!(
        "[profiles.test]\nhost = \"127.0.0.1\"\nport = 1\n{}",
        web("test")
    ));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    std::fs::create_dir_all(ports_file(&home).parent().unwrap()).unwrap();
    std::fs::write(ports_file(&home), format!("[test]\nweb = {port}\n")).unwrap();
    let r = run(home.paragon().args(["forward", "web"]));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("port {port} is already in use")),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("LOCAL_PORT:"), "{}", r.stderr);
}

#[test]
fn a_corrupt_ports_file_is_an_error_naming_file_and_line_and_is_left_alone() {
    let home = Home::new();
    home.write_config(&format!(
        "[profiles.test]\nhost = \"127.0.0.1\"\nport = 1\n{}",
        web("test")
    ));
    let file = ports_file(&home);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let corrupt = "[test]\nkube-api = 21000\nweb = [oops\n";
    std::fs::write(&file, corrupt).unwrap();
    for args in [&["forward", "web"][..], &["kubeconfig"][..]] {
        let r = run(home.paragon().args(args));
        assert_eq!(r.status, Some(2), "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains(&format!("{}:3: ", file.display())),
            "{args:?}: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), corrupt);
}
