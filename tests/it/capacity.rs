//! The capacity signals against a real Prometheus: Debian's Prometheus scrapes Debian's
//! node-, postgres- and redis-exporters (on the suite's real PostgreSQL and Redis) and a test
//! exporter for what Debian does not package. Each signal is seen to pass, warn and fail as
//! its value crosses its levels: PostgreSQL's connections and Redis' memory and evictions are
//! driven for real, the served series by changing what the test exporter serves, and the
//! values nobody here controls (this machine's CPU, memory and disks) by moving the profile's
//! thresholds around them. The generated rules are loaded into the same Prometheus and fire
//! into a real Alertmanager; the dashboard's every query runs against it.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::datastores::{Postgres, Redis};
use crate::support::prometheus::{
    Alertmanager, Exporters, Prometheus, TestExporter, instant_query,
};
use crate::support::{Home, run};

/// What the test exporter serves, in the exporters' own names and labels.
struct Served {
    /// Working set of hermes' 1 GiB limit, in %.
    memory_percent: f64,
    oom_events: u32,
    restarts: u32,
    waiting: u32,
    failed: u32,
}

impl Served {
    fn render(&self) -> String {
        let pod = r#"namespace="paragon",pod="hermes-7c9d8-x2x4q",container="hermes""#;
        let cadvisor = format!(
            r#"id="/kubepods/burstable/pod1/abc",image="registry.example/paragon/hermes:2024.1",name="abc",{pod}"#
        );
        let gib = 1024.0 * 1024.0 * 1024.0;
        [
            // cAdvisor, as the kubelet's /metrics/cadvisor labels it (google/cadvisor
            // metrics/prometheus.go; the kubelet adds container, pod and namespace).
            format!(r#"container_cpu_usage_seconds_total{{cpu="total",{cadvisor}}} linear:0:0.5"#),
            format!(r#"container_cpu_cfs_periods_total{{{cadvisor}}} linear:0:10"#),
            format!(r#"container_cpu_cfs_throttled_periods_total{{{cadvisor}}} linear:0:1"#),
            format!(
                r#"container_memory_working_set_bytes{{{cadvisor}}} {}"#,
                self.memory_percent / 100.0 * gib
            ),
            format!(r#"container_oom_events_total{{{cadvisor}}} {}"#, self.oom_events),
            // node-exporter's CPU collector (collector/cpu_linux.go): one node 50 % busy.
            r#"node_cpu_seconds_total{cpu="0",mode="idle"} linear:0:0.5"#.into(),
            r#"node_cpu_seconds_total{cpu="0",mode="user"} linear:0:0.5"#.into(),
            // kube-state-metrics (internal/store/pod.go).
            format!(
                r#"kube_pod_container_resource_limits{{{pod},uid="1",node="n-1",resource="cpu",unit="core"}} 1"#
            ),
            format!(
                r#"kube_pod_container_resource_limits{{{pod},uid="1",node="n-1",resource="memory",unit="byte"}} {gib}"#
            ),
            format!(
                r#"kube_pod_container_status_restarts_total{{{pod},uid="1"}} {}"#,
                self.restarts
            ),
            // The daily restart job's pod is never counted.
            r#"kube_pod_container_status_restarts_total{namespace="paragon",pod="restart-paragon-pods-cronjob-29000000-abcde",container="kubectl",uid="2"} 50"#.into(),
            // UpHabit's bull_exporter (src/queueGauges.ts): gauges labelled queue and prefix.
            format!(r#"bull_queue_waiting{{queue="workflows",prefix="bull"}} {}"#, self.waiting),
            r#"bull_queue_delayed{queue="workflows",prefix="bull"} 5"#.into(),
            format!(r#"bull_queue_failed{{queue="workflows",prefix="bull"}} {}"#, self.failed),
            r#"bull_queue_active{queue="workflows",prefix="bull"} 2"#.into(),
            // The kubelet's volume stats (pkg/kubelet/metrics/collectors/volume_stats.go):
            // 80 % free, draining 1 kB/s (926 days to full).
            r#"kubelet_volume_stats_capacity_bytes{namespace="paragon",persistentvolumeclaim="data-postgres-0"} 100000000000"#.into(),
            r#"kubelet_volume_stats_available_bytes{namespace="paragon",persistentvolumeclaim="data-postgres-0"} linear:80000000000:-1000"#.into(),
            // ingress-nginx (internal/ingress/metric/collectors/socket.go): 0.5 % 5xx.
            r#"nginx_ingress_controller_requests{canary="",controller_class="k8s.io/ingress-nginx",controller_namespace="paragon",controller_pod="ingress-0",host="paragon.example.com",ingress="paragon",method="GET",namespace="paragon",path="/",service="hermes",status="200"} linear:0:199"#.into(),
            r#"nginx_ingress_controller_requests{canary="",controller_class="k8s.io/ingress-nginx",controller_namespace="paragon",controller_pod="ingress-0",host="paragon.example.com",ingress="paragon",method="GET",namespace="paragon",path="/",service="hermes",status="503"} linear:0:1"#.into(),
        ]
        .join("\n")
    }
}

/// Each capacity finding's signal (the message's first word): its worst status, whether it
/// was checked, and that finding's message.
fn capacity(home: &Home) -> BTreeMap<String, (String, bool, String)> {
    let r = run(home
        .paragon()
        .args(["health", "--local", "--output", "json", "--timeout", "10"]));
    let v: Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", r.stdout, r.stderr));
    let rank = |s: &str| ["ok", "warn", "fail"].iter().position(|x| *x == s);
    let mut out: BTreeMap<String, (String, bool, String)> = BTreeMap::new();
    for f in v["checks"].as_array().unwrap() {
        if f["area"] != "capacity" {
            continue;
        }
        let msg = f["message"].as_str().unwrap();
        let key = msg.split(':').next().unwrap().to_string();
        let status = f["status"].as_str().unwrap().to_string();
        let checked = f["checked"].as_bool().unwrap();
        let e = out
            .entry(key)
            .or_insert((status.clone(), checked, msg.to_string()));
        if rank(&status) > rank(&e.0) {
            *e = (status, checked && e.1, msg.to_string());
        }
    }
    out
}

fn config(prometheus: u16, redis: &str, postgres: &str, thresholds: &str) -> String {
    format!(
        "[profiles.t]\nhost = \"127.0.0.1\"\n\
         [profiles.t.services.prometheus]\ntarget = \"127.0.0.1:{prometheus}\"\nvia = \"bastion\"\n\
         [profiles.t.datastores]\npostgres = [\"{postgres}\"]\nredis = [\"{redis}\"]\n\
         [profiles.t.thresholds]\n{thresholds}"
    )
}

/// Polls the report until every signal in `want` has its status (bounded: 40 s).
fn expect(
    home: &Home,
    step: &str,
    want: &[(&str, &str)],
) -> BTreeMap<String, (String, bool, String)> {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let got = capacity(home);
        let wrong: Vec<String> = want
            .iter()
            .filter(|(k, s)| got.get(*k).is_none_or(|(g, checked, _)| g != s || !checked))
            .map(|(k, s)| format!("{k}: want {s}, got {:?}", got.get(*k)))
            .collect();
        if wrong.is_empty() {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{step}: {wrong:#?}\nall: {got:#?}"
        );
        std::thread::sleep(Duration::from_millis(700));
    }
}

/// Redis `INFO memory`'s used_memory over maxmemory, in %.
fn redis_fill(con: &mut redis::Connection) -> f64 {
    let info: String = redis::cmd("INFO").arg("memory").query(con).unwrap();
    let field = |name: &str| -> f64 {
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    field("used_memory") / field("maxmemory") * 100.0
}

/// Writes 16 KiB values into Redis until its memory reaches `percent` of maxmemory.
fn fill_redis_to(con: &mut redis::Connection, percent: f64, from: &mut u32) {
    let value = vec![b'x'; 16 * 1024];
    while redis_fill(con) < percent {
        let _: () = redis::cmd("SET")
            .arg(format!("job:{from}"))
            .arg(&value)
            .query(con)
            .unwrap();
        *from += 1;
    }
}

#[test]
fn capacity_signals_pass_warn_and_fail_as_values_cross_their_levels_and_the_rules_fire() {
    let dir = tempfile::tempdir().unwrap();
    let pg = Postgres::start();
    // A small maxmemory that LRU eviction keeps: Redis' memory and evictions go over for real.
    let redis = Redis::start_with(
        "127.0.0.1",
        &[],
        &["--maxmemory", "8mb", "--maxmemory-policy", "allkeys-lru"],
    );
    let exporters = Exporters::start(dir.path(), &pg.target(), &redis.target());
    let mut served = Served {
        memory_percent: 40.0,
        oom_events: 0,
        restarts: 0,
        waiting: 10,
        failed: 3,
    };
    let test_exporter = TestExporter::start(dir.path(), &served.render());
    // The generated rules, alerting at once (`--for 0s`), at the default levels.
    let home = Home::new();
    let rules = dir.path().join("rules.yml");
    let r = run(home.paragon().args(["monitoring", "rules", "--for", "0s"]));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    std::fs::write(&rules, &r.stdout).unwrap();
    let alertmanager = Alertmanager::start(dir.path());
    let prometheus = Prometheus::start(
        dir.path(),
        &[
            ("node", exporters.node),
            ("postgres", exporters.postgres),
            ("redis", exporters.redis),
            ("paragon", test_exporter.port),
        ],
        Some(&rules),
        Some(alertmanager.port),
    );
    prometheus.wait_for_targets(4);
    let write = |thresholds: &str| {
        home.write_config(&config(
            prometheus.port,
            &redis.target(),
            &pg.target(),
            thresholds,
        ))
    };

    // Pass: the served values within the default levels; this machine's own memory and
    // disks under levels set out of their reach.
    write("node_memory = { warn = 100, fail = 100 }\ndisk_free = { warn = 0, fail = 0 }\n");
    let all: Vec<&str> = [
        "cpu",
        "cpu_throttling",
        "node_cpu",
        "memory",
        "oom_kills",
        "node_memory",
        "restarts",
        "queue_backlog",
        "queue_failed",
        "queue_failed_growth",
        "postgres_connections",
        "postgres_deadlocks",
        "postgres_replication_lag",
        "redis_memory",
        "redis_evictions",
        "redis_rejected_connections",
        "redis_blocked_clients",
        "disk_free",
        "pvc_free",
        "pvc_days_to_full",
        "errors_5xx",
    ]
    .to_vec();
    let pass: Vec<(&str, &str)> = all.iter().map(|k| (*k, "ok")).collect();
    let got = expect(&home, "pass", &pass);
    // No node filesystem shrinks at a steady pace here: either none is filling, or it has
    // years left. Either way the signal was checked.
    assert!(got["disk_days_to_full"].1, "{got:?}");

    // Warn: real connections and Redis memory; served values past their warning levels; the
    // rest by levels moved just under their values.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let connect = |n: usize| -> Vec<tokio_postgres::Client> {
        runtime.block_on(async {
            let mut held = Vec::new();
            for _ in 0..n {
                let stream = tokio::net::TcpStream::connect(("127.0.0.1", pg.port))
                    .await
                    .unwrap();
                let mut config = tokio_postgres::Config::new();
                config.user("postgres").dbname("postgres");
                let (client, conn) = config
                    .connect_raw(stream, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                held.push(client);
            }
            held
        })
    };
    let mut held = connect(84); // of max_connections 100, with the exporter's own: 85 %
    let mut con = redis::Client::open(format!("redis://{}/", redis.target()))
        .unwrap()
        .get_connection()
        .unwrap();
    let mut keys = 0;
    fill_redis_to(&mut con, 84.0, &mut keys);
    served.memory_percent = 92.0;
    served.oom_events = 2;
    served.restarts = 3;
    served.waiting = 1500;
    served.failed = 103;
    test_exporter.set(&served.render());
    write(
        "cpu = { warn = 40 }\ncpu_throttling = { warn = 5 }\nerrors_5xx = { warn = 0.4 }\n\
         node_cpu = { warn = 40 }\nnode_memory = { warn = 0, fail = 100 }\n\
         disk_free = { warn = 100, fail = 0 }\npvc_free = { warn = 90 }\n\
         pvc_days_to_full = { warn = 1000 }\noom_kills = { warn = 1, fail = 10 }\n\
         queue_failed_growth = { warn = 10, fail = 1000 }\npostgres_deadlocks = { warn = 0 }\n\
         redis_evictions = { warn = 0 }\nredis_rejected_connections = { warn = 0 }\n\
         redis_blocked_clients = { warn = 0 }\n",
    );
    let warn: Vec<(&str, &str)> = all
        .iter()
        .filter(|k| **k != "postgres_replication_lag")
        .map(|k| (*k, "warn"))
        .chain([("postgres_replication_lag", "ok")])
        .collect();
    expect(&home, "warn", &warn);

    // Fail: more connections, Redis past maxmemory so that keys are evicted, served values
    // past their failure levels, and the other levels moved under their values.
    held.extend(connect(12)); // 97 of 100
    fill_redis_to(&mut con, 95.0, &mut keys);
    let value = vec![b'y'; 16 * 1024];
    for i in 0..200 {
        let _: () = redis::cmd("SET")
            .arg(format!("more:{i}"))
            .arg(&value)
            .query(&mut con)
            .unwrap();
    }
    served.memory_percent = 98.5;
    served.oom_events = 5;
    served.restarts = 20;
    served.waiting = 20000;
    served.failed = 1500;
    test_exporter.set(&served.render());
    write(
        "cpu = { warn = 40, fail = 45 }\ncpu_throttling = { warn = 5, fail = 8 }\n\
         errors_5xx = { warn = 0.4, fail = 0.45 }\nnode_cpu = { warn = 40, fail = 45 }\n\
         node_memory = { warn = 0, fail = 0 }\ndisk_free = { warn = 100, fail = 100 }\n\
         pvc_free = { warn = 90, fail = 85 }\npvc_days_to_full = { warn = 1000, fail = 950 }\n\
         postgres_deadlocks = { warn = 0, fail = 0 }\nredis_evictions = { warn = 1, fail = 10 }\n\
         redis_rejected_connections = { warn = 0, fail = 0 }\n\
         redis_blocked_clients = { warn = 0, fail = 0 }\n",
    );
    let fail: Vec<(&str, &str)> = all
        .iter()
        .filter(|k| **k != "postgres_replication_lag")
        .map(|k| (*k, "fail"))
        .collect();
    expect(&home, "fail", &fail);

    // The rules (default levels, loaded at the start) fire for the values past them, the
    // report's Prometheus check shows the same alerts, and Alertmanager receives them.
    let firing = [
        "ParagonMemory",
        "ParagonQueueBacklog",
        "ParagonPostgresConnections",
        "ParagonRedisMemory",
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let alerts = alertmanager.alerts();
        let names: Vec<String> = alerts
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["labels"]["severity"] == "critical")
            .map(|a| a["labels"]["alertname"].as_str().unwrap().to_string())
            .collect();
        if firing.iter().all(|f| names.iter().any(|n| n == f)) {
            let hermes = alerts
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["labels"]["alertname"] == "ParagonMemory")
                .unwrap();
            assert_eq!(hermes["labels"]["container"], "hermes", "{hermes}");
            assert!(
                hermes["annotations"]["description"]
                    .as_str()
                    .unwrap()
                    .contains("README.md#runbook-memory"),
                "{hermes}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "alertmanager holds {names:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let r = run(home
        .paragon()
        .args(["health", "--local", "--output", "json", "--timeout", "10"]));
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let shown: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == "prometheus")
        .filter_map(|c| c["message"].as_str())
        .collect();
    for f in firing {
        assert!(
            shown
                .iter()
                .any(|m| m.starts_with(&format!("alert {f} firing"))),
            "{f} not in {shown:#?}"
        );
    }

    // `monitoring status` at the levels the rules were generated with: every rule loaded,
    // and the ones the exporters drive over their levels firing, with their subjects.
    write("");
    let generated = std::fs::read_to_string(&rules)
        .unwrap()
        .matches("- alert: ")
        .count();
    let r = run(home
        .paragon()
        .args(["monitoring", "status", "--local", "--output", "json"]));
    assert_eq!(r.status, Some(0), "{}{}", r.stdout, r.stderr);
    let s: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(s["missing"], 0, "{s}");
    assert_eq!(s["loaded"], generated, "{s}");
    for f in firing {
        let rule = s["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["alert"] == f && r["severity"] == "critical")
            .unwrap_or_else(|| panic!("{f} not in {s}"));
        assert_eq!(rule["loaded"], true, "{rule}");
        assert!(!rule["firing"].as_array().unwrap().is_empty(), "{rule}");
    }
    let memory = s["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["alert"] == "ParagonMemory" && r["severity"] == "critical")
        .unwrap();
    assert!(
        memory["firing"][0]
            .as_str()
            .unwrap()
            .contains("container=hermes"),
        "{memory}"
    );
    // Within its levels: loaded, not firing.
    let deadlocks = s["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["alert"] == "ParagonPostgresDeadlocks")
        .unwrap();
    assert_eq!(
        deadlocks["firing"].as_array().unwrap().len(),
        0,
        "{deadlocks}"
    );
    let r = run(home.paragon().args(["monitoring", "status", "--local"]));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(!r.stdout.contains("missing"), "{}", r.stdout);
    assert!(
        r.stderr.contains(&format!(
            "{generated} of {generated} rules loaded, 0 missing"
        )),
        "{}",
        r.stderr
    );

    // Every dashboard panel's query is valid PromQL to this Prometheus.
    let r = run(home.paragon().args(["monitoring", "dashboard"]));
    let d: Value = serde_json::from_str(&r.stdout).unwrap();
    for p in d["panels"].as_array().unwrap() {
        if let Some(expr) = p["targets"][0]["expr"].as_str() {
            let v = instant_query(prometheus.port, expr);
            assert_eq!(v["status"], "success", "{}: {v}", p["title"]);
        }
    }
    drop(held);
}

#[test]
fn generated_rules_pass_promtool_at_default_and_profile_levels() {
    let home = Home::new();
    home.write_config(
        "[profiles.t]\nhost = \"b\"\n[profiles.t.thresholds]\nmemory = { warn = 85, fail = 92.5 }\n\
         disk_free = { fail = 2 }\n",
    );
    let dir = tempfile::tempdir().unwrap();
    for (name, args) in [
        ("profile.yml", vec!["monitoring", "rules"]),
        ("quick.yml", vec!["monitoring", "rules", "--for", "30s"]),
    ] {
        let r = run(home.paragon().args(&args));
        assert_eq!(r.status, Some(0), "{}", r.stderr);
        let file = dir.path().join(name);
        std::fs::write(&file, &r.stdout).unwrap();
        let out = Command::new("promtool")
            .args(["check", "rules"])
            .arg(&file)
            .output()
            .expect("promtool (scripts/test.sh installs prometheus)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("SUCCESS: 43 rules found"), "{text}");
        assert!(r.stdout.contains(") >= 92.5\n"), "{}", r.stdout);
    }
    // A bad level is the config's error, located.
    home.write_config(
        "[profiles.t]\nhost = \"b\"\n[profiles.t.thresholds]\nmemory = { warn = 99 }\n",
    );
    let r = run(home.paragon().args(["monitoring", "rules"]));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("config.toml:4: profiles.t.thresholds.memory: warn (99) is above fail (97)"),
        "{}",
        r.stderr
    );
    let r = run(home
        .paragon()
        .args(["monitoring", "rules", "--format", "kubernetes"]));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
}

#[test]
fn monitoring_status_shows_every_rule_missing_from_a_prometheus_without_them() {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::start(dir.path(), &[], None, None);
    let not_prometheus = TestExporter::start(dir.path(), "up 1");
    let home = Home::new();
    // No config file: a configuration error, before anything is dialed.
    let r = run(home.paragon().args(["monitoring", "status", "--local"]));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    let r = run(home.paragon().args(["monitoring", "rules"]));
    let generated = r.stdout.matches("- alert: ").count();
    assert!(generated > 20, "{}", r.stdout);
    let profile = |port: u16| {
        format!(
            "[profiles.t]\nhost = \"127.0.0.1\"\nport = 1\n\
             [profiles.t.services.prometheus]\ntarget = \"127.0.0.1:{port}\"\nvia = \"bastion\"\n"
        )
    };
    home.write_config(&profile(prometheus.port));
    let r = run(home
        .paragon()
        .args(["monitoring", "status", "--local", "--output", "json"]));
    assert_eq!(r.status, Some(1), "{}{}", r.stdout, r.stderr);
    let s: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        (s["loaded"].as_u64(), s["missing"].as_u64()),
        (Some(0), Some(generated as u64)),
        "{s}"
    );
    assert!(
        s["rules"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["loaded"] == false),
        "{s}"
    );
    let r = run(home.paragon().args(["monitoring", "status", "--local"]));
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert_eq!(
        r.stdout.matches("missing").count(),
        generated,
        "{}",
        r.stdout
    );
    // Something that is not Prometheus: its answer, one line.
    home.write_config(&profile(not_prometheus.port));
    let r = run(home.paragon().args(["monitoring", "status", "--local"]));
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "Prometheus 127.0.0.1:{} answered /api/v1/rules with HTTP 200 and no Prometheus API answer",
            not_prometheus.port
        )),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    // The bastion unreachable: 255, as everywhere.
    let r = run(home
        .paragon()
        .args(["--no-agent", "monitoring", "status"])
        .stdin(std::process::Stdio::null()));
    assert_eq!(r.status, Some(255), "{}", r.stderr);
}
