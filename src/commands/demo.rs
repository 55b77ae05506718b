//! `paragon-admin demo`: every feature in one command, without any infrastructure.
//!
//! Starts on loopback the sandbox (with two faults), the demo web page and the embedded demo
//! bastion; connects to the bastion with strict host-key checking against a known_hosts line
//! written for it; runs the health report through it; opens a forward to the demo page and
//! fetches the page through it, and one to the sandbox's Prometheus, which the bastion cannot
//! reach by its cluster name, through the API route (`pods/portforward`), as on a VM bastion.
//! The health line and the forward lines say which route each service took. Everything stops
//! when the tour ends (or, with --keep-open, at Ctrl-C). Glue only: each piece is the
//! library's, the same code the real commands run.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use russh::keys::ssh_key::{Algorithm, LineEnding, PrivateKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cli::{DemoArgs, Globals};
use crate::config::{
    HostKeyPolicy, HostName, Port, ProfileDraft, Resolved, Scheme, Service, Via, builtin_services,
};
use crate::dial::Dialer;
use crate::exit::Error;
use crate::forward::route::Route;
use crate::forward::{self, Shutdown, Sink, Style};
use crate::health::{self, Target};
use crate::kube as k8s;
use crate::output::Format;
use crate::sandbox::bastion::DemoBastion;
use crate::sandbox::web::DemoWeb;
use crate::sandbox::{Fault, Sandbox, SandboxOptions};
use crate::ssh::Bastion;
use crate::ssh::known_hosts::fingerprint;

/// The faults the demo switches on, so that the report has something to say.
const FAULTS: [Fault; 2] = [Fault::CrashLoop, Fault::ExpiringCert];
const LOOPBACK: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

pub async fn run(g: &Globals, a: &DemoArgs) -> Result<u8, Error> {
    let mut shutdown = Shutdown::install()?;
    let say = |line: String| {
        if !g.quiet {
            eprintln!("{line}");
        }
    };

    let sandbox = Sandbox::start(SandboxOptions {
        faults: FAULTS.to_vec(),
        ..SandboxOptions::default()
    })
    .await?;
    let faults: Vec<&str> = FAULTS.iter().map(|f| f.name()).collect();
    say(format!(
        "[1/5] sandbox: a simulated Kubernetes API at {} with a generated Paragon installation (faults: {})",
        sandbox.server_url(),
        faults.join(", ")
    ));
    let web = DemoWeb::bind(LOOPBACK).await.map_err(failed)?;

    // The client key lives in a private temporary folder (0700, removed when the demo ends):
    // the SSH client reads identities from files. It is made for this run, opens nothing but
    // this run's loopback bastion, and dies with it.
    let dir = tempfile::Builder::new().prefix("paragon-demo-").tempdir()?;
    let client_key = PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519)
        .map_err(failed)?;
    let key_path = dir.path().join("id_ed25519");
    write_private(
        &key_path,
        client_key
            .to_openssh(LineEnding::LF)
            .map_err(failed)?
            .as_bytes(),
    )?;
    let bastion = DemoBastion::bind(
        LOOPBACK,
        client_key.public_key().clone(),
        vec![sandbox.addr(), web.addr()],
    )
    .await
    .map_err(failed)?;
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(&known_hosts, format!("{}\n", bastion.known_hosts_line()))?;
    say(format!(
        "[2/5] bastion: an SSH bastion at {} that forwards only to the sandbox and the demo page",
        bastion.addr()
    ));

    let profile = demo_profile(&bastion, &key_path, &known_hosts, dir.path())?;
    let session = Bastion::connect(&profile).await?;
    say(format!(
        "[3/5] ssh: connected as `demo`; host key {} verified against known_hosts (strict_host_key_checking = yes)",
        fingerprint(bastion.host_public_key())
    ));

    let services = demo_services(web.addr());
    let dialer: Arc<dyn Dialer> = Arc::new(session.clone());
    let kubeconfig = k8s::parse_fetched_kubeconfig(&sandbox.kubeconfig_yaml())?;
    let kube = k8s::client(dialer.clone(), kubeconfig.clone(), &k8s::Options::default())
        .await
        .map_err(|e| e.to_string());
    let target = Target {
        kube,
        dialer,
        datastores: Default::default(),
        services: services.clone(),
        postgres_password: None,
        context: None,
        redis_password: None,
        profile: String::new(),
        via: Via::Auto,
    };
    let report = health::run(
        target,
        health::Options {
            timeout: Duration::from_secs(10),
            strict: false,
        },
        &|_| {},
    )
    .await;
    report.print(g.output)?;
    say(format!(
        "[4/5] health: the report, every check through the bastion; {}",
        routes_taken(&report)
    ));

    let specs = vec![
        forward::parse_spec("0:grafana", &services)?,
        forward::parse_spec("0:prometheus", &services)?,
    ];
    let mut listeners = forward::bind(specs, std::net::IpAddr::V4(Ipv4Addr::LOCALHOST)).await?;
    // As `forward` chooses (auto): the demo page answers from the bastion; Prometheus' cluster
    // name does not, so it takes the API route.
    let (first, connect) = forward::plan::route(
        &mut listeners,
        Via::Auto,
        forward::bastion::session(session.clone()),
        forward::bastion::reconnect(profile.clone()),
        async { Ok((kubeconfig, k8s::Options::default())) },
    )
    .await?;
    let page = (listeners[0].local, listeners[0].url(), listeners[0].route);
    let ready = (listeners[1].local, listeners[1].url(), listeners[1].route);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = forward::Options {
        style: Style::Human { live: false },
        sink: Sink::Stderr,
        ..forward::Options::default()
    };
    let forwarding = tokio::spawn(forward::run(
        listeners,
        first,
        move || connect(),
        options,
        async move {
            let _ = stopped.await;
        },
    ));
    let url = page.1.clone();
    let first_line = fetch(page.0, "/", "reached you").await;
    say(format!(
        "[5/5] forward: {url} -> the demo page, {}: {first_line}",
        route_words(page.2)
    ));
    let ready_line = fetch(ready.0, "/-/ready", "Ready").await;
    say(format!(
        "      forward: {} -> the sandbox's Prometheus, {}: {ready_line}",
        ready.1,
        route_words(ready.2)
    ));
    // The URL goes to stdout only while it answers: without --keep-open it closes below.
    if a.keep_open {
        if g.output == Format::Table {
            println!("demo page: {url}");
        }
        say("--keep-open: the sandbox, the bastion and the forward stay up; Ctrl-C to stop".into());
        shutdown.requested().await;
    }
    let _ = stop.send(());
    let _ = forwarding.await;
    drop(session);
    bastion.shutdown().await;
    web.shutdown().await;
    sandbox.shutdown().await;
    drop(dir);
    if a.keep_open {
        say("demo over: everything it started is stopped".into());
    } else {
        say(format!(
            "demo over: everything it started is stopped, the forward {url} too; \
             `paragon-admin demo --keep-open` keeps it open to try in a browser"
        ));
    }
    Ok(0)
}

/// An error of a piece the demo starts, with its causes, as a failure (1).
fn failed(e: impl std::error::Error) -> Error {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    Error::failed(text)
}

/// The profile the demo connects with: the bastion on loopback, the client key, strict host
/// key checking against the known_hosts line written for this run.
fn demo_profile(
    bastion: &DemoBastion,
    key: &std::path::Path,
    known_hosts: &std::path::Path,
    dir: &std::path::Path,
) -> Result<Resolved, Error> {
    let draft = ProfileDraft {
        host: HostName::parse(&bastion.addr().ip().to_string()).map_err(Error::failed)?,
        port: Port(bastion.addr().port()),
        user: Some("demo".into()),
        identity_file: Some(key.display().to_string()),
        known_hosts: Some(known_hosts.display().to_string()),
        strict_host_key_checking: HostKeyPolicy::Yes,
        proxy_jump: None,
        services: Vec::new(),
    };
    Ok(Resolved::new(
        "demo".into(),
        dir.join("config.toml"),
        draft.to_profile(),
    )?)
}

/// Grafana is the demo page, reached from the bastion; Prometheus is the sandbox's, by its
/// built-in cluster name (the route decides how to reach it); nothing else is in the demo.
fn demo_services(web: SocketAddr) -> BTreeMap<String, Service> {
    let grafana = Service {
        name: "grafana".into(),
        host: web.ip().to_string(),
        port: web.port(),
        local_port: 0,
        scheme: Scheme::Http,
        path: "/".into(),
        via: Via::Bastion,
        ca_file: None,
    };
    let mut services = BTreeMap::from([("grafana".to_string(), grafana)]);
    if let Some(mut prometheus) = builtin_services()
        .into_iter()
        .find(|s| s.name == "prometheus")
    {
        prometheus.local_port = 0;
        services.insert("prometheus".into(), prometheus);
    }
    services
}

/// `grafana route bastion, prometheus route api`: the route each monitoring finding took.
fn routes_taken(report: &health::Report) -> String {
    let taken: Vec<String> = report
        .checks
        .iter()
        .filter_map(|f| f.route.map(|r| format!("{} {}", f.check, route_words(r))))
        .collect();
    if taken.is_empty() {
        "no monitoring service was reached".to_string()
    } else {
        taken.join(", ")
    }
}

/// How the demo's lines name a route.
fn route_words(route: Route) -> &'static str {
    match route {
        Route::Bastion => "through the bastion",
        Route::Api => "through the Kubernetes API (pods/portforward)",
    }
}

/// `GET path` through the local end of a forward: the status line and the first line of the
/// answer that contains `marker`.
async fn fetch(local: SocketAddr, path: &str, marker: &str) -> String {
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(local).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
            .await?;
        let mut body = Vec::new();
        s.read_to_end(&mut body).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&body).into_owned())
    };
    match tokio::time::timeout(Duration::from_secs(10), fetch).await {
        Ok(Ok(text)) => {
            let status = text.lines().next().unwrap_or("").trim().to_string();
            let sentence = text
                .lines()
                .skip(1)
                .find(|l| l.contains(marker))
                .map(|l| l.trim().trim_start_matches("<p>").trim_end_matches("</p>"))
                .unwrap_or("");
            format!("{status}: {sentence}")
        }
        Ok(Err(e)) => format!("fetching {path} failed: {e}"),
        Err(_) => format!("fetching {path} timed out"),
    }
}

/// Writes a file only the owner can read, refusing to follow or replace anything.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}
