//! What the sandbox's monitoring pods serve: small real HTTP servers on loopback, one per
//! application, that `pods/portforward` connects to (the kubelet would connect inside the
//! pod's network namespace; here the "pod" is a loopback port).
//!
//! Grafana answers `/` (a page) and `/api/health` as Grafana does; Prometheus answers
//! `/-/ready`, `/-/healthy` and `/api/v1/alerts` (only its dead man's switch fires). Both
//! answer `GET /sandbox/bytes/N` with N bytes, for the API-route benchmark. The answers are a
//! table, not code. This module knows nothing of the API or of port-forwarding.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// One application a pod can run: its `app.kubernetes.io/name`, the container port it
/// listens on, and its answers `(path, content type, body)`.
struct App {
    name: &'static str,
    port: u16,
    answers: &'static [(&'static str, &'static str, &'static str)],
}

/// Grafana's page as the sandbox serves it.
pub const GRAFANA_PAGE: &str = "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">\
<title>Grafana</title></head>\n<body>\n<h1>Grafana</h1>\n\
<p>Paragon sandbox Grafana: this page reached you through pods/portforward.</p>\n</body>\n</html>\n";

const APPS: &[App] = &[
    App {
        name: "grafana",
        port: 4500,
        answers: &[
            ("/", "text/html; charset=utf-8", GRAFANA_PAGE),
            (
                "/api/health",
                "application/json",
                "{\"commit\":\"8ff9f1d5\",\"database\":\"ok\",\"version\":\"11.2.2\"}",
            ),
        ],
    },
    App {
        name: "prometheus",
        port: 9090,
        answers: &[
            (
                "/-/ready",
                "text/plain; charset=utf-8",
                "Prometheus Server is Ready.\n",
            ),
            (
                "/-/healthy",
                "text/plain; charset=utf-8",
                "Prometheus Server is Healthy.\n",
            ),
            (
                "/api/v1/alerts",
                "application/json",
                "{\"status\":\"success\",\"data\":{\"alerts\":[{\"labels\":{\"alertname\":\"Watchdog\",\"severity\":\"none\"},\"annotations\":{},\"state\":\"firing\",\"activeAt\":\"2026-01-01T00:00:00Z\",\"value\":\"1e+00\"}]}}",
            ),
        ],
    },
];

/// The largest `/sandbox/bytes/N` answer (64 MiB).
const MAX_BYTES: usize = 64 << 20;

/// The running applications: `(app name, container port)` to the loopback address serving it.
#[derive(Debug)]
pub(crate) struct Backends {
    addrs: HashMap<(&'static str, u16), SocketAddr>,
    cancel: CancellationToken,
}

impl Backends {
    /// Binds one loopback listener per application and serves until `stopped`.
    pub(crate) async fn start(stopped: CancellationToken) -> std::io::Result<Backends> {
        let mut addrs = HashMap::new();
        for app in APPS {
            let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
            addrs.insert((app.name, app.port), listener.local_addr()?);
            tokio::spawn(serve(listener, app, stopped.clone()));
        }
        Ok(Backends {
            addrs,
            cancel: stopped,
        })
    }

    /// Where a pod of application `app` listens on container port `port`, if it serves it.
    pub(crate) fn addr(&self, app: &str, port: u16) -> Option<SocketAddr> {
        self.addrs
            .iter()
            .find(|((name, p), _)| *name == app && *p == port)
            .map(|(_, a)| *a)
    }
}

impl Drop for Backends {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn serve(listener: TcpListener, app: &'static App, stopped: CancellationToken) {
    let tracker = TaskTracker::new();
    loop {
        let (tcp, _) = tokio::select! {
            () = stopped.cancelled() => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(app = app.name, "sandbox backend cannot accept: {e}");
                    continue;
                }
            },
        };
        // Grafana, Prometheus and the others are Go servers: TCP_NODELAY, as Go sets it.
        let _ = tcp.set_nodelay(true);
        let stopped = stopped.clone();
        tracker.spawn(async move {
            let service = hyper::service::service_fn(move |req| async move {
                Ok::<_, Infallible>(answer(app, &req))
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .half_close(true)
                .serve_connection(TokioIo::new(tcp), service);
            tokio::select! {
                r = conn => if let Err(e) = r { tracing::debug!(app = app.name, "sandbox backend: {e}") },
                () = stopped.cancelled() => {}
            }
        });
    }
    tracker.close();
}

fn answer(app: &App, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let (status, content_type, body) = if !matches!(*req.method(), Method::GET | Method::HEAD) {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            Bytes::from_static(b"method not allowed\n"),
        )
    } else if let Some(n) = path.strip_prefix("/sandbox/bytes/") {
        match n.parse::<usize>() {
            Ok(n) if n <= MAX_BYTES => (
                StatusCode::OK,
                "application/octet-stream",
                Bytes::from(vec![b'x'; n]),
            ),
            _ => (
                StatusCode::BAD_REQUEST,
                "text/plain",
                Bytes::from_static(b"/sandbox/bytes/N takes N up to 67108864\n"),
            ),
        }
    } else {
        match app.answers.iter().find(|(p, _, _)| *p == path) {
            Some((_, ct, body)) => (StatusCode::OK, *ct, Bytes::from_static(body.as_bytes())),
            None => (
                StatusCode::NOT_FOUND,
                "text/plain",
                Bytes::from_static(b"404 page not found\n"),
            ),
        }
    };
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn grafana_and_prometheus_answer_their_health_paths() {
        let stop = CancellationToken::new();
        let b = Backends::start(stop.clone()).await.unwrap();
        let g = b.addr("grafana", 4500).unwrap();
        assert!(get(g, "/api/health").await.contains("\"database\":\"ok\""));
        assert!(get(g, "/").await.contains("<h1>Grafana</h1>"));
        assert!(get(g, "/nope").await.starts_with("HTTP/1.1 404"));
        let p = b.addr("prometheus", 9090).unwrap();
        assert!(get(p, "/-/ready").await.contains("Ready"));
        assert!(get(p, "/api/v1/alerts").await.contains("Watchdog"));
        assert!(get(p, "/sandbox/bytes/5").await.ends_with("\r\n\r\nxxxxx"));
        assert!(b.addr("grafana", 9090).is_none());
        assert!(b.addr("kibana", 5601).is_none());
        stop.cancel();
    }
}
