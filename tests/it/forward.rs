//! `paragon-admin forward` and `kubeconfig` on a real topology: a client host that reaches only
//! the bastion, a real OpenSSH bastion, a private host that only the bastion reaches.
//! paragon-admin runs in the client's namespace; so do the HTTP clients (curl, kubectl).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::Home;
use crate::support::netns::Topology;
use crate::support::sshd::{Sshd, SshdOptions};

mod channels;
mod fetched_kubeconfig;
mod long_lived;
mod socks;

const BASTION: &str = "198.51.100.1";
const PRIVATE: &str = "203.0.113.2";

/// client (198.51.100.2) -- bastion (198.51.100.1 | 203.0.113.1) -- private (203.0.113.2)
fn three_hosts() -> Topology {
    let t = Topology::new(&["client", "bastion", "private"]);
    t.link("client", "198.51.100.2/24", "bastion", "198.51.100.1/24");
    t.link("bastion", "203.0.113.1/24", "private", "203.0.113.2/24");
    t
}

/// The whole scene: topology, a bastion sshd in its namespace, a web server on the private
/// host serving files of known content, and a home whose profile `test` uses the bastion.
struct Scene {
    home: Home,
    sshd: Sshd,
    web_port: u16,
    files: Vec<(String, Vec<u8>)>,
    _site: tempfile::TempDir,
    // Last: dropped after the sshd, whose namespace it deletes.
    net: Topology,
}

impl Scene {
    fn new() -> Scene {
        Scene::with_profile_extra("")
    }

    /// `extra`: TOML lines added to the profile (after its keys, so tables may follow).
    fn with_profile_extra(extra: &str) -> Scene {
        let net = three_hosts();
        // Names the bastion resolves: its own /etc/hosts, seen by sshd and its sessions.
        net.hosts_file(
            "bastion",
            &[
                ("private.paragon.test", PRIVATE),
                ("grafana.paragon.svc.cluster.local", PRIVATE),
                ("api.paragon.internal", PRIVATE),
            ],
        );
        let sshd = Sshd::start_with(SshdOptions {
            listen: BASTION.to_string(),
            prefix: vec![
                "ip".into(),
                "netns".into(),
                "exec".into(),
                net.ns("bastion").into(),
            ],
            ..SshdOptions::default()
        });
        let home = Home::new();
        sshd.configure_with(&home, extra);
        let site = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for i in 0..8u32 {
            // Distinct, non-repeating content per file (an LCG), 64-320 KiB.
            let len = 64 * 1024 * (1 + (i as usize % 5));
            let mut x = 0x9e37_79b9u32.wrapping_mul(i + 1);
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (x >> 24) as u8
                })
                .collect();
            let name = format!("file{i}.bin");
            std::fs::write(site.path().join(&name), &data).unwrap();
            files.push((name, data));
        }
        let web_port = net.http_server("private", PRIVATE, 0, site.path());
        Scene {
            home,
            sshd,
            web_port,
            files,
            _site: site,
            net,
        }
    }

    /// `paragon-admin ARGS --output json` in the client namespace, running.
    fn forward(&self, args: &[&str]) -> Running {
        let mut c = self.net.paragon("client", &self.home);
        c.args(args).args(["--output", "json"]);
        Running::start(c)
    }

    /// curl in the client namespace; `Ok(body)` or `Err(stderr)`.
    fn curl(&self, args: &[&str]) -> Result<Vec<u8>, String> {
        let out = self
            .net
            .command("client", "curl")
            .args(["-sS", "--fail", "--max-time", "20"])
            .args(args)
            .output()
            .unwrap();
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

/// A paragon-admin process left running, its JSON events read line by line.
pub(crate) struct Running {
    child: Child,
    pub(crate) events: mpsc::Receiver<Value>,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    pub(crate) fn start(mut c: Command) -> Running {
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let (tx, events) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Running {
            child,
            events,
            stderr,
        }
    }

    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The next event named `name` (others are skipped), within `within`.
    pub(crate) fn event(&self, name: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) if v["event"] == name => return v,
                Ok(_) => {}
                Err(_) => panic!(
                    "no `{name}` event within {within:?}; stderr:\n{}",
                    self.stderr()
                ),
            }
        }
    }

    /// The local port of the next `listening` event.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn listening_port(&self) -> (Value, u16) {
        let v = self.event("listening", Duration::from_secs(20));
        let local = v["local"].as_str().unwrap().to_string();
        let port = local.rsplit(':').next().unwrap().parse().unwrap();
        (v, port)
    }

    /// Waits for the exit by itself, within `within`.
    pub(crate) fn exit_within(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running after {within:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` and waits for the exit; the status and how long it took.
    pub(crate) fn signal_and_wait(&mut self, signal: &str) -> (ExitStatus, Duration) {
        let asked = Instant::now();
        let st = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let deadline = asked + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, asked.elapsed());
            }
            assert!(
                Instant::now() < deadline,
                "still running 10s after SIG{signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A forward run in a task on `first`, reconnecting with `connect`; stopped by the returned
/// sender.
fn run_forward<F, Fut, E>(
    listeners: Vec<paragon_admin::forward::Listening>,
    first: paragon_admin::forward::Session,
    connect: F,
    options: paragon_admin::forward::Options,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Option<paragon_admin::forward::Failure>>,
)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<paragon_admin::forward::Session, E>> + Send + 'static,
    E: Into<paragon_admin::forward::Failure> + Send + 'static,
{
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(paragon_admin::forward::run(
        listeners,
        first,
        connect,
        options,
        async move {
            let _ = stopped.await;
        },
    ));
    (stop, running)
}

/// The options the in-process forwards here run with: JSON events on stderr.
fn json_events() -> paragon_admin::forward::Options {
    use paragon_admin::forward::{Options, Sink, Style};
    Options {
        style: Style::Json,
        sink: Sink::Stderr,
        ..Options::default()
    }
}

fn url(port: u16, path: &str) -> String {
    format!("http://127.0.0.1:{port}/{path}")
}

#[test]
fn topology_lets_only_the_bastion_reach_the_private_host() {
    let t = three_hosts();
    let site = tempfile::tempdir().unwrap();
    std::fs::write(
        site.path().join("hello.txt"),
        "hello from the private host\n",
    )
    .unwrap();
    let port = t.http_server("private", PRIVATE, 0, site.path());
    let url = format!("http://{PRIVATE}:{port}/hello.txt");
    let from_bastion = t
        .command("bastion", "curl")
        .args(["-sS", "--max-time", "5", &url])
        .output()
        .unwrap();
    assert!(from_bastion.status.success(), "{from_bastion:?}");
    assert_eq!(from_bastion.stdout, b"hello from the private host\n");
    let from_client = t
        .command("client", "curl")
        .args(["-sS", "--max-time", "3", &url])
        .output()
        .unwrap();
    assert!(
        !from_client.status.success(),
        "the client reached the private host"
    );
}

#[test]
fn client_reaches_the_private_host_only_through_the_forward() {
    let s = Scene::new();
    let (name, data) = &s.files[0];
    let direct = format!("http://{PRIVATE}:{}/{name}", s.web_port);
    assert!(
        s.curl(&["--max-time", "3", &direct]).is_err(),
        "the client reached it directly"
    );

    let target = format!("{PRIVATE}:{}", s.web_port);
    let spec = format!("0:{target}");
    let fwd = s.forward(&["forward", &spec]);
    let (ev, port) = fwd.listening_port();
    assert_eq!(ev["name"], target.as_str());
    assert_eq!(ev["target"], target.as_str());
    assert_eq!(ev["local"], format!("127.0.0.1:{port}"));
    let body = s.curl(&[&url(port, name)]).unwrap();
    assert!(body == *data, "content differs through the forward");
}

#[test]
fn service_by_name_prints_url_and_target_and_listens_on_loopback_only() {
    // grafana's built-in target is grafana.paragon.svc.cluster.local:4500, resolved on the
    // bastion; only its local port is changed, to any free one.
    let s = Scene::with_profile_extra("[profiles.test.services.grafana]\nlocal_port = 0\n");
    let site = tempfile::tempdir().unwrap();
    std::fs::write(site.path().join("index.html"), "grafana home\n").unwrap();
    s.net.http_server("private", PRIVATE, 4500, site.path());

    let mut c = s.net.paragon("client", &s.home);
    c.args(["forward", "grafana"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let _kill = KillOnDrop(child);
    // `grafana      http://127.0.0.1:PORT/  ->  grafana.paragon.svc.cluster.local:4500`
    let words: Vec<&str> = first.split_whitespace().collect();
    assert_eq!(words.len(), 4, "{first}");
    assert_eq!(words[0], "grafana");
    assert_eq!(words[2], "->");
    assert_eq!(words[3], "grafana.paragon.svc.cluster.local:4500");
    let port: u16 = words[1]
        .strip_prefix("http://127.0.0.1:")
        .and_then(|r| r.strip_suffix('/'))
        .unwrap_or_else(|| panic!("not a loopback URL: {first}"))
        .parse()
        .unwrap();
    assert_eq!(s.curl(&[words[1]]).unwrap(), b"grafana home\n");
    // The client's own address on the bastion link does not listen.
    let outside = format!("http://198.51.100.2:{port}/");
    let e = s.curl(&["--max-time", "3", &outside]).unwrap_err();
    assert!(e.contains("refused") || e.contains("onnect"), "{e}");
}

#[test]
fn non_loopback_bind_warns_and_listens_there() {
    let s = Scene::new();
    let spec = format!("0:{PRIVATE}:{}", s.web_port);
    let fwd = s.forward(&["forward", &spec, "--bind", "198.51.100.2"]);
    let (ev, port) = fwd.listening_port();
    assert_eq!(ev["local"], format!("198.51.100.2:{port}"));
    assert!(
        fwd.stderr().contains("warning: listening on 198.51.100.2"),
        "{}",
        fwd.stderr()
    );
    let (name, data) = &s.files[6];
    let there = format!("http://198.51.100.2:{port}/{name}");
    assert!(s.curl(&[&there]).unwrap() == *data);
    assert!(s.curl(&["--max-time", "3", &url(port, name)]).is_err());
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn hundred_parallel_downloads_arrive_intact() {
    let s = Scene::new();
    let spec = format!("0:private.paragon.test:{}", s.web_port);
    let fwd = s.forward(&["forward", &spec]);
    let (_, port) = fwd.listening_port();
    let out = tempfile::tempdir().unwrap();
    let mut config = String::new();
    let mut want: Vec<(PathBuf, &[u8])> = Vec::new();
    for i in 0..120 {
        let (name, data) = &s.files[i % s.files.len()];
        let dest = out.path().join(format!("{i}.out"));
        config.push_str(&format!(
            "url = \"{}\"\noutput = \"{}\"\n",
            url(port, name),
            dest.display()
        ));
        want.push((dest, data));
    }
    let list = out.path().join("curl.cfg");
    std::fs::write(&list, config).unwrap();
    let r = s
        .net
        .command("client", "curl")
        .args([
            "--parallel",
            "--parallel-immediate",
            "--parallel-max",
            "120",
            "-sS",
            "--fail",
            "--max-time",
            "60",
            "-K",
        ])
        .arg(&list)
        .output()
        .unwrap();
    assert!(
        r.status.success(),
        "curl: {}\nparagon-admin: {}",
        String::from_utf8_lossy(&r.stderr),
        fwd.stderr()
    );
    for (dest, data) in want {
        let got = std::fs::read(&dest).unwrap();
        assert!(
            got.len() == data.len() && got == data,
            "{} differs ({} bytes, want {})",
            dest.display(),
            got.len(),
            data.len()
        );
    }
}

#[test]
fn refused_or_unresolvable_target_fails_only_that_connection() {
    let s = Scene::new();
    let refused = format!("0:{PRIVATE}:1");
    let good = format!("0:{PRIVATE}:{}", s.web_port);
    let fwd = s.forward(&["forward", &refused, "0:nosuch.paragon.test:80", &good]);
    let (_, refused_port) = fwd.listening_port();
    let (_, unresolved_port) = fwd.listening_port();
    let (_, good_port) = fwd.listening_port();
    let (name, data) = &s.files[1];

    assert!(s.curl(&[&url(refused_port, name)]).is_err());
    assert!(s.curl(&[&url(unresolved_port, name)]).is_err());
    assert!(s.curl(&[&url(good_port, name)]).unwrap() == *data);
    // The failing forwards go on serving (and failing cleanly, at once).
    let started = Instant::now();
    assert!(s.curl(&[&url(refused_port, name)]).is_err());
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(s.curl(&[&url(good_port, name)]).unwrap() == *data);

    let deadline = Instant::now() + Duration::from_secs(5);
    while !fwd.stderr().contains("nosuch.paragon.test:80") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = fwd.stderr();
    assert!(log.contains(&format!("{PRIVATE}:1")), "{log}");
    assert!(log.contains("nosuch.paragon.test:80"), "{log}");
    // Each says why, in the bastion's own words: not "the bastion refused a connection".
    assert!(
        log.contains("bastion: cannot resolve nosuch.paragon.test"),
        "{log}"
    );
    assert!(log.contains("Connection refused"), "{log}");
}

/// `NAME=SPEC` names a forward: its listening line carries the name, and it serves.
#[test]
fn a_named_spec_names_the_forward_it_opens() {
    let s = Scene::new();
    let spec = format!("web=0:{PRIVATE}:{}", s.web_port);
    let fwd = s.forward(&["forward", &spec]);
    let (ev, port) = fwd.listening_port();
    assert_eq!(ev["name"], "web", "{ev}");
    assert_eq!(ev["target"], format!("{PRIVATE}:{}", s.web_port), "{ev}");
    let (name, data) = &s.files[1];
    assert!(s.curl(&[&url(port, name)]).unwrap() == *data);
}

/// `no-such-host.invalid` reads as Service `no-such-host` in namespace `invalid`, so `auto`
/// would take the API route; with no kubeconfig at hand (the profile has none, the bastion
/// gives none) the forward falls back to the bastion instead of failing up front, each
/// connection reports the bastion's own failure, and `-v` says why the API was not taken.
#[test]
fn auto_route_without_a_kubeconfig_falls_back_to_the_bastion_and_its_own_failure() {
    let s = Scene::new();
    let good = format!("0:{PRIVATE}:{}", s.web_port);
    let fwd = s.forward(&["forward", "-v", "0:no-such-host.invalid:80", &good]);
    let (ev, unresolved_port) = fwd.listening_port();
    assert_eq!(ev["route"], "bastion", "{ev}");
    let (_, good_port) = fwd.listening_port();
    let (name, data) = &s.files[0];
    assert!(s.curl(&[&url(unresolved_port, name)]).is_err());
    assert!(s.curl(&[&url(good_port, name)]).unwrap() == *data);

    let wanted = "bastion: cannot resolve no-such-host.invalid";
    let deadline = Instant::now() + Duration::from_secs(5);
    while !fwd.stderr().contains(wanted) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = fwd.stderr();
    assert!(log.contains(wanted), "{log}");
    assert!(
        log.contains(
            "no-such-host.invalid:80: not the API route (the API route needs a kubeconfig"
        ),
        "{log}"
    );
}

/// The SOCKS5 reply code the proxy on `port` (in the client namespace) gives for `host:port`.
fn socks_reply(s: &Scene, proxy_port: u16, host: &str, port: u16) -> u8 {
    let script = "import socket, struct, sys\n\
        s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), 20)\n\
        name = sys.argv[2].encode()\n\
        s.sendall(b'\\x05\\x01\\x00\\x05\\x01\\x00\\x03' + bytes([len(name)]) + name + struct.pack('>H', int(sys.argv[3])))\n\
        answer = b''\n\
        while len(answer) < 12:\n    chunk = s.recv(12 - len(answer))\n    assert chunk, answer\n    answer += chunk\n\
        print(answer[3])\n";
    let out = s
        .net
        .command("client", "python3")
        .args(["-c", script])
        .args([proxy_port.to_string(), host.to_string(), port.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn socks_tells_an_unresolvable_name_from_a_refused_port() {
    let s = Scene::new();
    let fwd = s.forward(&["forward", "--socks", "0"]);
    let (_, port) = fwd.listening_port();
    // 4: host unreachable (the bastion cannot resolve it); 5: connection refused.
    assert_eq!(socks_reply(&s, port, "nosuch.paragon.test", 80), 4);
    assert_eq!(socks_reply(&s, port, PRIVATE, 1), 5);
    assert_eq!(socks_reply(&s, port, "private.paragon.test", s.web_port), 0);
}

#[test]
fn socks5_reaches_private_hosts_by_name_and_by_address() {
    let s = Scene::new();
    let fwd = s.forward(&["forward", "--socks", "0"]);
    let (ev, port) = fwd.listening_port();
    assert_eq!(ev["name"], "socks");
    assert_eq!(ev["target"], Value::Null);
    let proxy = format!("127.0.0.1:{port}");
    let (name, data) = &s.files[2];
    let by_name = format!("http://private.paragon.test:{}/{name}", s.web_port);
    let body = s.curl(&["--socks5-hostname", &proxy, &by_name]).unwrap();
    assert!(body == *data);
    let by_addr = format!("http://{PRIVATE}:{}/{name}", s.web_port);
    let body = s.curl(&["--socks5", &proxy, &by_addr]).unwrap();
    assert!(body == *data);
    // A refused destination is a SOCKS error for that request, and the proxy goes on.
    let refused = format!("http://{PRIVATE}:1/");
    assert!(s.curl(&["--socks5", &proxy, &refused]).is_err());
    assert!(s.curl(&["--socks5-hostname", &proxy, &by_name]).unwrap() == *data);
}

#[test]
fn bastion_restart_keeps_listeners_and_new_connections_work_after() {
    let mut s = Scene::new();
    let spec = format!("0:{PRIVATE}:{}", s.web_port);
    let fwd = s.forward(&["forward", &spec]);
    let (_, port) = fwd.listening_port();
    let (name, data) = &s.files[3];
    assert!(s.curl(&[&url(port, name)]).unwrap() == *data);

    s.sshd.restart();
    let ev = fwd.event("reconnecting", Duration::from_secs(20));
    assert!(ev["attempt"].as_u64().unwrap() >= 1);
    let ev = fwd.event("reconnected", Duration::from_secs(30));
    assert!(ev["attempts"].as_u64().unwrap() >= 1, "{ev}");
    let (name, data) = &s.files[3];
    assert!(s.curl(&[&url(port, name)]).unwrap() == *data);
    // Said once, as events: without -v no tracing line repeats them on stderr.
    let log = fwd.stderr();
    assert!(!log.contains("the bastion was lost"), "{log}");
    assert!(!log.contains("reconnecting to the bastion"), "{log}");
}

#[test]
fn connection_during_an_outage_waits_for_the_bastion() {
    let mut s = Scene::new();
    let spec = format!("0:{PRIVATE}:{}", s.web_port);
    let fwd = s.forward(&["forward", &spec]);
    let (_, port) = fwd.listening_port();
    s.sshd.stop();
    fwd.event("disconnected", Duration::from_secs(20));
    // Started while the bastion is away: it waits, and is served once the bastion is back.
    let (name, data) = s.files[4].clone();
    let ns = s.net.ns("client").to_string();
    let waiting = std::thread::spawn(move || {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns,
                "curl",
                "-sS",
                "--fail",
                "--max-time",
                "30",
            ])
            .arg(url(port, &name))
            .output()
            .unwrap()
    });
    std::thread::sleep(Duration::from_secs(1));
    s.sshd.restart();
    fwd.event("reconnected", Duration::from_secs(30));
    let out = waiting.join().unwrap();
    assert!(out.status.success(), "{out:?}\n{}", fwd.stderr());
    assert!(out.stdout == data);
}

#[test]
fn lost_network_is_noticed_by_keepalive_and_the_forward_recovers() {
    let s = Scene::with_profile_extra("keepalive_interval = 1\n");
    let spec = format!("0:{PRIVATE}:{}", s.web_port);
    let fwd = s.forward(&["forward", &spec]);
    let (_, port) = fwd.listening_port();
    let (name, data) = &s.files[5];
    assert!(s.curl(&[&url(port, name)]).unwrap() == *data);
    // No packet gets through, and nothing closes the TCP connection: only keepalive can tell.
    s.net.set_link("client", "bastion", false);
    fwd.event("disconnected", Duration::from_secs(20));
    fwd.event("reconnect_failed", Duration::from_secs(20));
    s.net.set_link("client", "bastion", true);
    fwd.event("reconnected", Duration::from_secs(30));
    assert!(s.curl(&[&url(port, name)]).unwrap() == *data);
}

#[test]
fn open_runs_the_browser_opener_with_the_service_url_and_a_missing_one_only_warns() {
    let s = Scene::with_profile_extra(
        "[profiles.test.services.web]\ntarget = \"203.0.113.2:80\"\nlocal_port = 0\npath = \"/d/\"\n",
    );
    let bin = tempfile::tempdir().unwrap();
    let opened = bin.path().join("opened");
    let opener = bin.path().join("xdg-open");
    std::fs::write(
        &opener,
        format!("#!/bin/sh\necho \"$1\" >> {}\n", opened.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = std::env::var("PATH").unwrap();

    let mut c = s.net.paragon("client", &s.home);
    c.env("PATH", format!("{}:{path}", bin.path().display()))
        .args(["forward", "web", "--open", "--output", "json"]);
    let fwd = Running::start(c);
    let (ev, port) = fwd.listening_port();
    assert_eq!(ev["url"], format!("http://127.0.0.1:{port}/d/"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !opened.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = std::fs::read_to_string(&opened).unwrap_or_default();
    assert_eq!(got, format!("http://127.0.0.1:{port}/d/\n"));
    drop(fwd);

    // No opener on PATH (only what `ip` needs): a warning, and the forward runs anyway.
    let mut c = s.net.paragon("client", &s.home);
    c.env("PATH", "/usr/sbin:/sbin")
        .args(["forward", "web", "--open", "--output", "json"]);
    let fwd = Running::start(c);
    fwd.listening_port();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !fwd.stderr().contains("cannot open") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        fwd.stderr()
            .contains("warning: cannot open http://127.0.0.1:"),
        "{}",
        fwd.stderr()
    );
}

#[test]
fn port_in_use_fails_at_once_naming_it_before_connecting() {
    let sshd = Sshd::start();
    let home = Home::new();
    sshd.configure(&home);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let started = Instant::now();
    let r = crate::support::run(home.paragon().args([
        "forward",
        "0:private.paragon.test:80",
        &format!("{port}:private.paragon.test:443"),
    ]));
    // 2: the port the user chose is at fault (1 means "failed after connecting").
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        r.stderr.contains(&format!("port {port} is already in use")),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(
        !sshd.log().contains("Accepted publickey"),
        "it connected before binding:\n{}",
        sshd.log()
    );
}

#[test]
fn unreachable_bastion_exits_255_naming_it() {
    let mut sshd = Sshd::start();
    let home = Home::new();
    sshd.configure(&home);
    sshd.stop();
    let r = crate::support::run(
        home.paragon()
            .args(["forward", "0:private.paragon.test:80"]),
    );
    assert_eq!(r.status, Some(255), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("127.0.0.1:{}", sshd.port)),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "{}", r.stdout);
}

#[test]
fn sigterm_and_sigint_exit_zero_within_two_seconds() {
    let s = Scene::new();
    let spec = format!("0:{PRIVATE}:{}", s.web_port);
    for signal in ["TERM", "INT"] {
        let mut fwd = s.forward(&["forward", &spec, "--socks", "0"]);
        let (_, port) = fwd.listening_port();
        fwd.listening_port();
        // An idle open connection must not hold the exit up.
        let mut idle = s.net.command("client", "python3");
        idle.args([
            "-c",
            "import socket,sys,time; c=socket.create_connection(('127.0.0.1',int(sys.argv[1]))); time.sleep(30)",
            &port.to_string(),
        ]);
        let idle = KillOnDrop(idle.spawn().unwrap());
        std::thread::sleep(Duration::from_millis(300));
        let (status, took) = fwd.signal_and_wait(signal);
        assert_eq!(status.code(), Some(0), "SIG{signal}: {}", fwd.stderr());
        assert!(took < Duration::from_secs(2), "SIG{signal} took {took:?}");
        drop(idle);
    }
}

#[test]
fn bad_spec_is_a_usage_error_naming_it() {
    let home = Home::new();
    // Never contacted: the command fails before connecting (port 1 on loopback if it did).
    home.write_config("[profiles.p]\nhost = \"127.0.0.1\"\nport = 1\n");
    let r = crate::support::run(home.paragon().args(["forward", "grafana", "nosuch"]));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("`nosuch`: no service named `nosuch`"),
        "{}",
        r.stderr
    );
    let r = crate::support::run(
        home.paragon()
            .args(["forward", "--socks", "0", "--bind", "0.0.0.0"]),
    );
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("SOCKS proxy on 0.0.0.0"), "{}", r.stderr);
}

/// A self-signed certificate for api.paragon.internal; returns (cert, key) paths.
fn api_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("api.crt"), dir.join("api.key"));
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=api.paragon.internal"])
        .args(["-addext", "subjectAltName=DNS:api.paragon.internal"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl must be installed");
    assert!(st.success());
    (cert, key)
}

/// The API server's port: fixed, since the kubeconfig names it before the server starts
/// (the private host's namespace is fresh, so the port is free there).
const API_PORT: u16 = 6443;
const TOKEN: &str = "paragon-test-token-4f1d";
const VERSION_BODY: &str = r#"{"major":"1","minor":"33","gitVersion":"v1.33.0-paragon-test"}"#;

fn user_kubeconfig(cert: &Path, api_port: u16) -> String {
    use std::io::Write;
    let pem = std::fs::read(cert).unwrap();
    let mut b64 = Vec::new();
    let mut enc = Command::new("base64")
        .arg("-w0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    enc.stdin.take().unwrap().write_all(&pem).unwrap();
    std::io::Read::read_to_end(&mut enc.stdout.take().unwrap(), &mut b64).unwrap();
    enc.wait().unwrap();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster:\n    server: https://api.paragon.internal:{api_port}\n    certificate-authority-data: {}\n\
         users:\n- name: admin\n  user:\n    token: {TOKEN}\ncontexts:\n- name: admin@prod\n  context:\n    cluster: prod\n    user: admin\n    namespace: paragon\n\
         current-context: admin@prod\n",
        String::from_utf8(b64).unwrap()
    )
}

fn kubectl_raw_version(s: &Scene, kubeconfig: &Path) -> Result<String, String> {
    let out = s
        .net
        .command("client", "kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--request-timeout", "15s", "get", "--raw", "/version"])
        .output()
        .expect("kubectl must be installed");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn kubectl_works_through_the_printed_kubeconfig_with_tls_verified() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = api_certificate(certs.path());
    // The profile's own kubeconfig names the API by its certificate's name; the profile
    // routes it to the private address.
    let s0 = API_PORT;
    let s = Scene::with_profile_extra(&format!(
        "[profiles.test.kube]\nkubeconfig = \"prod.kubeconfig\"\napi_server = \"{PRIVATE}:{s0}\"\n"
    ));
    std::fs::write(
        s.home.path().join("prod.kubeconfig"),
        user_kubeconfig(&cert, s0),
    )
    .unwrap();
    let api = s
        .net
        .https_api_server("private", PRIVATE, s0, &cert, &key, TOKEN, VERSION_BODY);
    assert_eq!(api, s0);

    let written = s.home.path().join("paragon.kubeconfig");
    let (_kc, ev, log) = serve_kubeconfig(&s, &written);
    assert_eq!(ev["name"], "kubernetes");
    assert_eq!(ev["target"], format!("{PRIVATE}:{s0}"));
    let port: u16 = ev["local"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // The real kubectl, verifying the API's certificate against its real name.
    let version = kubectl_raw_version(&s, &written).unwrap();
    assert!(version.contains("v1.33.0-paragon-test"), "{version}");
    let text = std::fs::read_to_string(&written).unwrap();
    assert!(
        text.contains(&format!("https://127.0.0.1:{port}")),
        "{text}"
    );
    assert!(
        text.contains("tls-server-name: api.paragon.internal"),
        "{text}"
    );
    assert!(!log.contains(TOKEN), "a secret reached stderr");
}

/// `paragon-admin kubeconfig --output json` serving in the client namespace, the kubeconfig
/// it prints on stdout going straight into `saved`; returned once it listens, with its
/// `listening` event and what it wrote on stderr until then. The kubeconfig is written whole
/// before that event, so `saved` is complete.
fn serve_kubeconfig(s: &Scene, saved: &Path) -> (KillOnDrop, Value, String) {
    let mut c = s.net.paragon("client", &s.home);
    c.args(["kubeconfig", "--output", "json"])
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::fs::File::create(saved).unwrap()))
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let running = KillOnDrop(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            panic!("no listening event:\n{log}");
        };
        log.push_str(&line);
        log.push('\n');
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && v["event"] == "listening"
        {
            return (running, v, log);
        }
    }
}

#[test]
fn kubeconfig_from_the_bastion_goes_to_stdout_and_works() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = api_certificate(certs.path());
    let s = Scene::new();
    s.net.https_api_server(
        "private",
        PRIVATE,
        API_PORT,
        &cert,
        &key,
        TOKEN,
        VERSION_BODY,
    );
    // The bastion's own kubeconfig, used by the real kubectl there (a wrapper on its PATH
    // points kubectl at it instead of root's ~/.kube/config).
    let bastion_kc = s.sshd.dir.path().join("bastion.kubeconfig");
    std::fs::write(&bastion_kc, user_kubeconfig(&cert, API_PORT)).unwrap();
    s.sshd.kubectl_with(&bastion_kc);

    let mut c = s.net.paragon("client", &s.home);
    c.args(["kubeconfig", "--output", "json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let _kill = KillOnDrop(child);
    // stdout: the kubeconfig and nothing else; the events go to stderr.
    let printed = Arc::new(Mutex::new(String::new()));
    let sink = printed.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    let mut events = BufReader::new(stderr);
    let mut log = String::new();
    let listening = loop {
        let mut line = String::new();
        assert!(
            events.read_line(&mut line).unwrap() > 0,
            "no listening event:\n{log}"
        );
        log.push_str(&line);
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && v["event"] == "listening"
        {
            break v;
        }
    };
    assert_eq!(listening["target"], "api.paragon.internal:6443");
    // The kubeconfig is printed whole before the forward reports that it listens.
    std::thread::sleep(Duration::from_millis(200));
    let text = printed.lock().unwrap().clone();
    assert!(
        text.contains("tls-server-name: api.paragon.internal"),
        "{text}"
    );
    assert!(text.contains(TOKEN), "credentials not copied");
    let saved = s.home.path().join("from-stdout.kubeconfig");
    std::fs::write(&saved, &text).unwrap();
    let version = kubectl_raw_version(&s, &saved).unwrap();
    assert!(version.contains("v1.33.0-paragon-test"), "{version}");
    assert!(!log.contains(TOKEN), "a secret reached stderr");
}

#[test]
fn real_kubectl_works_against_the_sandbox_api_through_the_kubeconfig_forward() {
    // The simulated API server runs on the private host: its certificate names 203.0.113.2,
    // which the client cannot reach.
    let sandbox_kc = tempfile::tempdir().unwrap();
    let sandbox_kc = sandbox_kc.path().join("sandbox.kubeconfig");
    let s = Scene::with_profile_extra(&format!(
        "[profiles.test.kube]\nkubeconfig = \"{}\"\n",
        sandbox_kc.display()
    ));
    let mut c = s.net.paragon("private", &s.home);
    c.args([
        "--output",
        "json",
        "sandbox",
        "--listen",
        &format!("{PRIVATE}:{API_PORT}"),
    ])
    .arg("--kubeconfig-out")
    .arg(&sandbox_kc)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut sandbox = c.spawn().unwrap();
    let mut started = String::new();
    BufReader::new(sandbox.stdout.take().unwrap())
        .read_line(&mut started)
        .unwrap();
    let mut sandbox_err = sandbox.stderr.take().unwrap();
    let _sandbox = KillOnDrop(sandbox);
    if !started.contains(&format!("{PRIVATE}:{API_PORT}")) {
        let mut e = String::new();
        let _ = std::io::Read::read_to_string(&mut sandbox_err, &mut e);
        panic!("the sandbox did not start: {started}{e}");
    }

    let written = s.home.path().join("paragon.kubeconfig");
    let (_kc, ev, log) = serve_kubeconfig(&s, &written);
    assert_eq!(ev["target"], format!("{PRIVATE}:{API_PORT}"));

    let kubectl = |args: &[&str]| {
        let out = s
            .net
            .command("client", "kubectl")
            .env("HOME", s.home.path())
            .arg("--kubeconfig")
            .arg(&written)
            .arg("--request-timeout=30s")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}\n{log}",
            String::from_utf8_lossy(&out.stderr),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let version = kubectl(&["version", "-o", "json"]);
    let v: Value = serde_json::from_str(&version).unwrap();
    assert_eq!(v["serverVersion"]["minor"], "33", "{version}");
    let pods = kubectl(&["get", "pods", "-n", "paragon", "-o", "name"]);
    assert!(pods.lines().count() > 10, "{pods}");
    assert!(pods.contains("pod/hermes-"), "{pods}");
}

#[test]
fn default_kubeconfig_is_not_overwritten_without_force() {
    let home = Home::new();
    // Never contacted: the command fails before connecting (port 1 on loopback if it did).
    home.write_config("[profiles.p]\nhost = \"127.0.0.1\"\nport = 1\n");
    let default = home.path().join(".kube").join("config");
    std::fs::create_dir_all(default.parent().unwrap()).unwrap();
    std::fs::write(&default, "precious\n").unwrap();
    let r = crate::support::run(
        home.paragon()
            .arg("kubeconfig")
            .arg("--write")
            .arg(&default),
    );
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("pass --force"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&default).unwrap(), "precious\n");
}

#[test]
fn a_kubeconfig_that_does_not_parse_exits_2_naming_the_file() {
    let home = Home::new();
    let bad = home.path().join("bad.kubeconfig");
    std::fs::write(
        &bad,
        "apiVersion: v1\nclusters:\n  - name: [c\n    x: : y\n",
    )
    .unwrap();
    // Read before anything connects: the bastion in the profile is never dialed.
    home.write_config(&format!(
        "[profiles.test]\nhost = \"192.0.2.1\"\n[profiles.test.kube]\nkubeconfig = \"{}\"\n",
        bad.display()
    ));
    let r = crate::support::run(home.paragon().arg("kubeconfig"));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("bad.kubeconfig"), "{}", r.stderr);
    assert!(r.stderr.contains("line 3 column 11"), "{}", r.stderr);
}
