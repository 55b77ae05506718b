//! The API forward the profile's agent holds on the profile's stable port, with the
//! kubeconfig it forwards for: what `kubeconfig --write`/`--merge` points its kubeconfig at
//! and what `kube-credential` makes sure listens before kubectl dials. Knows nothing of clap.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::config::Resolved;
use crate::exit::{Error, ExitStatus as _};
use crate::forward::kubeconfig::{Source, Upstream};
use crate::kube::{Chosen, ProfileKube, source};
use crate::state::{KUBE_API, Ports};

/// The profile's kubeconfig and the API forward its agent holds for it.
pub struct ApiForward {
    pub chosen: Chosen,
    pub source: Source,
    pub upstream: Upstream,
    /// Where the forward listens: 127.0.0.1 and the profile's stable port.
    pub local: SocketAddr,
}

/// Reads the chosen kubeconfig (the bastion's own fetched into memory through the profile's
/// agent, started when none runs: its output comes to this process only), then has the agent
/// listen for the API on the stable port. Errors that mean the bastion cannot be reached say
/// so first.
pub async fn ensure_api_forward(profile: &Resolved, no_agent: bool) -> Result<ApiForward, Error> {
    if !super::wanted(profile, no_agent) {
        return Err(Error::usage(format!(
            "the kubeconfig of --write and --merge reaches the API through the profile's agent: set persist above 0 in profile {} and drop --no-agent",
            profile.name
        )));
    }
    let decision = source::decide(Default::default(), Some(ProfileKube::of(profile)), false)?;
    // A local file is read before the agent starts: a bad one is the same usage error (2)
    // as in `health`, with nothing started.
    let from_file = match decision.origin.file() {
        Some(_) => Some(decision.clone().load(None).await?),
        None => None,
    };
    let agent = super::connect_or_start(profile)
        .await
        .map_err(unreachable)?;
    let chosen = match from_file {
        Some(chosen) => chosen,
        None => decision.load(Some(&agent)).await.map_err(unreachable)?,
    };
    let source = Source::of(&chosen);
    let upstream = source.upstream(chosen.api_server.as_ref())?;
    let port = Ports::user()?.stable_port(&profile.name, KUBE_API)?;
    let mut wanted = upstream.forward(port);
    wanted.name = KUBE_API.to_string();
    let held = agent
        .ensure_forwards(&[wanted], IpAddr::V4(Ipv4Addr::LOCALHOST), None)
        .await
        .map_err(unreachable)?;
    let local = held
        .iter()
        .find(|f| f.name == KUBE_API)
        .map(|f| f.local)
        .ok_or_else(|| Error::failed("the agent did not open the API forward"))?;
    if local.port() != port {
        return Err(Error::failed(format!(
            "the agent holds the API forward on {local}, not on the remembered port {port}: run `paragon-admin forward --stop {KUBE_API}` and try again"
        )));
    }
    Ok(ApiForward {
        chosen,
        source,
        upstream,
        local,
    })
}

/// An error that means the bastion could not be reached (255), said as such first: kubectl
/// shows the plugin's one line as it is.
fn unreachable(e: impl Into<Error>) -> Error {
    let e = e.into();
    if e.exit_status() == crate::exit::UNREACHABLE {
        e.context("bastion unreachable")
    } else {
        e
    }
}
