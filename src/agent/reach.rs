//! How a foreground command reaches the bastion: through the profile's agent (started when
//! none runs; its session followed by `forward::kept`, not duplicated, so a warm agent means
//! no new SSH connection), else with a session of the command's own (`--no-agent`,
//! `persist = 0`), as before the agent. `forward` and `kubeconfig` serve their forwards over
//! it; `api` is the API forward the agent holds for `kubeconfig --write` and
//! `kube-credential`. Knows nothing of clap.

use std::sync::Arc;

use crate::config::Resolved;
use crate::dial::Dialer;
use crate::exit::Error;
use crate::forward::bastion::{connect_or_interrupt, reconnect, session};
use crate::forward::kept::{self, Check, Kept, Pace};
use crate::forward::{Connect, Session, Shutdown};

use super::{Agent, Remote};

/// How a foreground forward reaches the bastion: its first session and what makes the next.
pub struct Reach {
    pub first: Session,
    pub connect: Connect,
    /// The agent, or this command's own SSH session (`--no-agent`, `persist = 0`).
    pub remote: Remote,
}

/// Reaches the bastion as the profile says (its agent unless `no_agent` or `persist = 0`).
/// `None` when SIGINT/SIGTERM came first.
pub async fn reach(
    profile: &Resolved,
    no_agent: bool,
    shutdown: &mut Shutdown,
) -> Result<Option<Reach>, Error> {
    if !super::wanted(profile, no_agent) {
        let Some(bastion) = connect_or_interrupt(profile, shutdown).await? else {
            return Ok(None);
        };
        return Ok(Some(Reach {
            first: session(bastion.clone()),
            connect: reconnect(profile.clone()),
            remote: Remote::Direct(bastion),
        }));
    }
    let started = tokio::select! {
        a = super::connect_or_start(profile) => a?,
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
