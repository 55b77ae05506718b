//! Which route a health probe takes to a service, by the rule forwards follow: `--via` says
//! `bastion` or `api`, or `auto`, where the service's own `via` decides; `auto` dials from
//! the bastion first and, when the bastion cannot connect and the target is a Service name,
//! goes through the API server's `pods/portforward` (the `Kube` dialer), as `kubectl
//! port-forward svc/NAME` would. With `--local`, "the bastion" is this machine.
//!
//! Knows nothing of which check asks, nor of SSH; the API route is any dialer it is given.

use std::sync::Arc;

use super::http::{self, HttpError, Response, Transport};
use crate::config::{Scheme, Service, Via};
use crate::dial::{DialError, Dialer};
use crate::kube::portforward::service_of;

pub use crate::kube::portforward::Route;

/// The ways a probe can reach a service.
#[derive(Clone)]
pub struct Routes {
    /// The bastion's dialer (this machine's with `--local`).
    pub bastion: Arc<dyn Dialer>,
    /// Connections through the API server's `pods/portforward`, or why there are none (no
    /// credentials, no cluster).
    pub api: Result<Arc<dyn Dialer>, String>,
    /// `--via`; `auto` lets each service's `via` decide.
    pub via: Via,
}

impl Routes {
    /// The routes from `bastion`, and through the API server of `kube` when there is one.
    pub fn new(bastion: Arc<dyn Dialer>, kube: &Result<kube::Client, String>, via: Via) -> Self {
        let api = kube.clone().map(|client| {
            let api = crate::kube::portforward::Kube::new(
                client,
                crate::kube::NAMESPACE,
                bastion.describe(),
            );
            Arc::new(api) as Arc<dyn Dialer>
        });
        Routes { bastion, api, via }
    }

    /// The rule for a service whose profile says `service`: `--via` wins unless it is `auto`.
    pub fn via(&self, service: Via) -> Via {
        match self.via {
            Via::Auto => service,
            chosen => chosen,
        }
    }

    /// Whether `auto` may fall back to the API for `host`: there is an API, and `host` names
    /// a Service (an address or an outside name has no pod behind it to forward to).
    pub fn api_reaches(&self, host: &str) -> bool {
        self.api.is_ok() && service_of(host).is_some()
    }

    /// `GET path` on `host:port` by `route`, spoken as `transport` says on either route (an
    /// `https` target is verified against its `ca_file` through the API too).
    pub async fn get(
        &self,
        route: Route,
        host: &str,
        port: u16,
        path: &str,
        transport: Transport<'_>,
    ) -> Result<Response, HttpError> {
        let dialer = match (route, &self.api) {
            (Route::Bastion, _) => &self.bastion,
            (Route::Api, Ok(api)) => api,
            (Route::Api, Err(why)) => {
                return Err(HttpError::NoApiRoute {
                    target: crate::dial::target(host, port),
                    reason: why.clone(),
                });
            }
        };
        http::get(dialer.as_ref(), host, port, path, transport).await
    }

    /// `GET path` on `svc` from the bastion, unless `via` says the API. `Bastion::Answered`:
    /// the bastion's answer is the answer (an HTTP error included); `Bastion::TakeApi`: take
    /// the API route, with why the bastion could not connect when `auto` fell back.
    pub async fn ask_bastion(&self, svc: &Service, path: &str) -> Bastion {
        let via = self.via(svc.via);
        if via == Via::Api {
            return Bastion::TakeApi(None);
        }
        let answer = self
            .get(Route::Bastion, &svc.host, svc.port, path, transport(svc))
            .await;
        match answer {
            Err(HttpError::Dial(e)) if via == Via::Auto && self.api_reaches(&svc.host) => {
                tracing::debug!("{}: {e}; taking the API route", svc.name);
                Bastion::TakeApi(Some(e))
            }
            answer => Bastion::Answered(answer),
        }
    }

    /// `GET path` on `svc` by the rule (`ask_bastion`, then the API route at its port), and
    /// the route that answered.
    pub async fn get_service(
        &self,
        svc: &Service,
        path: &str,
    ) -> (Result<Response, HttpError>, Route) {
        match self.ask_bastion(svc, path).await {
            Bastion::Answered(answer) => (answer, Route::Bastion),
            Bastion::TakeApi(_) => (
                self.get(Route::Api, &svc.host, svc.port, path, transport(svc))
                    .await,
                Route::Api,
            ),
        }
    }

    /// How a finding names its route: `dialed from bastion b:22`, `dialed from this
    /// machine`, `through the Kubernetes API (pods/portforward)`.
    pub fn describe(&self, route: Route) -> String {
        match route {
            Route::Bastion => format!("dialed from {}", self.bastion.describe()),
            Route::Api => "through the Kubernetes API (pods/portforward)".to_string(),
        }
    }
}

/// What the bastion route made of a request.
pub enum Bastion {
    Answered(Result<Response, HttpError>),
    /// The API route is the one to take; `Some`: the bastion could not connect (`auto`).
    TakeApi(Option<DialError>),
}

/// How a dialed service is spoken to: an `https` one over TLS, verified for its host name
/// against its `ca_file`, else the system's roots.
pub fn transport(svc: &Service) -> Transport<'_> {
    match svc.scheme {
        Scheme::Http => Transport::Plain,
        Scheme::Https => Transport::Tls {
            ca_file: svc.ca_file.as_deref(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dial::Direct;

    fn routes(via: Via, api: bool) -> Routes {
        let direct: Arc<dyn Dialer> = Arc::new(Direct::default());
        Routes {
            bastion: direct.clone(),
            api: if api {
                Ok(direct)
            } else {
                Err("no kubeconfig".into())
            },
            via,
        }
    }

    #[test]
    fn the_flag_wins_over_the_services_via_unless_it_is_auto() {
        assert_eq!(routes(Via::Auto, true).via(Via::Api), Via::Api);
        assert_eq!(routes(Via::Auto, true).via(Via::Auto), Via::Auto);
        assert_eq!(routes(Via::Bastion, true).via(Via::Api), Via::Bastion);
        assert_eq!(routes(Via::Api, true).via(Via::Bastion), Via::Api);
    }

    #[test]
    fn auto_falls_back_to_the_api_only_for_service_names_and_with_an_api() {
        let r = routes(Via::Auto, true);
        assert!(r.api_reaches("grafana.paragon.svc.cluster.local"));
        assert!(!r.api_reaches("203.0.113.9"));
        assert!(!r.api_reaches("grafana.example.com"));
        assert!(!routes(Via::Auto, false).api_reaches("grafana"));
    }

    /// The API route speaks TLS end to end as the bastion route does: an `https` target is
    /// verified against its `ca_file` (here the sandbox's own HTTPS server and CA stand in
    /// for a TLS service behind the route).
    #[tokio::test]
    async fn an_https_target_is_verified_against_its_ca_file_on_the_api_route() {
        let sandbox = crate::sandbox::Sandbox::start(Default::default())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, sandbox.ca_pem()).unwrap();
        let host = sandbox.addr().ip().to_string();
        let port = sandbox.addr().port();
        let r = routes(Via::Api, true);
        let trusted = Transport::Tls { ca_file: Some(&ca) };
        let answer = r.get(Route::Api, &host, port, "/version", trusted).await;
        // Verified, then refused for want of a token: TLS is what this pins.
        assert_eq!(answer.map(|a| a.status).ok(), Some(401));
        let system = Transport::Tls { ca_file: None };
        match r.get(Route::Api, &host, port, "/version", system).await {
            Err(HttpError::Tls { reason, .. }) => {
                assert!(reason.starts_with("certificate not trusted"), "{reason}")
            }
            Err(e) => panic!("{e}"),
            Ok(a) => panic!("answered {} without its CA", a.status),
        }
        sandbox.shutdown().await;
    }

    #[tokio::test]
    async fn the_api_route_without_an_api_says_why() {
        let e = routes(Via::Api, false)
            .get(Route::Api, "grafana", 4500, "/", Transport::Plain)
            .await
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "no route to grafana:4500 through the Kubernetes API: no kubeconfig"
        );
    }
}
