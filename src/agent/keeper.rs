//! The agent's one session: the bastion as connected now, re-established with the forward
//! supervisor's backoff when it ends. Every attempt is a full `Bastion::connect`, so the host
//! key is checked each time exactly as a direct connection checks it. A request that finds
//! the session down asks for an attempt at once and gets its outcome: a session, or the
//! error (and exit status) a direct connection would have given. An idle session that holds
//! many channels closed on our side first is replaced by a new one (`renew`), so a kept
//! session does not grow over days; so is a session whose key was checked against a
//! known_hosts that has changed since (`recheck_known_hosts`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::Resolved;
use crate::dial::{self, DialError, DialFuture, Dialer};
use crate::exit::ExitStatus;
use crate::forward::Backoff;
use crate::ssh::Bastion;

#[derive(Clone)]
enum Conn {
    Up(Bastion),
    /// Down after `attempts` failed attempts; the last one's message and status.
    Down {
        attempts: u64,
        error: Option<(String, u8)>,
    },
}

pub struct Keeper {
    state: watch::Sender<Conn>,
    poke: Notify,
    reconnects: AtomicU64,
    /// Idle sessions replaced because they held too many closed channels, or because
    /// known_hosts changed.
    renewals: AtomicU64,
    target: String,
    /// known_hosts as it was when the current session's host key was checked.
    known_hosts: std::sync::Mutex<KnownHostsVersion>,
    /// Held while a session is replaced for a changed known_hosts: one replacement at a time.
    rechecking: tokio::sync::Mutex<()>,
}

/// A file's size and modification time: what says it changed.
type KnownHostsVersion = Option<(u64, Option<std::time::SystemTime>)>;

fn known_hosts_version(profile: &Resolved) -> KnownHostsVersion {
    std::fs::metadata(&profile.known_hosts)
        .ok()
        .map(|m| (m.len(), m.modified().ok()))
}

/// How often the kept session's channel counts are looked at.
const RENEW_CHECK: Duration = Duration::from_secs(5);

/// Closed channels an idle session may hold (about 3 KB each) before it is replaced.
const RENEW_HELD: u64 = 32;

impl Keeper {
    /// Keeps `first` and, when it ends, the sessions after it, until `stop`.
    pub fn start(
        first: Bastion,
        profile: Arc<Resolved>,
        backoff: Backoff,
        stop: CancellationToken,
    ) -> Arc<Keeper> {
        let keeper = Arc::new(Keeper {
            target: first.target().to_string(),
            state: watch::Sender::new(Conn::Up(first)),
            poke: Notify::new(),
            reconnects: AtomicU64::new(0),
            renewals: AtomicU64::new(0),
            known_hosts: std::sync::Mutex::new(known_hosts_version(&profile)),
            rechecking: tokio::sync::Mutex::default(),
        });
        tokio::spawn(keeper.clone().keep(profile, backoff, stop));
        keeper
    }

    async fn keep(
        self: Arc<Self>,
        profile: Arc<Resolved>,
        backoff: Backoff,
        stop: CancellationToken,
    ) {
        loop {
            // Subscribed before reading: a session replaced in between is seen as a change.
            let mut replaced = self.state.subscribe();
            let current = match &*replaced.borrow_and_update() {
                Conn::Up(b) => Some(b.clone()),
                Conn::Down { .. } => None,
            };
            if let Some(b) = current {
                let mut check = tokio::time::interval(RENEW_CHECK);
                check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let renewed = loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = b.closed() => break false,
                        // Replaced for a changed known_hosts (`recheck_known_hosts`).
                        _ = replaced.changed() => break true,
                        _ = check.tick() => {
                            if self.renew(&b, &profile, &backoff).await {
                                break true;
                            }
                        }
                    }
                };
                if renewed {
                    continue;
                }
                info!("the connection to {} was lost; reconnecting", self.target);
            }
            self.state.send_replace(Conn::Down {
                attempts: 0,
                error: None,
            });
            let mut pause = backoff.initial;
            let mut attempts = 0;
            loop {
                attempts += 1;
                let attempt =
                    tokio::time::timeout(backoff.attempt_timeout, Bastion::connect(&profile));
                let outcome = tokio::select! {
                    () = stop.cancelled() => return,
                    r = attempt => r,
                };
                let error = match outcome {
                    Ok(Ok(b)) => {
                        self.checked(&profile);
                        self.reconnects.fetch_add(1, Ordering::Relaxed);
                        info!(attempts, "reconnected to {}", self.target);
                        self.state.send_replace(Conn::Up(b));
                        break;
                    }
                    Ok(Err(e)) => {
                        let status = e.exit_status();
                        (crate::exit::Error::from(e).to_string(), status)
                    }
                    Err(_) => (
                        format!(
                            "connecting to {} timed out after {}s",
                            self.target,
                            backoff.attempt_timeout.as_secs()
                        ),
                        crate::exit::UNREACHABLE,
                    ),
                };
                info!(attempts, "reconnecting failed: {}", error.0);
                self.state.send_replace(Conn::Down {
                    attempts,
                    error: Some(error),
                });
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                    () = self.poke.notified() => {}
                }
                pause = (pause * 2).min(backoff.max);
            }
        }
    }

    /// Replaces an idle session that holds `RENEW_HELD` closed channels with a new one (russh
    /// keeps each such channel's state for the session's lifetime: see `ssh::channel`).
    /// Requests already on the old session finish there; it ends with its last user.
    async fn renew(&self, old: &Bastion, profile: &Resolved, backoff: &Backoff) -> bool {
        let counts = old.channel_counts();
        if counts.open > 0 || counts.held < RENEW_HELD {
            return false;
        }
        match tokio::time::timeout(backoff.attempt_timeout, Bastion::connect(profile)).await {
            Ok(Ok(new)) => {
                self.checked(profile);
                self.renewals.fetch_add(1, Ordering::Relaxed);
                info!(
                    held = counts.held,
                    "renewed the session to {}: the old one held closed channels", self.target
                );
                self.state.send_replace(Conn::Up(new));
                true
            }
            // Not now: the old session still works, and the next check tries again.
            Ok(Err(e)) => {
                info!(
                    "renewing the session failed: {}",
                    crate::exit::Error::from(e)
                );
                false
            }
            Err(_) => false,
        }
    }

    /// Notes known_hosts as a session was just checked against it (the connect may have
    /// added the key).
    fn checked(&self, profile: &Resolved) {
        if let Ok(mut v) = self.known_hosts.lock() {
            *v = known_hosts_version(profile);
        }
    }

    /// When known_hosts changed since the current session's key was checked (a line removed,
    /// a key marked revoked, or only another host added), replaces the session with a new
    /// connection, which checks the key again exactly as a direct connection would. Its
    /// error when that fails: the client then starts an agent of its own, which connects
    /// while it has the terminal (a question to ask, a refusal to show).
    pub async fn recheck_known_hosts(&self, profile: &Resolved) -> Result<(), String> {
        let unchanged = || {
            self.known_hosts
                .lock()
                .is_ok_and(|v| *v == known_hosts_version(profile))
        };
        if unchanged() {
            return Ok(());
        }
        let _one = self.rechecking.lock().await;
        if unchanged() {
            return Ok(());
        }
        let new = Bastion::connect(profile)
            .await
            .map_err(|e| crate::exit::Error::from(e).to_string())?;
        self.checked(profile);
        self.renewals.fetch_add(1, Ordering::Relaxed);
        info!(
            "known_hosts changed: the session to {} checked again",
            self.target
        );
        self.state.send_replace(Conn::Up(new));
        Ok(())
    }

    /// The session, waiting for the next attempt when it is down (asking for it at once);
    /// else that attempt's message and exit status.
    pub async fn bastion(&self, wait: Duration) -> Result<Bastion, (String, u8)> {
        let mut rx = self.state.subscribe();
        let seen = match &*rx.borrow_and_update() {
            Conn::Up(b) if !b.is_closed() => return Ok(b.clone()),
            Conn::Up(_) => 0,
            Conn::Down { attempts, .. } => *attempts,
        };
        self.poke.notify_one();
        let settled = rx.wait_for(|c| match c {
            Conn::Up(b) => !b.is_closed(),
            Conn::Down { attempts, error } => *attempts > seen && error.is_some(),
        });
        let unreachable = || {
            (
                format!(
                    "the bastion {} is still unreachable after waiting {}s",
                    self.target,
                    wait.as_secs()
                ),
                crate::exit::UNREACHABLE,
            )
        };
        match tokio::time::timeout(wait, settled).await {
            Ok(Ok(c)) => match &*c {
                Conn::Up(b) => Ok(b.clone()),
                Conn::Down { error, .. } => Err(error.clone().unwrap_or_else(unreachable)),
            },
            _ => Err(unreachable()),
        }
    }

    /// The session once it is up, within `wait`: what a connection at a detached forward
    /// waits for. Unlike `bastion`, a failed attempt does not end the wait: while anyone
    /// waits, an attempt is asked every `RETRY_WHILE_WAITING` (the backoff's longer pauses are
    /// for nobody waiting), and the waiter is woken the moment the session is back.
    pub async fn up_within(&self, wait: Duration) -> Result<Bastion, (String, u8)> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut rx = self.state.subscribe();
        loop {
            let last = match &*rx.borrow_and_update() {
                Conn::Up(b) if !b.is_closed() => return Ok(b.clone()),
                Conn::Up(_) => None,
                Conn::Down { error, .. } => error.clone(),
            };
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(last.unwrap_or_else(|| {
                    (
                        format!(
                            "the bastion {} is still unreachable after waiting {}s",
                            self.target,
                            wait.as_secs()
                        ),
                        crate::exit::UNREACHABLE,
                    )
                }));
            }
            self.poke.notify_one();
            let _ = tokio::time::timeout(left.min(RETRY_WHILE_WAITING), rx.changed()).await;
        }
    }

    /// The session now, if one is up (for the status).
    pub fn current(&self) -> Option<Bastion> {
        match &*self.state.borrow() {
            Conn::Up(b) if !b.is_closed() => Some(b.clone()),
            _ => None,
        }
    }

    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    pub fn renewals(&self) -> u64 {
        self.renewals.load(Ordering::Relaxed)
    }

    /// Changes whenever the session is replaced (a reconnect or a renewal).
    pub fn epoch(&self) -> u64 {
        self.reconnects() + self.renewals()
    }

    pub fn target(&self) -> &str {
        &self.target
    }
}

/// The kept session as a `Dialer`: each connection waits (up to 30 s) for a session when the
/// bastion is away, and is served as soon as it is back (`up_within`).
pub struct KeptDialer(pub Arc<Keeper>);

/// How long a connection waits for the session to come back.
pub const WAIT_FOR_SESSION: Duration = Duration::from_secs(30);

/// How often a connection waiting for the session asks for another attempt.
const RETRY_WHILE_WAITING: Duration = Duration::from_millis(500);

impl Dialer for KeptDialer {
    fn connect<'a>(&'a self, host: &'a str, port: u16) -> DialFuture<'a> {
        Box::pin(async move {
            match self.0.up_within(WAIT_FOR_SESSION).await {
                Ok(b) => b.connect(host, port).await,
                Err((reason, _)) => Err(DialError::NoSession {
                    target: dial::target(host, port),
                    reason,
                }),
            }
        })
    }

    fn describe(&self) -> String {
        format!("bastion {}", self.0.target)
    }
}
