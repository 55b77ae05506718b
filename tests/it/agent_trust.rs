//! Trust through the kept connection (issue 20): the agent watches known_hosts. The bastion's
//! key marked `@revoked` there, or a new key at a reconnect, closes the agent's session and its
//! detached forwards at once, and every client (a foreground forward included) says what a
//! direct connection says and exits 255; a line about another host, even with an outage, changes
//! nothing.

use std::time::Duration;

use crate::agent::{Http, Kept, alive, curl, curl_within, revoke_the_bastions_key, wait_until};
use crate::forward::Running;
use crate::support::sshd::keygen;

/// A foreground `forward` through the agent to `http`, and its port.
fn foreground(k: &Kept, http: &Http) -> (Running, u16) {
    let spec = format!("0:127.0.0.1:{}", http.port);
    let fwd = Running::start(k.paragon(&["forward", &spec, "--output", "json"]));
    let (_, port) = fwd.listening_port();
    (fwd, port)
}

/// A detached forward to `http`, and its port.
fn detached(k: &Kept, http: &Http) -> u16 {
    let spec = format!("0:127.0.0.1:{}", http.port);
    let r = k.run(&["forward", "--detach", &spec, "--output", "json"]);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let event: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    let local: std::net::SocketAddr = event["local"].as_str().unwrap().parse().unwrap();
    local.port()
}

/// What a direct connection says now (its one line, without our prefix).
fn direct_refusal(k: &Kept) -> String {
    let direct = k.run(&["--no-agent", "ssh", "--", "true"]);
    assert_eq!(direct.status, Some(255), "{}", direct.stderr);
    direct
        .stderr
        .trim()
        .trim_start_matches("paragon-admin: ")
        .to_string()
}

/// A line for another host, as OpenSSH appends to a shared known_hosts.
fn other_host_line(k: &Kept) -> String {
    let other = k.home.path().join("other_key");
    keygen(&other, "ed25519", "");
    let other = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let other: Vec<&str> = other.split_whitespace().take(2).collect();
    format!("other.example {} {}\n", other[0], other[1])
}

#[test]
fn a_changed_host_key_under_a_foreground_forward_through_the_agent_is_reported_at_once() {
    let mut k = Kept::new("");
    let http = Http::start("before the change");
    let (mut fwd, port) = foreground(&k, &http);
    assert_eq!(curl(port).as_deref(), Some("before the change"));
    let key = k.sshd.host_key_file("ed25519");
    std::fs::remove_file(&key).unwrap();
    std::fs::remove_file(key.with_extension("pub")).unwrap();
    keygen(&key, "ed25519", "");
    k.sshd.restart();
    // At once: the agent's first attempt meets the new key; no "reconnecting" for ever.
    let status = fwd.exit_within(Duration::from_secs(30));
    assert_eq!(status.code(), Some(255), "{}", fwd.stderr());
    let said = direct_refusal(&k);
    assert!(said.contains("has CHANGED"), "{said}");
    assert!(fwd.stderr().contains(&said), "{}\n{said}", fwd.stderr());
}

#[test]
fn a_revoked_key_closes_the_agents_session_its_forwards_and_a_foreground_forward_at_once() {
    let k = Kept::new("");
    let http = Http::start("until revoked");
    let kept_port = detached(&k, &http);
    assert_eq!(curl(kept_port).as_deref(), Some("until revoked"));
    let (mut fwd, port) = foreground(&k, &http);
    assert_eq!(curl(port).as_deref(), Some("until revoked"));
    let pid = k.status()["pid"].as_u64().unwrap();

    revoke_the_bastions_key(&k.home.path().join("known_hosts"));
    // No command runs: the agent sees the line by itself.
    let status = fwd.exit_within(Duration::from_secs(20));
    assert_eq!(status.code(), Some(255), "{}", fwd.stderr());
    wait_until("the agent left", Duration::from_secs(20), || !alive(pid));
    assert_eq!(
        curl_within(kept_port, 2),
        None,
        "the detached forward still serves"
    );
    let said = direct_refusal(&k);
    assert!(said.contains("revoked"), "{said}");
    assert!(fwd.stderr().contains(&said), "{}\n{said}", fwd.stderr());
    // The next command is refused as a direct connection is.
    let r = k.ssh("true");
    assert_eq!(r.status, Some(255), "{}", r.stderr);
    assert!(r.stderr.contains(&said), "{}\n{said}", r.stderr);
}

#[test]
fn another_hosts_line_and_a_short_outage_keep_the_detached_forwards() {
    let mut k = Kept::new("");
    let http = Http::start("still detached");
    let port = detached(&k, &http);
    assert_eq!(curl(port).as_deref(), Some("still detached"));
    let pid = k.status()["pid"].clone();
    let kh = k.home.path().join("known_hosts");
    let text = std::fs::read_to_string(&kh).unwrap();
    std::fs::write(&kh, format!("{text}{}", other_host_line(&k))).unwrap();
    k.sshd.restart();
    assert_eq!(curl_within(port, 40).as_deref(), Some("still detached"));
    let status = k.status();
    assert_eq!(status["pid"], pid, "the same agent: {status}");
    assert_eq!(
        status["forwards"].as_array().map(Vec::len),
        Some(1),
        "{status}"
    );
    assert_eq!(status["renewals"], 0, "{status}");
    assert_eq!(k.connections(), 2, "{}", k.sshd.log());
}
