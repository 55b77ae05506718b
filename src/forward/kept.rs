//! A supervised session over a dialer that keeps its own connection to the bastion and
//! reconnects it by itself (the profile's agent): the forward opens no SSH session here, it
//! only follows the keeper's. Its session is one of the keeper's sessions, known by an id
//! that changes when the keeper reconnects (or is replaced); it ends when the id changes,
//! when the keeper says it is down, or when a dial finds no session. The supervisor then
//! reports the outage once and "connects" by waiting for the keeper to be up again, so the
//! listeners, the status line and the events behave as over a session of our own.
//!
//! The keeper's state is asked for (`Check`), not pushed: what is asked is a local process,
//! and asking also tells it that it is still in use. This module knows nothing of the agent,
//! SSH or clap: the caller gives the dialer and the check.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::dial::{DialError, DialFuture, Dialer};

use super::Session;

/// The keeper's session as asked now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kept {
    /// A session is up; `id` changes whenever it is another session.
    Up { id: String },
    /// The keeper runs but has no session now: it is reconnecting. `reason` says so.
    Down { reason: String },
}

/// Asks the keeper for its session; `Err` when it cannot be asked (gone, and could not be
/// brought back), with the reason.
pub type Check =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<Kept, String>> + Send>> + Send + Sync>;

/// How often a live session asks the keeper, and how long one "connect" waits for it.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub ask_every: Duration,
    pub wait_for_up: Duration,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            // A lost bastion is noticed within a second, as a closed SSH session would be.
            ask_every: Duration::from_secs(1),
            // Long enough to see the keeper's own next attempt most of the time, short enough
            // that a long outage is reported every few seconds.
            wait_for_up: Duration::from_secs(5),
        }
    }
}

/// The keeper's session `id` as a supervised session over `dialer`.
pub fn session(dialer: Arc<dyn Dialer>, check: Check, id: String, pace: Pace) -> Session {
    let lost = CancellationToken::new();
    let watched = Arc::new(Watched {
        inner: dialer,
        lost: lost.clone(),
    });
    let ended = async move {
        let mut tick = tokio::time::interval(pace.ask_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is at once: the session was just seen up.
        tick.tick().await;
        loop {
            tokio::select! {
                () = lost.cancelled() => return,
                _ = tick.tick() => {}
            }
            match check().await {
                Ok(Kept::Up { id: now }) if now == id => {}
                _ => return,
            }
        }
    };
    Session {
        dialer: watched,
        ended: Box::pin(ended),
    }
}

/// The next session: the keeper's once it is up, waiting up to `pace.wait_for_up`; else why
/// it is not (the keeper's reason, or why it could not be asked).
pub async fn connect(dialer: Arc<dyn Dialer>, check: Check, pace: Pace) -> Result<Session, String> {
    let deadline = tokio::time::Instant::now() + pace.wait_for_up;
    loop {
        match check().await? {
            Kept::Up { id } => return Ok(session(dialer, check, id, pace)),
            Kept::Down { reason } => {
                let next = tokio::time::Instant::now() + pace.ask_every;
                if next > deadline {
                    return Err(reason);
                }
                tokio::time::sleep_until(next).await;
            }
        }
    }
}

/// The dialer of one kept session: a dial that finds no session ends it.
struct Watched {
    inner: Arc<dyn Dialer>,
    lost: CancellationToken,
}

impl Dialer for Watched {
    fn connect<'a>(&'a self, host: &'a str, port: u16) -> DialFuture<'a> {
        Box::pin(async move {
            let dialed = self.inner.connect(host, port).await;
            if let Err(DialError::NoSession { .. }) = &dialed {
                self.lost.cancel();
            }
            dialed
        })
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

    /// A keeper whose answer the test sets.
    fn keeper(first: Result<Kept, String>) -> (Check, Arc<Mutex<Result<Kept, String>>>) {
        let state = Arc::new(Mutex::new(first));
        let read = state.clone();
        let check: Check = Arc::new(move || {
            let now = read.lock().unwrap().clone();
            Box::pin(async move { now })
        });
        (check, state)
    }

    fn up(id: &str) -> Result<Kept, String> {
        Ok(Kept::Up { id: id.into() })
    }

    fn quick() -> Pace {
        Pace {
            ask_every: Duration::from_millis(10),
            wait_for_up: Duration::from_millis(200),
        }
    }

    async fn ends_within(s: Session, within: Duration) -> bool {
        tokio::time::timeout(within, s.ended).await.is_ok()
    }

    #[tokio::test]
    async fn a_session_ends_when_the_keeper_reconnects_or_goes_down_and_not_before() {
        for after in [
            up("pid-1/1"),
            Ok(Kept::Down {
                reason: "reconnecting".into(),
            }),
            Err("gone".into()),
        ] {
            let (check, state) = keeper(up("pid-1/0"));
            let s = connect(Arc::new(Direct::default()), check, quick())
                .await
                .unwrap();
            let mut ended = s.ended;
            assert!(
                tokio::time::timeout(Duration::from_millis(100), &mut ended)
                    .await
                    .is_err(),
                "ended while the keeper kept the same session"
            );
            *state.lock().unwrap() = after;
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
        let (check, _state) = keeper(up("a"));
        let pace = Pace {
            ask_every: Duration::from_secs(3600),
            ..quick()
        };
        let s = session(Arc::new(NoSession), check, "a".into(), pace);
        let Err(e) = s.dialer.connect("db", 5432).await else {
            panic!("dialed without a session");
        };
        assert!(e.to_string().contains("connection refused"), "{e}");
        assert!(ends_within(s, Duration::from_secs(1)).await);
    }

    #[tokio::test]
    async fn connect_waits_for_the_keeper_and_else_says_why() {
        let (check, state) = keeper(Ok(Kept::Down {
            reason: "the agent is reconnecting".into(),
        }));
        let Err(why) = connect(Arc::new(Direct::default()), check.clone(), quick()).await else {
            panic!("a session while the keeper was down");
        };
        assert_eq!(why, "the agent is reconnecting");
        let waiting = tokio::spawn(connect(Arc::new(Direct::default()), check, quick()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        *state.lock().unwrap() = up("b");
        assert!(waiting.await.unwrap().is_ok());
        let (check, _) = keeper(Err("cannot start the agent".into()));
        let Err(why) = connect(Arc::new(Direct::default()), check, quick()).await else {
            panic!("a session from a keeper that could not be asked");
        };
        assert_eq!(why, "cannot start the agent");
    }
}
