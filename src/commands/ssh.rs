//! `paragon-admin ssh [-- CMD...]`, `kubectl ARGS...`, `helm ARGS...`: glue over `Bastion`.

use crate::cli::Globals;
use crate::ssh::Bastion;
use crate::ssh::exec::Request;
use crate::ssh::quote::command_line;
use crate::ssh::shell::Pty;

/// A shell, or one command (its words joined with spaces, as OpenSSH joins them).
pub async fn run(g: &Globals, command: &[String]) -> anyhow::Result<u8> {
    let profile = super::resolve_profile(g)?;
    let bastion = Bastion::connect(&profile).await?;
    let status = if command.is_empty() {
        bastion.shell().await?
    } else {
        bastion.run(Request::Exec(&command.join(" ")), None).await?
    };
    Ok(exit_byte(status))
}

/// `program` on the bastion with each argument quoted for the remote shell; a PTY only when
/// stdin (and stdout) are terminals, so `kubectl exec -it` works and `kubectl get | grep` gets
/// clean lines and a separate stderr.
pub async fn passthrough(g: &Globals, program: &str, args: &[String]) -> anyhow::Result<u8> {
    let profile = super::resolve_profile(g)?;
    let bastion = Bastion::connect(&profile).await?;
    let line = command_line(program, args);
    let status = bastion
        .run(Request::Exec(&line), Pty::if_interactive())
        .await?;
    Ok(exit_byte(status))
}

/// A remote status as a process exit status (which keeps only the low byte, as a shell does).
fn exit_byte(status: u32) -> u8 {
    (status & 0xff) as u8
}
