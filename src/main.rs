//! The `paragon-admin` binary: parse, set up tracing, run, map the error to an exit status.

use std::process::ExitCode;
use std::time::Duration;

use paragon_admin::cli::Globals;
use paragon_admin::commands;
use paragon_admin::complete::{BIN, COMPLETE_VAR};
use paragon_admin::exit::{ExitStatus, FAILED, USAGE};

/// mimalloc rather than glibc's malloc: see its line in Cargo.toml (issue 25).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    answer_completion_request();
    let cli = match paragon_admin::cli::parse_from(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { USAGE } else { 0 });
        }
    };
    // The agent's stderr becomes its log file once it leaves the terminal: no colour codes.
    let agent = matches!(
        cli.command,
        paragon_admin::cli::Command::Agent {
            action: paragon_admin::cli::AgentAction::Run
        }
    );
    init_tracing(&cli.globals, agent);
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
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("paragon-admin: {e}");
            ExitCode::from(e.exit_status())
        }
    }
}

/// Answers a shell's request for candidates when `COMPLETE` is set, then exits; otherwise
/// returns and the program runs as usual.
fn answer_completion_request() {
    clap_complete::CompleteEnv::with_factory(paragon_admin::cli::command)
        .var(COMPLETE_VAR)
        .bin(BIN)
        .completer(BIN)
        .complete();
}

fn init_tracing(g: &Globals, plain: bool) {
    let level = match (g.quiet, g.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        // The sandbox is a crate of its own: `-v` shows its lines as the product's.
        (false, 1) => "paragon_admin=info,paragon_sandbox=info,warn",
        (false, 2) => "paragon_admin=debug,paragon_sandbox=debug,info",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PARAGON_ADMIN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // A log line erases the waiting line first, rather than continuing it.
        .with_writer(|| {
            paragon_admin::prompt::erase_waiting_line();
            std::io::stderr()
        })
        .with_target(g.verbose > 1)
        .with_ansi(
            !plain
                && std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        );
    // Without -v only warnings show (a host key added, a wide bind): they read as messages,
    // as OpenSSH's do, not as timestamped log lines.
    match g.verbose {
        0 => builder.without_time().init(),
        _ => builder.init(),
    }
}
