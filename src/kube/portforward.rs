//! `Kube`, the third dialer: a Service port reached through the API server's
//! `pods/portforward`, for a bastion that reaches only the API server (Paragon's VM bastion:
//! there, Service names do not resolve and ClusterIPs do not route).
//!
//! `connect(service, port)` does what `kubectl port-forward svc/NAME PORT` does: read the
//! Service, pick a ready pod of its selector, map the service port to the pod's port (a
//! number, or a named container port), and connect to it as kubectl since 1.31 does: a pair
//! of SPDY streams in the pod's one kept WebSocket tunnel (`SPDY/3.1+portforward.k8s.io`,
//! `tunnel`), so a new connection costs no TLS handshake and upgrade through the bastion. An
//! API server that refuses the tunnel gets kube's WebSocket port-forward (`v4.channel.k8s.io`),
//! one per connection, from then on (`Protocols`). The chosen pod is remembered until a
//! connection to it fails; then the Service is resolved again, so a replaced pod (a rollout,
//! the daily restart) is followed. A tunnel the kubelet closes (its streaming idle timeout)
//! ends the connections in it cleanly, and the next connection opens a new one. A
//! connection the pod refuses (the kubelet's message on the error stream) reads as an error
//! of kind `ConnectionRefused` carrying that message, not as an empty answer.
//!
//! The `kube::Client` it is given already dials the API server through a `Dialer` (the SSH
//! session to the bastion); this module knows nothing of SSH, forwards or health.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

use super::tunnel::{OpenError, Tunnel};
use crate::dial::{self, BoxStream, DialError, DialFuture, Dialer};

/// How a connection reaches a service: dialed from the bastion, or through the API server's
/// `pods/portforward` (this dialer). Forwards and health findings announce it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    #[default]
    Bastion,
    Api,
}

/// Connections to Service ports through `pods/portforward`.
#[derive(Clone)]
pub struct Kube {
    client: kube::Client,
    namespace: String,
    via: String,
    timeout: Duration,
    /// The last pod each `host:port` was forwarded to: (namespace, pod, pod port). Used
    /// until a port-forward to it fails (the pod is gone), then resolved again.
    chosen: Arc<Mutex<HashMap<(String, u16), PodPort>>>,
    /// The kept SPDY tunnel of each pod (namespace, pod) connections go to.
    tunnels: Arc<tokio::sync::Mutex<Tunnels>>,
    /// Which protocol connections take (shared by the dialers of one API server).
    protocols: Protocols,
}

/// Which protocol the API route's connections take: the tunnel until the API server refuses
/// it, then one WebSocket per connection. Shared by every `Kube` of one API server (each
/// session to the bastion has its own), so a refusal is learned once.
#[derive(Clone, Default)]
pub struct Protocols(Arc<AtomicBool>);

impl Protocols {
    pub fn current(&self) -> Protocol {
        if self.0.load(Ordering::Relaxed) {
            Protocol::WebSocketV4
        } else {
            Protocol::SpdyTunnel
        }
    }

    fn tunnel_refused(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn refuse_tunnel(&self, why: &str) {
        tracing::info!(
            "api route: {why}; one WebSocket (v4.channel.k8s.io) per connection instead"
        );
        self.0.store(true, Ordering::Relaxed);
    }
}

/// How the API route's connections travel to the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// SPDY streams in one kept WebSocket per pod (`SPDY/3.1+portforward.k8s.io`), as
    /// kubectl since 1.31: a new connection is a new pair of streams.
    #[serde(rename = "spdy-websocket")]
    SpdyTunnel,
    /// One WebSocket per connection (`v4.channel.k8s.io`): for an API server that refuses
    /// the tunnel.
    #[serde(rename = "websocket-v4")]
    WebSocketV4,
}

impl Protocol {
    /// How the listening line and `forward --list` name it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::SpdyTunnel => "SPDY over WebSocket",
            Protocol::WebSocketV4 => "WebSocket v4",
        }
    }
}

/// A pod's port: (namespace, pod, port).
type PodPort = (String, String, u16);

/// The kept tunnels, by (namespace, pod).
type Tunnels = HashMap<(String, String), Arc<Tunnel>>;

impl Kube {
    /// `namespace` is where bare Service names (`grafana`) are looked up; `via` says how the
    /// API server is reached, for messages (`bastion b:22`).
    pub fn new(client: kube::Client, namespace: impl Into<String>, via: impl Into<String>) -> Self {
        Kube {
            client,
            namespace: namespace.into(),
            via: via.into(),
            timeout: Duration::from_secs(20),
            chosen: Arc::default(),
            tunnels: Arc::default(),
            protocols: Protocols::default(),
        }
    }

    /// Shares what `protocols` knows of the API server (and what this dialer learns).
    pub fn sharing(mut self, protocols: Protocols) -> Self {
        self.protocols = protocols;
        self
    }

    /// The protocol new connections take: the tunnel until the API server refuses it.
    pub fn protocol(&self) -> Protocol {
        self.protocols.current()
    }

    /// Resolves `host:port` and opens its pod's tunnel ahead of the first connection, and
    /// says which protocol connections will take (the tunnel, or the v4 fallback when the
    /// API server refuses it). A failure here is left to the first connection to report.
    pub async fn prepare(&self, host: &str, port: u16) -> Protocol {
        let prepared = tokio::time::timeout(self.timeout, async {
            let (namespace, pod, pod_port) = self.resolve(host, port).await?;
            if !self.protocols.tunnel_refused() {
                match self.tunnel(&namespace, &pod).await {
                    Ok(_) => {}
                    Err(OpenError::Refused(why)) => self.protocols.refuse_tunnel(&why),
                    Err(OpenError::Failed(why)) => return Err(why),
                }
            }
            if let Ok(mut c) = self.chosen.lock() {
                c.insert((host.to_string(), port), (namespace, pod, pod_port));
            }
            Ok::<_, String>(())
        })
        .await;
        if let Ok(Err(why)) = prepared {
            tracing::debug!("api route: {host}:{port} not prepared: {why}");
        }
        self.protocol()
    }

    /// The live tunnel to `namespace/pod`, opened when there is none.
    async fn tunnel(&self, namespace: &str, pod: &str) -> Result<Arc<Tunnel>, OpenError> {
        let key = (namespace.to_string(), pod.to_string());
        let mut tunnels = self.tunnels.lock().await;
        if let Some(t) = tunnels.get(&key).filter(|t| !t.is_closed()) {
            return Ok(t.clone());
        }
        tunnels.retain(|_, t| !t.is_closed());
        let t = Arc::new(Tunnel::open(&self.client, namespace, pod).await?);
        tracing::debug!(pod = %format!("{namespace}/{pod}"), "api route: SPDY tunnel open");
        tunnels.insert(key, t.clone());
        Ok(t)
    }

    /// A connection to `pod_port` as a pair of streams on the pod's tunnel (a new tunnel
    /// when the kept one has ended).
    async fn tunneled(
        &self,
        namespace: &str,
        pod_name: &str,
        pod_port: u16,
    ) -> Result<BoxStream, OpenError> {
        for _ in 0..2 {
            let tunnel = self.tunnel(namespace, pod_name).await?;
            if let Some((stream, error)) = tunnel.connect(pod_port).await {
                let error = self.forget_pod_on_failure(namespace, pod_name, error);
                return Ok(Box::new(PodStream::new(stream, Some(error), None)));
            }
        }
        Err(OpenError::Failed(format!(
            "port-forward to pod {namespace}/{pod_name}: the tunnel ended as it opened"
        )))
    }

    /// The deadline for resolving the Service and opening the port-forward.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn open(&self, host: &str, port: u16) -> Result<BoxStream, String> {
        let key = (host.to_string(), port);
        let cached = self.chosen.lock().ok().and_then(|c| c.get(&key).cloned());
        if let Some((namespace, pod, pod_port)) = cached {
            match self.forward(&namespace, &pod, pod_port).await {
                Ok(s) => return Ok(s),
                Err(e) => tracing::debug!("api route: {e}; choosing a pod again"),
            }
        }
        let (namespace, pod, pod_port) = self.resolve(host, port).await?;
        let stream = self.forward(&namespace, &pod, pod_port).await?;
        if let Ok(mut c) = self.chosen.lock() {
            c.insert(key, (namespace, pod, pod_port));
        }
        Ok(stream)
    }

    /// What `kubectl port-forward svc/NAME PORT` would forward to: (namespace, pod, port).
    async fn resolve(&self, host: &str, port: u16) -> Result<PodPort, String> {
        let (name, namespace) = service_of(host).ok_or_else(|| {
            format!("`{host}` is not a Service name (SERVICE[.NAMESPACE[.svc.cluster.local]])")
        })?;
        let namespace = namespace.unwrap_or(&self.namespace);
        let services: Api<Service> = Api::namespaced(self.client.clone(), namespace);
        let service = services
            .get_opt(name)
            .await
            .map_err(|e| {
                format!(
                    "cannot read Service {namespace}/{name}: {}",
                    super::one_line(&e)
                )
            })?
            .ok_or_else(|| format!("no Service {namespace}/{name}"))?;
        let spec = service.spec.unwrap_or_default();
        let selector = spec.selector.unwrap_or_default();
        if selector.is_empty() {
            return Err(format!(
                "Service {namespace}/{name} has no selector: no pod to forward to"
            ));
        }
        let target = spec
            .ports
            .unwrap_or_default()
            .into_iter()
            .find(|p| p.port == i32::from(port))
            .map(|p| p.target_port)
            .ok_or_else(|| format!("Service {namespace}/{name} has no port {port}"))?;
        let mut selector: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
        selector.sort();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let list = pods
            .list(&ListParams::default().labels(&selector.join(",")))
            .await
            .map_err(|e| {
                format!(
                    "cannot list the pods of Service {namespace}/{name}: {}",
                    super::one_line(&e)
                )
            })?;
        let pod = ready_pod(list.items)
            .ok_or_else(|| format!("Service {namespace}/{name} has no ready pod"))?;
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let pod_port = pod_port(&pod, target.as_ref(), port)?;
        Ok((namespace.to_string(), pod_name, pod_port))
    }

    /// `error`, which also forgets the pod and its tunnel when the kubelet's message is not a
    /// refused port (the pod is gone: a replaced pod's tunnel stays open, its new streams
    /// fail), so the next connection resolves the Service again.
    fn forget_pod_on_failure(&self, namespace: &str, pod: &str, error: ErrorFuture) -> ErrorFuture {
        let (chosen, tunnels) = (self.chosen.clone(), self.tunnels.clone());
        let key = (namespace.to_string(), pod.to_string());
        Box::pin(async move {
            let message = error.await;
            if let Some(m) = &message
                && refusal(m.clone()).kind() != io::ErrorKind::ConnectionRefused
            {
                tracing::debug!("api route: {m}; choosing a pod again");
                if let Ok(mut c) = chosen.lock() {
                    c.retain(|_, (n, p, _)| (n.as_str(), p.as_str()) != (&key.0, &key.1));
                }
                tunnels.lock().await.remove(&key);
            }
            message
        })
    }

    /// A connection to `pod_port` of `namespace/pod_name`: on the pod's tunnel, or (an API
    /// server that refuses it) a port-forward of its own.
    async fn forward(
        &self,
        namespace: &str,
        pod_name: &str,
        pod_port: u16,
    ) -> Result<BoxStream, String> {
        if !self.protocols.tunnel_refused() {
            match self.tunneled(namespace, pod_name, pod_port).await {
                Ok(s) => return Ok(s),
                Err(OpenError::Refused(why)) => self.protocols.refuse_tunnel(&why),
                Err(OpenError::Failed(why)) => return Err(why),
            }
        }
        self.forward_v4(namespace, pod_name, pod_port).await
    }

    /// A port-forward of its own to `pod_port` of `namespace/pod_name`
    /// (`v4.channel.k8s.io`).
    async fn forward_v4(
        &self,
        namespace: &str,
        pod_name: &str,
        pod_port: u16,
    ) -> Result<BoxStream, String> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let mut forwarder = pods.portforward(pod_name, &[pod_port]).await.map_err(|e| {
            format!(
                "port-forward to pod {namespace}/{pod_name}: {}",
                super::one_line(&e)
            )
        })?;
        let stream = forwarder
            .take_stream(pod_port)
            .ok_or_else(|| format!("port-forward to pod {namespace}/{pod_name} gave no stream"))?;
        let error = forwarder.take_error(pod_port);
        let what = format!("{namespace}/{pod_name}:{pod_port}");
        tracing::debug!(pod = %what, "api route: port-forward open");
        // The forwarder's task carries the bytes; it ends when either side closes.
        tokio::spawn(async move {
            if let Err(e) = forwarder.join().await {
                tracing::debug!(pod = %what, "api route: port-forward ended: {e}");
            }
        });
        let (client, namespace, pod_name) = (
            self.client.clone(),
            namespace.to_string(),
            pod_name.to_string(),
        );
        let probe: Probe = Box::new(move || {
            Box::pin(async move { refusal_of(client, &namespace, &pod_name, pod_port).await })
        });
        Ok(Box::new(PodStream::new(
            stream,
            error.map(|e| Box::pin(e) as ErrorFuture),
            Some(probe),
        )))
    }
}

/// How long a probe waits for the kubelet's word: a refusal comes at once (the kubelet tries
/// the pod's port as the port-forward opens); a port that accepted says nothing.
const PROBE_WAIT: Duration = Duration::from_secs(2);

/// The kubelet's refusal of `pod_port`, asked with a port-forward that writes nothing, or
/// `None` when the port accepted (no word within `PROBE_WAIT`) or no port-forward opened.
///
/// Why: a port-forward that carried a request can lose the kubelet's message. kube's
/// forwarder ends with an error when it sends our bytes after reading the server's close
/// (its error message still queued behind them), and a server that closes with our bytes
/// unread resets the connection. A port-forward that writes nothing meets neither.
async fn refusal_of(
    client: kube::Client,
    namespace: &str,
    pod_name: &str,
    pod_port: u16,
) -> Option<String> {
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    let mut forwarder = pods.portforward(pod_name, &[pod_port]).await.ok()?;
    let error = forwarder.take_error(pod_port)?;
    let message = tokio::time::timeout(PROBE_WAIT, error).await.ok().flatten();
    forwarder.abort();
    message
}

/// The kubelet's message on a port's error channel, once it arrives (`None`: closed without).
type ErrorFuture = Pin<Box<dyn Future<Output = Option<String>> + Send>>;

/// Asks the kubelet again, on a port-forward of its own, whether the pod refuses the port
/// (`refusal_of`).
type Probe = Box<dyn FnOnce() -> ErrorFuture + Send>;

/// A port-forwarded stream whose end says why when the kubelet wrote a failure (nothing
/// listening in the pod): the reader gets that message as an error instead of a bare end,
/// so a refused port reads as refused wherever the stream goes (a health probe, a forward's
/// log).
struct PodStream<S = DuplexStream> {
    inner: S,
    error: Option<ErrorFuture>,
    /// Started at the stream's end while the kubelet's message may still be on its way.
    grace: Option<Pin<Box<tokio::time::Sleep>>>,
    /// For an end that carried nothing and whose error channel closed without a word (the
    /// forwarder failed before it handed the message over): asks the kubelet again.
    probe: Option<Probe>,
    probing: Option<ErrorFuture>,
    /// Whether the pod sent a byte: after one, an end is an end and needs no probe.
    answered: bool,
}

/// How long the end of a stream waits for the kubelet's message when the forwarder has not
/// handed it over yet. The kubelet finishes the error stream before the data stream, so on
/// the tunnel the message is there first; kube's v4 forwarder hands it over from its own
/// task, which a loaded machine can run late. kubectl waits for the error stream without a
/// limit; this bounds a server that never ends it.
const ERROR_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

impl<S: AsyncRead + Unpin> AsyncRead for PodStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() == before => match self.ended(cx) {
                Poll::Ready(Some(refused)) => Poll::Ready(Err(refused)),
                Poll::Ready(None) => Poll::Ready(Ok(())),
                Poll::Pending => Poll::Pending,
            },
            Poll::Ready(Ok(())) => {
                self.answered = true;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(self.kubelet_error().unwrap_or(e))),
            other => other,
        }
    }
}

impl<S> PodStream<S> {
    fn new(inner: S, error: Option<ErrorFuture>, probe: Option<Probe>) -> Self {
        PodStream {
            inner,
            error,
            grace: None,
            probe,
            probing: None,
            answered: false,
        }
    }

    /// At the stream's end: the kubelet's failure if it wrote one, waiting for it at most
    /// `ERROR_GRACE` (the grace over is a plain end). An error channel closed without a
    /// message before the pod sent a byte is asked again (`probe`).
    fn ended(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Error>> {
        if let Some(probing) = self.probing.as_mut() {
            let Poll::Ready(message) = probing.as_mut().poll(cx) else {
                return Poll::Pending;
            };
            self.probing = None;
            return Poll::Ready(message.map(|m| {
                tracing::debug!("api route (asked again): {m}");
                refusal(m)
            }));
        }
        let Some(error) = self.error.as_mut() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(message) = error.as_mut().poll(cx) {
            self.error = None;
            if message.is_none()
                && !self.answered
                && let Some(probe) = self.probe.take()
            {
                tracing::debug!("api route: the port-forward ended without a word; asking again");
                self.probing = Some(probe());
                return self.ended(cx);
            }
            return Poll::Ready(message.map(|m| {
                tracing::debug!("api route: {m}");
                refusal(m)
            }));
        }
        let grace = self
            .grace
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(ERROR_GRACE)));
        match grace.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.error = None;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// The kubelet's failure, if it has arrived: the reason a read failed.
    fn kubelet_error(&mut self) -> Option<io::Error> {
        let error = self.error.as_mut()?;
        let message = match error
            .as_mut()
            .poll(&mut Context::from_waker(std::task::Waker::noop()))
        {
            Poll::Ready(Some(m)) => m,
            _ => return None,
        };
        self.error = None;
        tracing::debug!("api route: {message}");
        Some(refusal(message))
    }

    /// A write-side result, with a failure replaced by the kubelet's reason when there is one
    /// (a request written after the pod refused finds the stream already closed), asked
    /// again as at the end of reading. A write fails only once the forwarder has ended, so
    /// polling the write again while the reason is awaited fails the same way.
    fn explained<T>(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match r {
            Poll::Ready(Err(e)) => match self.ended(cx) {
                Poll::Ready(Some(refused)) => Poll::Ready(Err(refused)),
                Poll::Ready(None) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            },
            other => other,
        }
    }
}

/// The kubelet's failure as an I/O error: `ConnectionRefused` when nothing listens on the
/// pod's port (every kubelet's message then ends in `connection refused`), else aborted.
fn refusal(message: String) -> io::Error {
    let kind = if message.to_ascii_lowercase().contains("connection refused") {
        io::ErrorKind::ConnectionRefused
    } else {
        io::ErrorKind::ConnectionAborted
    };
    io::Error::new(kind, message)
}

impl<S: AsyncWrite + Unpin> AsyncWrite for PodStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.explained(cx, r)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.explained(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.explained(cx, r)
    }
}

impl Dialer for Kube {
    fn connect<'a>(&'a self, host: &'a str, port: u16) -> DialFuture<'a> {
        Box::pin(async move {
            let target = dial::target(host, port);
            match tokio::time::timeout(self.timeout, self.open(host, port)).await {
                Ok(Ok(s)) => Ok(s),
                // Refused: the forward and the health checks treat it as "nothing there".
                Ok(Err(reason)) => Err(DialError::Io {
                    target,
                    cause: io::Error::new(io::ErrorKind::ConnectionRefused, reason),
                }),
                Err(_) => Err(DialError::Timeout {
                    target,
                    after: self.timeout,
                }),
            }
        })
    }

    fn describe(&self) -> String {
        format!("the Kubernetes API (pods/portforward) via {}", self.via)
    }
}

/// `grafana`, `grafana.paragon`, `grafana.paragon.svc[.cluster.local]`: the Service and, if
/// given, its namespace. Anything else (an IP, `db.example.com`) is not a Service name.
pub fn service_of(host: &str) -> Option<(&str, Option<&str>)> {
    let labels: Vec<&str> = host.trim_end_matches('.').split('.').collect();
    let dns_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if !labels.iter().all(|l| dns_label(l)) || labels[0].bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match labels.as_slice() {
        [service] => Some((service, None)),
        [service, namespace] => Some((service, Some(namespace))),
        [service, namespace, "svc", rest @ ..] if rest.is_empty() || rest.len() == 2 => {
            Some((service, Some(namespace)))
        }
        _ => None,
    }
}

/// A running, ready pod not being deleted; the first by name, so the choice is stable while
/// the pods are.
fn ready_pod(mut pods: Vec<Pod>) -> Option<Pod> {
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    pods.into_iter().find(|p| {
        let status = p.status.as_ref();
        p.metadata.deletion_timestamp.is_none()
            && status.and_then(|s| s.phase.as_deref()) == Some("Running")
            && status
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    })
}

/// The pod port a service port's `targetPort` names, as kubectl maps it: absent means the
/// service port itself, a number is that port, a name is the container port of that name.
fn pod_port(pod: &Pod, target: Option<&IntOrString>, service_port: u16) -> Result<u16, String> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let number = |n: i32| {
        u16::try_from(n)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("target port {n} of pod {name} is not a TCP port"))
    };
    match target {
        None => Ok(service_port),
        Some(IntOrString::Int(n)) => number(*n),
        Some(IntOrString::String(port_name)) => pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(port_name.as_str()))
            .map(|p| number(p.container_port))
            .unwrap_or_else(|| {
                Err(format!(
                    "pod {name} has no container port named `{port_name}`"
                ))
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_and_their_namespaces() {
        assert_eq!(service_of("grafana"), Some(("grafana", None)));
        assert_eq!(
            service_of("grafana.paragon"),
            Some(("grafana", Some("paragon")))
        );
        assert_eq!(
            service_of("grafana.paragon.svc.cluster.local"),
            Some(("grafana", Some("paragon")))
        );
        assert_eq!(
            service_of("grafana.paragon.svc"),
            Some(("grafana", Some("paragon")))
        );
        assert_eq!(service_of("postgres.paragon.internal"), None);
        assert_eq!(service_of("10.0.0.1"), None);
        assert_eq!(service_of("Grafana"), None);
        assert_eq!(service_of(""), None);
    }

    /// A pod stream over `inner` whose error channel closed without a word, and whose probe
    /// answers `asked_again` (counting how often it is asked).
    fn wordless(
        inner: tokio::io::DuplexStream,
        asked_again: Option<&'static str>,
    ) -> (PodStream, Arc<std::sync::atomic::AtomicUsize>) {
        let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = asked.clone();
        let probe: Probe = Box::new(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(std::future::ready(asked_again.map(String::from)))
        });
        let closed: ErrorFuture = Box::pin(std::future::ready(None));
        (PodStream::new(inner, Some(closed), Some(probe)), asked)
    }

    const REFUSED: &str = "error forwarding port 5601 to pod kibana-0, uid u: failed to connect to localhost:5601 inside the pod: connection refused";

    #[tokio::test]
    async fn an_end_without_the_kubelets_word_asks_again_and_reads_as_its_refusal() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // Read side: the forwarder ended (its error sender dropped) before the pod sent a byte.
        let (inner, far) = tokio::io::duplex(64);
        drop(far);
        let (mut s, asked) = wordless(inner, Some(REFUSED));
        let e = s.read_to_end(&mut Vec::new()).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
        assert!(e.to_string().contains("inside the pod"), "{e}");
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1);

        // Write side: the request finds the forwarder gone; its failure is the refusal too.
        let (inner, far) = tokio::io::duplex(64);
        drop(far);
        let (mut s, _) = wordless(inner, Some(REFUSED));
        let e = s.write_all(b"GET / HTTP/1.1\r\n").await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");

        // A port that accepted when asked again: the end stays a plain end.
        let (inner, far) = tokio::io::duplex(64);
        drop(far);
        let (mut s, asked) = wordless(inner, None);
        assert_eq!(s.read_to_end(&mut Vec::new()).await.unwrap(), 0);
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_end_after_the_pod_answered_is_not_asked_again() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (inner, mut far) = tokio::io::duplex(64);
        far.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        drop(far);
        let (mut s, asked) = wordless(inner, Some(REFUSED));
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    fn pod(name: &str, ready: bool, ports: &[(&str, i32)]) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": name },
            "spec": { "containers": [{ "name": "c", "ports": ports.iter()
                .map(|(n, p)| serde_json::json!({ "name": n, "containerPort": p }))
                .collect::<Vec<_>>() }] },
            "status": { "phase": "Running", "conditions": [
                { "type": "Ready", "status": if ready { "True" } else { "False" } }
            ] }
        }))
        .unwrap()
    }

    #[test]
    fn the_first_ready_pod_is_chosen() {
        let pods = vec![
            pod("b", true, &[]),
            pod("a", false, &[]),
            pod("c", true, &[]),
        ];
        assert_eq!(ready_pod(pods).unwrap().metadata.name.as_deref(), Some("b"));
        assert!(ready_pod(vec![pod("a", false, &[])]).is_none());
    }

    #[test]
    fn target_ports_map_as_kubectl_maps_them() {
        let p = pod("g", true, &[("http", 3000), ("metrics", 9100)]);
        assert_eq!(pod_port(&p, None, 4500), Ok(4500));
        assert_eq!(pod_port(&p, Some(&IntOrString::Int(3000)), 4500), Ok(3000));
        assert_eq!(
            pod_port(&p, Some(&IntOrString::String("metrics".into())), 80),
            Ok(9100)
        );
        let e = pod_port(&p, Some(&IntOrString::String("grpc".into())), 80).unwrap_err();
        assert!(e.contains("no container port named `grpc`"), "{e}");
        assert!(pod_port(&p, Some(&IntOrString::Int(70000)), 80).is_err());
    }
}

#[cfg(test)]
mod sandbox_tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::sandbox::{Sandbox, SandboxOptions};

    async fn get(dialer: &Kube, host: &str, port: u16, path: &str) -> String {
        let mut s = dialer.connect(host, port).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The body of `GET /sandbox/bytes/N` from grafana.
    async fn bytes(dialer: &Kube, n: usize) -> usize {
        let answer = get(dialer, "grafana", 4500, &format!("/sandbox/bytes/{n}")).await;
        let (_, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(body.bytes().all(|b| b == b'x'));
        body.len()
    }

    #[tokio::test]
    async fn connections_share_one_spdy_tunnel_or_fall_back_to_v4_when_the_api_refuses_it() {
        for (tunnel, protocol) in [(true, Protocol::SpdyTunnel), (false, Protocol::WebSocketV4)] {
            let sandbox = Sandbox::start(SandboxOptions {
                portforward_tunnel: tunnel,
                ..SandboxOptions::default()
            })
            .await
            .unwrap();
            let client = crate::kube::sandbox_client(&sandbox).await;
            let kube = Kube::new(client, "paragon", "this machine");
            assert_eq!(kube.prepare("grafana", 4500).await, protocol);
            let mut all = tokio::task::JoinSet::new();
            for i in 0..12 {
                let kube = kube.clone();
                let n = 3 + i * 70_001;
                all.spawn(async move { (n, bytes(&kube, n).await) });
            }
            while let Some(r) = all.join_next().await {
                let (want, got) = r.unwrap();
                assert_eq!(got, want, "tunnel {tunnel}");
            }
            assert_eq!(kube.protocol(), protocol);
            let tunnels = kube.tunnels.lock().await.len();
            assert_eq!(tunnels, usize::from(tunnel), "tunnel {tunnel}");
            sandbox.shutdown().await;
        }
    }

    #[tokio::test]
    async fn services_are_reached_through_pods_portforward_and_failures_name_the_cause() {
        let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
        let client = crate::kube::sandbox_client(&sandbox).await;
        let kube = Kube::new(client, "paragon", "this machine");
        let health = get(&kube, "grafana", 4500, "/api/health").await;
        assert!(health.contains("\"database\":\"ok\""), "{health}");
        let ready = get(
            &kube,
            "prometheus.paragon.svc.cluster.local",
            9090,
            "/-/ready",
        )
        .await;
        assert!(ready.contains("Prometheus Server is Ready."), "{ready}");
        let big = get(&kube, "grafana", 4500, "/sandbox/bytes/2000000").await;
        assert!(big.ends_with(&"x".repeat(1000)) && big.len() > 2_000_000);

        for (host, port, want) in [
            ("nope", 80, "no Service paragon/nope"),
            ("grafana", 80, "Service paragon/grafana has no port 80"),
            ("db.example.com", 5432, "is not a Service name"),
        ] {
            let Err(e) = kube.connect(host, port).await else {
                panic!("{host}:{port} connected");
            };
            assert!(e.to_string().contains(want), "{e}");
        }
        // Kibana's pod listens on nothing: the kubelet's message ends the stream as a
        // refusal, not as an empty answer.
        let mut s = kube.connect("kibana", 5601).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        let e = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
        assert!(
            e.to_string()
                .contains("failed to connect to localhost:5601 inside the pod"),
            "{e}"
        );
        // A client that writes before it reads (an HTTP request) and finds the stream
        // already closed learns the same reason from its write.
        let mut s = kube.connect("kibana", 5601).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let e = loop {
            match s.write_all(b"GET / HTTP/1.1\r\n").await {
                Err(e) => break e,
                Ok(()) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "writes never failed"
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        };
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
        assert!(e.to_string().contains("inside the pod"), "{e}");

        // Asked again with a port-forward that writes nothing: Kibana's pod refuses, and
        // Grafana's accepts (no word).
        let (ns, pod, port) = kube.resolve("kibana", 5601).await.unwrap();
        let refused = refusal_of(kube.client.clone(), &ns, &pod, port).await;
        assert!(
            refused
                .as_deref()
                .is_some_and(|m| m.ends_with("connection refused")),
            "{refused:?}"
        );
        let (ns, pod, port) = kube.resolve("grafana", 4500).await.unwrap();
        assert_eq!(refusal_of(kube.client.clone(), &ns, &pod, port).await, None);
        sandbox.shutdown().await;
    }
}
