//! One file per subcommand: glue that reads options, calls the library and prints.
//! Logic that a second command could want lives below this module, not in it.

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

/// Runs the parsed command line; the result is the process's exit status.
pub async fn run(cli: Cli) -> anyhow::Result<u8> {
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

/// The bastion's own kubeconfig (`kubectl config view`, narrowed to `context` when one is
/// chosen), into memory only; the error is one line that never quotes the kubeconfig.
pub async fn fetch_bastion_kubeconfig(
    bastion: &crate::ssh::Bastion,
    context: Option<&str>,
) -> Result<::kube::config::Kubeconfig, String> {
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
        .map_err(|e| format!("cannot run `{command}` on the bastion: {e}"))?;
    if out.status != 0 {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "`{command}` on the bastion exited {}: {}; set [kube] kubeconfig in the profile to use a local one",
            out.status,
            crate::health::one_line(err.lines().next().unwrap_or(""), 160)
        ));
    }
    let text = String::from_utf8(out.stdout)
        .map_err(|_| "the bastion's kubeconfig is not UTF-8 text".to_string())?;
    crate::kube::parse_fetched_kubeconfig(&text).map_err(|e| e.to_string())
}

/// The profile the global options choose.
pub fn resolve_profile(g: &Globals) -> Result<Resolved, ConfigError> {
    config::resolve(g.config.as_deref(), g.profile.as_deref())
}
