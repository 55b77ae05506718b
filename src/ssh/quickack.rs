//! The bastion's TCP socket, acknowledging what it reads at once.
//!
//! sshd leaves Nagle's algorithm on for a session without a terminal (OpenSSH sets
//! `TCP_NODELAY` only for interactive ones), so when it writes twice in a row to us (a
//! port-forward's SPDY reply, then the answer behind it) the second write waits for our ACK of
//! the first. Linux delays that ACK up to 40 ms when we have nothing to send back, and a new
//! connection through the API route took 41 ms instead of 1 ms about half the time. Linux's
//! `TCP_QUICKACK`, set after every read, sends the ACK at once; it is not sticky, as the kernel
//! goes back to delaying when it sees a request-answer pattern, hence once per read. Other
//! systems keep their own ACK timing.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A `TcpStream` that acknowledges each read at once (Linux); writes go through untouched.
pub(super) struct QuickAck(pub(super) TcpStream);

impl AsyncRead for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.0).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            quick_ack(&self.0);
        }
        read
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn quick_ack(s: &TcpStream) {
    // A socket that refuses it only keeps the kernel's own timing.
    let _ = rustix::net::sockopt::set_tcp_quickack(s, true);
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn quick_ack(_: &TcpStream) {}

impl AsyncWrite for QuickAck {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
