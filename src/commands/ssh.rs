//! `paragon-admin ssh [-- CMD...]`: a shell or one command on the bastion, glue over the
//! profile's `Remote` (its agent, or a direct connection).

use crate::cli::Globals;
use crate::exit::Error;
use crate::ssh::exec::Request;
use crate::ssh::shell::Pty;

/// A shell, or one command (its words joined with spaces, as OpenSSH joins them).
pub async fn run(g: &Globals, command: &[String]) -> Result<u8, Error> {
    let profile = super::resolve_profile(g)?;
    let remote = super::remote(g, &profile).await?;
    let status = if command.is_empty() {
        // On a PTY when stdin is a terminal, as `Bastion::shell` (and OpenSSH) decide.
        remote.run(Request::Shell, Pty::if_terminal()).await?
    } else {
        remote.run(Request::Exec(&command.join(" ")), None).await?
    };
    Ok(super::exit_byte(status))
}
