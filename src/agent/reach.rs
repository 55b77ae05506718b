//! How a foreground command reaches the bastion: through the profile's agent (started when
//! none runs; its session followed by `forward::kept`, not duplicated, so a warm agent means
//! no new SSH connection), else with a session of the command's own (`--no-agent`,
//! `persist = 0`), as before the agent. `forward` and `kubeconfig` serve their forwards over
//! it; `api` is the API forward the agent holds for `kubeconfig --write` and
//! `kube-credential`. Knows nothing of clap.

use std::sync::Arc;

use tokio::sync::watch;

use crate::config::Resolved;
use crate::dial::Dialer;
use crate::exit::Error;
use crate::forward::bastion::{connect_or_interrupt, reconnect, session};
use crate::forward::kept::{self, Follow, Kept, Pace};
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
    let follow = agent_follow(started.clone());
    let pace = Pace::default();
    let connect: Connect =
        Arc::new(move || Box::pin(kept::connect(dialer.clone(), follow.clone(), pace)));
    let first = tokio::select! {
        s = connect() => s.map_err(|f| Error::with_status(f.status, f.message))?,
        () = shutdown.requested() => return Ok(None),
    };
    Ok(Some(Reach {
        first,
        connect,
        remote: Remote::Agent(started),
    }))
}

/// The agent's session as `kept` follows it: watched over the agent's socket. Opening a
/// watch starts an agent that went away (killed, `agent stop`); one that cannot be started is
/// the error.
///
/// One watch serves the forward while the agent lives: a session that ended (the agent
/// reconnecting) waits on the same watch, which also keeps a closed session's verdict (a
/// changed host key) for the next "connect" to report. A new watch is opened only when the
/// last one ended with the agent.
fn agent_follow(agent: Agent) -> Follow {
    let last: Arc<std::sync::Mutex<Option<watch::Receiver<Kept>>>> = Arc::default();
    Arc::new(move || {
        let (agent, last) = (agent.clone(), last.clone());
        Box::pin(async move {
            let live = last.lock().ok().and_then(|l| {
                l.as_ref()
                    .filter(|rx| {
                        rx.has_changed().is_ok() || matches!(*rx.borrow(), Kept::Closed { .. })
                    })
                    .cloned()
            });
            if let Some(rx) = live {
                return Ok(rx);
            }
            let rx = agent.watch().await.map_err(|e| e.to_string())?;
            if let Ok(mut l) = last.lock() {
                *l = Some(rx.clone());
            }
            Ok(rx)
        })
    })
}
