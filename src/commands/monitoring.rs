//! `paragon-admin monitoring`: the alert rules and the dashboard for the capacity signals, at
//! the profile's thresholds (the defaults when there is no config file), and which of those
//! rules the profile's Prometheus has loaded; `install` applies both with the bastion's kubectl.

use std::io::Write;
use std::time::Duration;

use crate::agent::Remote;
use crate::cli::{
    Globals, MonitoringAction, MonitoringInstallArgs, MonitoringStatusArgs, RulesFormat,
};
use crate::exit::Error;
use crate::health::route::Routes;
use crate::kube as k8s;
use crate::monitoring::install::{self, Change, RulesAs};
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
        MonitoringAction::Install(args) => return run_install(g, args).await,
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
    let flags = k8s::Flags::default();
    let super::health::Reach { kube, dialer, .. } =
        super::health::reach(g, Some(&profile), flags, args.local, timeout).await?;
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

/// `monitoring install`: the objects for the cluster the bastion's kubectl reaches, compared
/// with what it holds; applied with `--apply`.
async fn run_install(g: &Globals, args: &MonitoringInstallArgs) -> Result<u8, Error> {
    let profile = super::resolve_profile(g)?;
    let remote = Remote::connect(&profile, g.no_agent).await?;
    let kubectl = |command: String, input: Vec<u8>| {
        let remote = &remote;
        async move {
            let out = remote.capture_input(&command, &input).await?;
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            if out.status != 0 {
                let stderr = String::from_utf8_lossy(&out.stderr);
                return Err(Error::failed(format!(
                    "`{command}` on the bastion exited {}: {}",
                    out.status,
                    crate::health::one_line(stderr.trim(), 300)
                )));
            }
            Ok::<_, Error>(stdout)
        }
    };
    let rules_as = RulesAs::from_api_resources(
        &kubectl(
            "kubectl api-resources --api-group=monitoring.coreos.com -o name".into(),
            Vec::new(),
        )
        .await?,
    );
    let thresholds = profile.thresholds();
    let board = serde_json::to_value(dashboard::dashboard(&thresholds))
        .map_err(|e| Error::failed(format!("cannot write the dashboard: {e}")))?;
    let objects = install::objects(&rules::rules(&thresholds, &args.hold), &board, rules_as)
        .map_err(Error::failed)?;
    let manifests = install::manifests(&objects).map_err(Error::failed)?;
    let refs: Vec<String> = objects.iter().map(|o| o.reference()).collect();
    let live = kubectl(
        format!(
            "kubectl get --namespace {} {} --output json --ignore-not-found",
            crate::kube::NAMESPACE,
            refs.join(" ")
        ),
        Vec::new(),
    )
    .await?;
    let plan = install::plan(
        &objects,
        &install::live_objects(&live).map_err(Error::failed)?,
    );
    let mut done: Vec<String> = plan.iter().map(|c| c.applied().to_string()).collect();
    if args.mode.apply {
        let said = kubectl(
            format!("kubectl apply --namespace {} -f -", crate::kube::NAMESPACE),
            manifests.clone().into_bytes(),
        )
        .await?;
        for (d, s) in done.iter_mut().zip(install::applied(&objects, &said)) {
            *d = s.unwrap_or_else(|| "not named by kubectl".into());
        }
    }
    let rows: Vec<InstallRow> = objects
        .iter()
        .zip(plan.iter().zip(&done))
        .map(|(o, (change, done))| InstallRow {
            kind: o.kind,
            name: o.name,
            namespace: crate::kube::NAMESPACE,
            change: *change,
            applied: args.mode.apply.then(|| done.clone()),
            manifest: (args.mode.dry_run && g.output == Format::Json).then(|| o.manifest.clone()),
        })
        .collect();
    let report = InstallReport {
        rules_as,
        applied: args.mode.apply,
        objects: rows,
    };
    match (g.output, args.mode.dry_run) {
        (Format::Json, _) => crate::output::print_json(&report)?,
        (Format::Table, true) => {
            let mut out = std::io::stdout().lock();
            out.write_all(manifests.as_bytes())?;
            out.flush()?;
            for r in &report.objects {
                eprintln!("{}/{}: would be {}", r.kind, r.name, would(r.change));
            }
        }
        (Format::Table, false) => {
            let mut t = crate::output::table(["KIND", "NAME", "NAMESPACE", "APPLIED"]);
            for r in &report.objects {
                t.add_row([
                    r.kind.to_string(),
                    r.name.to_string(),
                    r.namespace.to_string(),
                    r.applied.clone().unwrap_or_default(),
                ]);
            }
            crate::output::print_table(&t)?;
        }
    }
    if rules_as == RulesAs::ConfigMap {
        eprintln!(
            "no PrometheusRule resource in this cluster: the rules are the ConfigMap {} (key {}), for Prometheus' rule_files (see the README's `monitoring install`)",
            install::RULES_CONFIGMAP,
            install::RULES_FILE
        );
    }
    Ok(0)
}

fn would(c: Change) -> &'static str {
    match c {
        Change::Create => "created",
        Change::Update => "changed",
        Change::Unchanged => "left unchanged",
    }
}

/// `monitoring install`'s answer (`--output json`).
#[derive(serde::Serialize)]
struct InstallReport {
    rules_as: RulesAs,
    applied: bool,
    objects: Vec<InstallRow>,
}

#[derive(serde::Serialize)]
struct InstallRow {
    kind: &'static str,
    name: &'static str,
    namespace: &'static str,
    /// What applying changes, from the cluster's copy before.
    change: Change,
    /// What kubectl said it did (`--apply`).
    #[serde(skip_serializing_if = "Option::is_none")]
    applied: Option<String>,
    /// The object (`--dry-run`).
    #[serde(skip_serializing_if = "Option::is_none")]
    manifest: Option<serde_json::Value>,
}
