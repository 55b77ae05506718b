//! User certificates against a real sshd that trusts a user CA (`TrustedUserCAKeys`) and has
//! no authorized key for the identities used here: a certificate beside the identity, one
//! named by `certificate_file`, and one held by ssh-agent log in, by the kept agent and by
//! `--no-agent` alike; an expired one is said before connecting and not offered.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::agent::Agent;
use crate::support::sshd::{Sshd, SshdOptions, keygen};
use crate::support::{Home, run};

/// A user CA in `dir` and an sshd that trusts it.
fn sshd_trusting_a_user_ca(dir: &Path) -> (Sshd, PathBuf) {
    let ca = dir.join("user_ca");
    keygen(&ca, "ed25519", "");
    let sshd = Sshd::start_with(SshdOptions {
        extra_config: vec![format!(
            "TrustedUserCAKeys {}",
            ca.with_extension("pub").display()
        )],
        ..SshdOptions::default()
    });
    (sshd, ca)
}

/// Signs `key.pub` for principal root, writing `key-cert.pub`; `-V validity`.
fn sign_user(ca: &Path, key: &Path, validity: &str) -> PathBuf {
    sign_user_for(ca, key, validity, "root")
}

/// Signs `key.pub` for `principal`, writing `key-cert.pub`; `-V validity`.
fn sign_user_for(ca: &Path, key: &Path, validity: &str, principal: &str) -> PathBuf {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(ca)
        .args([
            "-I",
            "alice@example.com",
            "-n",
            principal,
            "-V",
            validity,
            "-z",
            "42",
        ])
        .arg(key.with_extension("pub"))
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "ssh-keygen -s");
    let mut cert = key.as_os_str().to_owned();
    cert.push("-cert.pub");
    PathBuf::from(cert)
}

fn configure(sshd: &Sshd, home: &Home, identity: &Path, extra: &str) {
    let kh = sshd.write_known_hosts(&home.path().join("known_hosts"));
    let text = sshd.profile_toml(&kh, "yes", extra).replace(
        &sshd.client_key.display().to_string(),
        &identity.display().to_string(),
    );
    home.write_config(&text);
}

#[test]
fn a_certificate_beside_the_identity_logs_in_through_the_agent_and_directly() {
    let scene = CertScene::new();
    let (sshd, ca, key, home) = (&scene.sshd, &scene.ca, &scene.key, &scene.home);
    // Without a certificate the key alone is refused.
    let r = run(home.paragon().args(["--no-agent", "ssh", "--", "true"]));
    assert_eq!(r.status, Some(255), "{}", r.stderr);
    sign_user(ca, key, "-5m:+1h");
    for flags in [&["-v"][..], &["-v", "--no-agent"][..]] {
        let r = run(home.paragon().args(flags).args(["ssh", "--", "echo", "in"]));
        assert_eq!(r.status, Some(0), "{flags:?}: {}\n{}", r.stderr, sshd.log());
        assert_eq!(r.stdout.trim(), "in");
        assert!(
            r.stderr
                .contains("key id \"alice@example.com\", serial 42, principals root, valid "),
            "{flags:?}: -v shows the certificate: {}",
            r.stderr
        );
    }
    assert!(sshd.log().contains("alice@example.com"), "{}", sshd.log());
    let p = run(home.paragon().args(["profiles", "--output", "json"]));
    let v: serde_json::Value = serde_json::from_str(&p.stdout).unwrap();
    let shown = v[0]["certificates"][0]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        shown.starts_with("key id \"alice@example.com\", serial 42, principals root, valid "),
        "{}",
        p.stdout
    );
    assert!(!shown.contains("not offered"), "{shown}");
    let r = run(home.paragon().args(["agent", "stop"]));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
}

#[test]
fn an_expired_certificate_is_said_before_connecting_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (sshd, ca) = sshd_trusting_a_user_ca(dir.path());
    let key = dir.path().join("id_alice");
    keygen(&key, "ed25519", "");
    sign_user(&ca, &key, "20200101:20200102");
    let home = Home::new();
    configure(&sshd, &home, &key, "");
    let r = run(home.paragon().args(["--no-agent", "ssh", "--", "true"]));
    assert_eq!(r.status, Some(255), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("is not offered: it expired at 2020-01-02T00:00:00Z"),
        "{}",
        r.stderr
    );
    let p = run(home.paragon().arg("profiles"));
    assert!(
        p.stdout
            .contains("not offered: it expired at 2020-01-02T00:00:00Z"),
        "{}",
        p.stdout
    );
    assert_eq!(
        r.stderr.matches("expired at").count(),
        1,
        "said once: {}",
        r.stderr
    );
    // Said before the connection is attempted: the warning comes first.
    let warned = r.stderr.find("expired at").unwrap();
    let refused = r.stderr.find("authentication").or(r.stderr.find("refused"));
    assert!(refused.is_none_or(|i| warned < i), "{}", r.stderr);
}

#[test]
fn certificate_file_in_the_profile_and_an_agent_certificate_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let (sshd, ca) = sshd_trusting_a_user_ca(dir.path());
    let key = dir.path().join("id_alice");
    keygen(&key, "ed25519", "");
    let beside = sign_user(&ca, &key, "-5m:+1h");
    let elsewhere = dir.path().join("alice.cert");
    std::fs::rename(&beside, &elsewhere).unwrap();
    let home = Home::new();
    configure(
        &sshd,
        &home,
        &key,
        &format!("certificate_file = \"{}\"", elsewhere.display()),
    );
    let r = run(home.paragon().args(["--no-agent", "ssh", "--", "true"]));
    assert_eq!(r.status, Some(0), "certificate_file: {}", r.stderr);

    // The agent holds the key and its certificate (ssh-add adds both); the profile's own
    // identity is a stranger's key.
    std::fs::rename(&elsewhere, &beside).unwrap();
    let agent = Agent::start();
    agent.add(&key);
    let stranger = dir.path().join("id_stranger");
    keygen(&stranger, "ed25519", "");
    let home = Home::new();
    configure(&sshd, &home, &stranger, "");
    let r = run(home.paragon().env("SSH_AUTH_SOCK", agent.sock()).args([
        "-v",
        "--no-agent",
        "ssh",
        "--",
        "true",
    ]));
    assert_eq!(r.status, Some(0), "agent certificate: {}", r.stderr);
    assert!(
        r.stderr.contains("offering ssh-agent certificate"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_refused_certificate_is_named_by_key_id_and_principals() {
    let dir = tempfile::tempdir().unwrap();
    let (sshd, ca) = sshd_trusting_a_user_ca(dir.path());
    let key = dir.path().join("id_alice");
    keygen(&key, "ed25519", "");
    let cert = sign_user_for(&ca, &key, "-5m:+1h", "alice");
    let home = Home::new();
    configure(&sshd, &home, &key, "");
    let r = run(home.paragon().args(["--no-agent", "ssh", "--", "true"]));
    assert_eq!(r.status, Some(255), "{}", r.stderr);
    let ca_public = std::fs::read_to_string(ca.with_extension("pub")).unwrap();
    let ca_fingerprint = russh::keys::PublicKey::from_openssh(ca_public.trim())
        .unwrap()
        .fingerprint(russh::keys::HashAlg::Sha256)
        .to_string();
    let want = format!(
        "certificate {} (key id \"alice@example.com\", principals alice, not the user, signed by CA {ca_fingerprint})",
        cert.display()
    );
    assert!(r.stderr.contains(&want), "{want}\n{}", r.stderr);
    // The key alone would need its own line.
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    assert!(
        r.stderr.contains(&format!("`{}`", public.trim())),
        "{}",
        r.stderr
    );
}

/// The agent's status as JSON.
fn agent_status(home: &Home) -> serde_json::Value {
    let r = run(home.paragon().args(["agent", "status", "--output", "json"]));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap()
}

/// An sshd trusting a user CA, and a home whose identity `id_alice` has no certificate yet.
struct CertScene {
    /// Holds the CA and the key; removed last.
    _dir: tempfile::TempDir,
    sshd: Sshd,
    ca: PathBuf,
    key: PathBuf,
    home: Home,
}

impl CertScene {
    fn new() -> CertScene {
        let dir = tempfile::tempdir().unwrap();
        let (sshd, ca) = sshd_trusting_a_user_ca(dir.path());
        let key = dir.path().join("id_alice");
        keygen(&key, "ed25519", "");
        let home = Home::new();
        configure(&sshd, &home, &key, "");
        CertScene {
            _dir: dir,
            sshd,
            ca,
            key,
            home,
        }
    }
}

impl Drop for CertScene {
    fn drop(&mut self) {
        let _ = self.home.paragon().args(["agent", "stop"]).output();
    }
}

#[test]
fn the_kept_connection_renews_its_session_for_a_newer_certificate_and_else_says_when_it_expires() {
    let scene = CertScene::new();
    let (sshd, ca, key, home) = (&scene.sshd, &scene.ca, &scene.key, &scene.home);
    // Ends in 5 minutes: within the agent's renewal margin (10 minutes).
    let cert = sign_user(ca, key, "-1m:+5m");
    let r = run(home.paragon().args(["ssh", "--", "true"]));
    assert_eq!(r.status, Some(0), "{}\n{}", r.stderr, sshd.log());
    let s = agent_status(home);
    let said = s["certificate"].as_str().unwrap_or_default().to_string();
    assert!(
        said.starts_with(&cert.display().to_string())
            && (said.ends_with("expires in 4m") || said.ends_with("expires in 5m")),
        "{s}"
    );
    let table = run(home.paragon().args(["agent", "status"]));
    assert!(
        table.stdout.contains(&format!("certificate: {said}")),
        "{}",
        table.stdout
    );
    let accepted = || sshd.log().matches("Accepted publickey").count();
    assert_eq!(accepted(), 1, "{}", sshd.log());

    // A command on the session when the newer certificate arrives finishes there.
    let long = home
        .paragon()
        .args(["ssh", "--", "sleep 6; echo finished"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    sign_user(ca, key, "-1m:+1h");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    let renewed = loop {
        let s = agent_status(home);
        if s["renewals"] == 1 {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not renewed for the newer certificate: {s}\n{}",
            sshd.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(
        renewed["certificate"]
            .as_str()
            .is_some_and(|c| c.ends_with("expires in 59m")),
        "{renewed}"
    );
    assert_eq!(accepted(), 2, "{}", sshd.log());
    let out = long.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "finished\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));
    let r = run(home.paragon().args(["ssh", "--", "echo", "after"]));
    assert_eq!(r.stdout, "after\n", "{}", r.stderr);
    assert_eq!(accepted(), 2, "{}", sshd.log());
}

#[test]
fn agent_status_says_when_the_sessions_certificate_expired_and_what_to_do() {
    let scene = CertScene::new();
    let (sshd, ca, key, home) = (&scene.sshd, &scene.ca, &scene.key, &scene.home);
    sign_user(ca, key, "-1m:+4s");
    let r = run(home.paragon().args(["ssh", "--", "true"]));
    assert_eq!(r.status, Some(0), "{}\n{}", r.stderr, sshd.log());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let s = agent_status(home);
        let said = s["certificate"].as_str().unwrap_or_default();
        if said.contains("expired") {
            assert!(
                said.ends_with("s ago: run `paragon-admin access grant` or get a new certificate"),
                "{s}"
            );
            break;
        }
        assert!(said.contains("expires in"), "{s}");
        assert!(std::time::Instant::now() < deadline, "{s}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
