//! `paragon-admin doctor` against real servers: one real OpenSSH sshd (and another as its
//! jump host) names each hop before the bastion that can break (an unresolvable name, a
//! closed port, a web server on the SSH port, a changed host key, a refused key; the
//! sandbox's TLS server on it), and the sandbox behind a real sshd walks green to the end
//! through the kept connection, then names the hop past the bastion that broke (an API server
//! refusing the token, a stopped Redis, an sshd whose PermitOpen refuses the forward).

use serde_json::Value;

use crate::logs::Scene;
use crate::support::bastion::HttpTarget;
use crate::support::datastores::Redis;
use crate::support::sshd::{Sshd, SshdOptions, fingerprint, keygen};
use crate::support::{Home, Run, run};

/// `doctor --output json` with the config in `home`: the exit status and the hops.
fn doctor(home: &Home) -> (Option<i32>, Vec<Value>, Run) {
    let r = run(home
        .paragon()
        .args(["doctor", "--output", "json", "--timeout", "20"])
        .stdin(std::process::Stdio::null()));
    let v: Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", r.stdout, r.stderr));
    let hops = v["hops"].as_array().cloned().unwrap_or_default();
    (r.status, hops, r)
}

/// The first hop that failed: its name, detail and advice.
fn first_failure(hops: &[Value]) -> (String, String, String) {
    let h = hops
        .iter()
        .find(|h| h["status"] == "failed")
        .unwrap_or_else(|| panic!("no hop failed: {hops:#?}"));
    let s = |k: &str| h[k].as_str().unwrap_or_default().to_string();
    (s("name"), s("detail"), s("advice"))
}

fn hop<'a>(hops: &'a [Value], name: &str) -> &'a Value {
    hops.iter()
        .find(|h| h["name"] == name)
        .unwrap_or_else(|| panic!("no hop {name}: {hops:#?}"))
}

/// A home whose profile points at `host:port` with the sshd's client key, under
/// `accept-new` (known_hosts has no line for that address).
fn home_for(sshd: &Sshd, host: &str, port: u16) -> Home {
    let home = Home::new();
    let kh = home.path().join("known_hosts");
    let text = sshd
        .profile_toml(&kh, "accept-new", "")
        .replace(
            &format!("host = \"{}\"", sshd.options.listen),
            &format!("host = \"{host}\""),
        )
        .replace(&format!("port = {}", sshd.port), &format!("port = {port}"));
    home.write_config(&text);
    home
}

#[test]
fn doctor_names_the_hop_before_the_bastion_that_broke() {
    let sshd = Sshd::start();

    // A name that cannot resolve (RFC 2606 reserves .invalid).
    let home = home_for(&sshd, "bastion.invalid", sshd.port);
    let (status, hops, r) = doctor(&home);
    assert_eq!(status, Some(255), "{}", r.stdout);
    let (name, detail, advice) = first_failure(&hops);
    assert_eq!(name, "bastion name", "{detail}");
    assert!(detail.contains("bastion.invalid"), "{detail}");
    assert!(advice.contains("resolve"), "{advice}");
    // The path past it is shown, not tried.
    assert_eq!(hop(&hops, "authentication")["status"], "skipped");
    assert_eq!(hop(&hops, "api server tcp")["status"], "skipped");

    // A closed port: nothing listens on it, and no other test can take it.
    let port = crate::support::closed_port();
    let home = home_for(&sshd, "127.0.0.1", port);
    let (status, hops, r) = doctor(&home);
    assert_eq!(status, Some(255), "{}", r.stdout);
    let (name, detail, _) = first_failure(&hops);
    assert_eq!(name, "bastion tcp", "{detail}");
    assert!(detail.contains("refused"), "{detail}");
    assert_eq!(hop(&hops, "bastion name")["status"], "ok");

    // A web server on the SSH port, named as such.
    let web = HttpTarget::start();
    let home = home_for(&sshd, "127.0.0.1", web.port);
    let (status, hops, r) = doctor(&home);
    assert_eq!(status, Some(255), "{}", r.stdout);
    let (name, detail, advice) = first_failure(&hops);
    assert_eq!(name, "bastion banner", "{detail}");
    assert!(detail.contains("an HTTP server answers"), "{detail}");
    assert!(detail.contains("HTTP/1.0 200 OK"), "{detail}");
    assert!(advice.contains("not sshd"), "{advice}");

    // A changed host key: known_hosts records another key; both fingerprints are said.
    let home = Home::new();
    let other = home.path().join("other_host_key");
    keygen(&other, "ed25519", "");
    let other_pub = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let mut parts = other_pub.split_whitespace();
    let (t, b) = (parts.next().unwrap(), parts.next().unwrap());
    let kh = home.path().join("known_hosts");
    std::fs::write(&kh, format!("{} {t} {b}\n", sshd.host_pattern())).unwrap();
    home.write_config(&sshd.profile_toml(&kh, "yes", ""));
    let (status, hops, r) = doctor(&home);
    assert_eq!(status, Some(255), "{}", r.stdout);
    let (name, detail, advice) = first_failure(&hops);
    assert_eq!(name, "host key", "{detail}");
    assert!(detail.contains("CHANGED"), "{detail}");
    let recorded = fingerprint(&other.with_extension("pub"));
    let offered = fingerprint(&sshd.host_key_file("ed25519").with_extension("pub"));
    assert!(advice.contains(&recorded), "{recorded} not in {advice}");
    assert!(advice.contains(&offered), "{offered} not in {advice}");
    assert_eq!(hop(&hops, "key exchange")["status"], "ok");
    assert_eq!(std::fs::read_to_string(&kh).unwrap().lines().count(), 1);

    // A key the bastion refuses: the advice carries the public key it would need.
    let home = Home::new();
    let key = home.path().join("id_refused");
    keygen(&key, "ed25519", "");
    let kh = sshd.write_known_hosts(&home.path().join("known_hosts"));
    home.write_config(&sshd.profile_toml(&kh, "yes", "").replace(
        &sshd.client_key.display().to_string(),
        &key.display().to_string(),
    ));
    let (status, hops, r) = doctor(&home);
    assert_eq!(status, Some(255), "{}", r.stdout);
    let (name, detail, advice) = first_failure(&hops);
    assert_eq!(name, "authentication", "{detail}");
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let blob = public.split_whitespace().nth(1).unwrap();
    assert!(advice.contains(blob), "{advice}");
    assert!(advice.contains("authorized_keys"), "{advice}");
    assert_eq!(hop(&hops, "host key")["status"], "ok");

    // Through a jump host: its name, TCP and banner are the hops walked before the session.
    let jump = Sshd::start();
    jump.authorize(&sshd.client_key.with_extension("pub"));
    let home = Home::new();
    let kh = home.path().join("known_hosts");
    std::fs::write(
        &kh,
        format!("{}{}", sshd.known_hosts_line(), jump.known_hosts_line()),
    )
    .unwrap();
    home.write_config(&sshd.profile_toml(
        &kh,
        "yes",
        &format!("proxy_jump = \"root@127.0.0.1:{}\"", jump.port),
    ));
    let (_, hops, r) = doctor(&home);
    for name in [
        "jump host name",
        "jump host tcp",
        "jump host banner",
        "key exchange",
        "host key",
        "authentication",
    ] {
        assert_eq!(hop(&hops, name)["status"], "ok", "{name}: {}", r.stdout);
    }
    let kex = hop(&hops, "key exchange")["detail"].as_str().unwrap();
    assert!(kex.contains("through the jump host"), "{kex}");

    // A config error (a profile that does not exist) is 2, as its one failed hop.
    let (status, hops, r) = doctor_profile(&home, "nosuch");
    assert_eq!(status, Some(2), "{}", r.stdout);
    assert_eq!(first_failure(&hops).0, "config");
}

fn doctor_profile(home: &Home, profile: &str) -> (Option<i32>, Vec<Value>, Run) {
    let r = run(home
        .paragon()
        .args(["--profile", profile, "doctor", "--output", "json"])
        .stdin(std::process::Stdio::null()));
    let v: Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", r.stdout, r.stderr));
    (
        r.status,
        v["hops"].as_array().cloned().unwrap_or_default(),
        r,
    )
}

#[test]
fn doctor_walks_green_to_the_sandbox_then_names_the_hop_past_the_bastion() {
    let mut redis = Redis::start();
    let datastores = format!(
        "[profiles.test.datastores]\nredis = [\"{}\"]",
        redis.target()
    );
    let s = Scene::new(&[], &datastores);

    // A kept connection to look at.
    let r = s.kept.ssh("true");
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let (status, hops, r) = doctor(&s.kept.home);
    assert_eq!(status, Some(0), "{}\n{}", r.stdout, r.stderr);
    for h in &hops {
        assert_ne!(h["status"], "failed", "{h}");
    }
    for name in [
        "config",
        "identity file",
        "known_hosts",
        "bastion name",
        "bastion tcp",
        "bastion banner",
        "key exchange",
        "host key",
        "authentication",
        "kept connection",
        "kubeconfig",
        "api server tcp",
        "api server /version",
        &format!("redis {}", redis.target()),
        "service grafana",
    ] {
        assert_eq!(hop(&hops, name)["status"], "ok", "{name}: {hops:#?}");
    }
    // The key the bastion took is named apart from the ones offered.
    let auth = hop(&hops, "authentication")["detail"].as_str().unwrap();
    let accepted = auth
        .split_once(" with ")
        .and_then(|(_, rest)| rest.split_once(" (offered: "))
        .map(|(accepted, _)| accepted)
        .unwrap_or_default();
    assert!(accepted.contains("(SHA256:"), "{auth}");
    assert!(
        hop(&hops, "bastion banner")["detail"]
            .as_str()
            .unwrap()
            .starts_with("SSH-2.0-OpenSSH"),
        "{hops:#?}"
    );
    // The bastion cannot resolve the cluster's names: the API route reaches the service.
    let grafana = hop(&hops, "service grafana")["detail"].as_str().unwrap();
    assert!(grafana.contains("the API route"), "{grafana}");
    // For people: a table and the verdict under it.
    let r = s.kept.run(&["doctor"]);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("| HOP"), "{}", r.stdout);
    assert!(r.stdout.contains("every hop works"), "{}", r.stdout);

    // A TLS server on the SSH port (the sandbox's API), named as such.
    let api_port: u16 = s.sandbox.addr.rsplit(':').next().unwrap().parse().unwrap();
    let home = home_for(&s.kept.sshd, "127.0.0.1", api_port);
    let (status, hops, r) = doctor(&home);
    assert_eq!(status, Some(255), "{}", r.stdout);
    let (name, detail, _) = first_failure(&hops);
    assert_eq!(name, "bastion banner", "{detail}");
    assert!(detail.contains("a TLS server answers"), "{detail}");

    // An API server that refuses the bastion's token: 401 named, exit 1.
    let bad = s.kept.home.path().join("bad-token.kubeconfig");
    let text = std::fs::read_to_string(&s.sandbox.kubeconfig).unwrap();
    let wrong: Vec<String> = text
        .lines()
        .map(|l| match l.trim_start().starts_with("token:") {
            true => "    token: not-the-sandbox-token".to_string(),
            false => l.to_string(),
        })
        .collect();
    std::fs::write(&bad, wrong.join("\n")).unwrap();
    s.kept.sshd.kubectl_with(&bad);
    let (status, hops, r) = doctor(&s.kept.home);
    assert_eq!(status, Some(1), "{}", r.stdout);
    let (name, detail, advice) = first_failure(&hops);
    assert_eq!(name, "api server /version", "{detail}");
    assert!(detail.starts_with("401 Unauthorized"), "{detail}");
    assert!(advice.contains("token"), "{advice}");
    s.kept.sshd.kubectl_with(&s.sandbox.kubeconfig);

    // A datastore that stopped: its hop fails, exit 1.
    let target = redis.target();
    redis.stop();
    let (status, hops, r) = doctor(&s.kept.home);
    assert_eq!(status, Some(1), "{}", r.stdout);
    let (name, detail, _) = first_failure(&hops);
    assert_eq!(name, format!("redis {target}"), "{detail}");
    assert_eq!(hop(&hops, "api server /version")["status"], "ok");

    // A bastion whose PermitOpen allows the API server only: the datastore's hop names the
    // policy, and the services still go through the API route.
    let api = s.sandbox.addr.clone();
    let strict = Sshd::start_with(SshdOptions {
        extra_config: vec![format!("PermitOpen {api}")],
        ..SshdOptions::default()
    });
    strict.kubectl_with(&s.sandbox.kubeconfig);
    let home = Home::new();
    strict.configure_with(&home, &datastores);
    let (status, hops, r) = doctor(&home);
    assert_eq!(status, Some(1), "{}", r.stdout);
    let (name, detail, advice) = first_failure(&hops);
    assert_eq!(name, format!("redis {target}"), "{detail}");
    assert!(detail.contains("administratively prohibited"), "{detail}");
    assert!(advice.contains("PermitOpen"), "{advice}");
    assert_eq!(hop(&hops, "api server /version")["status"], "ok");
    assert_eq!(hop(&hops, "service grafana")["status"], "ok");
}
