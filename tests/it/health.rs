//! `paragon-admin health` through the real binary: datastores (real PostgreSQL and Redis),
//! monitoring (a real HTTP server with Grafana's and Prometheus' documents) and the cluster.

use serde_json::Value;

use crate::support::datastores::{Postgres, Redis};
use crate::support::monitoring::{Monitoring, QUIET_ALERTS};
use crate::support::sandbox::SandboxProc;
use crate::support::{Home, Run, closed_port, run};
use paragon_admin::sandbox::Fault;

/// Runs `health --local --output json` with `extra` arguments; the parsed report too.
fn health_json(home: &Home, extra: &[&str]) -> (Run, Value) {
    let r = run(home
        .paragon()
        .args(["health", "--local", "--output", "json", "--timeout", "10"])
        .args(extra));
    let v: Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", r.stdout, r.stderr));
    (r, v)
}

/// The findings of check `name`.
fn findings<'a>(v: &'a Value, name: &str) -> Vec<&'a Value> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == name)
        .collect()
}

fn statuses(v: &Value, name: &str) -> Vec<String> {
    findings(v, name)
        .iter()
        .map(|c| c["status"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn datastores_are_found_healthy_then_failing_once_stopped() {
    let mut pg = Postgres::start();
    let mut pg_pw = Postgres::start_with("127.0.0.1", &[], Some("s3cret-pw"));
    let mut redis = Redis::start();
    let mon = Monitoring::start(QUIET_ALERTS);
    let home = Home::new();
    let closed = closed_port();
    home.write_config(&format!(
        "[profiles.t]\nhost = \"bastion.invalid\"\n[profiles.t.datastores]\npostgres = [\"{}\", \"{}\"]\nredis = [\"{}\"]\n\
         s3 = [\"http://127.0.0.1:{}\", \"http://127.0.0.1:{closed}\"]\n{}",
        pg.target(),
        pg_pw.target(),
        redis.target(),
        mon.port,
        mon.services_toml("t"),
    ));
    let (_, v) = health_json(&home, &[]);
    assert_eq!(statuses(&v, "postgres"), ["ok", "ok"], "{v:#}");
    let pg_msgs: Vec<&str> = findings(&v, "postgres")
        .iter()
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert!(pg_msgs.contains(&"answered SELECT 1"), "{pg_msgs:?}");
    assert!(
        pg_msgs.iter().any(|m| m.contains("asked for a password")),
        "{pg_msgs:?}"
    );
    let r = &findings(&v, "redis")[0];
    assert_eq!(r["status"], "ok", "{r}");
    assert!(
        r["message"].as_str().unwrap().starts_with("PONG; memory"),
        "{r}"
    );
    assert_eq!(statuses(&v, "grafana"), ["ok"], "{v:#}");
    assert_eq!(statuses(&v, "prometheus"), ["ok"], "{v:#}");
    assert_eq!(statuses(&v, "kibana"), ["warn"], "{v:#}");
    // MinIO's probe: live where it answers, a failure where nothing listens.
    let s3: Vec<(String, String)> = findings(&v, "s3")
        .iter()
        .map(|f| {
            (
                f["subject"].as_str().unwrap().to_string(),
                f["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        s3.contains(&(format!("http://127.0.0.1:{}", mon.port), "ok".into())),
        "{s3:?}"
    );
    assert!(
        s3.contains(&(format!("http://127.0.0.1:{closed}"), "fail".into())),
        "{s3:?}"
    );

    pg.stop();
    pg_pw.stop();
    redis.stop();
    let (r, v) = health_json(&home, &[]);
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert_eq!(v["status"], "fail");
    assert_eq!(statuses(&v, "postgres"), ["fail", "fail"], "{v:#}");
    assert_eq!(statuses(&v, "redis"), ["fail"], "{v:#}");
    let msg = findings(&v, "redis")[0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains(&redis.target()), "{msg}");
}

#[test]
fn postgres_password_from_the_keyring_runs_select_1() {
    use std::io::Write;
    let pg = Postgres::start_with("127.0.0.1", &[], Some("kr-pw-1"));
    let home = Home::new();
    // A profile name no other test uses: keyring secrets are per profile.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let profile = format!("pg{}x{nanos}", std::process::id());
    let secret = format!("{profile}/postgres-password");
    home.write_config(&format!(
        "[profiles.{profile}]\nhost = \"b.invalid\"\n[profiles.{profile}.datastores]\npostgres = [\"{}\"]\n",
        pg.target()
    ));
    struct Forget<'a>(&'a Home, &'a str);
    impl Drop for Forget<'_> {
        fn drop(&mut self) {
            let _ = self
                .0
                .paragon()
                .args(["secrets", "delete", self.1])
                .output();
        }
    }
    let _forget = Forget(&home, &secret);
    let mut set = home
        .paragon()
        .args(["secrets", "set", &secret])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    set.stdin.take().unwrap().write_all(b"kr-pw-1").unwrap();
    assert!(set.wait().unwrap().success());
    let (_, v) = health_json(&home, &[]);
    let f = &findings(&v, "postgres")[0];
    assert_eq!(
        (f["status"].as_str(), f["message"].as_str()),
        (Some("ok"), Some("answered SELECT 1")),
        "{f}"
    );
}

#[test]
fn a_check_that_outlives_its_timeout_is_reported_as_not_checked() {
    // Connections to this listener complete (the kernel's backlog) but nothing ever answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let home = Home::new();
    home.write_config(&format!(
        "[profiles.t]\nhost = \"b.invalid\"\n[profiles.t.services.grafana]\ntarget = \"127.0.0.1:{port}\"\n"
    ));
    let r = run(home
        .paragon()
        .args(["health", "--local", "--output", "json", "--timeout", "1"]));
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let f = &findings(&v, "grafana")[0];
    assert_eq!(f["status"], "fail", "{f}");
    assert_eq!(f["checked"], false, "{f}");
    assert_eq!(f["message"], "not checked: no answer within 1s", "{f}");
    assert_eq!(r.status, Some(1));
    drop(silent);
}

#[test]
fn redis_near_maxmemory_is_a_warning() {
    // An empty Redis uses about 0.9 MiB: a 900 kB limit puts it above 90 %.
    let redis = Redis::start_with("127.0.0.1", &[], &["--maxmemory", "900kb"]);
    let home = Home::new();
    home.write_config(&format!(
        "[profiles.t]\nhost = \"b.invalid\"\n[profiles.t.datastores]\nredis = [\"{}\"]\n",
        redis.target()
    ));
    let (_, v) = health_json(&home, &[]);
    let f = &findings(&v, "redis")[0];
    assert_eq!(f["status"], "warn", "{f}");
    assert!(
        f["message"].as_str().unwrap().contains("near maxmemory"),
        "{f}"
    );
}

/// A home whose profile points the monitoring services at `mon`.
fn home_for(mon: &Monitoring, extra: &str) -> Home {
    let home = Home::new();
    home.write_config(&format!(
        "[profiles.t]\nhost = \"bastion.invalid\"\n{extra}{}",
        mon.services_toml("t")
    ));
    home
}

/// A kubeconfig in `home` for an API server at 127.0.0.1:`port` with a bearer token.
fn api_kubeconfig(home: &Home, port: u16) -> std::path::PathBuf {
    let kc = home.path().join("kubeconfig");
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{port}\n\
             users:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n\
             current-context: c\n"
        ),
    )
    .unwrap();
    kc
}

fn failures(v: &Value) -> Vec<String> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| format!("{} {}: {}", c["name"], c["subject"], c["message"]))
        .collect()
}

/// An installation runs Kibana or OpenObserve: the one it runs answers, the other is absent
/// and that is not a warning, so a clean sandbox reads green.
#[test]
fn clean_sandbox_is_green_and_exits_0() {
    let sandbox = SandboxProc::start(&[]);
    let mon = Monitoring::start(QUIET_ALERTS);
    let home = home_for(&mon, &mon.openobserve_toml("t"));
    let kc = sandbox.kubeconfig.clone();
    let (r, v) = health_json(&home, &["--kubeconfig", kc.to_str().unwrap()]);
    assert_eq!(failures(&v), Vec::<String>::new(), "{v:#}");
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert_eq!(v["status"], "ok", "{v:#}");
    assert_eq!(statuses(&v, "openobserve"), ["ok"], "{v:#}");
    let kibana = &findings(&v, "kibana")[0];
    assert_eq!(kibana["status"], "ok", "{kibana}");
    assert!(
        kibana["message"]
            .as_str()
            .unwrap()
            .starts_with("not deployed"),
        "{kibana}"
    );
    for name in [
        "api",
        "nodes",
        "workloads",
        "jobs",
        "pods",
        "pvcs",
        "events",
        "helm",
        "tls",
    ] {
        assert_eq!(statuses(&v, name), ["ok"], "{name}: {v:#}");
    }
    // The sandbox's real-world shapes that must not alarm: a claim Pending on a
    // WaitForFirstConsumer class; Warnings about the pods the daily 14:00 restart replaced
    // (within the hour only between 14:00 and 15:00, so the events check's "ok" above is
    // what holds at any time of day).
    let message = |name: &str| {
        findings(&v, name)[0]["message"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        message("pvcs").contains("1 waiting for a first consumer"),
        "{}",
        message("pvcs")
    );
    // The table says the same, with a summary line.
    let r = run(home
        .paragon()
        .args(["health", "--local", "--kubeconfig", kc.to_str().unwrap()]));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("| ok     | api "), "{}", r.stdout);
    let last = r.stdout.lines().last().unwrap();
    assert!(last.starts_with("ok: 0 failed, 0 warnings, "), "{last}");

    // Neither logging service answers: that is worth a warning.
    let home = home_for(&mon, "");
    let (r, v) = health_json(&home, &["--kubeconfig", kc.to_str().unwrap()]);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert_eq!(v["status"], "warn", "{v:#}");
    assert_eq!(statuses(&v, "kibana"), ["warn"], "{v:#}");
}

#[test]
fn a_named_kubeconfig_or_context_that_does_not_work_is_a_usage_error() {
    let sandbox = SandboxProc::start(&[]);
    let mon = Monitoring::start(QUIET_ALERTS);
    let home = home_for(&mon, "");
    let kc = sandbox.kubeconfig.clone();
    let r = run(home
        .paragon()
        .args(["health", "--local", "--context", "nope", "--kubeconfig"])
        .arg(&kc));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("nope"), "{}", r.stderr);
    let missing = sandbox.home.path().join("missing");
    let r = run(home
        .paragon()
        .args(["health", "--local", "--kubeconfig"])
        .arg(&missing));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains(missing.to_str().unwrap()), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    // The context that exists works.
    let r = run(home
        .paragon()
        .args(["health", "--local", "--context", "sandbox", "--kubeconfig"])
        .arg(&kc));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
}

#[test]
fn the_profiles_kube_keys_choose_the_kubeconfig_and_context() {
    let sandbox = SandboxProc::start(&["--fault", "node-pressure"]);
    let mon = Monitoring::start(QUIET_ALERTS);
    let kc = sandbox.kubeconfig.display().to_string();
    let home = home_for(
        &mon,
        &format!("[profiles.t.kube]\nkubeconfig = \"{kc}\"\ncontext = \"sandbox\"\n"),
    );
    let (r, v) = health_json(&home, &[]);
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert_eq!(statuses(&v, "api"), ["ok"], "{v:#}");
    assert!(
        failures(&v).iter().any(|f| f.contains("MemoryPressure")),
        "{v:#}"
    );
    // The flag wins over the profile's context.
    let r = run(home
        .paragon()
        .args(["health", "--local", "--context", "other"]));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
}

#[test]
fn an_unreachable_api_is_one_failure_and_every_cluster_check_did_not_run() {
    let mon = Monitoring::start(QUIET_ALERTS);
    let home = home_for(&mon, "");
    let closed = closed_port();
    let kc = api_kubeconfig(&home, closed);
    let (r, v) = health_json(&home, &["--kubeconfig", kc.to_str().unwrap()]);
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    let api = &findings(&v, "api")[0];
    // The api check ran: it found the cause.
    assert_eq!(
        (api["status"].as_str(), api["checked"].as_bool()),
        (Some("fail"), Some(true)),
        "{api}"
    );
    assert!(
        api["message"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{closed}")),
        "{api}"
    );
    for name in [
        "nodes",
        "workloads",
        "jobs",
        "pods",
        "pvcs",
        "events",
        "helm",
        "tls",
    ] {
        let f = findings(&v, name);
        assert_eq!(f.len(), 1, "{name}: {v:#}");
        assert_eq!(f[0]["checked"], false, "{name}: {}", f[0]);
        assert_eq!(f[0]["message"], "not checked: the API is unreachable");
    }
    // The other checks still ran.
    assert_eq!(statuses(&v, "grafana"), ["ok"], "{v:#}");
    // OpenObserve's built-in name needs the API route: it did not run either.
    let openobserve = &findings(&v, "openobserve")[0];
    assert_eq!(openobserve["checked"], false, "{openobserve}");
    assert_eq!(
        openobserve["message"],
        "not checked: the API is unreachable"
    );
    // One failure; what did not run is counted as that, not as warnings (kibana, configured
    // on a closed port, is the one warning: not deployed).
    assert_eq!(v["summary"]["fail"], 1, "{v:#}");
    assert_eq!(v["summary"]["warn"], 1, "{v:#}");
    // The nine cluster checks, and capacity (the stand-in Prometheus has no query API).
    assert_eq!(v["summary"]["not_checked"], 10, "{v:#}");
    let text = v.to_string();
    for library in ["ServiceError", "client error", "not deployed?", "Status {"] {
        assert!(!text.contains(library), "{library}: {v:#}");
    }
}

#[test]
fn the_schedulers_new_style_events_report_their_series_count() {
    // The scheduler writes events.k8s.io events: eventTime and series.count 41, no count.
    let sandbox = SandboxProc::start(&["--fault", "pending"]);
    let mon = Monitoring::start(QUIET_ALERTS);
    let home = home_for(&mon, "");
    let kc = sandbox.kubeconfig.clone();
    let (_, v) = health_json(&home, &["--kubeconfig", kc.to_str().unwrap()]);
    let hit = findings(&v, "events").into_iter().any(|f| {
        f["status"] == "fail"
            && f["subject"]
                .as_str()
                .unwrap()
                .starts_with("paragon/pod/zeus-")
            && f["message"]
                .as_str()
                .unwrap()
                .starts_with("41× FailedScheduling: ")
    });
    assert!(hit, "{v:#}");
}

#[test]
fn an_api_that_throttles_fails_once_or_expires_a_continued_list_does_not_fail_the_report() {
    // 1,200 pods: the pod list takes three pages, so there are continued lists to expire.
    let faults = ["api-throttle", "api-error", "api-expired-continue"];
    let mon = Monitoring::start(QUIET_ALERTS);
    let home = home_for(&mon, "");
    let problems: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = faults
            .iter()
            .map(|&fault| {
                let home = &home;
                s.spawn(move || {
                    let sandbox = SandboxProc::start(&["--pods", "1200", "--fault", fault]);
                    let kc = sandbox.kubeconfig.clone();
                    let (r, v) = health_json(home, &["--kubeconfig", kc.to_str().unwrap()]);
                    let mut wrong = Vec::new();
                    // Every check ran but capacity (the stand-in Prometheus has no query API).
                    let skipped: Vec<&Value> = v["checks"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|c| c["checked"] == false && c["name"] != "capacity")
                        .collect();
                    if !skipped.is_empty() {
                        wrong.push(format!("{fault}: not checked: {skipped:?}"));
                    }
                    for name in [
                        "api",
                        "nodes",
                        "workloads",
                        "jobs",
                        "pods",
                        "pvcs",
                        "events",
                        "helm",
                        "tls",
                    ] {
                        if statuses(&v, name) != ["ok"] {
                            wrong.push(format!("{fault}: {name}: {:?}", findings(&v, name)));
                        }
                    }
                    if r.status != Some(0) {
                        wrong.push(format!("{fault}: exit {:?}: {}", r.status, r.stderr));
                    }
                    wrong
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn a_forbidden_list_warns_and_strict_makes_it_exit_1_counting_what_did_not_run() {
    let sandbox = SandboxProc::start(&["--fault", "api-forbidden=secrets"]);
    let mon = Monitoring::start(QUIET_ALERTS);
    let home = home_for(&mon, "");
    let kc = sandbox.kubeconfig.clone();
    let (r, v) = health_json(&home, &["--kubeconfig", kc.to_str().unwrap()]);
    assert_eq!(r.status, Some(0), "{v:#}");
    let tls = &findings(&v, "tls")[0];
    assert_eq!(
        (&tls["status"], &tls["checked"]),
        (&"warn".into(), &false.into()),
        "{tls}"
    );
    assert!(
        tls["message"]
            .as_str()
            .unwrap()
            .starts_with("not checked: forbidden by RBAC (secrets is forbidden"),
        "{tls}"
    );
    let (r, _) = health_json(&home, &["--kubeconfig", kc.to_str().unwrap(), "--strict"]);
    assert_eq!(r.status, Some(1));
    let r = run(home
        .paragon()
        .args(["health", "--local", "--kubeconfig", kc.to_str().unwrap()]));
    let last = r.stdout.lines().last().unwrap();
    // tls and helm read secrets; capacity: the stand-in Prometheus has no query API
    assert!(last.contains("(3 checks did not run)"), "{last}");
}

#[test]
fn each_sandbox_fault_produces_its_failing_finding_and_exit_1() {
    // (fault, check, subject starts with, message contains); every fault of the installation
    // (the API's own faults, `api-*`, are the next test's; `log-secrets` changes only what
    // the pods' logs say, which the bundle's tests read)
    let installation = || {
        Fault::ALL
            .into_iter()
            .filter(|f| !f.name().starts_with("api-") && f.name() != "log-secrets")
    };
    assert_eq!(
        installation().count(),
        19,
        "a new sandbox fault needs its case here"
    );
    let cases: &[(Fault, &str, &str, &str)] = &[
        (
            Fault::CrashLoop,
            "pods",
            "paragon/pod/worker-actions-",
            "in CrashLoopBackOff (9 restarts",
        ),
        (
            Fault::ImagePull,
            "pods",
            "paragon/pod/hermes-",
            "ImagePullBackOff",
        ),
        (
            Fault::Pending,
            "pods",
            "paragon/pod/zeus-",
            "Pending for 25m: Unschedulable: 0/3 nodes",
        ),
        (
            Fault::OomKilled,
            "pods",
            "paragon/pod/worker-workflows-",
            "OOMKilled 12m ago",
        ),
        (
            Fault::NodeNotReady,
            "nodes",
            "node/",
            "not Ready (Unknown): Kubelet stopped posting",
        ),
        (
            Fault::NodePressure,
            "nodes",
            "node/",
            "MemoryPressure (KubeletHasInsufficientMemory: kubelet has insufficient memory available)",
        ),
        (
            Fault::DeploymentUnavailable,
            "workloads",
            "paragon/deployment/passport",
            "0/2 replicas available",
        ),
        (
            Fault::PvcPending,
            "pvcs",
            "paragon/pvc/pgadmin-data",
            "Pending for 30m (storage class gp3-encrypted)",
        ),
        (
            Fault::FailedRelease,
            "helm",
            "paragon/release/paragon-on-prem",
            "is failed, not deployed",
        ),
        (
            Fault::ExpiringCert,
            "tls",
            "paragon/secret/paragon-tls",
            "certificate expires in",
        ),
        (
            Fault::WarningEvents,
            "events",
            "paragon/pod/zeus-",
            "12× DNSConfigForming",
        ),
        (
            Fault::MigrationFailed,
            "jobs",
            "paragon/job/migrations-postgres-hermes",
            "failed (BackoffLimitExceeded)",
        ),
        (
            Fault::NetworkUnavailable,
            "nodes",
            "node/",
            "NetworkUnavailable (NoRouteCreated",
        ),
        (
            Fault::StuckTerminating,
            "pods",
            "paragon/pod/worker-crons-",
            "stuck Terminating",
        ),
        (
            Fault::PostStartHook,
            "pods",
            "paragon/pod/pheme-",
            "PostStartHookError",
        ),
        (
            Fault::PendingRelease,
            "helm",
            "paragon/release/paragon-monitoring",
            "pending-upgrade for 3h: it blocks every later upgrade",
        ),
        // Problems a careful operator looks at but that do not break the installation: a
        // warning each, and the report exits 0.
        (
            Fault::Evicted,
            "pods",
            "paragon/pod/worker-proxy-",
            "Failed: TerminationByKubelet: The node was low on resource: memory",
        ),
        (
            Fault::FailedPod,
            "pods",
            "paragon/pod/paragon-db-backup",
            "Failed: container paragon-db-backup exited 137 (OOMKilled)",
        ),
        (
            Fault::ReadinessGate,
            "pods",
            "paragon/pod/ingress-nginx-controller-",
            "containers ready but the pod is not Ready: readiness gate",
        ),
    ];
    let warns_only = [Fault::Evicted, Fault::FailedPod, Fault::ReadinessGate];
    for f in installation() {
        assert!(
            cases.iter().any(|c| c.0 == f),
            "no case for the fault {}",
            f.name()
        );
    }
    let mon = Monitoring::start(QUIET_ALERTS);
    let home = home_for(&mon, "");
    let problems: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .map(|&(fault, check, subject, message)| {
                let home = &home;
                s.spawn(move || {
                    let sandbox = SandboxProc::start(&["--fault", fault.name()]);
                    let kc = sandbox.kubeconfig.clone();
                    let (r, v) = health_json(home, &["--kubeconfig", kc.to_str().unwrap()]);
                    let (severity, exit, overall) = if warns_only.contains(&fault) {
                        ("warn", 0, "warn")
                    } else {
                        ("fail", 1, "fail")
                    };
                    let hit = findings(&v, check).into_iter().any(|f| {
                        f["status"] == severity
                            && f["subject"].as_str().unwrap().starts_with(subject)
                            && f["message"].as_str().unwrap().contains(message)
                    });
                    let mut wrong = Vec::new();
                    if !hit {
                        wrong.push(format!("{}: no {severity} {check} finding on {subject}* with {message:?}; failures: {:?}", fault.name(), failures(&v)));
                    }
                    if r.status != Some(exit) || v["status"] != overall {
                        wrong.push(format!("{}: exit {:?}, status {}; failures: {:?}; stderr: {}", fault.name(), r.status, v["status"], failures(&v), r.stderr));
                    }
                    wrong
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The bastion topology: `client` (where paragon-admin runs) reaches only `bastion`, an
/// OpenSSH sshd; only the bastion reaches `private`, where the API server (the sandbox),
/// Postgres, Redis, Grafana and Prometheus listen, under names only the bastion resolves.
#[test]
fn whole_report_runs_through_a_real_openssh_bastion() {
    use crate::support::netns::Topology;
    use crate::support::sshd::{Sshd, SshdOptions};
    use std::time::{Duration, Instant};

    const BASTION: &str = "198.51.100.1";
    const PRIVATE: &str = "203.0.113.2";
    let net = Topology::new(&["client", "bastion", "private"]);
    net.link("client", "198.51.100.2/24", "bastion", "198.51.100.1/24");
    net.link("bastion", "203.0.113.1/24", "private", "203.0.113.2/24");
    net.hosts_file(
        "bastion",
        &[
            ("postgres.paragon.internal", PRIVATE),
            ("redis.paragon.internal", PRIVATE),
            ("grafana.paragon.svc.cluster.local", PRIVATE),
            ("prometheus.paragon.svc.cluster.local", PRIVATE),
        ],
    );
    let in_private: Vec<&str> = vec!["ip", "netns", "exec", net.ns("private")];
    let mut pg = Postgres::start_with(PRIVATE, &in_private, None);
    let mut redis = Redis::start_with(PRIVATE, &in_private, &[]);

    // The API server: the sandbox with one fault, in the private namespace.
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    net.spawn(
        net.command("private", env!("CARGO_BIN_EXE_paragon-admin"))
            .args(["--quiet", "sandbox", "--listen", &format!("{PRIVATE}:6443")])
            .arg("--kubeconfig-out")
            .arg(&kubeconfig)
            .args(["--fault", "crashloop"])
            .env("HOME", dir.path())
            .stdout(std::process::Stdio::null()),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !kubeconfig.exists() {
        assert!(Instant::now() < deadline, "the sandbox wrote no kubeconfig");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Grafana and Prometheus on their built-in ports, found by their built-in names.
    let site = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(site.path().join("api/v1")).unwrap();
    std::fs::write(
        site.path().join("api/health"),
        r#"{"database":"ok","version":"11.1.0"}"#,
    )
    .unwrap();
    std::fs::write(site.path().join("api/v1/alerts"), QUIET_ALERTS).unwrap();
    net.http_server("private", PRIVATE, 4500, site.path());
    net.http_server("private", PRIVATE, 9090, site.path());

    let mut sshd = Sshd::start_with(SshdOptions {
        listen: BASTION.to_string(),
        prefix: vec![
            "ip".into(),
            "netns".into(),
            "exec".into(),
            net.ns("bastion").into(),
        ],
        ..SshdOptions::default()
    });
    // The bastion's own kubeconfig is the sandbox's: health fetches it with the real kubectl.
    sshd.kubectl_with(&kubeconfig);
    let home = Home::new();
    sshd.configure_with(&home, &format!(
            "[profiles.test.datastores]\npostgres = [\"postgres.paragon.internal:{}\"]\nredis = [\"redis.paragon.internal:{}\"]\n",
            pg.port, redis.port
        ));
    let health = || {
        let r = run(net.paragon("client", &home).args([
            "health",
            "--output",
            "json",
            "--timeout",
            "10",
        ]));
        let v: Value = serde_json::from_str(&r.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", r.stdout, r.stderr));
        (r, v)
    };

    let (r, v) = health();
    assert_eq!(r.status, Some(1), "{}\n{v:#}", r.stderr);
    assert_eq!(statuses(&v, "api"), ["ok"], "{v:#}");
    let fails = failures(&v);
    assert_eq!(fails.len(), 1, "only the crashloop fails: {fails:#?}");
    assert!(fails[0].contains("CrashLoopBackOff"), "{fails:?}");
    for name in ["postgres", "redis", "grafana", "prometheus"] {
        assert_eq!(statuses(&v, name), ["ok"], "{name}: {v:#}");
    }
    // Kibana's name resolves nowhere: not deployed, a warning.
    assert_eq!(statuses(&v, "kibana"), ["warn"], "{v:#}");

    // From the client, without the bastion, none of it is reachable.
    let r = run(net
        .paragon("client", &home)
        .args([
            "health",
            "--local",
            "--output",
            "json",
            "--timeout",
            "5",
            "--kubeconfig",
        ])
        .arg(&kubeconfig));
    let local: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(statuses(&local, "api"), ["fail"], "{local:#}");
    assert_eq!(statuses(&local, "postgres"), ["fail"], "{local:#}");

    pg.stop();
    redis.stop();
    let (r, v) = health();
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert_eq!(statuses(&v, "postgres"), ["fail"], "{v:#}");
    assert_eq!(statuses(&v, "redis"), ["fail"], "{v:#}");

    sshd.stop();
    // The agent learns of it from its socket's end, a moment later: until then, a command
    // would be answered from the session it believes up (its kubeconfig reused).
    crate::agent::wait_until(
        "the agent saw its session end",
        std::time::Duration::from_secs(10),
        || {
            let status = run(net
                .paragon("client", &home)
                .args(["agent", "status", "--output", "json"]));
            serde_json::from_str::<Value>(&status.stdout).is_ok_and(|s| s["connected"] == false)
        },
    );
    let r = run(net
        .paragon("client", &home)
        .args(["health", "--output", "json"]));
    assert_eq!(r.status, Some(255), "{}", r.stderr);
    assert_eq!(r.stdout, "", "no report without the bastion");
}

#[test]
fn a_redis_that_wants_a_password_takes_it_from_the_keyring_and_refusals_show_redis_reasons() {
    use std::io::Write;
    let redis = Redis::start_with("127.0.0.1", &[], &["--requirepass", "kr-redis-1"]);
    let mon = Monitoring::start(QUIET_ALERTS);
    let home = Home::new();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let profile = format!("rd{}x{nanos}", std::process::id());
    let secret = format!("{profile}/redis-password");
    // The second "Redis" is Grafana's HTTP server: not Redis at all.
    home.write_config(&format!(
        "[profiles.{profile}]\nhost = \"b.invalid\"\n[profiles.{profile}.datastores]\nredis = [\"{}\", \"127.0.0.1:{}\"]\n",
        redis.target(),
        mon.port
    ));
    struct Forget<'a>(&'a Home, &'a str);
    impl Drop for Forget<'_> {
        fn drop(&mut self) {
            let _ = self
                .0
                .paragon()
                .args(["secrets", "delete", self.1])
                .output();
        }
    }
    let _forget = Forget(&home, &secret);
    let set = |value: &str| {
        let mut set = home
            .paragon()
            .args(["secrets", "set", &secret])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        set.stdin
            .take()
            .unwrap()
            .write_all(value.as_bytes())
            .unwrap();
        assert!(set.wait().unwrap().success());
    };
    let by_subject = |v: &Value, subject: &str| -> (String, String) {
        let f = findings(v, "redis")
            .into_iter()
            .find(|f| f["subject"] == subject)
            .unwrap_or_else(|| panic!("no redis finding on {subject}: {v:#}"))
            .clone();
        (
            f["status"].as_str().unwrap().to_string(),
            f["message"].as_str().unwrap().to_string(),
        )
    };
    let http = format!("127.0.0.1:{}", mon.port);

    // No password stored: alive, and the finding names the secret to set.
    let (_, v) = health_json(&home, &[]);
    let (status, message) = by_subject(&v, &redis.target());
    assert_eq!(status, "ok", "{message}");
    assert!(
        message.contains(&format!("paragon-admin secrets set {secret}")),
        "{message}"
    );
    let (status, message) = by_subject(&v, &http);
    assert_eq!(status, "fail");
    assert!(message.contains("not Redis?"), "{message}");

    // The right password: memory, as for an open Redis.
    set("kr-redis-1");
    let (_, v) = health_json(&home, &[]);
    let (status, message) = by_subject(&v, &redis.target());
    assert_eq!(status, "ok", "{message}");
    assert!(message.starts_with("PONG; memory"), "{message}");

    // A wrong one: Redis's own reason, and which secret to check.
    set("wrong");
    let (_, v) = health_json(&home, &[]);
    let (status, message) = by_subject(&v, &redis.target());
    assert_eq!(status, "fail", "{message}");
    assert!(message.contains("WRONGPASS"), "{message}");
    assert!(message.contains(&secret), "{message}");
}

#[test]
fn local_health_with_a_kubeconfig_needs_no_config_file() {
    let sandbox = SandboxProc::start(&[]);
    // A new user's machine: an empty home, no config file, no $PARAGON_ADMIN_CONFIG.
    let home = Home::new();
    let kc = sandbox.kubeconfig.clone();
    let r = run(home
        .paragon()
        .env_remove("PARAGON_ADMIN_CONFIG")
        .args(["health", "--local", "--output", "json", "--timeout", "10"])
        .arg("--kubeconfig")
        .arg(&kc));
    let v: Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", r.stdout, r.stderr));
    assert_eq!(failures(&v), Vec::<String>::new(), "{v:#}");
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert_ne!(v["status"], "fail", "{v:#}");
    for name in ["api", "nodes", "pods"] {
        assert_eq!(statuses(&v, name), ["ok"], "{name}: {v:#}");
    }
    // Nothing from a profile is checked: no datastores, no monitoring services.
    let areas: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["area"].as_str())
        .collect();
    assert!(
        !areas
            .iter()
            .any(|a| *a == "datastores" || *a == "monitoring"),
        "{v:#}"
    );
    assert!(!home.config_path().exists(), "health wrote no config file");
    // A profile asked for by name still needs the file: a usage error naming it.
    let r = run(home
        .paragon()
        .args(["--profile", "prod", "health", "--local", "--kubeconfig"])
        .arg(&kc));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("no config file"), "{}", r.stderr);
}

/// A profile whose S3 endpoint, Grafana and Prometheus are the TLS server `mon` at `host`
/// (`ca` written as `ca_file`, relative to the config file, when given); kibana absent.
fn https_home(mon: &Monitoring, host: &str, ca: Option<&std::path::Path>) -> Home {
    let home = Home::new();
    let ca_line = match ca {
        Some(pem) => {
            std::fs::copy(pem, home.path().join("test-ca.pem")).unwrap();
            "ca_file = \"test-ca.pem\"\n"
        }
        None => "",
    };
    let closed = closed_port();
    let p = mon.port;
    let mut text = format!(
        "[profiles.t]\nhost = \"bastion.invalid\"\n\
         [profiles.t.datastores]\ns3 = [\"https://{host}:{p}\"]\n{ca_line}"
    );
    for name in ["grafana", "prometheus"] {
        text += &format!(
            "[profiles.t.services.{name}]\ntarget = \"{host}:{p}\"\nscheme = \"https\"\n{ca_line}"
        );
    }
    text += &format!("[profiles.t.services.kibana]\ntarget = \"127.0.0.1:{closed}\"\n");
    home.write_config(&text);
    home
}

/// The (status, message) of every s3, grafana and prometheus finding.
fn https_findings(v: &Value) -> Vec<(String, String)> {
    ["s3", "grafana", "prometheus"]
        .iter()
        .flat_map(|name| findings(v, name))
        .map(|c| {
            (
                c["status"].as_str().unwrap().to_string(),
                format!("{} {}: {}", c["name"], c["subject"], c["message"]),
            )
        })
        .collect()
}

#[test]
fn https_endpoints_are_verified_against_ca_file_else_refused_as_not_trusted_or_misnamed() {
    let sandbox = SandboxProc::start(&[]);
    let mon = Monitoring::start_tls(QUIET_ALERTS);
    let kc = sandbox.kubeconfig.clone();
    let kc = ["--kubeconfig", kc.to_str().unwrap()];

    // The test CA as ca_file: every https probe is ok, and the report exits 0.
    let home = https_home(&mon, "127.0.0.1", Some(&mon.ca_pem()));
    let (r, v) = health_json(&home, &kc);
    let found = https_findings(&v);
    assert_eq!(found.len(), 3, "{v:#}");
    assert!(found.iter().all(|(s, _)| s == "ok"), "{found:#?}");
    assert!(
        found.iter().all(|(_, m)| !m.contains("not checked")),
        "{found:#?}"
    );
    assert_eq!(failures(&v), Vec::<String>::new(), "{v:#}");
    assert_eq!(r.status, Some(0), "{}", r.stderr);

    // The system's roots do not know the test CA: each is a failure saying so.
    let home = https_home(&mon, "127.0.0.1", None);
    let (r, v) = health_json(&home, &kc);
    let found = https_findings(&v);
    assert_eq!(found.len(), 3, "{v:#}");
    for (status, message) in &found {
        assert_eq!(status, "fail", "{message}");
        assert!(message.contains("certificate not trusted"), "{message}");
    }
    assert_eq!(r.status, Some(1), "{}", r.stderr);

    // The right CA, but dialed as `localhost`, a name the certificate (IP 127.0.0.1 only)
    // does not carry.
    let home = https_home(&mon, "localhost", Some(&mon.ca_pem()));
    let (r, v) = health_json(&home, &kc);
    let found = https_findings(&v);
    assert_eq!(found.len(), 3, "{v:#}");
    for (status, message) in &found {
        assert_eq!(status, "fail", "{message}");
        assert!(
            message.contains("name mismatch: the certificate is not valid for localhost"),
            "{message}"
        );
    }
    assert_eq!(r.status, Some(1), "{}", r.stderr);
}

#[test]
fn a_ca_file_that_is_missing_or_not_pem_is_a_config_error_naming_file_line_and_key() {
    let home = Home::new();
    home.write_config(
        "[profiles.t]\nhost = \"bastion.invalid\"\n[profiles.t.datastores]\n\
         s3 = [\"https://127.0.0.1:9000\"]\nca_file = \"nowhere.pem\"\n",
    );
    let r = run(home.paragon().args(["health", "--local"]));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("config.toml:5: profiles.t.datastores.ca_file: cannot read"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("nowhere.pem"), "{}", r.stderr);

    std::fs::write(home.path().join("notes.pem"), "not a certificate\n").unwrap();
    home.write_config(
        "[profiles.t]\nhost = \"bastion.invalid\"\n\
         [profiles.t.services.grafana]\nscheme = \"https\"\nca_file = \"notes.pem\"\n",
    );
    let r = run(home.paragon().args(["health", "--local"]));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("config.toml:5: profiles.t.services.grafana.ca_file: ")
            && r.stderr.contains("holds no PEM certificate"),
        "{}",
        r.stderr
    );
}

#[test]
fn api_requests_carry_the_paragon_admin_user_agent() {
    // The sandbox logs each request as an API server's audit log does, User-Agent included.
    let sandbox = SandboxProc::start(&["-vv"]);
    let home = Home::new();
    home.write_config("[profiles.t]\nhost = \"bastion.invalid\"\n");
    let kc = sandbox.kubeconfig.clone();
    let (_, v) = health_json(&home, &["--kubeconfig", kc.to_str().unwrap()]);
    assert_eq!(statuses(&v, "api"), ["ok"], "{v:#}");
    let want = format!("user_agent=\"paragon-admin/{}\"", env!("CARGO_PKG_VERSION"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let log = sandbox.stderr();
        let lists_pods = log
            .lines()
            .any(|l| l.contains("path=\"/api/v1/pods\"") && l.contains(&want));
        if lists_pods {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no pods request with {want} in the sandbox's log:\n{log}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The bastion's stderr is quoted in the `api` row: an escape sequence in it (a title
/// change, a colour) reaches the terminal escaped, as OpenSSH shows a remote banner, in the
/// table and in the JSON alike.
#[test]
fn escape_sequences_from_the_bastion_reach_the_report_escaped() {
    let sshd = crate::support::sshd::Sshd::start();
    let home = Home::new();
    sshd.configure(&home);
    sshd.install(
        "kubectl",
        "#!/bin/sh\nprintf 'error: \\033]0;owned\\007\\033[31mred\\033[0m\\n' >&2\nexit 1\n",
    );
    for output in ["table", "json"] {
        let r = run(home.paragon().args([
            "--no-agent",
            "health",
            "--timeout",
            "10",
            "--output",
            output,
        ]));
        assert_eq!(r.status, Some(1), "{}", r.stderr);
        for (name, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
            assert!(
                !text.contains('\u{1b}') && !text.contains('\u{7}'),
                "{output} {name}: {text:?}"
            );
        }
        // JSON escapes the backslash of the escape once more.
        let shown = if output == "json" {
            r"\\033]0;owned\\007\\033[31mred"
        } else {
            r"\033]0;owned\007\033[31mred"
        };
        assert!(r.stdout.contains(shown), "{output}: {}", r.stdout);
    }
}

/// Ctrl-C while the checks run on a terminal: exit 130 at once, and the progress line is
/// cleared (no "checking 0/1" left where the shell's prompt comes back).
#[test]
fn ctrl_c_in_health_clears_its_progress_line_and_exits_130() {
    use crate::support::pty::Terminal;
    // An API server that accepts and never answers: the api check waits for its deadline.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let home = Home::new();
    let kc = api_kubeconfig(&home, port);
    let bin = env!("CARGO_BIN_EXE_paragon-admin");
    let mut t = Terminal::start(
        &home,
        &format!(
            "{bin} health --local --timeout 60 --kubeconfig {}",
            kc.display()
        ),
        &[("TERM", "xterm")],
    );
    t.wait_for("checking");
    let started = std::time::Instant::now();
    t.send(b"\x03");
    let (status, text) = t.finish_status();
    assert_eq!(status, 130, "{text:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{text:?}"
    );
    // After the last progress drawing, the line is erased (indicatif: CR, ESC [2K).
    let last = text.rfind("checking").unwrap();
    assert!(text[last..].contains("\x1b[2K"), "{text:?}");
    drop(silent);
}
