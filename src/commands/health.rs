//! `paragon-admin health`: glue from the options to `health::run`, the progress indicator
//! and the printed report.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::{Globals, HealthArgs};
use crate::config::Resolved;
use crate::dial::{Dialer, Direct};
use crate::exit::{self, Error, ExitStatus as _};
use crate::health::{self, Progress, Report, Target};
use crate::kube as k8s;
use crate::output::{self, Format};
use crate::secrets;
use crate::ssh::Bastion;

pub async fn run(g: &Globals, args: &HealthArgs) -> Result<u8, Error> {
    let profile = super::resolve_profile(g)?;
    let timeout = Duration::from_secs(args.timeout);
    // An unreachable bastion is an error (exit 255), not a report.
    let bastion = if args.local {
        None
    } else {
        Some(Bastion::connect(&profile).await?)
    };
    let dialer: Arc<dyn Dialer> = match &bastion {
        Some(b) => Arc::new(b.clone()),
        None => Arc::new(Direct { timeout }),
    };
    let kube = kube_client(&profile, args, dialer.clone(), bastion.as_ref()).await?;
    let context = args
        .context
        .clone()
        .or_else(|| profile.settings.kube.context.as_ref().map(|c| c.0.clone()));
    let target = Target {
        kube,
        dialer,
        datastores: profile.settings.datastores.clone(),
        services: profile.services(),
        postgres_password: if profile.settings.datastores.postgres.is_empty() {
            None
        } else {
            keyring_password(secrets::postgres_password(&profile.name))
        },
        context,
        redis_password: if profile.settings.datastores.redis.is_empty() {
            None
        } else {
            keyring_password(secrets::redis_password(&profile.name))
        },
        profile: profile.name.clone(),
    };
    let options = health::Options {
        timeout,
        strict: args.strict,
    };
    let report = run_with_progress(g, target, options).await;
    print(g.output, &report)?;
    Ok(report.exit_status())
}

/// A datastore password from the keyring (named by `secrets`), if stored. A keyring that
/// cannot be read only means a shallower probe: the handshake still shows whether the
/// datastore is alive.
fn keyring_password(name: String) -> Option<crate::secrets::Secret> {
    match secrets::get(&name) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot read {name} from the keyring: {e}");
            None
        }
    }
}

/// The kubeconfig the flags, then the profile, name; else the bastion's own, fetched into
/// memory (with `--local`: the usual `$KUBECONFIG` or `~/.kube/config`). A file that cannot
/// be read is a configuration error; a cluster that cannot be reached is a finding.
async fn kube_client(
    profile: &Resolved,
    args: &HealthArgs,
    dialer: Arc<dyn Dialer>,
    bastion: Option<&Bastion>,
) -> Result<Result<kube::Client, String>, Error> {
    let kube_cfg = &profile.settings.kube;
    let base = profile
        .file
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let file = match (&args.kubeconfig, &kube_cfg.kubeconfig) {
        (Some(f), _) => Some(f.clone()),
        (None, Some(f)) => Some(crate::config::expand_path(&f.0, &base)?),
        (None, None) => None,
    };
    let context = args
        .context
        .clone()
        .or_else(|| kube_cfg.context.as_ref().map(|c| c.0.clone()));
    let options = k8s::Options {
        context: context.clone(),
        api_server: kube_cfg.api_server.clone(),
    };
    // A kubeconfig named here that is unreadable or lacks the context is a usage error (2).
    if let Some(path) = file {
        let kubeconfig = k8s::read_kubeconfig(&path)?;
        return Ok(Ok(k8s::client(dialer, kubeconfig, &options).await?));
    }
    let kubeconfig = match bastion {
        // A session that dropped is the bastion's failure (255), not a finding of the report.
        Some(b) => match super::fetch_bastion_kubeconfig(b, context.as_deref()).await {
            Err(e) if e.exit_status() == exit::UNREACHABLE => return Err(e.into()),
            fetched => fetched.map_err(|e| Error::from(e).to_string()),
        },
        None => kube::config::Kubeconfig::read().map_err(|e| {
            format!(
                "no kubeconfig: pass --kubeconfig FILE or set kube.kubeconfig in the profile ({})",
                k8s::one_line(&e)
            )
        }),
    };
    Ok(match kubeconfig {
        Ok(k) => k8s::client(dialer, k, &options)
            .await
            .map_err(|e| e.to_string()),
        Err(why) => Err(why),
    })
}

async fn run_with_progress(g: &Globals, target: Target, options: health::Options) -> Report {
    let bar = (!g.quiet && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} checking {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    let progress = |p: Progress<'_>| {
        if let Some(bar) = &bar {
            match p {
                Progress::Total(n) => bar.inc_length(n as u64),
                Progress::Done(name) => {
                    bar.inc(1);
                    bar.set_message(name.to_string());
                }
            }
        }
    };
    let report = health::run(target, options, &progress).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    report
}

fn print(format: Format, report: &Report) -> std::io::Result<()> {
    match format {
        Format::Json => output::print_json(report),
        Format::Table => {
            output::print_table(&report.table())?;
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", report.summary_line())?;
            out.flush()
        }
    }
}
