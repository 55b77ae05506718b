//! `paragon-admin health`: glue from the options to `health::run`, the progress indicator
//! and the printed report.

use std::sync::Arc;
use std::time::Duration;

use crate::agent::Remote;
use crate::cli::{Globals, HealthArgs};
use crate::dial::{Dialer, Direct};
use crate::exit::{self, Error, ExitStatus as _};
use crate::health::{self, Progress, Report, Target};
use crate::kube as k8s;
use crate::kube::source::Capture;

pub async fn run(g: &Globals, args: &HealthArgs) -> Result<u8, Error> {
    // With --local nothing needs a profile: without a config file the report checks the
    // cluster the kubeconfig names. Through the bastion, the profile says where it is.
    let profile = if args.local {
        super::resolve_optional_profile(g)?
    } else {
        Some(super::resolve_profile(g)?)
    };
    let timeout = Duration::from_secs(args.timeout);
    let flags = k8s::Flags {
        kubeconfig: args.kubeconfig.as_deref(),
        context: args.context.as_deref(),
    };
    let Reach {
        kube,
        dialer,
        context,
    } = reach(g, profile.as_ref(), flags, args.local, timeout).await?;
    let target = match &profile {
        Some(profile) => super::health_target(profile, kube, dialer, context, args.via),
        // No profile: no datastores, and no monitoring services either: the built-in ones
        // are named by the cluster's internal DNS, which only a bastion resolves.
        None => Target {
            kube,
            dialer,
            datastores: Default::default(),
            services: Default::default(),
            postgres_password: None,
            context,
            redis_password: None,
            profile: String::new(),
            via: args.via,
            thresholds: Default::default(),
        },
    };
    let options = health::Options {
        timeout,
        strict: args.strict,
    };
    let Some(mut report) = run_with_progress(g, target, options).await? else {
        return Ok(crate::exit::INTERRUPTED);
    };
    report.verbose = g.verbose > 0;
    report.print(g.output)?;
    Ok(report.exit_status())
}

/// How the report reaches the cluster and the services: the dialer (the bastion's, else this
/// machine's), the Kubernetes client or why there is none, and the kubeconfig context chosen.
pub(super) struct Reach {
    pub kube: Result<kube::Client, String>,
    pub dialer: Arc<dyn Dialer>,
    pub context: Option<String>,
}

/// Connects through the profile's agent (or a connection of its own with `--no-agent` or
/// `persist = 0`) unless `local`, and makes the client for the kubeconfig `kube::source`
/// chooses from `flags` and the profile. An unreachable bastion is an error (exit 255), not
/// a finding.
pub(super) async fn reach(
    g: &Globals,
    profile: Option<&crate::config::Resolved>,
    flags: k8s::Flags<'_>,
    local: bool,
    timeout: Duration,
) -> Result<Reach, Error> {
    let remote = match (profile, local) {
        (Some(p), false) => Some(Remote::connect(p, g.no_agent).await?),
        _ => None,
    };
    let dialer: Arc<dyn Dialer> = match &remote {
        Some(r) => r.dialer(),
        None => Arc::new(Direct { timeout }),
    };
    let decision = k8s::source::decide(flags, profile.map(k8s::ProfileKube::of), local)?;
    let context = decision.context.clone();
    if let (Some(remote), false) = (&remote, decision.origin == k8s::Origin::Bastion) {
        // Fetching the bastion's kubeconfig shows an agent's session is up; without the
        // fetch, this asks (a session the agent cannot get back is 255, as directly).
        remote.check_session().await?;
    }
    let kube = kube_client(decision, dialer.clone(), remote.as_ref().map(|r| r as _)).await?;
    Ok(Reach {
        kube,
        dialer,
        context,
    })
}

/// The client for the kubeconfig `kube::source` chose. A file the user named (or listed in
/// `$KUBECONFIG`) that is unreadable or lacks the context is a configuration error (2), and a bastion that dropped
/// is the bastion's failure (255); a kubeconfig the bastion cannot give, no default
/// kubeconfig, or a cluster that cannot be reached is a finding of the report.
async fn kube_client(
    decision: k8s::source::Decision,
    dialer: Arc<dyn Dialer>,
    bastion: Option<&dyn Capture>,
) -> Result<Result<kube::Client, String>, Error> {
    let named = decision.origin.file().is_some();
    let chosen = match decision.load(bastion).await {
        Ok(c) => c,
        Err(e @ (k8s::SourceError::Read(_) | k8s::SourceError::DefaultFile { .. })) => {
            return Err(e.into());
        }
        Err(e) if e.exit_status() == exit::UNREACHABLE => return Err(e.into()),
        Err(e) => return Ok(Err(Error::from(e).to_string())),
    };
    let options = chosen.options();
    match k8s::client(dialer, chosen.kubeconfig, &options).await {
        Ok(c) => Ok(Ok(c)),
        // A context missing from a file the user named is theirs to fix (2).
        Err(e) if named => Err(e.into()),
        Err(e) => Ok(Err(e.to_string())),
    }
}

/// The report, with a progress line on a terminal; `None` when interrupted (Ctrl-C,
/// SIGTERM), the progress line cleared first so the shell's prompt starts on a clean line.
async fn run_with_progress(
    g: &Globals,
    target: Target,
    options: health::Options,
) -> Result<Option<Report>, Error> {
    let mut shutdown = crate::signals::Shutdown::install()?;
    let bar = super::progress_bar(g, "checking");
    let progress = |p: Progress<'_>| super::advance(bar.as_ref(), p);
    let report = tokio::select! {
        report = health::run(target, options, &progress) => Some(report),
        _ = shutdown.requested() => None,
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(report)
}
