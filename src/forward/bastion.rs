//! The SSH `Bastion` as the supervisor sees it: a connect function and a `Session` (its
//! dialer, and a future that resolves when it ends). The only place `forward` meets `ssh`.

use std::sync::Arc;

use crate::config::Resolved;
use crate::ssh::{Bastion, SshError};

use super::{Connect, Session, Shutdown};

/// A connected bastion as a supervised session.
pub fn session(bastion: Bastion) -> Session {
    let watcher = bastion.clone();
    Session {
        dialer: Arc::new(bastion),
        ended: Box::pin(async move { watcher.closed().await }),
    }
}

/// The connect function for `profile`'s bastion, which the supervisor calls to connect
/// again after the session ended.
pub fn reconnect(profile: Resolved) -> Connect {
    let profile = Arc::new(profile);
    Arc::new(move || {
        let profile = profile.clone();
        Box::pin(async move {
            Bastion::connect(&profile)
                .await
                .map(session)
                .map_err(SshError::into_failure)
        })
    })
}

/// The first connection, or `None` when SIGINT/SIGTERM came first.
pub async fn connect_or_interrupt(
    profile: &Resolved,
    shutdown: &mut Shutdown,
) -> Result<Option<Bastion>, SshError> {
    tokio::select! {
        b = Bastion::connect(profile) => b.map(Some),
        () = shutdown.requested() => Ok(None),
    }
}
