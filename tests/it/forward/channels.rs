//! A long-lived forward keeps nothing per connection (issue 14): after thousands of
//! connections through a real sshd, ended every way a connection ends (the target finishes,
//! the local client resets, the target refuses, through SOCKS), the SSH session holds no
//! channel and the relay counts no connection open. Counters, not RSS: the measurement of
//! memory is scripts/soak-forward.sh.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use paragon_admin::config;
use paragon_admin::forward::{self, Forward, Session, Target};
use paragon_admin::ssh::{Bastion, ChannelCounts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::support::Home;
use crate::support::sshd::Sshd;

const BODY_LEN: usize = 16 * 1024;

fn body() -> Vec<u8> {
    (0..BODY_LEN as u32).map(|i| (i * 31 + 7) as u8).collect()
}

/// Reads one line, answers with the body and closes: an HTTP/1.0 server in miniature.
async fn body_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut line = [0u8; 4];
                if s.read_exact(&mut line).await.is_ok() {
                    let _ = s.write_all(&body()).await;
                }
            });
        }
    });
    addr
}

fn tunnel(name: &str, port: u16) -> Forward {
    Forward {
        name: name.into(),
        target: Target::Tunnel {
            host: "127.0.0.1".into(),
            port,
        },
        local_port: 0,
        service: None,
    }
}

/// One whole exchange: the request, then the body to the end.
async fn fetch(addr: SocketAddr, socks_to: Option<u16>) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    if let Some(port) = socks_to {
        let mut req = vec![5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1];
        req.extend_from_slice(&port.to_be_bytes());
        s.write_all(&req).await.unwrap();
        let mut answer = [0u8; 2 + 10];
        s.read_exact(&mut answer).await.unwrap();
        assert_eq!(answer[..4], [5, 0, 5, 0], "SOCKS refused");
    }
    s.write_all(b"GET\n").await.unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    got
}

/// Sends the request, reads a little, then resets the connection (SO_LINGER 0).
async fn reset_midway(addr: SocketAddr) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET\n").await.unwrap();
    let mut some = [0u8; 100];
    let _ = s.read(&mut some).await;
    s.set_zero_linger().unwrap();
    drop(s);
}

async fn settled(bastion: &Bastion, stats: &[Arc<forward::Stats>]) -> (ChannelCounts, u64) {
    let open = || {
        stats
            .iter()
            .map(|s| s.open.load(std::sync::atomic::Ordering::Relaxed))
            .sum::<u64>()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while (bastion.channel_counts().open > 0 || open() > 0)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (bastion.channel_counts(), open())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_connections_leave_no_channel_in_the_session() {
    let sshd = Sshd::start();
    let home = Home::new();
    sshd.configure(&home);
    let profile = config::resolve(Some(&home.config_path()), Some("test")).unwrap();
    let bastion = Bastion::connect(&profile).await.unwrap();
    let target = body_server().await;
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused_port = refused.local_addr().unwrap().port();
    drop(refused);

    let listeners = forward::bind(
        vec![
            tunnel("body", target.port()),
            tunnel("refused", refused_port),
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
        || async { Err::<Session, _>("this test does not reconnect") },
        super::json_events(),
    );

    // 3,000 connections, 32 at a time: most fetch the whole body, every 10th resets midway,
    // every 15th goes to a refused target, every 4th goes through SOCKS.
    let want = Arc::new(body());
    let gate = Arc::new(Semaphore::new(32));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..3000u32 {
        let permit = gate.clone().acquire_owned().await.unwrap();
        let (want, addrs) = (want.clone(), addrs.clone());
        tasks.spawn(async move {
            let _permit = permit;
            if i % 10 == 0 {
                reset_midway(addrs[0]).await;
            } else if i % 15 == 0 {
                let mut s = TcpStream::connect(addrs[1]).await.unwrap();
                let mut got = Vec::new();
                let _ = s.read_to_end(&mut got).await;
                assert!(got.is_empty(), "a refused target sent bytes");
            } else if i % 4 == 0 {
                let got = fetch(addrs[2], Some(target.port())).await;
                assert!(*got == *want, "body {i} through SOCKS differs");
            } else {
                let got = fetch(addrs[0], None).await;
                assert!(*got == *want, "body {i} differs ({} bytes)", got.len());
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }

    let (channels, relay_open) = settled(&bastion, &stats).await;
    assert_eq!(relay_open, 0, "the relay still counts connections open");
    assert_eq!(
        channels,
        ChannelCounts { open: 0, held: 0 },
        "the session still holds channels"
    );
    let total: u64 = stats
        .iter()
        .map(|s| s.total.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    assert_eq!(total, 3000);
    // The session is still the same one, and still works.
    assert!(!bastion.is_closed());
    assert!(fetch(addrs[0], None).await == *want);
    let _ = stop.send(());
    running.await.unwrap();
}
