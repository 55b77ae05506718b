//! The hops to the bastion: its name (or its jump host's) resolved here, the TCP connect, what
//! answers on the port (an SSH banner, or a web or TLS server named as such), then the SSH
//! session as every command makes it (`Bastion::connect`), its typed error mapped to the hop it
//! stopped at: key exchange, host key (both fingerprints on a change) or authentication (with
//! the public key the bastion would need). Last, the profile's kept connection (its agent).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Diagnosis, Options, Stage};
use crate::config::Resolved;
use crate::dial;
use crate::ssh::host_key::HostKeyError;
use crate::ssh::{Bastion, SshError};

/// The hops `reach` walks, for the rows of a walk that stopped before them.
pub(super) const HOPS: [&str; 6] = [
    "bastion name",
    "bastion tcp",
    "bastion banner",
    "key exchange",
    "host key",
    "authentication",
];

/// Walks to an authenticated session, or stops at the first hop that fails.
pub(super) async fn reach(profile: &Resolved, d: &mut Diagnosis, o: Options) -> Option<Bastion> {
    let s = &profile.settings;
    let (who, host, port) = match &s.proxy_jump {
        Some(j) => ("jump host", j.host.clone(), j.port),
        None => ("bastion", s.host.0.clone(), s.port.0),
    };
    let addrs = resolve(who, &host, port, d, o.timeout).await?;
    let stream = connect(who, &host, port, &addrs, d, o.timeout).await?;
    let banner = banner(who, &host, port, stream, d, o.timeout).await?;
    let started = Instant::now();
    match Bastion::connect(profile).await {
        Ok(b) => {
            session_ok(profile, &b, &banner, started, d);
            Some(b)
        }
        Err(e) => {
            session_failed(profile, e, started, d);
            None
        }
    }
}

/// The name, resolved on this machine.
async fn resolve(
    who: &str,
    host: &str,
    port: u16,
    d: &mut Diagnosis,
    timeout: Duration,
) -> Option<Vec<SocketAddr>> {
    let name = format!("{who} name");
    let started = Instant::now();
    let failure = match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(a)) => {
            let addrs: Vec<SocketAddr> = a.collect();
            if !addrs.is_empty() {
                let ips: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
                let detail = if host.parse::<std::net::IpAddr>().is_ok() {
                    format!("{host} is an address")
                } else {
                    format!("{host} is {}", ips.join(", "))
                };
                d.ok(Stage::Bastion, &name, Some(started), detail);
                return Some(addrs);
            }
            "no address".to_string()
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {}s", timeout.as_secs()),
    };
    d.failed(
        Stage::Bastion,
        &name,
        Some(started),
        format!("cannot resolve {host}: {failure}"),
        format!(
            "this machine cannot resolve the {who}'s name {host}: check the host in the profile (a typo?), or this machine's DNS or VPN"
        ),
    );
    None
}

/// The TCP connection, to the first address that takes it.
async fn connect(
    who: &str,
    host: &str,
    port: u16,
    addrs: &[SocketAddr],
    d: &mut Diagnosis,
    timeout: Duration,
) -> Option<TcpStream> {
    let name = format!("{who} tcp");
    let target = dial::target(host, port);
    let started = Instant::now();
    let (detail, advice) = match tokio::time::timeout(timeout, TcpStream::connect(addrs)).await {
        Ok(Ok(s)) => {
            let to = s.peer_addr().map(|a| a.to_string()).unwrap_or_default();
            d.ok(
                Stage::Bastion,
                &name,
                Some(started),
                format!("connected to {to}"),
            );
            return Some(s);
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => (
            format!("{target}: connection refused"),
            format!(
                "nothing listens on {target}: check the port in the profile and that sshd runs on the {who}"
            ),
        ),
        Ok(Err(e)) => (
            format!("{target}: {e}"),
            format!(
                "{target} cannot be reached from here: check the address, the route and the firewalls between"
            ),
        ),
        Err(_) => (
            format!("{target}: no answer within {}s", timeout.as_secs()),
            format!(
                "nothing answered on {target}: a firewall drops the packets, or the {who} is down"
            ),
        ),
    };
    d.failed(Stage::Bastion, &name, Some(started), detail, advice);
    None
}

/// What the server says first: an SSH server speaks first; a web or TLS server answers our
/// identification line with its own protocol.
async fn banner(
    who: &str,
    host: &str,
    port: u16,
    mut stream: TcpStream,
    d: &mut Diagnosis,
    timeout: Duration,
) -> Option<String> {
    let name = format!("{who} banner");
    let target = dial::target(host, port);
    let started = Instant::now();
    let mut heard = read_some(&mut stream, timeout.min(Duration::from_secs(1))).await;
    if heard.as_ref().is_some_and(Vec::is_empty) {
        // Silent so far: not SSH's way. Say hello as a client would and hear what answers;
        // the blank line after it ends an HTTP request's header, so a web server answers at
        // once (this connection is only listened to, never used for SSH).
        let _ = stream
            .write_all(b"SSH-2.0-paragon-admin-doctor\r\n\r\n")
            .await;
        heard = read_some(&mut stream, timeout).await;
    }
    let (detail, advice) = match answered(heard.as_deref().unwrap_or_default()) {
        Answer::Ssh(line) => {
            d.ok(Stage::Bastion, &name, Some(started), line.clone());
            return Some(line);
        }
        Answer::Http(line) => (
            format!("an HTTP server answers on {target}: `{line}`"),
            format!(
                "{target} is a web server, not sshd: the port in the profile is wrong (SSH is usually 22)"
            ),
        ),
        Answer::Tls => (
            format!("a TLS server answers on {target} (a TLS alert to our SSH hello)"),
            format!(
                "{target} speaks TLS (an HTTPS or other TLS service), not SSH: the port in the profile is wrong"
            ),
        ),
        Answer::Other(line) => (
            format!("{target} is not an SSH server: it answered `{line}`"),
            format!("another service listens on {target}: check the port in the profile"),
        ),
        Answer::Nothing if heard.is_none() => (
            format!("{target} closed the connection without a word"),
            format!(
                "the {who} accepts TCP and hangs up at once: sshd refusing this client (MaxStartups, tcp wrappers, fail2ban) or a proxy with nothing behind it; see the {who}'s log"
            ),
        ),
        Answer::Nothing => (
            format!("{target} said nothing within {}s", timeout.as_secs()),
            format!(
                "the service on {target} never speaks: not sshd, or an sshd too busy to answer"
            ),
        ),
    };
    d.failed(Stage::Bastion, &name, Some(started), detail, advice);
    None
}

/// Reads what comes within `within`: `Some(bytes)` (empty when nothing came), `None` when
/// the server closed the connection without a byte.
async fn read_some(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 1024];
    match tokio::time::timeout(within, stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => None,
        Ok(Ok(n)) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(_) => Some(Vec::new()),
    }
}

/// What a port answered.
#[derive(Debug, PartialEq)]
enum Answer {
    Ssh(String),
    Http(String),
    Tls,
    Other(String),
    Nothing,
}

fn answered(bytes: &[u8]) -> Answer {
    // TLS records start with their content type (0x15 alert, 0x16 handshake) and version 3.x.
    if bytes.len() >= 3 && matches!(bytes[0], 0x15 | 0x16) && bytes[1] == 0x03 {
        return Answer::Tls;
    }
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let Some(first) = lines.clone().next() else {
        return Answer::Nothing;
    };
    let clip = |l: &str| crate::text::printable(&l.chars().take(100).collect::<String>());
    if let Some(ssh) = lines.find(|l| l.starts_with("SSH-")) {
        return Answer::Ssh(clip(ssh));
    }
    if first.starts_with("HTTP/") {
        return Answer::Http(clip(first));
    }
    Answer::Other(clip(first))
}

/// Key exchange, host key and authentication all passed, in one handshake of `started`.
fn session_ok(profile: &Resolved, b: &Bastion, banner: &str, started: Instant, d: &mut Diagnosis) {
    d.ok(
        Stage::Bastion,
        "key exchange",
        None,
        match &profile.settings.proxy_jump {
            Some(j) => format!("through the jump host {j}"),
            None => format!("with {banner}"),
        },
    );
    d.ok(
        Stage::Bastion,
        "host key",
        None,
        format!("matches {}", profile.known_hosts.display()),
    );
    d.ok(
        Stage::Bastion,
        "authentication",
        Some(started),
        format!(
            "as {} with {} (offered: {}); the time is the whole handshake",
            profile.user,
            b.accepted().words(&profile.user),
            offered(profile).join(", ")
        ),
    );
}

/// The handshake's error as the hop it stopped at.
fn session_failed(profile: &Resolved, e: SshError, started: Instant, d: &mut Diagnosis) {
    let message = e.to_string();
    let (hop, stage, advice) = match &e {
        SshError::HostKey(k) => ("host key", Stage::Bastion, host_key_advice(k)),
        SshError::AuthFailed { user, .. } => (
            "authentication",
            Stage::Bastion,
            refused_key_advice(profile, user),
        ),
        SshError::PassphraseNeeded { .. } | SshError::WrongPassphrase { .. } => (
            "authentication",
            Stage::Bastion,
            "the identity file's passphrase is missing or wrong: store it with `paragon-admin secrets set`, or run on a terminal".to_string(),
        ),
        SshError::IdentityFile { .. } => (
            "identity file",
            Stage::Config,
            "the identity file cannot be used: fix it as the message says".to_string(),
        ),
        SshError::OpenSsh(_) | SshError::BadJump { .. } => (
            "config",
            Stage::Config,
            "OpenSSH's config for this host cannot be used: fix ~/.ssh/config as the message says".to_string(),
        ),
        SshError::NotSsh { .. } | SshError::ClosedEarly { .. } => (
            "bastion banner",
            Stage::Bastion,
            "the bastion's port does not speak SSH to this client: check the port, and the sshd log".to_string(),
        ),
        SshError::Connect { .. } => (
            "bastion tcp",
            Stage::Bastion,
            "the bastion cannot be reached (through the jump host when there is one): check its address and port".to_string(),
        ),
        SshError::Timeout { .. } => (
            "key exchange",
            Stage::Bastion,
            "the handshake did not finish within connect_timeout: a slow or overloaded bastion, or a middlebox holding the connection".to_string(),
        ),
        SshError::Handshake { .. }
        | SshError::Disconnected { .. }
        | SshError::Channel { .. }
        | SshError::Io { .. } => (
            "key exchange",
            Stage::Bastion,
            "the bastion and this client did not agree on the key exchange or the bastion hung up: see the bastion's sshd log".to_string(),
        ),
    };
    // The hops before the one that failed passed, within the same handshake.
    let order = ["key exchange", "host key", "authentication"];
    if order.contains(&hop) {
        for passed in order.iter().take_while(|h| **h != hop) {
            d.ok(Stage::Bastion, passed, None, "passed".to_string());
        }
    }
    d.failed(stage, hop, Some(started), message, advice);
}

fn host_key_advice(e: &HostKeyError) -> String {
    match e {
        HostKeyError::Changed {
            name,
            known_hosts,
            recorded,
            offered,
            ..
        } => format!(
            "the bastion's host key is not the one recorded (recorded {recorded}, offered {offered}): a reinstalled bastion or someone in the middle; check {offered} out of band, then run `ssh-keygen -R '{name}' -f {}`",
            known_hosts.display()
        ),
        HostKeyError::Unknown(_) => {
            "the bastion's host key was never recorded: verify its fingerprint on the bastion and accept it on a terminal, or set strict_host_key_checking = \"accept-new\"".to_string()
        }
        _ => "the bastion's host key is refused by known_hosts: see the message".to_string(),
    }
}

/// What the bastion would need to let `user` in: the public key of the identity file.
fn refused_key_advice(profile: &Resolved, user: &str) -> String {
    let keys: Vec<String> = identity_files(profile)
        .iter()
        .filter_map(|p| public_key(p))
        .collect();
    match keys.first() {
        Some(k) => format!(
            "the bastion does not accept the key offered for {user}: add this public key to ~{user}/.ssh/authorized_keys on the bastion (or sign a certificate for it with `paragon-admin access grant`): {k}"
        ),
        None => format!(
            "the bastion does not accept any key offered for {user}: add your public key to ~{user}/.ssh/authorized_keys on the bastion"
        ),
    }
}

fn identity_files(profile: &Resolved) -> Vec<PathBuf> {
    match &profile.identity_file {
        Some(p) => vec![p.clone()],
        None => crate::ssh::auth::default_identity_files(),
    }
}

/// The keys a connection offers, as people name them: the ssh-agent, then each identity file
/// with its fingerprint.
fn offered(profile: &Resolved) -> Vec<String> {
    let mut out = Vec::new();
    if std::env::var_os("SSH_AUTH_SOCK").is_some_and(|s| !s.is_empty()) {
        out.push("a key of the ssh-agent".to_string());
    }
    for p in identity_files(profile) {
        let fp = public_key(&p)
            .and_then(|k| russh::keys::PublicKey::from_openssh(&k).ok())
            .map(|k| format!(" ({})", k.fingerprint(russh::keys::HashAlg::Sha256)))
            .unwrap_or_default();
        out.push(format!("{}{fp}", p.display()));
    }
    out.extend(crate::ssh::certificate_summaries(profile));
    out
}

/// The public key line of an identity file: its `.pub` beside it, else derived from the
/// private key when it has no passphrase.
fn public_key(path: &Path) -> Option<String> {
    let mut pub_path = path.as_os_str().to_owned();
    pub_path.push(".pub");
    if let Ok(text) = std::fs::read_to_string(PathBuf::from(pub_path))
        && let Some(line) = text.lines().find(|l| !l.trim().is_empty())
    {
        return Some(line.trim().to_string());
    }
    let text = crate::ssh::auth::read_identity_file(path).ok()?;
    let key = russh::keys::decode_secret_key(&text, None).ok()?;
    key.public_key().to_openssh().ok()
}

/// The profile's kept connection: not wanted, not running, or running with this build and
/// these settings and a session up.
pub(super) async fn kept(
    profile: &Resolved,
    d: &mut Diagnosis,
    no_agent: bool,
) -> Option<crate::agent::Agent> {
    const NAME: &str = "kept connection";
    if !crate::agent::wanted(profile, no_agent) {
        let why = match no_agent {
            true => "--no-agent: this command connects on its own",
            false => "persist = 0: every command connects on its own",
        };
        d.skipped(Stage::Beyond, NAME, why);
        return None;
    }
    let started = Instant::now();
    let agent = match crate::agent::find(profile).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            d.skipped(
                Stage::Beyond,
                NAME,
                "no agent runs for this profile: the next command starts one",
            );
            return None;
        }
        Err(e) => {
            d.failed(
                Stage::Beyond,
                NAME,
                Some(started),
                e.to_string(),
                "the agent's folder or socket cannot be used: fix what the message names, or use --no-agent".to_string(),
            );
            return None;
        }
    };
    let status = match agent.status().await {
        Ok(s) => s,
        Err(e) => {
            d.failed(
                Stage::Beyond,
                NAME,
                Some(started),
                e.to_string(),
                "the profile's agent does not answer as it should: run `paragon-admin agent stop`; the next command starts a new one".to_string(),
            );
            return None;
        }
    };
    let bastion = format!(
        "bastion {}",
        dial::target(&profile.settings.host.0, profile.settings.port.0)
    );
    let mut wrong = Vec::new();
    if !status.connected {
        wrong.push("its session to the bastion is down".to_string());
    }
    if status.version != crate::agent::proto::build()
        || status.protocol != crate::agent::proto::PROTOCOL
    {
        wrong.push(format!(
            "it runs another build ({}, protocol {})",
            status.version, status.protocol
        ));
    }
    let same_place = status.bastion == bastion
        || status.bastion == dial::target(&profile.settings.host.0, profile.settings.port.0);
    if !same_place {
        wrong.push(format!("it holds {} instead", status.bastion));
    }
    let about = format!(
        "pid {}, up since {}, {} reconnects",
        status.pid, status.up_since, status.reconnects
    );
    if wrong.is_empty() {
        d.ok(
            Stage::Beyond,
            NAME,
            Some(started),
            format!(
                "running with this build and these settings, session up ({about}); the hops below go through it"
            ),
        );
        Some(agent)
    } else {
        d.failed(
            Stage::Beyond,
            NAME,
            Some(started),
            format!("{} ({about})", wrong.join("; ")),
            "the profile's agent is not the connection commands need: run `paragon-admin agent stop`; the next command starts one with this build and these settings".to_string(),
        );
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_answers_on_the_port_is_named() {
        assert_eq!(
            answered(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"),
            Answer::Ssh("SSH-2.0-OpenSSH_9.2p1 Debian-2".into())
        );
        assert_eq!(
            answered(b"welcome\r\nSSH-2.0-x\r\n"),
            Answer::Ssh("SSH-2.0-x".into())
        );
        assert_eq!(
            answered(b"HTTP/1.1 400 Bad Request\r\n\r\n"),
            Answer::Http("HTTP/1.1 400 Bad Request".into())
        );
        assert_eq!(answered(b"\x15\x03\x01\x00\x02\x02\x46"), Answer::Tls);
        assert_eq!(
            answered(b"+OK redis\r\n"),
            Answer::Other("+OK redis".into())
        );
        assert_eq!(answered(b""), Answer::Nothing);
    }
}
