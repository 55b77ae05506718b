//! The one-shot health report: checks over a `Dialer` and a Kubernetes client, run
//! concurrently, each with a deadline, each producing `Finding`s.
//!
//! One file per family of checks; a new check is a new file and a line in `kube_checks` (those
//! that ask the API, which count once it answers) or `network_checks` (those that dial through
//! the `Dialer`); a new monitoring service is a row of `config`'s built-in services. A check
//! that cannot run (forbidden, timed out, unreachable API) becomes a finding that says so,
//! never a silent gap. This module knows nothing of clap or of SSH.

mod api;
mod capacity;
mod certs;
pub mod datastores;
mod events;
mod helm;
mod http;
mod metrics;
mod monitoring;
mod nodes;
mod pods;
pub mod report;
pub mod route;
pub mod signals;
mod storage;
mod table;
pub use table::wrap;
mod workloads;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use tracing::Instrument;

use crate::config::{Datastores, Service, Via};
use crate::dial::Dialer;

pub use report::Report;
pub use route::Route;

/// How bad a finding is. Ordered: `Ok < Warn < Fail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    Warn,
    Fail,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Ok => "ok",
            Severity::Warn => "warn",
            Severity::Fail => "fail",
        })
    }
}

/// Where a check looks, for grouping the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Area {
    Cluster,
    Nodes,
    Workloads,
    Pods,
    Storage,
    Events,
    Releases,
    Certificates,
    Datastores,
    Monitoring,
    Capacity,
}

impl fmt::Display for Area {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Area::Cluster => "cluster",
            Area::Nodes => "nodes",
            Area::Workloads => "workloads",
            Area::Pods => "pods",
            Area::Storage => "storage",
            Area::Events => "events",
            Area::Releases => "releases",
            Area::Certificates => "certificates",
            Area::Datastores => "datastores",
            Area::Monitoring => "monitoring",
            Area::Capacity => "capacity",
        })
    }
}

/// One thing a check found about one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The check's name (`pods`, `postgres`, ...).
    #[serde(rename = "name")]
    pub check: String,
    pub area: Area,
    /// The object: `paragon/pod/hermes-7c9d-x2x`, `node/n-3`, `redis 10.0.0.5:6379`.
    pub subject: String,
    #[serde(rename = "status")]
    pub severity: Severity,
    /// One line naming the object and what is wrong (or right) with it.
    pub message: String,
    /// False when the check could not run; the message says why.
    pub checked: bool,
    /// How a service was reached (monitoring): dialed from the bastion, or through the API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<Route>,
}

impl Finding {
    pub fn new(severity: Severity, subject: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            check: String::new(),
            area: Area::Cluster,
            subject: subject.into(),
            severity,
            message: message.into(),
            checked: true,
            route: None,
        }
    }
    pub fn ok(subject: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Ok, subject, message)
    }
    pub fn warn(subject: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Warn, subject, message)
    }
    pub fn fail(subject: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Fail, subject, message)
    }
}

/// Why a check could not run.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("not checked: forbidden by RBAC ({0})")]
    Forbidden(String),
    #[error("not checked: no answer within {}s", .0.as_secs())]
    Timeout(Duration),
    #[error("not checked: {0}")]
    Failed(String),
    /// `410 Expired`: a continued list outlived its snapshot; listing again may work.
    #[error("not checked: {0}")]
    Expired(String),
}

impl CheckError {
    /// The reason alone, without the "not checked" prefix.
    pub fn reason(&self) -> String {
        match self {
            CheckError::Forbidden(m) => format!("forbidden by RBAC ({m})"),
            CheckError::Timeout(d) => format!("no answer within {}s", d.as_secs()),
            CheckError::Failed(m) | CheckError::Expired(m) => m.clone(),
        }
    }

    /// A forbidden list is a permissions choice, not an outage: warn. Anything else: fail.
    fn severity(&self) -> Severity {
        match self {
            CheckError::Forbidden(_) => Severity::Warn,
            _ => Severity::Fail,
        }
    }
}

impl From<kube::Error> for CheckError {
    fn from(e: kube::Error) -> Self {
        match &e {
            kube::Error::Api(s) if s.code == 403 => CheckError::Forbidden(s.message.clone()),
            kube::Error::Api(s) if s.code == 410 => CheckError::Expired(api::sentence(s, None)),
            kube::Error::Api(s) => CheckError::Failed(api::sentence(s, None)),
            _ => CheckError::Failed(crate::kube::one_line(&e)),
        }
    }
}

/// Runs a check and, when one of its continued lists expired (410), runs it once more from
/// the beginning, as client-go's pager lists again: the pages already seen are dropped with
/// the first run's findings.
pub async fn restarting_once<F, Fut>(check: F) -> CheckResult
where
    F: Fn() -> Fut,
    Fut: Future<Output = CheckResult>,
{
    match check().await {
        Err(CheckError::Expired(why)) => {
            tracing::info!("{why}: listing again from the beginning");
            check().await
        }
        other => other,
    }
}

pub type CheckResult = Result<Vec<Finding>, CheckError>;
type CheckFuture = Pin<Box<dyn Future<Output = CheckResult> + Send>>;

/// One check, ready to run.
pub struct Check {
    pub name: String,
    pub area: Area,
    /// What the finding for a check that cannot run is about.
    pub subject: String,
    future: CheckFuture,
}

impl Check {
    fn new(
        name: &str,
        area: Area,
        subject: impl Into<String>,
        future: impl Future<Output = CheckResult> + Send + 'static,
    ) -> Self {
        Check {
            name: name.to_string(),
            area,
            subject: subject.into(),
            future: Box::pin(future),
        }
    }
}

/// What the checks look at.
#[derive(Clone)]
pub struct Target {
    /// The Kubernetes client, or why there is none (no credentials could be had).
    pub kube: Result<kube::Client, String>,
    pub dialer: Arc<dyn Dialer>,
    pub datastores: Datastores,
    /// Monitoring services by name (grafana, prometheus, kibana, ...).
    pub services: BTreeMap<String, Service>,
    /// The Postgres password (keyring `PROFILE/postgres-password`), for `SELECT 1`.
    pub postgres_password: Option<crate::secrets::Secret>,
    /// The kubeconfig context, for messages that name it; `None`: its current context.
    pub context: Option<String>,
    /// The Redis password (keyring `PROFILE/redis-password`), for `AUTH`.
    pub redis_password: Option<crate::secrets::Secret>,
    /// The profile's name, for the keyring names in hints (empty: `PROFILE`).
    pub profile: String,
    /// `--via`: how monitoring services are reached (`auto`: each service's `via`).
    pub via: Via,
    /// The capacity signals' levels (the profile's `[thresholds]` over the defaults).
    pub thresholds: crate::config::Thresholds,
}

/// How the report runs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The deadline of each check.
    pub timeout: Duration,
    /// A check that could not run fails the report (exit 1), as a failure does.
    pub strict: bool,
}

/// Objects per page of the report's lists: 5,000, ten times kubectl's 500. Every page is a
/// round trip to the API server, through the bastion, and the pods check's pages come one
/// after the other: at 50 ms, the 20 pages of 10,000 pods were a second of waiting. A page of
/// 5,000 pods is about 12 MB of JSON (gzipped to a tenth on the wire). Pages of 5,000 took
/// the whole report on 10,000 pods from 117 to 142 MB at its peak; the lean pods of the pods
/// and capacity checks brought it back to 126 MB.
const PAGE: u32 = 5000;

/// The `ListParams` of the report's lists: pages of `PAGE`.
fn lists() -> kube::api::ListParams {
    kube::api::ListParams::default().limit(PAGE)
}

/// Runs every check for `target` and gathers the report (see `gather` for the order).
/// `progress` is told how many checks there are, as that becomes known, and each one done.
pub async fn run(target: Target, options: Options, progress: &dyn Fn(Progress<'_>)) -> Report {
    let started = Instant::now();
    let timeout = options.timeout;
    let mut findings = Vec::new();
    let (api, kube) = match &target.kube {
        Err(why) => {
            let mut f = Finding::fail("kubernetes", format!("cannot reach the cluster: {why}"));
            f.check = "api".into();
            f.checked = false;
            findings.push(f);
            (None, Vec::new())
        }
        Ok(client) => {
            // The nodes check compares kubelets with the server's version, once it is read.
            let (tx, rx) = futures::channel::oneshot::channel();
            let version: ApiVersion = rx.map(Result::ok).map(Option::flatten).boxed().shared();
            let (client, context) = (client.clone(), target.context.clone());
            let kube = kube_checks(&client, Timestamp::now(), version);
            let api: ApiCheck = Box::pin(async move {
                let (finding, version) = api::check(&client, timeout, context.as_deref()).await;
                let _ = tx.send(version);
                finding
            });
            (Some(api), kube)
        }
    };
    let network = network_checks(&target, timeout);
    findings.extend(gather(api, kube, network, timeout, progress).await);
    settle(&mut findings);
    let mut report = Report::new(findings, started.elapsed());
    report.strict = options.strict;
    report
}

/// The API check's future: its finding, `Ok` when the API answered.
type ApiCheck = Pin<Box<dyn Future<Output = Finding> + Send>>;

/// The API server's version, once the API check has it (`None` when it failed or could not
/// be read).
type ApiVersion = futures::future::Shared<futures::future::BoxFuture<'static, Option<(u32, u32)>>>;

/// Runs the checks side by side and returns their findings. The Kubernetes checks (`kube`)
/// start with the API check, not after it: each of them opens its connection and sends its
/// first request while the API check waits for its answer, which through a far bastion is
/// several round trips. They count only once the API answered: until then their findings
/// are held, and when it fails they are stopped and each says it did not run.
async fn gather(
    api: Option<ApiCheck>,
    kube: Vec<Check>,
    network: Vec<Check>,
    timeout: Duration,
    progress: &dyn Fn(Progress<'_>),
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut running: FuturesUnordered<Pin<Box<dyn Future<Output = Done> + Send>>> =
        FuturesUnordered::new();
    if let Some(api) = api {
        running.push(Box::pin(api.map(Done::Api)));
    }
    // What each Kubernetes check says when the API fails, and how to stop it.
    let mut not_run_without_api = Vec::new();
    let mut stops = Vec::new();
    for c in kube {
        not_run_without_api.push(not_run(
            &c,
            Severity::Warn,
            "not checked: the API is unreachable",
        ));
        let name = c.name.clone();
        let (check, stop) = futures::future::abortable(finish(c, timeout));
        stops.push(stop);
        running.push(Box::pin(check.map(move |r| match r {
            Ok(found) => Done::Kube(name, found),
            Err(futures::future::Aborted) => Done::Stopped,
        })));
    }
    for c in network {
        running.push(Box::pin(async move {
            let name = c.name.clone();
            Done::Check(name, finish(c, timeout).await)
        }));
    }
    progress(Progress::Total(running.len() - stops.len()));

    // `None` until the API check is done, then whether the API answered.
    let mut api_answered = None;
    let mut held: Vec<(String, Vec<Finding>)> = Vec::new();
    while let Some(done) = running.next().await {
        match done {
            Done::Api(finding) => {
                progress(Progress::Done("api"));
                let answered = finding.severity == Severity::Ok;
                findings.push(finding);
                api_answered = Some(answered);
                if answered {
                    progress(Progress::Total(stops.len()));
                    for (name, found) in held.drain(..) {
                        progress(Progress::Done(&name));
                        findings.extend(found);
                    }
                } else {
                    stops.iter().for_each(futures::future::AbortHandle::abort);
                    findings.append(&mut not_run_without_api);
                }
            }
            Done::Kube(name, found) => match api_answered {
                None => held.push((name, found)),
                Some(true) => {
                    progress(Progress::Done(&name));
                    findings.extend(found);
                }
                Some(false) => {}
            },
            Done::Check(name, found) => {
                progress(Progress::Done(&name));
                findings.extend(found);
            }
            Done::Stopped => {}
        }
    }
    findings
}

/// A finished piece of the run.
enum Done {
    Api(Finding),
    /// A Kubernetes check, which counts once the API check succeeded.
    Kube(String, Vec<Finding>),
    Check(String, Vec<Finding>),
    /// A Kubernetes check stopped because the API check failed.
    Stopped,
}

/// What the runner tells the progress indicator.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    Total(usize),
    Done(&'a str),
}

fn kube_checks(client: &kube::Client, now: Timestamp, version: ApiVersion) -> Vec<Check> {
    let c = client.clone();
    // Each check restarts once when a continued list expires; a fresh client clone per run.
    macro_rules! check {
        ($name:literal, $area:expr, $subject:literal, $f:expr) => {{
            let c = c.clone();
            Check::new(
                $name,
                $area,
                $subject,
                restarting_once(move || $f(c.clone())),
            )
        }};
    }
    vec![
        check!("nodes", Area::Nodes, "nodes", |c| nodes::check(
            c,
            version.clone()
        )),
        check!("workloads", Area::Workloads, "workloads", workloads::check),
        check!("jobs", Area::Workloads, "jobs", workloads::check_jobs),
        check!("pods", Area::Pods, "pods", |c| pods::check(c, now)),
        check!("pvcs", Area::Storage, "pvcs", |c| storage::check(c, now)),
        check!("events", Area::Events, "events", |c| events::check(c, now)),
        check!("helm", Area::Releases, "releases", |c| helm::check(c, now)),
        check!("tls", Area::Certificates, "tls secrets", |c| certs::check(
            c, now
        )),
    ]
}

fn network_checks(t: &Target, timeout: Duration) -> Vec<Check> {
    let mut checks = Vec::new();
    for hp in &t.datastores.postgres {
        checks.push(Check::new(
            "postgres",
            Area::Datastores,
            hp.to_string(),
            datastores::postgres(t.dialer.clone(), hp.clone(), t.postgres_password.clone()),
        ));
    }
    for hp in &t.datastores.redis {
        checks.push(Check::new(
            "redis",
            Area::Datastores,
            hp.to_string(),
            datastores::redis(
                t.dialer.clone(),
                hp.clone(),
                t.redis_password.clone(),
                crate::secrets::redis_password(if t.profile.is_empty() {
                    "PROFILE"
                } else {
                    &t.profile
                }),
            ),
        ));
    }
    for url in &t.datastores.s3 {
        checks.push(Check::new(
            "s3",
            Area::Datastores,
            url.to_string(),
            datastores::s3(
                t.dialer.clone(),
                url.clone(),
                t.datastores.ca_file.as_ref().map(|c| c.get_ref().clone()),
            ),
        ));
    }
    let routes = route::Routes::new(t.dialer.clone(), &t.kube, t.via);
    for svc in t.services.values() {
        if let Some(check) = monitoring::check_for(routes.clone(), t.kube.clone().ok(), svc) {
            checks.push(check);
        }
    }
    let prometheus = t.services.get("prometheus");
    checks.push(capacity::check(
        &routes,
        prometheus,
        t.kube.clone().ok(),
        &t.thresholds,
        timeout,
    ));
    checks
}

/// Runs one check under its deadline; its findings carry its name and area.
async fn finish(check: Check, timeout: Duration) -> Vec<Finding> {
    let Check {
        name,
        area,
        subject,
        future,
    } = check;
    let span = tracing::info_span!("check", check = %name);
    let begun = Instant::now();
    let result = match tokio::time::timeout(timeout, future.instrument(span.clone())).await {
        Ok(r) => r,
        Err(_) => Err(CheckError::Timeout(timeout)),
    };
    span.in_scope(|| match &result {
        Ok(found) => tracing::info!(
            findings = found.len(),
            elapsed_ms = begun.elapsed().as_millis() as u64,
            "done"
        ),
        Err(e) => tracing::info!(elapsed_ms = begun.elapsed().as_millis() as u64, "{e}"),
    });
    match result {
        Ok(mut found) => {
            for f in &mut found {
                f.check.clone_from(&name);
                f.area = area;
            }
            found
        }
        Err(e) => vec![Finding {
            check: name,
            area,
            subject,
            severity: e.severity(),
            message: e.to_string(),
            checked: false,
            route: None,
        }],
    }
}

/// What one check's finding means beside the others': with the API down, a monitoring row
/// that could only be reached through it did not run (its own failure would only repeat the
/// `api` row's, in a library's words); an absent logging service is fine when the other one
/// (Kibana or OpenObserve) answers, as an installation runs one of the two.
fn settle(findings: &mut [Finding]) {
    let api_down = findings
        .iter()
        .any(|f| f.check == "api" && f.severity == Severity::Fail);
    if api_down {
        for f in findings.iter_mut() {
            if f.area == Area::Monitoring
                && f.route == Some(Route::Api)
                && f.severity != Severity::Ok
            {
                f.severity = Severity::Warn;
                f.checked = false;
                f.message = "not checked: the API is unreachable".into();
            }
        }
    }
    let logging =
        |f: &Finding| crate::config::builtin_probe(&f.check).is_some_and(|p| p.optional());
    let absent = |f: &Finding| f.message.starts_with(monitoring::NOT_DEPLOYED);
    let one_answers = findings
        .iter()
        .any(|f| logging(f) && f.checked && !absent(f));
    if one_answers {
        for f in findings.iter_mut().filter(|f| logging(f) && absent(f)) {
            f.severity = Severity::Ok;
        }
    }
}

fn not_run(c: &Check, severity: Severity, why: &str) -> Finding {
    Finding {
        check: c.name.clone(),
        area: c.area,
        subject: c.subject.clone(),
        severity,
        message: why.to_string(),
        checked: false,
        route: None,
    }
}

/// `3h`, `25m`, `40s`, `9d`: how long ago or how long for, roughly.
pub fn human(d: SignedDuration) -> String {
    let s = d.as_secs().max(0);
    match s {
        s if s >= 2 * 86_400 => format!("{}d", s / 86_400),
        s if s >= 3_600 => format!("{}h", s / 3_600),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// `1 job`, `2 jobs`: a count and its noun, plural when it is not one.
pub fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// `namespace/kind/name`, or `kind/name` for cluster-scoped objects.
pub fn subject(namespace: Option<&str>, kind: &str, name: &str) -> String {
    match namespace {
        Some(ns) if !ns.is_empty() => format!("{ns}/{kind}/{name}"),
        _ => format!("{kind}/{name}"),
    }
}

/// Shortens a server-supplied message to one line of reasonable length.
pub fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut out: String = flat.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An API check that answers (ok, or failed with a reason) once the sender is used or
    /// dropped.
    fn api_answering_after(ok: bool) -> (futures::channel::oneshot::Sender<()>, ApiCheck) {
        let (tx, rx) = futures::channel::oneshot::channel::<()>();
        let api: ApiCheck = Box::pin(async move {
            let _ = rx.await;
            let mut f = match ok {
                true => Finding::ok("api", "reachable"),
                false => Finding::fail("api", "unreachable: refused"),
            };
            f.check = "api".into();
            f
        });
        (tx, api)
    }

    /// The Kubernetes checks start while the API check waits: here the API check answers only
    /// once the pods check has begun, so a runner that started them after it would wait for
    /// ever (the outer limit turns that into a failure).
    #[tokio::test]
    async fn the_cluster_checks_start_while_the_api_check_waits_for_its_answer() {
        let (begun, api) = api_answering_after(true);
        let pods = Check::new("pods", Area::Pods, "pods", async move {
            let _ = begun.send(());
            Ok(vec![Finding::ok("pods", "70 pods Running")])
        });
        let ticks = std::sync::Mutex::new(Vec::new());
        let progress = |p: Progress<'_>| ticks.lock().unwrap().push(format!("{p:?}"));
        let found = tokio::time::timeout(
            Duration::from_secs(20),
            gather(
                Some(api),
                vec![pods],
                Vec::new(),
                Duration::from_secs(60),
                &progress,
            ),
        )
        .await
        .expect("the API check waited for a cluster check that had not started");
        let messages: Vec<_> = found
            .iter()
            .map(|f| (f.check.as_str(), f.message.as_str()))
            .collect();
        assert_eq!(
            messages,
            [("api", "reachable"), ("pods", "70 pods Running")]
        );
        // The pods check finished first, but counts (and is told done) after the API's answer.
        assert_eq!(
            *ticks.lock().unwrap(),
            ["Total(1)", "Done(\"api\")", "Total(1)", "Done(\"pods\")"]
        );
    }

    /// When the API check fails, the Kubernetes checks started with it are stopped, even one
    /// that would never end, and what one found before is not reported: each says it did not
    /// run, and the network checks are unaffected.
    #[tokio::test]
    async fn a_failed_api_check_stops_the_cluster_checks_and_each_says_it_did_not_run() {
        let (done, api) = api_answering_after(false);
        let nodes = Check::new("nodes", Area::Nodes, "nodes", async move {
            let _ = done.send(());
            Ok(vec![Finding::fail("node-1", "not Ready")])
        });
        let pods = Check::new("pods", Area::Pods, "pods", futures::future::pending());
        let redis = Check::new("redis", Area::Datastores, "redis:6379", async {
            Ok(vec![Finding::ok("redis:6379", "PONG")])
        });
        let found = tokio::time::timeout(
            Duration::from_secs(20),
            gather(
                Some(api),
                vec![nodes, pods],
                vec![redis],
                Duration::from_secs(3600),
                &|_| {},
            ),
        )
        .await
        .expect("a cluster check was waited for after the API check failed");
        let mut rows: Vec<_> = found
            .iter()
            .map(|f| (f.check.as_str(), f.message.as_str(), f.checked))
            .collect();
        rows.sort();
        assert_eq!(
            rows,
            [
                ("api", "unreachable: refused", true),
                ("nodes", "not checked: the API is unreachable", false),
                ("pods", "not checked: the API is unreachable", false),
                ("redis", "PONG", true),
            ]
        );
    }

    #[test]
    fn severities_order_fail_highest() {
        assert!(Severity::Fail > Severity::Warn && Severity::Warn > Severity::Ok);
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(human(SignedDuration::from_secs(25 * 60)), "25m");
        assert_eq!(human(SignedDuration::from_secs(9 * 86_400 + 5)), "9d");
        assert_eq!(human(SignedDuration::from_secs(-3)), "0s");
    }

    #[test]
    fn long_messages_are_cut_on_one_line() {
        assert_eq!(one_line("a\n b   c", 10), "a b c");
        assert_eq!(one_line("abcdefghijk", 5), "abcd…");
    }

    #[test]
    fn forbidden_is_a_warning_other_errors_fail() {
        assert_eq!(CheckError::Forbidden("x".into()).severity(), Severity::Warn);
        assert_eq!(
            CheckError::Timeout(Duration::from_secs(1)).severity(),
            Severity::Fail
        );
    }

    #[test]
    fn an_rbac_refusal_is_reported_as_forbidden() {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "code": 403, "message": "secrets is forbidden: User \"ops\" cannot list resource \"secrets\"",
            "reason": "Forbidden"}))
        .unwrap();
        let e = CheckError::from(kube::Error::Api(Box::new(status)));
        assert_eq!(e.severity(), Severity::Warn);
        assert!(
            e.to_string()
                .starts_with("not checked: forbidden by RBAC (secrets is forbidden"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_check_past_its_deadline_is_reported_not_dropped() {
        let slow = Check::new("slow", Area::Pods, "pods", async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(vec![])
        });
        let f = finish(slow, Duration::from_millis(20)).await;
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].severity, f[0].checked), (Severity::Fail, false));
        assert!(
            f[0].message.contains("no answer within"),
            "{}",
            f[0].message
        );
    }

    #[tokio::test]
    async fn a_check_whose_continued_list_expired_runs_once_more_from_the_beginning() {
        let runs = std::sync::atomic::AtomicUsize::new(0);
        let expired = || CheckError::Expired("410 Expired: the continue token is too old".into());
        let r = restarting_once(|| async {
            match runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 => Err(expired()),
                _ => Ok(vec![Finding::ok("pods", "3 pods")]),
            }
        })
        .await;
        assert_eq!(r.unwrap()[0].message, "3 pods");
        // Only once: a second expiry is the check's failure.
        runs.store(0, std::sync::atomic::Ordering::SeqCst);
        let r = restarting_once(|| async {
            runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err::<Vec<Finding>, _>(expired())
        })
        .await;
        assert!(matches!(r, Err(CheckError::Expired(_))));
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[test]
    fn api_errors_read_as_one_plain_sentence() {
        let status =
            |v: serde_json::Value| -> kube::core::Status { serde_json::from_value(v).unwrap() };
        let e = CheckError::from(kube::Error::Api(Box::new(status(serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 500,
            "reason": "InternalError", "message": "Internal error occurred: etcdserver: request timed out"})))));
        assert_eq!(
            e.to_string(),
            "not checked: 500 Internal Server Error: Internal error occurred: etcdserver: request timed out"
        );
        let e = CheckError::from(kube::Error::Api(Box::new(status(serde_json::json!({
            "code": 410, "reason": "Expired",
            "message": "The provided continue parameter is too old to display a consistent list result."})))));
        assert!(matches!(e, CheckError::Expired(_)), "{e:?}");
        assert!(
            e.to_string()
                .starts_with("not checked: 410 Gone: The provided continue"),
            "{e}"
        );
    }
}
