//! Reaching the bastion: the profile completed from OpenSSH's config (`ssh -G`), the TCP
//! connection (directly or through a `proxy_jump` host), the key exchange with our window,
//! packet and cipher choices, the host key check and authentication, all within a deadline
//! that does not count time spent at a prompt. It builds the `Bastion`; the channels opened
//! on it live in the parent module. It knows nothing of forwards, kube or clap.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::ssh_key::Algorithm;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span};

use super::{
    Bastion, Client, HostKeyCheck, Inner, MAX_PACKET_SIZE, OpenFailures, READ_BUFFER, SshError,
    WINDOW_SIZE, auth, identification,
};
use crate::config::Resolved;
use crate::dial::{self, BoxStream};

/// The profile with what `~/.ssh/config` says about its host (OpenSSH's own resolution,
/// `ssh -G`) where the profile is silent: the host may be a Host alias. The profile's own
/// keys win; a port of 22 counts as unset, since it is the profile's default.
pub(super) fn with_openssh_config(profile: &Resolved) -> Result<Resolved, SshError> {
    let Some(alias) = crate::openssh::resolve_for_connect(&profile.settings.host.0)? else {
        return Ok(profile.clone());
    };
    let ssh_dir = dirs::home_dir()
        .ok_or(crate::openssh::OpenSshError::NoHome)?
        .join(".ssh");
    let path = |p: &str| {
        crate::config::expand_path(p, &ssh_dir)
            .map_err(|_| SshError::OpenSsh(crate::openssh::OpenSshError::NoHome))
    };
    let mut r = profile.clone();
    if alias.host_name != r.settings.host.0.to_ascii_lowercase() {
        debug!("{} is {} (HostName)", r.settings.host.0, alias.host_name);
    }
    r.settings.host.0 = alias.host_name;
    if r.settings.port.0 == 22
        && let Some(port) = alias.port
    {
        r.settings.port.0 = port;
    }
    if r.settings.user.is_none()
        && let Some(user) = alias.user
    {
        r.user = user;
    }
    if r.settings.identity_file.is_none()
        && let Some(i) = alias.identity_file
    {
        r.identity_file = Some(path(&i)?);
    }
    if r.settings.proxy_jump.is_none()
        && let Some(jump) = alias.proxy_jump
    {
        let parsed = crate::config::JumpHost::parse(&jump).map_err(|reason| SshError::BadJump {
            host: profile.settings.host.0.clone(),
            jump: jump.clone(),
            reason,
        })?;
        r.settings.proxy_jump = Some(parsed);
    }
    if r.settings.known_hosts.is_none()
        && let Some(k) = alias.known_hosts
    {
        r.known_hosts = path(&k)?;
    }
    if r.settings.hash_known_hosts.is_none() {
        r.settings.hash_known_hosts = Some(alias.hash_known_hosts);
    }
    Ok(r)
}

/// Waits `after`, not counting time while `prompting` is true (a person is answering).
pub(super) async fn deadline(after: Duration, mut prompting: watch::Receiver<bool>) {
    let mut remaining = after;
    loop {
        let start = tokio::time::Instant::now();
        let asked = tokio::select! {
            () = tokio::time::sleep(remaining) => return,
            r = prompting.wait_for(|p| *p) => r.is_ok(),
        };
        if !asked {
            // The connection attempt is over; its own result decides.
            return std::future::pending().await;
        }
        remaining = remaining.saturating_sub(start.elapsed());
        if prompting.wait_for(|p| !*p).await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// One SSH hop: where, as whom, and how its key is checked.
struct Hop {
    host: String,
    port: u16,
    user: String,
}

pub(super) async fn connect_all(
    profile: &Resolved,
    prompting: Arc<watch::Sender<bool>>,
) -> Result<Bastion, SshError> {
    let p = &profile.settings;
    let bastion = Hop {
        host: p.host.0.clone(),
        port: p.port.0,
        user: profile.user.clone(),
    };
    let closed = CancellationToken::new();
    let (stream, jumped): (BoxStream, _) = match &p.proxy_jump {
        None => (tcp_connect(&bastion.host, bastion.port).await?, None),
        Some(j) => {
            let hop = Hop {
                host: j.host.clone(),
                port: j.port,
                user: j.user.clone().unwrap_or_else(|| profile.user.clone()),
            };
            let jump_stream = tcp_connect(&hop.host, hop.port).await?;
            let (jump, jump_check, _) = handshake(
                profile,
                &hop,
                jump_stream,
                &prompting,
                CancellationToken::new(),
                Arc::default(),
            )
            .instrument(info_span!("jump", host = %dial::target(&hop.host, hop.port)))
            .await?;
            let channel = jump
                .channel_open_direct_tcpip(
                    bastion.host.clone(),
                    u32::from(bastion.port),
                    "127.0.0.1",
                    0,
                )
                .await
                .map_err(|e| SshError::Connect {
                    target: dial::target(&bastion.host, bastion.port),
                    cause: std::io::Error::other(format!(
                        "through jump host {}: {e}",
                        dial::target(&hop.host, hop.port)
                    )),
                })?;
            (
                Box::new(channel.into_stream()) as BoxStream,
                Some((jump, jump_check)),
            )
        }
    };
    let open_failures = Arc::new(OpenFailures::default());
    let (handle, check, accepted) = handshake(
        profile,
        &bastion,
        stream,
        &prompting,
        closed.clone(),
        open_failures.clone(),
    )
    .await?;
    let (jump, jump_check) = jumped.unzip();
    Ok(Bastion {
        inner: Arc::new(Inner {
            handle,
            _jump: jump,
            jump_check,
            target: dial::target(&bastion.host, bastion.port),
            closed,
            open_timeout: Duration::from_secs(p.connect_timeout.0),
            channels: Arc::default(),
            open_failures,
            check,
            certificate: accepted.certificate,
            accepted: accepted.offered,
        }),
    })
}

async fn tcp_connect(host: &str, port: u16) -> Result<BoxStream, SshError> {
    let s = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|cause| SshError::Connect {
            target: dial::target(host, port),
            cause,
        })?;
    // Keystrokes in a shell are single bytes: never hold them back.
    let _ = s.set_nodelay(true);
    // Writes pass straight through a tokio BufReader: only reads are buffered.
    Ok(Box::new(tokio::io::BufReader::with_capacity(
        READ_BUFFER,
        super::quickack::QuickAck(s),
    )))
}

/// SSH over `stream` to `hop`: key exchange, host key check, authentication.
async fn handshake(
    profile: &Resolved,
    hop: &Hop,
    stream: BoxStream,
    prompting: &Arc<watch::Sender<bool>>,
    closed: CancellationToken,
    open_failures: Arc<OpenFailures>,
) -> Result<(Handle<Client>, Arc<HostKeyCheck>, auth::Accepted), SshError> {
    let target = dial::target(&hop.host, hop.port);
    let check = Arc::new(HostKeyCheck {
        host: hop.host.clone(),
        port: hop.port,
        known_hosts: profile.known_hosts.clone(),
        policy: profile.settings.strict_host_key_checking,
        hash: profile.settings.hash_known_hosts.unwrap_or(false),
        profile: profile.name.clone(),
        prompting: prompting.clone(),
        accepted: Default::default(),
    });
    let recorded = check.recorded_algorithms();
    let config = Arc::new(client_config(
        profile.settings.keepalive_interval,
        &recorded,
    ));
    let client = Client {
        check: check.clone(),
        open_failures,
        _closed: closed.drop_guard(),
    };
    debug!("key exchange");
    let (stream, heard) = identification::listen(stream);
    let mut handle = client::connect_stream(config, stream, client)
        .await
        .map_err(|e| match e {
            SshError::Handshake { cause, .. } => heard.handshake_error(&target, cause),
            other => other,
        })?;
    debug!("authenticating as {}", hop.user);
    let accepted = auth::authenticate(&mut handle, &hop.user, &target, profile, prompting).await?;
    Ok((handle, check, accepted))
}

/// The russh client configuration: window and packet sizes (see the constants), keepalive,
/// host certificates, and the host key algorithms known_hosts records for this host asked for
/// first (as OpenSSH does), so a host with several keys proves the one we know.
fn client_config(keepalive_interval: u64, recorded: &[Algorithm]) -> client::Config {
    let mut preferred = russh::Preferred::default();
    if !recorded.is_empty() {
        let family = |a: &Algorithm| match a {
            Algorithm::Rsa { .. } => "rsa".to_string(),
            other => other.as_str().to_string(),
        };
        let known: Vec<String> = recorded.iter().map(family).collect();
        let (mut first, rest): (Vec<Algorithm>, Vec<Algorithm>) = preferred
            .key
            .iter()
            .cloned()
            .partition(|a| known.contains(&family(a)));
        first.extend(rest);
        preferred.key = Cow::Owned(first);
    }
    // Host certificates are asked for first, as OpenSSH's default HostKeyAlgorithms does: a
    // certificate the known_hosts CAs do not vouch for falls back to the key inside it.
    preferred.host_key_certificates = Cow::Owned(
        preferred
            .key
            .iter()
            .filter(|a| !matches!(a, Algorithm::Rsa { hash: None }))
            .cloned()
            .collect(),
    );
    preferred.cipher = Cow::Owned(cipher_order());
    client::Config {
        window_size: WINDOW_SIZE,
        maximum_packet_size: MAX_PACKET_SIZE,
        keepalive_interval: (keepalive_interval > 0)
            .then(|| Duration::from_secs(keepalive_interval)),
        keepalive_max: 3,
        nodelay: true,
        preferred,
        ..Default::default()
    }
}

/// The ciphers to offer, best first: AES-256-GCM where the CPU has AES and carry-less multiply
/// instructions (there it costs half of ChaCha20-Poly1305's CPU per byte, measured with
/// scripts/bench-forward.sh), else ChaCha20-Poly1305, which is faster without them (the
/// choice BoringSSL and Go's TLS make too). Both are AEADs OpenSSH offers by default.
fn cipher_order() -> Vec<russh::cipher::Name> {
    use russh::cipher::{AES_128_GCM, AES_256_GCM, CHACHA20_POLY1305};
    let mut order = russh::Preferred::default().cipher.into_owned();
    let first = if has_aes_hardware() {
        [AES_256_GCM, AES_128_GCM, CHACHA20_POLY1305]
    } else {
        [CHACHA20_POLY1305, AES_256_GCM, AES_128_GCM]
    };
    order.retain(|c| !first.contains(c));
    let mut out = first.to_vec();
    out.extend(order);
    out
}

fn has_aes_hardware() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_key_types_are_asked_for_first() {
        let c = client_config(
            0,
            &[Algorithm::Ecdsa {
                curve: russh::keys::ssh_key::EcdsaCurve::NistP256,
            }],
        );
        assert_eq!(c.preferred.key[0].as_str(), "ecdsa-sha2-nistp256");
        assert!(c.keepalive_interval.is_none());
        let c = client_config(15, &[Algorithm::Rsa { hash: None }]);
        assert!(matches!(c.preferred.key[0], Algorithm::Rsa { .. }));
        assert_eq!(c.keepalive_interval, Some(Duration::from_secs(15)));
        assert_eq!(c.window_size, WINDOW_SIZE);
    }

    #[tokio::test]
    async fn deadline_does_not_count_time_spent_at_a_prompt() {
        let (tx, rx) = watch::channel(false);
        let start = tokio::time::Instant::now();
        let person = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            tx.send_replace(true);
            tokio::time::sleep(Duration::from_millis(400)).await;
            tx.send_replace(false);
            // Keep the sender alive: a dropped sender means the attempt is over.
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        deadline(Duration::from_millis(300), rx).await;
        let took = start.elapsed();
        // 300 ms of budget plus the 400 ms at the prompt.
        assert!(took >= Duration::from_millis(650), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
        person.abort();
    }

    #[test]
    fn ciphers_are_aeads_first_and_each_offered_once() {
        let order = cipher_order();
        let names: Vec<&str> = order.iter().map(|c| c.as_ref()).collect();
        let aeads = [
            "aes256-gcm@openssh.com",
            "aes128-gcm@openssh.com",
            "chacha20-poly1305@openssh.com",
        ];
        assert!(names[..3].iter().all(|n| aeads.contains(n)), "{names:?}");
        let first = if has_aes_hardware() {
            "aes256-gcm@openssh.com"
        } else {
            "chacha20-poly1305@openssh.com"
        };
        assert_eq!(names[0], first);
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        for c in russh::Preferred::default().cipher.iter() {
            assert!(order.contains(c), "{c:?} dropped");
        }
    }
}
