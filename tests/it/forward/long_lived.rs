//! The long-lived paths of issue 14 keep nothing per connection or per session: a target that
//! never ends its stream (plain and through SOCKS), a session replaced again and again under a
//! running forward, and the API forward of `kubeconfig` serving the real kubectl. Each runs
//! through a real sshd and checks bookkeeping (channels, relay counters, the runtime's tasks,
//! the sockets to sshd), never RSS: memory is measured by scripts/soak-forward.sh.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use paragon_admin::config;
use paragon_admin::forward::{self, Forward, Options, Session, Target};
use paragon_admin::ssh::{Bastion, ChannelCounts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::support::Home;
use crate::support::sandbox::{SandboxProc, kubectl_path};
use crate::support::sshd::Sshd;

/// Polls `done` every 50 ms until it holds or `within` has passed; whether it held.
async fn eventually(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn tunnel(name: &str, host: &str, port: u16) -> Forward {
    Forward {
        name: name.into(),
        target: Target::Tunnel {
            host: host.into(),
            port,
        },
        local_port: 0,
        service: None,
    }
}

fn sum(stats: &[Arc<forward::Stats>], field: fn(&forward::Stats) -> &AtomicU64) -> u64 {
    stats.iter().map(|s| field(s).load(Ordering::Relaxed)).sum()
}

/// Established TCP connections from this machine to 127.0.0.1:`port` (the sessions to one
/// sshd), read from /proc/net/tcp: each test's sshd has its own port, so tests running in
/// parallel do not count each other's.
fn connections_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let remote = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // State 01 is ESTABLISHED; the remote address is the third column.
            f.len() > 3 && f[2] == remote && f[3] == "01"
        })
        .count()
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// A target that reads what it is sent and never writes, never closes, never answers EOF:
/// it counts the connections it was given, and those whose peer went away (read 0). It runs
/// on its own thread and runtime, so its tasks are not counted among the forward's; dropping
/// it ends them and closes their sockets.
struct SilentTarget {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    ended: Arc<AtomicUsize>,
    _stop: oneshot::Sender<()>,
}

impl SilentTarget {
    fn start() -> SilentTarget {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let (accepted, ended) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (a, e) = (accepted.clone(), ended.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = TcpListener::from_std(l).unwrap();
                let serve = async move {
                    loop {
                        let Ok((mut s, _)) = l.accept().await else {
                            continue;
                        };
                        a.fetch_add(1, Ordering::Relaxed);
                        let e = e.clone();
                        tokio::spawn(async move {
                            let mut buf = [0u8; 1024];
                            while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
                            e.fetch_add(1, Ordering::Relaxed);
                            // This side stays open until the target is dropped.
                            std::future::pending::<()>().await;
                            drop(s);
                        });
                    }
                };
                tokio::select! {
                    () = serve => {}
                    _ = stopped => {}
                }
            });
        });
        SilentTarget {
            addr,
            accepted,
            ended,
            _stop: stop,
        }
    }
}

/// The forward's options here: JSON events, and a silent target closed after one second.
fn quick_close() -> Options {
    Options {
        quiet_after_client_eof: Duration::from_secs(1),
        ..super::json_events()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_never_closes_is_closed_by_us_and_leaves_no_task_behind() {
    let sshd = Sshd::start();
    let home = Home::new();
    sshd.configure(&home);
    let profile = config::resolve(Some(&home.config_path()), Some("test")).unwrap();
    let bastion = Bastion::connect(&profile).await.unwrap();
    let silent = SilentTarget::start();
    let (target, accepted, ended) = (silent.addr, &silent.accepted, &silent.ended);
    let listeners = forward::bind(
        vec![
            tunnel("silent", "127.0.0.1", target.port()),
            Forward::socks(0),
        ],
        "127.0.0.1".parse().unwrap(),
    )
    .await
    .unwrap();
    let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local).collect();
    let stats: Vec<_> = listeners.iter().map(|l| l.stats.clone()).collect();
    let (stop, running) = super::run_forward(
        listeners,
        forward::bastion::session(bastion.clone()),
        || async { Err::<Session, _>("this test does not reconnect".to_string()) },
        quick_close(),
    );

    // Two rounds of 20 clients, half through SOCKS: each sends a request and closes its side;
    // the target keeps its own side open for ever.
    const ROUND: usize = 20;
    let mut tasks_after = Vec::new();
    for round in 1..=2 {
        for i in 0..ROUND {
            let mut s = TcpStream::connect(addrs[i % 2]).await.unwrap();
            if i % 2 == 1 {
                let mut req = vec![5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1];
                req.extend_from_slice(&target.port().to_be_bytes());
                s.write_all(&req).await.unwrap();
                let mut answer = [0u8; 12];
                s.read_exact(&mut answer).await.unwrap();
                assert_eq!(answer[..4], [5, 0, 5, 0], "SOCKS refused");
            }
            s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
            drop(s);
        }
        let n = round * ROUND;
        assert!(
            eventually(Duration::from_secs(10), || accepted.load(Ordering::Relaxed)
                == n)
            .await,
            "the target got {} of {n} connections",
            accepted.load(Ordering::Relaxed)
        );
        // Within the target's allowed silence (1 s), the close wait (5 s) and a margin: every
        // connection is ended, every channel closed by us, the bastion let go of each
        // connection to the target, and no task of ours is left waiting.
        let settled = eventually(Duration::from_secs(20), || {
            bastion.channel_counts().open == 0
                && sum(&stats, |s| &s.open) == 0
                && ended.load(Ordering::Relaxed) == n
        })
        .await;
        assert!(
            settled,
            "round {round} not settled: {:?}, relay open {}, target saw {} of {n} end",
            bastion.channel_counts(),
            sum(&stats, |s| &s.open),
            ended.load(Ordering::Relaxed)
        );
        // What russh 0.65.1 keeps of a channel we closed first (see src/ssh/channel.rs):
        // each one counted, none unaccounted for, until the session ends.
        assert_eq!(
            bastion.channel_counts(),
            ChannelCounts {
                open: 0,
                held: n as u64
            }
        );
        tasks_after.push(alive_tasks());
    }
    // The second round left no more tasks than the first: nothing per connection.
    assert!(
        tasks_after[1] <= tasks_after[0],
        "tasks alive after each round: {tasks_after:?}"
    );
    // The session still serves.
    let mut s = TcpStream::connect(addrs[0]).await.unwrap();
    s.write_all(b"x").await.unwrap();
    assert!(
        eventually(Duration::from_secs(10), || accepted.load(Ordering::Relaxed)
            == 2 * ROUND + 1)
        .await
    );
    drop(s);
    let _ = stop.send(());
    running.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_replaced_100_times_leaves_one_session_and_no_task_behind() {
    let sshd = Sshd::start();
    let home = Home::new();
    sshd.configure(&home);
    let profile = Arc::new(config::resolve(Some(&home.config_path()), Some("test")).unwrap());
    // An echo target: one byte in, the same byte back.
    let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_port = echo.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let listeners = forward::bind(
        vec![tunnel("echo", "127.0.0.1", echo_port)],
        "127.0.0.1".parse().unwrap(),
    )
    .await
    .unwrap();
    let local = listeners[0].local;
    let stats = vec![listeners[0].stats.clone()];

    // Each session ends when the test says so (its `ended` fires), as a lost connection
    // would; the supervisor then connects a new one and drops the old.
    let (enders, mut ender_rx) = mpsc::unbounded_channel::<oneshot::Sender<()>>();
    let current: Arc<std::sync::Mutex<Option<Bastion>>> = Arc::default();
    let connect_one = {
        let (profile, enders, current) = (profile.clone(), enders.clone(), current.clone());
        move || {
            let (profile, enders, current) = (profile.clone(), enders.clone(), current.clone());
            async move {
                let bastion = Bastion::connect(&profile)
                    .await
                    .map_err(|e| e.to_string())?;
                let (end, ended) = oneshot::channel::<()>();
                let _ = enders.send(end);
                *current.lock().unwrap() = Some(bastion.clone());
                let mut session = forward::bastion::session(bastion);
                let closed = session.ended;
                session.ended = Box::pin(async move {
                    tokio::select! {
                        _ = ended => {}
                        () = closed => {}
                    }
                });
                Ok::<Session, String>(session)
            }
        }
    };
    let first = connect_one().await.unwrap();
    let baseline = alive_tasks();
    let (stop, running) = super::run_forward(listeners, first, connect_one, quick_close());

    let round_trip = || async move {
        let mut s = TcpStream::connect(local).await.unwrap();
        s.write_all(b"p").await.unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"p");
    };
    round_trip().await;
    let after_first = alive_tasks();
    for _ in 0..100 {
        let end = ender_rx.recv().await.unwrap();
        let _ = end.send(());
        // The next session is connected when its ender arrives.
        let next = tokio::time::timeout(Duration::from_secs(30), ender_rx.recv())
            .await
            .expect("no new session within 30 s")
            .unwrap();
        let _ = enders.send(next);
        round_trip().await;
    }

    // One session to sshd is left (the others were dropped, their sockets closed), the
    // current one holds no channel, the relay counts nothing open, and the tasks are those
    // of one session and one forward, as after the first.
    let one_session = eventually(Duration::from_secs(10), || {
        connections_to(sshd.port) == 1 && sum(&stats, |s| &s.open) == 0
    })
    .await;
    assert!(
        one_session,
        "{} sessions to sshd, relay open {}",
        connections_to(sshd.port),
        sum(&stats, |s| &s.open)
    );
    let bastion = current.lock().unwrap().clone().unwrap();
    assert!(
        eventually(Duration::from_secs(10), || bastion.channel_counts()
            == ChannelCounts { open: 0, held: 0 })
        .await,
        "{:?}",
        bastion.channel_counts()
    );
    drop(bastion);
    assert!(
        eventually(Duration::from_secs(10), || alive_tasks() <= after_first).await,
        "{} tasks alive after 100 replacements, {after_first} after the first session \
         ({baseline} before the forward)",
        alive_tasks()
    );
    let _ = stop.send(());
    running.await.unwrap();
    *current.lock().unwrap() = None;
    assert!(
        eventually(Duration::from_secs(10), || connections_to(sshd.port) == 0).await,
        "the last session outlived the forward"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubeconfig_api_forward_serves_kubectl_and_keeps_nothing() {
    let sandbox = SandboxProc::start(&[]);
    let sshd = Sshd::start();
    let home = Home::new();
    sshd.configure(&home);
    let profile = config::resolve(Some(&home.config_path()), Some("test")).unwrap();
    let bastion = Bastion::connect(&profile).await.unwrap();

    // The forward and kubeconfig that `paragon-admin kubeconfig` makes, from the sandbox's
    // kubeconfig as the bastion would hold it.
    let source = forward::kubeconfig::Source::read(&sandbox.kubeconfig, None).unwrap();
    let upstream = source.upstream(None).unwrap();
    let listeners = forward::bind(vec![upstream.forward(0)], "127.0.0.1".parse().unwrap())
        .await
        .unwrap();
    let local = listeners[0].local;
    let stats = vec![listeners[0].stats.clone()];
    let through = source.through_forward(&upstream, local, "paragon").unwrap();
    let kubeconfig = home.path().join("forward.kubeconfig");
    std::fs::write(&kubeconfig, forward::kubeconfig::to_yaml(&through).unwrap()).unwrap();
    let (stop, running) = super::run_forward(
        listeners,
        forward::bastion::session(bastion.clone()),
        || async { Err::<Session, _>("this test does not reconnect".to_string()) },
        quick_close(),
    );

    let kubectl = |args: &[&str]| {
        let mut c = std::process::Command::new(kubectl_path());
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home.path())
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--request-timeout=30s")
            .args(args);
        c
    };
    // Lists (each kubectl its own TLS connections, 4 at a time), and watches that kubectl
    // abandons mid-stream: the API server's stream never ends by itself.
    let mut done = 0;
    for round in 0..6 {
        let mut children: Vec<_> = (0..4)
            .map(|_| {
                kubectl(&["get", "pods", "-A", "-o", "name"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut watch = kubectl(&["get", "pods", "-A", "--watch", "-o", "name"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        for c in children.drain(..) {
            let out = tokio::task::spawn_blocking(move || c.wait_with_output())
                .await
                .unwrap()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "kubectl round {round}: {stderr}");
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("pod/"),
                "kubectl round {round} listed no pod"
            );
            done += 1;
        }
        // The watch got its first answer before it is killed.
        let mut first = [0u8; 4];
        let mut out = watch.stdout.take().unwrap();
        tokio::task::spawn_blocking(move || {
            use std::io::Read;
            out.read_exact(&mut first)
        })
        .await
        .unwrap()
        .unwrap();
        watch.kill().unwrap();
        watch.wait().unwrap();
    }
    assert_eq!(done, 24);

    let settled = eventually(Duration::from_secs(20), || {
        bastion.channel_counts().open == 0 && sum(&stats, |s| &s.open) == 0
    })
    .await;
    assert!(
        settled,
        "not settled: {:?}, relay open {}",
        bastion.channel_counts(),
        sum(&stats, |s| &s.open)
    );
    assert_eq!(
        bastion.channel_counts(),
        ChannelCounts { open: 0, held: 0 },
        "the API server closed every stream, so no channel may be held"
    );
    assert!(sum(&stats, |s| &s.total) >= 30);
    let _ = stop.send(());
    running.await.unwrap();
}
