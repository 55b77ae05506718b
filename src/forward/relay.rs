//! Serving one local listener: accept, dial the target through the current session, copy
//! both ways, count. A target that cannot be reached fails that one connection only.
//!
//! A connection ends when both sides have ended theirs, with one bound: once the local client
//! has ended its side, a target that then stays silent for `quiet_after_client_eof` is not
//! waited for any longer. A client that closed its socket cannot be told from one that only
//! half-closed it, and a target that never ends its stream (a log tail, a server that ignores
//! EOF) would otherwise keep the connection, its task and its SSH channel for ever (issue 14).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::dial::{BoxStream, Carry, DialError, Opened, target};

use super::socks::{self, Reply};
use super::spec::{Forward, Target};
use super::supervisor::Link;

/// How long a SOCKS client may take to say where it wants to go.
const SOCKS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Counters of one forward, read by the live status.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections now open.
    pub open: AtomicU64,
    /// Connections accepted so far.
    pub total: AtomicU64,
    /// Connections whose target could not be reached.
    pub failed: AtomicU64,
    /// Bytes from the local client towards the target.
    pub sent: AtomicU64,
    /// Bytes from the target to the local client.
    pub received: AtomicU64,
}

/// What every connection of a forward shares.
#[derive(Clone)]
pub(crate) struct Relay {
    pub link: Link,
    /// How long a new connection waits for a session while the bastion is away.
    pub wait_for_session: Duration,
    /// Copy buffer per direction.
    pub buffer_size: usize,
    /// How long the target may stay silent after the local client ended its side.
    pub quiet_after_client_eof: Duration,
    pub cancel: CancellationToken,
    pub tracker: TaskTracker,
}

/// Accepts connections on `listener` until cancelled, each served in its own task.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    local: SocketAddr,
    forward: Arc<Forward>,
    stats: Arc<Stats>,
    relay: Relay,
) {
    let span = info_span!("forward", name = %forward.name, %local);
    let mut next_id = 0u64;
    loop {
        let accepted = tokio::select! {
            () = relay.cancel.cancelled() => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: pause instead of spinning.
                warn!(parent: &span, "cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let conn_span = info_span!(parent: &span, "conn", id = next_id, %peer);
        let task = serve_connection(stream, forward.clone(), stats.clone(), relay.clone());
        relay.tracker.spawn(task.instrument(conn_span));
    }
    debug!(parent: &span, "listener closed");
}

async fn serve_connection(
    stream: TcpStream,
    forward: Arc<Forward>,
    stats: Arc<Stats>,
    relay: Relay,
) {
    stats.total.fetch_add(1, Ordering::Relaxed);
    stats.open.fetch_add(1, Ordering::Relaxed);
    let _open = OpenGuard(&stats);
    let started = Instant::now();
    let cancel = relay.cancel.clone();
    let result = tokio::select! {
        () = cancel.cancelled() => return,
        r = connect_and_copy(stream, &forward.target, &stats, &relay) => r,
    };
    match result {
        Ok((t, sent, received)) => info!(
            target = %t,
            sent,
            received,
            "closed after {:.1}s",
            started.elapsed().as_secs_f64()
        ),
        Err(Failure::Dial(t, e)) => {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            warn!(target = %t, "connection failed: {e}");
        }
        Err(Failure::Socks(e)) => {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            warn!("SOCKS request failed: {e}");
        }
    }
}

enum Failure {
    Dial(String, DialError),
    Socks(String),
}

async fn connect_and_copy(
    mut stream: TcpStream,
    target_kind: &Target,
    stats: &Stats,
    relay: &Relay,
) -> Result<(String, u64, u64), Failure> {
    let (host, port, socks) = match target_kind {
        Target::Tunnel { host, port } => (host.clone(), *port, false),
        Target::Socks => {
            let request =
                tokio::time::timeout(SOCKS_HANDSHAKE_TIMEOUT, socks::accept_request(&mut stream))
                    .await
                    .map_err(|_| Failure::Socks("no request within 10s".to_string()))?;
            let (h, p) = request.map_err(|e| Failure::Socks(e.to_string()))?;
            (h, p, true)
        }
    };
    let t = target(&host, port);
    let dialing = Instant::now();
    let remote = match dial(&relay.link, &host, port, relay.wait_for_session).await {
        Ok(r) => {
            debug!(target = %t, "connected in {:.2} ms", dialing.elapsed().as_secs_f64() * 1e3);
            r
        }
        Err(e) => {
            if socks {
                let _ = socks::reply(&mut stream, Reply::for_dial_error(&e)).await;
            }
            return Err(Failure::Dial(t, e));
        }
    };
    if socks && socks::reply(&mut stream, Reply::Succeeded).await.is_err() {
        return Ok((t, 0, 0));
    }
    let how = Carry {
        buffer: relay.buffer_size,
        quiet_after_client_eof: relay.quiet_after_client_eof,
    };
    let copied = match remote {
        Opened::Stream(remote) => copy(&mut stream, remote, stats, how).await,
        Opened::Carried(carried) => {
            let counted = |sent, received| {
                stats.sent.fetch_add(sent, Ordering::Relaxed);
                stats.received.fetch_add(received, Ordering::Relaxed);
            };
            carried.carry(stream, how, &counted).await
        }
    };
    match copied {
        Ok((sent, received)) => Ok((t, sent, received)),
        Err(e) => {
            // A reset in the middle is the peers' business, not a failure of the forward.
            debug!(target = %t, "ended with {e}");
            Ok((t, 0, 0))
        }
    }
}

/// Copies both ways between a local client and the target until both have ended theirs (or
/// the target stayed silent for `how.quiet_after_client_eof` after the client's end),
/// counting into `stats` as bytes pass: the sent and received totals.
pub(crate) async fn copy(
    client: &mut TcpStream,
    remote: BoxStream,
    stats: &Stats,
    how: Carry,
) -> std::io::Result<(u64, u64)> {
    let client_ended = AtomicBool::new(false);
    let mut local = Counted {
        inner: client,
        stats,
        ended: &client_ended,
    };
    let mut remote = Coalesced {
        inner: remote,
        pending_error: None,
        quiet: Quiet {
            client_ended: &client_ended,
            limit: how.quiet_after_client_eof,
            timer: None,
        },
    };
    tokio::io::copy_bidirectional_with_sizes(&mut local, &mut remote, how.buffer, how.buffer).await
}

/// Opens the connection through the current session; if that session turns out to be gone,
/// waits for the next one, all within `wait`.
async fn dial(link: &Link, host: &str, port: u16, wait: Duration) -> Result<Opened, DialError> {
    let deadline = Instant::now() + wait;
    let no_session = |reason: String| DialError::NoSession {
        target: target(host, port),
        reason,
    };
    let (dialer, generation) = link
        .dialer(0, wait)
        .await
        .map_err(|e| no_session(e.to_string()))?;
    match dialer.open(host, port).await {
        Err(DialError::NoSession { reason, .. }) => {
            debug!("the session went away while dialing ({reason}); waiting for the next");
            let left = deadline.saturating_duration_since(Instant::now());
            let (dialer, _) = link
                .dialer(generation, left)
                .await
                .map_err(|e| no_session(e.to_string()))?;
            dialer.open(host, port).await
        }
        other => other,
    }
}

struct OpenGuard<'a>(&'a Stats);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The local side of a connection, counting bytes as they pass, and noting when the client
/// has ended its side.
struct Counted<'a, S> {
    inner: S,
    stats: &'a Stats,
    ended: &'a AtomicBool,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let n = (buf.filled().len() - before) as u64;
        self.stats.sent.fetch_add(n, Ordering::Relaxed);
        if n == 0 && buf.remaining() > 0 {
            self.ended.store(true, Ordering::Relaxed);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
        self.stats.received.fetch_add(n as u64, Ordering::Relaxed);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The remote side of a connection, read so that every message the session has already
/// received lands in one buffer: an SSH channel yields one packet (at most 32 KiB) per read,
/// and writing each to the local socket on its own costs a system call and a wakeup per packet.
struct Coalesced<'a, S> {
    inner: S,
    /// An error met after some bytes were read, returned by the next read.
    pending_error: Option<std::io::Error>,
    quiet: Quiet<'a>,
}

/// The bound on a target's silence once the local client has ended its side.
struct Quiet<'a> {
    client_ended: &'a AtomicBool,
    limit: Duration,
    /// Armed while a read waits after the client ended; disarmed by any byte from the target.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Quiet<'_> {
    /// Called when a read of the target is pending: an error once the target has been silent
    /// for the limit since the client ended its side.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Error> {
        if !self.client_ended.load(Ordering::Relaxed) {
            return Poll::Pending;
        }
        let limit = self.limit;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "the target sent nothing for {}s after the client ended its side",
                limit.as_secs()
            ),
        ))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Coalesced<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(e) = self.pending_error.take() {
            return Poll::Ready(Err(e));
        }
        let start = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                r?;
                this.quiet.timer = None;
            }
            Poll::Pending => return this.quiet.poll_expired(cx).map(Err),
        }
        // Then whatever else is ready, without waiting: Pending or end of stream stops here
        // and is met again by the next read.
        while buf.remaining() > 0 && buf.filled().len() > start {
            let before = buf.filled().len();
            match Pin::new(&mut self.inner).poll_read(cx, buf) {
                Poll::Ready(Ok(())) if buf.filled().len() > before => {}
                Poll::Ready(Err(e)) => {
                    self.pending_error = Some(e);
                    break;
                }
                Poll::Ready(Ok(())) | Poll::Pending => break,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesced<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
