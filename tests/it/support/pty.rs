//! The one PTY driver: a command line run under `script` (a real terminal) with a home's
//! clean environment, its output collected as it comes, input typed when the output shows
//! what a test waits for and the program reads its terminal. Every wait polls with a
//! deadline; the child is killed on `Drop`.

use std::io::{Read, Write};
use std::path::PathBuf;
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
    /// The terminal's device, once found.
    device: Option<PathBuf>,
}

impl Terminal {
    /// Runs `line` (a `sh -c` line) under `script` with `home`'s environment and `extra`
    /// variables on top.
    pub fn start(home: &Home, line: &str, extra: &[(&str, &str)]) -> Terminal {
        Terminal::start_in(&home.paragon(), line, extra)
    }

    /// Runs `cmd` (its program, arguments and environment) on a terminal.
    pub fn spawn(cmd: &Command, extra: &[(&str, &str)]) -> Terminal {
        let mut words = vec![quote(&cmd.get_program().to_string_lossy())];
        words.extend(cmd.get_args().map(|a| quote(&a.to_string_lossy())));
        Terminal::start_in(cmd, &format!("exec {}", words.join(" ")), extra)
    }

    /// `line` under `script`, with the environment `base` would run with and `extra`.
    fn start_in(base: &Command, line: &str, extra: &[(&str, &str)]) -> Terminal {
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
            device: None,
        }
    }

    /// Everything the terminal showed so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    /// Waits until the output shows `needle`; panics with the output at the deadline.
    pub fn wait_for(&mut self, needle: &str) {
        self.wait_for_after(needle, 0);
    }

    /// Waits until the output from byte `from` on shows `needle`; returns the byte offset
    /// just past it.
    pub fn wait_for_after(&mut self, needle: &str, from: usize) -> usize {
        let needle = needle.as_bytes();
        if needle.is_empty() {
            return from;
        }
        let mut end = 0;
        self.wait_until(&String::from_utf8_lossy(needle), |bytes| {
            let rest = bytes.get(from..).unwrap_or_default();
            match rest.windows(needle.len()).position(|w| w == needle) {
                Some(i) => {
                    end = from + i + needle.len();
                    true
                }
                None => false,
            }
        });
        end
    }

    /// Waits until `done` holds for the output's bytes (`what` names it in the panic
    /// message).
    pub fn wait_until(&mut self, what: &str, mut done: impl FnMut(&[u8]) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let bytes = self.seen.lock().unwrap().clone();
            if done(&bytes) {
                return;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("`{what}` never appeared: {}", self.text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `question` (whose answers start with `marker`) again after each answer until
    /// the output shows `want`: for what changes asynchronously, such as a remote PTY's size.
    pub fn ask_until(&mut self, question: &[u8], marker: &str, want: &str) {
        let deadline = Instant::now() + DEADLINE;
        while !self.text().contains(want) {
            assert!(Instant::now() < deadline, "never `{want}`: {}", self.text());
            let answers = self.text().matches(marker).count();
            self.send(question);
            self.wait_until(&format!("an answer to {marker}"), |out| {
                String::from_utf8_lossy(out).matches(marker).count() > answers
            });
        }
    }

    /// Waits until the program reads keys from the terminal: a prompt turns echo off while
    /// it reads (raw mode for a key, no echo for a secret). Keys typed before that are lost
    /// (a secret's prompt flushes pending input) or echoed, and nothing the terminal shows
    /// marks the moment: its mode does.
    pub fn wait_reading(&mut self) {
        let device = self.device();
        let deadline = Instant::now() + DEADLINE;
        loop {
            let out = Command::new("stty")
                .arg("-F")
                .arg(&device)
                .arg("-a")
                .output()
                .expect("stty must be installed (coreutils)");
            let modes = String::from_utf8_lossy(&out.stdout);
            if modes.split_whitespace().any(|w| w == "-echo") {
                return;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "the program never read its terminal ({}):\n{modes}{}\n{}",
                    device.display(),
                    String::from_utf8_lossy(&out.stderr),
                    self.text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The terminal's device (`/dev/pts/N`): `script` holds it open.
    fn device(&mut self) -> PathBuf {
        if let Some(d) = &self.device {
            return d.clone();
        }
        let fds = PathBuf::from(format!("/proc/{}/fd", self.child.id()));
        let deadline = Instant::now() + DEADLINE;
        loop {
            let found = std::fs::read_dir(&fds)
                .into_iter()
                .flatten()
                .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .find(|target| target.starts_with("/dev/pts/"));
            if let Some(d) = found {
                self.device = Some(d.clone());
                return d;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("script never opened a terminal: {}", self.text());
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
    pub fn finish(self) -> String {
        self.finish_status().1
    }

    /// Waits for the line to end (within the deadline): its exit status (`script -e` passes
    /// the child's on) and all it showed.
    pub fn finish_status(mut self) -> (i32, String) {
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the terminal did not finish: {}", self.text());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.stdin.take();
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        (status.code().unwrap_or(-1), self.text())
    }
}

/// `s` as one `sh` word.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `line` on a terminal; types `input` once the output shows `after` and the program
/// reads, and returns all the terminal showed.
pub fn on_terminal(home: &Home, line: &str, after: &str, input: &[u8]) -> String {
    let mut t = Terminal::start(home, line, &[]);
    t.wait_for(after);
    if !input.is_empty() {
        t.wait_reading();
        t.send(input);
    }
    t.finish()
}

/// Drives `cmd` on a terminal (TERM=xterm): for each step, waits until the output after the
/// previous step's text shows this step's text, then types its keys once the program reads
/// them. Returns the exit status and everything shown.
pub fn on_pty(cmd: &Command, steps: &[(&str, &str)]) -> (i32, String) {
    let mut t = Terminal::spawn(cmd, &[("TERM", "xterm")]);
    let mut from = 0;
    for (text, keys) in steps {
        from = t.wait_for_after(text, from);
        if !keys.is_empty() {
            t.wait_reading();
            t.send(keys.as_bytes());
        }
    }
    t.finish_status()
}
