//! The API server's own failures, switched on by the `api-*` faults: throttling (429 with
//! `Retry-After`), an expired continue token (410), an internal error (500), slowness and
//! RBAC refusals (403). Each refusal is a `metav1.Status` worded as the real API server words
//! it. Knows nothing of the world's objects: the server asks before it answers.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};

use super::Fault;
use super::fault::Forbidden;
use super::store::Res;

/// What `api-slow` adds to every resource request.
pub(crate) const SLOW: Duration = Duration::from_secs(1);

/// The user the sandbox's token authenticates as, as RBAC messages name it.
const USER: &str = "sandbox";

/// The switched-on API faults and what they remember (which requests were refused once).
#[derive(Debug, Default)]
pub(crate) struct ApiFaults {
    throttle: bool,
    error: bool,
    slow: bool,
    expire: bool,
    forbidden: Vec<Forbidden>,
    /// Requests (path and query) already throttled or failed once.
    refused_once: Mutex<HashSet<String>>,
    /// Kinds whose first continued list was already refused.
    expired: Mutex<HashSet<&'static str>>,
}

/// A resource request as the faults see it.
pub(crate) struct Request<'a> {
    pub res: Res,
    /// `get`, `list` or `watch`, as RBAC names verbs.
    pub verb: &'static str,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
    /// Path and query: a retry of the same request has the same one.
    pub target: &'a str,
    pub continued: bool,
}

/// An answer instead of the resource.
pub(crate) struct Refusal {
    pub code: u16,
    pub body: Status,
    pub retry_after: Option<u32>,
}

impl ApiFaults {
    pub(crate) fn new(faults: &[Fault]) -> ApiFaults {
        ApiFaults {
            throttle: faults.contains(&Fault::ApiThrottle),
            error: faults.contains(&Fault::ApiError),
            slow: faults.contains(&Fault::ApiSlow),
            expire: faults.contains(&Fault::ApiExpiredContinue),
            forbidden: faults
                .iter()
                .filter_map(|f| match f {
                    Fault::ApiForbidden(r) => Some(*r),
                    _ => None,
                })
                .collect(),
            ..ApiFaults::default()
        }
    }

    /// How long to wait before answering a request for a resource (not discovery).
    pub(crate) fn delay(&self) -> Option<Duration> {
        self.slow.then_some(SLOW)
    }

    /// The refusal the switched-on faults give `req`, if any. RBAC comes first, as the
    /// authorizer runs before the handler; then throttling, as priority and fairness do.
    pub(crate) fn refuse(&self, req: &Request<'_>) -> Option<Refusal> {
        let kind = req.res.kind();
        if self
            .forbidden
            .iter()
            .any(|f| f.plural == kind.plural && f.group == kind.group)
        {
            return Some(forbidden(req));
        }
        if req.verb == "watch" {
            return None;
        }
        if (self.throttle || self.error) && self.first_time(req.target) {
            return Some(if self.throttle {
                too_many_requests()
            } else {
                internal_error()
            });
        }
        if self.expire && req.continued {
            let first = self
                .expired
                .lock()
                .map(|mut seen| seen.insert(kind.plural))
                .unwrap_or(false);
            if first {
                return Some(expired());
            }
        }
        None
    }

    fn first_time(&self, target: &str) -> bool {
        self.refused_once
            .lock()
            .map(|mut seen| seen.insert(target.to_string()))
            .unwrap_or(false)
    }
}

fn status(code: u16, reason: &str, message: &str, details: Option<StatusDetails>) -> Refusal {
    Refusal {
        code,
        body: super::reply::failure(code, reason, message, details),
        retry_after: None,
    }
}

/// As apimachinery's `errors.NewForbidden` with the RBAC authorizer's reason: `<resource>
/// "<name>" is forbidden: User "<user>" cannot <verb> resource "<resource>" in API group
/// "<group>" in the namespace "<ns>"` (or `at the cluster scope`).
fn forbidden(req: &Request<'_>) -> Refusal {
    let kind = req.res.kind();
    let qualified = if kind.group.is_empty() {
        kind.plural.to_string()
    } else {
        format!("{}.{}", kind.plural, kind.group)
    };
    let subject = match req.name {
        Some(n) => format!("{qualified} \"{n}\""),
        None => qualified,
    };
    let scope = match req.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    let message = format!(
        "{subject} is forbidden: User \"{USER}\" cannot {} resource \"{}\" in API group \"{}\" {scope}",
        req.verb, kind.plural, kind.group
    );
    let details = StatusDetails {
        kind: Some(kind.plural.to_string()),
        group: (!kind.group.is_empty()).then(|| kind.group.to_string()),
        name: req.name.map(str::to_string),
        ..StatusDetails::default()
    };
    status(403, "Forbidden", &message, Some(details))
}

/// As apimachinery's `errors.NewTooManyRequests(message, 1)`, with the `Retry-After` header
/// the API server's priority-and-fairness filter sets.
fn too_many_requests() -> Refusal {
    let mut r = status(
        429,
        "TooManyRequests",
        "Too many requests, please try again later.",
        Some(StatusDetails {
            retry_after_seconds: Some(1),
            ..StatusDetails::default()
        }),
    );
    r.retry_after = Some(1);
    r
}

/// As apimachinery's `errors.NewInternalError(err)`: the cause repeated in `details.causes`.
fn internal_error() -> Refusal {
    let cause = "etcdserver: leader changed";
    status(
        500,
        "InternalError",
        &format!("Internal error occurred: {cause}"),
        Some(StatusDetails {
            causes: Some(vec![StatusCause {
                message: Some(cause.to_string()),
                ..StatusCause::default()
            }]),
            ..StatusDetails::default()
        }),
    )
}

/// As apimachinery's `errors.NewResourceExpired` for a continue token older than the last
/// compaction (the etcd3 store's wording).
pub(crate) fn expired() -> Refusal {
    status(
        410,
        "Expired",
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The refusal's body as the client reads it.
    fn wire(r: &Refusal) -> serde_json::Value {
        serde_json::to_value(&r.body).unwrap()
    }

    fn req(target: &str, continued: bool) -> Request<'_> {
        Request {
            res: Res::Secrets,
            verb: "list",
            namespace: Some("paragon"),
            name: None,
            target,
            continued,
        }
    }

    #[test]
    fn throttle_refuses_each_request_once_with_retry_after() {
        let f = ApiFaults::new(&[Fault::ApiThrottle]);
        let r = f.refuse(&req("/api/v1/secrets", false)).unwrap();
        assert_eq!((r.code, r.retry_after), (429, Some(1)));
        assert_eq!(wire(&r)["details"]["retryAfterSeconds"], 1);
        assert!(f.refuse(&req("/api/v1/secrets", false)).is_none());
        assert!(f.refuse(&req("/api/v1/secrets?limit=5", false)).is_some());
    }

    #[test]
    fn expired_refuses_the_first_continued_list_of_a_kind() {
        let f = ApiFaults::new(&[Fault::ApiExpiredContinue]);
        assert!(f.refuse(&req("/a", false)).is_none());
        assert_eq!(f.refuse(&req("/a?continue=x", true)).unwrap().code, 410);
        assert!(f.refuse(&req("/a?continue=x", true)).is_none());
    }

    #[test]
    fn forbidden_words_it_as_rbac_does() {
        let f = ApiFaults::new(&["api-forbidden=secrets".parse().unwrap()]);
        let r = f.refuse(&req("/x", false)).unwrap();
        assert_eq!(r.code, 403);
        assert_eq!(
            wire(&r)["message"],
            "secrets is forbidden: User \"sandbox\" cannot list resource \"secrets\" in API group \"\" in the namespace \"paragon\""
        );
        assert_eq!(
            wire(&r)["details"],
            serde_json::json!({ "kind": "secrets" })
        );
        assert_eq!(wire(&r)["kind"], "Status");
        assert_eq!(wire(&r)["status"], "Failure");
    }
}
