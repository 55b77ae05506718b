//! `paragon-admin forward`: local ports into the private network through the bastion.

use std::io::IsTerminal;
use std::sync::Arc;

use crate::cli::{ForwardArgs, Globals};
use crate::config::Resolved;
use crate::forward::{self, Forward, ForwardError, Options, Session, Shutdown, Sink, Style};
use crate::output::Format;
use crate::ssh::{Bastion, SshError};

pub async fn run(g: &Globals, args: ForwardArgs) -> anyhow::Result<u8> {
    let profile = super::resolve_profile(g)?;
    let mut forwards = forward::parse_specs(&args.specs, &profile.services())?;
    if let Some(port) = args.socks {
        if !args.bind.is_loopback() {
            return Err(ForwardError::SocksExposed { addr: args.bind }.into());
        }
        forwards.push(Forward::socks(port));
    }
    if !args.bind.is_loopback() {
        eprintln!(
            "paragon-admin: warning: listening on {}: anyone who reaches this address reaches the forwarded services",
            args.bind
        );
    }
    let mut shutdown = Shutdown::install()?;
    let listeners = forward::bind(forwards, args.bind).await?;
    let Some(bastion) = connect_or_interrupt(&profile, &mut shutdown).await? else {
        return Ok(INTERRUPTED);
    };
    if args.open {
        for l in listeners.iter().filter(|l| l.forward.service.is_some()) {
            if let Err(e) = forward::open_in_browser(&l.url()) {
                eprintln!(
                    "paragon-admin: warning: cannot open {} in a browser: {e}",
                    l.url()
                );
            }
        }
    }
    forward::run(
        listeners,
        session(bastion),
        reconnect(profile),
        options(g, Sink::Stdout),
        shutdown.requested(),
    )
    .await;
    Ok(0)
}

/// The exit status of a command interrupted before it could start serving.
pub(super) const INTERRUPTED: u8 = 130;

/// The first session, or `None` when SIGINT/SIGTERM came first.
pub(super) async fn connect_or_interrupt(
    profile: &Resolved,
    shutdown: &mut Shutdown,
) -> Result<Option<Bastion>, SshError> {
    tokio::select! {
        b = Bastion::connect(profile) => b.map(Some),
        () = shutdown.requested() => Ok(None),
    }
}

/// A connected bastion as the supervisor sees it: a dialer, and when it ends.
pub(super) fn session(bastion: Bastion) -> Session {
    let watcher = bastion.clone();
    Session {
        dialer: Arc::new(bastion),
        ended: Box::pin(async move { watcher.closed().await }),
    }
}

/// The connect function the supervisor calls when the session has ended.
pub(super) fn reconnect(
    profile: Resolved,
) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = Result<Session, SshError>> + Send>>
+ Send
+ Sync
+ 'static {
    let profile = Arc::new(profile);
    move || {
        let profile = profile.clone();
        Box::pin(async move { Bastion::connect(&profile).await.map(session) })
    }
}

/// How events are shown: JSON lines, or lines for people with a live status on a terminal.
pub(super) fn options(g: &Globals, sink: Sink) -> Options {
    let terminal = match sink {
        Sink::Stdout => std::io::stdout().is_terminal(),
        Sink::Stderr => std::io::stderr().is_terminal(),
    };
    Options {
        style: match g.output {
            Format::Json => Style::Json,
            Format::Table => Style::Human {
                live: terminal && !g.quiet,
            },
        },
        sink,
        ..Options::default()
    }
}
