//! The answers of the API server: a whole body, a watch that carries no event or a followed
//! log, JSON, and the Kubernetes `Status` every refusal is written as, gzipped as the API
//! server gzips. Knows nothing of routing or the world.

use std::convert::Infallible;
use std::future::Future as _;
use std::io::Write as _;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue, VARY};
use hyper::{HeaderMap, Response, StatusCode};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusDetails};
use tokio_util::sync::WaitForCancellationFutureOwned;

pub(crate) type Reply = Response<ReplyBody>;

/// A whole answer, or a watch: a stream that never carries an event (the world never
/// changes) and ends at its timeout or when the sandbox stops.
pub(crate) enum ReplyBody {
    /// The body, until it is sent (`None`: sent, or empty).
    Whole(Option<Bytes>),
    Watch {
        timeout: Pin<Box<tokio::time::Sleep>>,
        stopped: Pin<Box<WaitForCancellationFutureOwned>>,
    },
    /// A followed log: chunks as they are written, until the sender goes.
    Lines(tokio::sync::mpsc::Receiver<Bytes>),
}

impl hyper::body::Body for ReplyBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ReplyBody::Whole(body) => {
                Poll::Ready(body.take().map(|b| Ok(hyper::body::Frame::data(b))))
            }
            ReplyBody::Watch { timeout, stopped } => {
                if timeout.as_mut().poll(cx).is_ready() || stopped.as_mut().poll(cx).is_ready() {
                    Poll::Ready(None)
                } else {
                    Poll::Pending
                }
            }
            ReplyBody::Lines(rx) => rx
                .poll_recv(cx)
                .map(|chunk| chunk.map(|b| Ok(hyper::body::Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReplyBody::Whole(body) => body.is_none(),
            ReplyBody::Watch { .. } | ReplyBody::Lines(_) => false,
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            ReplyBody::Whole(body) => {
                hyper::body::SizeHint::with_exact(body.as_ref().map_or(0, |b| b.len() as u64))
            }
            ReplyBody::Watch { .. } | ReplyBody::Lines(_) => hyper::body::SizeHint::default(),
        }
    }
}

pub(crate) fn reply(code: StatusCode, content_type: &'static str, body: Vec<u8>) -> Reply {
    let body = (!body.is_empty()).then(|| Bytes::from(body));
    let mut r = Response::new(ReplyBody::Whole(body));
    *r.status_mut() = code;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

pub(crate) fn json(value: &serde_json::Value) -> Reply {
    reply(
        StatusCode::OK,
        "application/json",
        serde_json::to_vec(value).unwrap_or_default(),
    )
}

/// `value` as a JSON answer.
pub(crate) fn reply_json<T: serde::Serialize>(value: &T) -> Reply {
    reply(
        StatusCode::OK,
        "application/json",
        serde_json::to_vec(value).unwrap_or_default(),
    )
}

/// A `metav1.Status` failure, as the API server writes every refusal: the one shape of the
/// handlers' errors and of the `api-*` faults' refusals.
pub(crate) fn failure(
    code: u16,
    reason: &str,
    message: &str,
    details: Option<StatusDetails>,
) -> Status {
    Status {
        code: Some(i32::from(code)),
        details,
        message: Some(message.to_string()),
        reason: Some(reason.to_string()),
        status: Some("Failure".to_string()),
        ..Status::default()
    }
}

/// A Kubernetes `Status` failure as the reply, with the kind and name it is about.
pub(crate) fn status(
    code: StatusCode,
    reason: &str,
    message: &str,
    details: Option<(&str, &str)>,
) -> Reply {
    let details = details.map(|(kind, name)| StatusDetails {
        kind: Some(kind.to_string()),
        name: Some(name.to_string()),
        ..StatusDetails::default()
    });
    let v = failure(code.as_u16(), reason, message, details);
    let mut r = reply(
        code,
        "application/json",
        serde_json::to_vec(&v).unwrap_or_default(),
    );
    if code == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"kubernetes\""),
        );
    }
    r
}

/// Bodies larger than this go gzipped to a client that accepts it: the API server's
/// `defaultGzipThresholdBytes` (k8s.io/apiserver, endpoints/handlers/responsewriters).
const GZIP_THRESHOLD: usize = 128 * 1024;

/// `reply` as the API server sends it to a client whose request had `headers`: with the
/// `APIResponseCompression` feature (on by default since 1.16), an object or list serialized
/// to more than 128 KiB of JSON goes gzipped at level 1 (`defaultGzipContentEncodingLevel`),
/// with `Content-Encoding: gzip` and `Vary: Accept-Encoding`, when the request's
/// `Accept-Encoding` names gzip (client-go asks for it unless told `disable-compression`).
/// Watches, logs and upgrades are not serialized objects and go as they are.
pub(crate) fn negotiate_encoding(headers: &HeaderMap, mut reply: Reply) -> Reply {
    let json = reply
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let ReplyBody::Whole(Some(body)) = reply.body() else {
        return reply;
    };
    if !json || body.len() <= GZIP_THRESHOLD || !accepts_gzip(headers) {
        return reply;
    }
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 8),
        flate2::Compression::new(1),
    );
    // Writing into a Vec cannot fail.
    let Ok(zipped) = gz.write_all(body).and_then(|()| gz.finish()) else {
        return reply;
    };
    *reply.body_mut() = ReplyBody::Whole(Some(Bytes::from(zipped)));
    let h = reply.headers_mut();
    h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    h.append(VARY, HeaderValue::from_static("Accept-Encoding"));
    reply
}

/// Whether `Accept-Encoding` names gzip, as the API server reads it (`negotiateContentEncoding`):
/// the header's first value split at commas, each coding trimmed and compared as is.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get(ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|coding| coding.trim() == "gzip"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn asking(accept_encoding: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = accept_encoding {
            h.insert(ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn body(r: &Reply) -> &[u8] {
        match r.body() {
            ReplyBody::Whole(Some(b)) => b,
            _ => &[],
        }
    }

    /// A JSON list past the threshold, as the API server would write it.
    fn large() -> Vec<u8> {
        let items: Vec<_> = (0..8000)
            .map(|i| serde_json::json!({"metadata": {"name": format!("pod-{i}")}}))
            .collect();
        let v =
            serde_json::to_vec(&serde_json::json!({"kind": "PodList", "items": items})).unwrap();
        assert!(v.len() > GZIP_THRESHOLD);
        v
    }

    #[test]
    fn a_large_json_answer_goes_gzipped_to_a_client_that_asks() {
        let plain = large();
        let r = negotiate_encoding(
            &asking(Some("deflate, gzip")),
            reply(StatusCode::OK, "application/json", plain.clone()),
        );
        assert_eq!(r.headers()[CONTENT_ENCODING], "gzip");
        assert_eq!(r.headers()[VARY], "Accept-Encoding");
        assert!(body(&r).len() < plain.len() / 4, "{}", body(&r).len());
        let mut inflated = Vec::new();
        flate2::read::GzDecoder::new(body(&r))
            .read_to_end(&mut inflated)
            .unwrap();
        assert_eq!(inflated, plain);
        let hint = hyper::body::Body::size_hint(r.body());
        assert_eq!(hint.exact(), Some(body(&r).len() as u64));
    }

    #[test]
    fn small_answers_other_types_and_clients_that_do_not_ask_go_as_they_are() {
        let plain = large();
        let cases = [
            (None, "application/json", plain.clone()),
            (Some("br"), "application/json", plain.clone()),
            // The API server compares each coding as is.
            (Some("gzip;q=1.0"), "application/json", plain.clone()),
            (Some("gzip"), "text/plain", plain.clone()),
            (
                Some("gzip"),
                "application/json",
                plain[..GZIP_THRESHOLD].to_vec(),
            ),
        ];
        for (accept, content_type, b) in cases {
            let r = negotiate_encoding(
                &asking(accept),
                reply(StatusCode::OK, content_type, b.clone()),
            );
            assert!(
                r.headers().get(CONTENT_ENCODING).is_none(),
                "{accept:?} {content_type}"
            );
            assert_eq!(body(&r), &b[..]);
        }
    }
}
