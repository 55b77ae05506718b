//! The API route (issue 12): a bastion outside the cluster network reaches the monitoring
//! services through the API server's `pods/portforward`, never by their addresses.
//!
//! Topology: `client` -- `bastion` -- `private`. The sandbox (the API server, and behind it
//! the monitoring pods on its own loopback) runs in `private`; the bastion reaches only its
//! API port: Service names do not resolve there and ClusterIPs do not route.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::Home;
use crate::support::netns::Topology;
use crate::support::sandbox::kubectl_path;
use crate::support::sshd::{Sshd, SshdOptions};

const BASTION: &str = "198.51.100.1";
pub(crate) const PRIVATE: &str = "203.0.113.2";

/// The topology with the sandbox listening on the private host.
pub(crate) struct Scene {
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
    // Last: its Drop kills the sandbox and deletes the namespaces.
    pub(crate) net: Topology,
}

impl Scene {
    pub(crate) fn new() -> Scene {
        let net = Topology::new(&["client", "bastion", "private"]);
        net.link("client", "198.51.100.2/24", "bastion", "198.51.100.1/24");
        net.link("bastion", "203.0.113.1/24", "private", "203.0.113.2/24");
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        net.spawn(
            net.command("private", env!("CARGO_BIN_EXE_paragon-admin"))
                .args(["--quiet", "sandbox", "--listen", &format!("{PRIVATE}:6443")])
                .arg("--kubeconfig-out")
                .arg(&kubeconfig)
                .env("HOME", dir.path())
                .stdout(Stdio::null()),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while !kubeconfig.exists() {
            assert!(Instant::now() < deadline, "the sandbox wrote no kubeconfig");
            std::thread::sleep(Duration::from_millis(50));
        }
        Scene {
            kubeconfig,
            _dir: dir,
            net,
        }
    }

    /// The real kubectl on `host`, with the sandbox's kubeconfig.
    fn kubectl(&self, host: &str) -> Command {
        let mut c = self.net.command(host, kubectl_path());
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self._dir.path())
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--request-timeout=30s");
        c
    }

    /// curl on `host`: the body, or why not.
    pub(crate) fn curl(&self, host: &str, url: &str) -> Result<String, String> {
        let out = self
            .net
            .command(host, "curl")
            .args(["-sS", "--fail", "--max-time", "10", url])
            .output()
            .expect("curl is needed");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

/// A long-running process, killed in `Drop`, and the file its stderr goes to.
pub(crate) struct Running(Child, tempfile::NamedTempFile);

impl Running {
    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(self.1.path()).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `cmd` with stdout piped and returns it with the first stdout line that contains
/// `marker` (within 30 s), or panics with what it wrote to stderr.
fn spawn_until(cmd: &mut Command, marker: &'static str) -> (Running, String) {
    let stderr = tempfile::NamedTempFile::new().unwrap();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr.reopen().unwrap()))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let stdout = child.stdout.take().unwrap();
    let running = Running(child, stderr);
    let (tx, rx) = mpsc::channel();
    // Reads to the end: kubectl dies of SIGPIPE if its stdout ("Handling connection for")
    // is closed.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if line.contains(marker) {
                let _ = tx.send(line);
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(line) => (running, line),
        Err(_) => panic!("no line with {marker:?}; stderr: {}", running.stderr()),
    }
}

/// `Forwarding from 127.0.0.1:PORT -> 4500`: PORT.
fn forwarded_port(line: &str) -> u16 {
    line.split("127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no local port in {line:?}"))
}

#[test]
fn kubectl_port_forward_reaches_the_sandboxs_grafana_from_a_bastion_outside_the_cluster() {
    let s = Scene::new();
    s.net
        .wait_tcp("bastion", PRIVATE, 6443, Duration::from_secs(20));
    // The bastion reaches the API, not the Service: its name does not resolve and its
    // ClusterIP does not route.
    let out = s
        .kubectl("bastion")
        .args(["-n", "paragon", "get", "svc", "grafana"])
        .args(["-o", "jsonpath={.spec.clusterIP}"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cluster_ip = String::from_utf8(out.stdout).unwrap();
    assert!(!cluster_ip.is_empty());
    assert!(
        s.curl("bastion", &format!("http://{cluster_ip}:4500/api/health"))
            .is_err()
    );
    assert!(
        s.curl("bastion", "http://grafana.paragon.svc.cluster.local:4500/")
            .is_err()
    );

    // kubectl 1.31+ tunnels SPDY in a WebSocket; without that feature it upgrades to SPDY
    // directly (what it also falls back to). The sandbox must serve both.
    for websockets in ["true", "false"] {
        let mut cmd = s.kubectl("bastion");
        cmd.env("KUBECTL_PORT_FORWARD_WEBSOCKETS", websockets)
            .args(["-n", "paragon", "port-forward", "svc/grafana", "0:4500"]);
        let (pf, line) = spawn_until(&mut cmd, "Forwarding from 127.0.0.1:");
        let port = forwarded_port(&line);
        let page = s
            .curl("bastion", &format!("http://127.0.0.1:{port}/"))
            .unwrap_or_else(|e| panic!("websockets={websockets}: {e}; kubectl: {}", pf.stderr()));
        assert!(page.contains("<h1>Grafana</h1>"), "{page}");
        // Several connections over the one forward, each its own pair of streams.
        for _ in 0..3 {
            let health = s
                .curl("bastion", &format!("http://127.0.0.1:{port}/api/health"))
                .unwrap();
            assert!(health.contains("\"database\":\"ok\""), "{health}");
        }
        let big = s
            .curl(
                "bastion",
                &format!("http://127.0.0.1:{port}/sandbox/bytes/3000000"),
            )
            .unwrap();
        assert_eq!(big.len(), 3_000_000, "websockets={websockets}");
    }
}

#[test]
fn a_port_nothing_listens_on_in_the_pod_fails_with_the_kubelets_message() {
    let s = Scene::new();
    s.net
        .wait_tcp("bastion", PRIVATE, 6443, Duration::from_secs(20));
    let mut cmd = s.kubectl("bastion");
    cmd.args(["-n", "paragon", "port-forward", "svc/kibana", "0:5601"]);
    let (mut pf, line) = spawn_until(&mut cmd, "Forwarding from 127.0.0.1:");
    let port = forwarded_port(&line);
    assert!(
        s.curl("bastion", &format!("http://127.0.0.1:{port}/"))
            .is_err()
    );
    // kubectl reports the error stream's text and gives up on the forward.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = pf.0.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "kubectl kept running");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let err = pf.stderr();
    assert!(
        err.contains("error forwarding port 5601 to pod kibana-")
            && err.contains("failed to connect to localhost:5601"),
        "{err}"
    );
}

/// An OpenSSH bastion in the `bastion` namespace, and a home whose profile `test` uses it
/// with the sandbox's kubeconfig (the API server is dialed from the bastion).
pub(crate) fn bastion_for(s: &Scene) -> (Sshd, Home) {
    let sshd = Sshd::start_with(SshdOptions {
        listen: BASTION.to_string(),
        prefix: vec![
            "ip".into(),
            "netns".into(),
            "exec".into(),
            s.net.ns("bastion").into(),
        ],
        ..SshdOptions::default()
    });
    let home = Home::new();
    sshd.configure_with(
        &home,
        &format!(
            "[profiles.test.kube]\nkubeconfig = \"{}\"\n",
            s.kubeconfig.display()
        ),
    );
    (sshd, home)
}

/// `paragon-admin --output json forward ARGS` (one forward) on the client, and its
/// listening event.
pub(crate) fn forward(s: &Scene, home: &Home, args: &[&str]) -> (Running, serde_json::Value) {
    let mut cmd = s.net.paragon("client", home);
    cmd.args(["--output", "json", "forward"]).args(args);
    let (running, line) = spawn_until(&mut cmd, "\"listening\"");
    (running, serde_json::from_str(&line).unwrap())
}

#[test]
fn forward_reaches_grafana_through_the_api_when_the_bastion_cannot_route_to_it() {
    let s = Scene::new();
    s.net
        .wait_tcp("bastion", PRIVATE, 6443, Duration::from_secs(20));
    let (_sshd, home) = bastion_for(&s);

    // auto: the bastion cannot resolve grafana.paragon.svc.cluster.local, so the API route.
    let (pf, e) = forward(&s, &home, &["0:grafana"]);
    assert_eq!(e["route"], "api", "{e}");
    assert_eq!(e["protocol"], "spdy-websocket", "{e}");
    assert_eq!(e["target"], "grafana.paragon.svc.cluster.local:4500", "{e}");
    let local = e["local"].as_str().unwrap();
    let page = s
        .curl("client", &format!("http://{local}/"))
        .unwrap_or_else(|err| panic!("{err}; forward: {}", pf.stderr()));
    assert!(page.contains("<h1>Grafana</h1>"), "{page}");
    let health = s
        .curl("client", &format!("http://{local}/api/health"))
        .unwrap();
    assert!(health.contains("\"database\":\"ok\""), "{health}");
    drop(pf);

    // --via bastion insists on the bastion: the listener opens, connections fail.
    let (pf, e) = forward(&s, &home, &["--via", "bastion", "0:grafana"]);
    assert_eq!(e["route"], "bastion");
    let local = e["local"].as_str().unwrap();
    assert!(s.curl("client", &format!("http://{local}/")).is_err());
    drop(pf);
}

#[test]
fn a_grafana_pod_replaced_under_a_live_forward_is_followed_within_two_connections() {
    let s = Scene::new();
    s.net
        .wait_tcp("bastion", PRIVATE, 6443, Duration::from_secs(20));
    let (_sshd, home) = bastion_for(&s);
    let (pf, e) = forward(&s, &home, &["0:grafana"]);
    assert_eq!(e["route"], "api", "{e}");
    let url = format!("http://{}/api/health", e["local"].as_str().unwrap());
    s.curl("client", &url)
        .unwrap_or_else(|err| panic!("{err}; forward: {}", pf.stderr()));

    let grafana_pods = || {
        let out = s
            .kubectl("bastion")
            .args(["-n", "paragon", "get", "pods", "-o", "name"])
            .args(["-l", "app.kubernetes.io/name=grafana"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let before = grafana_pods();
    assert!(before.starts_with("pod/grafana-"), "{before}");
    // The daily restart, as `kubectl delete pod` does it: the ReplicaSet's new pod takes over.
    let out = s
        .kubectl("bastion")
        .args(["-n", "paragon", "delete", &before])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = grafana_pods();
    // Only a ReplicaSet's pods are replaced; the rest of the sandbox stays read-only.
    let out = s
        .kubectl("bastion")
        .args(["-n", "paragon", "delete", "pod", "prometheus-0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("only pods a ReplicaSet owns"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        after.starts_with("pod/grafana-") && after != before,
        "{before} -> {after}"
    );

    // The same forward, still running, reaches the new pod. Its tunnel to the old pod stays
    // open (as a real one does), so a connection may first meet the kubelet's word that the
    // old pod is gone (kubectl's own forward ends there); the forward then resolves the
    // Service again, and the next connection reaches the new pod.
    let mut failed = Vec::new();
    let health = loop {
        match s.curl("client", &url) {
            Ok(body) => break body,
            Err(err) if failed.is_empty() => failed.push(err),
            Err(err) => panic!("{err} after {failed:?}; forward: {}", pf.stderr()),
        }
    };
    assert!(health.contains("\"database\":\"ok\""), "{health}");
}

/// `paragon-admin --output json health ARGS` on the client: the exit status and the report.
fn health(s: &Scene, home: &Home, args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let out = s
        .net
        .paragon("client", home)
        .args(["--output", "json", "health", "--timeout", "20"])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (out.status.code(), v, stderr)
}

/// The findings of check `name`.
fn findings<'a>(v: &'a serde_json::Value, name: &str) -> Vec<&'a serde_json::Value> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == name)
        .collect()
}

#[test]
fn health_reaches_grafana_and_prometheus_through_the_api_when_the_bastion_cannot() {
    let s = Scene::new();
    s.net
        .wait_tcp("bastion", PRIVATE, 6443, Duration::from_secs(20));
    let (_sshd, home) = bastion_for(&s);

    // auto: the bastion cannot resolve the built-in names; the API route reaches the pods.
    let (status, v, stderr) = health(&s, &home, &[]);
    let fails: Vec<_> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .collect();
    assert!(fails.is_empty(), "{fails:#?}\nstderr: {stderr}");
    assert_eq!(status, Some(0), "{v:#}\nstderr: {stderr}");
    for (name, healthy) in [
        ("grafana", "healthy, Grafana 11.2.2"),
        ("prometheus", "no alerts firing"),
    ] {
        let f = findings(&v, name);
        assert_eq!(f.len(), 1, "{name}: {v:#}");
        assert_eq!(f[0]["status"], "ok", "{name}: {}", f[0]);
        assert_eq!(f[0]["route"], "api", "{name}: {}", f[0]);
        let message = f[0]["message"].as_str().unwrap();
        assert!(message.starts_with(healthy), "{message}");
        assert!(
            message.contains("target discovered: service paragon/")
                && message.contains("through the Kubernetes API (pods/portforward)")
                && message.contains(
                    "(pods/portforward), the bastion could not connect: bastion: cannot resolve"
                ),
            "{message}"
        );
    }
    // Kibana's pod answers nothing on its port (the kubelet's refusal) and OpenObserve has
    // no Service: an installation runs one of them, so both are warnings, not failures.
    let kibana = findings(&v, "kibana");
    assert_eq!(kibana[0]["status"], "warn", "{}", kibana[0]);
    assert!(
        kibana[0]["message"]
            .as_str()
            .unwrap()
            .contains("failed to connect to localhost:5601 inside the pod"),
        "{}",
        kibana[0]
    );
    assert_eq!(findings(&v, "openobserve")[0]["status"], "warn", "{v:#}");
    // Cluster checks carry no route.
    assert!(findings(&v, "api")[0].get("route").is_none(), "{v:#}");

    // --via bastion insists on the bastion: the monitoring checks fail and say why.
    let (status, v, stderr) = health(&s, &home, &["--via", "bastion"]);
    assert_eq!(status, Some(1), "{v:#}\nstderr: {stderr}");
    for name in ["grafana", "prometheus"] {
        let f = findings(&v, name);
        assert_eq!(f[0]["status"], "fail", "{name}: {}", f[0]);
        assert_eq!(f[0]["route"], "bastion", "{name}: {}", f[0]);
        let message = f[0]["message"].as_str().unwrap();
        assert!(
            message.starts_with("unreachable: bastion: cannot resolve ")
                && message.contains(&format!("{name}.paragon.svc.cluster.local"))
                && message.contains(&format!("dialed from bastion {BASTION}:")),
            "{message}"
        );
    }

    // --via api goes straight to the API, and says so without a word about the bastion.
    let (status, v, stderr) = health(&s, &home, &["--via", "api"]);
    assert_eq!(status, Some(0), "{v:#}\nstderr: {stderr}");
    let grafana = findings(&v, "grafana");
    assert_eq!(grafana[0]["route"], "api", "{}", grafana[0]);
    assert!(
        !grafana[0]["message"]
            .as_str()
            .unwrap()
            .contains("the bastion could not connect"),
        "{}",
        grafana[0]
    );
}

/// Reads from `conn` until `want` has arrived (within its read timeout), and returns it all.
fn read_until(conn: &mut std::net::TcpStream, want: &str) -> String {
    use std::io::Read;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(want) {
        let n = conn
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("{e}; so far: {}", String::from_utf8_lossy(&got)));
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// One `GET /api/health` on a new connection to `local`: the answer.
fn get_health(local: &str) -> String {
    use std::io::Write;
    let mut conn = std::net::TcpStream::connect(local).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    conn.write_all(b"GET /api/health HTTP/1.1\r\nHost: grafana\r\nConnection: close\r\n\r\n")
        .unwrap();
    read_until(&mut conn, "\"database\":\"ok\"")
}

#[test]
fn an_api_forward_outlives_the_kubelets_streaming_idle_timeout() {
    use std::io::{Read, Write};
    // The kubelet's streamingConnectionIdleTimeout (4 h by default), made short.
    let sandbox = crate::support::sandbox::SandboxProc::start(&["--streaming-idle-timeout", "2s"]);
    let sshd = Sshd::start();
    let home = Home::new();
    sshd.configure_with(
        &home,
        &format!(
            "[profiles.test.kube]\nkubeconfig = \"{}\"\n",
            sandbox.kubeconfig.display()
        ),
    );
    let mut cmd = home.paragon();
    cmd.args(["--output", "json", "forward", "--via", "api", "0:grafana"]);
    let (mut pf, line) = spawn_until(&mut cmd, "\"listening\"");
    let e: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(e["route"], "api", "{e}");
    let local = e["local"].as_str().unwrap().to_string();

    // A kept-alive connection: one exchange, then silence. The kubelet closes its stream
    // after the idle timeout, and the forward closes the connection cleanly (an end, not a
    // reset), as `kubectl port-forward`'s connection ends with its stream.
    let mut conn = std::net::TcpStream::connect(&local).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    conn.write_all(b"GET /api/health HTTP/1.1\r\nHost: grafana\r\n\r\n")
        .unwrap();
    let first = read_until(&mut conn, "\"database\":\"ok\"");
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let silent = Instant::now();
    let mut rest = [0u8; 256];
    let n = conn
        .read(&mut rest)
        .unwrap_or_else(|e| panic!("{e}; forward: {}", pf.stderr()));
    assert_eq!(n, 0, "{}", String::from_utf8_lossy(&rest[..n]));
    assert!(
        silent.elapsed() >= Duration::from_secs(1),
        "closed before the idle timeout: {:?}",
        silent.elapsed()
    );

    // The forward itself holds no stream while idle: it is still serving, and each new
    // connection opens a new port-forward, past the timeout as before it.
    assert!(pf.0.try_wait().unwrap().is_none(), "{}", pf.stderr());
    for _ in 0..2 {
        let answer = get_health(&local);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    drop(pf);
    drop(sandbox);
}

#[test]
fn kubectl_port_forward_over_spdy_is_closed_at_the_streaming_idle_timeout() {
    // The anchor: kubectl keeps one SPDY connection for its whole forward, so the kubelet's
    // idle timeout ends all of it (GOAWAY), where the API route's forward goes on.
    let sandbox = crate::support::sandbox::SandboxProc::start(&["--streaming-idle-timeout", "2s"]);
    let mut cmd = sandbox.kubectl_cmd();
    cmd.env("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false").args([
        "-n",
        "paragon",
        "port-forward",
        "svc/grafana",
        "0:4500",
    ]);
    let (mut pf, line) = spawn_until(&mut cmd, "Forwarding from 127.0.0.1:");
    let port = forwarded_port(&line);
    let answer = get_health(&format!("127.0.0.1:{port}"));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = pf.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "kubectl still forwarding after the idle timeout: {}",
            pf.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success(), "{}", pf.stderr());
    assert!(
        pf.stderr().contains("lost connection to pod"),
        "{}",
        pf.stderr()
    );
}

/// Stops every agent of a home when dropped (the agent outlives the command that started it).
struct Agents<'a>(&'a Scene, &'a Home);

impl Drop for Agents<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .net
            .paragon("client", self.1)
            .args(["agent", "stop", "--all"])
            .output();
    }
}

#[test]
fn a_detached_forward_takes_the_api_route_when_the_bastion_cannot_route_to_grafana() {
    let s = Scene::new();
    s.net
        .wait_tcp("bastion", PRIVATE, 6443, Duration::from_secs(20));
    let (_sshd, home) = bastion_for(&s);
    let _agents = Agents(&s, &home);
    let out = s
        .net
        .paragon("client", &home)
        .args(["--output", "json", "forward", "--detach", "0:grafana"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["event"], "listening", "{e}");
    assert_eq!(e["route"], "api", "{e}");
    assert_eq!(e["protocol"], "spdy-websocket", "{e}");
    let local = e["local"].as_str().unwrap();
    // The command has returned: the agent serves the forward.
    let page = s
        .curl("client", &format!("http://{local}/api/health"))
        .unwrap_or_else(|err| panic!("{err}; {stderr}"));
    assert!(page.contains("\"database\":\"ok\""), "{page}");
    let list = s
        .net
        .paragon("client", &home)
        .args(["--output", "json", "forward", "--list"])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list[0]["route"], "api", "{list}");
    assert_eq!(list[0]["protocol"], "spdy-websocket", "{list}");
    assert_eq!(list[0]["connections"], 1, "{list}");
    let stop = s
        .net
        .paragon("client", &home)
        .args(["forward", "--stop", "grafana"])
        .output()
        .unwrap();
    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    assert!(
        s.curl("client", &format!("http://{local}/api/health"))
            .is_err()
    );
}

/// `GET /sandbox/bytes/N` on a new connection to `local`: the body, read to the end.
fn download(local: &str, n: usize) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(local).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    conn.write_all(
        format!("GET /sandbox/bytes/{n} HTTP/1.1\r\nHost: grafana\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut got = Vec::new();
    conn.read_to_end(&mut got).unwrap();
    let at = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {}", String::from_utf8_lossy(&got)))
        + 4;
    got.split_off(at)
}

#[test]
fn an_api_forward_carries_its_connections_as_streams_of_one_spdy_tunnel() {
    let sandbox = crate::support::sandbox::SandboxProc::start(&[]);
    let sshd = Sshd::start();
    let home = Home::new();
    sshd.configure_with(
        &home,
        &format!(
            "[profiles.test.kube]\nkubeconfig = \"{}\"\n",
            sandbox.kubeconfig.display()
        ),
    );
    let mut cmd = home.paragon();
    cmd.env("PARAGON_ADMIN_LOG", "paragon_admin::kube=debug")
        .args(["--output", "json", "forward", "--via", "api", "0:grafana"]);
    let (pf, line) = spawn_until(&mut cmd, "\"listening\"");
    let e: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(e["route"], "api", "{e}");
    assert_eq!(e["protocol"], "spdy-websocket", "{e}");
    let local = e["local"].as_str().unwrap().to_string();

    // Many connections at once, each its own size: each gets exactly its own bytes.
    let downloads: Vec<_> = (0..16)
        .map(|i| {
            let local = local.clone();
            let n = 1 + i * 150_001;
            std::thread::spawn(move || (n, download(&local, n)))
        })
        .collect();
    for d in downloads {
        let (n, body) = d.join().unwrap();
        assert_eq!(body.len(), n, "forward: {}", pf.stderr());
        assert!(body.iter().all(|b| *b == b'x'));
    }
    // One tunnel carried them all: opened as the forward started, never again.
    let log = pf.stderr();
    assert_eq!(log.matches("SPDY tunnel open").count(), 1, "{log}");
    drop(pf);

    // The real kubectl (1.31 and later) tunnels the same way, against the same sandbox.
    let mut cmd = sandbox.kubectl_cmd();
    cmd.args(["-n", "paragon", "port-forward", "svc/grafana", "0:4500"]);
    let (kubectl, line) = spawn_until(&mut cmd, "Forwarding from 127.0.0.1:");
    let local = format!("127.0.0.1:{}", forwarded_port(&line));
    let downloads: Vec<_> = (0..8)
        .map(|i| {
            let local = local.clone();
            let n = 7 + i * 250_003;
            std::thread::spawn(move || (n, download(&local, n)))
        })
        .collect();
    for d in downloads {
        let (n, body) = d.join().unwrap();
        assert_eq!(body.len(), n, "kubectl: {}", kubectl.stderr());
    }
    drop(kubectl);
    drop(sandbox);
}
