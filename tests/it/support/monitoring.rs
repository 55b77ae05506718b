//! Stand-ins for Grafana, Prometheus and MinIO's probe: a real HTTP server (Python's
//! http.server) on loopback serving the documents the health checks read, `/api/health`,
//! `/api/v1/alerts`, `/-/ready`, OpenObserve's `/healthz` and MinIO's `/minio/health/live` and
//! `/minio/health/cluster` (no MinIO binary is available here), in the clear or over TLS (Python's
//! `ssl`, with a CA and a certificate for 127.0.0.1 made by `openssl`). Killed in `Drop`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Prometheus' answer when nothing fires but its dead man's switch.
pub const QUIET_ALERTS: &str = r#"{"status":"success","data":{"alerts":[{"labels":{"alertname":"Watchdog","severity":"none"},"state":"firing","annotations":{}}]}}"#;

const SERVER: &str = r#"
import functools, http.server, ssl, sys
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass
class Server(http.server.ThreadingHTTPServer):
    # socketserver's default backlog is 5: the fault tests' health runs at once (each asking
    # Prometheus a query per capacity signal) would wait on SYN retries, not on the server.
    request_queue_size = 512
s = Server((sys.argv[1], 0), functools.partial(Quiet, directory=sys.argv[2]))
if len(sys.argv) > 3:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[3], sys.argv[4])
    # The handshake runs in the handler's thread: a client that refuses the certificate
    # must not stop the accept loop.
    s.socket = ctx.wrap_socket(s.socket, server_side=True, do_handshake_on_connect=False)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

pub struct Monitoring {
    dir: tempfile::TempDir,
    child: Child,
    pub port: u16,
}

impl Monitoring {
    /// Serves a healthy Grafana and Prometheus with `alerts` as its alert list.
    pub fn start(alerts: &str) -> Monitoring {
        Self::serve(alerts, false)
    }

    /// As `start`, over TLS with a certificate for IP 127.0.0.1 (and no other name) issued
    /// by a CA made for this server: its PEM is `ca_pem()`.
    pub fn start_tls(alerts: &str) -> Monitoring {
        Self::serve(alerts, true)
    }

    /// The PEM of the CA that issued the TLS server's certificate.
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.path().join("pki/ca.pem")
    }

    fn serve(alerts: &str, tls: bool) -> Monitoring {
        let dir = tempfile::tempdir().unwrap();
        let docs = dir.path().join("docs");
        std::fs::create_dir_all(docs.join("api/v1")).unwrap();
        std::fs::write(
            docs.join("api/health"),
            r#"{"commit":"abc","database":"ok","version":"11.1.0"}"#,
        )
        .unwrap();
        std::fs::write(docs.join("api/v1/alerts"), alerts).unwrap();
        std::fs::create_dir_all(docs.join("-")).unwrap();
        std::fs::write(docs.join("-/ready"), "Prometheus Server is Ready.\n").unwrap();
        // OpenObserve's `/healthz`.
        std::fs::write(docs.join("healthz"), r#"{"status":"ok"}"#).unwrap();
        // MinIO's liveness and cluster (write quorum) probes answer 200 with an empty body.
        std::fs::create_dir_all(docs.join("minio/health")).unwrap();
        std::fs::write(docs.join("minio/health/live"), "").unwrap();
        std::fs::write(docs.join("minio/health/cluster"), "").unwrap();
        let mut cmd = Command::new("python3");
        cmd.args(["-c", SERVER, "127.0.0.1"]).arg(&docs);
        if tls {
            let pki = dir.path().join("pki");
            make_pki(&pki);
            cmd.arg(pki.join("server.pem")).arg(pki.join("server.key"));
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3 http.server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("http.server port");
        Monitoring { dir, child, port }
    }

    /// Profile TOML: grafana and prometheus here, kibana on a port nothing listens on
    /// (not deployed, as on installations with OpenObserve). OpenObserve stays at its
    /// built-in default unless `openobserve_toml` adds it.
    pub fn services_toml(&self, profile: &str) -> String {
        let closed = super::closed_port();
        format!(
            "[profiles.{profile}.services.grafana]\ntarget = \"127.0.0.1:{p}\"\n\
             [profiles.{profile}.services.prometheus]\ntarget = \"127.0.0.1:{p}\"\n\
             [profiles.{profile}.services.kibana]\ntarget = \"127.0.0.1:{closed}\"\n",
            p = self.port
        )
    }
}

impl Monitoring {
    /// Profile TOML: OpenObserve here, as on an installation that runs it.
    pub fn openobserve_toml(&self, profile: &str) -> String {
        format!(
            "[profiles.{profile}.services.openobserve]\ntarget = \"127.0.0.1:{}\"\n",
            self.port
        )
    }
}

/// A CA and a server certificate it issued for IP 127.0.0.1 only, by `openssl`, in `pki`.
fn make_pki(pki: &Path) {
    std::fs::create_dir_all(pki).unwrap();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(pki)
            .output()
            .expect("run openssl (install it: scripts/test.sh does)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"],
            &["-subj", "/CN=paragon-admin test CA"],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &["-keyout", "server.key", "-out", "server.csr"],
            &["-subj", "/CN=127.0.0.1"],
        ]
        .concat(),
    );
    std::fs::write(
        pki.join("server.ext"),
        "subjectAltName = IP:127.0.0.1\nbasicConstraints = CA:FALSE\n\
         extendedKeyUsage = serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
}

impl Drop for Monitoring {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
