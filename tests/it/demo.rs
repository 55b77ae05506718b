//! `paragon-admin demo`: the whole tour on loopback, its output, its exit status, and nothing
//! left listening or on disk afterwards.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Home, run};

/// Every `127.0.0.1:PORT` the demo printed.
fn addresses(text: &str) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::new();
    for (i, _) in text.match_indices("127.0.0.1:") {
        let digits: String = text[i + 10..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(a) = format!("127.0.0.1:{digits}").parse()
            && !out.contains(&a)
        {
            out.push(a);
        }
    }
    out
}

fn assert_all_closed(addrs: &[SocketAddr]) {
    for a in addrs {
        assert!(
            TcpStream::connect_timeout(a, Duration::from_secs(1)).is_err(),
            "{a} is still open after the demo"
        );
    }
}

fn temp_home() -> (Home, std::path::PathBuf) {
    let home = Home::new();
    let tmp = home.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    (home, tmp)
}

#[test]
fn demo_tours_every_feature_exits_0_and_leaves_nothing_open() {
    let (home, tmp) = temp_home();
    let r = run(home.paragon().env("TMPDIR", &tmp).arg("demo"));
    assert_eq!(r.status, Some(0), "{}\n{}", r.stdout, r.stderr);
    // stdout: the health report (the two faults found through the bastion) and the URL.
    for want in [
        "CrashLoopBackOff",
        "paragon/secret/paragon-tls",
        "healthy, Grafana demo",
        "fail: 2 failed",
    ] {
        assert!(
            r.stdout.contains(want),
            "{want:?} missing from:\n{}",
            r.stdout
        );
    }
    // stderr: the steps, the host key verified, the page fetched through the forward.
    for want in [
        "[1/5] sandbox: a simulated Kubernetes API at https://127.0.0.1:",
        "verified against known_hosts (strict_host_key_checking = yes)",
        "[4/5] health: the report, every check through the bastion; \
         grafana through the bastion, prometheus through the Kubernetes API (pods/portforward)",
        "-> the demo page, through the bastion: \
         HTTP/1.0 200 OK: Paragon demo \u{2014} this page reached you through the bastion",
        // The sandbox's Prometheus: its cluster name does not resolve on the bastion, so the
        // forward takes the API route, and says so in its listening line and the tour's.
        "->  prometheus.paragon.svc.cluster.local:9090 (through the Kubernetes API, SPDY over WebSocket)",
        "-> the sandbox's Prometheus, through the Kubernetes API (pods/portforward): \
         HTTP/1.0 200 OK: Prometheus Server is Ready.",
        "demo over",
        "the forward http://127.0.0.1:",
        "`paragon-admin demo --keep-open` keeps it open",
    ] {
        assert!(
            r.stderr.contains(want),
            "{want:?} missing from:\n{}",
            r.stderr
        );
    }
    // No URL on stdout that is closed by the time it is read.
    assert!(!r.stdout.contains("demo page:"), "{}", r.stdout);
    let addrs = addresses(&(r.stdout.clone() + &r.stderr));
    assert!(
        addrs.len() >= 4,
        "sandbox, web, bastion, forward: {addrs:?}"
    );
    assert_all_closed(&addrs);
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "temp files left"
    );
    assert!(!home.config_path().exists(), "the demo wrote a config file");
}

#[test]
fn demo_json_report_names_the_route_of_each_monitoring_finding() {
    let (home, tmp) = temp_home();
    let r = run(home
        .paragon()
        .env("TMPDIR", &tmp)
        .args(["--output", "json", "demo"]));
    assert_eq!(r.status, Some(0), "{}\n{}", r.stdout, r.stderr);
    let v: serde_json::Value =
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.stdout));
    let route = |name: &str| {
        let f = v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name} finding: {v:#}"));
        assert_eq!(f["status"], "ok", "{f}");
        f["route"].as_str().unwrap().to_string()
    };
    assert_eq!(route("grafana"), "bastion");
    assert_eq!(route("prometheus"), "api");
}

#[test]
fn demo_keep_open_serves_the_page_until_interrupted() {
    let (home, tmp) = temp_home();
    let mut child = home
        .paragon()
        .env("TMPDIR", &tmp)
        .args(["demo", "--keep-open"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.contains("Ctrl-C to stop") {
        assert!(Instant::now() < deadline, "no --keep-open line:\n{seen}");
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("demo ended early:\n{seen}");
        }
        seen.push_str(&line);
    }
    let url_line = seen
        .lines()
        .find(|l| l.starts_with("[5/5] forward: http://"))
        .unwrap();
    let local = addresses(url_line)[0];
    // A browser's request, from outside the process, through the forward and the bastion.
    let mut s = TcpStream::connect(local).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut page = String::new();
    s.read_to_string(&mut page).unwrap();
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    assert!(
        page.contains("this page reached you through the bastion"),
        "{page}"
    );

    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{seen}{rest}");
    assert!(rest.contains("demo over"), "{rest}");
    assert_all_closed(&addresses(&seen));
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "temp files left"
    );
}
