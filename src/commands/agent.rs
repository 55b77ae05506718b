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
                None => None,
            };
            match stopped {
                Some(s) if !g.quiet => eprintln!("paragon-admin: {}", said(&s, &profile.name)),
                None if !g.quiet => {
                    eprintln!("paragon-admin: no agent runs for profile {}", profile.name);
                }
                _ => {}
            }
            Ok(0)
        }
        AgentAction::Stop { all: true } => {
            for socket in agent::paths::all_sockets()? {
                if let Some(s) = agent::client::stop_socket(&socket).await?
                    && !g.quiet
                {
                    let name = s.profile.clone().unwrap_or_else(|| "?".to_string());
                    eprintln!("paragon-admin: {}", said(&s, &name));
                }
            }
            Ok(0)
        }
    }
}

/// What `agent stop` closed, in one line.
fn said(s: &agent::client::Stopped, profile: &str) -> String {
    let pid = s.pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
    let file = s
        .config
        .as_ref()
        .map(|c| format!(" of {c}"))
        .unwrap_or_default();
    if s.killed {
        return format!(
            "the agent of profile {profile}{file}{pid} did not answer: ended it by its pid"
        );
    }
    let forwards = match s.forwards {
        0 => String::new(),
        1 => ", and its detached forward".to_string(),
        n => format!(", and its {n} detached forwards"),
    };
    format!("stopped the agent of profile {profile}{file}{pid}{forwards}")
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
        "VERSION",
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
        since(&s.up_since),
        match s.renewals {
            0 => s.reconnects.to_string(),
            n => format!("{} ({n} renewed)", s.reconnects),
        },
        format!("{} open, {} held", s.channels_open, s.channels_held),
        match s.version.as_str() {
            "" => "(an older build)".to_string(),
            v => v.to_string(),
        },
    ]);
    output::print_table(&t)?;
    if !s.config.is_empty() {
        println!("config: {}", s.config);
    }
    if let Some(c) = &s.certificate {
        println!("certificate: {c}");
    }
    if !s.forwards.is_empty() {
        println!();
        output::print_table(&agent::forwards_table(&s.forwards))?;
    }
    Ok(())
}

/// An RFC 3339 time as local time to the second, with its age: `2026-12-07 03:40:12 (5m ago)`.
fn since(rfc3339: &str) -> String {
    let Ok(at) = rfc3339.parse::<jiff::Timestamp>() else {
        return rfc3339.to_string();
    };
    let local = at
        .to_zoned(jiff::tz::TimeZone::system())
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string();
    let secs = jiff::Timestamp::now().duration_since(at).as_secs().max(0);
    let age = match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    };
    format!("{local} ({age} ago)")
}
