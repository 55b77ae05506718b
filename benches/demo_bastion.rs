//! Throughput of the demo bastion's `direct-tcpip` relay against OpenSSH's sshd, in the same
//! run: the same OpenSSH client (`ssh -W`), the same loopback sink, the same bytes. Only the
//! server differs. Prints MB/s for each (median of ROUNDS) and the ratio demo/OpenSSH.
//!
//! Run: `cargo bench --bench demo_bastion` (env: MB=256 ROUNDS=3). Needs ssh, ssh-keygen and
//! /usr/sbin/sshd (openssh-client, openssh-server).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use paragon_admin::sandbox::bastion::DemoBastion;
use russh::keys::PublicKey;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen (openssh-client) is needed")
        .success();
    assert!(ok, "ssh-keygen failed");
}

/// A sink that reads and discards everything, on its own thread.
fn sink() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = vec![0u8; 256 * 1024];
                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

/// OpenSSH's sshd on loopback, on a free port (retried when taken meanwhile).
struct Sshd(Child);

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_sshd(dir: &Path) -> (Sshd, u16) {
    std::fs::create_dir_all("/run/sshd").unwrap();
    keygen(&dir.join("host_key"));
    std::fs::copy(dir.join("client.pub"), dir.join("authorized_keys")).unwrap();
    for _ in 0..20 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = dir.join("sshd_config");
        std::fs::write(
            &cfg,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
                 PidFile none\nUsePAM no\nStrictModes no\nPasswordAuthentication no\nAllowTcpForwarding yes\n",
                d = dir.display()
            ),
        )
        .unwrap();
        let mut child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&cfg)
            .stderr(Stdio::null())
            .spawn()
            .expect("/usr/sbin/sshd (openssh-server) is needed");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (Sshd(child), port);
            }
            if child.try_wait().unwrap().is_some() {
                break; // the port was taken: try another
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("sshd did not start");
}

/// Seconds for `ssh -W` to push `bytes` to `target` through the server on `port`.
fn push(dir: &Path, port: u16, known_hosts: &Path, target: SocketAddr, bytes: usize) -> f64 {
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
        .args(["-o", "StrictHostKeyChecking=yes", "-i"])
        .arg(dir.join("client"))
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args([
            "-p",
            &port.to_string(),
            "-W",
            &target.to_string(),
            "root@127.0.0.1",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let start = Instant::now();
    let chunk = vec![0x5au8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        stdin.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    drop(stdin);
    assert!(child.wait().unwrap().success(), "ssh -W failed");
    start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mb = env_usize("MB", 256);
    let rounds = env_usize("ROUNDS", 3);
    let bytes = mb << 20;
    let dir = tempfile::tempdir().unwrap();
    keygen(&dir.path().join("client"));
    let target = sink();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client_key = PublicKey::from_openssh(
        std::fs::read_to_string(dir.path().join("client.pub"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    let demo = rt
        .block_on(DemoBastion::bind(
            "127.0.0.1:0".parse().unwrap(),
            client_key,
            vec![target],
        ))
        .unwrap();
    let demo_kh = dir.path().join("demo_known_hosts");
    std::fs::write(&demo_kh, format!("{}\n", demo.known_hosts_line())).unwrap();

    let (_sshd, sshd_port) = start_sshd(dir.path());
    let host_key = std::fs::read_to_string(dir.path().join("host_key.pub")).unwrap();
    let sshd_kh = dir.path().join("sshd_known_hosts");
    let mut parts = host_key.split_whitespace();
    std::fs::write(
        &sshd_kh,
        format!(
            "[127.0.0.1]:{sshd_port} {} {}\n",
            parts.next().unwrap(),
            parts.next().unwrap()
        ),
    )
    .unwrap();

    let mut demo_t = Vec::new();
    let mut sshd_t = Vec::new();
    for _ in 0..rounds {
        demo_t.push(push(
            dir.path(),
            demo.addr().port(),
            &demo_kh,
            target,
            bytes,
        ));
        sshd_t.push(push(dir.path(), sshd_port, &sshd_kh, target, bytes));
    }
    let rate = |t: f64| mb as f64 / t;
    let (d, s) = (rate(median(demo_t)), rate(median(sshd_t)));
    println!("ssh -W, {mb} MiB, median of {rounds}:");
    println!("  demo bastion (russh server)  {d:8.1} MiB/s");
    println!("  OpenSSH sshd                 {s:8.1} MiB/s");
    println!("  ratio demo/OpenSSH           {:8.2}", d / s);
    rt.block_on(demo.shutdown());
}
