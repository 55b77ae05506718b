//! A hyper connector that opens each connection through a `Dialer`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;

use crate::config::HostPort;
use crate::dial::{BoxStream, DialError, Dialer};

/// Dials `override` if set, else the request URI's host and port (default 443 for https).
///
/// Until one of its dials (or its clones') has succeeded, dials take turns. Requests sent
/// together before the first connection (the health report's checks) then learn that the API
/// server cannot be reached from one attempt at a time, not from ten at once: an sshd resolves
/// a target's name on its one thread, so ten lookups of a name it cannot resolve would stall
/// the session's other channels while they last. Once a dial succeeded, they go side by side.
#[derive(Clone)]
pub struct DialConnector {
    dialer: Arc<dyn Dialer>,
    target: Option<HostPort>,
    reached: Arc<AtomicBool>,
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl DialConnector {
    pub fn new(dialer: Arc<dyn Dialer>, target: Option<HostPort>) -> Self {
        DialConnector {
            dialer,
            target,
            reached: Arc::new(AtomicBool::new(false)),
            turn: Arc::new(tokio::sync::Mutex::new(())),
        }
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
        let (reached, turn) = (self.reached.clone(), self.turn.clone());
        Box::pin(async move {
            let _turn = match reached.load(Ordering::Acquire) {
                true => None,
                false => {
                    let held = turn.lock_owned().await;
                    // The dial before this one may have succeeded while this one waited.
                    (!reached.load(Ordering::Acquire)).then_some(held)
                }
            };
            let stream = dialer.connect(&host, port).await?;
            reached.store(true, Ordering::Release);
            Ok(Dialed(TokioIo::new(stream)))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use tower::ServiceExt;

    use super::*;
    use crate::dial::{BoxStream, DialFuture};

    /// Fails its first `failing` dials after a pause, recording how many dials were in flight
    /// meanwhile; the next one connects at once; every later one connects only when all of
    /// `later` are in flight together (a barrier), so dials taken in turns never get there.
    struct Turns {
        to: std::net::SocketAddr,
        failing: usize,
        calls: AtomicUsize,
        in_flight: AtomicUsize,
        most_in_flight_while_failing: AtomicUsize,
        later: tokio::sync::Barrier,
    }

    impl Dialer for Turns {
        fn connect<'a>(&'a self, host: &'a str, port: u16) -> DialFuture<'a> {
            Box::pin(async move {
                let call = self.calls.fetch_add(1, Ordering::SeqCst);
                let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                let result = if call < self.failing {
                    self.most_in_flight_while_failing
                        .fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Err(DialError::Rejected {
                        target: crate::dial::target(host, port),
                        reason: "Connection refused".into(),
                    })
                } else {
                    if call > self.failing {
                        self.later.wait().await;
                    }
                    let s = tokio::net::TcpStream::connect(self.to).await.unwrap();
                    Ok(Box::new(s) as BoxStream)
                };
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                result
            })
        }
        fn describe(&self) -> String {
            "turns".into()
        }
    }

    /// Until a dial succeeds the connector's dials take turns (one in flight, each failing
    /// on its own); once one did, the rest go side by side.
    #[tokio::test]
    async fn dials_take_turns_until_one_succeeds_then_go_side_by_side() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let to = listener.local_addr().unwrap();
        let accepting = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let (failing, later) = (3, 4);
        let turns = Arc::new(Turns {
            to,
            failing,
            calls: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            most_in_flight_while_failing: AtomicUsize::new(0),
            later: tokio::sync::Barrier::new(later),
        });
        let connector = DialConnector::new(turns.clone(), None);
        let dials = (0..failing + 1 + later).map(|_| {
            let c = connector.clone();
            async move {
                c.oneshot(http::Uri::from_static("https://api.test:6443"))
                    .await
                    .is_ok()
            }
        });
        let results =
            tokio::time::timeout(Duration::from_secs(20), futures::future::join_all(dials))
                .await
                .expect("the dials after the first success did not go side by side");
        assert_eq!(results.iter().filter(|ok| !**ok).count(), failing);
        assert_eq!(results.iter().filter(|ok| **ok).count(), 1 + later);
        assert_eq!(
            turns.most_in_flight_while_failing.load(Ordering::SeqCst),
            1,
            "dials went side by side before one had succeeded"
        );
        accepting.abort();
    }
}
