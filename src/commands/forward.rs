//! `paragon-admin forward`: local ports into the private network through the bastion.
//!
//! In the foreground the connections are dialed through the profile's agent when it wants one
//! (its session followed by `forward::kept`), else over a session of this command's own
//! (`--no-agent`, `persist = 0`); `kubeconfig` serves its forward the same way (`reach`).

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::agent::proto::ApiRoute;
use crate::agent::{self, Agent, Remote};
use crate::cli::{ForwardArgs, Globals};
use crate::config::{Resolved, Via};
use crate::dial::Dialer;
use crate::exit::Error;
use crate::forward::bastion::{connect_or_interrupt, reconnect, session};
use crate::forward::kept::{self, Check, Kept, Pace};
use crate::forward::route::{self, Plan, Route};
use crate::forward::{
    self, Event, Forward, ForwardError, Listening, Options, Session, Shutdown, Sink, Target,
};
use crate::kube::Chosen;
use crate::output::Format;

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
        return detach(g, &profile, forwards, args.bind, args.via).await;
    }
    let mut shutdown = Shutdown::install()?;
    let mut listeners = forward::bind(forwards, args.bind).await?;
    let Some(reach) = reach(g, &profile, &mut shutdown).await? else {
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
    let Reach {
        first,
        connect,
        remote,
    } = reach;
    let plan = route_listeners(&profile, &remote, &mut listeners, args.via, &*first.dialer).await?;
    let (first, connect) = match plan {
        None => (first, connect),
        Some(plan) => {
            let first = plan.route(first).await?;
            // Every new session gets its own API route over it.
            let routed: Connect = Arc::new(move || {
                let (connect, plan) = (connect.clone(), plan.clone());
                Box::pin(async move {
                    let s = connect().await?;
                    plan.route(s).await.map_err(|e| e.to_string())
                })
            });
            (first, routed)
        }
    };
    forward::run(
        listeners,
        first,
        move || connect(),
        options(g, Sink::Stdout),
        shutdown.requested(),
    )
    .await;
    Ok(0)
}

/// What the supervisor calls for the next session, on either path; its error is the line the
/// `reconnect_failed` event carries.
pub(super) type Connect =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<Session, String>> + Send>> + Send + Sync>;

/// How a foreground forward reaches the bastion: its first session and what makes the next.
pub(super) struct Reach {
    pub first: Session,
    pub connect: Connect,
    /// The agent, or this command's own SSH session (`--no-agent`, `persist = 0`).
    pub remote: Remote,
}

/// Reaches the bastion as the profile says: through its agent (started when none runs; its
/// session is followed, not duplicated, so a warm agent means no new SSH connection), else
/// with a session of this command's own, as before the agent. `None` when SIGINT/SIGTERM came
/// first.
pub(super) async fn reach(
    g: &Globals,
    profile: &Resolved,
    shutdown: &mut Shutdown,
) -> Result<Option<Reach>, Error> {
    if !agent::wanted(profile, g.no_agent) {
        let Some(bastion) = connect_or_interrupt(profile, shutdown).await? else {
            return Ok(None);
        };
        let again = reconnect(profile.clone());
        return Ok(Some(Reach {
            first: session(bastion.clone()),
            connect: Arc::new(move || {
                let next = again();
                Box::pin(async move { next.await.map_err(|e| e.to_string()) })
            }),
            remote: Remote::Direct(bastion),
        }));
    }
    let started = tokio::select! {
        a = agent::connect_or_start(profile) => a?,
        () = shutdown.requested() => return Ok(None),
    };
    let dialer: Arc<dyn Dialer> = Arc::new(started.clone());
    let check = agent_check(started.clone());
    let pace = Pace::default();
    let connect: Connect =
        Arc::new(move || Box::pin(kept::connect(dialer.clone(), check.clone(), pace)));
    let first = tokio::select! {
        s = connect() => s.map_err(|reason| Error::with_status(crate::exit::UNREACHABLE, reason))?,
        () = shutdown.requested() => return Ok(None),
    };
    Ok(Some(Reach {
        first,
        connect,
        remote: Remote::Agent(started),
    }))
}

/// The agent's session as `kept` follows it: up (known by the agent's pid and its reconnect
/// count, which change with every new session), or reconnecting. Asking restarts an agent
/// that went away (killed, `agent stop`); one that cannot be started is the error.
fn agent_check(agent: Agent) -> Check {
    Arc::new(move || {
        let agent = agent.clone();
        Box::pin(async move {
            let s = agent.status().await.map_err(|e| e.to_string())?;
            Ok(match s.connected {
                true => Kept::Up {
                    id: format!("{}/{}", s.pid, s.reconnects),
                },
                false => Kept::Down {
                    reason: format!(
                        "the agent of profile {} has no session to {} now and is reconnecting",
                        s.profile, s.bastion
                    ),
                },
            })
        })
    })
}

/// Hands the forwards to the profile's agent and prints them as a foreground forward does
/// when it starts listening. Routes are chosen as in the foreground, over the agent's session;
/// the API route's kubeconfig goes to the agent with the forwards (in memory only).
async fn detach(
    g: &Globals,
    profile: &Resolved,
    forwards: Vec<Forward>,
    bind: std::net::IpAddr,
    via: Via,
) -> Result<u8, Error> {
    if !agent::wanted(profile, g.no_agent) {
        return Err(Error::usage(
            "--detach hands the forwards to the profile's agent: drop --no-agent, and set the profile's persist above 0",
        ));
    }
    let agent = agent::connect_or_start(profile).await?;
    let mut targets = Vec::new();
    for f in &forwards {
        if let Some(target) = api_target(f, via, &agent).await {
            targets.push(target);
        }
    }
    let api = match targets.is_empty() {
        true => None,
        false => {
            let chosen = api_kubeconfig(profile, &Remote::Agent(agent.clone())).await?;
            Some(Box::new(ApiRoute {
                context: chosen.context.clone(),
                api_server: chosen.api_server.clone(),
                kubeconfig: chosen.kubeconfig,
                namespace: NAMESPACE.to_string(),
                targets,
            }))
        }
    };
    let listening = agent.ensure_forwards(&forwards, bind, api).await?;
    let o = options(g, Sink::Stdout);
    for f in listening {
        let event = Event::Listening {
            name: f.name,
            local: f.local,
            target: f.target,
            url: f.url,
            route: f.route,
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
    remote: &Remote,
    listeners: &mut [Listening],
    via: Via,
    dialer: &dyn Dialer,
) -> Result<Option<Plan>, Error> {
    let mut api = HashSet::new();
    for l in listeners.iter_mut() {
        if let Some(target) = api_target(&l.forward, via, dialer).await {
            l.route = Route::Api;
            api.insert(target);
        }
    }
    if api.is_empty() {
        return Ok(None);
    }
    let chosen = api_kubeconfig(profile, remote).await?;
    Ok(Some(Plan {
        options: chosen.options(),
        kubeconfig: chosen.kubeconfig,
        namespace: NAMESPACE.to_string(),
        api_targets: Arc::new(api),
    }))
}

/// Where bare Service names are looked up on the API route.
const NAMESPACE: &str = "paragon";

/// `f`'s target when it takes the API route (`--via`, else its service's `via`, decided by
/// `route::choose` over `dialer`).
async fn api_target(f: &Forward, via: Via, dialer: &dyn Dialer) -> Option<(String, u16)> {
    let Target::Tunnel { host, port } = &f.target else {
        return None;
    };
    let via = match (via, &f.service) {
        (Via::Auto, Some(s)) => s.via,
        (v, _) => v,
    };
    (route::choose(dialer, via, host, *port).await == Route::Api).then(|| (host.clone(), *port))
}

/// The kubeconfig of the API route: the profile's, else the bastion's own (fetched into
/// memory through `remote`).
async fn api_kubeconfig(profile: &Resolved, remote: &Remote) -> Result<Chosen, Error> {
    let needs = |e: Error| e.context("the API route needs a kubeconfig");
    let decision = crate::kube::source::decide(
        Default::default(),
        Some(super::profile_kube(profile)),
        false,
    )
    .map_err(|e| needs(e.into()))?;
    match decision.origin.file() {
        Some(_) => decision.load(None).await,
        None => decision.load(Some(remote)).await,
    }
    .map_err(|e| needs(e.into()))
}

/// The exit status of a command interrupted before it could start serving.
pub(super) const INTERRUPTED: u8 = 130;

/// How events are shown: JSON lines, or lines for people (with a live status on a terminal).
pub(super) fn options(g: &Globals, sink: Sink) -> Options {
    Options::for_output(g.output == Format::Json, g.quiet, sink)
}
