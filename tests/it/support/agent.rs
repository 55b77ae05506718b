//! The one ssh-agent fixture: a real `ssh-agent` on a socket in its own temporary folder,
//! killed and reaped on `Drop`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Agent {
    child: Child,
    dir: tempfile::TempDir,
}

impl Agent {
    /// Starts an agent and waits (with a deadline) until its socket exists.
    pub fn start() -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdout(Stdio::null())
            .spawn()
            .expect("ssh-agent must be installed (openssh-client)");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !sock.exists() {
            assert!(Instant::now() < deadline, "ssh-agent did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Agent { child, dir }
    }

    /// The agent's socket, for `SSH_AUTH_SOCK`.
    pub fn sock(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }

    /// Adds a private key without a passphrase.
    pub fn add(&self, key: &Path) {
        let st = Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", self.sock())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "ssh-add {} failed", key.display());
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
