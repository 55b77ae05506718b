//! The SOCKS proxy cannot kill the session (issue 10): a request whose domain name holds a
//! NUL byte, or is no host name at all, is refused here with a SOCKS reply, and never reaches
//! the bastion, whose sshd would drop the whole session (and every transfer on it) for a
//! malformed `direct-tcpip` request. Against a real sshd, with a transfer under way.

use std::net::SocketAddr;
use std::time::Duration;

use paragon_admin::config;
use paragon_admin::forward::{self, Forward, Session, Target};
use paragon_admin::ssh::Bastion;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::Home;
use crate::support::sshd::Sshd;

const HALF: usize = 1 << 20;

fn half(n: u8) -> Vec<u8> {
    (0..HALF as u32).map(|i| (i as u8) ^ n).collect()
}

/// Sends one half, waits for a byte from the client, then sends the other: a transfer that
/// is certainly still under way between the two.
async fn two_part_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                s.write_all(&half(1)).await.unwrap();
                let mut go = [0u8; 1];
                if s.read_exact(&mut go).await.is_ok() {
                    let _ = s.write_all(&half(2)).await;
                }
            });
        }
    });
    addr
}

/// A SOCKS5 CONNECT by domain name; returns the reply code.
async fn socks_connect(proxy: SocketAddr, name: &[u8], port: u16) -> (TcpStream, u8) {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    let mut req = vec![5, 1, 0, 5, 1, 0, 3, name.len() as u8];
    req.extend_from_slice(name);
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req).await.unwrap();
    let mut answer = [0u8; 2 + 10];
    s.read_exact(&mut answer).await.unwrap();
    assert_eq!(answer[..3], [5, 0, 5]);
    (s, answer[3])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks_name_with_a_nul_byte_is_refused_locally_and_other_transfers_survive() {
    let sshd = Sshd::start();
    let home = Home::new();
    sshd.configure(&home);
    let profile = config::resolve(Some(&home.config_path()), Some("test")).unwrap();
    let bastion = Bastion::connect(&profile).await.unwrap();
    let target = two_part_server().await;
    let listeners = forward::bind(
        vec![
            Forward {
                name: "transfer".into(),
                target: Target::Tunnel {
                    host: "127.0.0.1".into(),
                    port: target.port(),
                },
                local_port: 0,
                service: None,
            },
            Forward::socks(0),
        ],
        "127.0.0.1".parse().unwrap(),
    )
    .await
    .unwrap();
    let (tunnel, proxy) = (listeners[0].local, listeners[1].local);
    let (stop, running) = super::run_forward(
        listeners,
        forward::bastion::session(bastion.clone()),
        || async { Err::<Session, _>("this test does not reconnect") },
        super::json_events(),
    );

    // A transfer under way through the same session.
    let mut transfer = TcpStream::connect(tunnel).await.unwrap();
    let mut first = vec![0u8; HALF];
    transfer.read_exact(&mut first).await.unwrap();
    assert!(first == half(1));

    for name in [&b"127.0.0.1\0.evil"[..], b"local host", b"\xff"] {
        let (mut refused, code) = socks_connect(proxy, name, target.port()).await;
        assert_eq!(code, 4, "{name:?}: want host unreachable");
        let mut rest = Vec::new();
        let _ = refused.read_to_end(&mut rest).await;
        assert!(rest.is_empty());
    }

    // The session lived through it: the transfer completes, and SOCKS still works.
    transfer.write_all(b"g").await.unwrap();
    let mut second = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), transfer.read_to_end(&mut second))
        .await
        .expect("the transfer stalled")
        .unwrap();
    assert!(
        second == half(2),
        "the transfer was cut ({} bytes)",
        second.len()
    );
    assert!(!bastion.is_closed(), "the SSH session was dropped");
    let (mut ok, code) = socks_connect(proxy, b"127.0.0.1", target.port()).await;
    assert_eq!(code, 0);
    let mut again = vec![0u8; HALF];
    ok.read_exact(&mut again).await.unwrap();
    assert!(again == half(1));
    let _ = stop.send(());
    running.await.unwrap();
}
