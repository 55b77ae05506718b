//! The bastion image's entrypoint run for real: a throw-away local login user (sshd runs as
//! that user, as it does in the image), a folder holding host keys, authorized keys and the
//! rendered config, the OpenSSH client, and small TCP targets to forward to. Everything is
//! removed in `Drop`: the sshd process, the folder and the user.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub use super::sshd::sshd_path;
use super::sshd::{SshdProcess, StartError};

/// The repository's `bastion-image/` folder.
pub fn image_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bastion-image")
}

/// The PATH the entrypoint and sshd get.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A local user that exists for one test. `useradd`/`userdel` take a lock on /etc/passwd, so
/// they are retried while another test holds it.
pub struct LoginUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

static USER_SEQ: AtomicU32 = AtomicU32::new(0);

fn retry_on_lock(args: &[&str]) -> Output {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = Command::new(args[0])
            .args(&args[1..])
            .env("PATH", PATH)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", args[0]));
        // Transient: another test holds the lock on /etc/passwd ("cannot lock"), or sshd's
        // per-connection process of a client that just left has not exited yet ("currently
        // used by process").
        let err = String::from_utf8_lossy(&out.stderr);
        let transient = err.contains("lock") || err.contains("currently used by process");
        if out.status.success() || !transient || Instant::now() > deadline {
            return out;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

impl LoginUser {
    pub fn create(home: &Path) -> LoginUser {
        let name = format!(
            "pgbt{}x{}",
            std::process::id(),
            USER_SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let home_s = home.to_str().unwrap();
        let out = retry_on_lock(&[
            "useradd",
            "--no-create-home",
            "--home-dir",
            home_s,
            "--shell",
            "/bin/sh",
            "--user-group",
            &name,
        ]);
        assert!(
            out.status.success(),
            "useradd {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id = |flag: &str| -> u32 {
            let o = Command::new("id").arg(flag).arg(&name).output().unwrap();
            String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
        };
        LoginUser {
            uid: id("-u"),
            gid: id("-g"),
            name,
        }
    }
}

impl Drop for LoginUser {
    fn drop(&mut self) {
        let out = retry_on_lock(&["userdel", &self.name]);
        if !out.status.success() {
            eprintln!(
                "userdel {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// A folder laid out like the image's mounts, plus a login user and a client key.
///
/// The folder lives under the target directory, not /tmp: sshd's StrictModes refuses an
/// authorized keys file below a world-writable folder, as it should.
pub struct BastionHome {
    // Field order is drop order: the user goes after every process is gone (see `Sshd`), the
    // folder last.
    pub user: LoginUser,
    pub dir: tempfile::TempDir,
}

impl BastionHome {
    pub fn new() -> BastionHome {
        // sshd's StrictModes refuses authorized keys below a group- or world-writable folder
        // (such as /tmp, where a checkout may live): the tree goes under /run, root's 0755.
        let base = std::path::Path::new("/run/paragon-admin-tests");
        std::fs::create_dir_all(base).unwrap();
        std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = tempfile::Builder::new()
            .prefix("bastion-")
            .tempdir_in(base)
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let home = dir.path().join("home");
        let user = LoginUser::create(&home);
        let b = BastionHome { user, dir };
        for sub in ["home", "host-keys", "run"] {
            b.user_dir(sub);
        }
        // The policy as committed, and the entrypoint, readable by the login user.
        let cfg = b.path().join("sshd_config");
        std::fs::copy(image_dir().join("sshd_config"), &cfg).unwrap();
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
        let ep = b.path().join("entrypoint.sh");
        std::fs::copy(image_dir().join("entrypoint.sh"), &ep).unwrap();
        std::fs::set_permissions(&ep, std::fs::Permissions::from_mode(0o755)).unwrap();
        // The session wrapper (the policy's ForceCommand), as the image installs it.
        let session = b.path().join("bastion-session");
        std::fs::copy(image_dir().join("session"), &session).unwrap();
        std::fs::set_permissions(&session, std::fs::Permissions::from_mode(0o755)).unwrap();
        // The client's key pair (root's, like an operator's laptop key).
        let key = b.client_key();
        let out = Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "alice@example.com",
                "-f",
            ])
            .arg(&key)
            .output()
            .unwrap();
        assert!(out.status.success(), "ssh-keygen client key");
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        b.write_authorized_keys(&format!("# the team\n{public}"));
        b
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A subfolder owned by the login user, mode 0700.
    pub fn user_dir(&self, name: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::create_dir_all(&p).unwrap();
        chown(&p, Some(self.user.uid), Some(self.user.gid)).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
        p
    }

    pub fn client_key(&self) -> PathBuf {
        self.path().join("client_key")
    }

    pub fn authorized_keys(&self) -> PathBuf {
        self.path().join("authorized_keys")
    }

    pub fn write_authorized_keys(&self, text: &str) {
        let p = self.authorized_keys();
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    pub fn host_key_dir(&self) -> PathBuf {
        self.path().join("host-keys")
    }

    pub fn config_template(&self) -> PathBuf {
        self.path().join("sshd_config")
    }

    /// The client key's fingerprint, as sshd logs it ("SHA256:...").
    pub fn client_fingerprint(&self) -> String {
        super::sshd::fingerprint(&self.client_key().with_extension("pub"))
    }

    /// The entrypoint, run as the login user with the image's variables pointed here.
    pub fn entrypoint(&self, port: u16, permit_open: Option<&str>) -> Command {
        let mut c = Command::new("/bin/sh");
        c.arg(self.path().join("entrypoint.sh"))
            .env_clear()
            .env("PATH", PATH)
            .env("HOME", self.path().join("home"))
            .env("LANG", "C.UTF-8")
            .env("BASTION_SSHD_CONFIG", self.config_template())
            .env("BASTION_HOST_KEY_DIR", self.host_key_dir())
            .env("BASTION_AUTHORIZED_KEYS", self.authorized_keys())
            .env("BASTION_RUN_DIR", self.path().join("run"))
            .env("BASTION_SESSION", self.path().join("bastion-session"))
            .env("BASTION_PORT", port.to_string())
            .env("BASTION_LISTEN_ADDRESS", "127.0.0.1")
            .env("BASTION_USER", &self.user.name)
            .env("SSHD", sshd_path())
            .current_dir(self.path().join("home"))
            .uid(self.user.uid)
            .gid(self.user.gid);
        if let Some(p) = permit_open {
            c.env("BASTION_PERMIT_OPEN", p);
        }
        c
    }

    /// Starts sshd through the entrypoint on a free loopback port, retrying with another port
    /// when the one picked was taken in between.
    pub fn start(&self, permit_open: Option<&str>) -> Sshd {
        let mut last = String::new();
        for attempt in 0..8 {
            let port = free_port();
            let log = self.path().join(format!("sshd-{port}-{attempt}.log"));
            // The container's stdout: the audit's JSON lines.
            let audit = self.path().join(format!("audit-{port}-{attempt}.jsonl"));
            let mut cmd = self.entrypoint(port, permit_open);
            cmd.stdin(Stdio::null())
                .stdout(std::fs::File::create(&audit).unwrap());
            match SshdProcess::start(&mut cmd, &log) {
                Ok(process) => {
                    return Sshd {
                        process,
                        port,
                        log,
                        audit,
                    };
                }
                Err(StartError::PortInUse(text)) => last = text,
                Err(StartError::Failed(text)) => {
                    panic!("the entrypoint did not start sshd:\n{text}")
                }
            }
        }
        panic!("no free port after 8 attempts:\n{last}");
    }

    /// The OpenSSH client with no configuration but ours, the test's key, and a known_hosts
    /// file in this folder.
    pub fn ssh(&self, sshd: &Sshd, user: &str, strict: &str) -> Command {
        let mut c = Command::new("timeout");
        c.args(["30", "ssh", "-F", "none", "-i"])
            .arg(self.client_key())
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "IdentityAgent=none",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                // One name for the host whatever port it listens on (restarts pick new ports).
                "-o",
                "HostKeyAlias=paragon-bastion",
                "-o",
            ])
            .arg(format!(
                "UserKnownHostsFile={}",
                self.path().join("known_hosts").display()
            ))
            .arg("-o")
            .arg(format!("StrictHostKeyChecking={strict}"))
            .arg("-p")
            .arg(sshd.port.to_string())
            .arg(format!("{user}@127.0.0.1"))
            .env("PATH", PATH)
            .stdin(Stdio::null());
        c
    }

    /// `ssh -W HOST:PORT`: sends an HTTP request through the bastion and returns what came back.
    pub fn fetch_through(&self, sshd: &Sshd, target: &str) -> Output {
        let mut child = self
            .ssh(sshd, &self.user.name, "accept-new")
            .arg("-W")
            .arg(target)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(b"GET / HTTP/1.0\r\nHost: target\r\n\r\n");
        drop(stdin);
        child.wait_with_output().unwrap()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// sshd started by the entrypoint (which became sshd by `exec`); stopped, with every process
/// it started, in `Drop`.
pub struct Sshd {
    process: SshdProcess,
    pub port: u16,
    pub log: PathBuf,
    /// The entrypoint's stdout: the audit's JSON lines.
    pub audit: PathBuf,
}

impl Sshd {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until sshd's log contains `needle` (log lines can trail the client's exit).
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.log_text();
            if text.contains(needle) || Instant::now() > deadline {
                return text;
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// The audit's JSON lines once `done` holds for them (within 10 s), else the last seen.
    pub fn wait_for_audit(
        &self,
        done: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines: Vec<serde_json::Value> = std::fs::read_to_string(&self.audit)
                .unwrap_or_default()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
                .collect();
            if done(&lines) || Instant::now() > deadline {
                return lines;
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn stop(mut self) {
        self.process.stop();
    }
}

/// A tiny HTTP server on loopback that counts its connections; stopped in `Drop`.
pub struct HttpTarget {
    pub port: u16,
    pub hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpTarget {
    pub const BODY: &'static str = "paragon-bastion-target-ok";

    pub fn start() -> HttpTarget {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (hits.clone(), stop.clone());
        let thread = thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                h.fetch_add(1, Ordering::SeqCst);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = write!(
                    conn,
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{}",
                    Self::BODY.len(),
                    Self::BODY
                );
                let _ = conn.shutdown(Shutdown::Both);
            }
        });
        HttpTarget {
            port,
            hits,
            stop,
            thread: Some(thread),
        }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for HttpTarget {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
