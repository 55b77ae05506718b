//! `paragon-admin forward`: local ports into the private network through the bastion.
//!
//! In the foreground the connections are dialed through the profile's agent when it wants one
//! (its session followed by `forward::kept`), else over a session of this command's own
//! (`--no-agent`, `persist = 0`), as `agent::reach` says; routes as `forward::plan` chooses.

use crate::agent;
use crate::agent::proto::ApiRoute;
use crate::agent::reach::{Reach, reach};
use crate::cli::{ForwardArgs, Globals};
use crate::config::{Resolved, Via};
use crate::exit::{Error, INTERRUPTED};
use crate::forward::plan::{self, ApiBecause, api_kubeconfig, api_target};
use crate::forward::{self, Event, Forward, ForwardError, Shutdown, Sink};
use crate::output::Format;

pub async fn run(g: &Globals, args: ForwardArgs) -> Result<u8, Error> {
    let profile = super::resolve_profile(g)?;
    if args.list {
        return list(g, &profile).await;
    }
    if let Some(name) = &args.stop {
        return stop(g, &profile, name).await;
    }
    let stable = |name: &str| {
        crate::state::Ports::user()?.stable_port(&profile.state_key(), &profile.name, name)
    };
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
    let Some(reach) = reach(&profile, g.no_agent, &mut shutdown).await? else {
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
    let kubeconfig = async {
        let chosen = api_kubeconfig(&profile, &remote).await?;
        Ok((chosen.kubeconfig.clone(), chosen.options()))
    };
    let (first, connect) =
        plan::route(&mut listeners, args.via, first, connect, kubeconfig).await?;
    let fatal = forward::run(
        listeners,
        first,
        move || connect(),
        super::forward_options(g, Sink::Stdout),
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
    let mut asked = false;
    for f in &forwards {
        if let Some((target, because)) = api_target(f, via, &agent).await {
            targets.push(target);
            asked |= because == ApiBecause::Asked;
        }
    }
    let api = match targets.is_empty() {
        true => None,
        false => match api_kubeconfig(profile, &agent).await {
            Ok(chosen) => Some(Box::new(ApiRoute {
                context: chosen.context.clone(),
                api_server: chosen.api_server.clone(),
                kubeconfig: chosen.kubeconfig,
                namespace: crate::kube::NAMESPACE.to_string(),
                targets,
            })),
            Err(e) if plan::falls_back(&targets, asked, &e) => None,
            Err(e) => return Err(e),
        },
    };
    let listening = agent.ensure_forwards(&forwards, bind, api).await?;
    let o = super::forward_options(g, Sink::Stdout);
    for f in listening {
        // Said on stderr, so a second --detach to the same target is never silent.
        if !g.quiet {
            if f.already {
                eprintln!(
                    "paragon-admin: {} was detached already on {}: kept as it is",
                    f.name, f.local
                );
            } else if let Some(was) = f.replaced {
                eprintln!(
                    "paragon-admin: {} was detached on {was}: replaced, now on {}",
                    f.name, f.local
                );
            }
        }
        let event = Event::Listening {
            name: f.name,
            local: f.local,
            target: f.target,
            url: f.url,
            route: f.route,
            protocol: f.protocol,
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
        Format::Table => crate::output::print_table(&agent::forwards_table(&forwards))?,
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
