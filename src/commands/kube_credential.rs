//! `paragon-admin kube-credential`: the exec credential plugin of the kubeconfig that
//! `kubeconfig --write`/`--merge` writes. kubectl runs it before it dials; it makes sure the
//! profile's agent runs and holds the API forward on its stable port, then prints the
//! credential as an `ExecCredential` on stdout, for kubectl only. Glue: the credential is
//! `kube::credential`'s, the forward the agent's (`agent::api`), the kubeconfig choice `kube::source`'s.
//!
//! The written entry carries a stamp of its cluster (`forward::kubeconfig::Stamp`): when the
//! kubeconfig the profile reaches now gives another one (the cluster got a new CA or API
//! server), kubectl would fail with an x509 error, so the plugin says instead what to run to
//! write the entry again (2). The forward's target is refreshed either way.

use std::io::{IsTerminal, Write};

use crate::cli::Globals;
use crate::exit::Error;
use crate::forward::kubeconfig::{self, KubeconfigError, STAMP_ENV, Stamp, WRITTEN_ENV, Written};
use crate::kube::credential::{self, Credential};

pub async fn run(g: &Globals) -> Result<u8, Error> {
    let asked = std::env::var(credential::EXEC_INFO_ENV).ok();
    let info = credential::exec_info(asked.as_deref(), std::io::stdin().is_terminal())?;
    let profile = super::resolve_profile(g)?;
    let api = crate::agent::api::ensure_api_forward(&profile, g.no_agent).await?;
    check_written(g, &profile, &api)?;
    let credential = Credential::from_chosen(&api.chosen)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let mut out = std::io::stdout().lock();
    out.write_all(credential.to_exec_credential(info, now).as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(0)
}

/// Refuses when the entry kubectl runs this plugin for was written for another cluster than
/// the one the profile reaches now. An entry without a stamp (written by an older build, or
/// the plugin run by hand) is not checked.
fn check_written(
    g: &Globals,
    profile: &crate::config::Resolved,
    api: &crate::agent::api::ApiForward,
) -> Result<(), Error> {
    let Some(written) = std::env::var(STAMP_ENV)
        .ok()
        .as_deref()
        .and_then(Stamp::parse)
    else {
        return Ok(());
    };
    let changed = api
        .source
        .changed_since(&api.upstream, api.local, &written)?;
    if changed.is_empty() {
        return Ok(());
    }
    let to = std::env::var(WRITTEN_ENV).ok();
    let config = match &g.config {
        Some(c) => Some(std::path::absolute(c)?),
        None => None,
    };
    Err(KubeconfigError::Changed {
        changed,
        rerun: kubeconfig::rerun(
            to.as_deref().and_then(Written::from_env).as_ref(),
            &profile.name,
            config.as_deref(),
        ),
    }
    .into())
}
