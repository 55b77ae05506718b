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
use tokio::net::UnixStream;

use crate::config::Resolved;
use crate::dial::{self, BoxStream, DialError, DialFuture, Dialer};
use crate::forward::Forward;
use crate::kube::source::{Capture, CaptureError, CaptureFuture};
use crate::ssh::exec::Request;
use crate::ssh::session::{Input, Output, Streams, on_local_stdio};
use crate::ssh::shell::Pty;
use crate::ssh::{Bastion, Captured};

use super::AgentError;
use super::paths::Paths;
use super::proto::{
    self, AgentStatus, ApiRoute, DetachedForward, Frame, Op, Reply, Startup, WirePty,
};

/// A running agent of one profile.
#[derive(Clone)]
pub struct Agent {
    profile: Arc<Resolved>,
    paths: Paths,
}

/// The profile's agent if one runs; never starts one.
pub async fn find(profile: &Resolved) -> Result<Option<Agent>, AgentError> {
    let agent = Agent::new(profile)?;
    Ok(UnixStream::connect(&agent.paths.socket)
        .await
        .is_ok()
        .then_some(agent))
}

/// The profile's agent, started (and connected to the bastion) when none runs. While it
/// connects it may ask on this terminal (an unknown host key, a passphrase); its connect error
/// comes back with the status a direct connection would have given.
pub async fn connect_or_start(profile: &Resolved) -> Result<Agent, AgentError> {
    let agent = Agent::new(profile)?;
    if UnixStream::connect(&agent.paths.socket).await.is_err() {
        agent.start().await?;
    }
    Ok(agent)
}

/// Stops the agent listening on `socket`, whatever its profile; false when none answered.
pub async fn stop_socket(socket: &Path) -> Result<bool, AgentError> {
    let Ok(stream) = UnixStream::connect(socket).await else {
        return Ok(false);
    };
    let mut conn = BufReader::new(stream);
    let request = proto::Request {
        fingerprint: String::new(),
        op: Op::Stop,
    };
    let io = |cause| AgentError::Socket {
        path: socket.to_path_buf(),
        cause,
    };
    proto::write_line(conn.get_mut(), &request)
        .await
        .map_err(io)?;
    let answer: Option<Reply> = proto::read_line(&mut conn).await.map_err(io)?;
    Ok(matches!(answer, Some(Reply::Stopped { .. })))
}

impl Agent {
    fn new(profile: &Resolved) -> Result<Agent, AgentError> {
        Ok(Agent {
            paths: Paths::for_profile(&profile.name)?,
            profile: Arc::new(profile.clone()),
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
        if UnixStream::connect(&self.paths.socket).await.is_ok() {
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
        let mut stream = UnixStream::connect(&self.paths.socket).await;
        if stream.is_err() {
            // Left since it was found (idle, or stopped): start it again.
            self.start().await?;
            stream = UnixStream::connect(&self.paths.socket).await;
        }
        let mut conn = BufReader::new(stream.map_err(io)?);
        // Taken now, not when found: the agent's first connect may have written known_hosts.
        let request = proto::Request {
            fingerprint: super::fingerprint(&self.profile),
            op: op.clone(),
        };
        proto::write_line(conn.get_mut(), &request)
            .await
            .map_err(io)?;
        match proto::read_line(&mut conn).await {
            Ok(Some(answer)) => Ok((answer, conn)),
            Ok(None) => Err(AgentError::Lost {
                profile: self.profile.name.clone(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(self.protocol(e)),
            Err(e) => Err(io(e)),
        }
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

    /// Runs `command` on the bastion through the agent with no stdin and captures its stdout
    /// and stderr, as `Bastion::exec_capture` does directly: the agent's `Exec`, its output
    /// frames collected here.
    pub async fn capture(&self, command: &str) -> Result<Captured, AgentError> {
        let op = Op::Exec {
            command: Some(command.as_bytes().to_vec()),
            pty: None,
        };
        let mut conn = match self.ask(op).await? {
            (Reply::Ready, conn) => conn,
            (other, _) => return Err(self.protocol(format!("{other:?} to exec"))),
        };
        let lost = || AgentError::Lost {
            profile: self.profile.name.clone(),
        };
        // No stdin, as directly. The socket stays open for writing: the agent takes its end
        // for the client leaving, and would end the command.
        proto::write_frame(conn.get_mut(), &Frame::StdinEof)
            .await
            .map_err(|_| lost())?;
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
        }
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

    pub async fn status(&self) -> Result<AgentStatus, AgentError> {
        match self.send(&Op::Status).await? {
            (Reply::Status { status }, _) => Ok(*status),
            (other, _) => Err(self.protocol(format!("{other:?} to status"))),
        }
    }

    pub async fn stop(&self) -> Result<bool, AgentError> {
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

impl Dialer for Agent {
    fn connect<'a>(&'a self, host: &'a str, port: u16) -> DialFuture<'a> {
        Box::pin(async move {
            let target = dial::target(host, port);
            let op = Op::Dial {
                host: host.to_string(),
                port,
            };
            match self.ask(op).await {
                Ok((Reply::Ready, conn)) => Ok(Box::new(conn) as BoxStream),
                Ok((Reply::DialFailed { error }, _)) => Err(DialError::from(error)),
                Ok((other, _)) => Err(DialError::NoSession {
                    target,
                    reason: self.protocol(format!("{other:?} to dial")).to_string(),
                }),
                Err(e) => Err(DialError::NoSession {
                    target,
                    reason: e.to_string(),
                }),
            }
        })
    }

    fn describe(&self) -> String {
        let s = &self.profile.settings;
        format!("bastion {}", dial::target(&s.host.0, s.port.0))
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
            Ok(Remote::Agent(connect_or_start(profile).await?))
        } else {
            Ok(Remote::Direct(Bastion::connect(profile).await?))
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
