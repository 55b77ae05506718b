//! The agent's detached forwards: listeners bound with `forward::bind` and served with
//! `forward::run` over the kept session, by name, through the bastion or (for the targets the
//! client routed so) the Kubernetes API. Asking again for a forward that is live with the same
//! target and route returns it as it is; the same name with another target or route replaces
//! it.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::dial::Dialer;
use crate::exit::ExitStatus;
use crate::forward::{self, Forward, Options, Session, Sink, Stats, Style, Target};
use crate::kube::portforward::{Protocols, Route};

use super::proto::DetachedForward;
use super::uses::{UseGuard, Uses};

/// One live forward.
struct Live {
    spec: Forward,
    route: Route,
    /// On the API route: what its dialer knows of the API server's protocols.
    protocols: Option<Protocols>,
    bind: IpAddr,
    /// What it dials through, to bring it back when its replacement cannot bind.
    dialer: Arc<dyn Dialer>,
    local: SocketAddr,
    stats: Arc<Stats>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    /// A live forward keeps the agent from leaving.
    _use: UseGuard,
}

impl Live {
    fn describe(&self) -> DetachedForward {
        DetachedForward {
            name: self.spec.name.clone(),
            local: self.local,
            target: self.spec.target_text(),
            url: self.spec.url(self.local),
            route: self.route,
            protocol: self.protocols.as_ref().map(Protocols::current),
            connections: self.stats.total.load(Ordering::Relaxed),
            open: self.stats.open.load(Ordering::Relaxed),
            sent: self.stats.sent.load(Ordering::Relaxed),
            received: self.stats.received.load(Ordering::Relaxed),
            already: false,
            replaced: None,
        }
    }

    /// Whether asking for `f` on `bind` by `route` is asking for this one.
    fn serves(&self, f: &Forward, route: Route, bind: IpAddr) -> bool {
        self.spec.target == f.target
            && self.route == route
            && self.bind == bind
            && (f.local_port == 0 || f.local_port == self.local.port())
    }

    async fn close(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Serves a bound listener over `dialer` until it is closed.
fn serve(
    mut l: forward::Listening,
    (route, protocols): (Route, Option<Protocols>),
    bind: IpAddr,
    dialer: Arc<dyn Dialer>,
    uses: &Uses,
) -> Live {
    let stop = CancellationToken::new();
    let (spec, local, stats) = (l.forward.clone(), l.local, l.stats.clone());
    l.route = route;
    l.protocol = protocols.as_ref().map(Protocols::current);
    // The keeper reconnects the agent's session: this one never ends, and the forward's own
    // supervisor never needs to connect.
    let session = Session {
        dialer: dialer.clone(),
        ended: Box::pin(std::future::pending()),
    };
    let running = forward::run(
        vec![l],
        session,
        || async { Err::<Session, _>("the agent's session is kept by the agent") },
        Options {
            style: Style::Json,
            sink: Sink::Stderr,
            ..Options::default()
        },
        stop.clone().cancelled_owned(),
    );
    let task = tokio::spawn(async move {
        running.await;
    });
    Live {
        spec,
        route,
        protocols,
        bind,
        dialer,
        local,
        stats,
        stop,
        task,
        _use: uses.hold(),
    }
}

#[derive(Default)]
pub struct Registry {
    live: Mutex<Vec<Live>>,
}

impl Registry {
    /// Makes each of `forwards` listen on `bind` (keeping those already live as asked), and
    /// returns them in the order given. `dialer` reaches every target, the `api` ones through
    /// the Kubernetes API (by what `protocols` says). A failed bind leaves the live ones serving as they were: one being
    /// replaced closes only once its replacement listens (or, when the replacement wants its
    /// very port, comes back on that port).
    pub async fn ensure(
        &self,
        forwards: Vec<Forward>,
        bind: IpAddr,
        dialer: Arc<dyn Dialer>,
        (api, protocols): (&HashSet<(String, u16)>, &Protocols),
        uses: &Uses,
    ) -> Result<Vec<DetachedForward>, (String, u8)> {
        let routed = |route: Route| (route, (route == Route::Api).then(|| protocols.clone()));
        let route = |f: &Forward| match &f.target {
            Target::Tunnel { host, port } if api.contains(&(host.clone(), *port)) => Route::Api,
            _ => Route::Bastion,
        };
        let mut live = self.live.lock().await;
        let names: Vec<String> = forwards.iter().map(|f| f.name.clone()).collect();
        let mut new = Vec::new();
        // Replaced once the replacement listens; those that want the old one's own port are
        // closed first, and come back when the replacement cannot bind.
        let mut replaced = Vec::new();
        let mut closed = Vec::new();
        // What the answer tells the client: kept as they were, or where the replaced ones
        // listened.
        let mut already = HashSet::new();
        let mut was = std::collections::HashMap::new();
        for f in forwards {
            match live.iter().position(|l| l.spec.name == f.name) {
                Some(i) if live[i].serves(&f, route(&f), bind) => {
                    already.insert(f.name.clone());
                }
                Some(i) if f.local_port != 0 && f.local_port == live[i].local.port() => {
                    was.insert(f.name.clone(), live[i].local);
                    let old = live.remove(i);
                    closed.push((
                        old.spec.clone(),
                        (old.route, old.protocols.clone()),
                        old.bind,
                        old.local.port(),
                        old.dialer.clone(),
                    ));
                    old.close().await;
                    new.push(f);
                }
                Some(i) => {
                    was.insert(f.name.clone(), live[i].local);
                    replaced.push(f.name.clone());
                    new.push(f);
                }
                None => new.push(f),
            }
        }
        if !new.is_empty() {
            let listeners = match forward::bind(new, bind).await {
                Ok(l) => l,
                Err(e) => {
                    for (mut spec, routed, bind, port, dialer) in closed {
                        spec.local_port = port;
                        match forward::bind(vec![spec], bind).await {
                            Ok(back) => live.extend(
                                back.into_iter()
                                    .map(|l| serve(l, routed.clone(), bind, dialer.clone(), uses)),
                            ),
                            Err(e) => warn!("a replaced forward could not listen again: {e}"),
                        }
                    }
                    let status = e.exit_status();
                    return Err((crate::exit::Error::from(e).to_string(), status));
                }
            };
            for name in replaced {
                if let Some(i) = live.iter().position(|l| l.spec.name == name) {
                    live.remove(i).close().await;
                }
            }
            for l in listeners {
                let route = routed(route(&l.forward));
                live.push(serve(l, route, bind, dialer.clone(), uses));
            }
        }
        Ok(names
            .iter()
            .filter_map(|n| live.iter().find(|l| &l.spec.name == n))
            .map(|l| DetachedForward {
                already: already.contains(&l.spec.name),
                replaced: was.get(&l.spec.name).copied(),
                ..l.describe()
            })
            .collect())
    }

    pub async fn list(&self) -> Vec<DetachedForward> {
        self.live.lock().await.iter().map(Live::describe).collect()
    }

    /// Closes the forward called `name`, or all; returns how many were closed.
    pub async fn stop(&self, name: Option<&str>) -> usize {
        let mut live = self.live.lock().await;
        let (closing, kept): (Vec<Live>, Vec<Live>) = std::mem::take(&mut *live)
            .into_iter()
            .partition(|l| name.is_none_or(|n| l.spec.name == n));
        *live = kept;
        let n = closing.len();
        for l in closing {
            l.close().await;
        }
        n
    }
}
