//! `paragon-admin bundle` through the kept connection to a real OpenSSH sshd, against the
//! sandbox with planted secrets in its pods' logs, a real PostgreSQL and a real Redis: the
//! archive extracts with `tar`, holds every section, no planted secret is anywhere in it, and
//! `redactions.json` counts them; chart values only with `--include-values`, their secrets
//! hidden; MinIO's health probes through the bastion (a Python HTTP server answers them: no
//! MinIO binary is available here); a datastore and a MinIO that accept and never speak
//! still give a bundle within the timeout, those collectors listed as timed out.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use paragon_admin::sandbox::planted::{PLANTED, VALUES_ORDINARY, VALUES_SECRETS};
use serde_json::Value;

use crate::logs::Scene;
use crate::support::datastores::{Postgres, Redis};
use crate::support::monitoring::{Monitoring, QUIET_ALERTS};

/// Extracts `bundle` with the system's tar into a new folder beside it.
fn extract(bundle: &Path) -> PathBuf {
    let dir = bundle.with_extension("d");
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new("tar")
        .arg("-xzf")
        .arg(bundle)
        .arg("-C")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// The files under `dir` that hold `value`, as grep finds them.
fn grep(dir: &Path, value: &str) -> String {
    let out = Command::new("grep")
        .args(["-rlF", value])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// No planted secret (of the logs or of the chart values) anywhere under `dir`.
fn assert_no_planted_secret(dir: &Path) {
    for p in PLANTED.iter().chain(&VALUES_SECRETS) {
        let found = grep(dir, p.value);
        assert!(
            found.is_empty(),
            "{} ({}) leaked into {found}",
            p.value,
            p.kind
        );
    }
}

fn read_json(path: PathBuf) -> Value {
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn bundle_holds_every_section_and_no_planted_secret() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let minio = Monitoring::start(QUIET_ALERTS);
    let s = Scene::new(
        &["--fault", "log-secrets"],
        &format!(
            "[profiles.test.datastores]\npostgres = [\"{}\"]\nredis = [\"{}\"]\ns3 = [\"http://127.0.0.1:{}\"]",
            pg.target(),
            redis.target(),
            minio.port
        ),
    );
    let hermes = s.pods("hermes");
    let bundle = s.kept.home.path().join("support.tar.gz");
    let file = bundle.to_str().unwrap();
    let r = s.kept.run(&["bundle", "--file", file, "--timeout", "90"]);
    assert_eq!(r.status, Some(0), "{}\n{}", r.stdout, r.stderr);
    let mode = std::fs::metadata(&bundle).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let dir = extract(&bundle);
    let all = files(&dir);
    for wanted in [
        "manifest.json",
        "redactions.json",
        "health.json",
        "monitoring/alerts.json",
        "helm/history.json",
        "cluster-resources/nodes.json",
        "cluster-resources/pods/paragon.json",
        "cluster-resources/deployments/paragon.json",
        "cluster-resources/events/paragon.json",
        "cluster-resources/configmaps/paragon.json",
        "cluster-resources/secrets/paragon.json",
        "bastion/kubectl-version.txt",
        "bastion/os-release.txt",
        "bastion/openssh-version.txt",
        "doctor.json",
    ] {
        assert!(all.iter().any(|f| f == wanted), "{wanted} missing: {all:?}");
    }
    assert!(
        all.iter().any(|f| f.starts_with("datastores/postgres-")),
        "{all:?}"
    );
    assert!(
        all.iter().any(|f| f.starts_with("datastores/redis-")),
        "{all:?}"
    );
    // The hop-by-hop walk: through this sshd to the sandbox, every hop named.
    let doctor = read_json(dir.join("doctor.json"));
    let hops = doctor["hops"].as_array().unwrap();
    assert!(
        hops.iter()
            .any(|h| h["name"] == "authentication" && h["status"] == "ok"),
        "{doctor}"
    );
    let hermes_log = format!("logs/paragon/{}/hermes.log", hermes[0]);
    assert!(all.contains(&hermes_log), "{all:?}");
    // The log is there, its ordinary lines intact.
    let text = std::fs::read_to_string(dir.join(&hermes_log)).unwrap();
    assert!(text.contains("GET /healthz 200"), "{text}");
    assert!(text.contains("***HIDDEN***"), "{text}");

    // No planted value anywhere in the extracted tree (grep, as a reviewer would).
    assert_no_planted_secret(&dir);
    // Without --include-values nothing of the chart values is collected, not even an
    // ordinary one.
    assert_eq!(grep(&dir, VALUES_ORDINARY), "");
    assert!(!all.iter().any(|f| f.ends_with("values.yaml")), "{all:?}");
    // The cluster lists, streamed page by page, are whole JSON arrays.
    let pods = read_json(dir.join("cluster-resources/pods/paragon.json"));
    assert!(
        pods.as_array()
            .unwrap()
            .iter()
            .any(|p| p["metadata"]["name"] == hermes[0].as_str()),
        "{pods}"
    );
    assert!(read_json(dir.join("cluster-resources/nodes.json")).is_array());
    // MinIO's health through the bastion: each probe's status and latency.
    let minio_file = format!("datastores/minio-127.0.0.1_{}.json", minio.port);
    let mv = read_json(dir.join(&minio_file));
    let probes = mv["probes"].as_array().unwrap();
    let paths: Vec<&str> = probes.iter().map(|p| p["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        ["/minio/health/live", "/minio/health/cluster"],
        "{mv}"
    );
    for p in probes {
        assert_eq!(p["status"], 200, "{mv}");
        assert!(p["elapsed_ms"].is_u64(), "{mv}");
    }
    // The log really carried them: the sandbox serves them through kubectl.
    let raw = s.sandbox.kubectl_ok(&["logs", "-n", "paragon", &hermes[0]]);
    assert!(PLANTED.iter().all(|p| raw.contains(p.value)));

    // redactions.json counts each one, per file and rule, never the values.
    let red = read_json(dir.join("redactions.json"));
    let counts = &red["files"][&hermes_log];
    let want = serde_json::json!({
        "aws-access-key": 1, "bearer-token": 1, "env-secret": 2, "json-secret": 2,
        "jwt": 1, "key-value": 3, "private-key": 1, "url-password": 1
    });
    assert_eq!(counts, &want, "{red}");
    let text = std::fs::read_to_string(dir.join("redactions.json")).unwrap();
    assert!(PLANTED.iter().all(|p| !text.contains(p.value)));

    // The manifest: every collector ok, with where it read from and how long it took.
    let m = read_json(dir.join("manifest.json"));
    let collectors = m["collectors"].as_array().unwrap();
    let names: Vec<&str> = collectors
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for n in [
        "cluster-resources",
        "logs",
        "helm",
        "health",
        "postgres",
        "redis",
        "minio",
        "bastion",
    ] {
        assert!(names.contains(&n), "{names:?}");
    }
    for c in collectors {
        assert_eq!(c["outcome"], "ok", "{c}");
        assert!(c["elapsed_ms"].is_u64() && c["source"].is_string(), "{c}");
    }
    let pg_json = all
        .iter()
        .find(|f| f.starts_with("datastores/postgres-"))
        .unwrap();
    let pg_v = read_json(dir.join(pg_json));
    assert!(
        pg_v["server_version"].as_str().unwrap().starts_with("15"),
        "{pg_v}"
    );
    assert!(pg_v["max_connections"].as_i64().unwrap() > 0, "{pg_v}");

    // --preview lists the same redactions and writes nothing.
    let before = std::fs::read_dir(s.kept.home.path()).unwrap().count();
    let r = s.kept.run(&["--output", "json", "bundle", "--preview"]);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(v.get("output").is_none(), "{v}");
    let entry = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == hermes_log.as_str())
        .unwrap();
    assert_eq!(entry["redactions"], want);
    assert!(PLANTED.iter().all(|p| !r.stdout.contains(p.value)));
    assert_eq!(
        std::fs::read_dir(s.kept.home.path()).unwrap().count(),
        before
    );

    // --include-values: each release's user-supplied values, the secret ones hidden and
    // counted.
    let with_values = s.kept.home.path().join("values.tar.gz");
    let r = s.kept.run(&[
        "bundle",
        "--include-values",
        "--file",
        with_values.to_str().unwrap(),
        "--timeout",
        "90",
    ]);
    assert_eq!(r.status, Some(0), "{}\n{}", r.stdout, r.stderr);
    let dir = extract(&with_values);
    let values = "helm/paragon-on-prem/values.yaml";
    let text = std::fs::read_to_string(dir.join(values)).unwrap();
    assert!(text.contains(VALUES_ORDINARY), "{text}");
    assert!(text.contains("POSTGRES_PASSWORD: ***HIDDEN***"), "{text}");
    assert_no_planted_secret(&dir);
    let red = read_json(dir.join("redactions.json"));
    assert_eq!(
        red["files"][values],
        serde_json::json!({ "yaml-secret": 2, "url-password": 1 }),
        "{red}"
    );
}

#[test]
fn a_datastore_that_never_answers_still_gives_a_bundle_within_the_timeout() {
    // Accepts and never speaks: the connections are held until the test ends.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    silent.set_nonblocking(true).unwrap();
    let addr = silent.local_addr().unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let held = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let end = Instant::now() + Duration::from_secs(120);
            while !done.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < end {
                if let Ok((c, _)) = silent.accept() {
                    kept.push(c);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            kept.len()
        })
    };
    // It stands for a MinIO that hangs too: no MinIO binary is available here.
    let s = Scene::new(
        &[],
        &format!("[profiles.test.datastores]\npostgres = [\"{addr}\"]\ns3 = [\"http://{addr}\"]"),
    );
    let bundle = s.kept.home.path().join("slow.tar.gz");
    let started = Instant::now();
    let r = s.kept.run(&[
        "bundle",
        "--file",
        bundle.to_str().unwrap(),
        "--timeout",
        "8",
    ]);
    let took = started.elapsed();
    assert_eq!(r.status, Some(1), "{}\n{}", r.stdout, r.stderr);
    assert!(took < Duration::from_secs(25), "took {took:?}");
    let dir = extract(&bundle);
    let m = read_json(dir.join("manifest.json"));
    let collector = |name: &str| {
        m["collectors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };
    let pg = collector("postgres");
    assert_eq!(pg["outcome"], "timed-out", "{m}");
    assert_eq!(pg["source"], addr.to_string());
    let minio = collector("minio");
    assert_eq!(minio["outcome"], "timed-out", "{m}");
    assert_eq!(minio["source"], format!("http://{addr}"));
    // The rest was collected.
    assert!(files(&dir).iter().any(|f| f.starts_with("logs/paragon/")));
    assert!(r.stdout.contains("timed out"), "{}", r.stdout);
    drop(s);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(
        held.join().unwrap() >= 2,
        "the datastore and MinIO were not both dialed"
    );
}

#[test]
fn an_unreachable_bastion_is_255_for_bundle_and_logs_and_writes_nothing() {
    let mut k = crate::agent::Kept::new("");
    k.sshd.stop();
    let bundle = k.home.path().join("none.tar.gz");
    let r = k.run(&[
        "bundle",
        "--file",
        bundle.to_str().unwrap(),
        "--timeout",
        "20",
    ]);
    assert_eq!(r.status, Some(255), "{}", r.stderr);
    assert!(!bundle.exists());
    assert!(!k.home.path().join("none.tar.gz.partial").exists());
    let r = k.run(&["logs", "hermes"]);
    assert_eq!(r.status, Some(255), "{}", r.stderr);
    assert_eq!(r.stdout, "");
}
