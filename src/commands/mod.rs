//! One file per subcommand: glue that reads options, calls the library and prints.
//! Logic that a second command could want lives below this module, not in it.
//!
//! Every command fails with `exit::Error`, which carries the exit status of the error it was
//! made from; `main` asks it and maps nothing else.

mod demo;
mod docs;
mod forward;
mod health;
mod init;
mod kubeconfig;
mod kubectl;
mod profiles;
mod sandbox;
mod secrets;
mod ssh;

use crate::cli::{Cli, Command, Globals};
use crate::config::{self, ConfigError, Resolved};
use crate::exit::{self, Error};
use crate::ssh::SshError;

/// Runs the parsed command line; the result is the process's exit status.
pub async fn run(cli: Cli) -> Result<u8, Error> {
    let g = &cli.globals;
    match cli.command {
        Command::Profiles => profiles::run(g),
        Command::Init(a) => init::run(g, &a).await,
        Command::Demo(a) => demo::run(g, &a).await,
        Command::Completions(a) => docs::completions(&a),
        Command::Man(a) => docs::man(&a),
        Command::Health(args) => health::run(g, &args).await,
        Command::Sandbox(args) => sandbox::run(g, args).await,
        Command::Ssh(a) => ssh::run(g, &a.command).await,
        Command::Kubectl(a) => kubectl::run(g, "kubectl", &a.args).await,
        Command::Helm(a) => kubectl::run(g, "helm", &a.args).await,
        Command::Secrets { action } => secrets::run(g, &action),
        Command::Forward(a) => forward::run(g, a).await,
        Command::Kubeconfig(a) => kubeconfig::run(g, a).await,
    }
}

/// Why the bastion's kubeconfig could not be fetched. Never quotes the kubeconfig itself.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The command could not run: the session failed or dropped (its status, 255 for a drop).
    #[error("cannot run `{command}` on the bastion")]
    Exec {
        command: String,
        #[source]
        source: SshError,
    },
    #[error(
        "`{command}` on the bastion exited {status}: {first_line}; set [kube] kubeconfig in the profile to use a local one"
    )]
    Failed {
        command: String,
        status: u32,
        first_line: String,
    },
    #[error("the bastion's kubeconfig is not UTF-8 text")]
    NotText,
    #[error(transparent)]
    Invalid(#[from] crate::kube::KubeError),
}

impl exit::ExitStatus for FetchError {
    /// A session that failed keeps its own status (255 when the connection dropped); a
    /// kubeconfig the bastion cannot give is a failure after connecting (1).
    fn exit_status(&self) -> u8 {
        match self {
            FetchError::Exec { source, .. } => source.exit_status(),
            FetchError::Invalid(e) => e.exit_status(),
            FetchError::Failed { .. } | FetchError::NotText => exit::FAILED,
        }
    }
}

/// The bastion's own kubeconfig (`kubectl config view`, narrowed to `context` when one is
/// chosen), into memory only.
pub async fn fetch_bastion_kubeconfig(
    bastion: &crate::ssh::Bastion,
    context: Option<&str>,
) -> Result<::kube::config::Kubeconfig, FetchError> {
    let command = match context {
        Some(c) => format!(
            "{} --context {}",
            crate::kube::FETCH_KUBECONFIG,
            crate::ssh::quote::quote(c)
        ),
        None => crate::kube::FETCH_KUBECONFIG.to_string(),
    };
    let out = bastion
        .exec_capture(&command)
        .await
        .map_err(|source| FetchError::Exec {
            command: command.clone(),
            source,
        })?;
    if out.status != 0 {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(FetchError::Failed {
            command,
            status: out.status,
            first_line: crate::health::one_line(err.lines().next().unwrap_or(""), 160),
        });
    }
    let text = String::from_utf8(out.stdout).map_err(|_| FetchError::NotText)?;
    Ok(crate::kube::parse_fetched_kubeconfig(&text)?)
}

/// The profile the global options choose.
pub fn resolve_profile(g: &Globals) -> Result<Resolved, ConfigError> {
    config::resolve(g.config.as_deref(), g.profile.as_deref())
}
