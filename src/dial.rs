//! The one abstraction at the centre: open a byte stream to HOST:PORT as seen from somewhere.
//!
//! `Direct` dials plain TCP from this machine (used with `--local`, on the bastion itself and
//! in tests); the SSH `Bastion` dials through a `direct-tcpip` channel. Forwards, the
//! Kubernetes client, datastore probes and HTTP checks take a `&dyn Dialer` and never know
//! which one they have. This module knows nothing of SSH.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A bidirectional byte stream, whatever carries it.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// A boxed stream, as every dialer returns it.
pub type BoxStream = Box<dyn Stream>;

/// The future a dialer returns.
pub type DialFuture<'a> = Pin<Box<dyn Future<Output = Result<BoxStream, DialError>> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum DialError {
    // `cause`, not `source`: health findings and the forward log show this error by itself,
    // so the cause is in the message and not chained again.
    #[error("cannot connect to {target}: {cause}")]
    Io { target: String, cause: io::Error },
    #[error("connecting to {target} timed out after {}s", .after.as_secs())]
    Timeout { target: String, after: Duration },
    /// The far side could not connect (refused, unreachable, forbidden); `reason` is its own.
    #[error("the bastion could not connect to {target}: {reason}")]
    Rejected { target: String, reason: String },
    /// The far side could not resolve the host name.
    #[error("bastion: cannot resolve {host} ({reason})")]
    Unresolved { host: String, reason: String },
    #[error("no connection to the bastion to reach {target}: {reason}")]
    NoSession { target: String, reason: String },
}

/// Formats a target as `host:port`, bracketing IPv6 addresses.
pub fn target(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Opens streams to `host:port` as seen from somewhere.
pub trait Dialer: Send + Sync {
    /// Opens one stream; every call is a new connection.
    fn connect<'a>(&'a self, host: &'a str, port: u16) -> DialFuture<'a>;
    /// Where the connections come from, for messages: `this machine`, `bastion b:22`.
    fn describe(&self) -> String;
    /// Opens one connection for a local client: a stream to copy (`connect`), unless this
    /// dialer lives in another process that can carry the client's socket itself.
    fn open<'a>(&'a self, host: &'a str, port: u16) -> OpenFuture<'a> {
        Box::pin(async move { self.connect(host, port).await.map(Opened::Stream) })
    }
}

/// A connection opened for a local client.
pub enum Opened {
    /// Bytes to copy between the client and this stream.
    Stream(BoxStream),
    /// A connection another process (the agent) holds open, waiting to be handed the
    /// client's socket and to copy itself: one process and one socket fewer on the way.
    Carried(Box<dyn Carried>),
}

/// The future `Dialer::open` returns.
pub type OpenFuture<'a> = Pin<Box<dyn Future<Output = Result<Opened, DialError>> + Send + 'a>>;

/// How a carried connection copies: the caller's rules, applied where the bytes pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Carry {
    /// Copy buffer per direction.
    pub buffer: usize,
    /// How long the target may stay silent once the client has ended its side.
    pub quiet_after_client_eof: Duration,
}

/// Told the bytes of a carried connection as they pass: sent to the target, received from
/// it (increments).
pub type Counted<'a> = &'a (dyn Fn(u64, u64) + Send + Sync);

/// The future `Carried::carry` returns: the bytes sent and received.
pub type CarryFuture<'a> = Pin<Box<dyn Future<Output = io::Result<(u64, u64)>> + Send + 'a>>;

/// An opened connection that is carried elsewhere once handed the client's socket.
pub trait Carried: Send {
    /// Hands `client` over and waits for the connection's end.
    fn carry<'a>(
        self: Box<Self>,
        client: TcpStream,
        how: Carry,
        counted: Counted<'a>,
    ) -> CarryFuture<'a>;
}

/// Plain TCP from this machine, with a deadline on each connect.
#[derive(Debug, Clone)]
pub struct Direct {
    pub timeout: Duration,
}

impl Default for Direct {
    fn default() -> Self {
        Direct {
            timeout: Duration::from_secs(10),
        }
    }
}

impl Dialer for Direct {
    fn connect<'a>(&'a self, host: &'a str, port: u16) -> DialFuture<'a> {
        Box::pin(async move {
            let t = target(host, port);
            let stream =
                match tokio::time::timeout(self.timeout, TcpStream::connect((host, port))).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(cause)) => return Err(DialError::Io { target: t, cause }),
                    Err(_) => {
                        return Err(DialError::Timeout {
                            target: t,
                            after: self.timeout,
                        });
                    }
                };
            // Interactive protocols (HTTP, Postgres) send small requests: do not wait on Nagle.
            let _ = stream.set_nodelay(true);
            Ok(Box::new(stream) as BoxStream)
        })
    }

    fn describe(&self) -> String {
        "this machine".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn direct_dials_and_carries_bytes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
        });
        let mut s = Direct::default().connect("127.0.0.1", port).await.unwrap();
        s.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn refused_connection_names_the_target() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let Err(e) = Direct::default().connect("127.0.0.1", port).await else {
            panic!("connect to a closed port succeeded");
        };
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    }

    #[test]
    fn ipv6_targets_are_bracketed() {
        assert_eq!(target("::1", 80), "[::1]:80");
        assert_eq!(target("h", 80), "h:80");
    }
}
