//! The HTTPS side: TLS, bearer-token authentication, routing of the API paths, content
//! negotiation (full objects, metadata-only, server-side tables) and Kubernetes `Status`
//! errors. Requests only read the world; nothing here changes it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::api::Api;
use super::api_faults::{self, Refusal};
use super::discovery::{group_list, group_of, resource_list, version};
use super::logs::{self, LogError, LogQuery};
use super::negotiate::negotiate;
use super::reply::{Reply, ReplyBody, json, reply, status};
use super::selector::{FieldSelector, LabelSelector};
use super::store::{self, ALL, Include, ListError, ListQuery, Res, Shape};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a watch stays open, as the API server's default request timeout.
const WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// Accepts connections until `cancel`, then lets open requests finish briefly and returns;
/// the listener is closed as soon as accepting stops.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    api: Arc<Api>,
    cancel: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(tls);
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.accept() => r,
        };
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: back off rather than spin.
                tracing::warn!("sandbox cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // As the API server's: Go sets TCP_NODELAY on every connection. Without it, a
        // port-forward's small frames wait on the peer's delayed ACK (40 ms on Linux).
        let _ = tcp.set_nodelay(true);
        let (acceptor, api, cancel) = (acceptor.clone(), api.clone(), cancel.clone());
        tracker.spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "sandbox TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "sandbox TLS handshake timed out");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |req| {
                let api = api.clone();
                // pods/portforward upgrades the connection; everything else is a plain answer.
                async move {
                    if let Some(delay) =
                        api.faults.delay().filter(|_| is_resource(req.uri().path()))
                    {
                        tokio::time::sleep(delay).await;
                    }
                    // Every request, whatever it asks, shows its bearer token first.
                    if !api.authorized(&req) {
                        tracing::debug!(method = %req.method(), path = req.uri().path(), "sandbox request without the token: 401");
                        return Ok(status(
                            StatusCode::UNAUTHORIZED,
                            "Unauthorized",
                            "Unauthorized",
                            None,
                        ));
                    }
                    if super::write::is_configmap_write(&req) {
                        return Ok(super::write::configmap(api, req).await);
                    }
                    Ok::<_, Infallible>(match super::portforward::pod_of(req.uri().path()) {
                        Some(pod) => super::portforward::accept(&api, pod, req),
                        // A ReplicaSet's pod deleted is replaced (`replace`).
                        None if req.method() == Method::DELETE => {
                            super::replace::delete(&api, &req)
                        }
                        None => api.respond(&req),
                    })
                }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(true);
            let conn = builder
                .serve_connection(TokioIo::new(tls), service)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, "sandbox connection ended: {e}");
                    }
                }
                _ = cancel.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
                }
            }
        });
    }
    drop(listener);
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(3), tracker.wait()).await;
}

/// A refusal from the `api-*` faults, with its `Retry-After`.
fn refused(r: Refusal) -> Reply {
    let code = StatusCode::from_u16(r.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut reply = reply(
        code,
        "application/json",
        serde_json::to_vec(&r.body).unwrap_or_default(),
    );
    if let Some(seconds) = r.retry_after {
        reply
            .headers_mut()
            .insert(hyper::header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    reply
}

/// A path under `/api/v1/` or `/apis/GROUP/VERSION/` that names a resource, not discovery.
fn is_resource(path: &str) -> bool {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    matches!(segs.as_slice(), ["api", _, _, ..] | ["apis", _, _, _, ..])
}

fn not_found_path() -> Reply {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource",
        None,
    )
}

impl Api {
    pub(crate) fn respond(self: &Arc<Self>, req: &Request<Incoming>) -> Reply {
        let path = req.uri().path();
        let r = super::reply::negotiate_encoding(req.headers(), self.route(req));
        // The User-Agent too, as an API server's audit log records it (who asked).
        let user_agent = req
            .headers()
            .get(hyper::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        tracing::debug!(method = %req.method(), path, status = r.status().as_u16(), user_agent, "sandbox request");
        r
    }

    fn route(self: &Arc<Self>, req: &Request<Incoming>) -> Reply {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return status(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                &format!(
                    "the sandbox is read-only: {} is not supported",
                    req.method()
                ),
                None,
            );
        }
        let segs: Vec<&str> = req
            .uri()
            .path()
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        match segs.as_slice() {
            ["version"] => json(&version()),
            ["openapi", "v3"] => super::write::openapi_v3(),
            ["openapi", "v3", "api", "v1"] => super::write::openapi_v3_core(),
            ["healthz" | "livez" | "readyz"] => {
                reply(StatusCode::OK, "text/plain; charset=utf-8", b"ok".to_vec())
            }
            ["api"] => json(&serde_json::json!({
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    { "clientCIDR": "0.0.0.0/0", "serverAddress": self.addr.to_string() }
                ],
            })),
            ["api", "v1"] => json(&resource_list("")),
            ["apis"] => json(&group_list()),
            [
                "apis",
                super::metrics::GROUP | super::metrics::AGGREGATOR,
                ..,
            ] => self.metrics(req, &segs[1..]),
            ["apis", group] => match group_of(group) {
                Some(g) => json(&g),
                None => not_found_path(),
            },
            ["apis", group, "v1"] if group_of(group).is_some() => json(&resource_list(group)),
            ["api", "v1", rest @ ..] => self.resource(req, "", rest),
            ["apis", group, "v1", rest @ ..] => self.resource(req, group, rest),
            _ => not_found_path(),
        }
    }

    /// `metrics.k8s.io/v1beta1` and the APIService that registers it (`metrics`); `path` is
    /// what follows `/apis/`.
    fn metrics(&self, req: &Request<Incoming>, path: &[&str]) -> Reply {
        use super::metrics::{self, AGGREGATOR, API_SERVICE, Asked, GROUP, MetricsError, VERSION};
        let now = jiff::Timestamp::now();
        let registered = now - jiff::SignedDuration::from_hours(100 * 24);
        let asked = match path {
            [GROUP] => return json(&metrics::group()),
            [GROUP, VERSION] => return json(&metrics::resources()),
            [AGGREGATOR] => return json(&metrics::aggregator_group()),
            [AGGREGATOR, "v1"] => return json(&metrics::aggregator_resources()),
            [AGGREGATOR, "v1", "apiservices"] => {
                return json(&serde_json::json!({
                    "kind": "APIServiceList",
                    "apiVersion": format!("{AGGREGATOR}/v1"),
                    "metadata": { "resourceVersion": self.world().resource_version.to_string() },
                    "items": [metrics::api_service(registered)],
                }));
            }
            [AGGREGATOR, "v1", "apiservices", API_SERVICE] => {
                return json(&metrics::api_service(registered));
            }
            [AGGREGATOR, "v1", "apiservices", name] => {
                return status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("apiservices.{AGGREGATOR} \"{name}\" not found"),
                    Some(("apiservices", name)),
                );
            }
            [GROUP, VERSION, rest @ ..] => Asked::of(rest),
            _ => None,
        };
        let Some(asked) = asked else {
            return not_found_path();
        };
        let query = Query::of(req.uri());
        let selector = query.get("labelSelector");
        match metrics::answer(&self.world(), &self.memory_use, asked, selector, now) {
            Ok(v) => json(&v),
            Err(MetricsError::NotFound(kind, name)) => status(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("{kind}.{GROUP} \"{name}\" not found"),
                Some((kind, &name)),
            ),
            Err(MetricsError::BadSelector(why)) => {
                status(StatusCode::BAD_REQUEST, "BadRequest", &why, None)
            }
        }
    }

    /// `services/[SCHEME:]NAME[:PORT]/proxy/...`: the sandbox runs no service's pods behind
    /// its Services, so it answers as the API server does for a Service with no ready
    /// endpoint (503, "no endpoints available for service"), or 404 for no such Service.
    fn service_proxy(&self, ns: &str, name_port: &str) -> Reply {
        let parts: Vec<&str> = name_port.split(':').collect();
        let name = match parts.as_slice() {
            [_, name, _] | [name, _] | [name] => *name,
            _ => name_port,
        };
        if self.world().get(Res::Services, ns, name).is_none() {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("services \"{name}\" not found"),
                Some(("services", name)),
            );
        }
        status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            &format!("no endpoints available for service \"{name_port}\""),
            None,
        )
    }

    fn resource(self: &Arc<Self>, req: &Request<Incoming>, group: &str, rest: &[&str]) -> Reply {
        let find = |plural: &str| {
            ALL.iter()
                .copied()
                .find(|r| r.kind().group == group && r.kind().plural == plural)
        };
        if let ["namespaces", ns, "pods", name, "log"] = rest
            && group.is_empty()
        {
            return self.pod_log(req, ns, name);
        }
        if let ["namespaces", ns, "services", name, "proxy", ..] = rest
            && group.is_empty()
        {
            return self.service_proxy(ns, name);
        }
        let (res, namespace, name) = match rest {
            [plural] => match find(plural) {
                Some(r) => (r, None, None),
                None => return not_found_path(),
            },
            [plural, name] => match find(plural) {
                Some(r) if !r.kind().namespaced => (r, None, Some(*name)),
                _ => return not_found_path(),
            },
            ["namespaces", ns, plural] => match find(plural) {
                Some(r) if r.kind().namespaced => (r, Some(*ns), None),
                _ => return not_found_path(),
            },
            ["namespaces", ns, plural, name] => match find(plural) {
                Some(r) if r.kind().namespaced => (r, Some(*ns), Some(*name)),
                _ => return not_found_path(),
            },
            _ => return not_found_path(),
        };
        let query = Query::of(req.uri());
        let param = |k: &str| query.get(k);
        let watch = matches!(param("watch"), Some("true" | "1"));
        let target = req
            .uri()
            .path_and_query()
            .map_or(req.uri().path(), |p| p.as_str());
        let asked = api_faults::Request {
            res,
            verb: match (watch, name) {
                (true, _) => "watch",
                (false, Some(_)) => "get",
                (false, None) => "list",
            },
            namespace,
            name,
            target,
            continued: param("continue").is_some_and(|c| !c.is_empty()),
        };
        if let Some(refusal) = self.faults.refuse(&asked) {
            return refused(refusal);
        }
        if watch {
            if param("sendInitialEvents") == Some("true") {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "the sandbox does not stream initial events; list, then watch",
                    None,
                );
            }
            let seconds = param("timeoutSeconds")
                .and_then(|t| t.parse::<u64>().ok())
                .unwrap_or(WATCH_TIMEOUT.as_secs())
                .min(WATCH_TIMEOUT.as_secs());
            let mut r = Response::new(ReplyBody::Watch {
                timeout: Box::pin(tokio::time::sleep(Duration::from_secs(seconds))),
                stopped: Box::pin(self.stopped.clone().cancelled_owned()),
            });
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            return r;
        }
        let accept = req
            .headers()
            .get(hyper::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let include = match param("includeObject") {
            Some("None") => Include::None,
            Some("Object") => Include::Object,
            _ => Include::Metadata,
        };
        let Some(shape) = negotiate(accept, include, name.is_none()) else {
            return status(
                StatusCode::NOT_ACCEPTABLE,
                "NotAcceptable",
                &format!(
                    "only the following media types are accepted: application/json, application/json;as=Table;v=v1;g=meta.k8s.io (asked for {accept:?})"
                ),
                None,
            );
        };
        let content_type = match shape {
            Shape::Full => "application/json",
            Shape::Table { beta: false, .. } => "application/json;as=Table;v=v1;g=meta.k8s.io",
            Shape::Table { beta: true, .. } => "application/json;as=Table;v=v1beta1;g=meta.k8s.io",
            Shape::Metadata if name.is_some() => {
                "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io"
            }
            Shape::Metadata => "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io",
        };
        let now = jiff::Timestamp::now().as_second();
        let world = &self.world();
        if let Some(name) = name {
            let ns = namespace.unwrap_or("");
            return match world.get(res, ns, name) {
                Some(e) => reply(
                    StatusCode::OK,
                    content_type,
                    store::write_one(world, res, e, shape, now),
                ),
                None => status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("{} \"{name}\" not found", qualified(res)),
                    Some((res.kind().plural, name)),
                ),
            };
        }
        let bad = |message: String| status(StatusCode::BAD_REQUEST, "BadRequest", &message, None);
        let labels = match LabelSelector::parse(param("labelSelector").unwrap_or("")) {
            Ok(l) => l,
            Err(e) => return bad(e.0),
        };
        let fields =
            match FieldSelector::parse(param("fieldSelector").unwrap_or(""), res.kind().fields) {
                Ok(f) => f,
                Err(e) => return bad(e.0),
            };
        let limit = match param("limit").map(str::parse::<usize>) {
            None => None,
            Some(Ok(l)) => Some(l),
            Some(Err(_)) => return bad("limit must be a non-negative integer".into()),
        };
        let q = ListQuery {
            limit,
            continue_token: param("continue")
                .filter(|c| !c.is_empty())
                .map(str::to_string),
            labels,
            fields,
        };
        match world.list(res, namespace, &q) {
            Ok(page) => reply(
                StatusCode::OK,
                content_type,
                store::write_list(world, res, &page, shape, now),
            ),
            Err(ListError::Expired) => status(
                StatusCode::GONE,
                "Expired",
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                None,
            ),
            Err(ListError::BadContinue(_)) => bad("invalid continue token".into()),
        }
    }
}

impl Api {
    /// `GET .../pods/NAME/log`: the generated log of the pod's container.
    fn pod_log(self: &Arc<Self>, req: &Request<Incoming>, namespace: &str, name: &str) -> Reply {
        let world = self.world();
        let Some(e) = world.get(Res::Pods, namespace, name) else {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("pods \"{name}\" not found"),
                Some(("pods", name)),
            );
        };
        let mut json = Vec::new();
        e.write_object(&mut json);
        let pod: k8s_openapi::api::core::v1::Pod = match serde_json::from_slice(&json) {
            Ok(p) => p,
            Err(e) => {
                return status(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    &format!("cannot read pod {name}: {e}"),
                    None,
                );
            }
        };
        let query = Query::of(req.uri());
        let param = |k: &str| query.get(k);
        let now = jiff::Timestamp::now().as_second();
        let since = match (param("sinceSeconds"), param("sinceTime")) {
            (Some(s), _) => s.parse::<i64>().ok().map(|s| now - s),
            (None, Some(t)) => t.parse::<jiff::Timestamp>().ok().map(|t| t.as_second()),
            (None, None) => None,
        };
        let q = LogQuery {
            container: param("container"),
            previous: param("previous") == Some("true"),
            tail: param("tailLines").and_then(|t| t.parse().ok()),
            timestamps: param("timestamps") == Some("true"),
            since,
            secrets: self.log_secrets,
        };
        let text = match logs::pod_log(&pod, q, now) {
            Ok(text) => text,
            Err(LogError::BadRequest(m)) => {
                return status(StatusCode::BAD_REQUEST, "BadRequest", &m, None);
            }
        };
        if param("follow") != Some("true") || q.previous {
            return reply(StatusCode::OK, "text/plain", text.into_bytes());
        }
        let started = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map_or(now, |t| t.0.as_second());
        let followed = super::follow::Followed {
            namespace: namespace.to_string(),
            name: name.to_string(),
            started,
            now,
            timestamps: q.timestamps,
        };
        super::follow::stream(self, text, followed)
    }
}

/// A request's query parameters, decoded; the first of a repeated key wins.
struct Query(Vec<(String, String)>);

impl Query {
    fn of(uri: &hyper::Uri) -> Query {
        Query(
            form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// `pods`, or `deployments.apps`, as the API server names resources in messages.
fn qualified(res: Res) -> String {
    let k = res.kind();
    if k.group.is_empty() {
        k.plural.to_string()
    } else {
        format!("{}.{}", k.plural, k.group)
    }
}
