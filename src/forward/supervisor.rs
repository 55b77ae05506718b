//! Keeps a session to the bastion alive for as long as the forwards run: when it ends, the
//! listeners stay open, new connections wait for the next session (bounded), and the session
//! is re-established with exponential backoff. Written against a connect function, so it
//! knows nothing of SSH: the caller turns its own session type into a `Session`.

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
// Reconnects reach the user as events (a line each, or JSON); the tracing lines say the same
// for -v only, so that without it each message appears once.
use tracing::info;

use crate::dial::Dialer;

use super::Event;

/// One established session: the dialer it gives, and a future that resolves when it ends.
pub struct Session {
    pub dialer: Arc<dyn Dialer>,
    pub ended: Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// A connect function as callers hand it around: the next session, or the one line the
/// `reconnect_failed` event carries.
pub type Connect =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<Session, String>> + Send>> + Send + Sync>;

/// How hard to try when the session has ended.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The pause after the first failed attempt; it doubles after each failure.
    pub initial: Duration,
    /// The longest pause between two attempts.
    pub max: Duration,
    /// The deadline of one attempt.
    pub attempt_timeout: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(15),
            attempt_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Clone)]
enum State {
    Up {
        dialer: Arc<dyn Dialer>,
        generation: u64,
    },
    Down,
    Stopped,
}

/// The connections' view of the session: the current dialer, or a wait for the next one.
#[derive(Clone)]
pub struct Link {
    rx: watch::Receiver<State>,
}

/// Why no dialer could be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("the bastion is still unreachable after waiting {}s", .0.as_secs())]
    Timeout(Duration),
    #[error("the forward is stopping")]
    Stopped,
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
            State::Down => false,
            State::Stopped => true,
        });
        match tokio::time::timeout(wait, ready).await {
            Err(_) => Err(Unavailable::Timeout(wait)),
            Ok(Err(_)) => Err(Unavailable::Stopped),
            Ok(Ok(state)) => match &*state {
                State::Up { dialer, generation } => Ok((dialer.clone(), *generation)),
                State::Down | State::Stopped => Err(Unavailable::Stopped),
            },
        }
    }

    /// Whether a session is up now.
    pub fn is_up(&self) -> bool {
        matches!(&*self.rx.borrow(), State::Up { .. })
    }
}

/// Starts supervising `first`; when it ends, `connect` is called (with backoff) until a new
/// session is up. Events go to `events`. Returns the `Link` and the supervising task, which
/// ends when `cancel` is cancelled.
pub fn supervise<F, Fut, E>(
    first: Session,
    connect: F,
    backoff: Backoff,
    events: tokio::sync::mpsc::UnboundedSender<Event>,
    cancel: CancellationToken,
) -> (Link, tokio::task::JoinHandle<()>)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Session, E>> + Send,
    E: Display + Send,
{
    let (tx, rx) = watch::channel(State::Up {
        dialer: first.dialer.clone(),
        generation: 1,
    });
    let task = tokio::spawn(async move {
        let mut ended = first.ended;
        let mut generation = 1;
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                () = &mut ended => {}
            }
            tx.send_replace(State::Down);
            info!("the connection to the bastion was lost; reconnecting");
            let _ = events.send(Event::Disconnected);
            let Some(session) = reconnect(&connect, backoff, &events, &cancel).await else {
                break;
            };
            generation += 1;
            ended = session.ended;
            tx.send_replace(State::Up {
                dialer: session.dialer,
                generation,
            });
        }
        tx.send_replace(State::Stopped);
    });
    (Link { rx }, task)
}

/// Tries `connect` until it succeeds, pausing with backoff; `None` when cancelled.
async fn reconnect<F, Fut, E>(
    connect: &F,
    backoff: Backoff,
    events: &tokio::sync::mpsc::UnboundedSender<Event>,
    cancel: &CancellationToken,
) -> Option<Session>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Session, E>>,
    E: Display + Send,
{
    let down_since = Instant::now();
    let mut pause = backoff.initial;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let _ = events.send(Event::Reconnecting { attempt });
        let outcome = tokio::select! {
            () = cancel.cancelled() => return None,
            r = tokio::time::timeout(backoff.attempt_timeout, connect()) => r,
        };
        let error = match outcome {
            Ok(Ok(session)) => {
                let down = down_since.elapsed();
                info!(
                    attempt,
                    "reconnected to the bastion after {:.1}s",
                    down.as_secs_f64()
                );
                let _ = events.send(Event::Reconnected {
                    attempts: attempt,
                    down_secs: (down.as_secs_f64() * 10.0).round() / 10.0,
                });
                return Some(session);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!(
                "no answer within {}s",
                backoff.attempt_timeout.as_secs_f64()
            ),
        };
        info!(
            attempt,
            "reconnecting to the bastion failed: {error}; next attempt in {:.1}s",
            pause.as_secs_f64()
        );
        let _ = events.send(Event::ReconnectFailed {
            attempt,
            error,
            retry_in_secs: pause.as_secs_f64(),
        });
        tokio::select! {
            () = cancel.cancelled() => return None,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(backoff.max);
    }
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
            Some(Unavailable::Stopped)
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
