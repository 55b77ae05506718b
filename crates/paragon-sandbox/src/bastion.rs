//! The demo's embedded SSH bastion: russh's server, on loopback only, that lets exactly one
//! client key in and forwards only to the sandbox's own services.
//!
//! Its host key is generated in memory at start and never written anywhere; the caller writes
//! a known_hosts line from `host_public_key()` so that the client verifies it as strictly as
//! any real bastion. No shell, no exec, no subsystem, no remote forwarding: the only thing it
//! does is `direct-tcpip` to an address on the allow-list given at start. It knows nothing of
//! the client side of paragon-admin.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::{Algorithm, PrivateKey, PublicKey};
use russh::server::{
    Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Server, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelOpenFailure, MethodKind, MethodSet};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info_span};

use super::listen::Serving;

/// How the server is named in errors.
const SERVER: &str = "demo bastion";
/// How long a forward waits for its target to accept.
const TARGET_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Copy buffer per direction: a few SSH packets' worth, so that a read fills whole packets.
const COPY_BUFFER: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BastionError {
    #[error(transparent)]
    Listen(#[from] super::listen::ListenError),
    #[error("the demo bastion forwards to loopback only, not to {addr}")]
    TargetNotLoopback { addr: SocketAddr },
    #[error("cannot generate the host key: {0}")]
    HostKey(russh::keys::ssh_key::Error),
}

/// A running demo bastion. Dropping it stops accepting and ends every session and forward;
/// `shutdown` does the same and waits until they are gone.
pub struct DemoBastion {
    addr: SocketAddr,
    host_key: PublicKey,
    known_hosts_line: String,
    serving: Serving,
}

impl std::fmt::Debug for DemoBastion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoBastion")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl DemoBastion {
    /// Binds `addr` (loopback only; port 0 for any free port) and starts serving.
    pub async fn bind(
        addr: SocketAddr,
        client_key: PublicKey,
        allowed: Vec<SocketAddr>,
    ) -> Result<Self, BastionError> {
        let listener = super::listen::bind(SERVER, addr).await?;
        Self::start(listener, client_key, allowed)
    }

    /// Serves on a listener the caller bound; it must be on loopback, and so must every
    /// address in `allowed`, the only targets a client may open a `direct-tcpip` channel to.
    pub fn start(
        listener: TcpListener,
        client_key: PublicKey,
        allowed: Vec<SocketAddr>,
    ) -> Result<Self, BastionError> {
        let addr = super::listen::loopback_addr(SERVER, &listener)?;
        if let Some(bad) = allowed.iter().find(|a| !a.ip().is_loopback()) {
            return Err(BastionError::TargetNotLoopback { addr: *bad });
        }
        let host_key = PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519)
            .map_err(BastionError::HostKey)?;
        let host_public = host_key.public_key().clone();
        // The key has no comment, so its OpenSSH form is exactly `TYPE BASE64`.
        // OpenSSH names a host on port 22 bare, on any other port as `[host]:port`.
        let name = match addr.port() {
            22 => addr.ip().to_string(),
            port => format!("[{}]:{port}", addr.ip()),
        };
        let known_hosts_line = format!(
            "{name} {}",
            host_public.to_openssh().map_err(BastionError::HostKey)?
        );
        let config = Arc::new(server_config(host_key));
        let cancel = CancellationToken::new();
        let forwards = TaskTracker::new();
        let mut server = DemoServer {
            client_key: Arc::new(client_key),
            allowed: Arc::new(allowed),
            forwards: forwards.clone(),
            cancel: cancel.clone(),
        };
        let stop = cancel.clone();
        let task = tokio::spawn(
            async move {
                let running = server.run_on_socket(config, &listener);
                // Dropping `running` drops its shutdown sender, which disconnects every session.
                tokio::select! {
                    r = running => if let Err(e) = r { debug!("accept failed: {e}") },
                    () = stop.cancelled() => {}
                }
            }
            .instrument(info_span!("demo_bastion", %addr)),
        );
        Ok(DemoBastion {
            addr,
            host_key: host_public,
            known_hosts_line,
            serving: Serving::new(cancel, forwards, task),
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The ephemeral host key, for a known_hosts line.
    pub fn host_public_key(&self) -> &PublicKey {
        &self.host_key
    }

    /// The OpenSSH known_hosts line for this bastion: `[127.0.0.1]:PORT ssh-ed25519 AAAA...`
    /// (a bare address on port 22).
    pub fn known_hosts_line(&self) -> &str {
        &self.known_hosts_line
    }

    /// Stops accepting, ends every session and forward, and waits until they are gone and the
    /// listening port is closed.
    pub async fn shutdown(self) {
        self.serving.shutdown().await;
    }
}

fn server_config(host_key: PrivateKey) -> russh::server::Config {
    russh::server::Config {
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        // OpenSSH probes with "none" first: answer at once; a wrong key still waits.
        auth_rejection_time: Duration::from_millis(300),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![host_key],
        max_auth_attempts: 6,
        inactivity_timeout: Some(Duration::from_secs(3600)),
        nodelay: true,
        ..Default::default()
    }
}

#[derive(Clone)]
struct DemoServer {
    client_key: Arc<PublicKey>,
    allowed: Arc<Vec<SocketAddr>>,
    forwards: TaskTracker,
    cancel: CancellationToken,
}

impl Server for DemoServer {
    type Handler = DemoSession;

    fn new_client(&mut self, peer: Option<SocketAddr>) -> DemoSession {
        DemoSession {
            server: self.clone(),
            peer,
        }
    }
}

/// One client connection.
struct DemoSession {
    server: DemoServer,
    peer: Option<SocketAddr>,
}

impl DemoSession {
    fn is_client_key(&self, key: &PublicKey) -> bool {
        key.key_data() == self.server.client_key.key_data()
    }

    /// The allowed address a `direct-tcpip` request names, if it names one: an IP literal and
    /// port equal to an entry of the allow-list. Names are never resolved.
    fn allowed_target(&self, host: &str, port: u32) -> Option<SocketAddr> {
        let ip: std::net::IpAddr = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()?;
        let port = u16::try_from(port).ok()?;
        let addr = SocketAddr::new(ip, port);
        self.server.allowed.contains(&addr).then_some(addr)
    }
}

impl russh::server::Handler for DemoSession {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        if self.is_client_key(offer.public_key) {
            Ok(Auth::Accept)
        } else {
            debug!(peer = ?self.peer, user, "refused a key that is not the demo's client key");
            Ok(Auth::reject())
        }
    }

    async fn auth_publickey(
        &mut self,
        _user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(if self.is_client_key(key.public_key) {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        debug!(peer = ?self.peer, "refused a session channel: the demo bastion only forwards");
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(target) = self.allowed_target(host_to_connect, port_to_connect) else {
            debug!(peer = ?self.peer, host_to_connect, port_to_connect, "refused a forward off the allow-list");
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        // Connecting may take a while: do it beside the session loop, not in it.
        let cancel = self.server.cancel.clone();
        self.server.forwards.spawn(
            relay(channel, target, reply, cancel).instrument(info_span!("forward", %target)),
        );
        Ok(())
    }
}

/// Connects to `target`, then accepts the channel and copies both ways until either side
/// closes or the bastion stops; a target that does not answer refuses the channel.
async fn relay(
    channel: Channel<Msg>,
    target: SocketAddr,
    reply: ChannelOpenHandle,
    cancel: CancellationToken,
) {
    let tcp = match tokio::time::timeout(TARGET_CONNECT_TIMEOUT, TcpStream::connect(target)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => {
            debug!("cannot connect: {e}");
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
            return;
        }
        Err(_) => {
            debug!("connect timed out");
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
            return;
        }
    };
    let _ = tcp.set_nodelay(true);
    reply.accept().await;
    let mut tcp = tcp;
    let mut stream = channel.into_stream();
    tokio::select! {
        r = tokio::io::copy_bidirectional_with_sizes(&mut stream, &mut tcp, COPY_BUFFER, COPY_BUFFER) => {
            match r {
                Ok((up, down)) => debug!(up, down, "forward closed"),
                Err(e) => debug!("forward ended: {e}"),
            }
        }
        () = cancel.cancelled() => debug!("bastion stopping"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PublicKey {
        PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519)
            .unwrap()
            .public_key()
            .clone()
    }

    #[tokio::test]
    async fn refuses_a_non_loopback_listen_address() {
        let e = DemoBastion::bind("0.0.0.0:0".parse().unwrap(), key(), vec![])
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                BastionError::Listen(crate::listen::ListenError::NotLoopback { .. })
            ),
            "{e}"
        );
    }

    #[tokio::test]
    async fn refuses_a_non_loopback_target() {
        let e = DemoBastion::bind(
            "127.0.0.1:0".parse().unwrap(),
            key(),
            vec!["198.51.100.7:80".parse().unwrap()],
        )
        .await
        .unwrap_err();
        assert!(matches!(e, BastionError::TargetNotLoopback { .. }), "{e}");
    }

    #[tokio::test]
    async fn known_hosts_line_names_the_bracketed_port() {
        let b = DemoBastion::bind("127.0.0.1:0".parse().unwrap(), key(), vec![])
            .await
            .unwrap();
        let line = b.known_hosts_line();
        assert!(
            line.starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 AAAA", b.addr().port())),
            "{line}"
        );
        b.shutdown().await;
    }
}
