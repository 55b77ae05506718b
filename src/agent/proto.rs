//! What a client and the agent say over the control socket: first a hello each way (the
//! protocol version and the build, as OpenSSH's mux protocol starts, `PROTOCOL.mux`), then one
//! JSON line each way (the request, then the reply), and after that the operation's own
//! bytes: for `dial` the raw stream of one `direct-tcpip` channel, for `carry` the client's
//! socket handed over and then counts, for `exec` frames both ways (`Frame`). A request the agent does not know is answered `failed`, never with silence.
//! Builds before the hello sent the request first; the agent still takes that. Knows nothing
//! of sockets, sessions or processes; only shapes and their encoding.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt,
};

use crate::config::{HostPort, Service};
use crate::dial::DialError;
use crate::forward::{Forward, Target};
use crate::kube::portforward::Route;

/// The longest request or reply line: a forward list of a few hundred entries fits.
const MAX_LINE: usize = 1024 * 1024;
/// The largest frame payload; stdin and output are sent in chunks of at most 32 KiB.
const MAX_FRAME: usize = 1024 * 1024;

/// The protocol this build speaks: 1 added the hello, 2 `carry`. Raised when a request
/// changes shape.
pub const PROTOCOL: u32 = 2;

/// The first protocol whose agent takes `carry` (a client's socket handed over).
pub const CARRY_SINCE: u32 = 2;

/// Overrides this build's name, for tests that need an agent of another build.
const BUILD_ENV: &str = "PARAGON_ADMIN_AGENT_BUILD";

/// This build, as the hello names it: the version and git revision of `--version`.
pub fn build() -> String {
    std::env::var(BUILD_ENV)
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| env!("PARAGON_ADMIN_LONG_VERSION").to_string())
}

/// The first line each way: `{"hello": {...}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HelloLine {
    pub hello: Hello,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    pub build: String,
    /// The agent's process (0 from a client).
    #[serde(default)]
    pub pid: u32,
}

impl Hello {
    pub fn ours(pid: u32) -> Hello {
        Hello {
            protocol: PROTOCOL,
            build: build(),
            pid,
        }
    }
}

/// The operation a request line names, for the answer to one this build does not know.
pub fn op_name(line: &serde_json::Value) -> String {
    line.get("op")
        .and_then(|o| o.get("op"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or("?")
        .to_string()
}

/// One request: the connection settings it was made with (`fingerprint`), and the operation.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub fingerprint: String,
    pub op: Op,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// A TCP stream to `host:port` as seen from the bastion.
    Dial {
        host: String,
        port: u16,
    },
    /// A connection to `host:port` from the bastion that the agent copies to a local client
    /// itself: after "ready", the client's socket comes over (`handover`), then how to copy
    /// (a `Carry` line); the agent answers `counted` lines as bytes pass and `carried` at
    /// the end.
    Carry {
        host: String,
        port: u16,
    },
    /// A command (`None`: the login shell), on a PTY when `pty` is given; then frames.
    Exec {
        command: Option<Vec<u8>>,
        pty: Option<WirePty>,
    },
    /// `command` run with no stdin, its output captured; an answer the agent captured on its
    /// current session within the last `reuse_ms` is given again instead (the bastion's
    /// kubeconfig, fetched by every run of kubectl's credential plugin).
    Capture {
        command: String,
        reuse_ms: u64,
    },
    /// Listen for these forwards (idempotent by name, target and route).
    Forward {
        forwards: Vec<WireForward>,
        bind: IpAddr,
        /// How the targets that take the API route reach it (none: all take the bastion).
        #[serde(default)]
        api: Option<Box<ApiRoute>>,
    },
    /// The detached forwards.
    Forwards,
    /// Close one detached forward, or all (`None`).
    StopForward {
        name: Option<String>,
    },
    Status,
    /// Remove the socket and exit (answered first).
    Stop,
    /// The kept session's state: a `session` line now and at every change, until either
    /// side closes (foreground forwards follow the agent's session this way).
    Watch,
}

/// The kept session's state, as `watch` sends it (`reconnect::State` without the session).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum WireSession {
    Connecting {
        attempt: u32,
    },
    /// Up; `generation` names the session (it changes whenever the session is replaced).
    Up {
        generation: u64,
    },
    Down {
        message: String,
        status: u8,
        attempt: u32,
        retry_in_ms: u64,
    },
    /// For good (a changed or revoked host key, or the agent stopping).
    Closed {
        message: String,
        status: u8,
    },
}

impl<S> From<&crate::reconnect::State<S>> for WireSession {
    fn from(s: &crate::reconnect::State<S>) -> WireSession {
        use crate::reconnect::State;
        match s {
            State::Connecting { attempt } => WireSession::Connecting { attempt: *attempt },
            State::Up { generation, .. } => WireSession::Up {
                generation: *generation,
            },
            State::Down {
                failure,
                attempt,
                retry_in,
            } => WireSession::Down {
                message: failure.message.clone(),
                status: failure.status,
                attempt: *attempt,
                retry_in_ms: u64::try_from(retry_in.as_millis()).unwrap_or(u64::MAX),
            },
            State::Closed(f) => WireSession::Closed {
                message: f.message.clone(),
                status: f.status,
            },
        }
    }
}

/// The agent's answer line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// Go on: the operation's bytes follow.
    Ready,
    /// The kept session's state (`watch`).
    Session {
        session: WireSession,
    },
    /// The agent keeps a session made with other settings: stop it and start another.
    Mismatch,
    /// The operation failed, with the message and exit status a direct run would give.
    Failed {
        message: String,
        status: u8,
    },
    /// A command's exit status and output (`capture`).
    Captured {
        status: u32,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
    /// The bastion refused or could not make the stream (`dial`, `carry`).
    DialFailed {
        error: WireDialError,
    },
    /// A carried connection's bytes so far: sent to the target, received from it.
    Counted {
        sent: u64,
        received: u64,
    },
    /// A carried connection ended: its totals, and how it failed if it did.
    Carried {
        sent: u64,
        received: u64,
        #[serde(default)]
        error: Option<String>,
    },
    Forwards {
        forwards: Vec<DetachedForward>,
    },
    Status {
        status: Box<AgentStatus>,
    },
    /// Done (`stop`, `stop_forward`): `count` things were stopped.
    Stopped {
        count: usize,
    },
}

/// What a starting agent tells the command that started it, on its stdout.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "agent", rename_all = "snake_case")]
pub enum Startup {
    Ready { pid: u32 },
    Failed { message: String, status: u8 },
}

/// The terminal a PTY gets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WirePty {
    pub term: String,
    pub cols: u32,
    pub rows: u32,
}

/// A `DialError` across the socket, its kind kept: SOCKS reply codes and "bastion: cannot
/// resolve X" depend on it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WireDialError {
    Io { target: String, message: String },
    Timeout { target: String, after_ms: u64 },
    Rejected { target: String, reason: String },
    Unresolved { host: String, reason: String },
    NoSession { target: String, reason: String },
}

impl From<&DialError> for WireDialError {
    fn from(e: &DialError) -> Self {
        match e {
            DialError::Io { target, cause } => WireDialError::Io {
                target: target.clone(),
                message: cause.to_string(),
            },
            DialError::Timeout { target, after } => WireDialError::Timeout {
                target: target.clone(),
                after_ms: u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
            },
            DialError::Rejected { target, reason } => WireDialError::Rejected {
                target: target.clone(),
                reason: reason.clone(),
            },
            DialError::Unresolved { host, reason } => WireDialError::Unresolved {
                host: host.clone(),
                reason: reason.clone(),
            },
            DialError::NoSession { target, reason } => WireDialError::NoSession {
                target: target.clone(),
                reason: reason.clone(),
            },
        }
    }
}

impl From<WireDialError> for DialError {
    fn from(e: WireDialError) -> Self {
        match e {
            WireDialError::Io { target, message } => DialError::Io {
                target,
                cause: std::io::Error::other(message),
            },
            WireDialError::Timeout { target, after_ms } => DialError::Timeout {
                target,
                after: Duration::from_millis(after_ms),
            },
            WireDialError::Rejected { target, reason } => DialError::Rejected { target, reason },
            WireDialError::Unresolved { host, reason } => DialError::Unresolved { host, reason },
            WireDialError::NoSession { target, reason } => DialError::NoSession { target, reason },
        }
    }
}

/// A `Forward` across the socket, its service (for the URL) included.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireForward {
    pub name: String,
    /// `None`: a SOCKS proxy.
    pub target: Option<(String, u16)>,
    pub local_port: u16,
    pub service: Option<Service>,
}

impl From<&Forward> for WireForward {
    fn from(f: &Forward) -> Self {
        WireForward {
            name: f.name.clone(),
            target: match &f.target {
                Target::Tunnel { host, port } => Some((host.clone(), *port)),
                Target::Socks => None,
            },
            local_port: f.local_port,
            service: f.service.clone(),
        }
    }
}

impl From<WireForward> for Forward {
    fn from(f: WireForward) -> Self {
        Forward {
            name: f.name,
            target: match f.target {
                Some((host, port)) => Target::Tunnel { host, port },
                None => Target::Socks,
            },
            local_port: f.local_port,
            service: f.service,
        }
    }
}

/// The API route of detached forwards: the kubeconfig the client chose (the bastion's own
/// is fetched by the client; it crosses the socket, never a file), and the targets that take
/// it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiRoute {
    pub kubeconfig: kube::config::Kubeconfig,
    pub context: Option<String>,
    pub api_server: Option<HostPort>,
    /// Where bare Service names are looked up.
    pub namespace: String,
    pub targets: Vec<(String, u16)>,
}

/// A forward the agent listens for: what `forward` prints when it starts listening.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetachedForward {
    pub name: String,
    pub local: SocketAddr,
    /// `HOST:PORT` as seen from the bastion; `None` for a SOCKS proxy.
    pub target: Option<String>,
    pub url: String,
    /// Through the bastion, or the Kubernetes API.
    #[serde(default)]
    pub route: Route,
    /// On the API route: how its connections travel (the tunnel, or one WebSocket each).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<crate::kube::portforward::Protocol>,
    /// Connections accepted so far, and open now.
    pub connections: u64,
    pub open: u64,
    /// Bytes towards the target, and back.
    pub sent: u64,
    pub received: u64,
    /// In the answer to `forward`: it was live as asked already and is kept as it is
    /// (`already`), or it replaced one of the same name that listened on `replaced`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub already: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced: Option<SocketAddr>,
}

/// What `agent status` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentStatus {
    pub profile: String,
    /// The config file the profile was read from (empty from builds before it was told).
    #[serde(default)]
    pub config: String,
    /// The agent's build (`--version`) and protocol (empty and 0 from builds before the hello).
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub protocol: u32,
    /// The program the agent runs (`(deleted)` once it was replaced on disk).
    #[serde(default)]
    pub executable: String,
    pub bastion: String,
    pub pid: u32,
    /// When the agent started, RFC 3339.
    pub up_since: String,
    /// Sessions re-established after the bastion went away.
    pub reconnects: u64,
    /// Sessions replaced while up: idle ones holding too many closed channels, and ones whose
    /// key is checked again after known_hosts changed.
    #[serde(default)]
    pub renewals: u64,
    /// Whether a session is up now.
    pub connected: bool,
    /// Channels of the current session: `direct-tcpip` ones open, and channels closed on our
    /// side first whose state the session keeps (see `ssh::channel`).
    pub channels_open: u64,
    pub channels_held: u64,
    /// How long the agent stays after its last use, in seconds.
    pub persist_secs: u64,
    pub forwards: Vec<DetachedForward>,
    /// The session's user certificate file and when it stops working (`PATH expires in
    /// 12m`); absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

/// One frame of an `exec`: kind, then payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Client to agent.
    Stdin(Vec<u8>),
    StdinEof,
    Resize {
        cols: u32,
        rows: u32,
    },
    /// Agent to client.
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(u32),
    Failed {
        status: u8,
        message: String,
    },
}

impl Frame {
    /// Kind and payload; data is borrowed, so a frame costs one copy into the write.
    fn encode(&self) -> (u8, Cow<'_, [u8]>) {
        match self {
            Frame::Stdin(d) => (0, Cow::Borrowed(d)),
            Frame::StdinEof => (1, Cow::Borrowed(&[])),
            Frame::Resize { cols, rows } => {
                let mut p = cols.to_be_bytes().to_vec();
                p.extend_from_slice(&rows.to_be_bytes());
                (2, Cow::Owned(p))
            }
            Frame::Stdout(d) => (10, Cow::Borrowed(d)),
            Frame::Stderr(d) => (11, Cow::Borrowed(d)),
            Frame::Exit(s) => (12, Cow::Owned(s.to_be_bytes().to_vec())),
            Frame::Failed { status, message } => {
                let mut p = vec![*status];
                p.extend_from_slice(message.as_bytes());
                (13, Cow::Owned(p))
            }
        }
    }

    fn decode(kind: u8, p: Vec<u8>) -> std::io::Result<Frame> {
        let word = |b: &[u8]| -> std::io::Result<u32> {
            b.try_into()
                .map(u32::from_be_bytes)
                .map_err(|_| bad("a frame too short for its kind"))
        };
        Ok(match kind {
            0 => Frame::Stdin(p),
            1 => Frame::StdinEof,
            2 if p.len() == 8 => Frame::Resize {
                cols: word(&p[..4])?,
                rows: word(&p[4..])?,
            },
            10 => Frame::Stdout(p),
            11 => Frame::Stderr(p),
            12 => Frame::Exit(word(&p)?),
            13 if !p.is_empty() => Frame::Failed {
                status: p[0],
                message: String::from_utf8_lossy(&p[1..]).into_owned(),
            },
            _ => return Err(bad("an unknown frame")),
        })
    }
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &Frame) -> std::io::Result<()> {
    let (kind, payload) = frame.encode();
    let len = u32::try_from(payload.len()).map_err(|_| bad("a frame too large"))?;
    let mut buf = Vec::with_capacity(5 + payload.len());
    buf.push(kind);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(&payload);
    w.write_all(&buf).await?;
    w.flush().await
}

/// The next frame, or `None` at a clean end of the stream.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<Frame>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    r.read_exact(&mut head[1..]).await?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(bad("a frame too large"));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Frame::decode(head[0], payload).map(Some)
}

/// Writes `value` as one JSON line.
pub async fn write_line<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    value: &T,
) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line).await?;
    w.flush().await
}

/// Reads one JSON line (at most `MAX_LINE` bytes); `None` when the stream ended first.
pub async fn read_line<R: AsyncBufRead + Unpin, T: for<'de> Deserialize<'de>>(
    r: &mut R,
) -> std::io::Result<Option<T>> {
    let mut line = Vec::new();
    let mut limited = r.take(MAX_LINE as u64);
    let n = limited.read_until(b'\n', &mut line).await?;
    if n == 0 || line.last() != Some(&b'\n') {
        return Ok(None);
    }
    serde_json::from_slice(&line)
        .map(Some)
        .map_err(|e| bad(&e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_end_cleanly() {
        let frames = [
            Frame::Stdin(b"abc".to_vec()),
            Frame::StdinEof,
            Frame::Resize {
                cols: 120,
                rows: 40,
            },
            Frame::Stdout(vec![0, 255]),
            Frame::Stderr(Vec::new()),
            Frame::Exit(130),
            Frame::Failed {
                status: 255,
                message: "host key changed".into(),
            },
        ];
        let mut buf = Vec::new();
        for f in &frames {
            write_frame(&mut buf, f).await.unwrap();
        }
        let mut r = &buf[..];
        for f in &frames {
            assert_eq!(read_frame(&mut r).await.unwrap().as_ref(), Some(f));
        }
        assert_eq!(read_frame(&mut r).await.unwrap(), None);
        let mut cut = &buf[..3];
        assert!(read_frame(&mut cut).await.is_err());
    }

    #[tokio::test]
    async fn a_dial_error_keeps_its_kind_across_the_socket() {
        let e = DialError::Unresolved {
            host: "nosuch.svc".into(),
            reason: "Name or service not known".into(),
        };
        let mut buf = Vec::new();
        write_line(&mut buf, &Reply::DialFailed { error: (&e).into() })
            .await
            .unwrap();
        let mut r = &buf[..];
        let Some(Reply::DialFailed { error }) = read_line(&mut r).await.unwrap() else {
            panic!("not a dial failure");
        };
        let back = DialError::from(error);
        assert!(matches!(back, DialError::Unresolved { .. }));
        assert_eq!(back.to_string(), e.to_string());
    }
}
