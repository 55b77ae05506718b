//! A plain HTTP/1.1 GET over a dialed stream (hyper's client connection), for the MinIO and
//! monitoring probes, in the clear or over TLS (rustls, verified against the system's roots or
//! a `ca_file`, for the URL's host name). The body is capped: a status page is small. A stream
//! refused at its far end after it opened (`pods/portforward` to a port nothing listens on in
//! the pod) is a dial failure, as a refused TCP connect is. Knows nothing of which check asks,
//! nor of the route, nor of the config file beyond reading a CA bundle.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::dial::{DialError, Dialer};

/// The largest body read (Prometheus' alert list on a bad day is well under this).
const MAX_BODY: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(transparent)]
    Dial(#[from] DialError),
    #[error("HTTP exchange with {target} failed: {message}")]
    Exchange { target: String, message: String },
    /// The TLS handshake failed: `reason` says why in one sentence.
    #[error("TLS with {target}: {reason}")]
    Tls { target: String, reason: String },
    /// The API route was asked for and there is no API to take it through.
    #[error("no route to {target} through the Kubernetes API: {reason}")]
    NoApiRoute { target: String, reason: String },
}

impl crate::exit::ExitStatus for HttpError {
    fn exit_status(&self) -> u8 {
        crate::exit::FAILED
    }
}

pub struct Response {
    pub status: u16,
    pub body: bytes::Bytes,
}

/// How a probe speaks once the stream is open.
#[derive(Debug, Clone, Copy)]
pub enum Transport<'a> {
    Plain,
    /// TLS, verified against `ca_file`'s CAs, else the system's roots.
    Tls {
        ca_file: Option<&'a Path>,
    },
}

/// `GET path` on `host:port` through `dialer`.
pub async fn get(
    dialer: &dyn Dialer,
    host: &str,
    port: u16,
    path: &str,
    transport: Transport<'_>,
) -> Result<Response, HttpError> {
    let target = crate::dial::target(host, port);
    let stream = dialer.connect(host, port).await?;
    match transport {
        Transport::Plain => exchange(stream, &target, path).await,
        Transport::Tls { ca_file } => {
            let tls_error = |reason: String| HttpError::Tls {
                target: target.clone(),
                reason,
            };
            let config = client_config(ca_file).map_err(tls_error)?;
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| tls_error(format!("{host} cannot be verified as a TLS name: {e}")))?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, stream)
                .await
                .map_err(|e| match e.kind() {
                    // Refused before a byte of TLS: nothing listens there.
                    std::io::ErrorKind::ConnectionRefused => HttpError::Dial(DialError::Io {
                        target: target.clone(),
                        cause: e,
                    }),
                    _ => tls_error(handshake_failure(&e, host, ca_file)),
                })?;
            exchange(stream, &target, path).await
        }
    }
}

/// One request and its capped answer over an open stream.
async fn exchange<S>(stream: S, target: &str, path: &str) -> Result<Response, HttpError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let fail = |message: String| HttpError::Exchange {
        target: target.to_string(),
        message,
    };
    let failed = |e: hyper::Error| match refused(&e) {
        Some(cause) => HttpError::Dial(DialError::Io {
            target: target.to_string(),
            cause: std::io::Error::new(cause.kind(), cause.to_string()),
        }),
        None => fail(e.to_string()),
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(failed)?;
    let mut driver = tokio::spawn(conn);
    let req = http::Request::get(path)
        .header(http::header::HOST, target)
        .header(
            http::header::USER_AGENT,
            concat!("paragon-admin/", env!("CARGO_PKG_VERSION")),
        )
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| fail(e.to_string()))?;
    let result = async {
        let resp = match sender.send_request(req).await {
            Ok(resp) => resp,
            // The request only learns that it was cancelled; the connection's own error says
            // why (a refusal at the far end, say): it ends as the request does.
            Err(e) => match (&mut driver).await {
                Ok(Err(conn)) if refused(&conn).is_some() => return Err(failed(conn)),
                _ => return Err(failed(e)),
            },
        };
        let status = resp.status().as_u16();
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| fail(e.to_string()))?
            .to_bytes();
        Ok(Response { status, body })
    }
    .await;
    driver.abort();
    result
}

/// The refusal inside `e`, if the far end refused the connection after the stream opened.
fn refused(e: &hyper::Error) -> Option<&std::io::Error> {
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return Some(io);
        }
        cause = c.source();
    }
    None
}

/// The TLS client: ring (the crate's one crypto backend), HTTP/1.1, the given roots.
fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let roots = match ca_file {
        Some(path) => Arc::new(crate::config::read_ca_bundle(path)?),
        None => system_roots()?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("no TLS version to offer: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The platform's trusted CAs, read once per run (a few hundred files on Debian).
fn system_roots() -> Result<Arc<rustls::RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<rustls::RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                let why = found
                    .errors
                    .first()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default();
                return Err(format!(
                    "no system CA certificates found{why}: install ca-certificates or set ca_file"
                ));
            }
            Ok(Arc::new(roots))
        })
        .clone()
}

/// One sentence on why the handshake failed: not trusted, name mismatch, expired, or rustls'
/// own words for anything else.
fn handshake_failure(e: &std::io::Error, host: &str, ca_file: Option<&Path>) -> String {
    use rustls::CertificateError as C;
    let roots = match ca_file {
        Some(p) => format!("the CAs of ca_file {}", p.display()),
        None => "the system's CAs (set ca_file to the CA's PEM bundle)".to_string(),
    };
    let Some(rustls_error) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return format!("TLS handshake failed: {e}");
    };
    match rustls_error {
        rustls::Error::InvalidCertificate(cert) => match cert {
            C::UnknownIssuer | C::BadSignature => {
                format!("certificate not trusted: not issued by {roots}")
            }
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                format!("name mismatch: the certificate is not valid for {host}")
            }
            C::Expired | C::ExpiredContext { .. } => format!("certificate expired: {cert}"),
            C::NotValidYet | C::NotValidYetContext { .. } => {
                format!("certificate not valid yet: {cert}")
            }
            other => format!("certificate refused: {other}"),
        },
        other => format!("TLS handshake failed: {other}"),
    }
}
