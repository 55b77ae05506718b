//! One reconnecting session: a session made by an injected connect function, re-made with
//! jittered exponential backoff when it ends, until it is closed. Its state (connecting, up
//! with a generation, down with the reason and the next try, closed for a fatal reason) is
//! published on a `tokio::sync::watch` channel that clients watch instead of polling.
//!
//! "The same session" has one definition: the same generation. Every session installed (a
//! reconnect, or a replacement such as the agent's renewal) gets the next one.
//!
//! A failure marked fatal (a changed or revoked host key) stops the retries: the state becomes
//! `Closed` with that failure, and stays so. Knows nothing of SSH, forwards or the agent: the
//! forward supervisor and the agent's keeper both build on it.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Why an attempt failed, or why the session closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// One line for the user.
    pub message: String,
    /// The exit status a command would give for it.
    pub status: u8,
    /// Whether trying again is pointless (a changed host key): the session closes.
    pub fatal: bool,
}

impl Failure {
    /// A failure worth another attempt (the bastion unreachable: 255).
    pub fn transient(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            status: crate::exit::UNREACHABLE,
            fatal: false,
        }
    }

    /// A failure that ends the session for good.
    pub fn fatal(message: impl Into<String>, status: u8) -> Failure {
        Failure {
            message: message.into(),
            status,
            fatal: true,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::transient(message)
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Failure {
        Failure::transient(message)
    }
}

/// A session just made, and a future that resolves when it ends.
pub struct Established<S> {
    pub session: S,
    pub ended: BoxFuture<()>,
}

/// The injected connect function.
pub type ConnectFn<S> = Arc<dyn Fn() -> BoxFuture<Result<Established<S>, Failure>> + Send + Sync>;

/// The session's state, as clients watch it.
#[derive(Clone)]
pub enum State<S> {
    /// Attempt `attempt` (1 for the first after an outage) is under way.
    Connecting { attempt: u32 },
    /// A session is up; `generation` names it.
    Up { session: S, generation: u64 },
    /// Attempt `attempt` failed; the next one starts after `retry_in` (or at once when poked).
    Down {
        failure: Failure,
        attempt: u32,
        retry_in: Duration,
    },
    /// No more attempts.
    Closed(Failure),
}

impl<S> State<S> {
    /// The session and its generation when it is up.
    pub fn up(&self) -> Option<(&S, u64)> {
        match self {
            State::Up {
                session,
                generation,
            } => Some((session, *generation)),
            _ => None,
        }
    }
}

/// How hard to try when the session has ended.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The pause after the first failed attempt (before jitter); it doubles after each failure.
    pub initial: Duration,
    /// The longest pause between two attempts (before jitter).
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

impl Backoff {
    /// The pause before jitter after `failures` failures in a row: `initial` doubled for
    /// each one after the first, at most `max`.
    pub fn ceiling(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        self.initial.saturating_mul(1u32 << doublings).min(self.max)
    }

    /// The pause after `failures` failures in a row, with `jitter` in [0, 1]: between half
    /// the ceiling and all of it ("equal jitter"), so that many clients that lost the same
    /// bastion do not all come back at the same instant.
    pub fn pause(&self, failures: u32, jitter: f64) -> Duration {
        self.ceiling(failures)
            .mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }
}

/// A random number in [0, 1] (std's randomly keyed hasher: no dependency for this).
pub fn jitter() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() as f64 / u64::MAX as f64
}

/// Called with the state before and after every change, in order (a watcher may miss
/// intermediate states; this does not).
pub type Observer<S> = Box<dyn Fn(&State<S>, &State<S>) + Send + Sync>;

pub struct Reconnecting<S> {
    state: watch::Sender<State<S>>,
    poke: Notify,
    closing: CancellationToken,
    replacement: Mutex<Option<Established<S>>>,
    replaced: Notify,
    generation: AtomicU64,
    observer: Observer<S>,
}

impl<S: Clone + Send + Sync + 'static> Reconnecting<S> {
    /// Starts with `first` up (or connecting when `None`) and keeps a session until closed.
    pub fn start(
        first: Option<Established<S>>,
        connect: ConnectFn<S>,
        backoff: Backoff,
        observer: Observer<S>,
    ) -> Arc<Reconnecting<S>> {
        let r = Arc::new(Reconnecting {
            state: watch::Sender::new(State::Connecting { attempt: 1 }),
            poke: Notify::new(),
            closing: CancellationToken::new(),
            replacement: Mutex::default(),
            replaced: Notify::new(),
            generation: AtomicU64::new(0),
            observer,
        });
        let ended = first.map(|e| r.install(e));
        tokio::spawn(r.clone().keep(ended, connect, backoff));
        r
    }

    /// The state, to watch.
    pub fn watch(&self) -> watch::Receiver<State<S>> {
        self.state.subscribe()
    }

    /// The state now.
    pub fn state(&self) -> State<S> {
        self.state.borrow().clone()
    }

    /// The session and its generation, when one is up.
    pub fn current(&self) -> Option<(S, u64)> {
        self.state.borrow().up().map(|(s, g)| (s.clone(), g))
    }

    /// The generation of the latest session installed (0 before the first).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Asks for the next attempt now instead of after the pause.
    pub fn poke(&self) {
        self.poke.notify_one();
    }

    /// Puts `next` in place of the session that is up (which is left to end by itself):
    /// false, and `next` dropped, when none is up.
    pub fn replace(&self, next: Established<S>) -> bool {
        if self.state.borrow().up().is_none() || self.closing.is_cancelled() {
            return false;
        }
        if let Ok(mut slot) = self.replacement.lock() {
            *slot = Some(next);
        }
        self.replaced.notify_one();
        true
    }

    /// Closes for good with `why`; an attempt under way is dropped.
    pub fn close(&self, why: Failure) {
        self.set(State::Closed(why));
        self.closing.cancel();
    }

    pub fn is_closed(&self) -> bool {
        self.closing.is_cancelled()
    }

    /// A session newer than generation `after`, waiting up to `wait`; else the reason: the
    /// close, or (on timeout) the last failure if there was one.
    pub async fn newer_than(
        &self,
        after: u64,
        wait: Duration,
    ) -> Result<(S, u64), Option<Failure>> {
        let mut rx = self.watch();
        let settled = rx.wait_for(|s| match s {
            State::Up { generation, .. } => *generation > after,
            State::Closed(_) => true,
            _ => false,
        });
        match tokio::time::timeout(wait, settled).await {
            Ok(Ok(s)) => match &*s {
                State::Up {
                    session,
                    generation,
                } => Ok((session.clone(), *generation)),
                State::Closed(f) => Err(Some(f.clone())),
                _ => Err(None),
            },
            Ok(Err(_)) => Err(None),
            Err(_) => Err(match &*self.state.borrow() {
                State::Down { failure, .. } | State::Closed(failure) => Some(failure.clone()),
                _ => None,
            }),
        }
    }

    /// Sets the state unless closed; tells the observer.
    fn set(&self, new: State<S>) {
        let mut before = None;
        let after = new.clone();
        self.state.send_if_modified(|now| {
            if matches!(now, State::Closed(_)) {
                return false;
            }
            before = Some(std::mem::replace(now, new));
            true
        });
        if let Some(before) = before {
            (self.observer)(&before, &after);
        }
    }

    /// Makes `e` the session that is up, with the next generation; its end.
    fn install(&self, e: Established<S>) -> BoxFuture<()> {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.set(State::Up {
            session: e.session,
            generation,
        });
        e.ended
    }

    async fn keep(
        self: Arc<Self>,
        mut ended: Option<BoxFuture<()>>,
        connect: ConnectFn<S>,
        backoff: Backoff,
    ) {
        loop {
            if let Some(mut end) = ended.take() {
                tokio::select! {
                    () = self.closing.cancelled() => return,
                    () = &mut end => {}
                    () = self.replaced.notified() => {
                        let next = self.replacement.lock().ok().and_then(|mut s| s.take());
                        ended = Some(match next {
                            Some(e) => self.install(e),
                            None => end,
                        });
                        continue;
                    }
                }
            }
            let mut failures = 0u32;
            loop {
                self.set(State::Connecting {
                    attempt: failures + 1,
                });
                let attempt = tokio::time::timeout(backoff.attempt_timeout, connect());
                let outcome = tokio::select! {
                    () = self.closing.cancelled() => return,
                    r = attempt => r,
                };
                let failure = match outcome {
                    Ok(Ok(e)) => {
                        ended = Some(self.install(e));
                        break;
                    }
                    Ok(Err(f)) => f,
                    Err(_) => Failure::transient(format!(
                        "no answer within {}s",
                        backoff.attempt_timeout.as_secs_f64()
                    )),
                };
                if failure.fatal {
                    self.close(failure);
                    return;
                }
                failures += 1;
                let pause = backoff.pause(failures, jitter());
                self.set(State::Down {
                    failure,
                    attempt: failures,
                    retry_in: pause,
                });
                tokio::select! {
                    () = self.closing.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                    () = self.poke.notified() => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;
    use tokio::sync::oneshot;

    /// A connect function that answers from `script` in order (its last answer again and
    /// again), each session ending when the test says; counts its calls.
    struct Script {
        calls: Arc<AtomicU32>,
        ends: Arc<Mutex<Vec<oneshot::Sender<()>>>>,
    }

    fn scripted(script: Vec<Result<(), Failure>>) -> (ConnectFn<u32>, Script) {
        let calls = Arc::new(AtomicU32::new(0));
        let ends: Arc<Mutex<Vec<oneshot::Sender<()>>>> = Arc::default();
        let (c, e) = (calls.clone(), ends.clone());
        let connect: ConnectFn<u32> = Arc::new(move || {
            let n = c.fetch_add(1, Ordering::SeqCst);
            let answer = script[(n as usize).min(script.len() - 1)].clone();
            let (end, ended) = oneshot::channel();
            e.lock().unwrap().push(end);
            Box::pin(async move {
                answer.map(|()| Established {
                    session: n,
                    ended: Box::pin(async move {
                        let _ = ended.await;
                    }),
                })
            })
        });
        (connect, Script { calls, ends })
    }

    fn quick() -> Backoff {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(400),
            attempt_timeout: Duration::from_secs(5),
        }
    }

    fn quiet() -> Observer<u32> {
        Box::new(|_, _| {})
    }

    /// Every state the observer saw, in order, as short words.
    fn recorded() -> (Observer<u32>, Arc<Mutex<Vec<String>>>) {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let s = seen.clone();
        let observer: Observer<u32> = Box::new(move |_, now| {
            let word = match now {
                State::Connecting { attempt } => format!("connecting {attempt}"),
                State::Up { generation, .. } => format!("up {generation}"),
                State::Down {
                    attempt, retry_in, ..
                } => format!("down {attempt} {}ms", retry_in.as_millis()),
                State::Closed(f) => format!("closed {}", f.message),
            };
            s.lock().unwrap().push(word);
        });
        (observer, seen)
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_success_is_up_as_generation_one() {
        let (connect, script) = scripted(vec![Ok(())]);
        let r = Reconnecting::start(None, connect, quick(), quiet());
        let (session, generation) = r.newer_than(0, Duration::from_secs(5)).await.unwrap();
        assert_eq!((session, generation), (0, 1));
        assert_eq!(script.calls.load(Ordering::SeqCst), 1);
        assert_eq!(r.current(), Some((0, 1)));
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_back_off_growing_to_the_cap_then_a_session_is_up() {
        let mut script = vec![Err(Failure::transient("connection refused")); 5];
        script.push(Ok(()));
        let (connect, calls) = scripted(script);
        let (observer, seen) = recorded();
        let r = Reconnecting::start(None, connect, quick(), observer);
        let started = tokio::time::Instant::now();
        let (_, generation) = r.newer_than(0, Duration::from_secs(60)).await.unwrap();
        assert_eq!(generation, 1);
        assert_eq!(calls.calls.load(Ordering::SeqCst), 6);
        let seen = seen.lock().unwrap().clone();
        let pauses: Vec<u128> = seen
            .iter()
            .filter_map(|w| w.strip_prefix("down "))
            .map(|w| {
                w.split(' ')
                    .nth(1)
                    .unwrap()
                    .trim_end_matches("ms")
                    .parse()
                    .unwrap()
            })
            .collect();
        assert_eq!(pauses.len(), 5, "{seen:?}");
        // Ceilings 100, 200, 400, 400, 400 ms; each pause is jittered to half of it or more.
        for (p, ceiling) in pauses.iter().zip([100, 200, 400, 400, 400]) {
            assert!(
                (ceiling / 2..=ceiling).contains(p),
                "{p} for {ceiling}: {seen:?}"
            );
        }
        let slept: u128 = pauses.iter().sum();
        assert!(started.elapsed().as_millis() >= slept);
        assert_eq!(seen.last().unwrap(), "up 1");
    }

    #[test]
    fn the_pause_doubles_to_the_cap_and_jitter_stays_within_half_and_all_of_it() {
        let b = Backoff {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(15),
            attempt_timeout: Duration::from_secs(30),
        };
        let ceilings: Vec<u128> = (1..=9).map(|n| b.ceiling(n).as_millis()).collect();
        assert_eq!(
            ceilings,
            [250, 500, 1000, 2000, 4000, 8000, 15000, 15000, 15000]
        );
        assert_eq!(b.ceiling(u32::MAX), b.max);
        for n in 1..=9 {
            assert_eq!(b.pause(n, 0.0), b.ceiling(n) / 2);
            assert_eq!(b.pause(n, 1.0), b.ceiling(n));
        }
        let mut distinct = std::collections::HashSet::new();
        for _ in 0..1000 {
            let j = jitter();
            assert!((0.0..=1.0).contains(&j), "{j}");
            let p = b.pause(3, j);
            assert!(p >= Duration::from_millis(500) && p <= Duration::from_millis(1000));
            distinct.insert(p);
        }
        assert!(
            distinct.len() > 100,
            "jitter is hardly random: {}",
            distinct.len()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_fatal_failure_closes_and_stops_retrying() {
        let (connect, script) = scripted(vec![
            Err(Failure::transient("connection refused")),
            Err(Failure::fatal("host key for b has CHANGED", 255)),
            Ok(()),
        ]);
        let r = Reconnecting::start(None, connect, quick(), quiet());
        let e = r.newer_than(0, Duration::from_secs(60)).await.unwrap_err();
        assert_eq!(e.unwrap().message, "host key for b has CHANGED");
        assert!(r.is_closed());
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(
            script.calls.load(Ordering::SeqCst),
            2,
            "retried after a fatal failure"
        );
        assert!(matches!(r.state(), State::Closed(f) if f.status == 255));
    }

    #[tokio::test(start_paused = true)]
    async fn an_ended_session_is_replaced_by_the_next_generation() {
        let (connect, script) = scripted(vec![
            Ok(()),
            Err(Failure::transient("connection refused")),
            Ok(()),
        ]);
        let (observer, seen) = recorded();
        let r = Reconnecting::start(None, connect, quick(), observer);
        let (_, g1) = r.newer_than(0, Duration::from_secs(5)).await.unwrap();
        let mut rx = r.watch();
        let end = script.ends.lock().unwrap().remove(0);
        end.send(()).unwrap();
        rx.wait_for(|s| s.up().is_none()).await.unwrap();
        let (session, g2) = r.newer_than(g1, Duration::from_secs(5)).await.unwrap();
        assert_eq!((session, g2), (2, 2));
        // After the first attempt's own "connecting 1".
        let seen = seen.lock().unwrap()[1..].to_vec();
        assert_eq!(seen.len(), 5, "{seen:?}");
        assert_eq!(
            [&seen[..2], &seen[3..]].concat(),
            ["up 1", "connecting 1", "connecting 2", "up 2"]
        );
        assert!(seen[2].starts_with("down 1 "), "{seen:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_poke_skips_the_pause() {
        let (connect, script) =
            scripted(vec![Err(Failure::transient("connection refused")), Ok(())]);
        let backoff = Backoff {
            initial: Duration::from_secs(3600),
            ..quick()
        };
        let r = Reconnecting::start(None, connect, backoff, quiet());
        let mut rx = r.watch();
        rx.wait_for(|s| matches!(s, State::Down { .. }))
            .await
            .unwrap();
        r.poke();
        let started = tokio::time::Instant::now();
        r.newer_than(0, Duration::from_secs(5)).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(script.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn closing_while_connecting_drops_the_attempt() {
        struct Dropped(Arc<AtomicU32>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(AtomicU32::new(0));
        let d = dropped.clone();
        let connect: ConnectFn<u32> = Arc::new(move || {
            let guard = Dropped(d.clone());
            Box::pin(async move {
                let _guard = guard;
                std::future::pending::<Result<Established<u32>, Failure>>().await
            })
        });
        let r = Reconnecting::start(None, connect, quick(), quiet());
        tokio::task::yield_now().await;
        assert!(matches!(r.state(), State::Connecting { attempt: 1 }));
        r.close(Failure::fatal("the agent is stopping", 0));
        let mut rx = r.watch();
        rx.wait_for(|s| matches!(s, State::Closed(_)))
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(1), async {
            while dropped.load(Ordering::SeqCst) == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the attempt under way was not dropped");
        // Closed stays closed.
        r.close(Failure::transient("again"));
        assert!(matches!(r.state(), State::Closed(f) if f.message == "the agent is stopping"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_replacement_takes_the_next_generation_and_the_old_session_is_left_alone() {
        let (connect, script) = scripted(vec![Ok(())]);
        let r = Reconnecting::start(None, connect, quick(), quiet());
        let (_, g1) = r.newer_than(0, Duration::from_secs(5)).await.unwrap();
        assert!(r.replace(Established {
            session: 77,
            ended: Box::pin(std::future::pending()),
        }));
        let (session, g2) = r.newer_than(g1, Duration::from_secs(5)).await.unwrap();
        assert_eq!((session, g2), (77, 2));
        // The first session ending now is no outage: the replacement is what is up.
        let end = script.ends.lock().unwrap().remove(0);
        let _ = end.send(());
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(r.current(), Some((77, 2)));
        assert_eq!(script.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_past_its_deadline_is_a_transient_failure() {
        let connect: ConnectFn<u32> = Arc::new(|| Box::pin(std::future::pending()));
        let r = Reconnecting::start(None, connect, quick(), quiet());
        let mut rx = r.watch();
        let s = rx
            .wait_for(|s| matches!(s, State::Down { .. }))
            .await
            .unwrap()
            .clone();
        let State::Down { failure, .. } = s else {
            unreachable!()
        };
        assert_eq!(failure.message, "no answer within 5s");
        assert!(!failure.fatal);
    }
}
