//! The plan of a set of forwards: which route each target takes (`route::choose`, with
//! `--via` or the service's `via`), the kubeconfig of the API route when any takes it, and
//! the sessions that route by it. A foreground `forward` and `demo` route this way, and
//! `forward --detach` chooses its targets and kubeconfig here for the agent. Knows nothing
//! of clap, of SSH or of the agent: the bastion is a `Dialer` here, and its kubeconfig comes
//! through `kube::source::Capture`.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use crate::config::{Resolved, Via};
use crate::dial::Dialer;
use crate::exit::Error;
use crate::kube::source::{self, Capture};
use crate::kube::{Chosen, ProfileKube};
use kube::config::Kubeconfig;

use super::route::{self, Plan, Route};
use super::{Connect, Forward, Listening, Session, Target};

/// Why a target takes the API route: asked for (`--via api`, a service's `via = "api"`), or
/// chosen by `auto` because the bastion could not connect. Only a chosen one falls back to
/// the bastion when the API route cannot be had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiBecause {
    Asked,
    Chosen,
}

/// `f`'s target when it takes the API route (`via`, else its service's `via` when `via` is
/// `auto`, decided by `route::choose` over `bastion`), and why.
pub async fn api_target(
    f: &Forward,
    via: Via,
    bastion: &dyn Dialer,
) -> Option<((String, u16), ApiBecause)> {
    let Target::Tunnel { host, port } = &f.target else {
        return None;
    };
    let via = match (via, &f.service) {
        (Via::Auto, Some(s)) => s.via,
        (v, _) => v,
    };
    let because = match via {
        Via::Api => ApiBecause::Asked,
        _ => ApiBecause::Chosen,
    };
    (route::choose(bastion, via, host, *port).await == Route::Api)
        .then(|| ((host.clone(), *port), because))
}

/// Whether the API route's kubeconfig failing ends the command: only when some target asked
/// for that route. Else each chosen target falls back to the bastion, whose own failure each
/// connection then reports, and `-v` says why the API route was not taken.
pub fn falls_back(targets: &[(String, u16)], asked: bool, e: &Error) -> bool {
    if asked {
        return false;
    }
    for (host, port) in targets {
        tracing::info!("{host}:{port}: not the API route ({e}): through the bastion");
    }
    true
}

/// Chooses each listener's route (its listening line announces it) and, when any takes the
/// API, returns `first` and `connect` with every session routed by a plan over the kubeconfig
/// `api_kubeconfig` gives (awaited only then; each new session gets its own API route over
/// it); else both unchanged.
pub async fn route(
    listeners: &mut [Listening],
    via: Via,
    first: Session,
    connect: Connect,
    api_kubeconfig: impl Future<Output = Result<(Kubeconfig, crate::kube::Options), Error>>,
) -> Result<(Session, Connect), Error> {
    let mut api_targets = HashSet::new();
    let mut asked = false;
    for l in listeners.iter_mut() {
        if let Some((target, because)) = api_target(&l.forward, via, &*first.dialer).await {
            l.route = Route::Api;
            api_targets.insert(target);
            asked |= because == ApiBecause::Asked;
        }
    }
    if api_targets.is_empty() {
        return Ok((first, connect));
    }
    let (kubeconfig, options) = match api_kubeconfig.await {
        Ok(k) => k,
        Err(e) => {
            let targets: Vec<_> = api_targets.into_iter().collect();
            if !falls_back(&targets, asked, &e) {
                return Err(e);
            }
            for l in listeners.iter_mut() {
                l.route = Route::Bastion;
            }
            return Ok((first, connect));
        }
    };
    let plan = Plan {
        kubeconfig,
        options,
        namespace: crate::kube::NAMESPACE.to_string(),
        api_targets: Arc::new(api_targets),
        protocols: Default::default(),
    };
    let (first, protocol) = plan.route_prepared(first).await?;
    for l in listeners.iter_mut().filter(|l| l.route == Route::Api) {
        l.protocol = Some(protocol);
    }
    let routed: Connect = Arc::new(move || {
        let (connect, plan) = (connect.clone(), plan.clone());
        Box::pin(async move {
            let s = connect().await?;
            plan.route(s)
                .await
                .map_err(|e| super::Failure::transient(e.to_string()))
        })
    });
    Ok((first, routed))
}

/// The kubeconfig of the API route: the profile's, else the bastion's own, fetched into
/// memory through `bastion`.
pub async fn api_kubeconfig(profile: &Resolved, bastion: &dyn Capture) -> Result<Chosen, Error> {
    let needs = |e: Error| e.context("the API route needs a kubeconfig");
    let decision = source::decide(Default::default(), Some(ProfileKube::of(profile)), false)
        .map_err(|e| needs(e.into()))?;
    match decision.origin.file() {
        Some(_) => decision.load(None).await,
        None => decision.load(Some(bastion)).await,
    }
    .map_err(|e| needs(e.into()))
}
