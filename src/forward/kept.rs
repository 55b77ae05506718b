//! A supervised session over a dialer that keeps its own connection to the bastion and
//! reconnects it by itself (the profile's agent): the forward opens no SSH session here, it
//! only follows the keeper's. The keeper's state is watched, not polled: `Follow` opens a
//! watch (a `tokio::sync::watch` fed by the keeper's own state changes), and a session here
//! lasts while the keeper's is up. It ends when the keeper goes down, when the watch is lost
//! (the keeper went away), or when a dial finds no session. The supervisor then reports the
//! outage once and "connects" by waiting for the keeper to be up again, so the listeners, the
//! status line and the events behave as over a session of our own. A keeper closed for good
//! (a changed or revoked host key) is a fatal failure: the forward ends with its message.
//!
//! Which session is up is the keeper's business (its generation); a renewal there, with
//! the state up throughout, changes nothing here. This module knows nothing of the agent,
//! SSH or clap: the caller gives the dialer and the watch.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::dial::{DialError, DialFuture, Dialer, OpenFuture};
use crate::reconnect::Failure;

use super::Session;

/// The keeper's session as watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kept {
    /// A session is up (the keeper's generation names it).
    Up { generation: u64 },
    /// The keeper runs but has no session now: it is reconnecting. `reason` says so.
    Down { reason: String },
    /// The keeper's session closed for good, with the message and status a direct
    /// connection would give.
    Closed { message: String, status: u8 },
}

/// Opens a watch of the keeper's session; `Err` when it cannot be watched (gone, and could
/// not be brought back), with the reason. The watch ends (its sender dropped) when the
/// keeper goes away.
pub type Follow = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<watch::Receiver<Kept>, String>> + Send>>
        + Send
        + Sync,
>;

/// How long one "connect" waits for the keeper to be up.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub wait_for_up: Duration,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            // Long enough to see the keeper's own next attempt most of the time, short enough
            // that a long outage is reported every few seconds.
            wait_for_up: Duration::from_secs(5),
        }
    }
}

/// The keeper's session, up now in `watched`, as a supervised session over `dialer`.
pub fn session(dialer: Arc<dyn Dialer>, mut watched: watch::Receiver<Kept>) -> Session {
    let lost = CancellationToken::new();
    let watcher = Arc::new(Watched {
        inner: dialer,
        lost: lost.clone(),
    });
    let ended = async move {
        tokio::select! {
            () = lost.cancelled() => {}
            // Down, closed, or the watch lost (the keeper went away).
            _ = watched.wait_for(|k| !matches!(k, Kept::Up { .. })) => {}
        }
    };
    Session {
        dialer: watcher,
        ended: Box::pin(ended),
    }
}

/// The next session: the keeper's once it is up, waiting up to `pace.wait_for_up`; else why
/// it is not (the keeper's reason, or why it could not be watched), fatal when the keeper's
/// session closed for good.
pub async fn connect(
    dialer: Arc<dyn Dialer>,
    follow: Follow,
    pace: Pace,
) -> Result<Session, Failure> {
    let mut watched = follow().await.map_err(Failure::transient)?;
    let now = match tokio::time::timeout(
        pace.wait_for_up,
        watched.wait_for(|k| !matches!(k, Kept::Down { .. })),
    )
    .await
    {
        Ok(Ok(k)) => Some(k.clone()),
        Ok(Err(_)) => return Err(Failure::transient("the agent went away")),
        Err(_) => None,
    };
    let now = now.unwrap_or_else(|| watched.borrow().clone());
    match now {
        Kept::Up { .. } => Ok(session(dialer, watched)),
        Kept::Down { reason } => Err(Failure::transient(reason)),
        Kept::Closed { message, status } => Err(Failure::fatal(message, status)),
    }
}

/// The dialer of one kept session: a dial that finds no session ends it.
struct Watched {
    inner: Arc<dyn Dialer>,
    lost: CancellationToken,
}

impl Watched {
    /// `dialed`, ending the session when it found none.
    fn noting_loss<T>(&self, dialed: Result<T, DialError>) -> Result<T, DialError> {
        if let Err(DialError::NoSession { .. }) = &dialed {
            self.lost.cancel();
        }
        dialed
    }
}

impl Dialer for Watched {
    fn connect<'a>(&'a self, host: &'a str, port: u16) -> DialFuture<'a> {
        Box::pin(async move { self.noting_loss(self.inner.connect(host, port).await) })
    }

    fn open<'a>(&'a self, host: &'a str, port: u16) -> OpenFuture<'a> {
        Box::pin(async move { self.noting_loss(self.inner.open(host, port).await) })
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dial::{BoxStream, Direct};
    use std::sync::Mutex;

    /// A keeper whose state the test sets; every watch opened follows it.
    fn keeper(first: Kept) -> (Follow, watch::Sender<Kept>, Arc<Mutex<Option<String>>>) {
        let (tx, _) = watch::channel(first);
        let refuse: Arc<Mutex<Option<String>>> = Arc::default();
        let (t, r) = (tx.clone(), refuse.clone());
        let follow: Follow = Arc::new(move || {
            let answer = match r.lock().unwrap().clone() {
                Some(why) => Err(why),
                None => Ok(t.subscribe()),
            };
            Box::pin(async move { answer })
        });
        (follow, tx, refuse)
    }

    fn up(generation: u64) -> Kept {
        Kept::Up { generation }
    }

    fn quick() -> Pace {
        Pace {
            wait_for_up: Duration::from_millis(200),
        }
    }

    async fn ends_within(s: Session, within: Duration) -> bool {
        tokio::time::timeout(within, s.ended).await.is_ok()
    }

    #[tokio::test]
    async fn a_session_ends_when_the_keeper_goes_down_closes_or_goes_away_and_not_before() {
        for after in [
            Some(Kept::Down {
                reason: "reconnecting".into(),
            }),
            Some(Kept::Closed {
                message: "host key changed".into(),
                status: 255,
            }),
            None,
        ] {
            let (follow, state, _) = keeper(up(1));
            let s = connect(Arc::new(Direct::default()), follow.clone(), quick())
                .await
                .unwrap();
            drop(follow);
            let mut ended = s.ended;
            // A renewal keeps the state up: no outage here.
            state.send_replace(up(2));
            assert!(
                tokio::time::timeout(Duration::from_millis(100), &mut ended)
                    .await
                    .is_err(),
                "ended while the keeper kept a session up"
            );
            match after {
                Some(k) => {
                    state.send_replace(k);
                }
                None => drop(state),
            }
            assert!(
                tokio::time::timeout(Duration::from_secs(2), ended)
                    .await
                    .is_ok()
            );
        }
    }

    /// A dialer that finds no session, as the agent answers while the bastion is away.
    struct NoSession;

    impl Dialer for NoSession {
        fn connect<'a>(&'a self, host: &'a str, port: u16) -> DialFuture<'a> {
            Box::pin(async move {
                Err::<BoxStream, _>(DialError::NoSession {
                    target: crate::dial::target(host, port),
                    reason: "connection refused".into(),
                })
            })
        }

        fn describe(&self) -> String {
            "nowhere".into()
        }
    }

    #[tokio::test]
    async fn a_dial_that_finds_no_session_ends_the_session_at_once() {
        let (_follow, state, _) = keeper(up(1));
        let s = session(Arc::new(NoSession), state.subscribe());
        let Err(e) = s.dialer.connect("db", 5432).await else {
            panic!("dialed without a session");
        };
        assert!(e.to_string().contains("connection refused"), "{e}");
        assert!(ends_within(s, Duration::from_secs(1)).await);
    }

    #[tokio::test]
    async fn connect_waits_for_the_keeper_and_else_says_why() {
        let (follow, state, refuse) = keeper(Kept::Down {
            reason: "the agent is reconnecting".into(),
        });
        let Err(why) = connect(Arc::new(Direct::default()), follow.clone(), quick()).await else {
            panic!("a session while the keeper was down");
        };
        assert_eq!(why, Failure::transient("the agent is reconnecting"));
        let waiting = tokio::spawn(connect(
            Arc::new(Direct::default()),
            follow.clone(),
            quick(),
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
        state.send_replace(up(3));
        assert!(waiting.await.unwrap().is_ok());
        *refuse.lock().unwrap() = Some("cannot start the agent".into());
        let Err(why) = connect(Arc::new(Direct::default()), follow, quick()).await else {
            panic!("a session from a keeper that could not be watched");
        };
        assert_eq!(why.message, "cannot start the agent");
    }

    #[tokio::test]
    async fn a_keeper_closed_for_good_is_a_fatal_failure() {
        let (follow, _state, _) = keeper(Kept::Closed {
            message: "host key for b has CHANGED".into(),
            status: 255,
        });
        let Err(why) = connect(Arc::new(Direct::default()), follow, quick()).await else {
            panic!("a session from a closed keeper");
        };
        assert_eq!(why, Failure::fatal("host key for b has CHANGED", 255));
    }
}
