//! Foreground `forward` and `kubeconfig` through the kept connection (issue 13): with the
//! profile's agent running they open no SSH connection of their own (counted in a VERBOSE
//! sshd's log), follow the agent through a bastion restart with one reconnect notice, start
//! the agent again when it was killed, and keep their own connection with `--no-agent`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::agent::{Http, Kept, alive, curl, curl_within, wait_until};
use crate::forward::Running;

/// A foreground `forward SPEC --output json` (plus `flags` before it), with the port it
/// listens on.
fn forward(k: &Kept, flags: &[&str], http: &Http) -> (Running, u16) {
    let spec = format!("0:127.0.0.1:{}", http.port);
    let mut args = flags.to_vec();
    args.extend(["forward", &spec, "--output", "json"]);
    let fwd = Running::start(k.paragon(&args));
    let (event, port) = fwd.listening_port();
    assert_eq!(event["route"], "bastion", "{event}");
    (fwd, port)
}

/// Events up to and including the next `reconnected`, by name.
fn events_until_reconnected(fwd: &Running, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(v) = fwd.events.recv_timeout(left) else {
            panic!(
                "no `reconnected` within {within:?} (saw {seen:?}); stderr:\n{}",
                fwd.stderr()
            );
        };
        let name = v["event"].as_str().unwrap_or_default().to_string();
        seen.push(name.clone());
        if name == "reconnected" {
            return seen;
        }
    }
}

fn count(events: &[String], name: &str) -> usize {
    events.iter().filter(|e| *e == name).count()
}

#[test]
fn a_foreground_forward_with_a_warm_agent_opens_no_ssh_connection() {
    let k = Kept::new("");
    let http = Http::start("through the kept session");
    assert_eq!(k.ssh("true").status, Some(0));
    assert_eq!(k.connections(), 1);
    let (mut fwd, port) = forward(&k, &[], &http);
    for _ in 0..3 {
        assert_eq!(curl(port).as_deref(), Some("through the kept session"));
    }
    assert_eq!(k.connections(), 1, "{}", k.sshd.log());
    let (status, _) = fwd.signal_and_wait("TERM");
    assert_eq!(status.code(), Some(0), "{}", fwd.stderr());
    // The agent outlives the forward, as after any command.
    assert!(alive(k.status()["pid"].as_u64().unwrap()));
}

#[test]
fn a_no_agent_forward_keeps_its_own_connection() {
    let k = Kept::new("");
    let http = Http::start("on a connection of its own");
    assert_eq!(k.ssh("true").status, Some(0));
    let (_fwd, port) = forward(&k, &["--no-agent"], &http);
    assert_eq!(curl(port).as_deref(), Some("on a connection of its own"));
    assert_eq!(k.connections(), 2, "{}", k.sshd.log());
}

#[test]
fn a_foreground_forward_follows_the_agent_through_a_bastion_restart() {
    let mut k = Kept::new("");
    let http = Http::start("after the restart");
    let (fwd, port) = forward(&k, &[], &http);
    assert_eq!(curl(port).as_deref(), Some("after the restart"));
    assert_eq!(k.connections(), 1);
    k.sshd.restart();
    let seen = events_until_reconnected(&fwd, Duration::from_secs(30));
    assert_eq!(count(&seen, "disconnected"), 1, "{seen:?}");
    assert_eq!(seen[0], "disconnected", "{seen:?}");
    assert_eq!(curl(port).as_deref(), Some("after the restart"));
    // Only the agent connected again: the forward has no session of its own to restore.
    assert_eq!(k.connections(), 2, "{}", k.sshd.log());
    assert_eq!(k.status()["reconnects"], 1);
    let later: Vec<Value> = fwd.events.try_iter().collect();
    assert!(
        later.iter().all(|e| e["event"] != "disconnected"),
        "{later:?}"
    );
}

#[test]
fn a_connection_during_an_outage_waits_for_the_agent_to_reconnect() {
    let mut k = Kept::new("");
    let http = Http::start("served once the bastion is back");
    assert_eq!(k.ssh("true").status, Some(0));
    let (fwd, port) = forward(&k, &[], &http);
    k.sshd.stop();
    fwd.event("disconnected", Duration::from_secs(20));
    // Outages longer than one wait are reported as failed attempts, as on a session of our own.
    fwd.event("reconnect_failed", Duration::from_secs(20));
    // Waits as long as the forward lets a connection wait for the bastion (30 s).
    let waiting = std::thread::spawn(move || curl_within(port, 40));
    std::thread::sleep(Duration::from_millis(500));
    k.sshd.restart();
    let seen = events_until_reconnected(&fwd, Duration::from_secs(30));
    assert_eq!(count(&seen, "disconnected"), 0, "{seen:?}");
    assert_eq!(
        waiting.join().unwrap().as_deref(),
        Some("served once the bastion is back"),
        "{}",
        fwd.stderr()
    );
    // The warm agent's session and its one reconnect: the forward made none of its own.
    assert_eq!(k.connections(), 2, "{}", k.sshd.log());
    assert_eq!(k.status()["reconnects"], 1);
}

#[test]
fn a_killed_agent_is_started_again_under_a_running_forward() {
    let k = Kept::new("");
    let http = Http::start("from the new agent");
    let (fwd, port) = forward(&k, &[], &http);
    let first = k.status()["pid"].as_u64().unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &first.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_until("the agent died", Duration::from_secs(10), || !alive(first));
    let seen = events_until_reconnected(&fwd, Duration::from_secs(30));
    assert_eq!(count(&seen, "disconnected"), 1, "{seen:?}");
    assert_eq!(curl(port).as_deref(), Some("from the new agent"));
    let second = k.status()["pid"].as_u64().unwrap();
    assert_ne!(first, second);
    assert_eq!(k.connections(), 2, "{}", k.sshd.log());
}

/// The inode of the TCP socket on this machine from 127.0.0.1:`local` to 127.0.0.1:`remote`
/// (/proc/net/tcp).
fn socket_inode(local: u16, remote: u16) -> String {
    let (local, remote) = (
        format!("0100007F:{local:04X}"),
        format!("0100007F:{remote:04X}"),
    );
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 9 && f[1] == local && f[2] == remote)
        .map(|f| f[9].to_string())
        .unwrap_or_else(|| panic!("no socket {local} -> {remote}:\n{table}"))
}

/// Whether process `pid` has the socket `inode` open.
fn holds(pid: u64, inode: &str) -> bool {
    let wanted = format!("socket:[{inode}]");
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy() == wanted))
}

/// Echoes one connection through a foreground forward with `k`'s agent: which processes held
/// the accepted socket while it was open (the agent, the forward), and the forward's log.
fn echo_through_a_foreground_forward(k: &Kept) -> (bool, bool, String) {
    use std::io::{Read, Write};
    let echo = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let echo_port = echo.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in echo.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let (mut from, mut to) = (s.try_clone().unwrap(), s);
                let _ = std::io::copy(&mut from, &mut to);
            });
        }
    });
    let spec = format!("0:127.0.0.1:{echo_port}");
    let fwd = Running::start(k.paragon(&["-v", "forward", &spec, "--output", "json"]));
    let (_, port) = fwd.listening_port();
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"hello").unwrap();
    let mut echoed = [0u8; 5];
    c.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"hello");
    let inode = socket_inode(port, c.local_addr().unwrap().port());
    let agent = k.status()["pid"].as_u64().unwrap();
    let held = (holds(agent, &inode), holds(u64::from(fwd.pid()), &inode));
    // Ending our side ends the echo's, and the forward logs the connection's counts.
    c.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(c.read(&mut [0u8; 1]).unwrap(), 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fwd.stderr().contains("closed after") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    (held.0, held.1, fwd.stderr())
}

#[test]
fn a_foreground_forward_hands_each_connection_to_the_agent_and_counts_its_bytes() {
    let k = Kept::new("");
    let (agent, forward, log) = echo_through_a_foreground_forward(&k);
    // The accepted socket is the agent's alone: the forward handed it over and closed its own.
    assert!(
        agent && !forward,
        "held by the agent {agent}, the forward {forward}"
    );
    assert!(log.contains("sent=5 received=5"), "{log}");
}

#[test]
fn an_agent_that_cannot_carry_relays_the_forwards_connections_as_before() {
    let k = Kept::new("");
    // An agent of protocol 1 (before `carry`), as a kept agent of an older build would be.
    let r = crate::support::run(
        k.paragon(&["ssh", "--", "true"])
            .env("PARAGON_ADMIN_AGENT_PROTOCOL", "1"),
    );
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert_eq!(k.status()["protocol"], 1);
    let (agent, forward, log) = echo_through_a_foreground_forward(&k);
    assert!(
        !agent && forward,
        "held by the agent {agent}, the forward {forward}"
    );
    assert!(log.contains("sent=5 received=5"), "{log}");
}

/// A foreground `kubeconfig` whose printed kubeconfig's server is read from its stdout.
struct Serving {
    child: Child,
    server: mpsc::Receiver<String>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_foreground_kubeconfig_with_a_warm_agent_opens_no_ssh_connection() {
    // The forward carries bytes, whatever they are: an HTTP server stands for the API here.
    let http = Http::start("the api");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("cluster.yaml");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
             clusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{}\n\
             contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n\
             users:\n- name: u\n  user:\n    token: not-a-secret\n",
            http.port
        ),
    )
    .unwrap();
    let k = Kept::new(&format!(
        "[profiles.test.kube]\nkubeconfig = \"{}\"",
        kubeconfig.display()
    ));
    assert_eq!(k.ssh("true").status, Some(0));
    let mut c = k.paragon(&["kubeconfig", "--local-port", "0"]);
    c.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    let (tx, server) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(s) = line.trim().strip_prefix("server: ") {
                let _ = tx.send(s.to_string());
            }
        }
    });
    let serving = Serving { child, server };
    let url = serving
        .server
        .recv_timeout(Duration::from_secs(20))
        .expect("a kubeconfig on stdout");
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(curl(port).as_deref(), Some("the api"));
    assert_eq!(k.connections(), 1, "{}", k.sshd.log());
}

#[test]
fn the_api_route_through_the_agent_opens_no_ssh_connection_of_its_own() {
    use crate::api_route::{PRIVATE, Scene, bastion_for, forward as api_forward};
    let s = Scene::new();
    s.net
        .wait_tcp("bastion", PRIVATE, 6443, Duration::from_secs(20));
    let (sshd, home) = bastion_for(&s);
    let warm = crate::support::run(s.net.paragon("client", &home).args(["ssh", "--", "true"]));
    assert_eq!(warm.status, Some(0), "{}", warm.stderr);
    // The bastion cannot reach grafana: its kube client dials the API through the agent.
    let (pf, e) = api_forward(&s, &home, &["--via", "api", "0:grafana"]);
    assert_eq!(e["route"], "api", "{e}");
    let url = format!("http://{}/api/health", e["local"].as_str().unwrap());
    let health = s
        .curl("client", &url)
        .unwrap_or_else(|err| panic!("{err}; forward: {}", pf.stderr()));
    assert!(health.contains("\"database\":\"ok\""), "{health}");
    let accepted = sshd.log().matches("Accepted publickey").count();
    assert_eq!(accepted, 1, "{}", sshd.log());
    drop(pf);
    let _ = s
        .net
        .paragon("client", &home)
        .args(["agent", "stop"])
        .output();
}
