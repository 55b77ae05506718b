//! A hyper connector that opens each connection through a `Dialer`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;

use crate::config::HostPort;
use crate::dial::{BoxStream, DialError, Dialer};

/// Dials `override` if set, else the request URI's host and port (default 443 for https).
#[derive(Clone)]
pub struct DialConnector {
    dialer: Arc<dyn Dialer>,
    target: Option<HostPort>,
}

impl DialConnector {
    pub fn new(dialer: Arc<dyn Dialer>, target: Option<HostPort>) -> Self {
        DialConnector { dialer, target }
    }
}

/// A dialed stream in hyper's IO traits.
pub struct Dialed(TokioIo<BoxStream>);

impl Connection for Dialed {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl Read for Dialed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl Write for Dialed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl tower::Service<http::Uri> for DialConnector {
    type Response = Dialed;
    type Error = DialError;
    type Future = Pin<Box<dyn Future<Output = Result<Dialed, DialError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let dialer = self.dialer.clone();
        let (host, port) = match &self.target {
            Some(t) => (t.host.clone(), t.port),
            None => {
                let default = if uri.scheme_str() == Some("http") {
                    80
                } else {
                    443
                };
                let host = uri.host().unwrap_or_default();
                let host = host.trim_start_matches('[').trim_end_matches(']');
                (host.to_string(), uri.port_u16().unwrap_or(default))
            }
        };
        Box::pin(async move {
            let stream = dialer.connect(&host, port).await?;
            Ok(Dialed(TokioIo::new(stream)))
        })
    }
}
