//! One file per subcommand: glue that reads options, calls the library and prints.
//! Logic that a second command could want lives below this module, not in it.
//!
//! Every command fails with `exit::Error`, which carries the exit status of the error it was
//! made from; `main` asks it and maps nothing else.

mod access;
mod agent;
mod bundle;
mod demo;
mod docs;
mod doctor;
mod forward;
mod health;
mod init;
mod kube_credential;
mod kubeconfig;
mod kubectl;
mod logs;
mod monitoring;
mod profiles;
mod sandbox;
mod secrets;
mod ssh;

use crate::cli::{Cli, Command, Globals};
use crate::config::{self, ConfigError, Resolved};
use crate::exit::Error;

/// Runs the parsed command line; the result is the process's exit status.
pub async fn run(cli: Cli) -> Result<u8, Error> {
    let g = &cli.globals;
    // No waiting line where another program owns the terminal: kubectl (or k9s, Lens) runs
    // kube-credential with its own stderr.
    crate::prompt::set_progress(
        !g.quiet
            && g.output != crate::output::Format::Json
            && !matches!(cli.command, Command::KubeCredential),
    );
    match cli.command {
        Command::Profiles => profiles::run(g),
        Command::Init(a) => init::run(g, &a).await,
        Command::Demo(a) => demo::run(g, &a).await,
        Command::Completions(a) => docs::completions(&a),
        Command::Man(a) => docs::man(&a),
        Command::Health(args) => health::run(g, &args).await,
        Command::Monitoring { action } => monitoring::run(g, &action).await,
        Command::Logs(a) => logs::run(g, &a).await,
        Command::Bundle(a) => bundle::run(g, &a).await,
        Command::Doctor(a) => doctor::run(g, &a).await,
        Command::Sandbox(args) => sandbox::run(g, args).await,
        Command::Ssh(a) => ssh::run(g, &a.command).await,
        Command::Kubectl(a) => kubectl::run(g, "kubectl", &a.args).await,
        Command::Helm(a) => kubectl::run(g, "helm", &a.args).await,
        Command::Secrets { action } => secrets::run(g, &action),
        Command::Access { action } => access::run(g, &action),
        Command::Forward(a) => forward::run(g, a).await,
        Command::Kubeconfig(a) => kubeconfig::run(g, a).await,
        Command::Agent { action } => agent::run(g, &action).await,
        Command::KubeCredential => kube_credential::run(g).await,
    }
}

/// The profile the global options choose.
pub fn resolve_profile(g: &Globals) -> Result<Resolved, ConfigError> {
    config::resolve(g.config.as_deref(), g.profile.as_deref())
}

/// The profile the global options choose, if any: a command that can run without one (`health
/// --local`) runs without it when there is no config file and neither `--config` nor
/// `--profile` asks for one. Any other problem with the file is still an error.
pub fn resolve_optional_profile(g: &Globals) -> Result<Option<Resolved>, ConfigError> {
    match resolve_profile(g) {
        Ok(p) => Ok(Some(p)),
        Err(ConfigError::Missing { .. }) if g.config.is_none() && g.profile.is_none() => Ok(None),
        Err(e) => Err(e),
    }
}

/// How this command reaches the profile's bastion: its agent unless `--no-agent` or
/// `persist = 0`, else its own connection.
pub async fn remote(g: &Globals, profile: &Resolved) -> Result<crate::agent::Remote, Error> {
    Ok(crate::agent::Remote::connect(profile, g.no_agent).await?)
}

/// How forward events are shown: JSON lines, or lines for people (with a live status on a
/// terminal).
pub fn forward_options(g: &Globals, sink: crate::forward::Sink) -> crate::forward::Options {
    crate::forward::Options::for_output(g.output == crate::output::Format::Json, g.quiet, sink)
}

/// A remote status as a process exit status (which keeps only the low byte, as a shell does).
pub fn exit_byte(status: u32) -> u8 {
    (status & 0xff) as u8
}

/// The profile, its bastion (through its agent unless `--no-agent`) and a Kubernetes client
/// whose connections go through it, with the kubeconfig `kube::source` chooses for a profile.
pub async fn cluster(g: &Globals) -> Result<(Resolved, crate::agent::Remote, kube::Client), Error> {
    let profile = resolve_profile(g)?;
    let remote = remote(g, &profile).await?;
    let decision = crate::kube::source::decide(
        crate::kube::Flags {
            kubeconfig: None,
            context: None,
        },
        Some(crate::kube::ProfileKube::of(&profile)),
        false,
    )?;
    if decision.origin != crate::kube::Origin::Bastion {
        remote.check_session().await?;
    }
    let chosen = decision.load(Some(&remote)).await?;
    let options = chosen.options();
    let client = crate::kube::client(remote.dialer(), chosen.kubeconfig, &options).await?;
    Ok((profile, remote, client))
}

/// A progress line on stderr ("{spinner} VERB {pos}/{len} {msg}"): on a terminal only, and
/// not with `--quiet`.
pub fn progress_bar(g: &Globals, verb: &str) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal as _;
    (!g.quiet && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        let template = format!("{{spinner}} {verb} {{pos}}/{{len}} {{msg}}");
        bar.set_style(
            indicatif::ProgressStyle::with_template(&template)
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    })
}

/// Moves the progress line on: more to do, or one more done (named).
pub fn advance(bar: Option<&indicatif::ProgressBar>, p: crate::health::Progress<'_>) {
    if let Some(bar) = bar {
        match p {
            crate::health::Progress::Total(n) => bar.inc_length(n as u64),
            crate::health::Progress::Done(name) => {
                bar.inc(1);
                bar.set_message(name.to_string());
            }
        }
    }
}

/// What the checks look at for `profile`: its datastores (with their passwords from the
/// keyring) and monitoring services, reached through `dialer`.
pub(super) fn health_target(
    profile: &crate::config::Resolved,
    kube: Result<kube::Client, String>,
    dialer: std::sync::Arc<dyn crate::dial::Dialer>,
    context: Option<String>,
    via: crate::config::Via,
) -> crate::health::Target {
    crate::health::Target {
        kube,
        dialer,
        datastores: profile.settings.datastores.clone(),
        services: profile.services(),
        postgres_password: if profile.settings.datastores.postgres.is_empty() {
            None
        } else {
            keyring_password(crate::secrets::postgres_password(&profile.name))
        },
        context,
        redis_password: if profile.settings.datastores.redis.is_empty() {
            None
        } else {
            keyring_password(crate::secrets::redis_password(&profile.name))
        },
        profile: profile.name.clone(),
        via,
        thresholds: profile.thresholds(),
    }
}

/// A datastore password from the keyring (named by `secrets`), if stored. A keyring that
/// cannot be read only means a shallower probe: the handshake still shows whether the
/// datastore is alive.
fn keyring_password(name: String) -> Option<crate::secrets::Secret> {
    match crate::secrets::get(&name) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot read {name} from the keyring: {e}");
            None
        }
    }
}
