//! `paragon-admin kubeconfig`: forward the Kubernetes API and hand out a kubeconfig for it.
//!
//! Without `--write`/`--merge` it prints a kubeconfig with the credentials and serves the
//! forward in the foreground, reaching the bastion as a foreground `forward` does. With them it writes a kubeconfig that heals itself: its server
//! is the API forward the profile's agent holds on a stable port, its user the
//! `kube-credential` plugin; it makes sure that forward listens and returns.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use crate::cli::{Globals, KubeconfigArgs};
use crate::config::Resolved;
use crate::exit::{Error, ExitStatus};
use crate::forward::kubeconfig::{self, Plugin, Source, Upstream};
use crate::forward::{self, Shutdown, Sink};
use crate::kube::Chosen;
use crate::state::{KUBE_API, Ports};

use super::forward::{INTERRUPTED, Reach, options, reach};

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
    let decision = crate::kube::source::decide(
        Default::default(),
        Some(super::profile_kube(&profile)),
        false,
    )?;
    // A local kubeconfig is read before anything connects; the same reader as `health`, so
    // a bad file is the same usage error (2) in both.
    let local = match decision.origin.file() {
        Some(_) => Some(decision.clone().load(None).await?),
        None => None,
    };
    let local_port = match args.local_port {
        Some(p) => p,
        None => Ports::user()?.stable_port(&profile.name, KUBE_API)?,
    };
    let mut shutdown = Shutdown::install()?;
    // The port is bound before connecting; what it forwards to may only be known from the
    // bastion's kubeconfig, and is set below, before anything is served.
    let unresolved = Upstream::unresolved().forward(local_port);
    let mut listeners = forward::bind(vec![unresolved], LOOPBACK).await?;
    let Some(reach) = reach(g, &profile, &mut shutdown).await? else {
        return Ok(INTERRUPTED);
    };
    let chosen = match local {
        Some(c) => c,
        // Fetched into memory: written nowhere.
        None => decision.load(Some(&reach.remote)).await?,
    };
    let source = source_of(&chosen);
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
    forward::run(
        listeners,
        first,
        move || connect(),
        options(g, Sink::Stderr),
        shutdown.requested(),
    )
    .await;
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

/// The profile's kubeconfig and the API forward its agent holds for it.
pub(super) struct ApiForward {
    pub chosen: Chosen,
    pub source: Source,
    pub upstream: Upstream,
    /// Where the forward listens: 127.0.0.1 and the profile's stable port.
    pub local: SocketAddr,
}

/// Reads the chosen kubeconfig (the bastion's own fetched into memory through the profile's
/// agent, started when none runs: its output comes to this process only), then has the agent
/// listen for the API on the stable port. Errors that mean the bastion cannot be reached say
/// so first.
pub(super) async fn ensure_api_forward(
    profile: &Resolved,
    no_agent: bool,
) -> Result<ApiForward, Error> {
    if !crate::agent::wanted(profile, no_agent) {
        return Err(Error::usage(format!(
            "the kubeconfig of --write and --merge reaches the API through the profile's agent: set persist above 0 in profile {} and drop --no-agent",
            profile.name
        )));
    }
    let decision = crate::kube::source::decide(
        Default::default(),
        Some(super::profile_kube(profile)),
        false,
    )?;
    // A local file is read before the agent starts: a bad one is the same usage error (2)
    // as in `health`, with nothing started.
    let from_file = match decision.origin.file() {
        Some(_) => Some(decision.clone().load(None).await?),
        None => None,
    };
    let agent = crate::agent::connect_or_start(profile)
        .await
        .map_err(unreachable)?;
    let chosen = match from_file {
        Some(chosen) => chosen,
        None => decision.load(Some(&agent)).await.map_err(unreachable)?,
    };
    let source = source_of(&chosen);
    let upstream = source.upstream(chosen.api_server.as_ref())?;
    let port = Ports::user()?.stable_port(&profile.name, KUBE_API)?;
    let mut wanted = upstream.forward(port);
    wanted.name = KUBE_API.to_string();
    let held = agent
        .ensure_forwards(&[wanted], LOOPBACK, None)
        .await
        .map_err(unreachable)?;
    let local = held
        .iter()
        .find(|f| f.name == KUBE_API)
        .map(|f| f.local)
        .ok_or_else(|| Error::failed("the agent did not open the API forward"))?;
    if local.port() != port {
        return Err(Error::failed(format!(
            "the agent holds the API forward on {local}, not on the remembered port {port}: run `paragon-admin forward --stop {KUBE_API}` and try again"
        )));
    }
    Ok(ApiForward {
        chosen,
        source,
        upstream,
        local,
    })
}

fn source_of(chosen: &Chosen) -> Source {
    Source {
        origin: chosen.origin.to_string(),
        context: chosen.context.clone(),
        kubeconfig: chosen.kubeconfig.clone(),
    }
}

/// An error that means the bastion could not be reached (255), said as such first: kubectl
/// shows the plugin's one line as it is.
fn unreachable(e: impl Into<Error>) -> Error {
    let e = e.into();
    if e.exit_status() == crate::exit::UNREACHABLE {
        e.context("bastion unreachable")
    } else {
        e
    }
}
