//! A `paragon-admin sandbox` process and the real kubectl pointed at it. The process gets
//! SIGTERM (then SIGKILL) in `Drop`, also when a test fails.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{Home, Run, run};

/// The real kubectl: /usr/bin/kubectl, else the first on PATH (scripts/test.sh installs one
/// where the machine has none). Tests need it and fail loudly without it.
pub fn kubectl_path() -> PathBuf {
    let usr = PathBuf::from("/usr/bin/kubectl");
    if usr.exists() {
        return usr;
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("kubectl"))
        .find(|p| p.exists())
        .expect("kubectl is missing: the sandbox tests need the real kubectl (run scripts/test.sh)")
}

pub struct SandboxProc {
    pub home: Home,
    child: Child,
    /// The JSON line the command printed on start.
    pub started: serde_json::Value,
    pub addr: String,
    pub kubeconfig: PathBuf,
}

impl SandboxProc {
    /// Starts `paragon-admin --output json sandbox ARGS` with its kubeconfig in a temporary
    /// home, and waits for the line that says it listens.
    pub fn start(args: &[&str]) -> Self {
        kubectl_path();
        let home = Home::new();
        let kubeconfig = home.path().join("sandbox.kubeconfig");
        let stderr_path = home.path().join("sandbox.stderr");
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut child = home
            .paragon()
            .args(["--output", "json", "sandbox", "--kubeconfig-out"])
            .arg(&kubeconfig)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("start paragon-admin sandbox");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) if !l.trim().is_empty() => l,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "sandbox printed no address ({other:?}); stderr: {}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                );
            }
        };
        let started: serde_json::Value = serde_json::from_str(&line).expect("JSON start line");
        let addr = started["listen"].as_str().expect("listen").to_string();
        SandboxProc {
            home,
            child,
            started,
            addr,
            kubeconfig,
        }
    }

    /// What the sandbox wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.home.path().join("sandbox.stderr")).unwrap_or_default()
    }

    /// kubectl with this sandbox's kubeconfig; its cache lives in the temporary home.
    pub fn kubectl_cmd(&self) -> Command {
        let mut c = Command::new(kubectl_path());
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--request-timeout=60s");
        c
    }

    pub fn kubectl(&self, args: &[&str]) -> Run {
        run(self.kubectl_cmd().args(args))
    }

    /// kubectl that must succeed without a word on stderr; its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let r = self.kubectl(args);
        assert_eq!(r.status, Some(0), "kubectl {args:?}: {}", r.stderr);
        assert!(
            r.stderr.is_empty(),
            "kubectl {args:?} complained: {}",
            r.stderr
        );
        r.stdout
    }

    pub fn kubectl_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.kubectl_ok(&all)).expect("kubectl JSON")
    }

    /// Sends SIGTERM and waits (at most 20 s) for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        signal(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().expect("wait sandbox") {
                return st;
            }
            assert!(Instant::now() < deadline, "sandbox ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

impl Drop for SandboxProc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            signal(self.child.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
