//! `paragon-admin agent status|stop|run`: the kept connection of a profile, glue over `agent`.

use crate::agent::{self, AgentStatus};
use crate::cli::{AgentAction, Globals};
use crate::exit::Error;
use crate::output::{self, Format};

pub async fn run(g: &Globals, action: &AgentAction) -> Result<u8, Error> {
    match action {
        AgentAction::Run => {
            let profile = super::resolve_profile(g)?;
            Ok(agent::server::run(profile).await)
        }
        AgentAction::Status => status(g).await,
        AgentAction::Stop { all: false } => {
            let profile = super::resolve_profile(g)?;
            let stopped = match agent::find(&profile).await? {
                Some(a) => a.stop().await?,
                None => false,
            };
            if !stopped && !g.quiet {
                eprintln!("paragon-admin: no agent runs for profile {}", profile.name);
            }
            Ok(0)
        }
        AgentAction::Stop { all: true } => {
            for (name, socket) in agent::paths::all_sockets()? {
                if agent::client::stop_socket(&socket).await? && !g.quiet {
                    eprintln!("paragon-admin: stopped the agent of profile {name}");
                }
            }
            Ok(0)
        }
    }
}

async fn status(g: &Globals) -> Result<u8, Error> {
    let profile = super::resolve_profile(g)?;
    let Some(a) = agent::find(&profile).await? else {
        return Err(agent::AgentError::NotRunning {
            profile: profile.name,
        }
        .into());
    };
    let s = a.status().await?;
    match g.output {
        Format::Json => output::print_json(&s)?,
        Format::Table => print_status(&s)?,
    }
    Ok(0)
}

fn print_status(s: &AgentStatus) -> std::io::Result<()> {
    let mut t = output::table([
        "PROFILE",
        "BASTION",
        "PID",
        "UP SINCE",
        "RECONNECTS",
        "CHANNELS",
    ]);
    let bastion = if s.connected {
        s.bastion.clone()
    } else {
        format!("{} (down)", s.bastion)
    };
    t.add_row([
        s.profile.clone(),
        bastion,
        s.pid.to_string(),
        s.up_since.clone(),
        match s.renewals {
            0 => s.reconnects.to_string(),
            n => format!("{} ({n} renewed)", s.reconnects),
        },
        format!("{} open, {} held", s.channels_open, s.channels_held),
    ]);
    output::print_table(&t)?;
    if !s.forwards.is_empty() {
        println!();
        output::print_table(&agent::forwards_table(&s.forwards))?;
    }
    Ok(())
}
