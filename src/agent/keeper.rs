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

use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::Resolved;
use crate::dial::{self, DialError, DialFuture, Dialer};
use crate::reconnect::{Backoff, ConnectFn, Established, Failure, Observer, Reconnecting, State};
use crate::ssh::{Bastion, SshError, user_cert};

pub struct Keeper {
    session: Arc<Reconnecting<Bastion>>,
    /// Idle sessions replaced because they held too many closed channels, or because
    /// known_hosts changed.
    renewals: AtomicU64,
    target: String,
}

/// What says known_hosts changed: a hash of its content (none when it cannot be read).
fn known_hosts_version(profile: &Resolved) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let text = std::fs::read(&profile.known_hosts).ok()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    Some(h.finish())
}

/// How long before its user certificate expires a session is renewed from a newer file.
const CERT_RENEW_BEFORE: Duration = Duration::from_secs(10 * 60);

/// How often known_hosts is looked at for a key revoked or changed under the session.
const TRUST_CHECK: Duration = Duration::from_secs(1);

/// How often the kept session's channel counts are looked at.
const RENEW_CHECK: Duration = Duration::from_secs(5);

/// Closed channels an idle session may hold (about 3 KB each) before it is replaced.
const RENEW_HELD: u64 = 32;

/// A connected bastion as a reconnecting session's session.
fn established(b: Bastion) -> Established<Bastion> {
    let watcher = b.clone();
    Established {
        session: b,
        ended: Box::pin(async move { watcher.closed().await }),
    }
}

/// The agent's log lines for the session's changes.
fn logged(target: String) -> Observer<Bastion> {
    Box::new(move |before, now| match now {
        State::Connecting { .. } if before.up().is_some() => {
            info!("the connection to {target} was lost; reconnecting");
        }
        State::Down {
            failure, attempt, ..
        } => info!(attempt, "reconnecting failed: {failure}"),
        State::Up { generation, .. } if !matches!(before, State::Up { .. }) && *generation > 1 => {
            info!(generation, "reconnected to {target}");
        }
        State::Closed(f) => info!("the session to {target} is closed: {f}"),
        _ => {}
    })
}

impl Keeper {
    /// Keeps `first` and, when it ends, the sessions after it, until `stop`.
    pub fn start(
        first: Bastion,
        profile: Arc<Resolved>,
        backoff: Backoff,
        stop: CancellationToken,
    ) -> Arc<Keeper> {
        let target = first.target().to_string();
        let connect: ConnectFn<Bastion> = {
            let profile = profile.clone();
            Arc::new(move || {
                let profile = profile.clone();
                Box::pin(async move {
                    Bastion::connect(&profile)
                        .await
                        .map(established)
                        .map_err(SshError::into_failure)
                })
            })
        };
        let session = Reconnecting::start(
            Some(established(first)),
            connect,
            backoff,
            logged(target.clone()),
        );
        let keeper = Arc::new(Keeper {
            session,
            renewals: AtomicU64::new(0),
            target,
        });
        tokio::spawn(keeper.clone().keep(profile, backoff, stop));
        keeper
    }

    /// Until `stop`: renews an idle session that holds many closed channels, and closes the
    /// session for good the moment known_hosts marks the bastion's key revoked or records
    /// another one (`distrusted`), looked at every `TRUST_CHECK`.
    async fn keep(
        self: Arc<Self>,
        profile: Arc<Resolved>,
        backoff: Backoff,
        stop: CancellationToken,
    ) {
        let mut renew = tokio::time::interval(RENEW_CHECK);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut trust = tokio::time::interval(TRUST_CHECK);
        trust.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen = known_hosts_version(&profile);
        loop {
            tokio::select! {
                () = stop.cancelled() => {
                    // Not fatal: clients that watch see the agent go, and start another.
                    self.session
                        .close(Failure::transient("the agent is stopping"));
                    return;
                }
                _ = trust.tick() => {
                    let now = known_hosts_version(&profile);
                    if now != seen {
                        seen = now;
                        self.distrusted();
                    }
                }
                _ = renew.tick() => {
                    if let Some((b, _)) = self.session.current()
                        && !self.renew_certificate(&b, &profile, &backoff).await
                    {
                        self.renew(&b, &profile, &backoff).await;
                    }
                }
            }
            if self.session.is_closed() {
                return;
            }
        }
    }

    /// Checks the current session's host key against known_hosts as it is now; when it is
    /// marked revoked there or another key is recorded, closes the session for good with the
    /// error a new connection would give (and returns it). Lines about other hosts, or added
    /// keys, change nothing.
    pub fn distrusted(&self) -> Option<Failure> {
        if let State::Closed(f) = self.session.state() {
            return f.fatal.then_some(f);
        }
        let (b, _) = self.session.current()?;
        let e = b.recheck_host_key().err()?;
        // Fatal whatever the error: the key this session runs on is no longer trusted.
        let failure = Failure {
            fatal: true,
            ..e.into_failure()
        };
        info!("known_hosts no longer trusts the session's host key: {failure}");
        self.session.close(failure.clone());
        Some(failure)
    }

    /// Replaces a session whose user certificate expires within `CERT_RENEW_BEFORE` when its
    /// file now holds a newer certificate that works (`access grant` again, or a new one put
    /// in place): the new session takes new channels; those open on the old one finish there.
    /// Otherwise `agent status` says when the certificate stops working.
    async fn renew_certificate(
        &self,
        old: &Bastion,
        profile: &Resolved,
        backoff: &Backoff,
    ) -> bool {
        let Some(used) = old.certificate() else {
            return false;
        };
        let now = user_cert::now();
        if used.valid_before.saturating_sub(now) > CERT_RENEW_BEFORE.as_secs() {
            return false;
        }
        let newer = match user_cert::read(&used.path) {
            Ok(c) => {
                c.valid_before() > used.valid_before && user_cert::unusable(&c, None, now).is_none()
            }
            Err(_) => false,
        };
        if !newer {
            return false;
        }
        match tokio::time::timeout(backoff.attempt_timeout, Bastion::connect(profile)).await {
            Ok(Ok(new))
                if new
                    .certificate()
                    .is_some_and(|c| c.valid_before > used.valid_before) =>
            {
                if self.session.replace(established(new)) {
                    self.renewals.fetch_add(1, Ordering::Relaxed);
                    info!(
                        "renewed the session to {}: its certificate {} ({}) gave way to a newer one",
                        self.target,
                        used.path.display(),
                        user_cert::expiry(used.valid_before, now)
                    );
                    return true;
                }
                false
            }
            Ok(Ok(_)) => false,
            Ok(Err(e)) => {
                info!(
                    "renewing the session for a newer certificate failed: {}",
                    crate::exit::Error::from(e)
                );
                false
            }
            Err(_) => false,
        }
    }

    /// When the current session's certificate stops working (`expires in 12m`, `expired 3m
    /// ago: ...`); none without a certificate file.
    pub fn certificate_expiry(&self) -> Option<String> {
        let b = self.current()?;
        let c = b.certificate()?;
        Some(format!(
            "{} {}",
            c.path.display(),
            user_cert::expiry(c.valid_before, user_cert::now())
        ))
    }

    /// Replaces an idle session that holds `RENEW_HELD` closed channels with a new one (russh
    /// keeps each such channel's state for the session's lifetime: see `ssh::channel`).
    /// Requests already on the old session finish there; it ends with its last user.
    async fn renew(&self, old: &Bastion, profile: &Resolved, backoff: &Backoff) {
        let counts = old.channel_counts();
        if counts.open > 0 || counts.held < RENEW_HELD {
            return;
        }
        match tokio::time::timeout(backoff.attempt_timeout, Bastion::connect(profile)).await {
            Ok(Ok(new)) => {
                if self.session.replace(established(new)) {
                    self.renewals.fetch_add(1, Ordering::Relaxed);
                    info!(
                        held = counts.held,
                        "renewed the session to {}: the old one held closed channels", self.target
                    );
                }
            }
            // Not now: the old session still works, and the next check tries again.
            Ok(Err(e)) => {
                info!(
                    "renewing the session failed: {}",
                    crate::exit::Error::from(e)
                );
            }
            Err(_) => {}
        }
    }

    /// The session, waiting for the next attempt when it is down (asking for it at once);
    /// else that attempt's message and exit status.
    pub async fn bastion(&self, wait: Duration) -> Result<Bastion, (String, u8)> {
        let mut rx = self.session.watch();
        match &*rx.borrow_and_update() {
            State::Up { session, .. } if !session.is_closed() => return Ok(session.clone()),
            State::Closed(f) => return Err((f.message.clone(), f.status)),
            _ => {}
        }
        self.session.poke();
        let settled = async {
            loop {
                if rx.changed().await.is_err() {
                    return None;
                }
                match &*rx.borrow_and_update() {
                    State::Up { session, .. } if !session.is_closed() => {
                        return Some(Ok(session.clone()));
                    }
                    State::Down { failure: f, .. } | State::Closed(f) => {
                        return Some(Err((f.message.clone(), f.status)));
                    }
                    _ => {}
                }
            }
        };
        match tokio::time::timeout(wait, settled).await {
            Ok(Some(r)) => r,
            _ => Err(self.unreachable(wait)),
        }
    }

    fn unreachable(&self, wait: Duration) -> (String, u8) {
        (
            format!(
                "the bastion {} is still unreachable after waiting {}s",
                self.target,
                wait.as_secs()
            ),
            crate::exit::UNREACHABLE,
        )
    }

    /// The session once it is up, within `wait`: what a connection at a detached forward
    /// waits for. Unlike `bastion`, a failed attempt does not end the wait: while anyone
    /// waits, an attempt is asked every `RETRY_WHILE_WAITING` (the backoff's longer pauses are
    /// for nobody waiting), and the waiter is woken the moment the session is back.
    pub async fn up_within(&self, wait: Duration) -> Result<Bastion, (String, u8)> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut rx = self.session.watch();
        loop {
            let last = match &*rx.borrow_and_update() {
                State::Up { session, .. } if !session.is_closed() => return Ok(session.clone()),
                State::Closed(f) => return Err((f.message.clone(), f.status)),
                State::Down { failure, .. } => Some((failure.message.clone(), failure.status)),
                _ => None,
            };
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(last.unwrap_or_else(|| self.unreachable(wait)));
            }
            self.session.poke();
            let _ = tokio::time::timeout(left.min(RETRY_WHILE_WAITING), rx.changed()).await;
        }
    }

    /// The session now, if one is up (for the status).
    pub fn current(&self) -> Option<Bastion> {
        self.session
            .current()
            .map(|(b, _)| b)
            .filter(|b| !b.is_closed())
    }

    /// The session's state, to watch.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<State<Bastion>> {
        self.session.watch()
    }

    /// Sessions made again after one was lost.
    pub fn reconnects(&self) -> u64 {
        self.session
            .generation()
            .saturating_sub(1 + self.renewals())
    }

    pub fn renewals(&self) -> u64 {
        self.renewals.load(Ordering::Relaxed)
    }

    /// The current session's generation: it changes whenever the session is replaced (a
    /// reconnect or a renewal), and only then.
    pub fn generation(&self) -> u64 {
        self.session.generation()
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
