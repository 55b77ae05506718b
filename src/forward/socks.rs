//! The server side of SOCKS5 (RFC 1928), as much as a forward needs: no authentication,
//! CONNECT only, to IPv4, IPv6 or a domain name (resolved on the far side, as `socks5h`).
//! It only parses and answers; dialing is the caller's. A domain name is checked here: one
//! with a NUL byte (or anything else a host name cannot hold) would be sent on as a
//! `direct-tcpip` request that OpenSSH's sshd treats as a protocol violation, dropping the
//! whole session and every other forward's transfer with it.

use std::net::{Ipv4Addr, Ipv6Addr};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::dial::DialError;

const VERSION: u8 = 5;
const NO_AUTH: u8 = 0x00;
const NO_ACCEPTABLE_METHOD: u8 = 0xff;
const CONNECT: u8 = 0x01;
const ATYP_V4: u8 = 0x01;
const ATYP_DOMAIN: u8 = 0x03;
const ATYP_V6: u8 = 0x04;

/// A SOCKS5 reply code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reply {
    Succeeded = 0x00,
    GeneralFailure = 0x01,
    NetworkUnreachable = 0x03,
    HostUnreachable = 0x04,
    ConnectionRefused = 0x05,
    CommandNotSupported = 0x07,
    AddressTypeNotSupported = 0x08,
}

impl Reply {
    /// The reply that best tells a client why dialing failed.
    pub fn for_dial_error(e: &DialError) -> Reply {
        match e {
            DialError::Io { cause, .. } => match cause.kind() {
                std::io::ErrorKind::ConnectionRefused => Reply::ConnectionRefused,
                std::io::ErrorKind::NetworkUnreachable => Reply::NetworkUnreachable,
                std::io::ErrorKind::HostUnreachable => Reply::HostUnreachable,
                _ => Reply::GeneralFailure,
            },
            DialError::Timeout { .. } => Reply::HostUnreachable,
            DialError::Rejected { .. } => Reply::ConnectionRefused,
            DialError::Unresolved { .. } => Reply::HostUnreachable,
            DialError::NoSession { .. } => Reply::GeneralFailure,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SocksError {
    #[error("not a SOCKS5 client (version byte {0:#04x})")]
    Version(u8),
    #[error("the client offers no method without authentication")]
    NoAcceptableMethod,
    #[error("unsupported SOCKS5 command {0:#04x} (only CONNECT)")]
    Command(u8),
    #[error("unsupported SOCKS5 address type {0:#04x}")]
    AddressType(u8),
    #[error("{0:?} is not a host name (refused here, never sent to the bastion)")]
    Domain(String),
    // Transparent: the message is the io error's, printed once whether shown alone (the
    // forward log) or in a chain.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads the greeting and the request; answers the greeting, and refusals of unsupported
/// requests. Returns the destination for the caller to dial and then `reply` to.
pub async fn accept_request<S>(s: &mut S) -> Result<(String, u16), SocksError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut head = [0u8; 2];
    s.read_exact(&mut head).await?;
    if head[0] != VERSION {
        return Err(SocksError::Version(head[0]));
    }
    let mut methods = vec![0u8; usize::from(head[1])];
    s.read_exact(&mut methods).await?;
    if !methods.contains(&NO_AUTH) {
        s.write_all(&[VERSION, NO_ACCEPTABLE_METHOD]).await?;
        return Err(SocksError::NoAcceptableMethod);
    }
    s.write_all(&[VERSION, NO_AUTH]).await?;

    let mut req = [0u8; 4];
    s.read_exact(&mut req).await?;
    if req[0] != VERSION {
        return Err(SocksError::Version(req[0]));
    }
    let host = match req[3] {
        ATYP_V4 => {
            let mut a = [0u8; 4];
            s.read_exact(&mut a).await?;
            Ipv4Addr::from(a).to_string()
        }
        ATYP_V6 => {
            let mut a = [0u8; 16];
            s.read_exact(&mut a).await?;
            Ipv6Addr::from(a).to_string()
        }
        ATYP_DOMAIN => {
            let len = s.read_u8().await?;
            let mut name = vec![0u8; usize::from(len)];
            s.read_exact(&mut name).await?;
            match String::from_utf8(name) {
                Ok(name) if is_host_name(&name) => name,
                Ok(name) => return refuse_name(s, name).await,
                Err(e) => {
                    let name = String::from_utf8_lossy(e.as_bytes()).into_owned();
                    return refuse_name(s, name).await;
                }
            }
        }
        other => {
            reply(s, Reply::AddressTypeNotSupported).await?;
            return Err(SocksError::AddressType(other));
        }
    };
    let port = s.read_u16().await?;
    if req[1] != CONNECT {
        reply(s, Reply::CommandNotSupported).await?;
        return Err(SocksError::Command(req[1]));
    }
    Ok((host, port))
}

/// A name that cannot be resolved anywhere is answered as unreachable: the client hears why
/// at once, and the bastion never sees it.
async fn refuse_name<S, T>(s: &mut S, name: String) -> Result<T, SocksError>
where
    S: AsyncWrite + Unpin,
{
    reply(s, Reply::HostUnreachable).await?;
    Err(SocksError::Domain(name))
}

/// A host name as resolvers take it (RFC 1123 labels, `_` allowed as in service names, a
/// trailing dot allowed, at most 253 characters), or an IP address literal.
pub fn is_host_name(name: &str) -> bool {
    if name.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Answers the request. The bound address is not meaningful through a tunnel: 0.0.0.0:0.
pub async fn reply<S: AsyncWrite + Unpin>(s: &mut S, code: Reply) -> std::io::Result<()> {
    s.write_all(&[VERSION, code as u8, 0, ATYP_V4, 0, 0, 0, 0, 0, 0])
        .await?;
    s.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn request(bytes: &[u8]) -> (Result<(String, u16), SocksError>, Vec<u8>) {
        let (mut client, mut server) = tokio::io::duplex(1024);
        client.write_all(bytes).await.unwrap();
        let r = accept_request(&mut server).await;
        drop(server);
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        (r, answer)
    }

    #[tokio::test]
    async fn connect_to_domain_ipv4_and_ipv6() {
        let mut domain = vec![5, 1, 0, 5, 1, 0, 3, 11];
        domain.extend_from_slice(b"grafana.svc");
        domain.extend_from_slice(&4500u16.to_be_bytes());
        let (r, answer) = request(&domain).await;
        assert_eq!(r.unwrap(), ("grafana.svc".to_string(), 4500));
        assert_eq!(answer, [5, 0]);

        let (r, _) = request(&[5, 1, 0, 5, 1, 0, 1, 203, 0, 113, 7, 0, 80]).await;
        assert_eq!(r.unwrap(), ("203.0.113.7".to_string(), 80));

        let mut v6 = vec![5, 1, 0, 5, 1, 0, 4];
        v6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&[1, 187]);
        let (r, _) = request(&v6).await;
        assert_eq!(r.unwrap(), ("2001:db8::1".to_string(), 443));
    }

    #[tokio::test]
    async fn only_no_auth_is_accepted() {
        let (r, answer) = request(&[5, 1, 2]).await;
        assert!(matches!(r, Err(SocksError::NoAcceptableMethod)));
        assert_eq!(answer, [5, 0xff]);
    }

    #[tokio::test]
    async fn bind_and_udp_are_refused_with_a_reply() {
        let (r, answer) = request(&[5, 1, 0, 5, 2, 0, 1, 127, 0, 0, 1, 0, 80]).await;
        assert!(matches!(r, Err(SocksError::Command(2))));
        assert_eq!(answer[2..4], [5, 0x07]);
    }

    #[tokio::test]
    async fn a_name_with_a_nul_byte_or_no_host_name_is_refused_as_unreachable() {
        for name in [
            &b"grafana\0.evil"[..],
            b"",
            b"a b",
            b"\xff\xfe",
            b"-x.svc",
            b"x..svc",
            b"x/y",
        ] {
            let mut req = vec![5, 1, 0, 5, 1, 0, 3, name.len() as u8];
            req.extend_from_slice(name);
            req.extend_from_slice(&80u16.to_be_bytes());
            let (r, answer) = request(&req).await;
            assert!(matches!(r, Err(SocksError::Domain(_))), "{name:?}: {r:?}");
            assert_eq!(answer[2..4], [5, Reply::HostUnreachable as u8], "{name:?}");
        }
    }

    #[test]
    fn host_names_and_address_literals_are_accepted() {
        for name in [
            "grafana.monitoring.svc.cluster.local",
            "grafana.monitoring.svc.cluster.local.",
            "_http._tcp.x",
            "localhost",
            "10.0.0.1",
            "::1",
            "a1-b2",
        ] {
            assert!(is_host_name(name), "{name}");
        }
        assert!(!is_host_name(&"a".repeat(64)));
        assert!(!is_host_name(&["a"; 130].join(".")));
    }

    #[tokio::test]
    async fn socks4_is_not_socks5() {
        let (r, _) = request(&[4, 1, 0, 80, 127, 0, 0, 1, 0]).await;
        assert!(matches!(r, Err(SocksError::Version(4))));
    }
}
