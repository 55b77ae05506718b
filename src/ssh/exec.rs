//! Commands on the bastion captured into memory (`exec_capture`): no stdin (or the bytes
//! given, `exec_capture_input`), stdout and stderr kept apart, the exit status. Streamed commands are `session`'s.

use russh::ChannelMsg;

use super::session::signal_status;
use super::{Bastion, SshError};

// Commands name the request here (`ssh::exec::Request`); it lives in `session`.
pub use super::session::Request;

/// What a captured command printed, and its exit status.
#[derive(Debug, Clone)]
pub struct Captured {
    pub status: u32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Bastion {
    /// Runs `command` with no stdin, capturing stdout and stderr.
    pub async fn exec_capture(&self, command: &str) -> Result<Captured, SshError> {
        self.exec_capture_input(command, &[]).await
    }

    /// Runs `command` with `input` as its whole stdin, capturing stdout and stderr.
    pub async fn exec_capture_input(
        &self,
        command: &str,
        input: &[u8],
    ) -> Result<Captured, SshError> {
        let mut channel = self.open_session().await?;
        channel
            .exec(true, command)
            .await
            .map_err(|e| self.channel_error(e))?;
        if !input.is_empty() {
            channel
                .data_bytes(input.to_vec())
                .await
                .map_err(|e| self.channel_error(e))?;
        }
        channel.eof().await.map_err(|e| self.channel_error(e))?;
        let (mut stdout, mut stderr, mut status) = (Vec::new(), Vec::new(), None);
        // Keep reading after ExitStatus: data may still follow until the channel closes.
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => stdout.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, ext: 1 } => stderr.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                ChannelMsg::ExitSignal { signal_name, .. } => {
                    status = Some(signal_status(&signal_name));
                }
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        let status = status.ok_or_else(|| SshError::Disconnected {
            target: self.target().to_string(),
        })?;
        Ok(Captured {
            status,
            stdout,
            stderr,
        })
    }
}
