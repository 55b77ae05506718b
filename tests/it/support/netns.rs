//! A network topology of hosts in network namespaces: N named hosts, veth links between
//! named pairs with addresses from 198.51.100.0/24 and 203.0.113.0/24 only, `ip netns exec`
//! helpers, and processes spawned inside. Drop kills the processes and deletes the namespaces,
//! also when the test fails. Namespace names are unique per test (pid + counter).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::Home;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The only networks tests may use (TEST-NET-2 and TEST-NET-3).
fn allowed(a: Ipv4Addr) -> bool {
    let o = a.octets();
    matches!((o[0], o[1], o[2]), (198, 51, 100) | (203, 0, 113))
}

pub struct Topology {
    hosts: BTreeMap<String, String>,
    children: Mutex<Vec<Child>>,
}

impl Topology {
    /// Creates one namespace per host, each with loopback up and nothing else.
    pub fn new(hosts: &[&str]) -> Topology {
        let id = format!(
            "pa{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let mut t = Topology {
            hosts: BTreeMap::new(),
            children: Mutex::new(Vec::new()),
        };
        for h in hosts {
            let ns = format!("{id}-{h}");
            ip(&["netns", "add", &ns]);
            // Registered before anything else can fail, so that Drop deletes it.
            t.hosts.insert((*h).to_string(), ns.clone());
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        t
    }

    /// The namespace of `host`.
    pub fn ns(&self, host: &str) -> &str {
        self.hosts
            .get(host)
            .unwrap_or_else(|| panic!("no host `{host}` in the topology"))
    }

    /// Links `a` and `b` with a veth pair; `a_cidr`/`b_cidr` like `198.51.100.1/30`. The
    /// interface in `a` is named after `b` and the other way round.
    pub fn link(&self, a: &str, a_cidr: &str, b: &str, b_cidr: &str) {
        for cidr in [a_cidr, b_cidr] {
            let addr: Ipv4Addr = cidr.split('/').next().unwrap().parse().unwrap();
            assert!(allowed(addr), "{cidr} is outside the test networks");
        }
        let (if_a, if_b) = (ifname(b), ifname(a));
        ip(&[
            "link",
            "add",
            &if_a,
            "netns",
            self.ns(a),
            "type",
            "veth",
            "peer",
            "name",
            &if_b,
            "netns",
            self.ns(b),
        ]);
        for (host, ifc, cidr) in [(a, &if_a, a_cidr), (b, &if_b, b_cidr)] {
            ip(&["-n", self.ns(host), "addr", "add", cidr, "dev", ifc]);
            ip(&["-n", self.ns(host), "link", "set", ifc, "up"]);
        }
    }

    /// Adds a route on `host` to `dest` (a CIDR) via `via`.
    pub fn route(&self, host: &str, dest: &str, via: &str) {
        ip(&["-n", self.ns(host), "route", "add", dest, "via", via]);
    }

    /// Takes `host`'s link towards `peer` down or up (a network outage).
    pub fn set_link(&self, host: &str, peer: &str, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["-n", self.ns(host), "link", "set", &ifname(peer), state]);
    }

    /// `program` run inside `host`'s namespace.
    pub fn command(&self, host: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.ns(host)]).arg(program);
        c
    }

    /// The paragon-admin binary inside `host`, with `home`'s clean environment.
    pub fn paragon(&self, host: &str, home: &Home) -> Command {
        let inner = home.paragon();
        let mut c = self.command(host, inner.get_program());
        c.env_clear();
        for (k, v) in inner.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        c
    }

    /// Spawns `cmd`; it is killed when the topology is dropped. Returns its pid.
    pub fn spawn(&self, cmd: &mut Command) -> u32 {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let pid = child.id();
        self.children.lock().unwrap().push(child);
        pid
    }

    /// Gives `host` its own /etc/hosts (`ip netns exec` mounts /etc/netns/NS/hosts over it)
    /// with `entries` of (name, address). Only processes started afterwards see it.
    pub fn hosts_file(&self, host: &str, entries: &[(&str, &str)]) {
        let dir = Path::new("/etc/netns").join(self.ns(host));
        std::fs::create_dir_all(&dir).unwrap();
        let mut text = String::from("127.0.0.1 localhost\n::1 localhost\n");
        for (name, addr) in entries {
            text.push_str(&format!("{addr} {name}\n"));
        }
        std::fs::write(dir.join("hosts"), text).unwrap();
    }

    /// Starts a static-file HTTP server on `host` at `addr:port` (0 = any) serving `dir`;
    /// returns its port once it listens.
    pub fn http_server(&self, host: &str, addr: &str, port: u16, dir: &Path) -> u16 {
        let mut c = self.command(host, "python3");
        c.args(["-c", HTTP_SERVER, addr, &port.to_string()])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        self.spawn_and_read_port(c)
    }

    /// An HTTPS server on `host` at `addr:port` (0 = any) that answers `GET` with `body`
    /// (JSON) when the request carries `Authorization: Bearer TOKEN`, else 401; returns its
    /// port.
    #[allow(clippy::too_many_arguments)]
    pub fn https_api_server(
        &self,
        host: &str,
        addr: &str,
        port: u16,
        cert: &Path,
        key: &Path,
        token: &str,
        body: &str,
    ) -> u16 {
        let mut c = self.command(host, "python3");
        c.args(["-c", HTTPS_API_SERVER, addr, &port.to_string()])
            .arg(cert)
            .arg(key)
            .env("API_TOKEN", token)
            .env("API_BODY", body)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        self.spawn_and_read_port(c)
    }

    fn spawn_and_read_port(&self, mut c: Command) -> u16 {
        let mut child = c
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {c:?}: {e}"));
        let stdout = child.stdout.take().unwrap();
        self.children.lock().unwrap().push(child);
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line.trim()
            .parse()
            .unwrap_or_else(|_| panic!("server did not report its port: {line:?}"))
    }

    /// Waits until `host` can open a TCP connection to `addr:port`, or panics after `within`.
    pub fn wait_tcp(&self, host: &str, addr: &str, port: u16, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let ok = self
                .command(host, "python3")
                .args([
                    "-c",
                    "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1).close()",
                    addr,
                    &port.to_string(),
                ])
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .success();
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{addr}:{port} unreachable from {host}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let children =
            std::mem::take(&mut *self.children.lock().unwrap_or_else(|e| e.into_inner()));
        for mut c in children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.hosts.values() {
            let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(ns));
            // Deleting a namespace also removes the veth ends in it.
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The interface name towards `peer` (IFNAMSIZ: at most 15 bytes).
fn ifname(peer: &str) -> String {
    let mut n = format!("to-{peer}");
    n.truncate(15);
    n
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("the `ip` command (iproute2) is needed");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A static-file HTTP server that prints its port once it listens (argv: addr, port, dir).
const HTTP_SERVER: &str = r#"
import functools, http.server, sys
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass
class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512
s = Server((sys.argv[1], int(sys.argv[2])), functools.partial(Quiet, directory=sys.argv[3]))
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

/// A tiny HTTPS "API server" (argv: addr, port, cert, key; env API_TOKEN, API_BODY).
const HTTPS_API_SERVER: &str = r#"
import http.server, os, ssl, sys
token, body = os.environ["API_TOKEN"], os.environ["API_BODY"].encode()
class Api(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        ok = self.headers.get("Authorization") == "Bearer " + token
        data = body if ok else b'{"kind":"Status","code":401}'
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
s = http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Api)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[3], sys.argv[4])
s.socket = ctx.wrap_socket(s.socket, server_side=True)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;
