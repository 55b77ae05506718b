//! What the API server's request handlers share: the world (swapped whole when a pod is
//! replaced), the bearer token, the faults switched on and the pods' backends. Knows nothing of
//! routing or of how answers are written.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::Request;
use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use tokio_util::sync::CancellationToken;

use super::api_faults::ApiFaults;
use super::backends::Backends;
use super::store::World;
use super::tls::Token;

/// What the request handlers share.
#[derive(Debug)]
pub(crate) struct Api {
    /// Swapped whole when a pod is replaced (`replace`); readers keep the one they took.
    pub world: std::sync::RwLock<Arc<World>>,
    /// The loopback servers standing in for the monitoring pods (`pods/portforward`).
    pub backends: Arc<Backends>,
    pub token: Token,
    pub addr: SocketAddr,
    /// Cancelled when the sandbox stops; ends the watches.
    pub stopped: CancellationToken,
    /// The `api-*` faults switched on.
    pub faults: ApiFaults,
    /// How long a port-forward may carry no traffic before it is closed (the kubelet's
    /// `streamingConnectionIdleTimeout`).
    pub streaming_idle_timeout: std::time::Duration,
    /// Whether `pods/portforward` accepts the SPDY tunnel (`SandboxOptions`).
    pub portforward_tunnel: bool,
    /// The `log-secrets` fault: pod logs carry the planted secrets.
    pub log_secrets: bool,
    /// Services whose pods report a share of their memory limit in `metrics.k8s.io`.
    pub memory_use: Vec<super::metrics::MemoryUse>,
}

impl Api {
    /// The world as it is now.
    pub(crate) fn world(&self) -> Arc<World> {
        match self.world.read() {
            Ok(w) => w.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub(crate) fn authorized(&self, req: &Request<Incoming>) -> bool {
        req.headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .is_some_and(|t| same_token(t, self.token.0.as_bytes()))
    }
}

/// Compares without stopping at the first difference, so timing tells nothing.
fn same_token(given: &[u8], want: &[u8]) -> bool {
    given.len() == want.len()
        && given
            .iter()
            .zip(want)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(same_token(b"abc", b"abc"));
        assert!(!same_token(b"abd", b"abc"));
        assert!(!same_token(b"ab", b"abc"));
    }
}
