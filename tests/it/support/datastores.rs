//! Real PostgreSQL and Redis servers for one test, on loopback or behind a command prefix
//! (`ip netns exec NS`). Postgres refuses to run as root, so it runs as `nobody` (setpriv
//! execs it directly: the pid we hold is the postmaster's). Stopped in `Drop`.

use std::net::TcpStream;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
const NOBODY: u32 = 65534;

/// A free-looking port on 127.0.0.1; the servers bind themselves, so callers retry on a clash.
fn pick_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind for a port number");
    l.local_addr().unwrap().port()
}

fn command(prefix: &[String], program: &str) -> Command {
    match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// Sends `signal` to `pid` (SIGINT is Postgres' fast shutdown).
fn kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Waits for `child` to exit, up to `within`; then kills it.
fn reap(child: &mut Child, within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A PostgreSQL 15 cluster in a temporary folder, trust authentication for `postgres`, or
/// password authentication (scram) when made with `with_password`.
pub struct Postgres {
    dir: tempfile::TempDir,
    pub addr: String,
    pub port: u16,
    prefix: Vec<String>,
    child: Option<Child>,
}

impl Postgres {
    pub fn start() -> Postgres {
        Self::start_with("127.0.0.1", &[], None)
    }

    /// Starts on `addr` behind `prefix`; with `password`, the `postgres` role needs it.
    pub fn start_with(addr: &str, prefix: &[&str], password: Option<&str>) -> Postgres {
        let dir = tempfile::Builder::new()
            .prefix("pa-pg")
            .tempdir()
            .expect("temp dir");
        chown(dir.path(), Some(NOBODY), Some(NOBODY)).expect("chown the postgres folder");
        let data = dir.path().join("data");
        let mut initdb = Command::new("setpriv");
        initdb
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(Path::new(PG_BIN).join("initdb"))
            .args(["-U", "postgres", "--no-sync", "-D"])
            .arg(&data);
        if let Some(pw) = password {
            let pwfile = dir.path().join("pw");
            std::fs::write(&pwfile, pw).unwrap();
            chown(&pwfile, Some(NOBODY), Some(NOBODY)).unwrap();
            initdb
                .args(["-A", "scram-sha-256", "--pwfile"])
                .arg(&pwfile);
        } else {
            initdb.args(["-A", "trust"]);
        }
        let out = initdb
            .output()
            .expect("run initdb (is postgresql-15 installed?)");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = Postgres {
            dir,
            addr: addr.to_string(),
            port: 0,
            prefix: prefix.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        for _ in 0..10 {
            pg.port = pick_port();
            if pg.try_start() {
                return pg;
            }
        }
        panic!("postgres did not start: {}", pg.log());
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts the server on `self.port`; false on a port clash.
    fn try_start(&mut self) -> bool {
        let log = std::fs::File::create(self.log_path()).unwrap();
        let mut c = command(&self.prefix, "setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(Path::new(PG_BIN).join("postgres"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-p", &self.port.to_string()])
            .args(["-c", &format!("listen_addresses={}", self.addr)])
            .args([
                "-c",
                &format!("unix_socket_directories={}", self.dir.path().display()),
            ])
            .args(["-c", "fsync=off"])
            .stdout(Stdio::null())
            .stderr(log);
        self.child = Some(c.spawn().expect("start postgres"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let log = self.log();
            if log.contains("ready to accept connections") {
                return true;
            }
            let exited = self
                .child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            if exited {
                self.child = None;
                if log.contains("already in use") {
                    return false;
                }
                panic!("postgres exited: {log}");
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        panic!("postgres not ready within 20s: {}", self.log());
    }

    /// Stops the server (fast shutdown); the folder stays.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill(c.id(), "-INT");
            reap(&mut c, Duration::from_secs(10));
        }
    }

    /// `HOST:PORT` for a profile's datastores.
    pub fn target(&self) -> String {
        format!("{}:{}", self.addr, self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis server without persistence.
pub struct Redis {
    pub addr: String,
    pub port: u16,
    prefix: Vec<String>,
    extra: Vec<String>,
    child: Option<Child>,
}

impl Redis {
    pub fn start() -> Redis {
        Self::start_with("127.0.0.1", &[], &[])
    }

    /// Starts on `addr` behind `prefix`, with extra `--name value` arguments.
    pub fn start_with(addr: &str, prefix: &[&str], extra: &[&str]) -> Redis {
        let mut r = Redis {
            addr: addr.to_string(),
            port: 0,
            prefix: prefix.iter().map(|s| s.to_string()).collect(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        for _ in 0..10 {
            r.port = pick_port();
            if r.try_start() {
                return r;
            }
        }
        panic!("redis-server did not start");
    }

    fn try_start(&mut self) -> bool {
        let mut c = command(&self.prefix, "redis-server");
        c.args(["--port", &self.port.to_string(), "--bind", &self.addr])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .args(&self.extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = c
            .spawn()
            .expect("start redis-server (is redis-server installed?)");
        let mut out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut all = String::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                all.push_str(&String::from_utf8_lossy(&buf[..n]));
                if all.contains("Ready to accept connections") {
                    let _ = tx.send(true);
                }
                if all.contains("Address already in use") {
                    let _ = tx.send(false);
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(true) => {
                self.child = Some(child);
                true
            }
            Ok(false) => {
                let _ = child.kill();
                let _ = child.wait();
                false
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("redis-server not ready within 10s");
            }
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill(c.id(), "-TERM");
            reap(&mut c, Duration::from_secs(5));
        }
    }

    pub fn target(&self) -> String {
        format!("{}:{}", self.addr, self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether something accepts TCP connections at `addr:port` from here.
pub fn listening(addr: &str, port: u16) -> bool {
    TcpStream::connect_timeout(
        &format!("{addr}:{port}").parse().unwrap(),
        Duration::from_millis(300),
    )
    .is_ok()
}
