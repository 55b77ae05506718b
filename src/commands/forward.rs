//! `paragon-admin forward`: local ports into the private network through the bastion.

use crate::cli::{ForwardArgs, Globals};
use crate::exit::Error;
use crate::forward::bastion::{connect_or_interrupt, reconnect, session};
use crate::forward::{self, Forward, ForwardError, Options, Shutdown, Sink};
use crate::output::Format;

pub async fn run(g: &Globals, args: ForwardArgs) -> Result<u8, Error> {
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

/// How events are shown: JSON lines, or lines for people (with a live status on a terminal).
pub(super) fn options(g: &Globals, sink: Sink) -> Options {
    Options::for_output(g.output == Format::Json, g.quiet, sink)
}
