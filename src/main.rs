//! The `paragon-admin` binary: parse, set up tracing, run, map the error to an exit status.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use paragon_admin::cli::{Cli, Globals};
use paragon_admin::{commands, config, forward, prompt, sandbox, secrets, ssh};

/// Exit statuses shared by every command (DESIGN.md).
const FAILED: u8 = 1;
const USAGE: u8 = 2;

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

/// The one place where error kinds become exit statuses.
fn exit_status(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.downcast_ref::<config::ConfigError>().is_some()
            || cause.downcast_ref::<prompt::PromptError>().is_some()
        {
            return USAGE;
        }
        if cause
            .downcast_ref::<sandbox::SandboxError>()
            .is_some_and(sandbox::SandboxError::is_usage)
        {
            return USAGE;
        }
        if let Some(e) = cause.downcast_ref::<paragon_admin::kube::KubeError>() {
            return if e.is_usage() { USAGE } else { FAILED };
        }
        if let Some(e) = cause.downcast_ref::<ssh::SshError>() {
            return e.exit_status();
        }
        if cause
            .downcast_ref::<forward::ForwardError>()
            .is_some_and(forward::ForwardError::is_usage)
            || cause
                .downcast_ref::<forward::kubeconfig::KubeconfigError>()
                .is_some_and(forward::kubeconfig::KubeconfigError::is_usage)
        {
            return USAGE;
        }
        if let Some(e) = cause.downcast_ref::<secrets::SecretError>() {
            return match e {
                secrets::SecretError::InvalidName { .. } => USAGE,
                _ => FAILED,
            };
        }
    }
    FAILED
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
