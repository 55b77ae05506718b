//! One file per subcommand: glue that reads options, calls the library and prints.
//! Logic that a second command could want lives below this module, not in it.

mod forward;
mod kubeconfig;
mod kubectl;
mod profiles;
mod sandbox;
mod secrets;
mod ssh;

use crate::cli::{Cli, Command, Globals};
use crate::config::{self, ConfigError, Resolved};

/// Runs the parsed command line; the result is the process's exit status.
pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    let g = &cli.globals;
    match cli.command {
        Command::Profiles => profiles::run(g),
        Command::Ssh(a) => ssh::run(g, &a.command).await,
        Command::Kubectl(a) => kubectl::run(g, "kubectl", &a.args).await,
        Command::Helm(a) => kubectl::run(g, "helm", &a.args).await,
        Command::Secrets { action } => secrets::run(g, &action),
        Command::Forward(a) => forward::run(g, a).await,
        Command::Kubeconfig(a) => kubeconfig::run(g, a).await,
        Command::Sandbox(args) => sandbox::run(g, args).await,
    }
}

/// The profile the global options choose.
pub fn resolve_profile(g: &Globals) -> Result<Resolved, ConfigError> {
    config::resolve(g.config.as_deref(), g.profile.as_deref())
}
