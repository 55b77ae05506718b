//! `GET .../pods/NAME/log?follow=true`: the log so far, then the lines the container writes
//! while the request stays open, as the kubelet streams them. The stream ends when the pod is
//! gone (deleted and replaced, `replace`), when the sandbox stops, or when the client goes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::Response;
use hyper::header::{CONTENT_TYPE, HeaderValue};

use super::api::Api;
use super::logs::{self, LogQuery};
use super::reply::{Reply, ReplyBody};
use super::store::Res;

/// How often the follower looks for new lines and for the pod.
const TICK: Duration = Duration::from_millis(500);

/// The pod whose log is followed, and from when its new lines are written.
pub(crate) struct Followed {
    pub namespace: String,
    pub name: String,
    /// When its running container started (no probe lines before it).
    pub started: i64,
    /// The second the first answer covered.
    pub now: i64,
    pub timestamps: bool,
}

/// The streamed answer: `initial`, then the lines written after `f.now`.
pub(crate) fn stream(api: &Arc<Api>, initial: String, f: Followed) -> Reply {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let api = api.clone();
    tokio::spawn(async move {
        if tx.send(Bytes::from(initial)).await.is_err() {
            return;
        }
        let mut covered = f.now;
        loop {
            tokio::select! {
                _ = api.stopped.cancelled() => return,
                _ = tx.closed() => return,
                _ = tokio::time::sleep(TICK) => {}
            }
            if api.world().get(Res::Pods, &f.namespace, &f.name).is_none() {
                return;
            }
            let now = jiff::Timestamp::now().as_second();
            let lines = logs::probe_lines(covered, now, f.started);
            covered = now;
            if lines.is_empty() {
                continue;
            }
            let q = LogQuery {
                timestamps: f.timestamps,
                ..LogQuery::default()
            };
            if tx.send(Bytes::from(logs::render(&lines, q))).await.is_err() {
                return;
            }
        }
    });
    let mut r = Response::new(ReplyBody::Lines(rx));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}
