//! The demo's web page: a tiny HTTP server on loopback standing in for Grafana, so that the
//! demo's forward has something to show in a browser and the health check for grafana has
//! something to find healthy.
//!
//! `GET /` is a small HTML page; `GET /api/health` answers as Grafana's own health endpoint
//! does (`{"database":"ok","version":...}`). Anything else is 404. It knows nothing of SSH.

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
use tracing::debug;

use super::listen::{ListenError, Serving};

/// The page `GET /` returns.
pub const PAGE: &str = "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">\
<title>Paragon demo</title></head>\n<body>\n<h1>Paragon demo</h1>\n\
<p>Paragon demo \u{2014} this page reached you through the bastion.</p>\n\
<p>In a real installation this forward opens Grafana.</p>\n</body>\n</html>\n";

/// What `GET /api/health` returns, in the shape of Grafana's `/api/health`.
pub const HEALTH: &str = "{\"database\":\"ok\",\"version\":\"demo\"}";

/// How the server is named in errors.
const SERVER: &str = "demo web page";

/// A running demo web server. Dropping it stops it; `shutdown` also waits until every
/// connection is closed.
#[derive(Debug)]
pub struct DemoWeb {
    addr: SocketAddr,
    serving: Serving,
}

impl DemoWeb {
    /// Binds `addr` (loopback only; port 0 for any free port) and starts serving.
    pub async fn bind(addr: SocketAddr) -> Result<Self, ListenError> {
        Self::start(super::listen::bind(SERVER, addr).await?)
    }

    /// Serves on a listener the caller bound, which must be on loopback.
    pub fn start(listener: TcpListener) -> Result<Self, ListenError> {
        let addr = super::listen::loopback_addr(SERVER, &listener)?;
        let cancel = CancellationToken::new();
        let connections = TaskTracker::new();
        let server = tokio::spawn(accept_loop(listener, cancel.clone(), connections.clone()));
        Ok(DemoWeb {
            addr,
            serving: Serving::new(cancel, connections, server),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes every connection and waits until they are gone.
    pub async fn shutdown(self) {
        self.serving.shutdown().await;
    }
}

async fn accept_loop(listener: TcpListener, cancel: CancellationToken, connections: TaskTracker) {
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    debug!("demo web: accept failed: {e}");
                    continue;
                }
            },
            () = cancel.cancelled() => return,
        };
        let cancel = cancel.clone();
        connections.spawn(async move {
            // A client may shut its write side once the request is sent (`ssh -W`, `nc -N`):
            // answer it rather than treating the end of its input as the end of the connection.
            let conn = hyper::server::conn::http1::Builder::new()
                .half_close(true)
                .serve_connection(TokioIo::new(tcp), hyper::service::service_fn(answer));
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => if let Err(e) = r { debug!(%peer, "demo web: {e}") },
                () = cancel.cancelled() => {}
            }
        });
    }
}

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/") => (StatusCode::OK, "text/html; charset=utf-8", PAGE),
        (&Method::GET | &Method::HEAD, "/api/health") => {
            (StatusCode::OK, "application/json", HEALTH)
        }
        (&Method::GET | &Method::HEAD, _) => (StatusCode::NOT_FOUND, "text/plain", "not found\n"),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n",
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_a_non_loopback_address() {
        let e = DemoWeb::bind("0.0.0.0:0".parse().unwrap())
            .await
            .unwrap_err();
        assert!(matches!(e, ListenError::NotLoopback { .. }), "{e}");
    }
}
