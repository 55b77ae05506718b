//! Host certificates against OpenSSH itself: a real sshd with a `HostCertificate` made by
//! `ssh-keygen -s`, and known_hosts holding only an `@cert-authority` line. paragon-admin and
//! OpenSSH's `ssh` must decide alike (accepted; refused when expired, for another principal,
//! by an unknown CA, or with the CA `@revoked`), and paragon-admin must say which.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::known_hosts::{Decision, both};
use crate::support::sshd::{Sshd, keygen};

/// A CA key pair (`ssh-keygen`) in `dir`; returns its private key path.
fn ca(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    keygen(&p, "ed25519", "");
    p
}

/// The `@cert-authority PATTERN KEY` line for `ca`.
fn ca_line(marker: &str, pattern: &str, ca: &Path) -> String {
    let public = std::fs::read_to_string(ca.with_extension("pub")).unwrap();
    let mut f = public.split_whitespace();
    format!(
        "{marker} {pattern} {} {}\n",
        f.next().unwrap(),
        f.next().unwrap()
    )
}

/// Signs the server's ed25519 host key with `ca` for `principals` and `validity`
/// (`ssh-keygen -V`), and restarts sshd presenting that certificate.
fn present_certificate(sshd: &mut Sshd, ca: &Path, principals: &str, validity: &str) {
    let host_pub = sshd.host_key_file("ed25519").with_extension("pub");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(ca)
        .args([
            "-I",
            "bastion-host",
            "-h",
            "-n",
            principals,
            "-V",
            validity,
            "-z",
            "7",
        ])
        .arg(&host_pub)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "ssh-keygen -s");
    let cert = sshd.dir.path().join("host_ed25519_key-cert.pub");
    assert!(cert.exists());
    sshd.options.extra_config = vec![format!("HostCertificate {}", cert.display())];
    sshd.restart();
}

#[test]
fn a_host_certificate_is_accepted_with_only_a_cert_authority_line_under_every_policy() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca(dir.path(), "host_ca");
    let mut sshd = Sshd::start();
    present_certificate(&mut sshd, &ca, "127.0.0.1", "-5m:+1h");
    let text = ca_line("@cert-authority", "127.0.0.*", &ca);
    for policy in ["yes", "accept-new", "ask"] {
        let [(o, ours, oe), (t, theirs, te)] = both(&sshd, "127.0.0.1", text.as_bytes(), policy);
        assert_eq!(t, Decision::Connected, "OpenSSH ({policy}): {te}");
        assert_eq!(o, Decision::Connected, "paragon-admin ({policy}): {oe}");
        // Nothing is recorded for a host a CA vouches for.
        assert_eq!(
            ours,
            text.as_bytes(),
            "{policy}: known_hosts must stay untouched"
        );
        assert_eq!(theirs, text.as_bytes());
    }
}

#[test]
fn expired_wrong_principal_and_unknown_ca_certificates_are_refused_naming_the_fault() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca(dir.path(), "host_ca");
    let other = self::ca(dir.path(), "other_ca");
    let mut sshd = Sshd::start();
    let trusting = ca_line("@cert-authority", "*", &ca);
    let cases = [
        (
            "127.0.0.1",
            "20200101:20200102",
            trusting.clone(),
            "it expired at 2020-01-02",
        ),
        (
            "bastion.example.com",
            "-5m:+1h",
            trusting.clone(),
            "127.0.0.1 is not among its principals (bastion.example.com)",
        ),
        (
            "127.0.0.1",
            "-5m:+1h",
            ca_line("@cert-authority", "127.0.0.1", &other),
            "is unknown: the @cert-authority line for this host (line 1) names another CA",
        ),
        (
            "127.0.0.1",
            "-5m:+1h",
            ca_line("@cert-authority", "elsewhere.example.com", &ca),
            "is unknown: no @cert-authority line names this host",
        ),
    ];
    for (principals, validity, text, says) in cases {
        present_certificate(&mut sshd, &ca, principals, validity);
        // Without a plain line for the host, both fall back to the plain key and find it
        // unknown; paragon-admin also says what was wrong with the certificate.
        let [(o, ours, oe), (t, _, te)] = both(&sshd, "127.0.0.1", text.as_bytes(), "yes");
        assert_eq!(t, Decision::Unknown, "OpenSSH ({says}): {te}");
        assert_eq!(o, Decision::Unknown, "paragon-admin ({says}): {oe}");
        assert!(oe.contains(says), "message must say {says:?}: {oe}");
        assert!(oe.contains("key id \"bastion-host\", serial 7"), "{oe}");
        assert_eq!(ours, text.as_bytes());
        // Where OpenSSH then trusts the plain key (recorded for the host), so do we.
        let plain = format!("{text}{}", sshd.known_hosts_line());
        let [(o, _, oe), (t, _, te)] = both(&sshd, "127.0.0.1", plain.as_bytes(), "yes");
        assert_eq!(
            t,
            Decision::Connected,
            "OpenSSH ({says}) with a plain line: {te}"
        );
        assert_eq!(
            o,
            Decision::Connected,
            "paragon-admin ({says}) with a plain line: {oe}"
        );
    }
    // Under accept-new both record the plain key of an expired certificate, as OpenSSH does.
    present_certificate(&mut sshd, &ca, "127.0.0.1", "20200101:20200102");
    let [(o, ours, oe), (t, theirs, te)] =
        both(&sshd, "127.0.0.1", trusting.as_bytes(), "accept-new");
    assert_eq!(t, Decision::Connected, "OpenSSH: {te}");
    assert_eq!(o, Decision::Connected, "paragon-admin: {oe}");
    assert!(oe.contains("it expired at 2020-01-02"), "{oe}");
    for (who, file) in [("paragon-admin", ours), ("OpenSSH", theirs)] {
        let text = String::from_utf8(file).unwrap();
        assert_eq!(
            text.lines().count(),
            2,
            "{who} records one plain line: {text}"
        );
        assert!(!text.contains("-cert-"), "{who}: {text}");
    }
}

#[test]
fn a_revoked_ca_or_host_key_refuses_the_certificate_even_beside_a_plain_line() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca(dir.path(), "host_ca");
    let mut sshd = Sshd::start();
    present_certificate(&mut sshd, &ca, "127.0.0.1", "-5m:+1h");
    let trusting = ca_line("@cert-authority", "*", &ca);
    let host_pub = sshd.host_key_file("ed25519").with_extension("pub");
    for (revoked, what) in [
        (ca_line("@revoked", "*", &ca), "(its CA)"),
        (
            ca_line("@revoked", "127.0.0.1,[127.0.0.1]:*", &host_pub),
            "(its host key)",
        ),
    ] {
        let text = format!("{trusting}{revoked}{}", sshd.known_hosts_line());
        for policy in ["yes", "accept-new"] {
            let [(o, ours, oe), (t, _, te)] = both(&sshd, "127.0.0.1", text.as_bytes(), policy);
            assert_ne!(t, Decision::Connected, "OpenSSH {what}: {te}");
            assert!(te.contains("REVOKED HOST KEY"), "OpenSSH {what}: {te}");
            assert_eq!(o, Decision::Other, "paragon-admin {what}: {oe}");
            assert!(oe.contains("is marked @revoked"), "{oe}");
            assert!(oe.contains(what), "{oe}");
            assert_eq!(ours, text.as_bytes());
        }
    }
}
