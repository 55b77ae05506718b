//! The demo's embedded bastion and web page, driven by OpenSSH's own client: one key in,
//! forwards only to the allow-list, no sessions, host key checked from the line it produces.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use paragon_admin::sandbox::bastion::DemoBastion;
use paragon_admin::sandbox::web::DemoWeb;
use russh::keys::PublicKey;
use tokio::net::TcpListener;

use crate::support::sshd::keygen;

struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    fn new() -> Keys {
        let dir = tempfile::tempdir().unwrap();
        keygen(&dir.path().join("client"), "ed25519", "");
        keygen(&dir.path().join("other"), "ed25519", "");
        Keys { dir }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn public(&self, name: &str) -> PublicKey {
        let text = std::fs::read_to_string(self.path(name).with_extension("pub")).unwrap();
        PublicKey::from_openssh(text.trim()).unwrap()
    }
    fn known_hosts(&self, line: &str) -> PathBuf {
        let p = self.path("known_hosts");
        std::fs::write(&p, format!("{line}\n")).unwrap();
        p
    }
}

/// OpenSSH's client against `bastion` with `key`, strict host key checking against
/// `known_hosts`, no agent, no config; `args` follow the destination or come before it.
fn openssh(
    bastion: SocketAddr,
    key: &Path,
    known_hosts: &Path,
    before: &[&str],
    after: &[&str],
    stdin: &[u8],
) -> Output {
    let mut child = Command::new("ssh")
        .env_remove("SSH_AUTH_SOCK")
        .args([
            "-F",
            "none",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .args(["-o", "StrictHostKeyChecking=yes"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .arg("-i")
        .arg(key)
        .arg("-p")
        .arg(bastion.port().to_string())
        .args(before)
        .arg(format!("demo@{}", bastion.ip()))
        .args(after)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ssh must be installed (openssh-client)");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

async fn openssh_async(
    bastion: SocketAddr,
    key: PathBuf,
    known_hosts: PathBuf,
    before: Vec<String>,
    after: Vec<String>,
    stdin: Vec<u8>,
) -> Output {
    tokio::task::spawn_blocking(move || {
        let before: Vec<&str> = before.iter().map(String::as_str).collect();
        let after: Vec<&str> = after.iter().map(String::as_str).collect();
        openssh(bastion, &key, &known_hosts, &before, &after, &stdin)
    })
    .await
    .unwrap()
}

/// A TCP echo server on loopback; the task ends with the runtime.
async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

async fn start(keys: &Keys, allowed: Vec<SocketAddr>) -> DemoBastion {
    DemoBastion::bind(
        "127.0.0.1:0".parse().unwrap(),
        keys.public("client"),
        allowed,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_reaches_an_allowed_target_with_the_client_key_and_bytes_arrive_intact() {
    let keys = Keys::new();
    let echo = echo_server().await;
    let bastion = start(&keys, vec![echo]).await;
    let kh = keys.known_hosts(bastion.known_hosts_line());
    // Several megabytes of varied bytes, so that windows, packets and EOF all matter.
    let data: Vec<u8> = (0..6_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let out = openssh_async(
        bastion.addr(),
        keys.path("client"),
        kh,
        vec!["-W".into(), echo.to_string()],
        vec![],
        data.clone(),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(out.stdout.len(), data.len());
    assert!(out.stdout == data, "echoed bytes differ");
    bastion.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_page_is_served_through_the_bastion() {
    let keys = Keys::new();
    let web = DemoWeb::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let bastion = start(&keys, vec![web.addr()]).await;
    let kh = keys.known_hosts(bastion.known_hosts_line());
    let out = openssh_async(
        bastion.addr(),
        keys.path("client"),
        kh,
        vec!["-W".into(), web.addr().to_string()],
        vec![],
        b"GET / HTTP/1.0\r\nHost: grafana\r\n\r\n".to_vec(),
    )
    .await;
    let body = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(body.starts_with("HTTP/1.0 200 OK\r\n"), "{body}");
    assert!(
        body.contains("Paragon demo \u{2014} this page reached you through the bastion"),
        "{body}"
    );
    bastion.shutdown().await;
    web.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_off_the_allow_list_is_refused() {
    let keys = Keys::new();
    let allowed = echo_server().await;
    let other = echo_server().await;
    let bastion = start(&keys, vec![allowed]).await;
    let kh = keys.known_hosts(bastion.known_hosts_line());
    for target in [other.to_string(), "localhost:22".to_string()] {
        let out = openssh_async(
            bastion.addr(),
            keys.path("client"),
            kh.clone(),
            vec!["-W".into(), target.clone()],
            vec![],
            b"hello".to_vec(),
        )
        .await;
        assert_eq!(out.status.code(), Some(255), "{target}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("administratively prohibited"),
            "{target}: {}",
            stderr(&out)
        );
        assert!(out.stdout.is_empty());
    }
    bastion.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_key_is_refused() {
    let keys = Keys::new();
    let echo = echo_server().await;
    let bastion = start(&keys, vec![echo]).await;
    let kh = keys.known_hosts(bastion.known_hosts_line());
    let out = openssh_async(
        bastion.addr(),
        keys.path("other"),
        kh,
        vec!["-W".into(), echo.to_string()],
        vec![],
        b"hello".to_vec(),
    )
    .await;
    assert_eq!(out.status.code(), Some(255), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Permission denied (publickey)"),
        "{}",
        stderr(&out)
    );
    bastion.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_and_shell_are_refused() {
    let keys = Keys::new();
    let bastion = start(&keys, vec![]).await;
    let kh = keys.known_hosts(bastion.known_hosts_line());
    for after in [vec!["true".to_string()], vec![]] {
        let out = openssh_async(
            bastion.addr(),
            keys.path("client"),
            kh.clone(),
            vec!["-T".into()],
            after.clone(),
            Vec::new(),
        )
        .await;
        assert_eq!(out.status.code(), Some(255), "{after:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("administratively prohibited"),
            "{after:?}: {}",
            stderr(&out)
        );
    }
    bastion.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_forwarding_is_refused() {
    let keys = Keys::new();
    let echo = echo_server().await;
    let bastion = start(&keys, vec![echo]).await;
    let kh = keys.known_hosts(bastion.known_hosts_line());
    let out = openssh_async(
        bastion.addr(),
        keys.path("client"),
        kh,
        ["-N", "-o", "ExitOnForwardFailure=yes", "-R"]
            .into_iter()
            .map(String::from)
            .chain([format!("0:{echo}")])
            .collect(),
        vec![],
        Vec::new(),
    )
    .await;
    assert_eq!(out.status.code(), Some(255), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("remote port forwarding failed"),
        "{}",
        stderr(&out)
    );
    bastion.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_different_recorded_host_key_makes_openssh_refuse() {
    let keys = Keys::new();
    let echo = echo_server().await;
    let bastion = start(&keys, vec![echo]).await;
    // Another demo bastion's key recorded for this one's address: a changed host key.
    let impostor = start(&keys, vec![]).await;
    let line = impostor.known_hosts_line().replacen(
        &format!(":{} ", impostor.addr().port()),
        &format!(":{} ", bastion.addr().port()),
        1,
    );
    let kh = keys.known_hosts(&line);
    let out = openssh_async(
        bastion.addr(),
        keys.path("client"),
        kh,
        vec!["-W".into(), echo.to_string()],
        vec![],
        b"hello".to_vec(),
    )
    .await;
    assert_eq!(out.status.code(), Some(255), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Host key verification failed"),
        "{}",
        stderr(&out)
    );
    bastion.shutdown().await;
    impostor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_the_listening_ports() {
    let keys = Keys::new();
    let web = DemoWeb::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let bastion = start(&keys, vec![web.addr()]).await;
    let (b, w) = (bastion.addr(), web.addr());
    assert!(TcpStream::connect(b).is_ok());
    bastion.shutdown().await;
    web.shutdown().await;
    assert!(TcpStream::connect(b).is_err(), "bastion port still open");
    assert!(TcpStream::connect(w).is_err(), "web port still open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_page_answers_grafanas_health_endpoint() {
    let web = DemoWeb::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = web.addr();
    let get = move |path: &str| {
        let path = path.to_string();
        tokio::task::spawn_blocking(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            write!(s, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
            let mut r = String::new();
            s.read_to_string(&mut r).unwrap();
            r
        })
    };
    let health = get("/api/health").await.unwrap();
    assert!(health.starts_with("HTTP/1.0 200 OK\r\n"), "{health}");
    assert!(
        health.contains("content-type: application/json"),
        "{health}"
    );
    let body = health.split("\r\n\r\n").nth(1).unwrap();
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["database"], "ok");
    let missing = get("/nope").await.unwrap();
    assert!(missing.starts_with("HTTP/1.0 404"), "{missing}");
    web.shutdown().await;
}
