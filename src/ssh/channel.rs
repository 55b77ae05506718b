//! A `direct-tcpip` channel as a byte stream that ends the way the SSH session needs it to end,
//! and a count of the channels the session still holds. It knows nothing of forwards.
//!
//! Why not russh's own `ChannelStream`: dropping it sends our CHANNEL_CLOSE at once, and russh
//! 0.65 forgets its half of the channel only when the *server's* CLOSE arrives while the channel
//! is still open on our side. After our own CLOSE, the server's answering CLOSE is ignored and
//! the channel's message queue (about 3 KB) stays in the session for as long as the session
//! lives: a forward grew by that much per connection (issue 14, found with heaptrack). So on
//! drop this stream sends EOF (not CLOSE) and lets a task read on until the server closes the
//! channel, which also releases russh's half; only when the server does not close it within
//! `CLOSE_WAIT` (a target that never ends) is CLOSE sent, and that channel is counted as held.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use russh::client::Msg;
use russh::{Channel, ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::ReusableBoxFuture;

/// How long a dropped channel waits for the server to close it before closing it itself.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// The channels of one session, as counted by their streams.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    open: AtomicU64,
    held: AtomicU64,
}

/// What a session holds in channels (see `Bastion::channel_counts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelCounts {
    /// Streams handed out whose channel has not been released yet (in use, or closing).
    pub open: u64,
    /// Channels ended whose state the SSH session keeps for its lifetime: the server never
    /// closed them within the wait, so we closed them first (see the module comment).
    pub held: u64,
}

impl Ledger {
    /// One more channel we closed first (a `session` channel whose command outlived the wait).
    pub(crate) fn count_held(&self) {
        self.held.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn counts(&self) -> ChannelCounts {
        ChannelCounts {
            open: self.open.load(Ordering::Relaxed),
            held: self.held.load(Ordering::Relaxed),
        }
    }
}

type Next = (ChannelReadHalf, Option<ChannelMsg>);

async fn next(mut half: ChannelReadHalf) -> Next {
    let msg = half.wait().await;
    (half, msg)
}

/// A `direct-tcpip` channel as `AsyncRead + AsyncWrite`.
pub(crate) struct TcpChannel {
    /// The next message, always in flight; it owns the read half between polls. `None` only
    /// once dropped.
    reading: Option<ReusableBoxFuture<'static, Next>>,
    /// Data received and not yet read, from this offset.
    pending: Option<(Bytes, usize)>,
    /// The server sent EOF or CLOSE: reads return end of stream.
    eof_received: bool,
    /// The session let go of its half of the channel (the message queue ended).
    released: bool,
    writer: Pin<Box<dyn AsyncWrite + Send>>,
    /// Kept for the EOF and CLOSE sent on drop.
    write_half: Option<ChannelWriteHalf<Msg>>,
    eof_sent: bool,
    ledger: Arc<Ledger>,
}

impl TcpChannel {
    pub(crate) fn new(channel: Channel<Msg>, ledger: Arc<Ledger>) -> TcpChannel {
        let (read_half, write_half) = channel.split();
        ledger.open.fetch_add(1, Ordering::Relaxed);
        TcpChannel {
            reading: Some(ReusableBoxFuture::new(next(read_half))),
            pending: None,
            eof_received: false,
            released: false,
            writer: Box::pin(write_half.make_writer()),
            write_half: Some(write_half),
            eof_sent: false,
            ledger,
        }
    }
}

impl AsyncRead for TcpChannel {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let start = buf.filled().len();
        // Every message already received goes into this one read, up to the buffer's room:
        // a read per packet (at most 32 KiB) would cost the reader a write and a wakeup per
        // packet (issue 25; the agent relays a channel to its socket this way).
        loop {
            if let Some((data, offset)) = &mut this.pending {
                let n = buf.remaining().min(data.len() - *offset);
                buf.put_slice(&data[*offset..*offset + n]);
                *offset += n;
                if *offset == data.len() {
                    this.pending = None;
                }
                if buf.remaining() == 0 {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            if this.eof_received || this.released {
                return Poll::Ready(Ok(()));
            }
            let Some(reading) = this.reading.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            let (half, msg) = match reading.poll(cx) {
                Poll::Ready(next) => next,
                // What was read so far is this read's; the waker stays registered.
                Poll::Pending if buf.filled().len() > start => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            };
            reading.set(next(half));
            match msg {
                Some(ChannelMsg::Data { data }) if !data.is_empty() => {
                    this.pending = Some((data, 0));
                }
                Some(ChannelMsg::Eof) | Some(ChannelMsg::Close) => this.eof_received = true,
                None => this.released = true,
                // Window adjustments and the like: nothing to read.
                Some(_) => {}
            }
        }
    }
}

impl AsyncWrite for TcpChannel {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.writer.as_mut().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.writer.as_mut().poll_flush(cx)
    }

    /// Sends EOF: the target sees the end of what we send, and can still answer.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.eof_sent {
            return Poll::Ready(Ok(()));
        }
        ready!(self.writer.as_mut().poll_shutdown(cx))?;
        self.eof_sent = true;
        Poll::Ready(Ok(()))
    }
}

impl Drop for TcpChannel {
    fn drop(&mut self) {
        let ledger = self.ledger.clone();
        let (Some(reading), Some(write_half)) = (self.reading.take(), self.write_half.take())
        else {
            return;
        };
        if self.released {
            ledger.open.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let eof_sent = self.eof_sent;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime, so no session task either: nothing is left to release.
            ledger.open.fetch_sub(1, Ordering::Relaxed);
            return;
        };
        runtime.spawn(close_when_the_server_does(
            reading, write_half, eof_sent, ledger,
        ));
    }
}

/// Sends EOF if not yet sent, then reads (discarding data) until the session releases the
/// channel, which it does when the server's CLOSE arrives; after `CLOSE_WAIT`, closes it.
async fn close_when_the_server_does(
    mut reading: ReusableBoxFuture<'static, Next>,
    write_half: ChannelWriteHalf<Msg>,
    eof_sent: bool,
    ledger: Arc<Ledger>,
) {
    if !eof_sent {
        let _ = write_half.eof().await;
    }
    let released = async {
        loop {
            let (half, msg) = std::future::poll_fn(|cx| reading.poll(cx)).await;
            if msg.is_none() {
                return;
            }
            reading.set(next(half));
        }
    };
    close_unless_released(released, &write_half, &ledger).await;
    ledger.open.fetch_sub(1, Ordering::Relaxed);
}

/// Waits at most `CLOSE_WAIT` for `released` (the server's CLOSE, which also releases
/// russh's half); a channel the server has not closed by then is closed by us and counted
/// as held.
pub(crate) async fn close_unless_released(
    released: impl std::future::Future<Output = ()>,
    write_half: &ChannelWriteHalf<Msg>,
    ledger: &Ledger,
) {
    if tokio::time::timeout(CLOSE_WAIT, released).await.is_err() {
        tracing::debug!("the server did not close a channel within {CLOSE_WAIT:?}: closing it");
        let _ = write_half.close().await;
        ledger.count_held();
    }
}
