//! The `paragon-admin` binary: parse, set up tracing, run, map the error to an exit status.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use paragon_admin::cli::{Cli, Globals};
use paragon_admin::{commands, config, forward, prompt, sandbox, secrets, ssh};

/// Exit statuses shared by every command (DESIGN.md).
const FAILED: u8 = paragon_admin::exit::FAILED;
const USAGE: u8 = paragon_admin::exit::USAGE;

fn main() -> ExitCode {
    paragon_admin::docs::answer_completion_request();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { USAGE } else { 0 });
        }
    };
    init_tracing(&cli.globals);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("paragon-admin: cannot start the async runtime: {e}");
            return ExitCode::from(FAILED);
        }
    };
    let result = runtime.block_on(commands::run(cli));
    // A blocking read of stdin may still be parked in the pool: do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(status) => ExitCode::from(status),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("paragon-admin: {}", one_line(&e));
            ExitCode::from(exit_status(&e))
        }
    }
}

fn init_tracing(g: &Globals) {
    let level = match (g.quiet, g.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "paragon_admin=info,warn",
        (false, 2) => "paragon_admin=debug,info",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PARAGON_ADMIN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(g.verbose > 1)
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .init();
}

/// The error and its causes on one line, each cause once.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', " ")
}

/// The status the first cause with one chose (`exit::ExitStatus`), else 1. Commands are moving
/// to `exit::Error`, which carries its status, so that this ladder goes away.
fn exit_status(e: &anyhow::Error) -> u8 {
    use paragon_admin::exit::ExitStatus;
    for cause in e.chain() {
        macro_rules! status_of {
            ($($t:ty),*) => {$(
                if let Some(e) = cause.downcast_ref::<$t>() {
                    return e.exit_status();
                }
            )*};
        }
        status_of!(
            config::ConfigError,
            prompt::PromptError,
            sandbox::SandboxError,
            paragon_admin::kube::KubeError,
            ssh::SshError,
            forward::ForwardError,
            forward::kubeconfig::KubeconfigError,
            secrets::SecretError
        );
    }
    FAILED
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
