//! The one PTY driver: a command line run under `script` (a real terminal) with a home's
//! clean environment, its output collected as it comes, input typed when the output shows
//! what a test waits for. Every wait polls with a deadline; the child is killed on `Drop`.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Home;

/// How long any one wait on the terminal may take.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A shell line running on a terminal.
pub struct Terminal {
    child: Child,
    stdin: Option<ChildStdin>,
    seen: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
}

impl Terminal {
    /// Runs `line` (a `sh -c` line) under `script` with `home`'s environment and `extra`
    /// variables on top.
    pub fn start(home: &Home, line: &str, extra: &[(&str, &str)]) -> Terminal {
        let base = home.paragon();
        let mut cmd = Command::new("script");
        cmd.env_clear();
        for (k, v) in base.get_envs() {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd
            .args(["-qec", line, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("script must be installed (bsdutils)");
        let mut stdout = child.stdout.take().expect("script's stdout");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stdout.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    seen.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            })
        };
        Terminal {
            stdin: child.stdin.take(),
            child,
            seen,
            reader: Some(reader),
        }
    }

    /// Everything the terminal showed so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    /// Waits until the output shows `needle`; panics with the output at the deadline.
    pub fn wait_for(&mut self, needle: &str) {
        self.wait_until(needle, |t| t.contains(needle));
    }

    /// Waits until `done` holds for the output (`what` names it in the panic message).
    pub fn wait_until(&mut self, what: &str, done: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !done(&self.text()) {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("`{what}` never appeared: {}", self.text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Types `input`.
    pub fn send(&mut self, input: &[u8]) {
        let stdin = self.stdin.as_mut().expect("the terminal's input is open");
        stdin.write_all(input).unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for the line to end (within the deadline) and returns all it showed.
    pub fn finish(mut self) -> String {
        let deadline = Instant::now() + DEADLINE;
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the terminal did not finish: {}", self.text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stdin.take();
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        self.text()
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `line` on a terminal; types `input` once the output shows `after`, and returns all
/// the terminal showed.
pub fn on_terminal(home: &Home, line: &str, after: &str, input: &[u8]) -> String {
    let mut t = Terminal::start(home, line, &[]);
    t.wait_for(after);
    // A prompt prints its question before it turns echo off and flushes pending input
    // (dialoguer, rpassword): input typed in that gap would be lost, and nothing the
    // terminal shows marks the moment the prompt starts reading.
    std::thread::sleep(Duration::from_millis(200));
    t.send(input);
    t.finish()
}
