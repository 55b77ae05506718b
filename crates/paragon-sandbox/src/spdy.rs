//! SPDY/3.1, the server side, as far as kubectl's port-forward uses it (client-go's
//! `tools/portforward` over moby/spdystream): the client opens, per forwarded connection, an
//! `error` stream and a `data` stream carrying the headers `streamType`, `port` and
//! `requestID`; the server replies to each, connects to the pod's port, copies bytes on the
//! data stream, writes a failure as text on the error stream, and finishes both when the pod
//! side closes (as the kubelet's httpstream handler does). Pings are echoed; SETTINGS and
//! WINDOW_UPDATE are ignored, as spdystream ignores them (it has no flow control). A
//! connection with no frame read or written for the target's idle timeout gets GOAWAY and is
//! closed, as spdystream's idle-aware framer does for the kubelet.
//!
//! Header blocks are zlib streams, one per direction for the whole connection, with SPDY/3's
//! preset dictionary (`spdy_dictionary.bin`, the bytes of the SPDY/3 specification's
//! section 2.6.10.1). This module knows nothing of HTTP, pods or the API: it gets a byte stream
//! and a [`Target`] to connect to.

use std::collections::HashMap;
use std::io;

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::target::Target;

const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const FLAG_FIN: u8 = 0x01;
/// The largest data frame we send; the format allows 16 MiB, spdystream reads any.
const MAX_DATA: usize = 32 * 1024;
const DICTIONARY: &[u8] = include_bytes!("spdy_dictionary.bin");

#[derive(Debug, thiserror::Error)]
pub(crate) enum SpdyError {
    // Not a `source`: the sandbox only logs this error by itself, so the cause is in the
    // message; the `From` below keeps `?` working without chaining it a second time.
    #[error("spdy: {0}")]
    Io(io::Error),
    #[error("spdy: unsupported version {0}")]
    Version(u16),
    #[error("spdy: bad header block: {0}")]
    Headers(String),
    #[error("spdy: frame too short for its type {0}")]
    Short(u16),
}

impl From<io::Error> for SpdyError {
    fn from(cause: io::Error) -> Self {
        SpdyError::Io(cause)
    }
}

enum Frame {
    Control {
        kind: u16,
        body: Vec<u8>,
    },
    Data {
        stream: u32,
        flags: u8,
        data: Vec<u8>,
    },
}

async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Frame>, SpdyError> {
    let mut head = [0u8; 8];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let flags = head[4];
    let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    if head[0] & 0x80 != 0 {
        let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
        if version != VERSION {
            return Err(SpdyError::Version(version));
        }
        let kind = u16::from_be_bytes([head[2], head[3]]);
        Ok(Some(Frame::Control { kind, body }))
    } else {
        let stream = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & 0x7fff_ffff;
        Ok(Some(Frame::Data {
            stream,
            flags,
            data: body,
        }))
    }
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

fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// The two zlib streams of a connection's header blocks.
struct HeaderCodec {
    inflate: Decompress,
    deflate: Compress,
}

impl HeaderCodec {
    fn new() -> Self {
        HeaderCodec {
            inflate: Decompress::new(true),
            deflate: Compress::new(Compression::default(), true),
        }
    }

    fn decode(&mut self, block: &[u8]) -> Result<Vec<(String, String)>, SpdyError> {
        let bad = |m: String| SpdyError::Headers(m);
        let mut out: Vec<u8> = Vec::with_capacity(block.len() * 4 + 256);
        let mut input = block;
        loop {
            if out.capacity() - out.len() < 256 {
                out.reserve(4096);
            }
            let (in0, out0) = (self.inflate.total_in(), self.inflate.total_out());
            match self
                .inflate
                .decompress_vec(input, &mut out, FlushDecompress::Sync)
            {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(DICTIONARY)
                        .map_err(|e| bad(e.to_string()))?;
                }
                Err(e) => return Err(bad(e.to_string())),
            }
            let used = (self.inflate.total_in() - in0) as usize;
            let made = self.inflate.total_out() - out0;
            input = &input[used..];
            if input.is_empty() && made == 0 && out.capacity() > out.len() {
                break;
            }
            if used == 0 && made == 0 && out.capacity() > out.len() && !input.is_empty() {
                // Only the dictionary request consumes nothing; a second stall is corruption.
                if self.inflate.total_in() == 0 {
                    continue;
                }
                return Err(bad("the compressed block does not progress".into()));
            }
        }
        parse_headers(&out).ok_or_else(|| bad("truncated name/value block".into()))
    }

    fn encode(&mut self, headers: &[(&str, &str)]) -> Result<Vec<u8>, SpdyError> {
        let mut plain = Vec::new();
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
            let in0 = self.deflate.total_in();
            self.deflate
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::Headers(e.to_string()))?;
            input = &input[(self.deflate.total_in() - in0) as usize..];
            // A sync flush is complete once it ends with room to spare.
            if input.is_empty() && out.capacity() > out.len() {
                break;
            }
        }
        Ok(out)
    }
}

fn parse_headers(b: &[u8]) -> Option<Vec<(String, String)>> {
    let n = be32(b, 0)? as usize;
    let mut at = 4;
    let mut out = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let kl = be32(b, at)? as usize;
        let k = b.get(at + 4..at + 4 + kl)?;
        at += 4 + kl;
        let vl = be32(b, at)? as usize;
        let v = b.get(at + 4..at + 4 + vl)?;
        at += 4 + vl;
        out.push((
            String::from_utf8_lossy(k).to_ascii_lowercase(),
            String::from_utf8_lossy(v).into_owned(),
        ));
    }
    Some(out)
}

/// A forwarded connection's two streams, as they arrive.
#[derive(Default)]
struct Pair {
    port: u16,
    error: Option<u32>,
    data: Option<u32>,
}

/// Serves one SPDY connection until the client goes away (or sends GOAWAY).
pub(crate) async fn serve<R, W>(mut reader: R, writer: W, target: Target) -> Result<(), SpdyError>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out, rx) = mpsc::channel::<Vec<u8>>(64);
    // Every frame written is traffic, as spdystream's idle-aware framer counts it.
    let (wrote, mut written) = tokio::sync::watch::channel(());
    let writing = tokio::spawn(write_frames(writer, rx, wrote));
    // Frames are read in their own task so that waiting for one can be interrupted by the
    // idle timer without losing half a frame.
    let (frames_tx, mut frames) = mpsc::channel(16);
    let reading = tokio::spawn(async move {
        loop {
            let frame = read_frame(&mut reader).await;
            let last = !matches!(frame, Ok(Some(_)));
            if frames_tx.send(frame).await.is_err() || last {
                return;
            }
        }
    });
    let _stop_reading = AbortOnDrop(reading);
    let mut codec = HeaderCodec::new();
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    let mut to_pod: HashMap<u32, mpsc::Sender<Bytes>> = HashMap::new();
    // Ends the forwarded connections when this SPDY connection ends.
    let done = target.stopped.child_token();
    let _cancel_on_return = done.clone().drop_guard();
    let idle = tokio::time::sleep(target.idle);
    tokio::pin!(idle);
    let result = loop {
        let frame = tokio::select! {
            frame = frames.recv() => frame,
            Ok(()) = written.changed() => {
                idle.as_mut().reset(tokio::time::Instant::now() + target.idle);
                continue;
            }
            () = &mut idle => {
                // The kubelet's streamingConnectionIdleTimeout: GOAWAY (last stream 0,
                // status OK) and the connection closes.
                tracing::debug!("sandbox portforward: idle for {:?}, closing", target.idle);
                let _ = out.send(control(GOAWAY, 0, &[0; 8])).await;
                break Ok(());
            }
        };
        idle.as_mut()
            .reset(tokio::time::Instant::now() + target.idle);
        let frame = match frame {
            Some(Ok(Some(f))) => f,
            Some(Ok(None)) | None => break Ok(()),
            Some(Err(e)) => break Err(e),
        };
        match frame {
            Frame::Data {
                stream,
                flags,
                data,
            } => {
                if let Some(tx) = to_pod.get(&stream)
                    && !data.is_empty()
                    && tx.send(Bytes::from(data)).await.is_err()
                {
                    to_pod.remove(&stream);
                }
                if flags & FLAG_FIN != 0 {
                    to_pod.remove(&stream);
                }
            }
            Frame::Control {
                kind: SYN_STREAM,
                body,
                ..
            } => {
                let stream = be32(&body, 0).ok_or(SpdyError::Short(SYN_STREAM))? & 0x7fff_ffff;
                let headers = codec.decode(body.get(10..).unwrap_or_default())?;
                let mut reply = stream.to_be_bytes().to_vec();
                reply.extend_from_slice(&codec.encode(&[])?);
                if out.send(control(SYN_REPLY, 0, &reply)).await.is_err() {
                    break Ok(());
                }
                let get = |name: &str| {
                    headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.as_str())
                };
                let kind = get("streamtype").unwrap_or("");
                let port = get("port").and_then(|p| p.parse::<u16>().ok());
                // Clients older than requestID pair the streams by id: data = error + 2.
                let key = match (get("requestid"), kind) {
                    (Some(r), _) => r.to_string(),
                    (None, "data") => stream.saturating_sub(2).to_string(),
                    (None, _) => stream.to_string(),
                };
                let Some(port) = port.filter(|p| *p > 0) else {
                    let _ = out.send(rst(stream)).await;
                    continue;
                };
                let pair = pairs.entry(key.clone()).or_default();
                pair.port = port;
                match kind {
                    "error" => pair.error = Some(stream),
                    "data" => pair.data = Some(stream),
                    _ => {
                        let _ = out.send(rst(stream)).await;
                        continue;
                    }
                }
                if let (Some(error), Some(data)) = (pair.error, pair.data) {
                    pairs.remove(&key);
                    let (tx, rx) = mpsc::channel(16);
                    to_pod.insert(data, tx);
                    let (target, out) = (target.clone(), out.clone());
                    let done = done.clone();
                    tokio::spawn(async move {
                        tokio::select! {
                            () = forward(target, port, data, error, rx, out) => {}
                            () = done.cancelled() => {}
                        }
                    });
                }
            }
            Frame::Control {
                kind: RST_STREAM,
                body,
                ..
            } => {
                if let Some(stream) = be32(&body, 0) {
                    to_pod.remove(&(stream & 0x7fff_ffff));
                }
            }
            Frame::Control {
                kind: PING, body, ..
            } => {
                // Client pings have odd ids; echoing is the whole answer.
                if out.send(control(PING, 0, &body)).await.is_err() {
                    break Ok(());
                }
            }
            Frame::Control { kind: GOAWAY, .. } => break Ok(()),
            // SETTINGS, WINDOW_UPDATE, HEADERS and unknown types carry nothing we act on.
            Frame::Control { .. } => {}
        }
    };
    done.cancel();
    drop(to_pod);
    drop(out);
    let _ = writing.await;
    result
}

fn rst(stream: u32) -> Vec<u8> {
    let mut body = stream.to_be_bytes().to_vec();
    // 1: PROTOCOL_ERROR
    body.extend_from_slice(&1u32.to_be_bytes());
    control(RST_STREAM, 0, &body)
}

/// Aborts a task when dropped: the frame reader ends with the connection it reads.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn write_frames<W: AsyncWrite + Unpin>(
    mut w: W,
    mut rx: mpsc::Receiver<Vec<u8>>,
    wrote: tokio::sync::watch::Sender<()>,
) {
    while let Some(frame) = rx.recv().await {
        if w.write_all(&frame).await.is_err() {
            return;
        }
        wrote.send_replace(());
        // Flush once the queue is empty: several frames may share one write.
        if rx.is_empty() && w.flush().await.is_err() {
            return;
        }
    }
    let _ = w.shutdown().await;
}

/// One forwarded connection: pod port to data stream and back; a failure to connect is
/// written on the error stream; both streams are finished when the pod side closes, the
/// error stream first.
async fn forward(
    target: Target,
    port: u16,
    data_id: u32,
    error_id: u32,
    mut from_client: mpsc::Receiver<Bytes>,
    out: mpsc::Sender<Vec<u8>>,
) {
    match target.open(port).await {
        Err(message) => {
            let _ = out.send(data(error_id, 0, message.as_bytes())).await;
        }
        Ok(tcp) => {
            let (mut rd, mut wr) = tcp.into_split();
            let up = async {
                while let Some(b) = from_client.recv().await {
                    if wr.write_all(&b).await.is_err() {
                        break;
                    }
                }
                let _ = wr.shutdown().await;
                // Half-closed: keep reading the pod's answer until it ends.
                std::future::pending::<()>().await;
            };
            let down = async {
                let mut buf = vec![0u8; MAX_DATA];
                loop {
                    match rd.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if out.send(data(data_id, 0, &buf[..n])).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            };
            tokio::select! {
                () = up => {}
                () = down => {}
            }
        }
    }
    // The kubelet's deferred closes run last-first: the error stream ends before the data
    // stream, so a client has the message by the time it reads the data's end.
    let _ = out.send(data(error_id, FLAG_FIN, &[])).await;
    let _ = out.send(data(data_id, FLAG_FIN, &[])).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_spdy3s() {
        // Length and Adler-32 as the SPDY/3 draft gives them (zlib checks the id on use).
        assert_eq!(DICTIONARY.len(), 1423);
        let (mut a, mut b) = (1u32, 0u32);
        for &x in DICTIONARY {
            a = (a + u32::from(x)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 0xe3c6_a7c2);
    }

    #[test]
    fn header_blocks_round_trip_across_one_zlib_stream_with_the_dictionary() {
        // A client compressor with the preset dictionary, as spdystream's framer writes.
        let mut client = Compress::new(Compression::default(), true);
        client.set_dictionary(DICTIONARY).unwrap();
        let mut server = HeaderCodec::new();
        for id in ["1", "2"] {
            let mut plain = Vec::new();
            let hs = [("streamtype", "data"), ("port", "4500"), ("requestid", id)];
            plain.extend_from_slice(&(hs.len() as u32).to_be_bytes());
            for (k, v) in hs {
                plain.extend_from_slice(&(k.len() as u32).to_be_bytes());
                plain.extend_from_slice(k.as_bytes());
                plain.extend_from_slice(&(v.len() as u32).to_be_bytes());
                plain.extend_from_slice(v.as_bytes());
            }
            let mut block = Vec::with_capacity(1024);
            client
                .compress_vec(&plain, &mut block, FlushCompress::Sync)
                .unwrap();
            let got = server.decode(&block).unwrap();
            assert_eq!(got[2], ("requestid".to_string(), id.to_string()));
        }
        // Our replies decode on a plain zlib stream (no dictionary flag set).
        let mut reader = Decompress::new(true);
        for _ in 0..2 {
            let block = server.encode(&[]).unwrap();
            let mut plain = Vec::with_capacity(64);
            reader
                .decompress_vec(&block, &mut plain, FlushDecompress::Sync)
                .unwrap();
            assert_eq!(plain, [0, 0, 0, 0]);
        }
    }

    #[tokio::test]
    async fn a_refused_connection_finishes_its_error_stream_before_its_data_stream() {
        use std::sync::Arc;
        let stopped = tokio_util::sync::CancellationToken::new();
        let backends = super::super::backends::Backends::start(stopped.clone())
            .await
            .unwrap();
        let target = Target {
            pod: "kibana-0".into(),
            uid: "u".into(),
            exists: Arc::new(|| true),
            app: "kibana".into(),
            backends: Arc::new(backends),
            stopped,
            idle: std::time::Duration::from_secs(60),
        };
        let (_to_pod, from_client) = mpsc::channel(1);
        let (out, mut frames) = mpsc::channel(8);
        // Port 1 is served by no application: the kubelet's refusal.
        forward(target, 1, 3, 1, from_client, out).await;
        let mut got = Vec::new();
        while let Ok(f) = frames.try_recv() {
            got.push((be32(&f, 0).unwrap(), f[4], f.len() > 8));
        }
        assert_eq!(
            got,
            [(1, 0, true), (1, FLAG_FIN, false), (3, FLAG_FIN, false)],
            "(stream, flags, carries text)"
        );
    }

    #[test]
    fn a_truncated_block_is_an_error_not_a_panic() {
        assert!(parse_headers(&[0, 0, 0, 2, 0, 0, 0, 9, b'a']).is_none());
    }
}
