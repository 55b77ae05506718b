//! The agent process (`paragon-admin agent run`): connects once (prompting on the terminal it
//! was started from when it must), binds its socket, tells the starting command "ready" on
//! stdout, then leaves the terminal (new session, stdio to /dev/null and its log) and serves
//! requests until idle for `persist`, stopped, or its socket is removed.
//!
//! Every connection's peer uid is checked (SO_PEERCRED): another user gets nothing, not even
//! a reply. Every request but `status` and `stop` carries the settings' fingerprint, and one
//! made with other settings is answered `mismatch`.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::Resolved;
use crate::dial::Dialer;
use crate::exit::ExitStatus;
use crate::kube::portforward::Protocols;
use crate::reconnect::Backoff;
use crate::ssh::exec::{Captured, Request as SshRequest};
use crate::ssh::session::{Input, Output, Streams};
use crate::ssh::shell::Pty;
use crate::ssh::{Bastion, TcpChannel};

use super::forwards::Registry;
use super::keeper::{Keeper, KeptDialer, WAIT_FOR_SESSION};
use super::paths::{self, Paths};
use super::proto::{self, AgentStatus, Frame, Op, Reply, Startup};
use super::uses::Uses;

/// How long a client may take to send its request line.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// Copy buffer per direction of a dialed stream, as a forward's own connections have.
const DIAL_BUFFER: usize = 64 * 1024;

struct Agent {
    profile: Arc<Resolved>,
    fingerprint: String,
    keeper: Arc<Keeper>,
    uses: Uses,
    forwards: Registry,
    started: jiff::Timestamp,
    persist: Duration,
    stop: CancellationToken,
    socket: std::path::PathBuf,
    /// The socket file we bound: removed on exit only while it is still ours.
    inode: Option<u64>,
    /// This agent's build and protocol, as its hello names them.
    build: String,
    protocol: u32,
    /// Successful captures asked to be reused, by command: when, on which session
    /// (`Keeper::generation`), and the answer. In memory only (a kubeconfig holds credentials).
    captured: Mutex<HashMap<String, (Instant, u64, Captured)>>,
}

/// Runs the agent for `profile`; the result is the process's exit status. Until "ready" its
/// errors go to the starting command (on stdout, as a `Startup` line), which prints them.
pub async fn run(profile: Resolved) -> u8 {
    let paths = match Paths::for_profile(&profile) {
        Ok(p) => p,
        Err(e) => return startup_failed(e.exit_status(), &crate::exit::Error::from(e)),
    };
    let bastion = match Bastion::connect(&profile).await {
        Ok(b) => b,
        Err(e) => return startup_failed(e.exit_status(), &crate::exit::Error::from(e)),
    };
    let listener = match bind(&paths).await {
        Ok(l) => l,
        Err(e) => return startup_failed(crate::exit::FAILED, &e),
    };
    tell(&Startup::Ready {
        pid: std::process::id(),
    });
    if let Err(e) = detach(&paths.log) {
        warn!("cannot leave the terminal: {e}");
    }
    info!(profile = %profile.name, bastion = bastion.target(), "agent ready");
    let stop = CancellationToken::new();
    let profile = Arc::new(profile);
    let agent = Arc::new(Agent {
        fingerprint: super::fingerprint(&profile),
        keeper: Keeper::start(bastion, profile.clone(), Backoff::default(), stop.clone()),
        uses: Uses::default(),
        forwards: Registry::default(),
        started: jiff::Timestamp::now(),
        persist: profile.settings.persist.0,
        profile,
        inode: paths::inode(&paths.socket),
        socket: paths.socket,
        stop,
        build: proto::build(),
        protocol: protocol(),
        captured: Mutex::default(),
    });
    tokio::spawn(stop_on_signal(agent.stop.clone()));
    tokio::spawn(leave_when_closed(agent.clone()));
    tokio::spawn(leave_when_idle(agent.clone()));
    serve(&agent, listener).await;
    0
}

/// Binds the socket, replacing a stale one (the starting command holds the start lock, so a
/// socket nobody answers on is stale), mode 0600.
async fn bind(paths: &Paths) -> Result<UnixListener, String> {
    if UnixStream::connect(&paths.socket).await.is_ok() {
        return Err(format!(
            "an agent already answers on {}",
            paths.socket.display()
        ));
    }
    match std::fs::remove_file(&paths.socket) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!("cannot remove {}: {e}", paths.socket.display()));
        }
        _ => {}
    }
    let listener = UnixListener::bind(&paths.socket)
        .map_err(|e| format!("cannot listen on {}: {e}", paths.socket.display()))?;
    // The folder is 0700 already; the socket's own mode says the same to anyone who looks.
    std::fs::set_permissions(&paths.socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot restrict {}: {e}", paths.socket.display()))?;
    Ok(listener)
}

fn startup_failed(status: u8, message: &dyn std::fmt::Display) -> u8 {
    tell(&Startup::Failed {
        message: message.to_string(),
        status,
    });
    status
}

/// One line to the starting command.
fn tell(s: &Startup) {
    let mut out = std::io::stdout().lock();
    if let Ok(line) = serde_json::to_string(s) {
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// SIGTERM (and SIGINT) stop the agent as `agent stop` does: its socket removed, its
/// forwards closed.
async fn stop_on_signal(stop: CancellationToken) {
    match crate::signals::Shutdown::install() {
        Ok(mut shutdown) => {
            tokio::select! {
                () = shutdown.requested() => {
                    info!("asked to stop by a signal");
                    stop.cancel();
                }
                () = stop.cancelled() => {}
            }
        }
        Err(e) => warn!("cannot watch for SIGTERM: {e}"),
    }
}

/// Leaves the starting command's terminal and session: stdin and stdout to /dev/null, stderr
/// (the log, appended to: an earlier agent's lines are the one trace of why it ended) to `log`, and a session of our own so its hangup and Ctrl-C do not reach us.
fn detach(log: &Path) -> std::io::Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    rustix::stdio::dup2_stdin(&null)?;
    rustix::stdio::dup2_stdout(&null)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(log)?;
    rustix::stdio::dup2_stderr(&log)?;
    rustix::process::setsid()?;
    Ok(())
}

async fn serve(agent: &Arc<Agent>, listener: UnixListener) {
    loop {
        let accepted = tokio::select! {
            () = agent.stop.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, _)) => {
                if !peer_is_us(&stream) {
                    warn!("refused a connection from another user");
                    continue;
                }
                tokio::spawn(handle(agent.clone(), stream));
            }
            Err(e) => {
                // Out of descriptors, most likely: do not spin.
                warn!("accept on the agent socket failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    remove_socket(agent);
    agent.forwards.stop(None).await;
    info!("agent stopped");
}

fn peer_is_us(stream: &UnixStream) -> bool {
    stream.peer_cred().is_ok_and(|c| c.uid() == paths::uid())
}

fn remove_socket(agent: &Agent) {
    if agent.inode.is_some() && paths::inode(&agent.socket) == agent.inode {
        let _ = std::fs::remove_file(&agent.socket);
    }
}

/// When the session closes for good (the bastion's host key changed or was revoked): the
/// socket goes first (the next command connects anew and is refused as a direct connection
/// is, on its own terminal), the detached forwards are closed, the clients still connected
/// get their answers (the same refusal), and the agent leaves.
async fn leave_when_closed(agent: Arc<Agent>) {
    let mut state = agent.keeper.watch();
    let why = tokio::select! {
        () = agent.stop.cancelled() => return,
        s = state.wait_for(|s| matches!(s, crate::reconnect::State::Closed(_))) => match s {
            Ok(s) => match &*s {
                crate::reconnect::State::Closed(f) => f.clone(),
                _ => return,
            },
            Err(_) => return,
        },
    };
    if agent.stop.is_cancelled() || !why.fatal {
        return;
    }
    warn!("{why}: closing the detached forwards and leaving");
    remove_socket(&agent);
    agent.forwards.stop(None).await;
    // Clients that watch the session or wait on it are told by now or very soon; bounded.
    let mut uses = agent.uses.subscribe();
    let _ = tokio::time::timeout(Duration::from_secs(3), uses.wait_for(|n| *n == 0)).await;
    agent.stop.cancel();
}

/// Stops the agent `persist` after its last use, or as soon as its socket is gone (removed,
/// or replaced by another agent's).
async fn leave_when_idle(agent: Arc<Agent>) {
    let mut uses = agent.uses.subscribe();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut last_use = Instant::now();
    loop {
        tokio::select! {
            () = agent.stop.cancelled() => return,
            _ = tick.tick() => {}
            _ = uses.changed() => last_use = Instant::now(),
        }
        if *uses.borrow() > 0 {
            last_use = Instant::now();
        } else if last_use.elapsed() >= agent.persist {
            info!("idle for {}s: leaving", agent.persist.as_secs());
            agent.stop.cancel();
            return;
        }
        if paths::inode(&agent.socket) != agent.inode {
            info!("the socket was removed: leaving");
            agent.stop.cancel();
            return;
        }
    }
}

/// Overrides the protocol this agent speaks, for tests: 0 behaves as builds before the hello
/// did (a hello line is taken for a request it cannot read, and the connection closed).
const PROTOCOL_ENV: &str = "PARAGON_ADMIN_AGENT_PROTOCOL";

fn protocol() -> u32 {
    std::env::var(PROTOCOL_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(proto::PROTOCOL)
}

/// The next line of a client, within `REQUEST_DEADLINE`.
async fn read_request_line(conn: &mut BufReader<UnixStream>) -> Option<serde_json::Value> {
    match tokio::time::timeout(REQUEST_DEADLINE, proto::read_line(conn)).await {
        Ok(Ok(Some(v))) => Some(v),
        Ok(Err(e)) => {
            debug!("bad request: {e}");
            None
        }
        _ => None,
    }
}

async fn handle(agent: Arc<Agent>, stream: UnixStream) {
    let _use = agent.uses.hold();
    let mut conn = BufReader::new(stream);
    let Some(mut line) = read_request_line(&mut conn).await else {
        return;
    };
    let said_hello = line.get("hello").is_some();
    if let Some(hello) = line.get("hello") {
        debug!(client = %hello, "hello");
        if agent.protocol == 0 {
            return;
        }
        let ours = proto::HelloLine {
            hello: proto::Hello {
                protocol: agent.protocol,
                build: agent.build.clone(),
                pid: std::process::id(),
            },
        };
        if proto::write_line(conn.get_mut(), &ours).await.is_err() {
            return;
        }
        let Some(next) = read_request_line(&mut conn).await else {
            return;
        };
        line = next;
    }
    // Every request gets an answer: one this build does not know, an error saying so.
    let request: proto::Request = match serde_json::from_value(line.clone()) {
        Ok(r) => r,
        Err(e) => {
            let op = proto::op_name(&line);
            info!("a request this build does not know: `{op}` ({e})");
            let message = format!(
                "the agent of profile {} (build {}) does not know the request `{op}`: run `paragon-admin agent stop` to have this build start a new one",
                agent.profile.name, agent.build
            );
            let failed = Reply::Failed {
                message,
                status: crate::exit::FAILED,
            };
            let _ = reply(&mut conn, &failed).await;
            return;
        }
    };
    let result = match request.op {
        Op::Stop => {
            // Gone from the folder before the answer: the next command starts a new agent.
            remove_socket(&agent);
            let r = reply(&mut conn, &Reply::Stopped { count: 1 }).await;
            agent.stop.cancel();
            r
        }
        Op::Status => {
            let status = Box::new(status(&agent).await);
            reply(&mut conn, &Reply::Status { status }).await
        }
        _ if request.fingerprint != agent.fingerprint => reply(&mut conn, &Reply::Mismatch).await,
        // Ops that use the session: known_hosts read now, so a key revoked a moment ago is
        // refused as a direct connection would refuse it (the keeper looks every second).
        _ if let Some(f) = agent.keeper.distrusted() => {
            let failed = Reply::Failed {
                message: f.message,
                status: f.status,
            };
            reply(&mut conn, &failed).await
        }
        Op::Watch => watch(&agent, conn).await,
        Op::Dial { host, port } => dial(&agent, conn, &host, port).await,
        Op::Carry { host, port } => carry(&agent, conn, &host, port).await,
        Op::Capture { command, reuse_ms } => {
            let answer = capture(&agent, command, Duration::from_millis(reuse_ms)).await;
            answer_capture(conn, answer, said_hello).await
        }
        Op::Exec { command, pty } => {
            let pty = pty.map(|p| Pty {
                term: p.term,
                cols: p.cols,
                rows: p.rows,
            });
            exec(&agent, conn, command, pty).await
        }
        Op::Forward {
            forwards,
            bind,
            api,
        } => {
            let forwards = forwards.into_iter().map(Into::into).collect();
            let answer = match routed_dialer(&agent, api).await {
                Ok((dialer, api, protocols)) => match agent
                    .forwards
                    .ensure(forwards, bind, dialer, (&api, &protocols), &agent.uses)
                    .await
                {
                    Ok(forwards) => Reply::Forwards { forwards },
                    Err((message, status)) => Reply::Failed { message, status },
                },
                Err(e) => Reply::Failed {
                    status: e.exit_status(),
                    message: format!("the API route: {e}"),
                },
            };
            reply(&mut conn, &answer).await
        }
        Op::Forwards => {
            let forwards = agent.forwards.list().await;
            reply(&mut conn, &Reply::Forwards { forwards }).await
        }
        Op::StopForward { name } => {
            let count = agent.forwards.stop(name.as_deref()).await;
            reply(&mut conn, &Reply::Stopped { count }).await
        }
    };
    if let Err(e) = result {
        debug!("a client went away: {e}");
    }
}

/// `command`'s captured output: the answer kept from the current session if younger than
/// `reuse`, else a fresh run (kept when it succeeded and `reuse` is not zero). The kept
/// answers are locked only to be read or stored, never across a run on the bastion: one hung
/// `kubectl` there blocks no later command.
async fn capture(
    agent: &Agent,
    command: String,
    reuse: Duration,
) -> Result<Captured, (String, u8)> {
    let bastion = agent.keeper.bastion(WAIT_FOR_SESSION).await?;
    let epoch = agent.keeper.generation();
    let kept = {
        let mut captured = agent.captured.lock().await;
        captured.retain(|_, (at, e, _)| *e == epoch && at.elapsed() < MAX_REUSE);
        captured
            .get(&command)
            .filter(|(at, _, _)| at.elapsed() < reuse)
            .map(|(_, _, c)| c.clone())
    };
    // Reused only while the session answers: a bastion just gone must fail as it would
    // directly, not be papered over by an old answer.
    if let Some(c) = kept
        && bastion.answers(ANSWER_WAIT).await
    {
        return Ok(c);
    }
    let (c, epoch) = match run_capture(&bastion, &command).await {
        // The session went away under the command (a bastion just stopped or restarted, not
        // yet noticed): answer as a command connecting now would, with the next session or
        // with why there is none ("connection refused" rather than "was lost").
        Err(_) if bastion.is_closed() => {
            let again = agent.keeper.bastion(WAIT_FOR_SESSION).await?;
            let epoch = agent.keeper.generation();
            (run_capture(&again, &command).await?, epoch)
        }
        r => (r?, epoch),
    };
    if c.status == 0 && !reuse.is_zero() {
        let mut captured = agent.captured.lock().await;
        captured.insert(command, (Instant::now(), epoch, c.clone()));
    }
    Ok(c)
}

/// The longest a captured command may run on the bastion.
const CAPTURE_DEADLINE: Duration = Duration::from_secs(60);

/// The most output a capture keeps (stdout and stderr together): a kubeconfig with a large
/// CA bundle is a few hundred KB; a runaway command must not grow the agent without end.
pub const CAPTURE_MAX: usize = 16 * 1024 * 1024;

/// Runs `command` with no stdin on the exec path's streams, its output collected up to
/// `CAPTURE_MAX`, within `CAPTURE_DEADLINE`.
async fn run_capture(bastion: &Bastion, command: &str) -> Result<Captured, (String, u8)> {
    let (input, input_rx) = mpsc::channel(1);
    let (output_tx, mut output) = mpsc::channel(64);
    let streams = Streams {
        input: input_rx,
        output: output_tx,
        gone: CancellationToken::new(),
    };
    let _ = input.send(Input::Eof).await;
    let running = bastion.stream(SshRequest::ExecBytes(command.as_bytes()), None, streams);
    // Ends early (and so ends the command: its output has nowhere to go) past the cap.
    let collecting = async move {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        while let Some(o) = output.recv().await {
            match o {
                Output::Stdout(d) => stdout.extend_from_slice(&d),
                Output::Stderr(d) => stderr.extend_from_slice(&d),
            }
            if stdout.len() + stderr.len() > CAPTURE_MAX {
                return None;
            }
        }
        Some((stdout, stderr))
    };
    let both = async { tokio::join!(running, collecting) };
    let failed = |message: String| (message, crate::exit::FAILED);
    match tokio::time::timeout(CAPTURE_DEADLINE, both).await {
        Err(_) => Err(failed(format!(
            "`{command}` on the bastion gave no answer within {}s",
            CAPTURE_DEADLINE.as_secs()
        ))),
        Ok((_, None)) => Err(failed(format!(
            "`{command}` on the bastion printed more than {} MiB",
            CAPTURE_MAX / (1024 * 1024)
        ))),
        Ok((Err(e), _)) => {
            let status = e.exit_status();
            Err((crate::exit::Error::from(e).to_string(), status))
        }
        Ok((Ok(status), Some((stdout, stderr)))) => Ok(Captured {
            status,
            stdout,
            stderr,
        }),
    }
}

/// A capture's answer as the client asked for it: streamed in frames after `ready` (clients
/// that said hello), or one `captured` line (clients of builds before the hello).
async fn answer_capture(
    mut conn: BufReader<UnixStream>,
    answer: Result<Captured, (String, u8)>,
    streamed: bool,
) -> std::io::Result<()> {
    let c = match answer {
        Ok(c) => c,
        Err((message, status)) => {
            return reply(&mut conn, &Reply::Failed { message, status }).await;
        }
    };
    if !streamed {
        let line = Reply::Captured {
            status: c.status,
            stdout: c.stdout,
            stderr: c.stderr,
        };
        return reply(&mut conn, &line).await;
    }
    reply(&mut conn, &Reply::Ready).await?;
    let w = conn.get_mut();
    for chunk in c.stdout.chunks(FRAME_CHUNK) {
        proto::write_frame(w, &Frame::Stdout(chunk.to_vec())).await?;
    }
    for chunk in c.stderr.chunks(FRAME_CHUNK) {
        proto::write_frame(w, &Frame::Stderr(chunk.to_vec())).await?;
    }
    proto::write_frame(w, &Frame::Exit(c.status)).await?;
    w.shutdown().await
}

/// Output frames carry at most this much, as the exec path's do.
const FRAME_CHUNK: usize = 32 * 1024;

/// How long a reused answer waits for the session to prove it is alive.
const ANSWER_WAIT: Duration = Duration::from_secs(5);

/// The longest a captured answer is kept, whatever a request asks.
const MAX_REUSE: Duration = Duration::from_secs(300);

/// The kept session as the forwards' dialer, with the API route's targets sent through
/// `pods/portforward` over it (a kube client of its own, dialing the API server through the
/// kept session, so it follows the agent's reconnects), with their pods' tunnels opened
/// ahead of the first connection.
async fn routed_dialer(
    agent: &Agent,
    api: Option<Box<proto::ApiRoute>>,
) -> Result<(Arc<dyn Dialer>, HashSet<(String, u16)>, Protocols), crate::kube::KubeError> {
    let kept: Arc<dyn Dialer> = Arc::new(KeptDialer(agent.keeper.clone()));
    let Some(api) = api.map(|a| *a) else {
        return Ok((kept, HashSet::new(), Protocols::default()));
    };
    let targets: HashSet<(String, u16)> = api.targets.into_iter().collect();
    let plan = crate::forward::route::Plan {
        kubeconfig: api.kubeconfig,
        options: crate::kube::Options {
            context: api.context,
            api_server: api.api_server,
        },
        namespace: api.namespace,
        api_targets: Arc::new(targets.clone()),
        protocols: Protocols::default(),
    };
    let session = crate::forward::Session {
        dialer: kept,
        ended: Box::pin(std::future::pending()),
    };
    let (routed, _) = plan.route_prepared(session).await?;
    Ok((routed.dialer, targets, plan.protocols))
}

async fn reply(conn: &mut BufReader<UnixStream>, r: &Reply) -> std::io::Result<()> {
    proto::write_line(conn.get_mut(), r).await
}

async fn status(agent: &Agent) -> AgentStatus {
    let current = agent.keeper.current();
    let channels = current.as_ref().map(Bastion::channel_counts);
    AgentStatus {
        profile: agent.profile.name.clone(),
        config: agent.profile.file.display().to_string(),
        version: agent.build.clone(),
        protocol: agent.protocol,
        // Read now, not at start: a binary replaced on disk since shows as `(deleted)`.
        executable: std::fs::read_link("/proc/self/exe")
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        bastion: agent.keeper.target().to_string(),
        pid: std::process::id(),
        up_since: agent.started.to_string(),
        reconnects: agent.keeper.reconnects(),
        renewals: agent.keeper.renewals(),
        connected: current.is_some(),
        channels_open: channels.map_or(0, |c| c.open),
        channels_held: channels.map_or(0, |c| c.held),
        persist_secs: agent.persist.as_secs(),
        forwards: agent.forwards.list().await,
        certificate: agent.keeper.certificate_expiry(),
    }
}

/// The kept session's state now and at every change, one `session` line each, until the
/// client goes or the session closes for good.
async fn watch(agent: &Agent, mut conn: BufReader<UnixStream>) -> std::io::Result<()> {
    let mut rx = agent.keeper.watch();
    let mut ignored = Vec::new();
    loop {
        let session = match &*rx.borrow_and_update() {
            // The agent stopping (not a fatal failure): the client sees it go, and starts
            // another.
            crate::reconnect::State::Closed(f) if !f.fatal => return Ok(()),
            s => proto::WireSession::from(s),
        };
        let closed = matches!(session, proto::WireSession::Closed { .. });
        reply(&mut conn, &Reply::Session { session }).await?;
        if closed {
            return Ok(());
        }
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
            }
            // The client sends nothing more: its end (or EOF) ends the watch.
            _ = tokio::io::AsyncReadExt::read_buf(&mut conn, &mut ignored) => return Ok(()),
        }
    }
}

/// A `direct-tcpip` channel to `host:port` on the kept session, "ready" said; `None` when
/// there is none, the client told why (no session, or the bastion's refusal).
async fn open_channel(
    agent: &Agent,
    conn: &mut BufReader<UnixStream>,
    host: &str,
    port: u16,
) -> std::io::Result<Option<TcpChannel>> {
    let bastion = match agent.keeper.bastion(WAIT_FOR_SESSION).await {
        Ok(b) => b,
        Err((message, status)) => {
            reply(conn, &Reply::Failed { message, status }).await?;
            return Ok(None);
        }
    };
    match bastion.open_channel(host, port).await {
        Ok(channel) => {
            reply(conn, &Reply::Ready).await?;
            Ok(Some(channel))
        }
        Err(e) => {
            let error = (&e).into();
            reply(conn, &Reply::DialFailed { error }).await?;
            Ok(None)
        }
    }
}

/// After "ready", the connection is the stream of one `direct-tcpip` channel.
async fn dial(
    agent: &Agent,
    mut conn: BufReader<UnixStream>,
    host: &str,
    port: u16,
) -> std::io::Result<()> {
    let Some(mut channel) = open_channel(agent, &mut conn, host, port).await? else {
        return Ok(());
    };
    // Whatever the client sent after its request line is the stream's first bytes.
    let early = conn.buffer().to_vec();
    let (from_client, to_client) = conn.into_inner().into_split();
    // The forward's own buffer size for the upload: with tokio's default (8 KiB) this extra
    // hop cost a third of a foreground forward's download rate; the download is written from
    // the received packets themselves (scripts/bench-forward.sh).
    let from_client = tokio::io::AsyncReadExt::chain(&early[..], from_client);
    channel.relay(from_client, to_client, DIAL_BUFFER).await?;
    Ok(())
}

/// How long a client has, after "ready", to hand its socket over and say how to copy.
const HANDOVER_DEADLINE: Duration = Duration::from_secs(10);

/// How often a carried connection's counts are told while bytes pass.
const COUNT_EVERY: Duration = Duration::from_millis(250);

/// After "ready", the client's socket arrives and the agent copies between it and the
/// `direct-tcpip` channel itself, as the forward would have (`forward::relay::copy`), telling
/// the counts as they grow and the totals at the end. The client closing its connection ends
/// the copy (its forward stopped).
async fn carry(
    agent: &Agent,
    mut conn: BufReader<UnixStream>,
    host: &str,
    port: u16,
) -> std::io::Result<()> {
    let Some(channel) = open_channel(agent, &mut conn, host, port).await? else {
        return Ok(());
    };
    let (mut client, how) = tokio::time::timeout(HANDOVER_DEADLINE, async {
        if !conn.buffer().is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "bytes before the handed-over socket",
            ));
        }
        let fd = super::handover::receive(conn.get_ref()).await?;
        let how: crate::dial::Carry = proto::read_line(&mut conn)
            .await?
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        let client = std::net::TcpStream::from(fd);
        client.set_nonblocking(true)?;
        Ok((tokio::net::TcpStream::from_std(client)?, how))
    })
    .await
    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let stats = crate::forward::Stats::default();
    let counts = |stats: &crate::forward::Stats| {
        use std::sync::atomic::Ordering::Relaxed;
        (stats.sent.load(Relaxed), stats.received.load(Relaxed))
    };
    let (mut from_client, mut to_client) = conn.into_inner().into_split();
    let copying = crate::forward::copy(&mut client, Box::new(channel), &stats, how);
    tokio::pin!(copying);
    let mut tick = tokio::time::interval(COUNT_EVERY);
    let (mut told, mut byte) = ((0, 0), [0u8; 1]);
    let copied = loop {
        tokio::select! {
            copied = &mut copying => break copied,
            _ = tick.tick() => {
                let now = counts(&stats);
                if now != told {
                    let (sent, received) = now;
                    proto::write_line(&mut to_client, &Reply::Counted { sent, received }).await?;
                    told = now;
                }
            }
            // Anything or nothing from the client now: it went away.
            _ = tokio::io::AsyncReadExt::read(&mut from_client, &mut byte) => return Ok(()),
        }
    };
    let ((sent, received), error) = match copied {
        Ok(totals) => (totals, None),
        Err(e) => (counts(&stats), Some(e.to_string())),
    };
    proto::write_line(
        &mut to_client,
        &Reply::Carried {
            sent,
            received,
            error,
        },
    )
    .await
}

/// After "ready", frames both ways: stdin, its EOF and resizes in; stdout, stderr and the
/// exit status (or the error) out.
async fn exec(
    agent: &Agent,
    mut conn: BufReader<UnixStream>,
    command: Option<Vec<u8>>,
    pty: Option<Pty>,
) -> std::io::Result<()> {
    let bastion = match agent.keeper.bastion(WAIT_FOR_SESSION).await {
        Ok(b) => b,
        Err((message, status)) => {
            return reply(&mut conn, &Reply::Failed { message, status }).await;
        }
    };
    reply(&mut conn, &Reply::Ready).await?;
    let (mut from_client, mut to_client) = tokio::io::split(conn);
    let (input, input_rx) = mpsc::channel(16);
    let (output_tx, mut output) = mpsc::channel(64);
    let gone = CancellationToken::new();
    let reading = tokio::spawn({
        let gone = gone.clone();
        async move {
            loop {
                let i = match proto::read_frame(&mut from_client).await {
                    Ok(Some(Frame::Stdin(d))) => Input::Data(d),
                    Ok(Some(Frame::StdinEof)) => Input::Eof,
                    Ok(Some(Frame::Resize { cols, rows })) => Input::Resize { cols, rows },
                    // The client ended (or spoke nonsense) before the command did.
                    _ => break,
                };
                if input.send(i).await.is_err() {
                    return;
                }
            }
            gone.cancel();
        }
    });
    let writing = tokio::spawn(async move {
        while let Some(o) = output.recv().await {
            let f = match o {
                Output::Stdout(d) => Frame::Stdout(d),
                Output::Stderr(d) => Frame::Stderr(d),
            };
            if proto::write_frame(&mut to_client, &f).await.is_err() {
                return None;
            }
        }
        Some(to_client)
    });
    let request = match &command {
        Some(c) => SshRequest::ExecBytes(c),
        None => SshRequest::Shell,
    };
    let streams = Streams {
        input: input_rx,
        output: output_tx,
        gone,
    };
    let result = bastion.stream(request, pty.as_ref(), streams).await;
    reading.abort();
    let Ok(Some(mut to_client)) = writing.await else {
        return Ok(());
    };
    let last = match result {
        Ok(status) => Frame::Exit(status),
        Err(e) => Frame::Failed {
            status: e.exit_status(),
            message: crate::exit::Error::from(e).to_string(),
        },
    };
    proto::write_frame(&mut to_client, &last).await?;
    to_client.shutdown().await
}
