//! `paragon-admin sandbox` against the real kubectl: discovery, tables, JSON, pagination,
//! selectors, authentication, TLS verification, faults, determinism and a clean stop.

use std::collections::BTreeSet;
use std::net::TcpStream;

use crate::support::sandbox::SandboxProc;
use crate::support::{Home, run};

fn items(v: &serde_json::Value) -> &Vec<serde_json::Value> {
    v["items"].as_array().expect("items")
}

fn names(v: &serde_json::Value) -> Vec<String> {
    items(v)
        .iter()
        .map(|i| {
            format!(
                "{}/{}",
                i["metadata"]["namespace"].as_str().unwrap_or(""),
                i["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

fn with_fault<'a>(v: &'a serde_json::Value, fault: &str) -> Vec<&'a serde_json::Value> {
    items(v)
        .iter()
        .filter(|i| i["metadata"]["annotations"]["sandbox.paragon.io/fault"] == fault)
        .collect()
}

#[test]
fn kubectl_gets_pods_nodes_and_deployments_as_tables() {
    let sb = SandboxProc::start(&[]);
    let pods = sb.kubectl_ok(&["get", "pods", "-A"]);
    let header: Vec<&str> = pods.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    assert!(
        pods.lines().any(|l| l.starts_with("paragon ")
            && l.contains(" hermes-")
            && l.contains("1/1")
            && l.contains("Running")),
        "{pods}"
    );
    assert!(
        pods.lines().any(|l| l.starts_with("kube-system ")),
        "{pods}"
    );

    let nodes = sb.kubectl_ok(&["get", "nodes"]);
    let rows: Vec<&str> = nodes.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{nodes}");
    assert!(
        rows.iter()
            .all(|r| r.split_whitespace().nth(1) == Some("Ready")),
        "{nodes}"
    );

    let deploy = sb.kubectl_ok(&[
        "get",
        "deploy",
        "-n",
        "paragon",
        "-l",
        "app.kubernetes.io/name=hermes",
    ]);
    let lines: Vec<Vec<&str>> = deploy
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    );
    assert_eq!(lines.len(), 2, "{deploy}");
    assert_eq!(&lines[1][..4], ["hermes", "2/2", "2", "2"]);

    let wide = sb.kubectl_ok(&["get", "pods", "-n", "paragon", "-o", "wide"]);
    assert!(wide.lines().next().unwrap().contains("NODE"), "{wide}");
    assert!(wide.contains(".ec2.internal"), "{wide}");
    // Short names and other kinds resolve through discovery.
    for kind in [
        "sts", "ds", "rs", "svc", "cm", "pvc", "ev", "jobs", "cj", "ns", "secrets",
    ] {
        let out = sb.kubectl_ok(&["get", kind, "-A"]);
        assert!(out.lines().count() > 1, "{kind}: {out}");
    }
}

#[test]
fn json_list_and_chunked_pages_agree_without_duplicates() {
    let sb = SandboxProc::start(&["--nodes", "5", "--pods", "400"]);
    assert_eq!(sb.started["pods"], 400);
    let all = sb.kubectl_json(&["get", "pods", "-A"]);
    assert_eq!(all["kind"], "List");
    let json_names = names(&all);
    assert_eq!(json_names.len(), 400);

    let cols = [
        "get",
        "pods",
        "-A",
        "--chunk-size=37",
        "--no-headers",
        "-o",
        "custom-columns=NS:.metadata.namespace,NAME:.metadata.name",
    ];
    let chunked: Vec<String> = sb
        .kubectl_ok(&cols)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join("/"))
        .collect();
    let unique: BTreeSet<&String> = chunked.iter().collect();
    assert_eq!(unique.len(), chunked.len(), "duplicates across pages");
    assert_eq!(chunked, json_names);
    let nodes = sb.kubectl_json(&["get", "nodes", "--chunk-size=2"]);
    assert_eq!(items(&nodes).len(), 5);
}

#[test]
fn field_and_label_selectors_filter_on_the_server() {
    let sb = SandboxProc::start(&["--fault", "pending"]);
    let pending = sb.kubectl_json(&[
        "get",
        "pods",
        "-A",
        "--field-selector",
        "status.phase=Pending",
    ]);
    // the unschedulable zeus pod, and the batch pod held by its scheduling gate
    let pending_names: Vec<&str> = items(&pending)
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(pending_names.len(), 2, "{pending_names:?}");
    assert!(
        pending_names
            .iter()
            .any(|n| n.starts_with("report-export-")),
        "{pending_names:?}"
    );
    let name = *pending_names
        .iter()
        .find(|n| n.starts_with("zeus-"))
        .unwrap();

    let one = sb.kubectl_json(&[
        "get",
        "pods",
        "-A",
        "--field-selector",
        &format!("metadata.name={name}"),
    ]);
    assert_eq!(names(&one), [format!("paragon/{name}")]);
    let running = sb.kubectl_json(&[
        "get",
        "pods",
        "-n",
        "paragon",
        "--field-selector",
        "status.phase!=Pending,status.phase!=Succeeded",
    ]);
    assert!(
        items(&running)
            .iter()
            .all(|p| p["status"]["phase"] == "Running")
    );

    let r = sb.kubectl(&["get", "pods", "-A", "--field-selector", "spec.bogus=1"]);
    assert_ne!(r.status, Some(0));
    assert!(
        r.stderr.contains("field label not supported: spec.bogus"),
        "{}",
        r.stderr
    );

    let helm = sb.kubectl_json(&[
        "get",
        "secrets",
        "-n",
        "paragon",
        "-l",
        "owner=helm,status in (deployed)",
    ]);
    assert_eq!(items(&helm).len(), 5, "one deployed revision per release");
    let r = sb.kubectl(&["get", "pod", "-n", "paragon", "no-such-pod"]);
    assert_ne!(r.status, Some(0));
    assert!(
        r.stderr.contains("pods \"no-such-pod\" not found"),
        "{}",
        r.stderr
    );
}

#[test]
fn requests_without_the_right_token_get_401_status() {
    let sb = SandboxProc::start(&[]);
    let r = sb.kubectl(&["--token", "not-the-token", "get", "pods", "-A"]);
    assert_ne!(r.status, Some(0));
    assert!(r.stderr.contains("You must be logged in"), "{}", r.stderr);

    // The raw answer, verified against the CA the kubeconfig carries.
    let ca = sb.home.path().join("ca.pem");
    let kc = std::fs::read_to_string(&sb.kubeconfig).unwrap();
    let data = kc
        .lines()
        .find_map(|l| l.trim().strip_prefix("certificate-authority-data: "))
        .unwrap();
    let pem =
        run(std::process::Command::new("base64")
            .args(["-d"])
            .stdin(std::process::Stdio::from(
                std::fs::File::open({
                    let p = sb.home.path().join("ca.b64");
                    std::fs::write(&p, data).unwrap();
                    p
                })
                .unwrap(),
            )));
    std::fs::write(&ca, pem.stdout).unwrap();
    let url = format!("https://{}/api/v1/pods", sb.addr);
    let r = run(std::process::Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&ca)
        .args(["-w", "\n%{http_code}", &url]));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let (body, code) = r.stdout.rsplit_once('\n').unwrap();
    assert_eq!(code, "401");
    let status: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Unauthorized");
    assert_eq!(status["code"], 401);
}

#[test]
fn tls_is_verified_against_the_sandbox_ca_and_name() {
    let sb = SandboxProc::start(&[]);
    let kc = std::fs::read_to_string(&sb.kubeconfig).unwrap();
    assert!(!kc.contains("insecure-skip-tls-verify"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&sb.kubeconfig)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    sb.kubectl_ok(&["get", "ns"]);

    let r = sb.kubectl(&["--tls-server-name", "other.example.com", "get", "ns"]);
    assert_ne!(r.status, Some(0));
    assert!(
        r.stderr.contains("certificate is valid for"),
        "{}",
        r.stderr
    );

    // Without the CA, the system roots do not trust the sandbox.
    let no_ca: String = kc
        .lines()
        .filter(|l| !l.contains("certificate-authority-data"))
        .map(|l| format!("{l}\n"))
        .collect();
    let path = sb.home.path().join("no-ca.kubeconfig");
    std::fs::write(&path, no_ca).unwrap();
    let r = run(
        std::process::Command::new(crate::support::sandbox::kubectl_path())
            .env("HOME", sb.home.path())
            .arg("--kubeconfig")
            .arg(&path)
            .args(["get", "ns"]),
    );
    assert_ne!(r.status, Some(0));
    assert!(
        r.stderr.contains("certificate signed by unknown authority"),
        "{}",
        r.stderr
    );
}

#[test]
fn every_fault_is_visible_through_kubectl() {
    let faults = [
        "crashloop",
        "image-pull",
        "pending",
        "oom-killed",
        "node-not-ready",
        "node-pressure",
        "deployment-unavailable",
        "pvc-pending",
        "failed-release",
        "expiring-cert",
        "warning-events",
        "migration-failed",
    ];
    let mut args = Vec::new();
    for f in faults {
        args.extend(["--fault", f]);
    }
    let sb = SandboxProc::start(&args);
    assert_eq!(sb.started["faults"].as_array().unwrap().len(), faults.len());

    let pods = sb.kubectl_json(&["get", "pods", "-A"]);
    let crash = with_fault(&pods, "crashloop");
    assert_eq!(crash.len(), 1);
    let cs = &crash[0]["status"]["containerStatuses"][0];
    assert_eq!(cs["state"]["waiting"]["reason"], "CrashLoopBackOff");
    assert!(cs["restartCount"].as_i64().unwrap() > 5);
    let pull = with_fault(&pods, "image-pull");
    assert_eq!(
        pull[0]["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
        "ImagePullBackOff"
    );
    let pending = with_fault(&pods, "pending");
    assert_eq!(pending[0]["status"]["phase"], "Pending");
    assert_eq!(
        pending[0]["status"]["conditions"][0]["reason"],
        "Unschedulable"
    );
    let oom = with_fault(&pods, "oom-killed");
    assert_eq!(
        oom[0]["status"]["containerStatuses"][0]["lastState"]["terminated"]["reason"],
        "OOMKilled"
    );
    assert_eq!(with_fault(&pods, "deployment-unavailable").len(), 2);

    // Logs follow the pods' states.
    let crash_name = crash[0]["metadata"]["name"].as_str().unwrap();
    let log = sb.kubectl_ok(&["logs", "-n", "paragon", crash_name]);
    assert!(log.lines().last().unwrap().contains("\"fatal\""), "{log}");
    let oom_name = oom[0]["metadata"]["name"].as_str().unwrap();
    let log = sb.kubectl_ok(&["logs", "-n", "paragon", oom_name, "--previous", "--tail=1"]);
    assert!(log.contains("heap usage high"), "{log}");
    let r = sb.kubectl(&[
        "logs",
        "-n",
        "paragon",
        pull[0]["metadata"]["name"].as_str().unwrap(),
    ]);
    assert!(
        r.stderr.contains("trying and failing to pull image"),
        "{}",
        r.stderr
    );
    // Two lines: on the minute, a handled request follows the probe of the same second.
    let log = sb.kubectl_ok(&["logs", "-n", "paragon", "deploy/grafana", "--tail=2"]);
    assert!(log.contains("GET /healthz 200"), "{log}");

    let table = sb.kubectl_ok(&["get", "pods", "-n", "paragon"]);
    assert!(table.contains("CrashLoopBackOff"), "{table}");
    assert!(table.contains("ImagePullBackOff"), "{table}");

    let nodes = sb.kubectl_json(&["get", "nodes"]);
    let down = with_fault(&nodes, "node-not-ready");
    assert_eq!(down.len(), 1);
    let ready = down[0]["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "Unknown");
    let pressed = with_fault(&nodes, "node-pressure");
    let mem = pressed[0]["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "MemoryPressure")
        .unwrap();
    assert_eq!(mem["status"], "True");
    assert!(sb.kubectl_ok(&["get", "nodes"]).contains("NotReady"));

    let passport = sb.kubectl_json(&["get", "deploy", "-n", "paragon", "passport"]);
    let available = passport["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Available")
        .unwrap();
    assert_eq!(available["status"], "False");

    let pvc = sb.kubectl_json(&["get", "pvc", "-n", "paragon", "pgadmin-data"]);
    assert_eq!(pvc["status"]["phase"], "Pending");

    let failed = sb.kubectl_ok(&[
        "get",
        "secrets",
        "-n",
        "paragon",
        "-l",
        "owner=helm,status=failed",
        "-o",
        "name",
    ]);
    assert_eq!(failed.lines().count(), 1, "{failed}");
    assert!(
        failed.contains("sh.helm.release.v1.paragon-on-prem.v"),
        "{failed}"
    );

    let tls = sb.kubectl_json(&["get", "secret", "-n", "paragon", "paragon-tls"]);
    assert_eq!(tls["type"], "kubernetes.io/tls");
    assert_eq!(
        tls["metadata"]["annotations"]["sandbox.paragon.io/fault"],
        "expiring-cert"
    );
    let crt = tls["data"]["tls.crt"].as_str().unwrap();
    let b64 = sb.home.path().join("crt.b64");
    std::fs::write(&b64, crt).unwrap();
    let pem = run(std::process::Command::new("base64").arg("-d").arg(&b64));
    let pem_path = sb.home.path().join("crt.pem");
    std::fs::write(&pem_path, pem.stdout).unwrap();
    // Expires within 30 days but not within 1.
    let check = |secs: u32| {
        run(std::process::Command::new("openssl")
            .args(["x509", "-noout", "-checkend", &secs.to_string(), "-in"])
            .arg(&pem_path))
        .status
    };
    assert_eq!(check(86_400), Some(0));
    assert_eq!(check(30 * 86_400), Some(1));

    let jobs = sb.kubectl_ok(&["get", "jobs", "-n", "paragon", "migrations-postgres-hermes"]);
    assert!(jobs.lines().nth(1).unwrap().contains("Failed"), "{jobs}");

    let warnings = sb.kubectl_json(&[
        "get",
        "events",
        "-n",
        "paragon",
        "--field-selector",
        "type=Warning",
    ]);
    assert_eq!(with_fault(&warnings, "warning-events").len(), 2);
}

#[test]
fn same_seed_gives_same_names() {
    let list = |seed: &str| {
        let sb = SandboxProc::start(&["--seed", seed]);
        sb.kubectl_ok(&["get", "pods", "-A", "-o", "name"])
    };
    let a = list("42");
    assert_eq!(a, list("42"));
    assert_ne!(a, list("43"));
}

#[test]
fn sigterm_stops_cleanly_closes_the_port_and_removes_the_kubeconfig() {
    let mut sb = SandboxProc::start(&[]);
    sb.kubectl_ok(&["get", "ns"]);
    assert!(TcpStream::connect(&sb.addr).is_ok());
    let status = sb.terminate();
    assert_eq!(status.code(), Some(0), "{}", sb.stderr());
    assert!(TcpStream::connect(&sb.addr).is_err(), "port still open");
    assert!(!sb.kubeconfig.exists());
}

#[test]
fn bad_options_are_usage_errors_and_a_foreign_kubeconfig_is_kept() {
    let home = Home::new();
    let kc = home.path().join("kc");
    std::fs::write(&kc, "apiVersion: v1\nkind: Config\n").unwrap();
    let r = run(home
        .paragon()
        .args(["sandbox", "--kubeconfig-out"])
        .arg(&kc));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("is not a sandbox kubeconfig"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&kc).unwrap(),
        "apiVersion: v1\nkind: Config\n"
    );

    let r = run(home
        .paragon()
        .args(["sandbox", "--nodes", "10", "--pods", "5"]));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("--pods 5 is smaller than the installation"),
        "{}",
        r.stderr
    );

    let r = run(home.paragon().args(["sandbox", "--fault", "meteor"]));
    assert_eq!(r.status, Some(2), "{}", r.stderr);

    // A port in use is an operation failure, named.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let r = run(home.paragon().args(["sandbox", "--listen", &addr]));
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("cannot listen on {addr}")),
        "{}",
        r.stderr
    );
}

#[test]
fn plain_output_is_the_address_and_hints_go_to_stderr() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::Stdio;

    let home = Home::new();
    let kc = home.path().join("plain.kubeconfig");
    /// Kills the sandbox if the test fails before stopping it.
    struct Guard(std::process::Child);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut guard = Guard(
        home.paragon()
            .args(["sandbox", "--kubeconfig-out"])
            .arg(&kc)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let child = &mut guard.0;
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr: std::net::SocketAddr = line.trim().parse().expect("an address on stdout");
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    assert!(TcpStream::connect(addr).is_ok());
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "", "stdout carries only the address");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        err.contains(&format!("export KUBECONFIG={}", kc.display())),
        "{err}"
    );
    assert!(!kc.exists());
}

/// The library in-process, on a listener the test bound, through kube-rs (what the health
/// checks use): pages, metadata-only lists, gets, errors as `Status`, shutdown.
#[tokio::test]
async fn kube_client_pages_and_lists_metadata_from_an_in_process_sandbox() {
    use k8s_openapi::api::core::v1::{Pod, Secret};
    use kube::api::{Api, ListParams};
    use paragon_admin::sandbox::{Fault, Sandbox, SandboxOptions};

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let sb = Sandbox::start_on_std(
        listener,
        SandboxOptions {
            nodes: 4,
            pods: 300,
            faults: vec![Fault::FailedRelease],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(sb.addr(), addr);
    let kc = kube::config::Kubeconfig::from_yaml(&sb.kubeconfig_yaml()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    assert_eq!(client.apiserver_version().await.unwrap().minor, "33");

    let pods: Api<Pod> = Api::all(client.clone());
    let mut lp = ListParams::default().limit(64);
    let mut seen = BTreeSet::new();
    let mut pages = 0;
    loop {
        let page = pods.list(&lp).await.unwrap();
        pages += 1;
        for p in page.items {
            let key = format!(
                "{}/{}",
                p.metadata.namespace.unwrap(),
                p.metadata.name.unwrap()
            );
            assert!(seen.insert(key), "duplicate");
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (300, 5));

    let secrets: Api<Secret> = Api::namespaced(client.clone(), "paragon");
    let failed = secrets
        .list_metadata(&ListParams::default().labels("owner=helm,status=failed"))
        .await
        .unwrap();
    assert_eq!(failed.items.len(), 1);
    assert!(
        failed.items[0]
            .metadata
            .name
            .as_deref()
            .unwrap()
            .starts_with("sh.helm.release.v1.paragon-on-prem.v")
    );

    let in_paragon: Api<Pod> = Api::namespaced(client.clone(), "paragon");
    let some = seen.iter().find(|k| k.starts_with("paragon/")).unwrap();
    let name = some.trim_start_matches("paragon/");
    assert_eq!(
        in_paragon.get(name).await.unwrap().metadata.name.as_deref(),
        Some(name)
    );
    match in_paragon.get("no-such-pod").await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (404, "NotFound")),
        other => panic!("{other:?}"),
    }

    // A watch carries no event (nothing changes) and ends at its timeout.
    use futures::StreamExt as _;
    let started = std::time::Instant::now();
    let wp = kube::api::WatchParams::default().timeout(1);
    let events: Vec<_> = in_paragon.watch(&wp, "0").await.unwrap().collect().await;
    assert!(events.is_empty(), "{events:?}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    // An open watch ends when the sandbox stops.
    let long = in_paragon
        .watch(&kube::api::WatchParams::default().timeout(290), "0")
        .await
        .unwrap();
    let pending = tokio::spawn(async move { long.collect::<Vec<_>>().await.len() });
    let stopping = std::time::Instant::now();
    sb.shutdown().await;
    assert!(
        TcpStream::connect(addr).is_err(),
        "port still open after shutdown"
    );
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), pending).await;
    assert_eq!(
        ended
            .expect("the open watch ended with the sandbox")
            .unwrap(),
        0
    );
    assert!(stopping.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn listening_on_every_interface_warns_and_names_the_bound_port() {
    let sb = SandboxProc::start(&["--listen", "0.0.0.0:0"]);
    let port = sb.addr.rsplit(':').next().unwrap().to_string();
    assert_eq!(sb.addr, format!("127.0.0.1:{port}"));
    assert_eq!(sb.started["bound"], format!("0.0.0.0:{port}"));
    let err = sb.stderr();
    assert!(
        err.contains(&format!(
            "paragon-admin: warning: listening on 0.0.0.0:{port}: anyone who reaches this address"
        )),
        "{err}"
    );
    // The kubeconfig points at loopback and its certificate holds for it.
    assert!(sb.kubectl_ok(&["get", "ns"]).contains("paragon"));

    let local = SandboxProc::start(&[]);
    assert!(!local.stderr().contains("warning"), "{}", local.stderr());
    assert_eq!(local.started["bound"], local.addr.as_str());
}

#[test]
fn kubectl_retries_a_throttled_request_after_retry_after() {
    let sb = SandboxProc::start(&["--fault", "api-throttle"]);
    // Every request is refused once with 429 and Retry-After: 1; client-go waits and retries.
    let started = std::time::Instant::now();
    let pods = sb.kubectl_ok(&["get", "pods", "-n", "paragon", "--no-headers"]);
    assert!(pods.lines().count() > 40, "{pods}");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "served without the throttled first try"
    );
    // The refusal itself, as the API server writes it.
    let raw = sb.kubectl(&["get", "--raw", "/api/v1/namespaces/paragon/secrets?limit=1"]);
    assert_eq!(
        raw.status,
        Some(0),
        "kubectl --raw retries too: {}",
        raw.stderr
    );
}

#[test]
fn api_faults_answer_with_the_status_the_api_server_writes() {
    let sb = SandboxProc::start(&["--fault", "api-error", "--fault", "api-forbidden=secrets"]);
    let r = sb.kubectl(&["get", "nodes"]);
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "Error from server (InternalError): Internal error occurred: etcdserver: leader changed"
        ),
        "{}",
        r.stderr
    );
    // The same request again is served.
    assert_eq!(
        sb.kubectl_ok(&["get", "nodes", "--no-headers"])
            .lines()
            .count(),
        3
    );

    let r = sb.kubectl(&["get", "secrets", "-n", "paragon"]);
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "Error from server (Forbidden): secrets is forbidden: User \"sandbox\" cannot list resource \"secrets\" in API group \"\" in the namespace \"paragon\""
        ),
        "{}",
        r.stderr
    );
    let r = sb.kubectl(&["get", "secret", "paragon-tls", "-n", "paragon"]);
    assert!(
        r.stderr
            .contains("secrets \"paragon-tls\" is forbidden: User \"sandbox\" cannot get resource"),
        "{}",
        r.stderr
    );
    let r = sb.kubectl(&["get", "secrets", "-A"]);
    assert!(r.stderr.contains("at the cluster scope"), "{}", r.stderr);
}

#[test]
fn an_expired_continue_fails_the_list_once_then_lists_are_served() {
    let sb = SandboxProc::start(&["--fault", "api-expired-continue", "--fault", "api-slow"]);
    let args = ["get", "pods", "-A", "--chunk-size=20", "--no-headers"];
    let r = sb.kubectl(&args);
    assert_ne!(r.status, Some(0), "{}", r.stdout);
    assert!(
        r.stderr
            .contains("The provided continue parameter is too old"),
        "{}",
        r.stderr
    );
    // Each page waits api-slow's second: at least the first page and the refused one.
    let started = std::time::Instant::now();
    let all = sb.kubectl_ok(&args);
    assert!(all.lines().count() > 60, "{all}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));
}

#[test]
fn kubectl_reads_both_event_apis_and_storage_classes() {
    let sb = SandboxProc::start(&["--fault", "pending"]);
    // `get events` (core v1) shows the scheduler's series: its count and last time.
    let ev = sb.kubectl_ok(&["get", "events", "-n", "paragon", "-o", "wide"]);
    let failed = ev
        .lines()
        .find(|l| l.contains("FailedScheduling"))
        .unwrap_or_else(|| panic!("{ev}"));
    assert!(failed.contains("default-scheduler"), "{failed}");
    assert!(failed.split_whitespace().any(|w| w == "41"), "{failed}");
    let core = sb.kubectl_json(&["get", "events", "-n", "paragon"]);
    let series = items(&core)
        .iter()
        .find(|e| e["reason"] == "FailedScheduling")
        .unwrap();
    assert_eq!(series["series"]["count"], 41);
    assert!(series.get("count").is_none() && series["lastTimestamp"].is_null());
    // The same events through events.k8s.io/v1, and node events with no namespace.
    let v1 = sb.kubectl_json(&["get", "events.v1.events.k8s.io", "-A"]);
    assert_eq!(v1["items"][0]["apiVersion"], "events.k8s.io/v1");
    let same = items(&v1)
        .iter()
        .find(|e| e["reason"] == "FailedScheduling")
        .unwrap();
    assert_eq!(same["series"]["count"], 41);
    assert_eq!(same["reportingController"], "default-scheduler");
    let node = items(&v1)
        .iter()
        .find(|e| e["regarding"]["kind"] == "Node")
        .unwrap();
    assert_eq!(node["metadata"]["namespace"], "default");
    assert!(node["regarding"].get("namespace").is_none(), "{node}");
    let all = sb.kubectl_ok(&["get", "ev", "-A"]);
    assert!(all.contains("node/ip-"), "{all}");

    let sc = sb.kubectl_ok(&["get", "sc"]);
    let rows: Vec<Vec<&str>> = sc.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        rows[0],
        [
            "NAME",
            "PROVISIONER",
            "RECLAIMPOLICY",
            "VOLUMEBINDINGMODE",
            "ALLOWVOLUMEEXPANSION",
            "AGE"
        ]
    );
    assert!(
        rows.iter()
            .any(|r| r[..3] == ["gp2", "(default)", "kubernetes.io/aws-ebs"]),
        "{sc}"
    );
    assert!(rows.iter().any(|r| r.contains(&"Immediate")), "{sc}");
    let pvc = sb.kubectl_ok(&["get", "pvc", "-n", "paragon", "redis-insight-data"]);
    assert!(pvc.contains("Pending") && pvc.contains("gp2"), "{pvc}");
}

#[test]
fn kubectl_lists_helm_releases_stored_in_configmaps_and_every_status() {
    let sb = SandboxProc::start(&["--fault", "pending-release"]);
    let cms = sb.kubectl_ok(&[
        "get",
        "cm",
        "-n",
        "paragon",
        "-l",
        "owner=helm",
        "--no-headers",
    ]);
    assert!(
        !cms.is_empty()
            && cms
                .lines()
                .all(|l| l.starts_with("sh.helm.release.v1.reloader.v")),
        "{cms}"
    );
    let statuses = |selector: &str| {
        sb.kubectl_ok(&[
            "get",
            "secrets",
            "-n",
            "paragon",
            "-l",
            selector,
            "--no-headers",
            "-o",
            "custom-columns=N:.metadata.name",
        ])
    };
    assert!(
        statuses("owner=helm,status=uninstalled").starts_with("sh.helm.release.v1.cache-replay.v")
    );
    let pending = statuses("owner=helm,status=pending-upgrade");
    assert!(
        pending.starts_with("sh.helm.release.v1.paragon-monitoring.v"),
        "{pending}"
    );
}

#[test]
fn kubectl_shows_the_real_world_pod_shapes() {
    let faults = [
        "stuck-terminating",
        "evicted",
        "failed-pod",
        "readiness-gate",
        "post-start-hook",
    ];
    let args: Vec<&str> = faults.iter().flat_map(|f| ["--fault", f]).collect();
    let sb = SandboxProc::start(&args);
    let pods = sb.kubectl_ok(&["get", "pods", "-n", "paragon", "-o", "wide"]);
    let row = |prefix: &str, status: &str| {
        pods.lines()
            .find(|l| l.starts_with(prefix) && l.split_whitespace().nth(2) == Some(status))
            .unwrap_or_else(|| panic!("no {prefix} {status}:\n{pods}"))
            .to_string()
    };
    row("worker-crons-", "Terminating");
    row("worker-proxy-", "Evicted");
    row("worker-proxy-", "Error");
    row("paragon-db-backup", "OOMKilled");
    row("pheme-", "PostStartHookError");
    row("report-export-", "SchedulingGated");
    // containers ready, the pod not: the readiness gates column says why
    let gated = row("ingress-nginx-controller-", "Running");
    assert!(gated.contains(" 1/1 ") || gated.split_whitespace().nth(1) == Some("1/1"));
    assert!(
        pods.lines()
            .any(|l| l.starts_with("ingress-nginx-controller-") && l.trim_end().ends_with("0/1")),
        "{pods}"
    );
    // the native sidecar counts in READY
    assert_eq!(
        row("prometheus-0", "Running").split_whitespace().nth(1),
        Some("2/2")
    );
    let nodes = sb.kubectl_json(&["get", "nodes"]);
    assert!(items(&nodes).iter().all(|n| {
        n["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "NetworkUnavailable")
    }));
}
