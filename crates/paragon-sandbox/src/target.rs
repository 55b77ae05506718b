//! The pod a port-forward reaches: where its ports are served (the sandbox's loopback
//! backends), and what the kubelet says when one is not. Shared by the WebSocket channels
//! (`portforward`) and SPDY (`spdy`); knows nothing of either protocol.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::backends::Backends;

/// The pod a port-forward reaches: where its ports are served, and what to say when one is
/// not.
#[derive(Clone)]
pub(crate) struct Target {
    pub pod: String,
    pub uid: String,
    /// Whether the pod is still there (a replaced pod is deleted).
    pub exists: Arc<dyn Fn() -> bool + Send + Sync>,
    pub app: String,
    pub backends: Arc<Backends>,
    /// Cancelled when the sandbox stops: ends every forwarded connection.
    pub stopped: CancellationToken,
    /// A port-forward with no traffic either way for this long is closed (the kubelet's
    /// `streamingConnectionIdleTimeout`).
    pub idle: Duration,
}

impl Target {
    /// Connects to the pod's `port`, or says why not in the kubelet's words.
    pub(crate) async fn open(&self, port: u16) -> Result<TcpStream, String> {
        let fail = |why: &str| {
            format!(
                "error forwarding port {port} to pod {}, uid {}: failed to connect to localhost:{port} inside the pod: {why}",
                self.pod, self.uid
            )
        };
        if !(self.exists)() {
            return Err(fail("the pod's sandbox is gone (the pod was deleted)"));
        }
        let addr: SocketAddr = self
            .backends
            .addr(&self.app, port)
            .ok_or_else(|| fail("connection refused"))?;
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| fail(&e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }
}
