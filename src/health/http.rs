//! A plain HTTP/1.1 GET over a dialed stream (hyper's client connection), for the MinIO and
//! monitoring probes. The body is capped: a status page is small.

use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;

use crate::dial::{DialError, Dialer};

/// The largest body read (Prometheus' alert list on a bad day is well under this).
const MAX_BODY: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(transparent)]
    Dial(#[from] DialError),
    #[error("HTTP exchange with {target} failed: {message}")]
    Exchange { target: String, message: String },
}

pub struct Response {
    pub status: u16,
    pub body: bytes::Bytes,
}

/// `GET path` on `host:port` through `dialer`.
pub async fn get(
    dialer: &dyn Dialer,
    host: &str,
    port: u16,
    path: &str,
) -> Result<Response, HttpError> {
    let target = crate::dial::target(host, port);
    let fail = |message: String| HttpError::Exchange {
        target: target.clone(),
        message,
    };
    let stream = dialer.connect(host, port).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| fail(e.to_string()))?;
    let driver = tokio::spawn(conn);
    let req = http::Request::get(path)
        .header(http::header::HOST, target.as_str())
        .header(
            http::header::USER_AGENT,
            concat!("paragon-admin/", env!("CARGO_PKG_VERSION")),
        )
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| fail(e.to_string()))?;
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| fail(e.to_string()))?
            .to_bytes();
        Ok(Response { status, body })
    }
    .await;
    driver.abort();
    result
}
