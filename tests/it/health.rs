//! `paragon-admin health` through the real binary: datastores (real PostgreSQL and Redis),
//! monitoring (a real HTTP server with Grafana's and Prometheus' documents) and the cluster.

use serde_json::Value;

use crate::support::datastores::{Postgres, Redis};
use crate::support::monitoring::{Monitoring, QUIET_ALERTS};
use crate::support::{Home, Run, run};

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
    home.write_config(&format!(
        "[profiles.t]\nhost = \"bastion.invalid\"\n[profiles.t.datastores]\npostgres = [\"{}\", \"{}\"]\nredis = [\"{}\"]\n{}",
        pg.target(),
        pg_pw.target(),
        redis.target(),
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
