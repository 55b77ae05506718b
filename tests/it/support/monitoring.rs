//! Stand-ins for Grafana, Prometheus and MinIO's probe: a real HTTP server (Python's
//! http.server) on loopback serving the documents the health checks read, `/api/health`,
//! `/api/v1/alerts` and `/minio/health/live`. Killed in `Drop`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Prometheus' answer when nothing fires but its dead man's switch.
pub const QUIET_ALERTS: &str = r#"{"status":"success","data":{"alerts":[{"labels":{"alertname":"Watchdog","severity":"none"},"state":"firing","annotations":{}}]}}"#;

const SERVER: &str = r#"
import functools, http.server, sys
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer((sys.argv[1], 0), functools.partial(Quiet, directory=sys.argv[2]))
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

pub struct Monitoring {
    _dir: tempfile::TempDir,
    child: Child,
    pub port: u16,
}

impl Monitoring {
    /// Serves a healthy Grafana and Prometheus with `alerts` as its alert list.
    pub fn start(alerts: &str) -> Monitoring {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("api/v1")).unwrap();
        std::fs::write(
            dir.path().join("api/health"),
            r#"{"commit":"abc","database":"ok","version":"11.1.0"}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("api/v1/alerts"), alerts).unwrap();
        // MinIO's liveness probe answers 200 with an empty body.
        std::fs::create_dir_all(dir.path().join("minio/health")).unwrap();
        std::fs::write(dir.path().join("minio/health/live"), "").unwrap();
        let mut child = Command::new("python3")
            .args(["-c", SERVER, "127.0.0.1"])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3 http.server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("http.server port");
        Monitoring {
            _dir: dir,
            child,
            port,
        }
    }

    /// Profile TOML: grafana and prometheus here, kibana on a port nothing listens on
    /// (not deployed, as on installations with OpenObserve).
    pub fn services_toml(&self, profile: &str) -> String {
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        format!(
            "[profiles.{profile}.services.grafana]\ntarget = \"127.0.0.1:{p}\"\n\
             [profiles.{profile}.services.prometheus]\ntarget = \"127.0.0.1:{p}\"\n\
             [profiles.{profile}.services.kibana]\ntarget = \"127.0.0.1:{closed}\"\n",
            p = self.port
        )
    }
}

impl Drop for Monitoring {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
