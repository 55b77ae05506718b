//! The interactive login shell: on a PTY when stdin is a terminal, else a plain session fed
//! from stdin, as OpenSSH decides for `ssh host`.

use super::session::Request;
use super::{Bastion, SshError};

// Commands name the PTY here (`ssh::shell::Pty`); it lives in `pty`.
pub use super::pty::Pty;

impl Bastion {
    /// An interactive login shell: on a PTY when stdin is a terminal, else a plain session
    /// fed from stdin (as OpenSSH does). Returns the shell's exit status.
    pub async fn shell(&self) -> Result<u32, SshError> {
        self.run(Request::Shell, Pty::if_terminal()).await
    }
}
