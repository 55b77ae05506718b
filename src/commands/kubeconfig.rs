//! `paragon-admin kubeconfig`: forward the Kubernetes API and hand out a kubeconfig for it.
//!
//! Without `--write`/`--merge` it prints a kubeconfig with the credentials and serves the
//! forward in the foreground, reaching the bastion as a foreground `forward` does. With them it writes a kubeconfig that heals itself: its server
//! is the API forward the profile's agent holds on a stable port, its user the
//! `kube-credential` plugin; it makes sure that forward listens and returns.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;

use crate::agent::api::ensure_api_forward;
use crate::agent::reach::{Reach, reach};
use crate::cli::{Globals, KubeconfigArgs};
use crate::config::Resolved;
use crate::exit::{Error, INTERRUPTED};
use crate::forward::kubeconfig::{self, Plugin, Source, Upstream};
use crate::forward::{self, Shutdown, Sink};
use crate::kube::ProfileKube;
use crate::state::{KUBE_API, Ports};

const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

pub async fn run(g: &Globals, args: KubeconfigArgs) -> Result<u8, Error> {
    if args.write.is_some() || args.merge {
        write_healing(g, &args).await
    } else {
        serve(g, args).await
    }
}

/// Prints the kubeconfig, credentials included, and serves the forward until interrupted.
async fn serve(g: &Globals, args: KubeconfigArgs) -> Result<u8, Error> {
    let profile = super::resolve_profile(g)?;
    let decision =
        crate::kube::source::decide(Default::default(), Some(ProfileKube::of(&profile)), false)?;
    // A local kubeconfig is read before anything connects; the same reader as `health`, so
    // a bad file is the same usage error (2) in both.
    let local = match decision.origin.file() {
        Some(_) => Some(decision.clone().load(None).await?),
        None => None,
    };
    let local_port = match args.local_port {
        Some(p) => p,
        None => Ports::user()?.stable_port(&profile.state_key(), &profile.name, KUBE_API)?,
    };
    let mut shutdown = Shutdown::install()?;
    // The port is bound before connecting; what it forwards to may only be known from the
    // bastion's kubeconfig, and is set below, before anything is served.
    let unresolved = Upstream::unresolved().forward(local_port);
    let mut listeners = forward::bind(vec![unresolved], LOOPBACK).await?;
    let Some(reach) = reach(&profile, g.no_agent, &mut shutdown).await? else {
        return Ok(INTERRUPTED);
    };
    let chosen = match local {
        Some(c) => c,
        // Fetched into memory: written nowhere.
        None => decision.load(Some(&reach.remote)).await?,
    };
    let source = Source::of(&chosen);
    let upstream = source.upstream(chosen.api_server.as_ref())?;
    let l = &mut listeners[0];
    l.forward = upstream.forward(l.local.port());
    let config =
        source.through_forward(&upstream, l.local, &format!("paragon-{}", profile.name))?;
    let yaml = kubeconfig::to_yaml(&config)?;
    let mut out = std::io::stdout().lock();
    out.write_all(yaml.as_bytes())?;
    out.flush()?;
    drop(out);
    let Reach { first, connect, .. } = reach;
    let fatal = forward::run(
        listeners,
        first,
        move || connect(),
        super::forward_options(g, Sink::Stderr),
        shutdown.requested(),
    )
    .await;
    // The session closed for good (the bastion's host key changed or was revoked): said as a
    // direct connection says it, with its status.
    if let Some(f) = fatal {
        return Err(Error::with_status(f.status, f.message));
    }
    Ok(0)
}

/// Writes (or merges) the healing kubeconfig once the agent's API forward listens.
async fn write_healing(g: &Globals, args: &KubeconfigArgs) -> Result<u8, Error> {
    let profile = super::resolve_profile(g)?;
    let target = match &args.write {
        Some(path) => {
            kubeconfig::check_writable(path, args.force)?;
            Target::File(path.clone())
        }
        None => {
            let path = kubeconfig::merge_target()?;
            kubeconfig::check_mergeable(&path, &format!("paragon-{}", profile.name), args.force)?;
            Target::Merge(path)
        }
    };
    let plugin = Plugin {
        program: std::env::current_exe()?,
        config: config_for_plugin(g, &profile)?,
        profile: profile.name.clone(),
    };
    let api = ensure_api_forward(&profile, g.no_agent).await?;
    let name = format!("paragon-{}", profile.name);
    let config = api
        .source
        .through_plugin(&api.upstream, api.local, &name, &plugin)?;
    match &target {
        Target::File(path) => {
            kubeconfig::write_private(path, &kubeconfig::to_yaml(&config)?, args.force)?;
            eprintln!(
                "paragon-admin: kubeconfig written to {0} (the API through the agent on {1}); use it with KUBECONFIG={0} kubectl ...",
                path.display(),
                api.local
            );
        }
        Target::Merge(path) => {
            kubeconfig::merge_into_file(path, config, args.force)?;
            eprintln!(
                "paragon-admin: context {name} added to {} (the API through the agent on {}); use it with kubectl --context {name} ...",
                path.display(),
                api.local
            );
        }
    }
    Ok(0)
}

enum Target {
    File(PathBuf),
    Merge(PathBuf),
}

/// The `--config` the plugin must be given: the file this command read, when it was named
/// (`--config` or `$PARAGON_ADMIN_CONFIG`) rather than found at the default place, since
/// kubectl may run the plugin from another environment (an IDE, Lens).
fn config_for_plugin(g: &Globals, profile: &Resolved) -> Result<Option<PathBuf>, Error> {
    let named = g.config.is_some()
        || std::env::var_os("PARAGON_ADMIN_CONFIG").is_some_and(|v| !v.is_empty());
    Ok(match named {
        true => Some(std::path::absolute(&profile.file)?),
        false => None,
    })
}
