//! One file per subcommand: glue that reads options, calls the library and prints.
//! Logic that a second command could want lives below this module, not in it.

mod profiles;

use crate::cli::{Cli, Command, Globals};
use crate::config::{self, ConfigError, Resolved};

/// Runs the parsed command line; the result is the process's exit status.
pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    let g = &cli.globals;
    match cli.command {
        Command::Profiles => profiles::run(g),
        other => anyhow::bail!("`{}` is not available in this build", command_name(&other)),
    }
}

fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Ssh(_) => "ssh",
        Command::Kubectl(_) => "kubectl",
        Command::Helm(_) => "helm",
        Command::Secrets { .. } => "secrets",
        Command::Profiles => "profiles",
        Command::Forward(_) => "forward",
        Command::Kubeconfig(_) => "kubeconfig",
    }
}

/// The profile the global options choose.
pub fn resolve_profile(g: &Globals) -> Result<Resolved, ConfigError> {
    config::resolve(g.config.as_deref(), g.profile.as_deref())
}
