//! The hops from the bastion: the API server (TCP, then `/version` over TLS with the
//! kubeconfig's credentials, a 401 or 403 named as such), each datastore and each service of
//! the profile, dialed as every command dials them (a name the bastion cannot resolve, a
//! refused port and the bastion's own "administratively prohibited" each named), and for a
//! service the bastion cannot reach, whether the API route (`pods/portforward`) reaches it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Diagnosis, Options, Stage};
use crate::agent::Remote;
use crate::config::{Resolved, Via};
use crate::dial::{self, DialError, Dialer};
use crate::kube::portforward::{Kube, service_of};
use crate::kube::source::{Capture, CaptureFuture};

/// The hop names past the kept connection, for the rows of a walk that stopped before them.
pub(super) fn hop_names(profile: &Resolved) -> Vec<String> {
    let mut out = vec![
        "api server tcp".to_string(),
        "api server /version".to_string(),
    ];
    out.extend(datastores(profile).into_iter().map(|(n, _, _)| n));
    out.extend(profile.services().keys().map(|s| format!("service {s}")));
    out
}

/// Every datastore of the profile: (hop name, host, port).
fn datastores(profile: &Resolved) -> Vec<(String, String, u16)> {
    let ds = &profile.settings.datastores;
    let mut out = Vec::new();
    for (kind, list) in [("postgres", &ds.postgres), ("redis", &ds.redis)] {
        for hp in list {
            let name = format!("{kind} {}", dial::target(&hp.host, hp.port));
            out.push((name, hp.host.clone(), hp.port));
        }
    }
    for url in &ds.s3 {
        let name = format!("s3 {}", dial::target(&url.host, url.port));
        out.push((name, url.host.clone(), url.port));
    }
    out
}

/// Walks every hop past the bastion through `session`.
pub(super) async fn check(profile: &Resolved, remote: Remote, d: &mut Diagnosis, o: Options) {
    let dialer = remote.dialer();
    let client = api(profile, &remote, &dialer, d, o).await;
    for (name, host, port) in datastores(profile) {
        let started = Instant::now();
        match dial_within(dialer.as_ref(), &host, port, o).await {
            Ok(()) => d.ok(
                Stage::Beyond,
                &name,
                Some(started),
                "the bastion connects".to_string(),
            ),
            Err(e) => {
                let (detail, advice) = dial_failure(&e);
                d.failed(Stage::Beyond, &name, Some(started), detail, advice);
            }
        }
    }
    let api_route = client
        .map(|c| Kube::new(c, crate::kube::NAMESPACE, dialer.describe()).with_timeout(o.timeout));
    for service in profile.services().values() {
        service_hop(service, dialer.as_ref(), api_route.as_ref(), d, o).await;
    }
}

/// Dials `host:port` and lets the stream go: the connection is the answer.
async fn dial_within(
    dialer: &dyn Dialer,
    host: &str,
    port: u16,
    o: Options,
) -> Result<(), DialError> {
    match tokio::time::timeout(o.timeout, dialer.connect(host, port)).await {
        Ok(r) => r.map(drop),
        Err(_) => Err(DialError::Timeout {
            target: dial::target(host, port),
            after: o.timeout,
        }),
    }
}

/// A connection the bastion could not make, as the hop's detail and the fix.
fn dial_failure(e: &DialError) -> (String, String) {
    let detail = e.to_string();
    let advice = match e {
        DialError::Unresolved { host, .. } => format!(
            "the bastion cannot resolve {host}: fix the name in the profile, or the bastion's DNS (a VM bastion resolves no cluster names: the API route reaches services)"
        ),
        DialError::Rejected { target, reason }
            if reason.contains("administratively prohibited") =>
        {
            format!(
                "the bastion's sshd refuses to forward to {target} by its PermitOpen (or AllowTcpForwarding) policy: add {target} to PermitOpen in the bastion's sshd_config"
            )
        }
        DialError::Rejected { target, .. } => format!(
            "nothing accepts connections on {target} as the bastion sees it: is the service running there, and is the port right?"
        ),
        DialError::Timeout { target, .. } => format!(
            "{target} does not answer the bastion: a firewall between them, or the service is down"
        ),
        DialError::Io { target, .. } | DialError::NoSession { target, .. } => format!(
            "the bastion's session could not carry a connection to {target}: see the message"
        ),
    };
    (detail, advice)
}

/// The API server: its kubeconfig (the profile's, else the bastion's own), a TCP connection
/// to its address from the bastion, then `/version` through kube's client (TLS verified
/// against the kubeconfig's CA, its credentials sent). The client when it answered.
async fn api(
    profile: &Resolved,
    remote: &Remote,
    dialer: &Arc<dyn Dialer>,
    d: &mut Diagnosis,
    o: Options,
) -> Option<kube::Client> {
    const KUBECONFIG: &str = "kubeconfig";
    const TCP: &str = "api server tcp";
    const VERSION: &str = "api server /version";
    let started = Instant::now();
    let failed = |d: &mut Diagnosis, detail: String, advice: String, why: &str| {
        d.failed(Stage::Beyond, KUBECONFIG, Some(started), detail, advice);
        d.skipped(Stage::Beyond, TCP, why);
        d.skipped(Stage::Beyond, VERSION, why);
    };
    let chosen = match kubeconfig(profile, remote).await {
        Ok(c) => c,
        Err(e) => {
            let advice = format!(
                "there is no kubeconfig to reach the API server with: set kube.kubeconfig in profile {}, or make `kubectl` work on the bastion",
                profile.name
            );
            failed(d, e.to_string(), advice, "not tried: no kubeconfig");
            return None;
        }
    };
    let (host, port) = match address(&chosen).await {
        Ok(a) => a,
        Err(e) => {
            let advice = "the kubeconfig names no usable API server: fix its cluster's server URL";
            failed(d, e, advice.to_string(), "not tried: no API server address");
            return None;
        }
    };
    let from = match chosen.origin.file() {
        Some(path) => format!("read from {}", path.display()),
        None => "fetched from the bastion (`kubectl config view`)".to_string(),
    };
    let context = chosen
        .context
        .clone()
        .or_else(|| chosen.kubeconfig.current_context.clone())
        .map(|c| format!(", context {c}"))
        .unwrap_or_default();
    d.ok(
        Stage::Beyond,
        KUBECONFIG,
        Some(started),
        format!("{from}{context}: API server {}", dial::target(&host, port)),
    );
    let started = Instant::now();
    if let Err(e) = dial_within(dialer.as_ref(), &host, port, o).await {
        let (detail, advice) = dial_failure(&e);
        d.failed(Stage::Beyond, TCP, Some(started), detail, advice);
        d.skipped(Stage::Beyond, VERSION, "not tried: no TCP connection");
        return None;
    }
    d.ok(
        Stage::Beyond,
        TCP,
        Some(started),
        format!("the bastion connects to {}", dial::target(&host, port)),
    );
    let started = Instant::now();
    let options = chosen.options();
    let client = match crate::kube::client(dialer.clone(), chosen.kubeconfig, &options).await {
        Ok(c) => c,
        Err(e) => {
            d.failed(
                Stage::Beyond,
                VERSION,
                Some(started),
                e.to_string(),
                "the kubeconfig cannot make a client: fix what the message names".to_string(),
            );
            return None;
        }
    };
    match tokio::time::timeout(o.timeout, client.apiserver_version()).await {
        Ok(Ok(info)) => {
            d.ok(
                Stage::Beyond,
                VERSION,
                Some(started),
                format!(
                    "TLS verified, credentials accepted, Kubernetes {}",
                    info.git_version
                ),
            );
            Some(client)
        }
        Ok(Err(e)) => {
            let (detail, advice) = version_failure(&e);
            d.failed(Stage::Beyond, VERSION, Some(started), detail, advice);
            None
        }
        Err(_) => {
            d.failed(
                Stage::Beyond,
                VERSION,
                Some(started),
                format!("no answer within {}s", o.timeout.as_secs()),
                "the API server accepts TCP but does not answer: it may be overloaded, or something between holds the connection".to_string(),
            );
            None
        }
    }
}

/// The kubeconfig every command would use for this profile.
async fn kubeconfig(
    profile: &Resolved,
    remote: &Remote,
) -> Result<crate::kube::source::Chosen, crate::exit::Error> {
    let decision = crate::kube::source::decide(
        crate::kube::Flags {
            kubeconfig: None,
            context: None,
        },
        Some(crate::kube::ProfileKube::of(profile)),
        false,
    )?;
    Ok(decision.load(Some(&Fresh(remote))).await?)
}

/// The bastion's kubeconfig as it is now: an agent's answer from a while ago would hide a
/// token changed since.
struct Fresh<'a>(&'a Remote);

impl Capture for Fresh<'_> {
    fn capture<'a>(&'a self, command: &'a str, _reuse: Duration) -> CaptureFuture<'a> {
        self.0.capture(command, Duration::ZERO)
    }
}

/// The API server's address as the bastion dials it: the profile's `[kube] api_server`, else
/// the kubeconfig's server URL.
async fn address(chosen: &crate::kube::source::Chosen) -> Result<(String, u16), String> {
    if let Some(hp) = &chosen.api_server {
        return Ok((hp.host.clone(), hp.port));
    }
    let options = kube::config::KubeConfigOptions {
        context: chosen.context.clone(),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(chosen.kubeconfig.clone(), &options)
        .await
        .map_err(|e| crate::kube::one_line(&e))?;
    let url = &config.cluster_url;
    let host = url
        .host()
        .ok_or_else(|| format!("the kubeconfig's server `{url}` has no host"))?;
    let port = url.port_u16().unwrap_or(match url.scheme_str() {
        Some("http") => 80,
        _ => 443,
    });
    Ok((
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
    ))
}

/// `/version` refused or failed: 401 and 403 named, a TLS failure named as TLS.
fn version_failure(e: &kube::Error) -> (String, String) {
    match e {
        kube::Error::Api(s) if s.code == 401 => (
            format!("401 Unauthorized: the API server refuses the kubeconfig's credentials ({})", s.message),
            "the token (or client certificate) of the kubeconfig's context is wrong or expired: renew it, on the bastion for the bastion's kubeconfig, else in kube.kubeconfig".to_string(),
        ),
        kube::Error::Api(s) if s.code == 403 => (
            format!("403 Forbidden: the credentials are valid but may not read /version ({})", s.message),
            "the kubeconfig's user is not allowed to read even /version: grant it a role (the cluster's RBAC)".to_string(),
        ),
        kube::Error::Api(s) => (
            crate::kube::status_sentence(s),
            "the API server answers with an error: see its message".to_string(),
        ),
        other => {
            let text = crate::kube::one_line(other);
            let lower = text.to_lowercase();
            if ["tls", "certificate", "handshake"].iter().any(|w| lower.contains(w)) {
                (
                    format!("TLS: {text}"),
                    "the API server's certificate is not trusted by the kubeconfig's CA or does not name the server: check certificate-authority-data and tls-server-name".to_string(),
                )
            } else {
                (
                    text,
                    "the API server's port accepts connections but /version failed: see the message".to_string(),
                )
            }
        }
    }
}

/// A service: from the bastion (unless its route is the API), and for one the bastion cannot
/// reach, through the API route when there is one.
async fn service_hop(
    service: &crate::config::Service,
    bastion: &dyn Dialer,
    api: Option<&Kube>,
    d: &mut Diagnosis,
    o: Options,
) {
    let name = format!("service {}", service.name);
    let (host, port) = (service.host.as_str(), service.port);
    let started = Instant::now();
    let from_bastion = match service.via {
        Via::Api => None,
        _ => Some(dial_within(bastion, host, port, o).await),
    };
    let bastion_failure = match from_bastion {
        Some(Ok(())) => {
            d.ok(
                Stage::Beyond,
                &name,
                Some(started),
                format!("the bastion connects to {}", dial::target(host, port)),
            );
            return;
        }
        Some(Err(e)) => Some(e),
        None => None,
    };
    let api_allowed = service.via != Via::Bastion && service_of(host).is_some();
    let (api, failure) = match (api, bastion_failure, api_allowed) {
        (Some(api), failure, true) => (api, failure),
        (_, Some(e), _) => {
            let (detail, mut advice) = dial_failure(&e);
            let why = if !api_allowed {
                "no API route for it (not a Service name, or via = \"bastion\")"
            } else {
                "no API route either (the API server is not reachable)"
            };
            advice.push_str(&format!("; {why}"));
            d.failed(
                Stage::Beyond,
                &name,
                Some(started),
                format!("{detail}; {why}"),
                advice,
            );
            return;
        }
        (_, None, _) => {
            d.failed(
                Stage::Beyond,
                &name,
                Some(started),
                "via = \"api\" and the API server is not reachable".to_string(),
                "the service's route is the Kubernetes API, which failed above: fix the API server first".to_string(),
            );
            return;
        }
    };
    let before = failure
        .as_ref()
        .map(|e| format!("{e}; "))
        .unwrap_or_default();
    match dial_within(api, host, port, o).await {
        Ok(()) => d.ok(
            Stage::Beyond,
            &name,
            Some(started),
            format!("{before}the API route (pods/portforward) reaches it"),
        ),
        Err(e) if e.to_string().contains("no Service ") => {
            let text = e.to_string();
            let missing = text.find("no Service ").map_or(text.as_str(), |at| &text[at..]);
            d.skipped(
                Stage::Beyond,
                &name,
                &format!("{before}not installed ({missing})"),
            );
        }
        Err(e) => d.failed(
            Stage::Beyond,
            &name,
            Some(started),
            format!("{before}the API route fails too: {e}"),
            format!(
                "neither the bastion nor the API route reaches {}: is the service running, and are its pods ready?",
                service.name
            ),
        ),
    }
}
