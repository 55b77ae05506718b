//! The answers of the API server: a whole body, a watch that carries no event or a followed log, JSON, and the
//! Kubernetes `Status` every refusal is written as. Knows nothing of routing or the world.

use std::convert::Infallible;
use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::StatusCode;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusDetails};
use tokio_util::sync::WaitForCancellationFutureOwned;

pub(crate) type Reply = Response<ReplyBody>;

/// A whole answer, or a watch: a stream that never carries an event (the world never
/// changes) and ends at its timeout or when the sandbox stops.
pub(crate) enum ReplyBody {
    Whole(Full<Bytes>),
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
            ReplyBody::Whole(full) => Pin::new(full).poll_frame(cx),
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
            ReplyBody::Whole(full) => full.is_end_stream(),
            ReplyBody::Watch { .. } | ReplyBody::Lines(_) => false,
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            ReplyBody::Whole(full) => full.size_hint(),
            ReplyBody::Watch { .. } | ReplyBody::Lines(_) => hyper::body::SizeHint::default(),
        }
    }
}

pub(crate) fn reply(code: StatusCode, content_type: &'static str, body: Vec<u8>) -> Reply {
    let mut r = Response::new(ReplyBody::Whole(Full::new(Bytes::from(body))));
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
