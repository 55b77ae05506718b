//! `paragon-admin kubectl ARGS...` and `helm ARGS...`: the tool run on the bastion, glue over
//! the profile's `Remote` and the remote-shell quoting.

use crate::cli::Globals;
use crate::exit::Error;
use crate::ssh::exec::Request;
use crate::ssh::quote::command_line_bytes;
use crate::ssh::shell::Pty;

/// `program` on the bastion with each argument quoted for the remote shell; a PTY only when
/// stdin (and stdout) are terminals, so `kubectl exec -it` works and `kubectl get | grep` gets
/// clean lines and a separate stderr.
pub async fn run(g: &Globals, program: &str, args: &[std::ffi::OsString]) -> Result<u8, Error> {
    let profile = super::resolve_profile(g)?;
    let remote = super::remote(g, &profile).await?;
    let line = command_line_bytes(program, args);
    let status = remote
        .run(Request::ExecBytes(&line), Pty::if_interactive())
        .await?;
    Ok(super::exit_byte(status))
}
