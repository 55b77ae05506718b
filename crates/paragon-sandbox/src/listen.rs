//! The loopback-only listeners of the demo's own servers (its SSH bastion and its web page):
//! bind one, or check one a caller bound, and stop what serves it. Nothing the sandbox
//! simulates may be reachable from another machine. It knows nothing of what is served.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("the {server} listens on loopback only, not on {addr}")]
    NotLoopback {
        server: &'static str,
        addr: SocketAddr,
    },
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read the listener's address")]
    LocalAddr(#[source] std::io::Error),
}

/// Binds `addr` for `server` (named in errors), which must be a loopback address; port 0
/// picks a free port.
pub(crate) async fn bind(
    server: &'static str,
    addr: SocketAddr,
) -> Result<TcpListener, ListenError> {
    if !addr.ip().is_loopback() {
        return Err(ListenError::NotLoopback { server, addr });
    }
    TcpListener::bind(addr)
        .await
        .map_err(|source| ListenError::Listen { addr, source })
}

/// The address of a listener a caller bound for `server`, refused unless it is on loopback.
pub(crate) fn loopback_addr(
    server: &'static str,
    listener: &TcpListener,
) -> Result<SocketAddr, ListenError> {
    let addr = listener.local_addr().map_err(ListenError::LocalAddr)?;
    if !addr.ip().is_loopback() {
        return Err(ListenError::NotLoopback { server, addr });
    }
    Ok(addr)
}

/// A server's accept task and the tasks it spawned (connections, forwards), all ended by one
/// token: dropping it stops them, `shutdown` also waits until they are gone.
#[derive(Debug)]
pub(crate) struct Serving {
    cancel: CancellationToken,
    tasks: TaskTracker,
    accept: Option<JoinHandle<()>>,
}

impl Serving {
    /// `accept` returns once `cancel` is cancelled; each of `tasks` watches `cancel` too.
    pub(crate) fn new(
        cancel: CancellationToken,
        tasks: TaskTracker,
        accept: JoinHandle<()>,
    ) -> Self {
        Serving {
            cancel,
            tasks,
            accept: Some(accept),
        }
    }

    /// Stops accepting, ends every task and waits until they are gone (and with the accept
    /// task, the listening socket).
    pub(crate) async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.accept.take() {
            let _ = task.await;
        }
        self.tasks.close();
        self.tasks.wait().await;
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(task) = self.accept.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_loopback_is_bound_or_accepted() {
        let e = bind("demo web page", "0.0.0.0:0".parse().unwrap())
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the demo web page listens on loopback only, not on 0.0.0.0:0"
        );
        let l = bind("demo web page", "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        assert!(loopback_addr("x", &l).unwrap().ip().is_loopback());
        let wide = TcpListener::bind("0.0.0.0:0").await.unwrap();
        assert!(matches!(
            loopback_addr("x", &wide),
            Err(ListenError::NotLoopback { .. })
        ));
    }
}
