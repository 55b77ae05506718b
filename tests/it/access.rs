//! `paragon-admin access` against a real sshd: a CA made here, its grant logging in through
//! `TrustedUserCAKeys`, an expired grant refused, a revoked one refused through the KRL in
//! `RevokedKeys` (and by `ssh-keygen -Q`), a host certificate from `sign-host` accepted with
//! the `@cert-authority` line `ca show` prints. The CA passphrases live in the real keyring.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::sshd::{Sshd, SshdOptions, keygen};
use crate::support::{Home, Run, run};

/// A CA name no other test uses (keyring secrets are per user, not per home), whose
/// passphrase is removed from the keyring on drop.
struct Ca<'a> {
    name: String,
    home: &'a Home,
}

impl<'a> Ca<'a> {
    fn init(home: &'a Home, what: &str, flags: &[&str]) -> (Ca<'a>, Run) {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("{what}-{}-{nanos}", std::process::id());
        let r = run(home
            .paragon()
            .args(["access", "ca", "init", &name])
            .args(flags));
        (Ca { name, home }, r)
    }
}

impl Drop for Ca<'_> {
    fn drop(&mut self) {
        let secret = format!("access/{}/ca-passphrase", self.name);
        let _ = self
            .home
            .paragon()
            .args(["secrets", "delete", &secret])
            .output();
    }
}

fn access(home: &Home, args: &[&str]) -> Run {
    run(home.paragon().arg("access").args(args))
}

fn login(sshd: &Sshd, home: &Home, identity: &Path) -> Run {
    let kh = sshd.write_known_hosts(&home.path().join("known_hosts"));
    let text = sshd.profile_toml(&kh, "yes", "").replace(
        &sshd.client_key.display().to_string(),
        &identity.display().to_string(),
    );
    home.write_config(&text);
    run(home
        .paragon()
        .args(["--no-agent", "ssh", "--", "echo", "in"]))
}

/// An sshd that trusts the user CA whose public key is `ca_pub`.
fn sshd_trusting(ca_pub: &Path) -> Sshd {
    Sshd::start_with(SshdOptions {
        extra_config: vec![format!("TrustedUserCAKeys {}", ca_pub.display())],
        ..SshdOptions::default()
    })
}

/// `access grant` of `key.pub` for principal root, valid for `valid`, with `more` flags.
fn grant(home: &Home, key: &Path, valid: &str, more: &[&str]) -> Run {
    let key_pub = key.with_extension("pub");
    let mut args = vec![
        "grant",
        "--key",
        key_pub.to_str().unwrap(),
        "--principal",
        "root",
        "--valid-for",
        valid,
    ];
    args.extend_from_slice(more);
    access(home, &args)
}

fn user_key(dir: &Path, name: &str) -> PathBuf {
    let k = dir.join(name);
    keygen(&k, "ed25519", "");
    k
}

/// `ssh-keygen -Q -f KRL CERT`: whether OpenSSH finds the certificate revoked.
fn revoked_by_openssh(krl: &Path, cert: &Path) -> bool {
    let out = Command::new("ssh-keygen")
        .arg("-Q")
        .arg("-f")
        .arg(krl)
        .arg(cert)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("REVOKED") || text.contains(": ok"),
        "ssh-keygen -Q must read the KRL: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    !out.status.success() && text.contains("REVOKED")
}

#[test]
fn a_grant_logs_in_an_expired_or_revoked_one_does_not() {
    let home = Home::new();
    let dir = tempfile::tempdir().unwrap();
    let (ca, r) = Ca::init(&home, "users", &[]);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let ca_pub = dir.path().join("ca.pub");
    std::fs::write(&ca_pub, &r.stdout).unwrap();
    // The CA's key is encrypted: without its passphrase ssh-keygen cannot open it.
    let ca_file = home
        .path()
        .join(".config/paragon-admin/access/ca")
        .join(&ca.name);
    let st = Command::new("ssh-keygen")
        .args(["-y", "-P", "", "-f"])
        .arg(&ca_file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!st.success(), "the CA key must be encrypted");
    let show = access(&home, &["ca", "show"]);
    assert_eq!(show.stdout, r.stdout, "{}", show.stderr);

    let mut sshd = sshd_trusting(&ca_pub);
    let alice = user_key(dir.path(), "alice");
    let carol = user_key(dir.path(), "carol");
    let bob = user_key(dir.path(), "bob");
    for (key, id, valid) in [
        (&alice, "alice@example.com", "8h"),
        (&carol, "carol@example.com", "1h"),
        (&bob, "bob@example.com", "2s"),
    ] {
        let g = grant(&home, key, valid, &["--key-id", id]);
        assert_eq!(g.status, Some(0), "{}", g.stderr);
        let mut cert = key.as_os_str().to_owned();
        cert.push("-cert.pub");
        assert_eq!(g.stdout.trim(), Path::new(&cert).display().to_string());
    }
    let r = login(&sshd, &home, &alice);
    assert_eq!(r.status, Some(0), "{}\n{}", r.stderr, sshd.log());
    assert_eq!(r.stdout.trim(), "in");
    assert!(sshd.log().contains("alice@example.com"), "{}", sshd.log());

    let list = access(&home, &["list", "--output", "json"]);
    let rows: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["serial"], 1);
    assert_eq!(rows[0]["key_id"], "alice@example.com");
    assert_eq!(rows[0]["principals"][0], "root");
    assert_eq!(rows[2]["serial"], 3);

    // bob's grant was for two seconds: once past, it is refused and said expired.
    let deadline = Instant::now() + Duration::from_secs(10);
    let expired = loop {
        let r = login(&sshd, &home, &bob);
        if r.status != Some(0) || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(expired.status, Some(255), "{}", expired.stderr);
    assert!(expired.stderr.contains("expired at"), "{}", expired.stderr);

    // Revoke alice: the KRL revokes her certificate and not carol's.
    let rv = access(&home, &["revoke", "alice@example.com"]);
    assert_eq!(rv.status, Some(0), "{}", rv.stderr);
    let krl = PathBuf::from(rv.stdout.trim());
    assert!(revoked_by_openssh(&krl, &dir.path().join("alice-cert.pub")));
    assert!(!revoked_by_openssh(
        &krl,
        &dir.path().join("carol-cert.pub")
    ));
    sshd.options
        .extra_config
        .push(format!("RevokedKeys {}", krl.display()));
    sshd.restart();
    let r = login(&sshd, &home, &alice);
    assert_eq!(r.status, Some(255), "revoked alice: {}", r.stderr);
    let r = login(&sshd, &home, &carol);
    assert_eq!(r.status, Some(0), "carol: {}\n{}", r.stderr, sshd.log());
    let list = access(&home, &["list"]);
    assert!(list.stdout.contains("revoked"), "{}", list.stdout);
    // Revoking what was never granted says so.
    let none = access(&home, &["revoke", "nobody"]);
    assert_eq!(none.status, Some(2), "{}", none.stderr);
    assert!(
        none.stderr
            .contains("no grant has serial or key id `nobody`")
    );
}

#[test]
fn sign_host_makes_a_certificate_that_the_ca_show_line_verifies() {
    let home = Home::new();
    let (ca, r) = Ca::init(&home, "hosts", &["--host"]);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(
        r.stdout.starts_with("@cert-authority * ssh-ed25519 "),
        "{}",
        r.stdout
    );
    let mut sshd = Sshd::start();
    let host_pub = sshd.host_key_file("ed25519").with_extension("pub");
    let s = access(
        &home,
        &[
            "sign-host",
            "--ca",
            &ca.name,
            "--key",
            host_pub.to_str().unwrap(),
            "--principal",
            "127.0.0.1",
            "--valid-for",
            "1d",
        ],
    );
    assert_eq!(s.status, Some(0), "{}", s.stderr);
    let cert = PathBuf::from(s.stdout.trim());
    sshd.options.extra_config = vec![format!("HostCertificate {}", cert.display())];
    sshd.restart();
    // known_hosts holds only the CA line.
    let kh = home.path().join("known_hosts");
    std::fs::write(&kh, &r.stdout).unwrap();
    home.write_config(&sshd.profile_toml(&kh, "yes", ""));
    let c = run(home
        .paragon()
        .args(["-v", "--no-agent", "ssh", "--", "true"]));
    assert_eq!(c.status, Some(0), "{}", c.stderr);
    assert!(c.stderr.contains("signed by the CA of"), "{}", c.stderr);
    // A user CA cannot sign a host key.
    let (user_ca, _) = Ca::init(&home, "users", &[]);
    let wrong = access(
        &home,
        &[
            "sign-host",
            "--ca",
            &user_ca.name,
            "--key",
            host_pub.to_str().unwrap(),
            "--principal",
            "x",
            "--valid-for",
            "1d",
        ],
    );
    assert_eq!(wrong.status, Some(2), "{}", wrong.stderr);
    assert!(
        wrong.stderr.contains("is a user CA; this needs a host CA"),
        "{}",
        wrong.stderr
    );
}

#[test]
fn a_read_only_grant_runs_only_the_forced_command_without_a_pty() {
    let home = Home::new();
    let dir = tempfile::tempdir().unwrap();
    let (_ca, r) = Ca::init(&home, "ro", &[]);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let ca_pub = dir.path().join("ca.pub");
    std::fs::write(&ca_pub, &r.stdout).unwrap();
    let sshd = sshd_trusting(&ca_pub);
    // Stands in for the bastion image's command: shows what it was asked and whether a
    // terminal came with it.
    sshd.install(
        "paragon-read-only",
        "#!/bin/sh\nif [ -t 0 ]; then t=pty; else t=no-pty; fi\necho \"forced $t: $SSH_ORIGINAL_COMMAND\"\n",
    );
    let dave = user_key(dir.path(), "dave");
    let g = grant(&home, &dave, "1h", &["--read-only"]);
    assert_eq!(g.status, Some(0), "{}", g.stderr);
    let r = login(&sshd, &home, &dave);
    assert_eq!(r.status, Some(0), "{}\n{}", r.stderr, sshd.log());
    assert_eq!(r.stdout.trim(), "forced no-pty: echo in");
    let list = access(&home, &["list"]);
    assert!(list.stdout.contains("read-only"), "{}", list.stdout);
}
