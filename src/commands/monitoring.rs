//! `paragon-admin monitoring`: the alert rules and the dashboard for the capacity signals, at
//! the profile's thresholds (the defaults when there is no config file), and which of those
//! rules the profile's Prometheus has loaded.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use crate::agent::Remote;
use crate::cli::{Globals, MonitoringAction, MonitoringStatusArgs, RulesFormat};
use crate::dial::{Dialer, Direct};
use crate::exit::Error;
use crate::health::route::Routes;
use crate::kube as k8s;
use crate::monitoring::status::Status;
use crate::monitoring::{dashboard, rules, status};
use crate::output::Format;

pub async fn run(g: &Globals, action: &MonitoringAction) -> Result<u8, Error> {
    let thresholds = || -> Result<_, Error> {
        Ok(super::resolve_optional_profile(g)?
            .map(|p| p.thresholds())
            .unwrap_or_default())
    };
    let text = match action {
        MonitoringAction::Status(args) => return run_status(g, args).await,
        MonitoringAction::Rules { format, hold } => {
            let format = match format {
                RulesFormat::Prometheus => rules::Format::Prometheus,
                RulesFormat::Kubernetes => rules::Format::Kubernetes,
            };
            rules::render(&rules::rules(&thresholds()?, hold), format)
                .map_err(|e| Error::failed(format!("cannot write the rules as YAML: {e}")))?
        }
        MonitoringAction::Dashboard => {
            let mut json = serde_json::to_string_pretty(&dashboard::dashboard(&thresholds()?))
                .map_err(|e| Error::failed(format!("cannot write the dashboard: {e}")))?;
            json.push('\n');
            json
        }
    };
    let mut out = std::io::stdout().lock();
    // A closed stdout (`| head`) keeps its io error: main exits quietly on it.
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(0)
}

/// `monitoring status`: the profile's Prometheus by the health report's route; exit 0 when
/// every rule is loaded, 1 when some are missing or Prometheus answered with an error.
async fn run_status(g: &Globals, args: &MonitoringStatusArgs) -> Result<u8, Error> {
    let profile = super::resolve_profile(g)?;
    let timeout = Duration::from_secs(args.timeout);
    // An unreachable bastion is an error of its own (exit 255).
    let remote = match args.local {
        false => Some(Remote::connect(&profile, g.no_agent).await?),
        true => None,
    };
    let dialer: Arc<dyn Dialer> = match &remote {
        Some(r) => r.dialer(),
        None => Arc::new(Direct { timeout }),
    };
    let decision = k8s::source::decide(
        k8s::Flags {
            kubeconfig: None,
            context: None,
        },
        Some(k8s::ProfileKube::of(&profile)),
        args.local,
    )?;
    if let (Some(remote), false) = (&remote, decision.origin == k8s::Origin::Bastion) {
        remote.check_session().await?;
    }
    let bastion = remote.as_ref().map(|r| r as _);
    let kube = super::health::kube_client(decision, dialer.clone(), bastion).await?;
    let routes = Routes::new(dialer, &kube, args.via);
    let services = profile.services();
    let Some(prometheus) = services.get("prometheus") else {
        return Err(Error::usage(format!(
            "profile {} names no prometheus service: add [profiles.{}.services.prometheus]",
            profile.name, profile.name
        )));
    };
    let expected = rules::rules(&profile.thresholds(), "5m");
    let found = status::status(&routes, prometheus, &expected, timeout)
        .await
        .map_err(Error::failed)?;
    match g.output {
        Format::Json => crate::output::print_json(&found)?,
        Format::Table => print_table(&found)?,
    }
    Ok(if found.complete() { 0 } else { 1 })
}

fn print_table(s: &Status) -> std::io::Result<()> {
    let mut t = crate::output::table(["ALERT", "SEVERITY", "LOADED", "FIRING"]);
    for r in &s.rules {
        let loaded = match (r.loaded, &r.last_error) {
            (false, _) => "missing".to_string(),
            (true, Some(e)) => format!("yes (error: {e})"),
            (true, None) => "yes".to_string(),
        };
        let firing = match (r.firing.is_empty(), r.pending) {
            (true, 0) => "-".to_string(),
            (true, n) => format!("pending ({n})"),
            (false, _) => r.firing.join("; "),
        };
        t.add_row([r.alert.clone(), r.severity.clone(), loaded, firing]);
    }
    crate::output::print_table(&t)?;
    eprintln!(
        "{} of {} rules loaded, {} missing, {} alerts firing (Prometheus {}, {})",
        s.loaded,
        s.rules.len(),
        s.missing,
        s.firing,
        s.prometheus,
        s.route
    );
    Ok(())
}
