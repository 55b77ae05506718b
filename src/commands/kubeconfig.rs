//! `paragon-admin kubeconfig`: forward the Kubernetes API and hand out a kubeconfig for it.

use std::io::Write;

use crate::cli::{Globals, KubeconfigArgs};
use crate::exit::Error;
use crate::forward::bastion::{connect_or_interrupt, reconnect, session};
use crate::forward::kubeconfig::{self, Source, Upstream};
use crate::forward::{self, Shutdown, Sink};

use super::forward::{INTERRUPTED, options};

pub async fn run(g: &Globals, args: KubeconfigArgs) -> Result<u8, Error> {
    let profile = super::resolve_profile(g)?;
    let decision = crate::kube::source::decide(
        Default::default(),
        Some(super::profile_kube(&profile)),
        false,
    )?;
    // A local kubeconfig is read, and --write checked, before anything connects; the same
    // reader as `health`, so a bad file is the same usage error (2) in both.
    let local = match decision.origin.file() {
        Some(_) => Some(decision.clone().load(None).await?),
        None => None,
    };
    if let Some(path) = &args.write {
        kubeconfig::check_writable(path, args.force)?;
    }
    let mut shutdown = Shutdown::install()?;
    // The port is bound before connecting; what it forwards to may only be known from the
    // bastion's kubeconfig, and is set below, before anything is served.
    let local_port = match args.local_port {
        Some(p) => p,
        None => crate::state::Ports::user()?.stable_port(&profile.name, crate::state::KUBE_API)?,
    };
    let unresolved = Upstream::unresolved().forward(local_port);
    let loopback = std::net::IpAddr::from([127, 0, 0, 1]);
    let mut listeners = forward::bind(vec![unresolved], loopback).await?;
    let Some(bastion) = connect_or_interrupt(&profile, &mut shutdown).await? else {
        return Ok(INTERRUPTED);
    };
    let chosen = match local {
        Some(c) => c,
        // Fetched into memory: written nowhere but where the user asked.
        None => decision.load(Some(&bastion)).await?,
    };
    let source = Source {
        origin: chosen.origin.to_string(),
        context: chosen.context,
        kubeconfig: chosen.kubeconfig,
    };
    let upstream = source.upstream(chosen.api_server.as_ref())?;
    let l = &mut listeners[0];
    l.forward = upstream.forward(l.local.port());
    let config =
        source.through_forward(&upstream, l.local, &format!("paragon-{}", profile.name))?;
    let yaml = kubeconfig::to_yaml(&config)?;
    let sink = match &args.write {
        Some(path) => {
            kubeconfig::write_private(path, &yaml, args.force)?;
            eprintln!(
                "paragon-admin: kubeconfig written to {0}; use it with KUBECONFIG={0} kubectl ...",
                path.display()
            );
            Sink::Stdout
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(yaml.as_bytes())?;
            out.flush()?;
            Sink::Stderr
        }
    };
    forward::run(
        listeners,
        session(bastion),
        reconnect(profile),
        options(g, sink),
        shutdown.requested(),
    )
    .await;
    Ok(0)
}
