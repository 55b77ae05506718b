//! `paragon-admin forward`: local ports into the private network through the bastion.

use std::collections::HashSet;
use std::sync::Arc;

use crate::agent;
use crate::cli::{ForwardArgs, Globals};
use crate::config::{Resolved, Via};
use crate::dial::Dialer;
use crate::exit::Error;
use crate::forward::bastion::{connect_or_interrupt, reconnect, session};
use crate::forward::route::{self, Plan, Route};
use crate::forward::{
    self, Event, Forward, ForwardError, Listening, Options, Shutdown, Sink, Target,
};
use crate::output::Format;
use crate::ssh::Bastion;

pub async fn run(g: &Globals, args: ForwardArgs) -> Result<u8, Error> {
    let profile = super::resolve_profile(g)?;
    if args.list {
        return list(g, &profile).await;
    }
    if let Some(name) = &args.stop {
        return stop(g, &profile, name).await;
    }
    let stable = |name: &str| crate::state::Ports::user()?.stable_port(&profile.name, name);
    let mut forwards =
        forward::spec::parse_specs_stable(&args.specs, &profile.services(), &stable)?;
    if let Some(port) = args.socks {
        if !args.bind.is_loopback() {
            return Err(ForwardError::SocksExposed { addr: args.bind }.into());
        }
        forwards.push(Forward::socks(port));
    }
    if !args.bind.is_loopback() {
        eprintln!(
            "paragon-admin: warning: listening on {}: anyone who reaches this address reaches the forwarded services",
            args.bind
        );
    }
    if args.detach {
        return detach(g, &profile, forwards, args.bind).await;
    }
    let mut shutdown = Shutdown::install()?;
    let mut listeners = forward::bind(forwards, args.bind).await?;
    let Some(bastion) = connect_or_interrupt(&profile, &mut shutdown).await? else {
        return Ok(INTERRUPTED);
    };
    if args.open {
        for l in listeners.iter().filter(|l| l.forward.service.is_some()) {
            if let Err(e) = forward::open_in_browser(&l.url()) {
                eprintln!(
                    "paragon-admin: warning: cannot open {} in a browser: {e}",
                    l.url()
                );
            }
        }
    }
    let first = session(bastion.clone());
    let plan =
        route_listeners(&profile, &bastion, &mut listeners, args.via, &*first.dialer).await?;
    let base = reconnect(profile);
    match plan {
        None => {
            forward::run(
                listeners,
                first,
                base,
                options(g, Sink::Stdout),
                shutdown.requested(),
            )
            .await
        }
        Some(plan) => {
            let first = plan.route(first).await?;
            let base = Arc::new(base);
            // Every new SSH session gets its own API route over it.
            let connect = move || {
                let (base, plan) = (base.clone(), plan.clone());
                async move {
                    let s = base().await.map_err(|e| e.to_string())?;
                    plan.route(s).await.map_err(|e| e.to_string())
                }
            };
            forward::run(
                listeners,
                first,
                connect,
                options(g, Sink::Stdout),
                shutdown.requested(),
            )
            .await
        }
    }
    Ok(0)
}

/// Hands the forwards to the profile's agent and prints them as a foreground forward does
/// when it starts listening. Detached forwards take the bastion route.
async fn detach(
    g: &Globals,
    profile: &Resolved,
    forwards: Vec<Forward>,
    bind: std::net::IpAddr,
) -> Result<u8, Error> {
    if !agent::wanted(profile, g.no_agent) {
        return Err(Error::usage(
            "--detach hands the forwards to the profile's agent: drop --no-agent, and set the profile's persist above 0",
        ));
    }
    let listening = agent::ensure_forwards(profile, forwards, bind).await?;
    let o = options(g, Sink::Stdout);
    for f in listening {
        let event = Event::Listening {
            name: f.name,
            local: f.local,
            target: f.target,
            url: f.url,
            route: Route::Bastion,
        };
        forward::status::print_event(&event, o.style, o.sink);
    }
    Ok(0)
}

/// The forwards the profile's agent holds (none when no agent runs).
async fn list(g: &Globals, profile: &Resolved) -> Result<u8, Error> {
    let forwards = match agent::find(profile).await? {
        Some(a) => a.forwards().await?,
        None => Vec::new(),
    };
    match g.output {
        Format::Json => crate::output::print_json(&forwards)?,
        Format::Table => super::agent::print_forwards(&forwards)?,
    }
    Ok(0)
}

/// Closes a detached forward by name, or `all`.
async fn stop(g: &Globals, profile: &Resolved, name: &str) -> Result<u8, Error> {
    let all = name == "all";
    let closed = match agent::find(profile).await? {
        Some(a) => a.stop_forward((!all).then_some(name)).await?,
        None => 0,
    };
    if closed == 0 && !all {
        return Err(Error::usage(format!(
            "no detached forward is called `{name}` (see `paragon-admin forward --list`)"
        )));
    }
    if !g.quiet {
        eprintln!("paragon-admin: closed {closed} forward(s)");
    }
    Ok(0)
}

/// Chooses each forward's route (`--via`, else the service's `via`) and, if any takes the
/// API, the plan for it: the profile's kubeconfig, else the bastion's own.
async fn route_listeners(
    profile: &Resolved,
    bastion: &Bastion,
    listeners: &mut [Listening],
    via: Via,
    dialer: &dyn Dialer,
) -> Result<Option<Plan>, Error> {
    let mut api = HashSet::new();
    for l in listeners.iter_mut() {
        let Target::Tunnel { host, port } = &l.forward.target else {
            continue;
        };
        let via = match (via, &l.forward.service) {
            (Via::Auto, Some(s)) => s.via,
            (v, _) => v,
        };
        if route::choose(dialer, via, host, *port).await == Route::Api {
            l.route = Route::Api;
            api.insert((host.clone(), *port));
        }
    }
    if api.is_empty() {
        return Ok(None);
    }
    let chosen = crate::kube::source::choose(
        Default::default(),
        Some(super::profile_kube(profile)),
        Some(bastion),
    )
    .await
    .map_err(|e| Error::from(e).context("the API route needs a kubeconfig"))?;
    Ok(Some(Plan {
        options: chosen.options(),
        kubeconfig: chosen.kubeconfig,
        namespace: "paragon".to_string(),
        api_targets: Arc::new(api),
    }))
}

/// The exit status of a command interrupted before it could start serving.
pub(super) const INTERRUPTED: u8 = 130;

/// How events are shown: JSON lines, or lines for people (with a live status on a terminal).
pub(super) fn options(g: &Globals, sink: Sink) -> Options {
    Options::for_output(g.output == Format::Json, g.quiet, sink)
}
