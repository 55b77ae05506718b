//! The sandbox's credentials: its own certificate authority, the serving certificate it
//! signs (valid for the listen address, `localhost` and the in-cluster API names), the
//! bearer token, and the certificates the generated TLS secrets carry.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const DAY: i64 = 86_400;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot make the sandbox's certificates")]
    Certificate(#[from] rcgen::Error),
    #[error("cannot set up TLS for the sandbox")]
    Rustls(#[from] rustls::Error),
    #[error("the operating system's random number generator failed")]
    Random,
    #[error("cannot compute a certificate date: {0}")]
    Date(String),
}

/// A bearer token; its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Token(pub(crate) String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token([redacted])")
    }
}

/// What a running sandbox serves with.
pub(crate) struct Credentials {
    pub ca_pem: String,
    pub server_config: Arc<rustls::ServerConfig>,
    pub token: Token,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// `n` random bytes as lowercase hex.
pub(crate) fn random_hex(n: usize) -> Result<String, TlsError> {
    let mut bytes = vec![0u8; n];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| TlsError::Random)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A fresh CA and a serving certificate for `ip` (all loopback names when it is unspecified).
pub(crate) fn credentials(ip: IpAddr, now: i64) -> Result<Credentials, TlsError> {
    let (ca_params, ca_key) = ca("paragon-admin sandbox CA", now - DAY, now + 365 * DAY)?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut sans = vec![
        "localhost".to_string(),
        "kubernetes".to_string(),
        "kubernetes.default".to_string(),
        "kubernetes.default.svc".to_string(),
        ip.to_string(),
    ];
    if ip.is_unspecified() {
        sans.push(Ipv4Addr::LOCALHOST.to_string());
        sans.push(Ipv6Addr::LOCALHOST.to_string());
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(sans)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    set_validity(&mut params, now - DAY, now + 365 * DAY)?;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, &issuer)?;

    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(go_server_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![
                cert.der().clone(),
                CertificateDer::from(ca_cert.der().to_vec()),
            ],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.ignore_client_order = true;
    Ok(Credentials {
        ca_pem: ca_cert.pem(),
        server_config: Arc::new(config),
        token: Token(random_hex(32)?),
    })
}

/// The cipher suites in the order kube-apiserver chooses from. Its TLS is Go's, whose server
/// takes its own order rather than the client's (since Go 1.17), and on a CPU with AES
/// instructions that order puts AES-128-GCM first (crypto/tls `defaultCipherSuitesTLS13` and
/// `cipherSuitesPreferenceOrder`). rustls' server takes the client's first by default, which
/// for a rustls client is AES-256-GCM: more work per byte on both ends than the API server
/// it stands for would ask. (Go also puts ChaCha20-Poly1305 first for a client that prefers
/// it; rustls has no hook for that, so such a client gets AES-128-GCM here.)
fn go_server_provider() -> rustls::crypto::CryptoProvider {
    use rustls::crypto::ring::cipher_suite::*;
    rustls::crypto::CryptoProvider {
        cipher_suites: vec![
            TLS13_AES_128_GCM_SHA256,
            TLS13_AES_256_GCM_SHA384,
            TLS13_CHACHA20_POLY1305_SHA256,
            TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        ..rustls::crypto::ring::default_provider()
    }
}

fn ca(
    name: &str,
    not_before: i64,
    not_after: i64,
) -> Result<(CertificateParams, KeyPair), TlsError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::new())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    set_validity(&mut params, not_before, not_after)?;
    Ok((params, key))
}

/// Sets a certificate's validity to the days of two unix times (rcgen's date precision).
fn set_validity(params: &mut CertificateParams, from: i64, to: i64) -> Result<(), TlsError> {
    let (y, m, d) = ymd(from)?;
    params.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = ymd(to)?;
    params.not_after = rcgen::date_time_ymd(y, m, d);
    Ok(())
}

fn ymd(unix: i64) -> Result<(i32, u8, u8), TlsError> {
    let d = jiff::Timestamp::from_second(unix)
        .map_err(|e| TlsError::Date(e.to_string()))?
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let month = u8::try_from(d.month()).map_err(|e| TlsError::Date(e.to_string()))?;
    let day = u8::try_from(d.day()).map_err(|e| TlsError::Date(e.to_string()))?;
    Ok((i32::from(d.year()), month, day))
}

/// A `kubernetes.io/tls` secret's contents: a leaf certificate, its key and its CA.
#[derive(Debug)]
pub(crate) struct TlsSecretData {
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
}

/// A certificate for `names`, valid between two unix times (day precision), signed by a
/// fresh issuing CA named `ca_name`.
pub(crate) fn tls_secret(
    ca_name: &str,
    names: &[&str],
    not_before: i64,
    not_after: i64,
) -> Result<TlsSecretData, TlsError> {
    let (ca_params, ca_key) = ca(ca_name, not_before - 30 * DAY, not_after + 365 * DAY)?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate()?;
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
    if let Some(first) = names.first() {
        params.distinguished_name.push(DnType::CommonName, *first);
    }
    set_validity(&mut params, not_before, not_after)?;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(TlsSecretData {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        ca_pem: ca_cert.pem(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The suite OpenSSL's own client (`openssl s_client`, offering `offer`) ends up with
    /// against a server with the sandbox's TLS configuration.
    async fn negotiated_by_openssl(offer: &[&str]) -> String {
        let credentials = credentials(IpAddr::V4(Ipv4Addr::LOCALHOST), 1_800_000_000).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(credentials.server_config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = acceptor.accept(tcp).await;
        });
        let out = tokio::process::Command::new("openssl")
            .args([
                "s_client",
                "-brief",
                "-connect",
                &format!("127.0.0.1:{port}"),
            ])
            .args(offer)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .expect("openssl is missing (apt-get install openssl)");
        server.abort();
        let said = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        said.lines()
            .find_map(|l| l.strip_prefix("Ciphersuite: "))
            .unwrap_or_else(|| panic!("openssl named no cipher suite: {said}"))
            .trim()
            .to_string()
    }

    #[tokio::test]
    async fn the_server_chooses_aes_128_gcm_first_as_the_go_api_server_does() {
        // A client that prefers AES-256-GCM, as rustls' does: Go's server takes AES-128-GCM.
        let tls13 = [
            "-ciphersuites",
            "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256",
        ];
        assert_eq!(
            negotiated_by_openssl(&tls13).await,
            "TLS_AES_128_GCM_SHA256"
        );
        let tls12 = [
            "-tls1_2",
            "-cipher",
            "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256",
        ];
        assert_eq!(
            negotiated_by_openssl(&tls12).await,
            "ECDHE-ECDSA-AES128-GCM-SHA256"
        );
        // A client that offers only what comes later in the order still gets it.
        let chacha = ["-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"];
        assert_eq!(
            negotiated_by_openssl(&chacha).await,
            "TLS_CHACHA20_POLY1305_SHA256"
        );
    }
}
