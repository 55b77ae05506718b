//! `paragon-admin kube-credential`: the exec credential plugin of the kubeconfig that
//! `kubeconfig --write`/`--merge` writes. kubectl runs it before it dials; it makes sure the
//! profile's agent runs and holds the API forward on its stable port, then prints the
//! credential as an `ExecCredential` on stdout, for kubectl only. Glue: the credential is
//! `kube::credential`'s, the forward the agent's (`agent::api`), the kubeconfig choice `kube::source`'s.

use std::io::{IsTerminal, Write};

use crate::cli::Globals;
use crate::exit::Error;
use crate::kube::credential::{self, Credential};

pub async fn run(g: &Globals) -> Result<u8, Error> {
    let asked = std::env::var(credential::EXEC_INFO_ENV).ok();
    let info = credential::exec_info(asked.as_deref(), std::io::stdin().is_terminal())?;
    let profile = super::resolve_profile(g)?;
    let api = crate::agent::api::ensure_api_forward(&profile, g.no_agent).await?;
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
