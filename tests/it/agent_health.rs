//! `health` and the bastion's own kubeconfig through the kept connection (issue 13): against
//! a real OpenSSH sshd (`LogLevel VERBOSE`, every connection in its log) whose `kubectl` is
//! the real one reading the sandbox's kubeconfig, repeated `health` and `kube-credential`
//! runs are one SSH connection, give what a direct connection gives, and come back after
//! sshd restarts.

use serde_json::Value;

use crate::agent::Kept;
use crate::support::datastores::Redis;
use crate::support::sandbox::SandboxProc;
use crate::support::{Run, run};

/// A kept profile whose bastion's kubeconfig is the sandbox's, with a Redis the bastion
/// reaches (a datastore check dialed through the session).
struct Scene {
    kept: Kept,
    sandbox: SandboxProc,
    _redis: Redis,
}

impl Scene {
    fn new() -> Scene {
        let sandbox = SandboxProc::start(&[]);
        let redis = Redis::start();
        let kept = Kept::new(&format!(
            "[profiles.test.datastores]\nredis = [\"{}\"]",
            redis.target()
        ));
        kept.sshd.kubectl_with(&sandbox.kubeconfig);
        Scene {
            kept,
            sandbox,
            _redis: redis,
        }
    }

    /// `health` as JSON, through the agent unless `flags` say otherwise.
    fn health(&self, flags: &[&str]) -> (Run, Value) {
        let mut args = flags.to_vec();
        args.extend(["health", "--output", "json", "--timeout", "10", "--via"]);
        // Monitoring's built-in names resolve nowhere here: the bastion route alone keeps
        // the report free of the API route's pod choice.
        args.push("bastion");
        let r = self.kept.run(&args);
        let v = serde_json::from_str(&r.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", r.stdout, r.stderr));
        (r, v)
    }

    /// The sandbox's bearer token, the credential the bastion's kubeconfig carries.
    fn token(&self) -> String {
        let text = std::fs::read_to_string(&self.sandbox.kubeconfig).unwrap();
        text.lines()
            .find_map(|l| l.trim().strip_prefix("token: "))
            .unwrap()
            .to_string()
    }
}

/// The report without what differs from run to run (its timing).
fn comparable(v: &Value) -> Value {
    let mut v = v.clone();
    v.as_object_mut().unwrap().remove("elapsed_ms");
    v
}

fn statuses(v: &Value, name: &str) -> Vec<String> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == name)
        .map(|c| c["status"].as_str().unwrap().to_string())
        .collect()
}

/// The names of the failed checks, sorted.
fn failures(v: &Value) -> Vec<String> {
    let mut names: Vec<String> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn three_health_runs_are_one_ssh_connection_and_the_report_of_a_direct_connection() {
    let s = Scene::new();
    let mut reports = Vec::new();
    for _ in 0..3 {
        let (r, v) = s.health(&[]);
        assert_eq!(r.status, Some(1), "{}\n{v:#}", r.stderr);
        reports.push(comparable(&v));
    }
    // The cluster came from the bastion's kubeconfig, the datastore through the session;
    // the only failures are the monitoring services no name of which the bastion resolves.
    assert_eq!(statuses(&reports[0], "api"), ["ok"], "{:#}", reports[0]);
    assert_eq!(statuses(&reports[0], "redis"), ["ok"], "{:#}", reports[0]);
    assert_eq!(failures(&reports[0]), ["grafana", "prometheus"]);
    assert_eq!(s.kept.connections(), 1, "{}", s.kept.sshd.log());
    assert_eq!(reports[1], reports[0]);
    assert_eq!(reports[2], reports[0]);

    let (direct, v) = s.health(&["--no-agent"]);
    assert_eq!(direct.status, Some(1), "{}", direct.stderr);
    assert_eq!(comparable(&v), reports[0]);
    assert_eq!(s.kept.connections(), 2, "--no-agent connects on its own");
}

#[test]
fn kube_credential_with_the_bastions_kubeconfig_three_times_is_one_connection_and_one_fetch() {
    let s = Scene::new();
    let token = s.token();
    for _ in 0..3 {
        let r = run(s.kept.paragon(&["kube-credential"]).env(
            "KUBERNETES_EXEC_INFO",
            r#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false}}"#,
        ));
        assert_eq!(r.status, Some(0), "{}", r.stderr);
        let credential: Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(credential["status"]["token"], token.as_str());
    }
    assert_eq!(s.kept.connections(), 1, "{}", s.kept.sshd.log());
    // The agent gave its first answer again: one `kubectl config view` on the bastion.
    let log = s.kept.sshd.log();
    assert_eq!(log.matches("Starting session: command").count(), 1, "{log}");
}

#[test]
fn health_through_the_agent_works_after_sshd_restarts_and_is_255_while_it_is_down() {
    let mut s = Scene::new();
    let (r, before) = s.health(&[]);
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert_eq!(statuses(&before, "api"), ["ok"], "{before:#}");
    s.kept.sshd.restart();
    let (r, after) = s.health(&[]);
    assert_eq!(r.status, Some(1), "{}\n{after:#}", r.stderr);
    assert_eq!(comparable(&after), comparable(&before));
    let status = s.kept.status();
    assert_eq!(
        status["reconnects"], 1,
        "the agent's session came back: {status}"
    );
    assert_eq!(s.kept.connections(), 2, "{}", s.kept.sshd.log());

    // Down, with the agent still up: no report, as a direct connection gives none, whether
    // the kubeconfig comes from the bastion or from this machine.
    s.kept.sshd.stop();
    // The agent learns of it from its socket's end, a moment later: until then, a command
    // would be answered from the session it believes up.
    crate::agent::wait_until(
        "the agent saw its session end",
        std::time::Duration::from_secs(10),
        || s.kept.status()["connected"] == false,
    );
    let local_kubeconfig = format!(
        "[profiles.test.kube]\nkubeconfig = \"{}\"",
        s.sandbox.kubeconfig.display()
    );
    for extra in ["", local_kubeconfig.as_str()] {
        let kh = s.kept.home.path().join("known_hosts");
        s.kept
            .home
            .write_config(&s.kept.sshd.profile_toml(&kh, "yes", extra));
        let r = s
            .kept
            .run(&["health", "--output", "json", "--timeout", "10"]);
        assert_eq!(r.status, Some(255), "{extra}: {}", r.stderr);
        assert_eq!(r.stdout, "", "{extra}: no report without the bastion");
        let direct = s.kept.run(&[
            "--no-agent",
            "health",
            "--output",
            "json",
            "--timeout",
            "10",
        ]);
        assert_eq!(direct.status, Some(255), "{}", direct.stderr);
        // The same cause (after what was being done, when it was the kubeconfig fetch).
        let cause = direct.stderr.trim_start_matches("paragon-admin: ");
        assert!(r.stderr.ends_with(cause), "{}{}", r.stderr, direct.stderr);
    }
    assert_eq!(
        s.kept.status()["pid"],
        status["pid"],
        "the same agent answered"
    );
}

#[test]
fn a_kubeconfig_the_bastion_cannot_give_is_the_same_finding_through_the_agent() {
    let k = Kept::new("");
    k.sshd.install(
        "kubectl",
        "#!/bin/sh\necho 'apiVersion: v1' \necho 'error: no kubeconfig on this bastion' >&2\necho 'a second line' >&2\nexit 3\n",
    );
    let api = |flags: &[&str]| {
        let mut args = flags.to_vec();
        args.extend(["health", "--output", "json", "--timeout", "10"]);
        let r = k.run(&args);
        let v: Value = serde_json::from_str(&r.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}{}", r.stdout, r.stderr));
        let found: Vec<Value> = v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["name"] == "api")
            .cloned()
            .collect();
        (r.status, found)
    };
    let (status, through_agent) = api(&[]);
    assert_eq!(api(&[]), (status, through_agent.clone()));
    assert_eq!(k.connections(), 1, "{}", k.sshd.log());
    assert_eq!(api(&["--no-agent"]), (status, through_agent.clone()));
    assert_eq!(status, Some(1));
    let message = through_agent[0]["message"].as_str().unwrap();
    assert!(
        message.contains("exited 3: error: no kubeconfig on this bastion;"),
        "{message}"
    );
    assert!(!message.contains("a second line"), "{message}");
    assert_eq!(k.connections(), 2, "{}", k.sshd.log());
}
