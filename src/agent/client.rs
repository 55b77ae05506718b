//! What commands call: find the profile's agent or start it, and the operations through it
//! (a command on the bastion with this process's stdio, a TCP stream, detached forwards,
//! status, stop, a command's output captured into memory). `Remote` is the one choice between
//! the agent and a direct connection that every command shares.

use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::BufReader;
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::watch;

use crate::config::Resolved;
use crate::dial::{
    self, BoxStream, Carried, Carry, CarryFuture, Counted, DialError, DialFuture, Dialer,
    OpenFuture, Opened,
};
use crate::forward::Forward;
use crate::forward::kept::Kept;
use crate::kube::source::{Capture, CaptureError, CaptureFuture};
use crate::ssh::exec::Request;
use crate::ssh::session::{Input, Output, Streams, on_local_stdio};
use crate::ssh::shell::Pty;
use crate::ssh::{Bastion, Captured};

use super::AgentError;
use super::paths::Paths;
use super::proto::{
    self, AgentStatus, ApiRoute, DetachedForward, Frame, Op, Reply, Startup, WirePty, WireSession,
};

/// A running agent of one profile.
#[derive(Clone)]
pub struct Agent {
    profile: Arc<Resolved>,
    paths: Paths,
    /// Set once the agent's build was looked at: an agent of another build is replaced or
    /// mentioned once per command, not on every connection.
    met: Arc<std::sync::atomic::AtomicBool>,
    /// The protocol of the agent last met (0 before the first hello, or a build before it).
    protocol: Arc<std::sync::atomic::AtomicU32>,
}

/// How long the agent has to take a connection and answer its hello, and to answer the
/// questions that cost it nothing (`status`, `forwards`, `stop`): an agent silent for longer
/// is stopped (SIGSTOP) or wedged.
const HELLO_DEADLINE: Duration = Duration::from_secs(5);

/// How long an operation waits for its answer line: the agent's own longest wait (the session
/// coming back, `WAIT_FOR_SESSION`, then the bastion's answer or the capture's deadline) fits.
const ANSWER_DEADLINE: Duration = Duration::from_secs(120);

/// The largest stdin frame a captured command is sent (the protocol takes frames up to 1 MiB).
const STDIN_CHUNK: usize = 256 * 1024;

/// What opening a connection to an agent's socket found.
enum Open {
    /// Nothing listens there.
    Nobody,
    /// The socket takes connections but the agent does not answer (stopped, wedged); the
    /// listening process, when the kernel names it.
    Silent { pid: Option<u32> },
    /// It closed the connection at our hello: a build before the hello.
    Old,
    /// Hellos exchanged (the agent's, unless asked without one), and the agent's pid.
    Ready {
        conn: BufReader<UnixStream>,
        hello: Option<proto::Hello>,
        pid: Option<u32>,
    },
}

/// Connects to the agent on `socket` and, when `hello`, exchanges hellos, each step within
/// `HELLO_DEADLINE`. An agent of another user is never answered: the folder is ours alone.
async fn open(socket: &Path, hello: bool) -> Open {
    let stream = match tokio::time::timeout(HELLO_DEADLINE, UnixStream::connect(socket)).await {
        Err(_) => return Open::Silent { pid: None },
        Ok(Err(_)) => return Open::Nobody,
        Ok(Ok(s)) => s,
    };
    let pid = stream
        .peer_cred()
        .ok()
        .filter(|c| c.uid() == super::paths::uid())
        .and_then(|c| c.pid())
        .and_then(|p| u32::try_from(p).ok());
    let mut conn = BufReader::new(stream);
    if !hello {
        return Open::Ready {
            conn,
            hello: None,
            pid,
        };
    }
    let said = tokio::time::timeout(HELLO_DEADLINE, async {
        let ours = proto::HelloLine {
            hello: proto::Hello::ours(0),
        };
        proto::write_line(conn.get_mut(), &ours).await?;
        proto::read_line::<_, proto::HelloLine>(&mut conn).await
    })
    .await;
    match said {
        Err(_) => Open::Silent { pid },
        Ok(Ok(Some(h))) => Open::Ready {
            conn,
            hello: Some(h.hello),
            pid,
        },
        // Closed, or answered with something else than a hello.
        Ok(Ok(None) | Err(_)) => Open::Old,
    }
}

/// The profile's agent if one runs; never starts one.
pub async fn find(profile: &Resolved) -> Result<Option<Agent>, AgentError> {
    let agent = Agent::new(profile)?;
    if agent.paths.too_long().is_some() {
        return Ok(None);
    }
    Ok(match open(&agent.paths.socket, false).await {
        Open::Nobody => None,
        _ => Some(agent),
    })
}

/// The profile's agent, started (and connected to the bastion) when none runs. While it
/// connects it may ask on this terminal (an unknown host key, a passphrase); its connect error
/// comes back with the status a direct connection would have given.
pub async fn connect_or_start(profile: &Resolved) -> Result<Agent, AgentError> {
    let agent = Agent::new(profile)?;
    if let Some(reason) = agent.paths.too_long() {
        return Err(AgentError::Folder {
            path: agent.paths.folder.clone(),
            reason: format!("{reason}: set XDG_RUNTIME_DIR to a shorter folder, or use --no-agent"),
        });
    }
    if matches!(open(&agent.paths.socket, false).await, Open::Nobody) {
        agent.start().await?;
    }
    Ok(agent)
}

/// What `stop_socket` stopped.
#[derive(Debug, Default)]
pub struct Stopped {
    /// The profile and config file, when the agent said them.
    pub profile: Option<String>,
    pub config: Option<String>,
    pub pid: Option<u32>,
    /// Detached forwards closed with it.
    pub forwards: usize,
    /// It did not answer and was ended by its pid.
    pub killed: bool,
}

/// Stops the agent listening on `socket`, whatever its profile: asked to stop, or, when it
/// does not answer within `HELLO_DEADLINE` (stopped, wedged), ended by its pid and its socket
/// removed. `None` when no agent listens there.
pub async fn stop_socket(socket: &Path) -> Result<Option<Stopped>, AgentError> {
    let io = |cause| AgentError::Socket {
        path: socket.to_path_buf(),
        cause,
    };
    let mut stopped = Stopped::default();
    let mut hello = true;
    for asked in [Op::Status, Op::Stop] {
        let (mut conn, pid) = loop {
            match open(socket, hello).await {
                Open::Nobody => return Ok((stopped.pid.is_some()).then_some(stopped)),
                Open::Old if hello => hello = false,
                Open::Old => return Err(io(std::io::ErrorKind::ConnectionReset.into())),
                Open::Silent { pid } => return kill(socket, pid, stopped).await.map(Some),
                Open::Ready { conn, pid, .. } => break (conn, pid),
            }
        };
        stopped.pid = pid;
        let request = proto::Request {
            fingerprint: String::new(),
            op: asked,
        };
        let answer = tokio::time::timeout(HELLO_DEADLINE, async {
            proto::write_line(conn.get_mut(), &request).await?;
            proto::read_line::<_, Reply>(&mut conn).await
        })
        .await;
        match answer {
            Err(_) => return kill(socket, pid, stopped).await.map(Some),
            Ok(Ok(Some(Reply::Status { status }))) => {
                stopped.profile = Some(status.profile);
                stopped.config = Some(status.config).filter(|c| !c.is_empty());
                stopped.forwards = status.forwards.len();
            }
            Ok(Ok(Some(Reply::Stopped { .. }))) => return Ok(Some(stopped)),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(io(e)),
        }
    }
    Ok(Some(stopped))
}

/// Stops the agent on `socket` when it holds no detached forwards (`Ok(Ok(_))`), else says
/// how many it holds (`Ok(Err(n))`).
async fn stop_socket_unless_forwards(
    socket: &Path,
) -> Result<Result<Option<Stopped>, usize>, AgentError> {
    let mut hello = true;
    let held = loop {
        match open(socket, hello).await {
            Open::Old if hello => hello = false,
            Open::Ready { mut conn, .. } => {
                let request = proto::Request {
                    fingerprint: String::new(),
                    op: Op::Status,
                };
                let answer = tokio::time::timeout(HELLO_DEADLINE, async {
                    proto::write_line(conn.get_mut(), &request).await?;
                    proto::read_line::<_, Reply>(&mut conn).await
                })
                .await;
                break match answer {
                    Ok(Ok(Some(Reply::Status { status }))) => status.forwards.len(),
                    _ => 0,
                };
            }
            _ => break 0,
        }
    };
    match held {
        0 => Ok(Ok(stop_socket(socket).await?)),
        n => Ok(Err(n)),
    }
}

/// Ends an agent that does not answer: SIGTERM and SIGCONT (a stopped process sees its
/// SIGTERM once continued), SIGKILL when it is still there after a while; then its socket is
/// removed, as it would have done itself.
async fn kill(
    socket: &Path,
    pid: Option<u32>,
    mut stopped: Stopped,
) -> Result<Stopped, AgentError> {
    use rustix::process::{Pid, Signal, kill_process};
    let Some(pid) = pid else {
        return Err(AgentError::Silent {
            what: socket.display().to_string(),
            pid: None,
            after: HELLO_DEADLINE.as_secs(),
        });
    };
    let target = i32::try_from(pid).ok().and_then(Pid::from_raw);
    if let Some(p) = target {
        let _ = kill_process(p, Signal::TERM);
        let _ = kill_process(p, Signal::CONT);
        let end = tokio::time::Instant::now() + Duration::from_secs(3);
        while running(pid) && tokio::time::Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if running(pid) {
            let _ = kill_process(p, Signal::KILL);
        }
    }
    match std::fs::remove_file(socket) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(AgentError::Socket {
                path: socket.to_path_buf(),
                cause: e,
            });
        }
        _ => {}
    }
    stopped.pid = Some(pid);
    stopped.killed = true;
    Ok(stopped)
}

/// Whether process `pid` exists and is not a zombie.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

impl Agent {
    fn new(profile: &Resolved) -> Result<Agent, AgentError> {
        Ok(Agent {
            paths: Paths::for_profile(profile)?,
            profile: Arc::new(profile.clone()),
            met: Arc::default(),
            protocol: Arc::default(),
        })
    }

    pub fn socket(&self) -> &Path {
        &self.paths.socket
    }

    /// Starts the agent under the start lock: of two commands starting at once, the second
    /// finds the first one's agent when it gets the lock.
    async fn start(&self) -> Result<(), AgentError> {
        let folder_error = |e: std::io::Error| AgentError::Folder {
            path: self.paths.lock.clone(),
            reason: e.to_string(),
        };
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&self.paths.lock)
            .map_err(folder_error)?;
        let lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
            .await
            .map_err(|e| folder_error(std::io::Error::other(e)))?
            .map_err(folder_error)?;
        if !matches!(open(&self.paths.socket, false).await, Open::Nobody) {
            return Ok(());
        }
        let spawn_error = |cause| AgentError::Spawn {
            profile: self.profile.name.clone(),
            cause,
        };
        let exe = std::env::current_exe().map_err(spawn_error)?;
        // stdin and stderr stay the terminal's for the prompts of the first connect; stdout
        // carries the one `Startup` line.
        // As verbose as this command: its connect logs reach this terminal.
        let verbose = match tracing::level_filters::LevelFilter::current() {
            tracing::level_filters::LevelFilter::TRACE => Some("-vvv"),
            tracing::level_filters::LevelFilter::DEBUG => Some("-vv"),
            tracing::level_filters::LevelFilter::INFO => Some("-v"),
            tracing::level_filters::LevelFilter::WARN => None,
            _ => Some("-q"),
        };
        let mut child = tokio::process::Command::new(exe)
            .args(verbose)
            // No waiting line where this command shows none (JSON output).
            .args(
                (!crate::prompt::progress())
                    .then_some(["--output", "json"])
                    .into_iter()
                    .flatten(),
            )
            .arg("--config")
            .arg(&self.profile.file)
            .arg("--profile")
            .arg(&self.profile.name)
            .args(["agent", "run"])
            .stdin(std::process::Stdio::inherit())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .map_err(spawn_error)?;
        let said: Option<Startup> = match child.stdout.take() {
            Some(out) => proto::read_line(&mut BufReader::new(out))
                .await
                .ok()
                .flatten(),
            None => None,
        };
        drop(lock);
        match said {
            Some(Startup::Ready { .. }) => Ok(()),
            Some(Startup::Failed { message, status }) => {
                let _ = child.wait().await;
                Err(AgentError::Relayed { message, status })
            }
            None => {
                let _ = child.wait().await;
                Err(AgentError::Died {
                    profile: self.profile.name.clone(),
                    log: self.paths.log.clone(),
                })
            }
        }
    }

    /// Sends `op` and reads the answer; an agent with other settings is stopped and replaced
    /// once. A `Failed` answer is the error it carries.
    async fn ask(&self, op: Op) -> Result<(Reply, BufReader<UnixStream>), AgentError> {
        let mut replaced = false;
        loop {
            let (answer, conn) = self.send(&op).await?;
            match answer {
                Reply::Mismatch if !replaced => {
                    stop_socket(&self.paths.socket).await?;
                    self.met.store(true, std::sync::atomic::Ordering::Relaxed);
                    self.start().await?;
                    replaced = true;
                }
                Reply::Failed { message, status } => {
                    return Err(AgentError::Relayed { message, status });
                }
                answer => return Ok((answer, conn)),
            }
        }
    }

    async fn send(&self, op: &Op) -> Result<(Reply, BufReader<UnixStream>), AgentError> {
        match self.send_once(op).await {
            Ok(answered) => Ok(answered),
            // No answer at all: the agent left (idle, stopped) between our connect and its
            // reply, before doing anything. Start one and ask once more.
            Err(AgentError::Lost { .. } | AgentError::Socket { .. }) => {
                self.start().await?;
                self.send_once(op).await
            }
            Err(e) => Err(e),
        }
    }

    async fn send_once(&self, op: &Op) -> Result<(Reply, BufReader<UnixStream>), AgentError> {
        let io = |cause| AgentError::Socket {
            path: self.paths.socket.clone(),
            cause,
        };
        let (mut conn, pid) = self.open_conn().await?;
        // Taken now, not when found: the agent's first connect may have written known_hosts.
        let request = proto::Request {
            fingerprint: super::fingerprint(&self.profile),
            op: op.clone(),
        };
        let deadline = match op {
            Op::Status | Op::Forwards | Op::StopForward { .. } | Op::Stop => HELLO_DEADLINE,
            _ => ANSWER_DEADLINE,
        };
        let answer = tokio::time::timeout(deadline, async {
            proto::write_line(conn.get_mut(), &request).await?;
            proto::read_line(&mut conn).await
        })
        .await
        .map_err(|_| self.silent(pid, deadline))?;
        match answer {
            Ok(Some(answer)) => Ok((answer, conn)),
            Ok(None) => Err(AgentError::Lost {
                profile: self.profile.name.clone(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(self.protocol(e)),
            Err(e) => Err(io(e)),
        }
    }

    fn silent(&self, pid: Option<u32>, after: Duration) -> AgentError {
        AgentError::Silent {
            what: format!("profile {}", self.profile.name),
            pid,
            after: after.as_secs(),
        }
    }

    /// A connection to the agent, hellos exchanged (none with an agent of a build before the
    /// hello), the agent started when none runs. The first time in this command, an agent of
    /// another build is replaced when it holds no detached forwards, else kept with a word.
    async fn open_conn(&self) -> Result<(BufReader<UnixStream>, Option<u32>), AgentError> {
        let io = |cause| AgentError::Socket {
            path: self.paths.socket.clone(),
            cause,
        };
        let mut started = false;
        let mut hello = true;
        loop {
            match open(&self.paths.socket, hello).await {
                Open::Ready { conn, hello, pid } => {
                    let protocol = hello.as_ref().map_or(0, |h| h.protocol);
                    self.protocol
                        .store(protocol, std::sync::atomic::Ordering::Relaxed);
                    let ours = hello.as_ref().is_some_and(|h| h.build == proto::build());
                    if ours || self.met.swap(true, std::sync::atomic::Ordering::Relaxed) {
                        return Ok((conn, pid));
                    }
                    drop(conn);
                    if !self.keep_other_build(hello.as_ref()).await? {
                        // Replaced: the new agent is of this build.
                        continue;
                    }
                    return match open(&self.paths.socket, hello.is_some()).await {
                        Open::Ready { conn, pid, .. } => Ok((conn, pid)),
                        Open::Silent { pid } => Err(self.silent(pid, HELLO_DEADLINE)),
                        _ => Err(io(std::io::ErrorKind::ConnectionReset.into())),
                    };
                }
                // A build before the hello: asked again without one.
                Open::Old if hello => hello = false,
                Open::Old => return Err(io(std::io::ErrorKind::ConnectionReset.into())),
                Open::Silent { pid } => return Err(self.silent(pid, HELLO_DEADLINE)),
                // Left since it was found (idle, or stopped): start it again, once.
                Open::Nobody if !started => {
                    self.start().await?;
                    started = true;
                    hello = true;
                }
                Open::Nobody => return Err(io(std::io::ErrorKind::NotFound.into())),
            }
        }
    }

    /// Meeting an agent of another build (`theirs`; `None` for one before the hello): one
    /// that holds no detached forwards is stopped and this build starts a new one (false);
    /// one that holds some is kept, asked only what both builds know, and this command says
    /// once how to restart it (true).
    async fn keep_other_build(&self, theirs: Option<&proto::Hello>) -> Result<bool, AgentError> {
        let build = theirs.map_or("from before the hello", |h| h.build.as_str());
        let stopped = match stop_socket_unless_forwards(&self.paths.socket).await? {
            Ok(stopped) => stopped,
            Err(forwards) => {
                eprintln!(
                    "paragon-admin: the agent of profile {} runs another build ({build}; this is {}) and keeps {forwards} detached forward(s), so it stays: to run this build, `paragon-admin agent stop` and detach the forwards again",
                    self.profile.name,
                    proto::build()
                );
                return Ok(true);
            }
        };
        tracing::info!(
            pid = stopped.and_then(|s| s.pid),
            "replaced the agent of another build ({build})"
        );
        self.start().await?;
        Ok(false)
    }

    fn protocol(&self, reason: impl std::fmt::Display) -> AgentError {
        AgentError::Protocol {
            profile: self.profile.name.clone(),
            reason: reason.to_string(),
        }
    }

    /// Runs `request` on the bastion through the agent with this process's stdin, stdout and
    /// stderr, on a PTY when `pty` is given, exactly as `Bastion::run` does directly.
    pub async fn run(&self, request: Request<'_>, pty: Option<Pty>) -> Result<u32, AgentError> {
        let command = match request {
            Request::Exec(c) => Some(c.as_bytes().to_vec()),
            Request::ExecBytes(c) => Some(c.to_vec()),
            Request::Shell => None,
        };
        let op = Op::Exec {
            command,
            pty: pty.as_ref().map(|p| WirePty {
                term: p.term.clone(),
                cols: p.cols,
                rows: p.rows,
            }),
        };
        let conn = match self.ask(op).await? {
            (Reply::Ready, conn) => conn,
            (other, _) => return Err(self.protocol(format!("{other:?} to exec"))),
        };
        let profile = self.profile.name.clone();
        on_local_stdio(pty.is_some(), |streams| relay(conn, streams, profile)).await
    }

    /// `command`'s captured output as the agent's `capture` gives it: its own answer from
    /// within `reuse` when it has one from its current session, else a fresh run.
    pub async fn capture_reusing(
        &self,
        command: &str,
        reuse: Duration,
    ) -> Result<Captured, AgentError> {
        let op = Op::Capture {
            command: command.to_string(),
            reuse_ms: u64::try_from(reuse.as_millis()).unwrap_or(u64::MAX),
        };
        match self.ask(op).await? {
            (Reply::Ready, conn) => self.collect(conn).await,
            // An agent of a build before the hello answers in one line.
            (
                Reply::Captured {
                    status,
                    stdout,
                    stderr,
                },
                _,
            ) => Ok(Captured {
                status,
                stdout,
                stderr,
            }),
            (other, _) => Err(self.protocol(format!("{other:?} to capture"))),
        }
    }

    /// A captured command's output frames up to its exit status, within `ANSWER_DEADLINE`
    /// and `CAPTURE_MAX` bytes.
    async fn collect(&self, mut conn: BufReader<UnixStream>) -> Result<Captured, AgentError> {
        let lost = || AgentError::Lost {
            profile: self.profile.name.clone(),
        };
        let reading = async {
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            loop {
                match proto::read_frame(&mut conn).await {
                    Ok(Some(Frame::Stdout(d))) => stdout.extend_from_slice(&d),
                    Ok(Some(Frame::Stderr(d))) => stderr.extend_from_slice(&d),
                    Ok(Some(Frame::Exit(status))) => {
                        return Ok(Captured {
                            status,
                            stdout,
                            stderr,
                        });
                    }
                    Ok(Some(Frame::Failed { status, message })) => {
                        return Err(AgentError::Relayed { message, status });
                    }
                    Ok(Some(_)) | Ok(None) | Err(_) => return Err(lost()),
                }
                if stdout.len() + stderr.len() > super::server::CAPTURE_MAX {
                    return Err(AgentError::Relayed {
                        message: format!(
                            "the captured output is over {} MiB",
                            super::server::CAPTURE_MAX / (1024 * 1024)
                        ),
                        status: crate::exit::FAILED,
                    });
                }
            }
        };
        tokio::time::timeout(ANSWER_DEADLINE, reading)
            .await
            .map_err(|_| self.silent(None, ANSWER_DEADLINE))?
    }

    /// Runs `command` on the bastion through the agent with no stdin and captures its stdout
    /// and stderr, as `Bastion::exec_capture` does directly: the agent's `Exec`, its output
    /// frames collected here.
    pub async fn capture(&self, command: &str) -> Result<Captured, AgentError> {
        self.capture_input(command, &[]).await
    }

    /// `capture` with `input` as the command's whole stdin (sent as the agent's stdin frames,
    /// then its end).
    pub async fn capture_input(&self, command: &str, input: &[u8]) -> Result<Captured, AgentError> {
        let op = Op::Exec {
            command: Some(command.as_bytes().to_vec()),
            pty: None,
        };
        let mut conn = match self.ask(op).await? {
            (Reply::Ready, conn) => conn,
            (other, _) => return Err(self.protocol(format!("{other:?} to exec"))),
        };
        let lost = |_| AgentError::Lost {
            profile: self.profile.name.clone(),
        };
        for chunk in input.chunks(STDIN_CHUNK) {
            proto::write_frame(conn.get_mut(), &Frame::Stdin(chunk.to_vec()))
                .await
                .map_err(lost)?;
        }
        // The end of stdin. The socket stays open for writing: the agent takes its end for
        // the client leaving, and would end the command.
        proto::write_frame(conn.get_mut(), &Frame::StdinEof)
            .await
            .map_err(lost)?;
        self.collect(conn).await
    }

    /// Listens for each forward on `bind` (idempotent: one live with the same name and target
    /// is returned as it is; the same name with another target is replaced), and returns them
    /// once they listen.
    /// Has the agent listen for `forwards` on `bind`; the targets of `api` take the API route.
    pub async fn ensure_forwards(
        &self,
        forwards: &[Forward],
        bind: IpAddr,
        api: Option<Box<ApiRoute>>,
    ) -> Result<Vec<DetachedForward>, AgentError> {
        let op = Op::Forward {
            forwards: forwards.iter().map(Into::into).collect(),
            bind,
            api,
        };
        match self.ask(op).await? {
            (Reply::Forwards { forwards }, _) => Ok(forwards),
            (other, _) => Err(self.protocol(format!("{other:?} to forward"))),
        }
    }

    pub async fn forwards(&self) -> Result<Vec<DetachedForward>, AgentError> {
        match self.ask(Op::Forwards).await? {
            (Reply::Forwards { forwards }, _) => Ok(forwards),
            (other, _) => Err(self.protocol(format!("{other:?} to forwards"))),
        }
    }

    /// Closes the forward called `name`, or all; returns how many closed.
    pub async fn stop_forward(&self, name: Option<&str>) -> Result<usize, AgentError> {
        let op = Op::StopForward {
            name: name.map(str::to_string),
        };
        match self.ask(op).await? {
            (Reply::Stopped { count }, _) => Ok(count),
            (other, _) => Err(self.protocol(format!("{other:?} to stop_forward"))),
        }
    }

    /// The kept session's state as it changes, until the agent goes (the sender dropped).
    /// An agent of a build before `watch` is asked for its status every second instead.
    pub async fn watch(&self) -> Result<watch::Receiver<Kept>, AgentError> {
        let name = self.profile.name.clone();
        let down = move |reason: String| Kept::Down {
            reason: format!(
                "the agent of profile {name} has no session to the bastion now and is reconnecting: {reason}"
            ),
        };
        let kept = move |w: WireSession| match w {
            WireSession::Up { generation } => Kept::Up { generation },
            WireSession::Connecting { attempt } => down(format!("attempt {attempt} under way")),
            WireSession::Down { message, .. } => down(message),
            WireSession::Closed { message, status } => Kept::Closed { message, status },
        };
        let (first, mut conn) = match self.ask(Op::Watch).await {
            Ok((Reply::Session { session }, conn)) => (session, conn),
            Ok((other, _)) => return Err(self.protocol(format!("{other:?} to watch"))),
            Err(AgentError::Relayed { message, .. }) if message.contains("does not know") => {
                return self.poll().await;
            }
            Err(e) => return Err(e),
        };
        let (tx, rx) = watch::channel(kept(first));
        tokio::spawn(async move {
            loop {
                let line = tokio::select! {
                    () = tx.closed() => return,
                    l = proto::read_line::<_, Reply>(&mut conn) => l,
                };
                match line {
                    Ok(Some(Reply::Session { session })) => {
                        tx.send_replace(kept(session));
                    }
                    // The agent went away (or spoke nonsense): the watch ends.
                    _ => return,
                }
            }
        });
        Ok(rx)
    }

    /// `watch` for an agent of a build before it: its status every second.
    async fn poll(&self) -> Result<watch::Receiver<Kept>, AgentError> {
        let now = |s: &AgentStatus| match s.connected {
            true => Kept::Up {
                generation: 1 + s.reconnects + s.renewals,
            },
            false => Kept::Down {
                reason: format!(
                    "the agent of profile {} has no session to {} now and is reconnecting",
                    s.profile, s.bastion
                ),
            },
        };
        let (tx, rx) = watch::channel(now(&self.status().await?));
        let agent = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tokio::select! {
                    () = tx.closed() => return,
                    _ = tick.tick() => {}
                }
                match agent.status().await {
                    Ok(s) => {
                        tx.send_replace(now(&s));
                    }
                    Err(_) => return,
                }
            }
        });
        Ok(rx)
    }

    /// The agent's status, whatever its build (it is looked at, not replaced).
    pub async fn status(&self) -> Result<AgentStatus, AgentError> {
        self.met.store(true, std::sync::atomic::Ordering::Relaxed);
        match self.send(&Op::Status).await? {
            (Reply::Status { status }, _) => Ok(*status),
            (other, _) => Err(self.protocol(format!("{other:?} to status"))),
        }
    }

    pub async fn stop(&self) -> Result<Option<Stopped>, AgentError> {
        stop_socket(&self.paths.socket).await
    }
}

/// Frames between the socket and this process's streams until the exit status arrives.
async fn relay(
    conn: BufReader<UnixStream>,
    streams: Streams,
    profile: String,
) -> Result<u32, AgentError> {
    let (mut from_agent, mut to_agent) = tokio::io::split(conn);
    let Streams {
        mut input, output, ..
    } = streams;
    let sending = tokio::spawn(async move {
        while let Some(i) = input.recv().await {
            let f = match i {
                Input::Data(d) => Frame::Stdin(d),
                Input::Eof => Frame::StdinEof,
                Input::Resize { cols, rows } => Frame::Resize { cols, rows },
            };
            if proto::write_frame(&mut to_agent, &f).await.is_err() {
                return;
            }
        }
    });
    let lost = || AgentError::Lost {
        profile: profile.clone(),
    };
    let result = loop {
        let sent = match proto::read_frame(&mut from_agent).await {
            Ok(Some(Frame::Stdout(d))) => output.send(Output::Stdout(d)).await,
            Ok(Some(Frame::Stderr(d))) => output.send(Output::Stderr(d)).await,
            Ok(Some(Frame::Exit(status))) => break Ok(status),
            Ok(Some(Frame::Failed { status, message })) => {
                break Err(AgentError::Relayed { message, status });
            }
            Ok(Some(_)) | Ok(None) | Err(_) => break Err(lost()),
        };
        if sent.is_err() {
            // This side's writer failed; its error is the one reported.
            break Err(lost());
        }
    };
    sending.abort();
    result
}

impl Agent {
    /// Asks for a connection to `host:port` (`dial` or `carry`): the agent's connection once
    /// it is ready.
    async fn ask_to_dial(
        &self,
        op: Op,
        host: &str,
        port: u16,
    ) -> Result<BufReader<UnixStream>, DialError> {
        let no_session = |reason: String| DialError::NoSession {
            target: dial::target(host, port),
            reason,
        };
        match self.ask(op).await {
            Ok((Reply::Ready, conn)) => Ok(conn),
            Ok((Reply::DialFailed { error }, _)) => Err(DialError::from(error)),
            Ok((other, _)) => Err(no_session(
                self.protocol(format!("{other:?} to dial")).to_string(),
            )),
            Err(e) => Err(no_session(e.to_string())),
        }
    }
}

impl Dialer for Agent {
    fn connect<'a>(&'a self, host: &'a str, port: u16) -> DialFuture<'a> {
        Box::pin(async move {
            let op = Op::Dial {
                host: host.to_string(),
                port,
            };
            let conn = self.ask_to_dial(op, host, port).await?;
            Ok(Box::new(conn) as BoxStream)
        })
    }

    fn describe(&self) -> String {
        let s = &self.profile.settings;
        format!("bastion {}", dial::target(&s.host.0, s.port.0))
    }

    /// Carried by the agent when it speaks `carry`, else a stream through it.
    fn open<'a>(&'a self, host: &'a str, port: u16) -> OpenFuture<'a> {
        Box::pin(async move {
            if self.protocol.load(std::sync::atomic::Ordering::Relaxed) < proto::CARRY_SINCE {
                return self.connect(host, port).await.map(Opened::Stream);
            }
            let op = Op::Carry {
                host: host.to_string(),
                port,
            };
            let conn = self.ask_to_dial(op, host, port).await?;
            Ok(Opened::Carried(Box::new(CarriedByAgent { conn })))
        })
    }
}

/// A connection the agent opened and copies once handed the client's socket.
struct CarriedByAgent {
    conn: BufReader<UnixStream>,
}

impl Carried for CarriedByAgent {
    fn carry<'a>(
        self: Box<Self>,
        client: TcpStream,
        how: Carry,
        counted: Counted<'a>,
    ) -> CarryFuture<'a> {
        Box::pin(async move {
            let mut conn = self.conn;
            super::handover::send(conn.get_ref(), &client).await?;
            // The agent's copy is the connection now: ours closed, its end is the agent's.
            drop(client);
            proto::write_line(conn.get_mut(), &how).await?;
            let mut told = (0, 0);
            loop {
                let (sent, received, error) = match proto::read_line(&mut conn).await? {
                    Some(Reply::Counted { sent, received }) => (sent, received, None),
                    Some(Reply::Carried {
                        sent,
                        received,
                        error,
                    }) => (sent, received, Some(error)),
                    Some(other) => {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("{other:?} from the agent carrying a connection"),
                        ));
                    }
                    None => {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionAborted,
                            "the agent went away while carrying the connection",
                        ));
                    }
                };
                counted(sent.saturating_sub(told.0), received.saturating_sub(told.1));
                told = (sent.max(told.0), received.max(told.1));
                match error {
                    None => {}
                    Some(None) => return Ok((sent, received)),
                    Some(Some(e)) => return Err(std::io::Error::other(e)),
                }
            }
        })
    }
}

/// How a command reaches the bastion: through the profile's agent, or its own connection
/// (`--no-agent`, `persist = 0`). Both run commands and dial the same way.
#[derive(Clone)]
pub enum Remote {
    Agent(Agent),
    Direct(Bastion),
}

impl Remote {
    /// The agent (started when needed) when the profile wants one, else a direct connection.
    pub async fn connect(profile: &Resolved, no_agent: bool) -> Result<Remote, AgentError> {
        crate::ssh::report_certificates(profile);
        if super::wanted(profile, no_agent) {
            let paths = Paths::for_profile(profile)?;
            match paths.too_long() {
                None => return Ok(Remote::Agent(connect_or_start(profile).await?)),
                Some(reason) => eprintln!(
                    "paragon-admin: {reason}: connecting directly, without the agent (set XDG_RUNTIME_DIR to a shorter folder to keep the connection)"
                ),
            }
        }
        Ok(Remote::Direct(Bastion::connect(profile).await?))
    }

    /// `command`'s output with `input` as its stdin, on either path.
    pub async fn capture_input(&self, command: &str, input: &[u8]) -> Result<Captured, AgentError> {
        match self {
            Remote::Agent(a) => a.capture_input(command, input).await,
            Remote::Direct(b) => Ok(b.exec_capture_input(command, input).await?),
        }
    }

    /// `Bastion::run` on either path.
    pub async fn run(&self, request: Request<'_>, pty: Option<Pty>) -> Result<u32, AgentError> {
        match self {
            Remote::Agent(a) => a.run(request, pty).await,
            Remote::Direct(b) => Ok(b.run(request, pty).await?),
        }
    }

    pub fn dialer(&self) -> Arc<dyn Dialer> {
        match self {
            Remote::Agent(a) => Arc::new(a.clone()),
            Remote::Direct(b) => Arc::new(b.clone()),
        }
    }

    /// Makes sure the bastion answers, as the direct connection just proved it does. Through
    /// the agent: listing its forwards is the cheapest question on which it checks our
    /// settings (an agent of other settings is replaced, and the new one connects or fails as
    /// a direct connection would); its status then says whether its session is up. Only a
    /// session found down costs a command on the bastion (a process started there, a few
    /// hundred milliseconds on a loaded machine), which has the agent reconnect at once or
    /// say why it cannot, with a direct connection's status.
    pub async fn check_session(&self) -> Result<(), AgentError> {
        let Remote::Agent(a) = self else {
            return Ok(());
        };
        a.forwards().await?;
        if a.status().await?.connected {
            return Ok(());
        }
        a.capture("true").await.map(drop)
    }
}

impl Capture for Agent {
    fn capture<'a>(&'a self, command: &'a str, reuse: Duration) -> CaptureFuture<'a> {
        Box::pin(async move {
            match reuse.is_zero() {
                true => Agent::capture(self, command).await,
                false => self.capture_reusing(command, reuse).await,
            }
            .map_err(CaptureError::new)
        })
    }
}

impl Capture for Remote {
    fn capture<'a>(&'a self, command: &'a str, reuse: Duration) -> CaptureFuture<'a> {
        match self {
            Remote::Agent(a) => Capture::capture(a, command, reuse),
            // A connection of this process runs the command every time.
            Remote::Direct(b) => {
                Box::pin(async move { b.exec_capture(command).await.map_err(CaptureError::new) })
            }
        }
    }
}

/// The socket folder, for messages.
pub fn folder() -> Result<PathBuf, AgentError> {
    super::paths::folder()
}
