//! A real monitoring stack on loopback: Debian's Prometheus scraping every second, Debian's
//! node-, postgres- and redis-exporters, Alertmanager, and a test exporter (Python's
//! http.server) for what Debian does not package (bull-exporter, kube-state-metrics,
//! cAdvisor through the kubelet, the kubelet's volume stats, ingress-nginx), serving the
//! metric names and labels those exporters write. Every process is killed in `Drop`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Serves `metrics.txt` at `/metrics`; a line `NAME{LABELS} linear:A:B` is served as the value
/// A + B·t, t the seconds since the server started (a counter growing at B a second, whose
/// `rate()` is exactly B, or with B < 0 a free space draining at a known pace).
const EXPORTER: &str = r#"
import http.server, sys, time
start = time.time()
path = sys.argv[1]
class Metrics(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        out = []
        now = time.time() - start
        for line in open(path).read().splitlines():
            if " linear:" in line:
                name, ab = line.rsplit(" linear:", 1)
                a, b = ab.split(":")
                line = "%s %f" % (name, float(a) + float(b) * now)
            out.append(line)
        body = ("\n".join(out) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

/// A child process killed (and reaped) when dropped.
pub struct Process {
    child: Child,
    pub name: &'static str,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on now; the servers bind it themselves, so starts retry on a clash.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Starts `cmd` (which listens on `port`) and waits until `path` answers 200.
fn serve(name: &'static str, mut cmd: Command, port: u16, path: &str, log: &Path) -> Process {
    let log = std::fs::File::create(log).unwrap();
    let child = cmd
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start {name} (scripts/test.sh installs it): {e}"));
    let mut p = Process { child, name };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if http_get(port, path).is_some_and(|(status, _)| status == 200) {
            return p;
        }
        if let Ok(Some(s)) = p.child.try_wait() {
            panic!("{name} exited ({s}) before answering {path}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{name} did not answer {path} within 30s");
}

/// `GET path` on 127.0.0.1:`port`: status and body.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut all = String::new();
    s.read_to_string(&mut all).ok()?;
    let status = all.split_whitespace().nth(1)?.parse().ok()?;
    let body = all.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// `query` as an instant query on the Prometheus at `port`: its JSON answer.
pub fn instant_query(port: u16, query: &str) -> serde_json::Value {
    let q: String = query
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (_, body) =
        http_get(port, &format!("/api/v1/query?query={q}")).expect("prometheus answers");
    serde_json::from_str(&body).expect("prometheus answers JSON")
}

/// The test exporter: what it serves is `set()` at any time.
pub struct TestExporter {
    file: PathBuf,
    pub port: u16,
    _process: Process,
}

impl TestExporter {
    pub fn start(dir: &Path, metrics: &str) -> TestExporter {
        let file = dir.join("metrics.txt");
        std::fs::write(&file, metrics).unwrap();
        let mut child = Command::new("python3")
            .args(["-c", EXPORTER])
            .arg(&file)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("test exporter port");
        TestExporter {
            file,
            port,
            _process: Process {
                child,
                name: "test exporter",
            },
        }
    }

    /// Serves `metrics` from the next scrape on (written whole, then renamed into place).
    pub fn set(&self, metrics: &str) {
        let tmp = self.file.with_extension("tmp");
        std::fs::write(&tmp, metrics).unwrap();
        std::fs::rename(&tmp, &self.file).unwrap();
    }
}

/// Debian's exporters for a real PostgreSQL and Redis, and node-exporter (memory, filesystems).
pub struct Exporters {
    pub node: u16,
    pub postgres: u16,
    pub redis: u16,
    _processes: Vec<Process>,
}

impl Exporters {
    pub fn start(dir: &Path, postgres: &str, redis: &str) -> Exporters {
        let (node, pg, rd) = (free_port(), free_port(), free_port());
        let listen = |p: u16| format!("--web.listen-address=127.0.0.1:{p}");
        let mut n = Command::new("prometheus-node-exporter");
        // CPU comes from the test exporter: this machine's own is whatever the other tests
        // make it, and a test cannot put it on either side of a level.
        n.args(["--collector.disable-defaults", "--collector.meminfo"])
            .arg("--collector.filesystem")
            .arg(listen(node));
        let node_p = serve("node-exporter", n, node, "/metrics", &dir.join("node.log"));
        let mut p = Command::new("prometheus-postgres-exporter");
        p.env(
            "DATA_SOURCE_NAME",
            format!("postgresql://postgres@{postgres}/postgres?sslmode=disable"),
        )
        .arg(listen(pg));
        let pg_p = serve("postgres-exporter", p, pg, "/metrics", &dir.join("pg.log"));
        let mut r = Command::new("prometheus-redis-exporter");
        r.arg(format!("-redis.addr=redis://{redis}"))
            .arg(format!("-web.listen-address=127.0.0.1:{rd}"));
        let rd_p = serve("redis-exporter", r, rd, "/metrics", &dir.join("redis.log"));
        Exporters {
            node,
            postgres: pg,
            redis: rd,
            _processes: vec![node_p, pg_p, rd_p],
        }
    }
}

/// Alertmanager with one receiver (nothing is sent anywhere: the test reads its API).
pub struct Alertmanager {
    pub port: u16,
    _process: Process,
}

impl Alertmanager {
    pub fn start(dir: &Path) -> Alertmanager {
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: operators\n  group_wait: 1s\n  group_interval: 1s\nreceivers:\n- name: operators\n",
        )
        .unwrap();
        let port = free_port();
        let mut c = Command::new("prometheus-alertmanager");
        c.arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=");
        let p = serve("alertmanager", c, port, "/-/ready", &dir.join("am.log"));
        Alertmanager { port, _process: p }
    }

    /// The alerts Alertmanager holds (its v2 API).
    pub fn alerts(&self) -> serde_json::Value {
        let (_, body) = http_get(self.port, "/api/v2/alerts").expect("alertmanager answers");
        serde_json::from_str(&body).expect("alertmanager answers JSON")
    }
}

/// Prometheus scraping `targets` (job name, port) every second, with `rules` loaded and
/// alerts sent to `alertmanager` when given.
pub struct Prometheus {
    pub port: u16,
    _process: Process,
}

impl Prometheus {
    pub fn start(
        dir: &Path,
        targets: &[(&str, u16)],
        rules: Option<&Path>,
        alertmanager: Option<u16>,
    ) -> Prometheus {
        let mut yml = String::from(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  scrape_timeout: 1s\n",
        );
        if let Some(r) = rules {
            yml.push_str(&format!("rule_files:\n- {}\n", r.display()));
        }
        if let Some(am) = alertmanager {
            yml.push_str(&format!(
                "alerting:\n  alertmanagers:\n  - static_configs:\n    - targets: ['127.0.0.1:{am}']\n"
            ));
        }
        yml.push_str("scrape_configs:\n");
        for (job, port) in targets {
            yml.push_str(&format!(
                "- job_name: {job}\n  static_configs:\n  - targets: ['127.0.0.1:{port}']\n"
            ));
        }
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, yml).unwrap();
        let port = free_port();
        let mut c = Command::new("prometheus");
        c.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        let p = serve(
            "prometheus",
            c,
            port,
            "/-/ready",
            &dir.join("prometheus.log"),
        );
        Prometheus { port, _process: p }
    }

    /// Waits until every target has been scraped successfully.
    pub fn wait_for_targets(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = instant_query(self.port, "sum(up)");
            let up = v["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|s| s.parse::<f64>().ok())
                .unwrap_or(0.0);
            if up as usize == n {
                return;
            }
            assert!(Instant::now() < deadline, "{up} of {n} targets up: {v}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
