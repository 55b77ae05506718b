//! `DELETE .../pods/{name}` for a pod a ReplicaSet owns: one of the two writes the sandbox
//! takes (ConfigMaps, `write`, are the other).
//! As on a real cluster, the ReplicaSet replaces the pod at once: a new pod with a new name
//! (`<replicaset>-<suffix>`), a new uid, the same labels and spec, created and started now,
//! Running and Ready. The old one is gone. This is how tests replace a monitoring pod under
//! a live port-forward (a rollout, the daily restart), and `kubectl delete pod` does it too.
//!
//! The answer is the deleted pod, as the API server returns it. Other deletions are refused:
//! the rest of the sandbox stays read-only. No events are written for the replacement.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::api::Api;
use super::reply::{Reply, reply_json, status};
use super::rng::Rng;
use super::store::{Cell, Entry, Res, World};

/// Answers a DELETE request.
pub(crate) fn delete(api: &Api, req: &Request<Incoming>) -> Reply {
    let segs: Vec<&str> = req.uri().path().split('/').skip(1).collect();
    let ["api", "v1", "namespaces", namespace, "pods", name] = segs.as_slice() else {
        return status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "the sandbox is read-only: only pods a ReplicaSet owns can be deleted",
            None,
        );
    };
    // One replacement at a time: the write lock is held from reading the world to swapping it.
    let mut guard = match api.world.write() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    match replaced(&guard, namespace, name, jiff::Timestamp::now().as_second()) {
        Ok((world, old)) => {
            *guard = Arc::new(world);
            reply_json(&old)
        }
        Err(Refused::NotFound) => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("pods \"{name}\" not found"),
            Some(("pods", name)),
        ),
        Err(Refused::NoReplicaSet) => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("the sandbox replaces only pods a ReplicaSet owns; {name} has none"),
            None,
        ),
        Err(Refused::Internal(m)) => {
            status(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", &m, None)
        }
    }
}

/// Why a pod was not replaced.
enum Refused {
    NotFound,
    NoReplicaSet,
    Internal(String),
}

/// The world with pod `namespace/name` replaced, and the deleted pod.
fn replaced(world: &World, namespace: &str, name: &str, now: i64) -> Result<(World, Pod), Refused> {
    let internal = |m: String| Refused::Internal(m);
    let Some(entry) = world.get(Res::Pods, namespace, name) else {
        return Err(Refused::NotFound);
    };
    let mut json = Vec::new();
    entry.write_object(&mut json);
    let old: Pod = serde_json::from_slice(&json).map_err(|e| internal(e.to_string()))?;
    let Some(owner) = old
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == "ReplicaSet")
    else {
        return Err(Refused::NoReplicaSet);
    };
    let time = |t: i64| jiff::Timestamp::from_second(t).ok().map(Time);
    let mut rng = Rng::new(now.unsigned_abs() ^ name.len() as u64);
    let mut pod = old.clone();
    let new_name = format!("{}-{}", owner.name, rng.suffix(5));
    pod.metadata.name = Some(new_name.clone());
    pod.metadata.uid = Some(rng.uid());
    pod.metadata.creation_timestamp = time(now);
    if let Some(status) = pod.status.as_mut() {
        status.start_time = time(now);
        for c in status.conditions.iter_mut().flatten() {
            c.last_transition_time = time(now);
        }
        for cs in status.container_statuses.iter_mut().flatten() {
            cs.restart_count = 0;
            cs.last_state = None;
            if let Some(running) = cs.state.as_mut().and_then(|s| s.running.as_mut()) {
                running.started_at = time(now);
            }
        }
    }
    let mut cells = entry.cells.to_vec();
    // The table row: NAME, READY, STATUS, RESTARTS, AGE, ... (see generate's pod rows).
    if let Some(c) = cells.get_mut(0) {
        *c = Cell::text(new_name.as_str());
    }
    if let Some(c) = cells.get_mut(3) {
        *c = Cell::Restarts(0, None);
    }
    if let Some(c) = cells.get_mut(4) {
        *c = Cell::Age(now);
    }
    let fields = entry.fields.iter().map(|f| f.to_string()).collect();
    let new = Entry::new(Res::Pods, pod, fields, cells).map_err(|e| internal(e.to_string()))?;
    let mut deleted = old;
    deleted.metadata.deletion_timestamp = time(now);
    deleted.metadata.deletion_grace_period_seconds = Some(0);
    Ok((world.replacing(Res::Pods, namespace, name, new), deleted))
}
