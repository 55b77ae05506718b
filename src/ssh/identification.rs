//! What a server sent before its SSH identification line, kept while the handshake reads it:
//! when the handshake fails there, the error says what answered (a web server's status line)
//! or that the server hung up without a word, as OpenSSH's `kex_exchange_identification`
//! does. russh's own error says only "Disconnected". It knows nothing of keys or profiles.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::SshError;
use crate::dial::BoxStream;

/// `stream` with a copy kept of what it reads until the server identifies itself, and the
/// handle that reads that copy after a failed handshake.
pub(super) fn listen(stream: BoxStream) -> (Listening, Heard) {
    let received = Arc::new(Mutex::new(Received::default()));
    let listening = Listening {
        inner: stream,
        heard: received.clone(),
        done: false,
    };
    (listening, Heard(received))
}

/// What the server sent, as the handshake's stream kept it.
pub(super) struct Heard(Arc<Mutex<Received>>);

impl Heard {
    /// The failed handshake's error as the user needs it (see `handshake_error`).
    pub(super) fn handshake_error(&self, target: &str, cause: russh::Error) -> SshError {
        let answer = self.0.lock().map_or(Answer::Identified, |r| r.answer());
        handshake_error(target, answer, cause)
    }
}

/// The most kept of what a server sends up to its identification line (russh itself reads
/// at most 20 lines of 255 bytes before it).
const HEARD_MAX: usize = 8 * 1024;

/// What the server sent up to its SSH identification line: when the handshake fails before
/// one came, it tells a port that speaks another protocol from a server that hung up.
#[derive(Default)]
struct Received {
    bytes: Vec<u8>,
    identified: bool,
}

/// How the server answered our identification line.
#[derive(Debug, PartialEq)]
enum Answer {
    /// With an SSH identification line: whatever failed, failed later.
    Identified,
    /// With nothing before it hung up.
    Silent,
    /// With this line, which is not SSH's.
    Said(String),
}

impl Received {
    /// Keeps `new`; true once there is no more to keep (identified, or full).
    fn push(&mut self, new: &[u8]) -> bool {
        let room = HEARD_MAX.saturating_sub(self.bytes.len());
        self.bytes.extend_from_slice(&new[..new.len().min(room)]);
        // Only complete lines count: russh needs the whole line too.
        self.identified = self
            .bytes
            .split(|&b| b == b'\n')
            .rev()
            .skip(1)
            .any(|line| line.starts_with(b"SSH-2.0-") || line.starts_with(b"SSH-1.99-"));
        self.identified || self.bytes.len() >= HEARD_MAX
    }

    fn answer(&self) -> Answer {
        if self.identified {
            return Answer::Identified;
        }
        let first = self
            .bytes
            .split(|&b| b == b'\n')
            .map(|l| String::from_utf8_lossy(l).trim().to_string())
            .find(|l| !l.is_empty());
        match first {
            None => Answer::Silent,
            Some(line) => Answer::Said(printable(&line)),
        }
    }
}

/// A line a server sent, fit for one line of a terminal: control characters escaped, at most
/// 100 characters.
fn printable(line: &str) -> String {
    let mut out = crate::text::printable(&line.chars().take(100).collect::<String>());
    if line.chars().count() > 100 {
        out.push('\u{2026}');
    }
    out
}

/// The handshake's failure as the user needs it: a server that is not SSH or that hung up
/// before identifying itself said so (as OpenSSH's `kex_exchange_identification` does),
/// network errors as connection errors, the rest as SSH's own.
fn handshake_error(target: &str, answer: Answer, cause: russh::Error) -> SshError {
    use std::io::ErrorKind::{BrokenPipe, ConnectionReset, UnexpectedEof};
    let target = target.to_string();
    match (answer, cause) {
        (Answer::Said(answered), _) => SshError::NotSsh { target, answered },
        (Answer::Silent, russh::Error::Disconnect) => SshError::ClosedEarly { target },
        (Answer::Silent, russh::Error::IO(e))
            if matches!(e.kind(), ConnectionReset | UnexpectedEof | BrokenPipe) =>
        {
            SshError::ClosedEarly { target }
        }
        (_, russh::Error::IO(cause)) => SshError::Connect { target, cause },
        (_, cause) => SshError::Handshake { target, cause },
    }
}

/// The stream under the SSH session, keeping a copy of what it reads until the server's
/// identification line has come; after that a plain pass-through.
pub(super) struct Listening {
    inner: BoxStream,
    heard: Arc<Mutex<Received>>,
    done: bool,
}

impl AsyncRead for Listening {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if !this.done && matches!(read, Poll::Ready(Ok(()))) {
            let new = &buf.filled()[before..];
            this.done = this.heard.lock().map_or(true, |mut h| h.push(new));
        }
        read
    }
}

impl AsyncWrite for Listening {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heard(chunks: &[&[u8]]) -> Answer {
        let mut h = Received::default();
        for c in chunks {
            h.push(c);
        }
        h.answer()
    }

    #[test]
    fn the_first_line_of_a_server_that_is_not_ssh_is_what_it_answered() {
        assert_eq!(
            heard(&[b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n"]),
            Answer::Said("HTTP/1.1 400 Bad Request".into())
        );
        assert_eq!(
            heard(&[b"\r\n<!DOCTYPE HTML>\n"]),
            Answer::Said("<!DOCTYPE HTML>".into())
        );
        assert_eq!(
            heard(&[b"\x15\x03\x01\x00\x02"]),
            Answer::Said("\\025\\003\\001\\000\\002".into())
        );
        assert_eq!(heard(&[]), Answer::Silent);
        // Lines before the identification are allowed (RFC 4253 4.2), in any chunks.
        assert_eq!(
            heard(&[b"welcome\r\nSSH-2.0-Open", b"SSH_9.2\r\n"]),
            Answer::Identified
        );
        assert_eq!(
            heard(&[b"SSH-2.0-OpenSSH_9.2"]),
            Answer::Said("SSH-2.0-OpenSSH_9.2".into())
        );
        let long = "x".repeat(300);
        let Answer::Said(line) = heard(&[long.as_bytes()]) else {
            panic!("not said")
        };
        assert_eq!(line.chars().count(), 101);
    }

    #[test]
    fn a_handshake_that_failed_after_identification_keeps_its_cause() {
        let e = handshake_error("h:22", Answer::Identified, russh::Error::Disconnect);
        assert!(matches!(e, SshError::Handshake { .. }), "{e}");
        let e = handshake_error("h:22", Answer::Silent, russh::Error::Disconnect);
        assert!(matches!(e, SshError::ClosedEarly { .. }), "{e}");
        let e = handshake_error(
            "h:22",
            Answer::Silent,
            russh::Error::IO(std::io::ErrorKind::ConnectionReset.into()),
        );
        assert!(matches!(e, SshError::ClosedEarly { .. }), "{e}");
        let e = handshake_error(
            "h:22",
            Answer::Said("HTTP/1.1 400 Bad Request".into()),
            russh::Error::Disconnect,
        );
        assert_eq!(
            e.to_string(),
            "h:22 is not an SSH server? it answered `HTTP/1.1 400 Bad Request`"
        );
    }
}
