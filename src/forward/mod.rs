//! Forwards: local listeners whose connections are dialed through the bastion.
//!
//! `bind` opens every listener first (a port in use fails before anything else starts); `run`
//! serves them over a session that a supervisor keeps re-establishing, until shutdown. The
//! session comes from a connect function, so this module works with any `Dialer`: the SSH
//! `Bastion` in the binary (adapted in `bastion`), a dialer that keeps its own connection (the
//! profile's agent, followed in `kept`), `Direct` in tests. It knows nothing of clap.

pub mod bastion;
pub mod kept;
pub mod kubeconfig;
pub mod plan;
mod relay;
pub mod route;
pub mod socks;
pub mod spec;
pub mod status;
pub mod supervisor;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

/// The crate's one signal watcher, where forwards have always found it.
pub use crate::signals::Shutdown;
pub use relay::Stats;
pub(crate) use relay::copy;
pub use spec::{Forward, Target, parse_spec, parse_specs};
pub use status::{Sink, Style};
pub use supervisor::{Backoff, Connect, Failure, Link, Session};

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("`{spec}`: {message}")]
    Spec { spec: String, message: String },
    #[error(
        "cannot listen on {addr}: port {port} is already in use (choose another with LOCAL_PORT:...)"
    )]
    PortInUse { addr: SocketAddr, port: u16 },
    #[error("cannot listen on {addr}: port {port} needs privileges (choose a port above 1023)")]
    PortNeedsPrivileges { addr: SocketAddr, port: u16 },
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "nothing to forward: name a service, LOCAL_PORT:HOST:PORT or HOST:PORT, or pass --socks"
    )]
    Nothing,
    #[error(
        "a SOCKS proxy on {addr} would let anyone who reaches it into the private network: \
         drop --bind or bind a loopback address"
    )]
    SocksExposed { addr: IpAddr },
    /// The stable local port of a service could not be had (`state`).
    #[error(transparent)]
    State(#[from] crate::state::StateError),
}

impl crate::exit::ExitStatus for ForwardError {
    /// The user's input is at fault (usage, 2), else the machine (1).
    fn exit_status(&self) -> u8 {
        match self {
            ForwardError::Spec { .. }
            | ForwardError::Nothing
            | ForwardError::SocksExposed { .. }
            | ForwardError::PortInUse { .. }
            | ForwardError::PortNeedsPrivileges { .. } => crate::exit::USAGE,
            ForwardError::State(e) => crate::exit::ExitStatus::exit_status(e),
            _ => crate::exit::FAILED,
        }
    }
}

/// Something that happened to the forwards, for people and, as JSON lines, for scripts.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A listener is open and the bastion is reachable.
    Listening {
        name: String,
        local: SocketAddr,
        /// `HOST:PORT` as seen from the bastion; `null` for the SOCKS proxy.
        target: Option<String>,
        url: String,
        /// `bastion`, or `api` for a target reached through the API's pods/portforward.
        route: route::Route,
        /// On the API route: `spdy-websocket` (streams in one kept tunnel) or
        /// `websocket-v4` (a WebSocket per connection, for an API server without the tunnel).
        #[serde(skip_serializing_if = "Option::is_none")]
        protocol: Option<route::Protocol>,
    },
    /// The session to the bastion ended; the listeners stay open.
    Disconnected,
    /// An attempt to re-establish the session begins.
    Reconnecting { attempt: u32 },
    /// An attempt failed; the next one follows after a pause.
    ReconnectFailed {
        attempt: u32,
        error: String,
        retry_in_secs: f64,
    },
    /// The session is back; new connections work again.
    Reconnected { attempts: u32, down_secs: f64 },
}

/// An open listener, not yet serving.
pub struct Listening {
    pub forward: Forward,
    pub local: SocketAddr,
    /// Its counters, live while it serves (connections open, bytes, failures).
    pub stats: Arc<Stats>,
    /// The bastion unless the caller routes this forward through the API (`route`).
    pub route: route::Route,
    /// How the API route's connections travel (`None` on the bastion route).
    pub protocol: Option<route::Protocol>,
    listener: TcpListener,
}

impl Listening {
    /// The URL of this forward (the service's, else `tcp://` or `socks5h://`).
    pub fn url(&self) -> String {
        self.forward.url(self.local)
    }
}

/// Opens a listener for every forward on `addr`, in order; the first that fails stops all.
pub async fn bind(forwards: Vec<Forward>, addr: IpAddr) -> Result<Vec<Listening>, ForwardError> {
    if forwards.is_empty() {
        return Err(ForwardError::Nothing);
    }
    let mut open = Vec::with_capacity(forwards.len());
    for forward in forwards {
        let want = SocketAddr::new(addr, forward.local_port);
        let listener = TcpListener::bind(want).await.map_err(|source| {
            let port = forward.local_port;
            match source.kind() {
                std::io::ErrorKind::AddrInUse => ForwardError::PortInUse { addr: want, port },
                std::io::ErrorKind::PermissionDenied => {
                    ForwardError::PortNeedsPrivileges { addr: want, port }
                }
                _ => ForwardError::Bind { addr: want, source },
            }
        })?;
        let local = listener
            .local_addr()
            .map_err(|source| ForwardError::Bind { addr: want, source })?;
        debug!(name = %forward.name, %local, "listening");
        open.push(Listening {
            forward,
            local,
            stats: Arc::default(),
            route: route::Route::Bastion,
            protocol: None,
            listener,
        });
    }
    Ok(open)
}

/// How the forwards behave.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// How long a new connection waits for the bastion while it is away.
    pub wait_for_session: Duration,
    pub backoff: Backoff,
    /// Copy buffer per direction of each connection.
    pub buffer_size: usize,
    /// How long a connection whose local client has ended its side waits while the target
    /// sends nothing, before it is closed (issue 14: a target that never ends its stream).
    pub quiet_after_client_eof: Duration,
    pub style: Style,
    pub sink: Sink,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            wait_for_session: Duration::from_secs(30),
            backoff: Backoff::default(),
            // Larger buffers measured no faster (packets are 32 KiB), and cost memory per
            // connection: a browser keeps dozens open.
            buffer_size: 64 * 1024,
            quiet_after_client_eof: Duration::from_secs(60),
            style: Style::Human { live: false },
            sink: Sink::Stdout,
        }
    }
}

impl Options {
    /// The defaults, printing JSON lines or lines for people to `sink`; the live status only
    /// when `sink` is a terminal and not `quiet`.
    pub fn for_output(json: bool, quiet: bool, sink: Sink) -> Options {
        use std::io::IsTerminal;
        let terminal = match sink {
            Sink::Stdout => std::io::stdout().is_terminal(),
            Sink::Stderr => std::io::stderr().is_terminal(),
        };
        Options {
            style: if json {
                Style::Json
            } else {
                Style::Human {
                    live: terminal && !quiet,
                }
            },
            sink,
            ..Options::default()
        }
    }
}

/// Serves the listeners over `first` and the sessions `connect` makes after it, until
/// `shutdown` resolves or the session closes for a fatal failure (a changed host key: no use
/// trying again); then closes listeners and connections and returns that failure, if any.
pub async fn run<F, Fut, E>(
    listeners: Vec<Listening>,
    first: Session,
    connect: F,
    options: Options,
    shutdown: impl Future<Output = ()>,
) -> Option<Failure>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Session, E>> + Send + 'static,
    E: Into<Failure> + Send,
{
    let cancel = CancellationToken::new();
    let (events, events_rx) = tokio::sync::mpsc::unbounded_channel();
    let (link, supervisor) = supervisor::supervise(
        first,
        connect,
        options.backoff,
        events.clone(),
        cancel.clone(),
    );
    let tracker = TaskTracker::new();
    let relay = relay::Relay {
        link: link.clone(),
        wait_for_session: options.wait_for_session,
        buffer_size: options.buffer_size,
        quiet_after_client_eof: options.quiet_after_client_eof,
        cancel: cancel.clone(),
        tracker: tracker.clone(),
    };
    let mut all_stats = Vec::new();
    let mut accepting = Vec::new();
    for l in listeners {
        let _ = events.send(Event::Listening {
            name: l.forward.name.clone(),
            local: l.local,
            target: l.forward.target_text(),
            url: l.url(),
            route: l.route,
            protocol: l.protocol,
        });
        all_stats.push(l.stats.clone());
        accepting.push(tokio::spawn(relay::accept_loop(
            l.listener,
            l.local,
            Arc::new(l.forward),
            l.stats,
            relay.clone(),
        )));
    }
    drop(events);
    let reporter = tokio::spawn(status::report(
        events_rx,
        options.style,
        options.sink,
        all_stats,
        link.clone(),
    ));

    let fatal = tokio::select! {
        () = shutdown => None,
        f = link.closed() => Some(f),
    };
    drop(link);
    debug!("shutting down");
    cancel.cancel();
    for a in accepting {
        let _ = a.await;
    }
    tracker.close();
    // Every connection task watches the token; this only bounds a stuck one.
    let _ = tokio::time::timeout(Duration::from_secs(1), tracker.wait()).await;
    let _ = supervisor.await;
    drop(relay);
    let _ = reporter.await;
    fatal
}

/// Opens `url` in the default browser (`open` on macOS, `xdg-open` elsewhere).
pub fn open_in_browser(url: &str) -> std::io::Result<()> {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(drop)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot run `{opener}`: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dial::Direct;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// An echo server that answers each connection with `greeting` then echoes.
    async fn echo_server(greeting: &'static [u8]) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    s.write_all(greeting).await.unwrap();
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    fn direct_session() -> Session {
        Session {
            dialer: Arc::new(Direct::default()),
            ended: Box::pin(std::future::pending()),
        }
    }

    fn tunnel(port: u16) -> Forward {
        Forward {
            name: "t".into(),
            target: Target::Tunnel {
                host: "127.0.0.1".into(),
                port,
            },
            local_port: 0,
            service: None,
        }
    }

    async fn start(forwards: Vec<Forward>) -> (Vec<SocketAddr>, tokio::sync::oneshot::Sender<()>) {
        let listeners = bind(forwards, "127.0.0.1".parse().unwrap()).await.unwrap();
        let addrs = listeners.iter().map(|l| l.local).collect();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(run(
            listeners,
            direct_session(),
            || async { Err::<Session, _>("no reconnects in this test") },
            Options {
                style: Style::Json,
                sink: Sink::Stderr,
                ..Options::default()
            },
            async move {
                let _ = stopped.await;
            },
        ));
        (addrs, stop)
    }

    #[tokio::test]
    async fn tunnel_carries_bytes_both_ways() {
        let server = echo_server(b"hi ").await;
        let (addrs, _stop) = start(vec![tunnel(server.port())]).await;
        let mut c = TcpStream::connect(addrs[0]).await.unwrap();
        c.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 7];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi ping");
    }

    #[tokio::test]
    async fn refused_target_fails_one_connection_and_the_forward_goes_on() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_port = closed.local_addr().unwrap().port();
        drop(closed);
        let server = echo_server(b"ok").await;
        let (addrs, _stop) = start(vec![tunnel(dead_port), tunnel(server.port())]).await;
        let mut c = TcpStream::connect(addrs[0]).await.unwrap();
        let mut buf = Vec::new();
        c.read_to_end(&mut buf).await.unwrap();
        assert!(buf.is_empty());
        let mut c = TcpStream::connect(addrs[1]).await.unwrap();
        let mut buf = [0u8; 2];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ok");
    }

    #[tokio::test]
    async fn socks_connects_by_domain_name() {
        let server = echo_server(b"via socks").await;
        let (addrs, _stop) = start(vec![Forward::socks(0)]).await;
        let mut c = TcpStream::connect(addrs[0]).await.unwrap();
        let mut req = vec![5, 1, 0, 5, 1, 0, 3, 9];
        req.extend_from_slice(b"localhost");
        req.extend_from_slice(&server.port().to_be_bytes());
        c.write_all(&req).await.unwrap();
        let mut answer = [0u8; 2 + 10 + 9];
        c.read_exact(&mut answer).await.unwrap();
        assert_eq!(answer[..4], [5, 0, 5, 0]);
        assert_eq!(&answer[12..], b"via socks");
    }

    #[tokio::test]
    async fn port_in_use_is_named() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let mut f = tunnel(80);
        f.local_port = port;
        let Err(e) = bind(vec![tunnel(80), f], "127.0.0.1".parse().unwrap()).await else {
            panic!("bound a port in use");
        };
        assert!(matches!(e, ForwardError::PortInUse { .. }));
        assert!(
            e.to_string()
                .contains(&format!("port {port} is already in use")),
            "{e}"
        );
    }

    #[tokio::test]
    async fn shutdown_closes_listeners_and_connections() {
        let server = echo_server(b"x").await;
        let listeners = bind(vec![tunnel(server.port())], "127.0.0.1".parse().unwrap())
            .await
            .unwrap();
        let addr = listeners[0].local;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(run(
            listeners,
            direct_session(),
            || async { Err::<Session, _>("unused") },
            Options {
                style: Style::Json,
                sink: Sink::Stderr,
                ..Options::default()
            },
            async move {
                let _ = stopped.await;
            },
        ));
        let mut c = TcpStream::connect(addr).await.unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).await.unwrap();
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(2), running)
            .await
            .unwrap()
            .unwrap();
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).await.unwrap();
        assert!(TcpStream::connect(addr).await.is_err());
    }
}
