//! Keeps a session to the bastion alive for as long as the forwards run: when it ends, the
//! listeners stay open, new connections wait for the next session (bounded), and the session
//! is re-established by `reconnect::Reconnecting` (jittered exponential backoff; a fatal
//! failure such as a changed host key ends the forwards). Written against a connect function,
//! so it knows nothing of SSH: the caller turns its own session type into a `Session`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
// Reconnects reach the user as events (a line each, or JSON); the tracing lines say the same
// for -v only, so that without it each message appears once.
use tracing::info;

use crate::dial::Dialer;
pub use crate::reconnect::{Backoff, Failure};
use crate::reconnect::{ConnectFn, Established, Observer, Reconnecting, State};

use super::Event;

/// One established session: the dialer it gives, and a future that resolves when it ends.
pub struct Session {
    pub dialer: Arc<dyn Dialer>,
    pub ended: Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// A connect function as callers hand it around: the next session, or why not (a fatal
/// failure ends the forwards).
pub type Connect =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<Session, Failure>> + Send>> + Send + Sync>;

/// The connections' view of the session: the current dialer, or a wait for the next one.
#[derive(Clone)]
pub struct Link {
    rx: watch::Receiver<State<Arc<dyn Dialer>>>,
}

/// Why no dialer could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("the bastion is still unreachable after waiting {}s", .0.as_secs())]
    Timeout(Duration),
    /// The session closed for good: stopping, or a fatal failure (its message).
    #[error("{0}")]
    Closed(String),
}

impl Link {
    /// The current session's dialer and its generation, waiting up to `wait` for a session
    /// newer than `after` (0 = any).
    pub async fn dialer(
        &self,
        after: u64,
        wait: Duration,
    ) -> Result<(Arc<dyn Dialer>, u64), Unavailable> {
        let mut rx = self.rx.clone();
        let ready = rx.wait_for(|s| match s {
            State::Up { generation, .. } => *generation > after,
            State::Closed(_) => true,
            _ => false,
        });
        match tokio::time::timeout(wait, ready).await {
            Err(_) => Err(Unavailable::Timeout(wait)),
            Ok(Err(_)) => Err(Unavailable::Closed(STOPPING.into())),
            Ok(Ok(state)) => match &*state {
                State::Up {
                    session,
                    generation,
                } => Ok((session.clone(), *generation)),
                State::Closed(f) => Err(Unavailable::Closed(f.message.clone())),
                _ => Err(Unavailable::Closed(STOPPING.into())),
            },
        }
    }

    /// Whether a session is up now.
    pub fn is_up(&self) -> bool {
        self.rx.borrow().up().is_some()
    }

    /// Resolves when the session has closed for good, with the failure that closed it.
    pub async fn closed(&self) -> Failure {
        let mut rx = self.rx.clone();
        match rx.wait_for(|s| matches!(s, State::Closed(_))).await {
            Ok(s) => match &*s {
                State::Closed(f) => f.clone(),
                _ => Failure::fatal(STOPPING, 0),
            },
            Err(_) => Failure::fatal(STOPPING, 0),
        }
    }
}

/// What a session closed by `cancel` says.
const STOPPING: &str = "the forward is stopping";

/// Starts supervising `first`; when it ends, `connect` is called (with backoff) until a new
/// session is up. Events go to `events`. Returns the `Link` and the supervising task, which
/// ends when `cancel` is cancelled or the session closes for a fatal failure.
pub fn supervise<F, Fut, E>(
    first: Session,
    connect: F,
    backoff: Backoff,
    events: tokio::sync::mpsc::UnboundedSender<Event>,
    cancel: CancellationToken,
) -> (Link, tokio::task::JoinHandle<()>)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Session, E>> + Send + 'static,
    E: Into<Failure> + Send,
{
    let connect: ConnectFn<Arc<dyn Dialer>> = Arc::new(move || {
        let attempt = connect();
        Box::pin(async move {
            attempt
                .await
                .map(|s| Established {
                    session: s.dialer,
                    ended: s.ended,
                })
                .map_err(Into::into)
        })
    });
    let first = Established {
        session: first.dialer,
        ended: first.ended,
    };
    let session = Reconnecting::start(Some(first), connect, backoff, as_events(events));
    let link = Link {
        rx: session.watch(),
    };
    let task = tokio::spawn({
        let link = link.clone();
        async move {
            tokio::select! {
                () = cancel.cancelled() => session.close(Failure::fatal(STOPPING, 0)),
                _ = link.closed() => {}
            }
        }
    });
    (link, task)
}

/// The session's changes as the forward's events (and -v lines).
fn as_events(events: tokio::sync::mpsc::UnboundedSender<Event>) -> Observer<Arc<dyn Dialer>> {
    let down_since: Mutex<Option<Instant>> = Mutex::default();
    Box::new(move |before, now| match now {
        State::Connecting { attempt } => {
            if before.up().is_some() {
                if let Ok(mut d) = down_since.lock() {
                    *d = Some(Instant::now());
                }
                info!("the connection to the bastion was lost; reconnecting");
                let _ = events.send(Event::Disconnected);
            }
            let _ = events.send(Event::Reconnecting { attempt: *attempt });
        }
        State::Down {
            failure,
            attempt,
            retry_in,
        } => {
            info!(
                attempt,
                "reconnecting to the bastion failed: {failure}; next attempt in {:.1}s",
                retry_in.as_secs_f64()
            );
            let _ = events.send(Event::ReconnectFailed {
                attempt: *attempt,
                error: failure.message.clone(),
                retry_in_secs: (retry_in.as_secs_f64() * 10.0).round() / 10.0,
            });
        }
        State::Up { .. } => {
            let Some(since) = down_since.lock().ok().and_then(|mut d| d.take()) else {
                return;
            };
            let attempts = match before {
                State::Connecting { attempt } => *attempt,
                _ => 1,
            };
            let down = since.elapsed();
            info!(
                attempts,
                "reconnected to the bastion after {:.1}s",
                down.as_secs_f64()
            );
            let _ = events.send(Event::Reconnected {
                attempts,
                down_secs: (down.as_secs_f64() * 10.0).round() / 10.0,
            });
        }
        State::Closed(_) => {}
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dial::Direct;
    use std::sync::atomic::{AtomicU32, Ordering};
    use tokio::sync::{mpsc, oneshot};

    fn session_until(rx: oneshot::Receiver<()>) -> Session {
        Session {
            dialer: Arc::new(Direct::default()),
            ended: Box::pin(async move {
                let _ = rx.await;
            }),
        }
    }

    #[tokio::test]
    async fn ended_session_is_replaced_after_failed_attempts() {
        let (end_first, first_ended) = oneshot::channel();
        let calls = Arc::new(AtomicU32::new(0));
        let counter = calls.clone();
        let connect = move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    Err("connection refused")
                } else {
                    // The replacement never ends during the test.
                    Ok(Session {
                        dialer: Arc::new(Direct::default()),
                        ended: Box::pin(std::future::pending()),
                    })
                }
            }
        };
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let backoff = Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(40),
            attempt_timeout: Duration::from_secs(1),
        };
        let (link, task) = supervise(
            session_until(first_ended),
            connect,
            backoff,
            events_tx,
            cancel.clone(),
        );
        let (_, g1) = link.dialer(0, Duration::from_secs(1)).await.unwrap();
        assert_eq!(g1, 1);
        end_first.send(()).unwrap();
        let (_, g2) = link.dialer(g1, Duration::from_secs(5)).await.unwrap();
        assert_eq!(g2, 2);
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let mut seen = Vec::new();
        while let Ok(e) = events.try_recv() {
            seen.push(serde_json::to_value(&e).unwrap()["event"].clone());
        }
        assert_eq!(
            seen,
            [
                "disconnected",
                "reconnecting",
                "reconnect_failed",
                "reconnecting",
                "reconnect_failed",
                "reconnecting",
                "reconnected"
            ]
        );
        cancel.cancel();
        task.await.unwrap();
        assert_eq!(
            link.dialer(0, Duration::from_secs(1)).await.err(),
            Some(Unavailable::Closed(STOPPING.into()))
        );
    }

    #[tokio::test]
    async fn waiting_for_a_session_is_bounded() {
        let (end_first, first_ended) = oneshot::channel();
        let connect = || async { Err::<Session, _>("down") };
        let (events_tx, _events) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let (link, _task) = supervise(
            session_until(first_ended),
            connect,
            Backoff::default(),
            events_tx,
            cancel.clone(),
        );
        end_first.send(()).unwrap();
        let r = link.dialer(1, Duration::from_millis(50)).await;
        assert_eq!(
            r.err(),
            Some(Unavailable::Timeout(Duration::from_millis(50)))
        );
        assert!(!link.is_up());
        cancel.cancel();
    }
}
