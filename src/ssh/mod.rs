//! The SSH session to the bastion: connect (directly or through a jump host) within a
//! deadline, verify the host key against OpenSSH's known_hosts, authenticate, keep alive, and
//! open channels: captured commands (`exec`), streamed sessions (`session`) on a PTY (`pty`)
//! when asked, the login shell (`shell`), and TCP streams (`Dialer`).
//!
//! The russh `Handler` stays thin: it hands the host key to `host_key::HostKeyCheck`, which
//! holds the policy and the prompt. This module knows nothing of forwards, kube or clap.

pub mod auth;
mod channel;
mod connect;
pub mod exec;
pub mod host_cert;
pub mod host_key;
mod identification;
pub mod known_hosts;
pub mod pty;
mod quickack;
pub mod quote;
pub mod session;
pub mod shell;
pub mod user_cert;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::PublicKeyOrCertificate;
use russh::{ChannelId, ChannelOpenFailure};
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{Instrument, info_span};

use crate::config::Resolved;
use crate::dial::{self, BoxStream, DialError, DialFuture, Dialer};

pub use auth::{certificate_summaries, report_certificates};
pub use channel::ChannelCounts;
pub(crate) use channel::TcpChannel;
pub use exec::Captured;
pub use host_key::HostKeyCheck;

/// The receive window per channel: 8 MiB lets one stream fill a fast link with a high
/// round-trip time (OpenSSH uses 2 MiB and grows it); flow control bounds the memory.
pub const WINDOW_SIZE: u32 = 8 * 1024 * 1024;
/// The largest packet we accept: 32 KiB, OpenSSH's own channel packet size.
pub const MAX_PACKET_SIZE: u32 = 32 * 1024;
/// The read buffer under the SSH session: russh reads each packet's length and body apart,
/// and a buffer turns those two reads into one for many packets (about 5% less CPU per byte
/// received, scripts/bench-forward.sh).
const READ_BUFFER: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    // `cause` rather than `source` in these three: health findings and forward's reconnect
    // messages show the error by itself, so the cause stays in the message, chained once.
    #[error("cannot connect to {target}: {cause}")]
    Connect {
        target: String,
        cause: std::io::Error,
    },
    #[error("connecting to {target} timed out after {}s (connect_timeout)", .after.as_secs())]
    Timeout { target: String, after: Duration },
    #[error("ssh handshake with {target} failed: {cause}")]
    Handshake { target: String, cause: russh::Error },
    #[error("{target} is not an SSH server? it answered `{answered}`")]
    NotSsh { target: String, answered: String },
    #[error(
        "{target} closed the connection before identifying itself as an SSH server (check the port; an sshd that refuses this client does this too: see its log)"
    )]
    ClosedEarly { target: String },
    #[error(transparent)]
    HostKey(#[from] host_key::HostKeyError),
    /// Every key and certificate offered was refused: what they were, and the
    /// authorized_keys line(s) that would let a key in.
    #[error(
        "permission denied for {user}@{target} (tried: {}){}",
        .refused.tried(user),
        auth::refused_hint(user, refused)
    )]
    AuthFailed {
        user: String,
        target: String,
        refused: auth::Refused,
    },
    #[error(
        "identity file {} is protected by a passphrase and none is stored: run `paragon-admin secrets set {secret}`, or run on a terminal to be asked", .path.display()
    )]
    PassphraseNeeded { path: PathBuf, secret: String },
    #[error("identity file {}: the passphrase from {from} does not unlock it", .path.display())]
    WrongPassphrase { path: PathBuf, from: String },
    #[error("cannot read identity file {}: {reason}", .path.display())]
    IdentityFile { path: PathBuf, reason: String },
    #[error("the connection to {target} was lost")]
    Disconnected { target: String },
    #[error("ssh channel on {target}: {cause}")]
    Channel { target: String, cause: russh::Error },
    // Chained, not in the message: a closed stdout (`| head`) is found in the chain.
    #[error("{what}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    OpenSsh(#[from] crate::openssh::OpenSshError),
    #[error("ProxyJump `{jump}` for {host} in ~/.ssh/config: {reason}")]
    BadJump {
        host: String,
        jump: String,
        reason: String,
    },
}

impl crate::exit::ExitStatus for SshError {
    /// 255 when the bastion cannot be reached, verified or authenticated (OpenSSH's
    /// convention) or the connection is lost; 2 for a profile's unusable identity file;
    /// 1 for an operation that failed after connecting.
    fn exit_status(&self) -> u8 {
        match self {
            SshError::Connect { .. }
            | SshError::Timeout { .. }
            | SshError::Handshake { .. }
            | SshError::NotSsh { .. }
            | SshError::ClosedEarly { .. }
            | SshError::HostKey(_)
            | SshError::AuthFailed { .. }
            | SshError::PassphraseNeeded { .. }
            | SshError::WrongPassphrase { .. }
            | SshError::Disconnected { .. } => 255,
            SshError::IdentityFile { .. } | SshError::BadJump { .. } => 2,
            SshError::OpenSsh(e) => e.exit_status(),
            SshError::Channel { .. } | SshError::Io { .. } => 1,
        }
    }
}

impl SshError {
    /// Whether connecting again cannot help: the bastion's key is no longer trusted (changed,
    /// or revoked), which only the user can settle. A session that reconnects stops on it.
    pub fn ends_retrying(&self) -> bool {
        use host_key::HostKeyError as H;
        match self {
            SshError::HostKey(
                H::Changed { .. } | H::Revoked { .. } | H::CertificateRevoked { .. },
            ) => true,
            SshError::HostKey(H::Certificate(c)) => matches!(
                c.plain,
                H::Changed { .. } | H::Revoked { .. } | H::CertificateRevoked { .. }
            ),
            _ => false,
        }
    }

    /// As a reconnecting session's failure: its one line, its status, and whether it ends
    /// the retries.
    pub fn into_failure(self) -> crate::reconnect::Failure {
        use crate::exit::ExitStatus as _;
        let (fatal, status) = (self.ends_retrying(), self.exit_status());
        crate::reconnect::Failure {
            message: crate::exit::Error::from(self).to_string(),
            status,
            fatal,
        }
    }
}

/// Whether this process has connected (or tried to) before: see `Bastion::connect`.
static CONNECTED_BEFORE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// An authenticated SSH session to the bastion. Cheap to clone; all clones share the session.
#[derive(Clone)]
pub struct Bastion {
    inner: Arc<Inner>,
}

struct Inner {
    handle: Handle<Client>,
    /// Keeps the jump host's session (which carries ours) alive.
    _jump: Option<Handle<Client>>,
    target: String,
    closed: CancellationToken,
    open_timeout: Duration,
    /// The `direct-tcpip` channels handed out, counted by their streams.
    channels: Arc<channel::Ledger>,
    open_failures: Arc<OpenFailures>,
    /// The bastion's host key check, which holds the key it accepted.
    check: Arc<HostKeyCheck>,
    /// The jump host's, when there is one.
    jump_check: Option<Arc<HostKeyCheck>>,
    /// The certificate file this session authenticated with, if it did with one.
    certificate: Option<user_cert::InUse>,
    /// The key or certificate the bastion accepted.
    accepted: auth::Offered,
}

/// The servers' own words for refused channel opens. russh returns only the reason code to
/// the opener (OpenSSH's sshd says "connect failed" both for a refused port and for a name
/// it cannot resolve) and hands the description to the `Handler`, without saying which open
/// it answers. So descriptions queue here in the order the server sent them, and an opener
/// that was refused takes the oldest: exact whenever refusals do not arrive at the same
/// instant; when they do, two failed connections may swap their wording, never their outcome.
#[derive(Default)]
struct OpenFailures {
    queue: std::sync::Mutex<std::collections::VecDeque<(tokio::time::Instant, String)>>,
    arrived: tokio::sync::Notify,
}

impl OpenFailures {
    fn push(&self, description: &str) {
        if let Ok(mut q) = self.queue.lock() {
            // Bounded: an opener that gave up (timed out) leaves its description behind.
            if q.len() >= 64 {
                q.pop_front();
            }
            q.push_back((tokio::time::Instant::now(), description.to_string()));
        }
        self.arrived.notify_waiters();
    }

    /// The oldest description, waiting briefly for it: the handler hears of the refusal
    /// just after the opener does.
    async fn take(&self) -> Option<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        loop {
            let arrived = self.arrived.notified();
            if let Ok(mut q) = self.queue.lock() {
                // One left behind by an opener that gave up is stale: not ours.
                while let Some((at, d)) = q.pop_front() {
                    if at.elapsed() < Duration::from_secs(1) {
                        return Some(d);
                    }
                }
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return None;
            }
        }
    }
}

/// The russh handler: host keys go to the policy, nothing else happens here. Its drop (when
/// the session task ends) marks the session closed.
pub(crate) struct Client {
    check: Arc<HostKeyCheck>,
    open_failures: Arc<OpenFailures>,
    _closed: DropGuard,
}

impl client::Handler for Client {
    type Error = SshError;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        self.check.verify(server_public_key).await?;
        Ok(true)
    }

    async fn channel_open_failure(
        &mut self,
        _channel: ChannelId,
        _reason: ChannelOpenFailure,
        description: &str,
        _language: &str,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        self.open_failures.push(description);
        Ok(())
    }
}

impl From<russh::Error> for SshError {
    fn from(cause: russh::Error) -> Self {
        SshError::Handshake {
            target: String::new(),
            cause,
        }
    }
}

/// The profile as a connection to it is made: completed from what `~/.ssh/config` says of its
/// host (`ssh -G`), so a Host alias names the real host, port and identity.
pub fn completed(profile: &Resolved) -> Result<Resolved, SshError> {
    connect::with_openssh_config(profile)
}

impl Bastion {
    /// Connects and authenticates to the profile's bastion (through its `proxy_jump` host
    /// when it has one), within `connect_timeout`; time spent waiting for an answer at a
    /// prompt does not count.
    pub async fn connect(profile: &Resolved) -> Result<Bastion, SshError> {
        let profile = &connect::with_openssh_config(profile)?;
        let p = &profile.settings;
        let target = dial::target(&p.host.0, p.port.0);
        let after = Duration::from_secs(p.connect_timeout.0);
        let (prompting, waiting) = watch::channel(false);
        let prompting = Arc::new(prompting);
        let span = info_span!("bastion", %target);
        // Erased once connected or failed (before the error is printed), and before a prompt.
        // Only a process's first connection says so: later ones are reconnects, which a
        // forward's own status line reports.
        let _line = (!CONNECTED_BEFORE.swap(true, std::sync::atomic::Ordering::Relaxed))
            .then(|| crate::prompt::waiting_line(&format!("connecting to {target} ...")))
            .flatten();
        tokio::select! {
            r = connect::connect_all(profile, prompting).instrument(span) => r,
            () = connect::deadline(after, waiting) => Err(SshError::Timeout { target, after }),
        }
    }

    /// `host:port` of the bastion, for messages.
    pub fn target(&self) -> &str {
        &self.inner.target
    }

    pub fn is_closed(&self) -> bool {
        self.inner.closed.is_cancelled() || self.inner.handle.is_closed()
    }

    /// Whether the server still answers: a keepalive it must reply to, within `within`. A
    /// session whose connection was just cut may not know it yet; this asks. Only a reply
    /// counts: russh's `send_ping` also returns `Ok` when the session ends before the reply
    /// (its reply channel dropped), which let a capture reuse an answer from a session that
    /// had just died (the bastion down, and `health` through the agent still gave a report).
    /// A global request with a reply wanted tells the two apart: OpenSSH answers
    /// `keepalive@openssh.com` with a failure reply (`RequestDenied`), an ended session
    /// gives `Disconnect`.
    pub async fn answers(&self, within: std::time::Duration) -> bool {
        let asked = self
            .inner
            .handle
            .send_global_request("keepalive@openssh.com", &[], true);
        matches!(
            tokio::time::timeout(within, asked).await,
            Ok(Ok(_) | Err(russh::Error::RequestDenied))
        ) && !self.is_closed()
    }

    /// The error a new connection would give now because of the bastion's (or the jump
    /// host's) key, as known_hosts reads now (`HostKeyCheck::recheck`): what ends a session
    /// kept for long.
    pub fn recheck_host_key(&self) -> Result<(), SshError> {
        if let Some(j) = &self.inner.jump_check {
            j.recheck().map_err(SshError::HostKey)?;
        }
        self.inner.check.recheck().map_err(SshError::HostKey)
    }

    /// The certificate file this session authenticated with (none: a plain key, or a
    /// certificate held by ssh-agent).
    pub fn certificate(&self) -> Option<&user_cert::InUse> {
        self.inner.certificate.as_ref()
    }

    /// The key or certificate the bastion accepted for this session.
    pub fn accepted(&self) -> &auth::Offered {
        &self.inner.accepted
    }

    /// Resolves when the SSH session has ended.
    pub async fn closed(&self) {
        self.inner.closed.cancelled().await;
    }

    /// The `direct-tcpip` channels this session holds: a long-lived forward must come back
    /// to none open when its connections have ended. `held` counts channels to targets that
    /// never ended their stream, which we closed first: russh 0.65.1 keeps about 3 KB of each
    /// (its channel's message queue) until the session ends, and no public API releases it,
    /// so an owner that keeps a session for days replaces it, when idle, once `held` grows.
    pub fn channel_counts(&self) -> ChannelCounts {
        self.inner.channels.counts()
    }

    /// Opens a session channel.
    pub(crate) async fn open_session(&self) -> Result<russh::Channel<client::Msg>, SshError> {
        self.inner
            .handle
            .channel_open_session()
            .await
            .map_err(|source| self.channel_error(source))
    }

    pub(crate) fn channel_error(&self, source: russh::Error) -> SshError {
        match source {
            russh::Error::Disconnect | russh::Error::SendError => SshError::Disconnected {
                target: self.inner.target.clone(),
            },
            cause => SshError::Channel {
                target: self.inner.target.clone(),
                cause,
            },
        }
    }
}

impl Bastion {
    /// Opens a `direct-tcpip` channel to `host:port`: the stream `connect` boxes, for callers
    /// that take its packets as received (the agent's relay, issue 25).
    pub(crate) async fn open_channel(
        &self,
        host: &str,
        port: u16,
    ) -> Result<channel::TcpChannel, DialError> {
        let t = dial::target(host, port);
        if self.is_closed() {
            return Err(DialError::NoSession {
                target: t,
                reason: format!("the session to {} has ended", self.inner.target),
            });
        }
        let open = self.inner.handle.channel_open_direct_tcpip(
            host.to_string(),
            u32::from(port),
            "127.0.0.1",
            0,
        );
        match tokio::time::timeout(self.inner.open_timeout, open).await {
            Ok(Ok(channel)) => Ok(channel::TcpChannel::new(
                channel,
                self.inner.channels.clone(),
            )),
            Ok(Err(russh::Error::ChannelOpenFailure(reason))) => {
                let said = self.inner.open_failures.take().await;
                Err(open_failure(host, t, &reason, said))
            }
            Ok(Err(e)) => Err(DialError::NoSession {
                target: t,
                reason: e.to_string(),
            }),
            Err(_) => Err(DialError::Timeout {
                target: t,
                after: self.inner.open_timeout,
            }),
        }
    }
}

impl Dialer for Bastion {
    fn connect<'a>(&'a self, host: &'a str, port: u16) -> DialFuture<'a> {
        Box::pin(async move {
            let channel = self.open_channel(host, port).await?;
            Ok(Box::new(channel) as BoxStream)
        })
    }

    fn describe(&self) -> String {
        format!("bastion {}", self.inner.target)
    }
}

/// Words of getaddrinfo's messages (`gai_strerror`, which OpenSSH's sshd sends as the
/// description of a refused open) that mean the name did not resolve.
const UNRESOLVED: &[&str] = &[
    "name or service not known",
    "temporary failure in name resolution",
    "no address associated with hostname",
    "non-recoverable failure in name resolution",
    "nodename nor servname provided",
    "name does not resolve",
];

/// A refused `direct-tcpip` open as the dialer reports it: a name the bastion could not
/// resolve, else the server's own description (else its reason code).
fn open_failure(
    host: &str,
    target: String,
    reason: &russh::ChannelOpenFailure,
    description: Option<String>,
) -> DialError {
    let description = description.filter(|d| !d.trim().is_empty());
    match description {
        Some(d) if UNRESOLVED.iter().any(|u| d.to_lowercase().contains(u)) => {
            DialError::Unresolved {
                host: host.to_string(),
                reason: d,
            }
        }
        // OpenSSH's sshd says only "open failed" when its PermitOpen refuses: the reason code
        // goes first, as OpenSSH's client prints it ("administratively prohibited: open failed").
        Some(d) => DialError::Rejected {
            target,
            reason: match reason {
                russh::ChannelOpenFailure::Other { .. } => d,
                code => format!("{}: {d}", open_failure_reason(code)),
            },
        },
        None => DialError::Rejected {
            target,
            reason: open_failure_reason(reason),
        },
    }
}

fn open_failure_reason(r: &russh::ChannelOpenFailure) -> String {
    match r {
        russh::ChannelOpenFailure::AdministrativelyProhibited => {
            "administratively prohibited (the bastion's PermitOpen or AllowTcpForwarding)"
                .to_string()
        }
        russh::ChannelOpenFailure::ConnectFailed => "connection failed".to_string(),
        russh::ChannelOpenFailure::UnknownChannelType => "unknown channel type".to_string(),
        russh::ChannelOpenFailure::ResourceShortage => "resource shortage".to_string(),
        russh::ChannelOpenFailure::Other { code, reason } => format!("{reason} (code {code})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_that_says_the_name_did_not_resolve_is_unresolved() {
        let failed = russh::ChannelOpenFailure::ConnectFailed;
        let e = open_failure(
            "nosuch.svc",
            "nosuch.svc:80".into(),
            &failed,
            Some("Temporary failure in name resolution".into()),
        );
        assert!(matches!(e, DialError::Unresolved { .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with("bastion: cannot resolve nosuch.svc"),
            "{e}"
        );
        let e = open_failure(
            "10.0.0.1",
            "10.0.0.1:1".into(),
            &failed,
            Some("Connection refused".into()),
        );
        assert!(matches!(e, DialError::Rejected { .. }), "{e}");
        assert!(e.to_string().contains("Connection refused"), "{e}");
        // OpenSSH's sshd refusing by PermitOpen says only "open failed": the code goes first.
        let e = open_failure(
            "10.0.0.1",
            "10.0.0.1:1".into(),
            &russh::ChannelOpenFailure::AdministrativelyProhibited,
            Some("open failed".into()),
        );
        assert_eq!(
            e.to_string(),
            "the bastion could not connect to 10.0.0.1:1: administratively prohibited (the bastion's PermitOpen or AllowTcpForwarding): open failed"
        );
        let e = open_failure("h", "h:1".into(), &failed, None);
        assert!(e.to_string().contains("connection failed"), "{e}");
    }

    #[test]
    fn exit_statuses_follow_openssh() {
        use crate::exit::ExitStatus as _;
        let e = SshError::Timeout {
            target: "b:22".into(),
            after: Duration::from_secs(1),
        };
        assert_eq!(e.exit_status(), 255);
        let e = SshError::Io {
            what: "stdout",
            source: std::io::Error::other("x"),
        };
        assert_eq!(e.exit_status(), 1);
    }
}
