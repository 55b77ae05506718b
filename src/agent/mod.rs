//! The kept connection: one background process per (config file, profile) that holds one authenticated SSH
//! session to the bastion (reconnecting with backoff, the host key checked every time), serves
//! the profile's later commands through a control socket (mode 0600 in a private folder, the
//! peer's uid checked on every connection), and holds detached forwards. It leaves when its
//! profile's `persist` time has passed since its last use, or when its socket is removed.
//!
//! `paths` says where it lives, `proto` what travels on the socket, `server` is the agent
//! itself (`keeper` its session, `forwards` its listeners, `uses` what keeps it from leaving),
//! `client` what commands call (a foreground forward's connections are handed over, socket
//! and all, through `handover`, and the agent copies them itself), `reach` how a foreground
//! forward reaches the bastion (through the agent or not), `api` the API forward the agent
//! holds for a written kubeconfig. It uses `ssh`, `forward` and `dial`; none of them knows of
//! it. It knows nothing of clap.

pub mod api;
pub mod client;
mod forwards;
mod handover;
mod keeper;
pub mod paths;
pub mod proto;
pub mod reach;
pub mod server;
mod uses;

use std::path::PathBuf;

use crate::config::Resolved;

pub use client::{Agent, Remote, connect_or_start, find};
pub use proto::{AgentStatus, DetachedForward};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("agent folder {}: {reason}", .path.display())]
    Folder { path: PathBuf, reason: String },
    #[error("cannot start the agent for profile {profile}: {cause}")]
    Spawn {
        profile: String,
        cause: std::io::Error,
    },
    #[error("the agent for profile {profile} ended before it was ready (its log: {})", .log.display())]
    Died { profile: String, log: PathBuf },
    /// What the agent relayed: the message and status the operation would have given here.
    #[error("{message}")]
    Relayed { message: String, status: u8 },
    #[error("agent socket {}: {cause}", .path.display())]
    Socket {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "the agent for profile {profile} gave an answer this command does not understand ({reason}): run `paragon-admin agent stop`"
    )]
    Protocol { profile: String, reason: String },
    /// A stopped (SIGSTOP) or wedged agent: every wait on it has a deadline.
    #[error(
        "the agent of {what}{} did not answer within {after}s: run `paragon-admin agent stop`, which ends it by its pid",
        .pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Silent {
        what: String,
        pid: Option<u32>,
        after: u64,
    },
    #[error("the agent for profile {profile} went away before the command ended")]
    Lost { profile: String },
    #[error("no agent runs for profile {profile}")]
    NotRunning { profile: String },
    #[error(transparent)]
    Ssh(#[from] crate::ssh::SshError),
}

impl crate::exit::ExitStatus for AgentError {
    /// A relayed error keeps its own status; a lost agent is a lost connection (255); an
    /// unsafe folder is the user's to fix (2); anything else failed here (1).
    fn exit_status(&self) -> u8 {
        match self {
            AgentError::Relayed { status, .. } => *status,
            AgentError::Lost { .. } => crate::exit::UNREACHABLE,
            AgentError::Folder { .. } => crate::exit::USAGE,
            AgentError::Ssh(e) => e.exit_status(),
            AgentError::Spawn { .. }
            | AgentError::Died { .. }
            | AgentError::Socket { .. }
            | AgentError::Protocol { .. }
            | AgentError::Silent { .. }
            | AgentError::NotRunning { .. } => crate::exit::FAILED,
        }
    }
}

/// Whether the profile's commands go through its agent: `persist` is not 0, and `--no-agent`
/// was not given.
pub fn wanted(profile: &Resolved, no_agent: bool) -> bool {
    !no_agent && !profile.settings.persist.0.is_zero()
}

/// The detached forwards as a table (`agent status`, `forward --list`).
pub fn forwards_table(forwards: &[DetachedForward]) -> comfy_table::Table {
    let mut t =
        crate::output::table(["NAME", "LOCAL", "TARGET", "CONNECTIONS", "SENT", "RECEIVED"]);
    for f in forwards {
        t.add_row([
            f.name.clone(),
            f.url.clone(),
            match (&f.target, f.protocol) {
                (Some(t), Some(p)) => format!("{t} (API, {})", p.name()),
                (Some(t), None) => t.clone(),
                (None, _) => "socks".to_string(),
            },
            format!("{} ({} open)", f.connections, f.open),
            crate::forward::status::bytes(f.sent),
            crate::forward::status::bytes(f.received),
        ]);
    }
    t
}

/// The settings a session depends on, hashed: an agent whose session was made with other
/// settings refuses the request, and the client replaces it. known_hosts counts by its path;
/// a change to its contents (a key removed, changed, revoked: or only another host added by
/// OpenSSH) has the agent check the key again with a new connection
/// (`Keeper::recheck_known_hosts`), without replacing the agent and its forwards.
pub fn fingerprint(profile: &Resolved) -> String {
    let s = &profile.settings;
    let text = format!(
        "{}\n{}\n{}\n{:?}\n{:?}\n{}\n{}\n{:?}\n{:?}\n{}\n{}\n{}",
        s.host.0,
        s.port.0,
        profile.user,
        profile.identity_file,
        profile.certificate_file,
        profile.known_hosts.display(),
        s.strict_host_key_checking,
        s.hash_known_hosts,
        s.proxy_jump.as_ref().map(ToString::to_string),
        s.keepalive_interval,
        s.connect_timeout.0,
        s.persist.0.as_secs(),
    );
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(extra: &str) -> Resolved {
        let text = format!("[profiles.p]\nhost = \"b.example\"\nuser = \"ops\"\n{extra}");
        let file: crate::config::ConfigFile = toml::from_str(&text).unwrap();
        let p = file.profiles["p"].clone();
        Resolved::new("p".into(), "/tmp/c.toml".into(), p).unwrap()
    }

    #[test]
    fn the_fingerprint_changes_with_what_the_session_depends_on() {
        let base = fingerprint(&profile(""));
        assert_eq!(base, fingerprint(&profile("")));
        for changed in [
            "port = 2222",
            "known_hosts = \"/tmp/kh\"",
            "strict_host_key_checking = \"yes\"",
            "proxy_jump = \"j.example\"",
            "identity_file = \"/tmp/id\"",
        ] {
            assert_ne!(base, fingerprint(&profile(changed)), "{changed}");
        }
        // A service changes nothing the session depends on.
        let services = "[profiles.p.services.x]\ntarget = \"x:1\"";
        assert_eq!(base, fingerprint(&profile(services)));
    }

    #[test]
    fn persist_zero_and_no_agent_mean_direct() {
        assert!(wanted(&profile(""), false));
        assert!(!wanted(&profile(""), true));
        assert!(!wanted(&profile("persist = 0"), false));
    }
}
