//! `pods/{name}/portforward`: the sandbox's answer to port-forwarding, over the three
//! transports a real API server (1.31 and later) and its kubelet accept:
//!
//! - WebSocket with `v4.channel.k8s.io` (or no subprotocol): the kubelet's channel framing,
//!   used by kube-rs. Each requested port `i` has data channel `2i` and error channel `2i+1`;
//!   every message is one channel byte and a payload; the server first sends the port number
//!   (2 bytes, little endian) on both channels of each port, then the pod's bytes on the data
//!   channel and a failure as text on the error channel. One connection to the pod per port
//!   and per WebSocket.
//! - WebSocket with `v4.base64.channel.k8s.io`: the same channels in text messages, for
//!   clients that cannot send binary ones (older clients and browsers): the channel as an
//!   ASCII digit (`'0' + channel`), then the payload in standard base64, both ways.
//! - WebSocket with `SPDY/3.1+portforward.k8s.io`: SPDY carried in binary messages (what
//!   kubectl tries first since 1.31), unless `SandboxOptions::portforward_tunnel` is off (an
//!   older API server: 400, as for any subprotocol it does not speak).
//! - `Upgrade: SPDY/3.1` with `X-Stream-Protocol-Version: portforward.k8s.io`: plain SPDY
//!   (kubectl's fallback, and what older kubectl speaks). See `spdy`.
//!
//! A port-forward that carries nothing either way for the idle timeout is closed (a WebSocket
//! with a normal close frame, SPDY with GOAWAY), as the kubelet closes its streams after
//! `streamingConnectionIdleTimeout`.
//!
//! "The pod" is a loopback HTTP server from `backends`, chosen by the pod's
//! `app.kubernetes.io/name`; a pod whose application is not backed accepts the upgrade and
//! fails each connection with the kubelet's message, as a pod with nothing listening would.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use hyper::body::Incoming;
use hyper::header::{CONNECTION, HeaderValue, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, handshake::derive_accept_key};

use super::api::Api;
use super::reply::{Reply, ReplyBody, status};
use super::spdy;
use super::store::Res;
use super::target::Target;

const CHANNEL_V4: &str = "v4.channel.k8s.io";
const CHANNEL_V4_BASE64: &str = "v4.base64.channel.k8s.io";
const SPDY_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";
const PORTFORWARD_V1: &str = "portforward.k8s.io";
const X_STREAM_PROTOCOL: &str = "x-stream-protocol-version";
const APP_LABEL: &str = "app.kubernetes.io/name";

/// The namespace and pod of a `pods/{name}/portforward` path.
pub(crate) fn pod_of(path: &str) -> Option<(String, String)> {
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    match segs.as_slice() {
        ["api", "v1", "namespaces", ns, "pods", name, "portforward"] => {
            Some((ns.to_string(), name.to_string()))
        }
        _ => None,
    }
}

/// Answers a request for `pods/{pod}/portforward` in `namespace`.
pub(crate) fn accept(
    api: &Arc<Api>,
    (namespace, pod): (String, String),
    mut req: Request<Incoming>,
) -> Reply {
    let Some(target) = target(api, &namespace, &pod) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("pods \"{pod}\" not found"),
            Some(("pods", &pod)),
        );
    };
    let bad = |m: &str| status(StatusCode::BAD_REQUEST, "BadRequest", m, None);
    let upgrade = header(&req, UPGRADE.as_str()).to_ascii_lowercase();
    if upgrade == "websocket" {
        let offered = header(&req, "sec-websocket-protocol");
        let offered: Vec<&str> = offered.split(',').map(str::trim).collect();
        // The first protocol the client lists that we speak, as the kubelet's handshake picks.
        let tunnel_served = api.portforward_tunnel;
        let chosen = offered.iter().copied().find(|p| {
            matches!(*p, CHANNEL_V4 | CHANNEL_V4_BASE64 | "")
                || (tunnel_served && *p == SPDY_TUNNEL)
        });
        let Some(chosen) = chosen else {
            let also = if tunnel_served {
                format!(" or {SPDY_TUNNEL}")
            } else {
                String::new()
            };
            return bad(&format!(
                "none of the requested WebSocket subprotocols {offered:?} is supported; use {CHANNEL_V4}, {CHANNEL_V4_BASE64}{also}"
            ));
        };
        let framing = if chosen == CHANNEL_V4_BASE64 {
            Framing::Base64
        } else {
            Framing::Binary
        };
        let ports = if chosen == SPDY_TUNNEL {
            Vec::new()
        } else {
            match requested_ports(&req) {
                Ok(p) => p,
                Err(m) => return bad(&m),
            }
        };
        let key = header(&req, "sec-websocket-key");
        if key.is_empty() {
            return bad("a WebSocket upgrade needs Sec-WebSocket-Key");
        }
        let accept_key = derive_accept_key(key.as_bytes());
        let upgraded = hyper::upgrade::on(&mut req);
        let chosen = chosen.to_string();
        let tunnel = chosen == SPDY_TUNNEL;
        tokio::spawn(async move {
            let io = match upgraded.await {
                Ok(io) => TokioIo::new(io),
                Err(e) => return tracing::debug!("sandbox portforward upgrade failed: {e}"),
            };
            let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
            let stopped = target.stopped.clone();
            tokio::select! {
                () = async {
                    if tunnel {
                        serve_spdy_tunnel(ws, target).await;
                    } else {
                        serve_channels(ws, target, ports, framing).await;
                    }
                } => {}
                () = stopped.cancelled() => {}
            }
        });
        let mut r = switching(&[
            (UPGRADE.as_str(), "websocket"),
            ("sec-websocket-accept", &accept_key),
        ]);
        if !chosen.is_empty()
            && let Ok(v) = HeaderValue::from_str(&chosen)
        {
            r.headers_mut().insert("sec-websocket-protocol", v);
        }
        return r;
    }
    if upgrade.starts_with("spdy/3.1") {
        let versions = header(&req, X_STREAM_PROTOCOL);
        if !versions.split(',').any(|v| v.trim() == PORTFORWARD_V1) {
            return bad(&format!(
                "unable to upgrade: no supported stream protocol in {versions:?}; want {PORTFORWARD_V1}"
            ));
        }
        let upgraded = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let io = match upgraded.await {
                Ok(io) => TokioIo::new(io),
                Err(e) => return tracing::debug!("sandbox portforward upgrade failed: {e}"),
            };
            let (r, w) = tokio::io::split(io);
            let stopped = target.stopped.clone();
            tokio::select! {
                r = spdy::serve(r, w, target) => if let Err(e) = r {
                    tracing::debug!("sandbox portforward: {e}");
                },
                () = stopped.cancelled() => {}
            }
        });
        return switching(&[
            (UPGRADE.as_str(), "SPDY/3.1"),
            (X_STREAM_PROTOCOL, PORTFORWARD_V1),
        ]);
    }
    bad("Upgrade request required")
}

fn target(api: &Arc<Api>, namespace: &str, pod: &str) -> Option<Target> {
    let world = api.world();
    let entry = world.get(Res::Pods, namespace, pod)?;
    let mut json = Vec::new();
    entry.write_object(&mut json);
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_slice(&json).ok()?;
    let app = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(APP_LABEL))
        .cloned()
        .unwrap_or_default();
    let name = pod.metadata.name.unwrap_or_default();
    // A connection (a SPDY stream pair on a kept port-forward) to a pod deleted since is
    // refused, as the kubelet can no longer find the pod's sandbox.
    let (world_of, ns, pod_name) = (Arc::clone(api), namespace.to_string(), name.clone());
    let exists = Arc::new(move || world_of.world().get(Res::Pods, &ns, &pod_name).is_some());
    Some(Target {
        pod: name,
        uid: pod.metadata.uid.unwrap_or_default(),
        exists,
        app,
        backends: api.backends.clone(),
        stopped: api.stopped.clone(),
        idle: api.streaming_idle_timeout,
    })
}

/// Every value of a header, joined with commas.
fn header(req: &Request<Incoming>, name: &str) -> String {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",")
}

/// The `ports` query parameter(s), each a list of ports separated by commas.
fn requested_ports(req: &Request<Incoming>) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        if k != "ports" {
            continue;
        }
        for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => ports.push(n),
                _ => return Err(format!("invalid port {p:?}: ports are 1 to 65535")),
            }
        }
    }
    if ports.is_empty() {
        return Err("at least one port must be given: ?ports=N".into());
    }
    Ok(ports)
}

fn switching(headers: &[(&str, &str)]) -> Reply {
    let mut r = Response::new(ReplyBody::Whole(None));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    r.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// SPDY in binary WebSocket messages: each message is a run of the SPDY byte stream.
async fn serve_spdy_tunnel(ws: Ws, target: Target) {
    let (sink, stream) = ws.split();
    let reader = tokio_util::io::StreamReader::new(
        stream
            .take_while(|m| std::future::ready(!matches!(m, Ok(Message::Close(_)))))
            .filter_map(|m| {
                std::future::ready(match m {
                    Ok(Message::Binary(b)) => Some(Ok(b)),
                    Ok(_) => None,
                    Err(e) => Some(Err(std::io::Error::other(e))),
                })
            }),
    );
    let writer = tokio_util::io::SinkWriter::new(tokio_util::io::CopyToBytes::new(
        sink.sink_map_err(std::io::Error::other)
            .with(|b: Bytes| std::future::ready(Ok::<_, std::io::Error>(Message::Binary(b)))),
    ));
    if let Err(e) = spdy::serve(reader, writer, target).await {
        tracing::debug!("sandbox portforward tunnel: {e}");
    }
}

/// How channel messages are written: binary (`v4.channel.k8s.io`) or base64 text
/// (`v4.base64.channel.k8s.io`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Binary,
    Base64,
}

impl Framing {
    /// `payload` on channel `ch`.
    fn message(self, ch: u8, payload: &[u8]) -> Message {
        match self {
            Framing::Binary => {
                let mut m = Vec::with_capacity(payload.len() + 1);
                m.push(ch);
                m.extend_from_slice(payload);
                Message::binary(m)
            }
            Framing::Base64 => {
                let mut m = String::with_capacity(payload.len() * 4 / 3 + 5);
                m.push(char::from(b'0' + ch));
                base64::engine::general_purpose::STANDARD.encode_string(payload, &mut m);
                Message::text(m)
            }
        }
    }

    /// The channel and payload of a client's message; `None` for any other message (a
    /// control frame, or one not in this framing).
    fn decode(self, m: &Message) -> Option<(u8, Vec<u8>)> {
        match (self, m) {
            (Framing::Binary, Message::Binary(b)) if !b.is_empty() => Some((b[0], b[1..].to_vec())),
            (Framing::Base64, Message::Text(t)) => {
                let ch = t.as_bytes().first()?.checked_sub(b'0')?;
                let data = base64::engine::general_purpose::STANDARD
                    .decode(&t.as_bytes()[1..])
                    .ok()?;
                Some((ch, data))
            }
            _ => None,
        }
    }
}

/// The kubelet's channel framing (`v4.channel.k8s.io`, or its base64 form), one pod
/// connection per port.
async fn serve_channels(mut ws: Ws, target: Target, ports: Vec<u16>, framing: Framing) {
    let (tx, mut rx) = mpsc::channel::<(u8, Option<Bytes>)>(16);
    let mut writers = Vec::with_capacity(ports.len());
    for (i, port) in ports.iter().enumerate() {
        let (data, error) = (2 * i as u8, 2 * i as u8 + 1);
        let lo_hi = port.to_le_bytes();
        for ch in [data, error] {
            if ws.send(framing.message(ch, &lo_hi)).await.is_err() {
                return;
            }
        }
        match target.open(*port).await {
            Ok(tcp) => {
                let (mut rd, wr) = tcp.into_split();
                writers.push(Some(wr));
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    loop {
                        match rd.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                let chunk = Bytes::copy_from_slice(&buf[..n]);
                                if tx.send((data, Some(chunk))).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    let _ = tx.send((data, None)).await;
                });
            }
            Err(message) => {
                writers.push(None);
                let _ = ws.send(framing.message(error, message.as_bytes())).await;
                let _ = tx.send((data, None)).await;
            }
        }
    }
    drop(tx);
    let mut open = ports.len();
    // Any message either way is traffic; none for `idle` closes the stream.
    let idle = tokio::time::sleep(target.idle);
    tokio::pin!(idle);
    while open > 0 {
        tokio::select! {
            from_pod = rx.recv() => match from_pod {
                Some((ch, Some(bytes))) => {
                    if ws.send(framing.message(ch, &bytes)).await.is_err() {
                        return;
                    }
                    idle.as_mut().reset(Instant::now() + target.idle);
                }
                Some((_, None)) => open -= 1,
                None => break,
            },
            from_client = ws.next() => match from_client {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(m)) => {
                    idle.as_mut().reset(Instant::now() + target.idle);
                    // Bytes for a data channel; anything else (pings, the error channels)
                    // carries nothing for the pod.
                    if let Some((ch, bytes)) = framing.decode(&m)
                        && ch % 2 == 0
                        && !bytes.is_empty()
                    {
                        let i = usize::from(ch / 2);
                        if let Some(Some(w)) = writers.get_mut(i)
                            && w.write_all(&bytes).await.is_err()
                        {
                            writers[i] = None;
                        }
                    }
                }
            },
            () = &mut idle => {
                tracing::debug!(pod = %target.pod, "sandbox portforward: idle for {:?}, closing", target.idle);
                close(ws, Some(idle_close())).await;
                return;
            }
        }
    }
    // Every pod connection has ended: so does the WebSocket, as the kubelet's does.
    close(ws, None).await;
}

/// How long a closing WebSocket waits for the client's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// The closing handshake: our close frame, then what the client still sends, read until its
/// close frame (at most `CLOSE_WAIT`). Dropping the connection with the client's bytes unread
/// would reset it, and the client could lose the messages before our close (the kubelet's
/// refusal among them); a real API server reads on until the client closes.
async fn close(mut ws: Ws, frame: Option<CloseFrame>) {
    if ws.close(frame).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(m)) = ws.next().await {
            if m.is_close() {
                break;
            }
        }
    })
    .await;
}

/// The close frame of a port-forward that carried nothing for the idle timeout.
fn idle_close() -> CloseFrame {
    CloseFrame {
        code: CloseCode::Normal,
        reason: "streaming connection idle timeout".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Sandbox, SandboxOptions};
    use k8s_openapi::api::core::v1::Pod;
    use std::sync::Arc;
    use tokio::net::TcpStream;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

    #[test]
    fn base64_frames_carry_the_channel_as_a_digit_and_the_payload_in_base64() {
        let m = Framing::Base64.message(1, &4500u16.to_le_bytes());
        assert_eq!(m, Message::text("1lBE="));
        assert_eq!(Framing::Base64.decode(&m), Some((1, vec![0x94, 0x11])));
        assert_eq!(Framing::Base64.decode(&Message::text("0%%")), None);
        assert_eq!(Framing::Base64.decode(&Message::binary(vec![0, 1])), None);
        assert_eq!(
            Framing::Binary.decode(&Framing::Binary.message(2, b"hi")),
            Some((2, b"hi".to_vec()))
        );
    }

    /// A client that asks for `v4.base64.channel.k8s.io` (a tungstenite WebSocket over rustls,
    /// as older clients ask) is answered in that protocol: text frames, base64 payloads.
    #[tokio::test]
    async fn a_client_asking_for_base64_channels_gets_grafana_in_text_frames() {
        let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&sandbox.kubeconfig_yaml()).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(config).unwrap();
        let pods: kube::Api<Pod> = kube::Api::namespaced(client, "paragon");
        let list = pods
            .list(&kube::api::ListParams::default().labels("app.kubernetes.io/name=grafana"))
            .await
            .unwrap();
        let pod = list.items[0].metadata.name.clone().unwrap();

        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(sandbox.ca_pem().as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tcp = TcpStream::connect(sandbox.addr()).await.unwrap();
        let name = rustls::pki_types::ServerName::from(sandbox.addr().ip());
        let tls = tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(name, tcp)
            .await
            .unwrap();
        let url = format!(
            "wss://{}/api/v1/namespaces/paragon/pods/{pod}/portforward?ports=4500",
            sandbox.addr()
        );
        let mut req = url.into_client_request().unwrap();
        req.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static(CHANNEL_V4_BASE64),
        );
        req.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {}", sandbox.token())).unwrap(),
        );
        let (mut ws, resp) = tokio_tungstenite::client_async(req, tls).await.unwrap();
        assert_eq!(
            resp.headers()["sec-websocket-protocol"],
            CHANNEL_V4_BASE64,
            "{resp:?}"
        );
        let request = b"GET /api/health HTTP/1.1\r\nHost: grafana\r\nConnection: close\r\n\r\n";
        ws.send(Framing::Base64.message(0, request)).await.unwrap();
        let mut got: Vec<(u8, Vec<u8>)> = Vec::new();
        let read = async {
            while let Some(m) = ws.next().await {
                match m.unwrap() {
                    Message::Close(_) => break,
                    m @ Message::Text(_) => got.push(Framing::Base64.decode(&m).unwrap()),
                    other => panic!("not a text frame: {other:?}"),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), read)
            .await
            .unwrap();
        // Each channel first says its port (4500, little endian), then the pod's answer.
        assert_eq!(got[0], (0, 4500u16.to_le_bytes().to_vec()));
        assert_eq!(got[1], (1, 4500u16.to_le_bytes().to_vec()));
        let answer: Vec<u8> = got[2..]
            .iter()
            .filter(|(ch, _)| *ch == 0)
            .flat_map(|(_, b)| b.clone())
            .collect();
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.contains("\"database\":\"ok\""),
            "{answer}"
        );
        sandbox.shutdown().await;
    }
}
