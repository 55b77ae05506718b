//! Retries of API requests the server asks to repeat, as client-go does: `429 Too Many
//! Requests` after its `Retry-After`, and `5xx`, with exponential backoff, for reads only
//! (GET and HEAD: repeating them changes nothing). The caller's deadline bounds the whole;
//! this module only spaces the attempts. It knows nothing of what the requests are for.

use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use tower::BoxError;

/// How often and how far apart requests are repeated.
#[derive(Debug, Clone)]
pub struct Policy {
    attempt: u32,
    max_retries: u32,
    first_delay: Duration,
    max_delay: Duration,
}

impl Default for Policy {
    /// Up to 5 retries, 250 ms doubling to at most 4 s (about 10 s in all without a
    /// `Retry-After`); a server's `Retry-After` is honoured up to 10 s.
    fn default() -> Self {
        Policy::new(5, Duration::from_millis(250), Duration::from_secs(10))
    }
}

impl Policy {
    pub fn new(max_retries: u32, first_delay: Duration, max_delay: Duration) -> Self {
        Policy {
            attempt: 0,
            max_retries,
            first_delay,
            max_delay,
        }
    }

    /// The wait before retry number `self.attempt` (from 1): the server's `Retry-After` in
    /// seconds if it sent one, else the backoff; never more than `max_delay`.
    fn delay(&self, retry_after: Option<u64>) -> Duration {
        let backoff = self
            .first_delay
            .saturating_mul(2u32.saturating_pow(self.attempt.saturating_sub(1)))
            .min(self.max_delay.min(Duration::from_secs(4)));
        match retry_after {
            Some(s) => Duration::from_secs(s).min(self.max_delay),
            None => backoff,
        }
    }
}

/// A status worth repeating the request for: the server was busy or failed, not the request.
fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || (status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED)
}

impl<Res> tower::retry::Policy<Request<Body>, Response<Res>, BoxError> for Policy {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        req: &mut Request<Body>,
        result: &mut Result<Response<Res>, BoxError>,
    ) -> Option<Self::Future> {
        // A connection that failed is the dialer's to report, not ours to hide by repeating.
        let response = result.as_ref().ok()?;
        if !retryable(response.status()) || self.attempt >= self.max_retries {
            return None;
        }
        self.attempt += 1;
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let wait = self.delay(retry_after);
        tracing::debug!(
            status = response.status().as_u16(),
            attempt = self.attempt,
            wait_ms = wait.as_millis() as u64,
            uri = %req.uri(),
            "retrying"
        );
        Some(tokio::time::sleep(wait))
    }

    fn clone_request(&mut self, req: &Request<Body>) -> Option<Request<Body>> {
        if !matches!(*req.method(), Method::GET | Method::HEAD) {
            return None;
        }
        let mut copy = Request::builder()
            .method(req.method().clone())
            .uri(req.uri().clone())
            .version(req.version())
            .body(req.body().try_clone()?)
            .ok()?;
        *copy.headers_mut() = req.headers().clone();
        *copy.extensions_mut() = req.extensions().clone();
        Some(copy)
    }
}

/// The layer for kube's tower stack.
pub fn layer() -> tower::retry::RetryLayer<Policy> {
    tower::retry::RetryLayer::new(Policy::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::{Service, ServiceExt};

    /// A server that answers `statuses` in turn (then 200), counting requests.
    fn server(
        statuses: Vec<(u16, Option<&'static str>)>,
        seen: Arc<AtomicUsize>,
    ) -> impl Service<Request<Body>, Response = Response<String>, Error = BoxError, Future: Send> + Clone
    {
        tower::service_fn(move |_req: Request<Body>| {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let (code, retry_after) = statuses.get(n).copied().unwrap_or((200, None));
            async move {
                let mut r = Response::builder().status(code);
                if let Some(s) = retry_after {
                    r = r.header(http::header::RETRY_AFTER, s);
                }
                Ok::<_, BoxError>(r.body(String::new())?)
            }
        })
    }

    fn get() -> Request<Body> {
        Request::get("/api/v1/pods").body(Body::empty()).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn throttled_and_failing_reads_are_repeated_honouring_retry_after() {
        let seen = Arc::new(AtomicUsize::new(0));
        let svc = tower::ServiceBuilder::new().layer(layer()).service(server(
            vec![(429, Some("2")), (503, None), (500, None)],
            seen.clone(),
        ));
        let begun = tokio::time::Instant::now();
        let resp = svc.oneshot(get()).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(seen.load(Ordering::SeqCst), 4);
        // 2 s as the server asked, then 500 ms and 1 s of backoff.
        assert_eq!(begun.elapsed(), Duration::from_millis(3500));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_after_the_limit_and_writes_and_client_errors_are_never_repeated() {
        let seen = Arc::new(AtomicUsize::new(0));
        let svc = tower::ServiceBuilder::new()
            .layer(layer())
            .service(server(vec![(503, None); 10], seen.clone()));
        assert_eq!(svc.oneshot(get()).await.unwrap().status(), 503);
        assert_eq!(seen.load(Ordering::SeqCst), 6, "one try and five retries");

        let seen = Arc::new(AtomicUsize::new(0));
        let mut svc = tower::ServiceBuilder::new()
            .layer(layer())
            .service(server(vec![(503, None)], seen.clone()));
        let post = Request::post("/api/v1/namespaces")
            .body(Body::empty())
            .unwrap();
        let svc = svc.ready().await.unwrap();
        assert_eq!(svc.call(post).await.unwrap().status(), 503);
        assert_eq!(seen.load(Ordering::SeqCst), 1);

        let seen = Arc::new(AtomicUsize::new(0));
        let svc = tower::ServiceBuilder::new()
            .layer(layer())
            .service(server(vec![(403, None), (404, None)], seen.clone()));
        assert_eq!(svc.oneshot(get()).await.unwrap().status(), 403);
        assert_eq!(seen.load(Ordering::SeqCst), 1);
    }
}
