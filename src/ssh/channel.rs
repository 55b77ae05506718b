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

use std::collections::VecDeque;
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

/// The most bytes of received packets one write of `TcpChannel::relay` carries.
const WRITE_AT_MOST: usize = 256 * 1024;

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
    read: Received,
    write: Sending,
    ledger: Arc<Ledger>,
}

/// The receiving half of a `TcpChannel`.
struct Received {
    /// The next message, always in flight; it owns the read half between polls. `None` only
    /// once dropped.
    reading: Option<ReusableBoxFuture<'static, Next>>,
    /// Data received and not yet read, from this offset.
    pending: Option<(Bytes, usize)>,
    /// The server sent EOF or CLOSE: reads return end of stream.
    eof_received: bool,
    /// The session let go of its half of the channel (the message queue ended).
    released: bool,
}

/// The sending half of a `TcpChannel`.
struct Sending {
    writer: Pin<Box<dyn AsyncWrite + Send>>,
    /// Kept for the EOF and CLOSE sent on drop.
    write_half: Option<ChannelWriteHalf<Msg>>,
    eof_sent: bool,
}

impl TcpChannel {
    pub(crate) fn new(channel: Channel<Msg>, ledger: Arc<Ledger>) -> TcpChannel {
        let (read_half, write_half) = channel.split();
        ledger.open.fetch_add(1, Ordering::Relaxed);
        TcpChannel {
            read: Received {
                reading: Some(ReusableBoxFuture::new(next(read_half))),
                pending: None,
                eof_received: false,
                released: false,
            },
            write: Sending {
                writer: Box::pin(write_half.make_writer()),
                write_half: Some(write_half),
                eof_sent: false,
            },
            ledger,
        }
    }

    /// Copies both ways between this channel and a peer stream (its read and write halves)
    /// until both directions have ended, each ended as `copy_bidirectional` ends it (EOF one
    /// way shuts that way down). Towards the peer, the packets already received are written
    /// as they arrived, several to a system call (`writev`), rather than copied into a
    /// buffer first: one copy of every downloaded byte less (issue 25). Returns the bytes
    /// sent to the channel and received from it.
    pub(crate) async fn relay<R, W>(
        &mut self,
        mut from_peer: R,
        mut to_peer: W,
        buffer: usize,
    ) -> std::io::Result<(u64, u64)>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        use tokio::io::AsyncWriteExt;
        // Both halves at once: the relay receives and sends side by side.
        let (received, sending) = (&mut self.read, &mut self.write);
        let upload = async {
            let mut from_peer = tokio::io::BufReader::with_capacity(buffer, &mut from_peer);
            let n = tokio::io::copy_buf(&mut from_peer, &mut *sending).await?;
            sending.shutdown().await?;
            Ok::<u64, std::io::Error>(n)
        };
        let download = async {
            let mut chunks = VecDeque::new();
            let mut total = 0u64;
            loop {
                std::future::poll_fn(|cx| received.poll_chunks(cx, &mut chunks, WRITE_AT_MOST))
                    .await;
                if chunks.is_empty() {
                    break;
                }
                while !chunks.is_empty() {
                    let n = write_chunks(&mut to_peer, &chunks).await?;
                    total += n as u64;
                    consume(&mut chunks, n);
                }
            }
            to_peer.shutdown().await?;
            Ok::<u64, std::io::Error>(total)
        };
        tokio::try_join!(upload, download)
    }
}

/// One vectored write of (the start of) `chunks`; a write of nothing is an error.
async fn write_chunks<W: AsyncWrite + Unpin>(
    to: &mut W,
    chunks: &VecDeque<Bytes>,
) -> std::io::Result<usize> {
    use tokio::io::AsyncWriteExt;
    let slices: Vec<std::io::IoSlice<'_>> =
        chunks.iter().map(|c| std::io::IoSlice::new(c)).collect();
    let n = to.write_vectored(&slices).await?;
    if n == 0 {
        return Err(std::io::ErrorKind::WriteZero.into());
    }
    Ok(n)
}

/// Drops the first `n` bytes of `chunks`.
fn consume(chunks: &mut VecDeque<Bytes>, mut n: usize) {
    while n > 0 {
        let Some(first) = chunks.front_mut() else {
            return;
        };
        if n < first.len() {
            bytes::Buf::advance(first, n);
            return;
        }
        n -= first.len();
        chunks.pop_front();
    }
}

impl Received {
    /// Takes the next message of the session: data goes to `pending`, EOF, CLOSE and the end
    /// of the queue end the stream; `Pending` when none has arrived.
    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(reading) = self.reading.as_mut() else {
            self.eof_received = true;
            return Poll::Ready(());
        };
        let (half, msg) = ready!(reading.poll(cx));
        reading.set(next(half));
        match msg {
            Some(ChannelMsg::Data { data }) if !data.is_empty() => self.pending = Some((data, 0)),
            Some(ChannelMsg::Eof) | Some(ChannelMsg::Close) => self.eof_received = true,
            None => self.released = true,
            // Window adjustments and the like: nothing to read.
            Some(_) => {}
        }
        Poll::Ready(())
    }

    fn ended(&self) -> bool {
        self.eof_received || self.released
    }

    /// Moves every packet already received into `chunks`, as received (no copy), until they
    /// hold `limit` bytes; waits for the first one. Nothing added means the end of the stream.
    fn poll_chunks(
        &mut self,
        cx: &mut Context<'_>,
        chunks: &mut VecDeque<Bytes>,
        limit: usize,
    ) -> Poll<()> {
        let mut held: usize = chunks.iter().map(Bytes::len).sum();
        let start = chunks.len();
        loop {
            if let Some((data, offset)) = self.pending.take() {
                held += data.len() - offset;
                chunks.push_back(data.slice(offset..));
                if held >= limit {
                    return Poll::Ready(());
                }
                continue;
            }
            if self.ended() {
                return Poll::Ready(());
            }
            match self.poll_message(cx) {
                Poll::Ready(()) => {}
                Poll::Pending if chunks.len() > start => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl AsyncRead for Received {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let start = buf.filled().len();
        // Every message already received goes into this one read, up to the buffer's room:
        // a read per packet (at most 32 KiB) would cost the reader a write and a wakeup per
        // packet (issue 25).
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
            if this.ended() {
                return Poll::Ready(Ok(()));
            }
            match this.poll_message(cx) {
                Poll::Ready(()) => {}
                // What was read so far is this read's; the waker stays registered.
                Poll::Pending if buf.filled().len() > start => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl AsyncRead for TcpChannel {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for Sending {
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

impl AsyncWrite for TcpChannel {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.write).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.write).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.write).poll_shutdown(cx)
    }
}

impl Drop for TcpChannel {
    fn drop(&mut self) {
        let ledger = self.ledger.clone();
        let (Some(reading), Some(write_half)) =
            (self.read.reading.take(), self.write.write_half.take())
        else {
            return;
        };
        if self.read.released {
            ledger.open.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let eof_sent = self.write.eof_sent;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consume_drops_whole_chunks_then_advances_into_the_next() {
        let mut chunks: VecDeque<Bytes> = ["abc", "defg", "hi"]
            .into_iter()
            .map(|s| Bytes::from_static(s.as_bytes()))
            .collect();
        consume(&mut chunks, 5);
        assert_eq!(
            chunks,
            [Bytes::from_static(b"fg"), Bytes::from_static(b"hi")]
        );
        consume(&mut chunks, 2);
        assert_eq!(chunks, [Bytes::from_static(b"hi")]);
        consume(&mut chunks, 10);
        assert!(chunks.is_empty());
    }
}
