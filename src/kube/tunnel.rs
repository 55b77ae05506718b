//! SPDY/3.1 inside one WebSocket (`SPDY/3.1+portforward.k8s.io`), the client side: how
//! kubectl since 1.31 port-forwards (client-go's tunneling dialer over spdystream). One
//! tunnel per pod is kept; a new connection is a new pair of streams on it (`error`, then
//! `data`, with the headers `streamType`, `port` and `requestID`), not a new TLS handshake and
//! upgrade through the bastion.
//!
//! Unlike kubectl, a connection does not wait for the server's reply to each stream before
//! the next: both SYN_STREAM frames and the first bytes go out together (SPDY lets a client
//! send on a stream before its reply), so a new connection costs no round trip of its own.
//! Bytes from the pod arrive on the data stream; a failure (nothing listening in the pod)
//! arrives as text on the error stream, which this side closes at once as client-go does.
//! There is no flow control to honour: spdystream, the kubelet's SPDY, ignores
//! WINDOW_UPDATE. A tunnel ends with its WebSocket (GOAWAY, the kubelet's idle timeout, the
//! session to the bastion lost); its connections then end and the next one opens a new
//! tunnel.
//!
//! Header blocks are zlib streams, one per direction for the whole tunnel, with SPDY/3's
//! preset dictionary (`spdy_dictionary.bin`: the SPDY/3 draft's section 2.6.10.1). This
//! module knows nothing of Services, forwards or SSH: it gets a `kube::Client`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use futures::{SinkExt as _, StreamExt as _};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_util::sync::CancellationToken;

/// The WebSocket subprotocol of SPDY tunneled for a port-forward.
pub const SUBPROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const FLAG_FIN: u8 = 0x01;
/// RST_STREAM status CANCEL: the local client went away.
const CANCEL: u32 = 5;
/// The largest data frame we send (what the sandbox's and the kubelet's SPDY send too).
const MAX_DATA: usize = 32 * 1024;
/// Bytes between a connection's local side and its pump (per direction).
const PIPE: usize = 256 * 1024;
const DICTIONARY: &[u8] = include_bytes!("spdy_dictionary.bin");

/// Why a tunnel could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// The API server does not speak the tunnel (an older one, or one with the feature off):
    /// the WebSocket v4 route is the fallback.
    Refused(String),
    /// Anything else (the pod is gone, no permission, the network): the same for any route.
    Failed(String),
}

/// A kept SPDY tunnel to one pod's port-forward.
pub struct Tunnel {
    frames: mpsc::Sender<Outgoing>,
    streams: Arc<Mutex<Streams>>,
    closed: CancellationToken,
}

/// What the writer sends: headers to compress in order, or a frame ready to go.
enum Outgoing {
    Open {
        error: u32,
        data: u32,
        port: u16,
        request: u64,
    },
    Frame(Vec<u8>),
}

/// The open streams, by id, and the next ids to hand out.
struct Streams {
    next_id: u32,
    next_request: u64,
    by_id: HashMap<u32, Incoming>,
}

/// Where a stream's incoming bytes go.
enum Incoming {
    Data(mpsc::Sender<Bytes>),
    /// The error stream: its text, sent whole when the stream finishes.
    Error(Vec<u8>, Option<oneshot::Sender<String>>),
}

/// The kubelet's message on a connection's error stream, once it finishes (`None`: it
/// finished, or the tunnel ended, without one).
pub type ErrorFuture = Pin<Box<dyn Future<Output = Option<String>> + Send>>;

impl Tunnel {
    /// Upgrades a request for `namespace/pod`'s port-forward to the SPDY tunnel.
    pub async fn open(
        client: &kube::Client,
        namespace: &str,
        pod: &str,
    ) -> Result<Tunnel, OpenError> {
        let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
        let path = format!("/api/v1/namespaces/{namespace}/pods/{pod}/portforward");
        let request = http::Request::get(path)
            .header(http::header::CONNECTION, "Upgrade")
            .header(http::header::UPGRADE, "websocket")
            .header(http::header::SEC_WEBSOCKET_VERSION, "13")
            .header(http::header::SEC_WEBSOCKET_KEY, &key)
            .header(http::header::SEC_WEBSOCKET_PROTOCOL, SUBPROTOCOL)
            .body(kube::client::Body::from(Vec::new()))
            .map_err(|e| OpenError::Failed(e.to_string()))?;
        let what = format!("port-forward to pod {namespace}/{pod}");
        let response = client
            .send(request)
            .await
            .map_err(|e| OpenError::Failed(format!("{what}: {}", super::one_line(&e))))?;
        let status = response.status();
        match status {
            http::StatusCode::SWITCHING_PROTOCOLS => {}
            http::StatusCode::NOT_FOUND => {
                return Err(OpenError::Failed(format!("{what}: pod not found")));
            }
            http::StatusCode::UNAUTHORIZED => {
                return Err(OpenError::Failed(format!("{what}: {status}")));
            }
            // An API server without the tunnel refuses the subprotocol (400, or 403 from an
            // older kubelet's handshake): the v4 route then says what it says.
            other => {
                return Err(OpenError::Refused(format!(
                    "{what}: the API answered {other}"
                )));
            }
        }
        let (chosen, accept) = (
            header(&response, http::header::SEC_WEBSOCKET_PROTOCOL),
            header(&response, http::header::SEC_WEBSOCKET_ACCEPT),
        );
        if chosen != SUBPROTOCOL {
            return Err(OpenError::Refused(format!(
                "{what}: the API chose the subprotocol {chosen:?}"
            )));
        }
        if accept != derive_accept_key(key.as_bytes()) {
            return Err(OpenError::Failed(format!(
                "{what}: the WebSocket accept key does not match"
            )));
        }
        let upgraded = hyper::upgrade::on(response)
            .await
            .map_err(|e| OpenError::Failed(format!("{what}: {e}")))?;
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
        Ok(Tunnel::start(ws))
    }

    fn start<S>(ws: WebSocketStream<S>) -> Tunnel
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sink, source) = ws.split();
        let (frames, outgoing) = mpsc::channel(64);
        let streams = Arc::new(Mutex::new(Streams {
            // Client-initiated SPDY streams have odd ids.
            next_id: 1,
            next_request: 0,
            by_id: HashMap::new(),
        }));
        let closed = CancellationToken::new();
        tokio::spawn(write_frames(sink, outgoing, closed.clone()));
        tokio::spawn(read_frames(
            source,
            streams.clone(),
            frames.clone(),
            closed.clone(),
        ));
        Tunnel {
            frames,
            streams,
            closed,
        }
    }

    /// Whether the tunnel has ended (its connections have, and new ones cannot start).
    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// A new connection to the pod's `port`: its bytes, and the kubelet's message should it
    /// fail. `None` when the tunnel has ended.
    pub async fn connect(&self, port: u16) -> Option<(DuplexStream, ErrorFuture)> {
        let (to_local, from_pod) = mpsc::channel(32);
        let (error_tx, error_rx) = oneshot::channel();
        let (error, data, request) = {
            let mut s = self.streams.lock().ok()?;
            if self.closed.is_cancelled() || s.next_id > 0x7fff_fffb {
                return None;
            }
            let (error, data) = (s.next_id, s.next_id + 2);
            s.next_id += 4;
            let request = s.next_request;
            s.next_request += 1;
            s.by_id
                .insert(error, Incoming::Error(Vec::new(), Some(error_tx)));
            s.by_id.insert(data, Incoming::Data(to_local));
            (error, data, request)
        };
        self.frames
            .send(Outgoing::Open {
                error,
                data,
                port,
                request,
            })
            .await
            .ok()?;
        let (local, far) = tokio::io::duplex(PIPE);
        tokio::spawn(pump(
            far,
            from_pod,
            data,
            error,
            self.frames.clone(),
            self.streams.clone(),
        ));
        let message: ErrorFuture = Box::pin(async move { error_rx.await.ok() });
        Some((local, message))
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.closed.cancel();
    }
}

/// One connection: local bytes out as data frames (a FIN at the local end), the pod's bytes
/// in. The pod's end ends the connection, as kubectl's does: its local side then reads the
/// end and its writes fail. A local side gone first cancels both streams.
async fn pump(
    far: DuplexStream,
    mut from_pod: mpsc::Receiver<Bytes>,
    data_id: u32,
    error_id: u32,
    frames: mpsc::Sender<Outgoing>,
    streams: Arc<Mutex<Streams>>,
) {
    let (mut rd, mut wr) = tokio::io::split(far);
    let over = CancellationToken::new();
    // Whether our half of the data stream is finished (FIN sent, or both streams reset).
    let up = async {
        let mut buf = vec![0u8; MAX_DATA];
        loop {
            let n = tokio::select! {
                r = rd.read(&mut buf) => r.unwrap_or(0),
                () = over.cancelled() => return false,
            };
            let fin = n == 0;
            let frame = data(data_id, if fin { FLAG_FIN } else { 0 }, &buf[..n]);
            if frames.send(Outgoing::Frame(frame)).await.is_err() || fin {
                return true;
            }
        }
    };
    let down = async {
        let mut reset = false;
        while let Some(bytes) = from_pod.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                // The local client went away: the pod's side is of no more use.
                for id in [data_id, error_id] {
                    let _ = frames.send(Outgoing::Frame(rst(id, CANCEL))).await;
                }
                reset = true;
                break;
            }
        }
        let _ = wr.shutdown().await;
        over.cancel();
        reset
    };
    let (finished, reset) = tokio::join!(up, down);
    if !finished && !reset {
        let _ = frames
            .send(Outgoing::Frame(data(data_id, FLAG_FIN, &[])))
            .await;
    }
    if let Ok(mut s) = streams.lock() {
        s.by_id.remove(&data_id);
        s.by_id.remove(&error_id);
    }
}

/// Writes what the connections send, several frames per WebSocket message when they queue.
async fn write_frames<S>(
    mut sink: futures::stream::SplitSink<WebSocketStream<S>, Message>,
    mut outgoing: mpsc::Receiver<Outgoing>,
    closed: CancellationToken,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut headers = HeaderCodec::new();
    let mut batch: Vec<u8> = Vec::with_capacity(2 * MAX_DATA);
    loop {
        let next = tokio::select! {
            next = outgoing.recv() => next,
            () = closed.cancelled() => None,
        };
        let Some(first) = next else { break };
        let mut next = Some(first);
        while let Some(o) = next {
            match o {
                Outgoing::Frame(f) => batch.extend_from_slice(&f),
                Outgoing::Open {
                    error,
                    data,
                    port,
                    request,
                } => {
                    let (port, request) = (port.to_string(), request.to_string());
                    // The error stream carries nothing from us: it is finished as it opens.
                    for (id, kind, flags) in [(error, "error", FLAG_FIN), (data, "data", 0)] {
                        let block = headers.encode(&[
                            ("streamtype", kind),
                            ("port", &port),
                            ("requestid", &request),
                        ]);
                        batch.extend_from_slice(&syn_stream(id, flags, &block));
                    }
                }
            }
            next = if batch.len() < 4 * MAX_DATA {
                outgoing.try_recv().ok()
            } else {
                None
            };
        }
        let message = Message::binary(std::mem::replace(
            &mut batch,
            Vec::with_capacity(2 * MAX_DATA),
        ));
        if sink.send(message).await.is_err() {
            break;
        }
    }
    closed.cancel();
    let _ = sink.close().await;
}

/// Reads the server's frames and hands each stream its bytes, until the tunnel ends.
async fn read_frames<S>(
    mut source: futures::stream::SplitStream<WebSocketStream<S>>,
    streams: Arc<Mutex<Streams>>,
    frames: mpsc::Sender<Outgoing>,
    closed: CancellationToken,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut headers = HeaderCodec::new();
    let mut buf = BytesMut::new();
    'tunnel: loop {
        let message = tokio::select! {
            m = source.next() => m,
            () = closed.cancelled() => break,
        };
        match message {
            Some(Ok(Message::Binary(b))) => buf.extend_from_slice(&b),
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            Some(Ok(_)) => continue,
        }
        while buf.len() >= 8 {
            let len = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
            if buf.len() < 8 + len {
                break;
            }
            let head = buf.split_to(8);
            let body = buf.split_to(len).freeze();
            let flags = head[4];
            if head[0] & 0x80 == 0 {
                let id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & 0x7fff_ffff;
                deliver(&streams, id, flags, body).await;
                continue;
            }
            let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
            let kind = u16::from_be_bytes([head[2], head[3]]);
            if version != VERSION {
                tracing::debug!("api tunnel: SPDY version {version}, closing");
                break 'tunnel;
            }
            match kind {
                // Replies carry an (empty) header block; it is read to keep the zlib stream.
                SYN_REPLY if body.len() > 4 => {
                    if let Err(e) = headers.decode(&body[4..]) {
                        tracing::debug!("api tunnel: {e}, closing");
                        break 'tunnel;
                    }
                }
                RST_STREAM => {
                    if let Some(id) = be32(&body) {
                        let removed = streams
                            .lock()
                            .ok()
                            .and_then(|mut s| s.by_id.remove(&(id & 0x7fff_ffff)));
                        finish(removed);
                    }
                }
                PING => {
                    // Server pings have even ids; echoing is the whole answer.
                    let _ = frames.send(Outgoing::Frame(control(PING, 0, &body))).await;
                }
                GOAWAY => break 'tunnel,
                SYN_STREAM => {
                    // The server opens no streams of its own in a port-forward.
                    if let Some(id) = be32(&body) {
                        let _ = frames.send(Outgoing::Frame(rst(id & 0x7fff_ffff, 1))).await;
                    }
                }
                // SETTINGS, WINDOW_UPDATE, HEADERS: nothing to act on (no flow control).
                _ => {}
            }
        }
    }
    closed.cancel();
    // Every connection ends with the tunnel: its data stream ends, its error stream says
    // nothing more.
    let all: Vec<Incoming> = streams
        .lock()
        .map(|mut s| s.by_id.drain().map(|(_, v)| v).collect())
        .unwrap_or_default();
    for stream in all {
        finish(Some(stream));
    }
}

/// A data frame for stream `id`: bytes to its connection; the error stream's text kept until
/// its FIN, then handed over.
async fn deliver(streams: &Mutex<Streams>, id: u32, flags: u8, body: Bytes) {
    let fin = flags & FLAG_FIN != 0;
    let to_local = {
        let Ok(mut s) = streams.lock() else { return };
        match s.by_id.get_mut(&id) {
            Some(Incoming::Data(tx)) => Some(tx.clone()),
            Some(Incoming::Error(text, _)) => {
                text.extend_from_slice(&body);
                None
            }
            None => None,
        }
    };
    if let Some(tx) = to_local
        && !body.is_empty()
    {
        let _ = tx.send(body).await;
    }
    if fin {
        let removed = streams.lock().ok().and_then(|mut s| s.by_id.remove(&id));
        finish(removed);
    }
}

/// A stream that ends: a data stream's sender is dropped (its connection reads the end), an
/// error stream hands over its text if it has any.
fn finish(stream: Option<Incoming>) {
    if let Some(Incoming::Error(text, Some(tx))) = stream
        && !text.is_empty()
    {
        let _ = tx.send(String::from_utf8_lossy(&text).into_owned());
    }
}

/// A response header as text ("" when absent or not text). A function, not a closure: the
/// response is not `Sync`, so no borrow of it may live across the upgrade's await.
fn header<B>(response: &http::Response<B>, name: http::header::HeaderName) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn be32(b: &[u8]) -> Option<u32> {
    b.get(..4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn control(kind: u16, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.push(flags);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(body);
    out
}

fn data(stream: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.push(flags);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(payload);
    out
}

/// SYN_STREAM: stream id, no associated stream, priority 0, then the header block.
fn syn_stream(id: u32, flags: u8, block: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(10 + block.len());
    body.extend_from_slice(&(id & 0x7fff_ffff).to_be_bytes());
    body.extend_from_slice(&0u32.to_be_bytes());
    body.extend_from_slice(&[0, 0]);
    body.extend_from_slice(block);
    control(SYN_STREAM, flags, &body)
}

fn rst(stream: u32, status: u32) -> Vec<u8> {
    let mut body = stream.to_be_bytes().to_vec();
    body.extend_from_slice(&status.to_be_bytes());
    control(RST_STREAM, 0, &body)
}

/// One direction's zlib stream of header blocks (the compressor or the decompressor).
struct HeaderCodec {
    deflate: Compress,
    inflate: Decompress,
    inflate_primed: bool,
}

impl HeaderCodec {
    fn new() -> Self {
        let mut deflate = Compress::new(Compression::default(), true);
        // Cannot fail on a fresh stream with the zlib-rs backend.
        let _ = deflate.set_dictionary(DICTIONARY);
        HeaderCodec {
            deflate,
            inflate: Decompress::new(true),
            inflate_primed: false,
        }
    }

    /// A name/value block, compressed with a sync flush (each block decodes on its own).
    fn encode(&mut self, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut plain = Vec::with_capacity(64);
        plain.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        for (k, v) in headers {
            plain.extend_from_slice(&(k.len() as u32).to_be_bytes());
            plain.extend_from_slice(k.as_bytes());
            plain.extend_from_slice(&(v.len() as u32).to_be_bytes());
            plain.extend_from_slice(v.as_bytes());
        }
        let mut out = Vec::with_capacity(plain.len() + 64);
        let mut input = plain.as_slice();
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(256);
            }
            let before = self.deflate.total_in();
            if self
                .deflate
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .is_err()
            {
                break;
            }
            input = &input[(self.deflate.total_in() - before) as usize..];
            // A sync flush is complete once it ends with room to spare.
            if input.is_empty() && out.capacity() > out.len() {
                break;
            }
        }
        out
    }

    /// Decompresses a block: the plain name/value block (replies carry none we use, but
    /// every block must pass through the one zlib stream).
    fn decode(&mut self, block: &[u8]) -> Result<Vec<u8>, String> {
        let bad = |e: &dyn std::fmt::Display| format!("bad header block: {e}");
        let mut out = Vec::with_capacity(block.len() * 4 + 256);
        let mut input = block;
        let mut primed_now;
        loop {
            if out.capacity() - out.len() < 256 {
                out.reserve(4096);
            }
            let (in0, out0) = (self.inflate.total_in(), self.inflate.total_out());
            match self
                .inflate
                .decompress_vec(input, &mut out, FlushDecompress::Sync)
            {
                Ok(_) => primed_now = false,
                Err(e) if e.needs_dictionary().is_some() && !self.inflate_primed => {
                    self.inflate_primed = true;
                    primed_now = true;
                    self.inflate
                        .set_dictionary(DICTIONARY)
                        .map_err(|e| bad(&e))?;
                }
                Err(e) => return Err(bad(&e)),
            }
            let used = (self.inflate.total_in() - in0) as usize;
            let made = self.inflate.total_out() - out0;
            input = &input[used..];
            if input.is_empty() && made == 0 && out.capacity() > out.len() {
                return Ok(out);
            }
            if used == 0 && made == 0 && !primed_now && out.capacity() > out.len() {
                return Err(bad(&"the compressed block does not progress"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_blocks_round_trip_across_one_zlib_stream_with_the_dictionary() {
        let (mut ours, mut theirs) = (HeaderCodec::new(), HeaderCodec::new());
        for id in ["0", "1"] {
            let block = ours.encode(&[("streamtype", "data"), ("port", "4500"), ("requestid", id)]);
            let plain = theirs.decode(&block).unwrap();
            assert_eq!(&plain[..4], [0, 0, 0, 3]);
            assert!(
                plain.ends_with(&[0, 0, 0, 1, id.as_bytes()[0]]),
                "{plain:?}"
            );
        }
        assert!(theirs.decode(&[0xff; 16]).is_err());
    }

    #[test]
    fn frames_have_spdy3s_layout() {
        assert_eq!(
            data(3, FLAG_FIN, b"hi"),
            [0, 0, 0, 3, 1, 0, 0, 2, b'h', b'i']
        );
        assert_eq!(
            rst(5, CANCEL),
            [0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 5, 0, 0, 0, 5]
        );
        let syn = syn_stream(1, FLAG_FIN, b"z");
        assert_eq!(&syn[..8], [0x80, 3, 0, 1, 1, 0, 0, 11]);
        assert_eq!(&syn[8..], [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, b'z']);
    }
}
