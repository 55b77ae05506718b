//! Which route a forward's connections take: dialed from the bastion, or through the API
//! server's `pods/portforward` (the `Kube` dialer) for a bastion outside the cluster network,
//! where Service names do not resolve and ClusterIPs do not route.
//!
//! The route is chosen once per forward, before serving, and announced on its listening line:
//! `--via`/`via` say `api` or `bastion`, or `auto`: the bastion if it can open a connection
//! to the target, else the API when the target is a Service name. Each new session (the
//! supervisor reconnects) gets a `Routed` dialer over its own SSH session. This module
//! knows nothing of SSH or clap.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Via;
use crate::dial::{DialFuture, Dialer, OpenFuture};
use crate::kube::portforward::{Kube, Protocols, service_of};

use super::Session;

/// How a forward reaches its target (the health report's findings name the same routes),
/// and on the API route, how its connections travel.
pub use crate::kube::portforward::{Protocol, Route};

/// How long `auto` waits for the bastion to open a probe connection before it takes the API.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The route for `host:port`: as `via` says, or for `auto` by trying the bastion first.
pub async fn choose(bastion: &dyn Dialer, via: Via, host: &str, port: u16) -> Route {
    match via {
        Via::Api => Route::Api,
        Via::Bastion => Route::Bastion,
        // Only Service names have a pod behind them to port-forward to.
        Via::Auto if service_of(host).is_none() => Route::Bastion,
        Via::Auto => match tokio::time::timeout(PROBE_TIMEOUT, bastion.connect(host, port)).await {
            Ok(Ok(_probe)) => Route::Bastion,
            Ok(Err(e)) => {
                tracing::info!("{host}:{port} not reachable from the bastion ({e}): the API route");
                Route::Api
            }
            Err(_) => {
                tracing::info!("{host}:{port} did not answer the bastion: the API route");
                Route::Api
            }
        },
    }
}

/// Everything a session needs to route: the kubeconfig (fetched once), where its API server
/// is dialed, and the targets that take the API route.
#[derive(Clone)]
pub struct Plan {
    pub kubeconfig: kube::config::Kubeconfig,
    pub options: crate::kube::Options,
    /// Where bare Service names are looked up.
    pub namespace: String,
    pub api_targets: Arc<HashSet<(String, u16)>>,
    /// What the sessions' API routes have learned of the API server's protocols.
    pub protocols: Protocols,
}

impl Plan {
    /// `session` with a dialer that sends the API targets through `pods/portforward` over
    /// the session's own dialer, and everything else to the session's dialer directly.
    pub async fn route(&self, session: Session) -> Result<Session, crate::kube::KubeError> {
        Ok(self.route_api(session).await?.0)
    }

    /// As `route`, with each API target's pod resolved and its tunnel opened before the
    /// first connection (which then costs no upgrade), and the protocol they take.
    pub async fn route_prepared(
        &self,
        session: Session,
    ) -> Result<(Session, Protocol), crate::kube::KubeError> {
        let (session, api) = self.route_api(session).await?;
        let mut protocol = api.protocol();
        for (host, port) in self.api_targets.iter() {
            protocol = api.prepare(host, *port).await;
        }
        Ok((session, protocol))
    }

    async fn route_api(&self, session: Session) -> Result<(Session, Kube), crate::kube::KubeError> {
        let client = crate::kube::client(
            session.dialer.clone(),
            self.kubeconfig.clone(),
            &self.options,
        )
        .await?;
        let api = Kube::new(client, self.namespace.clone(), session.dialer.describe())
            .sharing(self.protocols.clone());
        let routed = Session {
            dialer: Arc::new(Routed {
                bastion: session.dialer,
                api: api.clone(),
                api_targets: self.api_targets.clone(),
            }),
            ended: session.ended,
        };
        Ok((routed, api))
    }
}

/// Dials the API targets through the API, the rest through the bastion.
struct Routed {
    bastion: Arc<dyn Dialer>,
    api: Kube,
    api_targets: Arc<HashSet<(String, u16)>>,
}

impl Routed {
    fn via(&self, host: &str, port: u16) -> &dyn Dialer {
        if self.api_targets.contains(&(host.to_string(), port)) {
            &self.api
        } else {
            self.bastion.as_ref()
        }
    }
}

impl Dialer for Routed {
    fn connect<'a>(&'a self, host: &'a str, port: u16) -> DialFuture<'a> {
        self.via(host, port).connect(host, port)
    }

    fn describe(&self) -> String {
        self.bastion.describe()
    }

    fn open<'a>(&'a self, host: &'a str, port: u16) -> OpenFuture<'a> {
        self.via(host, port).open(host, port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dial::Direct;

    #[tokio::test]
    async fn auto_takes_the_bastion_when_it_connects_and_the_api_when_it_cannot() {
        let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = open.local_addr().unwrap().port();
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = closed.local_addr().unwrap().port();
        drop(closed);
        let d = Direct::default();
        assert_eq!(
            choose(&d, Via::Auto, "localhost", port).await,
            Route::Bastion
        );
        assert_eq!(choose(&d, Via::Auto, "localhost", dead).await, Route::Api);
        // Not a Service name: there is no API route to take.
        assert_eq!(
            choose(&d, Via::Auto, "127.0.0.1", dead).await,
            Route::Bastion
        );
        assert_eq!(choose(&d, Via::Api, "localhost", port).await, Route::Api);
        assert_eq!(
            choose(&d, Via::Bastion, "localhost", dead).await,
            Route::Bastion
        );
    }
}
