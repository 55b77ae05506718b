//! TLS secrets whose certificate expires within 30 days (failure within 14: the upstream
//! uptime monitor alerts 14 days ahead, PARAGON.md). Only `kubernetes.io/tls` secrets are
//! listed, a page at a time; only `tls.crt` is read, never the key.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::Api;

use x509_parser::pem::Pem;

use super::{CheckResult, Finding, count, subject};
use crate::kube::list::each_page;

const WARN_WITHIN: SignedDuration = SignedDuration::from_hours(30 * 24);
const FAIL_WITHIN: SignedDuration = SignedDuration::from_hours(14 * 24);

pub async fn check(client: kube::Client, now: Timestamp) -> CheckResult {
    let mut findings = Vec::new();
    let mut total = 0usize;
    each_page(
        &Api::<Secret>::all(client),
        super::lists().fields("type=kubernetes.io/tls"),
        |page| {
            total += page.len();
            findings.extend(page.iter().filter_map(|s| examine(s, now)));
        },
    )
    .await?;
    if findings.is_empty() {
        findings.push(Finding::ok(
            "tls secrets",
            format!(
                "{} valid for more than 30 days",
                count(total, "certificate", "certificates")
            ),
        ));
    }
    Ok(findings)
}

pub fn examine(secret: &Secret, now: Timestamp) -> Option<Finding> {
    let s = subject(
        secret.metadata.namespace.as_deref(),
        "secret",
        secret.metadata.name.as_deref().unwrap_or_default(),
    );
    let Some(crt) = secret.data.as_ref().and_then(|d| d.get("tls.crt")) else {
        return Some(Finding::warn(s, "no tls.crt in this TLS secret"));
    };
    let not_after = match not_after(&crt.0) {
        Ok(t) => t,
        Err(why) => return Some(Finding::warn(s, format!("cannot read tls.crt: {why}"))),
    };
    let left = not_after.duration_since(now);
    let days = left.as_secs().div_euclid(86_400);
    if left <= SignedDuration::ZERO {
        Some(Finding::fail(
            s,
            format!("certificate expired on {}", day(not_after)),
        ))
    } else if left <= FAIL_WITHIN {
        Some(Finding::fail(
            s,
            format!("certificate expires in {days} days ({})", day(not_after)),
        ))
    } else if left <= WARN_WITHIN {
        Some(Finding::warn(
            s,
            format!("certificate expires in {days} days ({})", day(not_after)),
        ))
    } else {
        None
    }
}

fn day(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d").to_string()
}

/// The `notAfter` of the first certificate (the leaf) in PEM (or DER) bytes. As openssl and
/// Go's `pem.Decode` do, text before, between and after PEM blocks is skipped (openssl's
/// "Bag Attributes", a leading blank line), and blocks that are not certificates (a key put
/// in the same file) are passed over.
pub fn not_after(bytes: &[u8]) -> Result<Timestamp, String> {
    let mut blocks = Pem::iter_from_buffer(bytes).peekable();
    let der = if blocks.peek().is_none() {
        bytes.to_vec()
    } else {
        let mut found = None;
        for block in blocks {
            let block = block.map_err(|e| format!("bad PEM block: {e}"))?;
            if CERT_LABELS.contains(&block.label.as_str()) {
                found = Some(block.contents);
                break;
            }
        }
        found.ok_or("no CERTIFICATE block in the PEM text")?
    };
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| e.to_string())?;
    Timestamp::from_second(cert.validity().not_after.timestamp()).map_err(|e| e.to_string())
}

/// PEM labels openssl accepts for a certificate.
const CERT_LABELS: &[&str] = &["CERTIFICATE", "TRUSTED CERTIFICATE", "X509 CERTIFICATE"];

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for `paragon.test`, valid until 2036-11-25
    /// (`openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 3653`).
    const CERT: &str = include_str!("testdata/cert.pem");

    #[test]
    fn not_after_is_read_from_pem() {
        let t = not_after(CERT.as_bytes()).unwrap();
        assert_eq!(day(t), "2036-11-25");
    }

    #[test]
    fn expiry_thresholds() {
        let secret = |crt: &str| -> Secret {
            let mut s = Secret::default();
            s.metadata.name = Some("tls".into());
            s.metadata.namespace = Some("paragon".into());
            s.data = Some(
                [(
                    "tls.crt".to_string(),
                    k8s_openapi::ByteString(crt.as_bytes().to_vec()),
                )]
                .into(),
            );
            s
        };
        let at = |d: &str| -> Timestamp { d.parse().unwrap() };
        assert_eq!(examine(&secret(CERT), at("2030-01-01T00:00:00Z")), None);
        let f = examine(&secret(CERT), at("2036-11-01T00:00:00Z")).unwrap();
        assert_eq!(f.severity, crate::health::Severity::Warn, "{}", f.message);
        let f = examine(&secret(CERT), at("2036-11-16T00:00:00Z")).unwrap();
        assert_eq!(f.message, "certificate expires in 9 days (2036-11-25)");
        assert_eq!(f.severity, crate::health::Severity::Fail);
        assert!(
            examine(&secret(CERT), at("2037-01-01T00:00:00Z"))
                .unwrap()
                .message
                .contains("expired")
        );
        assert!(
            examine(&secret("garbage"), at("2030-01-01T00:00:00Z"))
                .unwrap()
                .message
                .starts_with("cannot read")
        );
    }

    #[test]
    fn text_and_blank_lines_before_the_pem_block_are_skipped_as_openssl_does() {
        // `openssl pkcs12 -nodes` output: Bag Attributes, subject and issuer lines first, and
        // the key before the certificate; then a cert-manager style leading blank line.
        let bagged = format!(
            "Bag Attributes\n    localKeyID: 01 00 00 00\nsubject=CN = paragon.test\n\n\
             -----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n{CERT}"
        );
        assert_eq!(day(not_after(bagged.as_bytes()).unwrap()), "2036-11-25");
        let blank = format!("\n\n{CERT}");
        assert_eq!(day(not_after(blank.as_bytes()).unwrap()), "2036-11-25");
        let crlf = CERT.replace('\n', "\r\n");
        assert_eq!(day(not_after(crlf.as_bytes()).unwrap()), "2036-11-25");
        assert_eq!(
            not_after(b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n")
                .unwrap_err(),
            "no CERTIFICATE block in the PEM text"
        );
    }
}
