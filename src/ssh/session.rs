//! A session channel streamed to and from this process: stdin in (EOF passed on), stdout
//! and stderr out through writer threads, the remote exit status back; on a PTY when asked.
//! Used by `shell` and the passthrough commands; `exec` shares its reading of exit signals.

use std::sync::Arc;

use russh::{ChannelMsg, Sig};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::pty::{Pty, RawMode};
use super::{Bastion, SshError};

/// What a session channel runs.
#[derive(Debug, Clone, Copy)]
pub enum Request<'a> {
    /// One command line, as the remote shell reads it.
    Exec(&'a str),
    /// One command line as bytes (arguments that are not UTF-8 pass unchanged).
    ExecBytes(&'a [u8]),
    /// The user's login shell.
    Shell,
}

/// The exit status a shell reports for a process killed by `sig`: 128 + its number.
pub(super) fn signal_status(sig: &Sig) -> u32 {
    128 + match sig {
        Sig::HUP => 1,
        Sig::INT => 2,
        Sig::QUIT => 3,
        Sig::ILL => 4,
        Sig::ABRT => 6,
        Sig::FPE => 8,
        Sig::KILL => 9,
        Sig::USR1 => 10,
        Sig::SEGV => 11,
        Sig::PIPE => 13,
        Sig::ALRM => 14,
        Sig::TERM => 15,
        Sig::Custom(_) => 127,
    }
}

/// A thread writing to this process's stdout or stderr: the async loop never waits on a
/// pipe itself, and each chunk costs one write instead of a trip through tokio's blocking
/// pool. The bounded queue passes backpressure on to the SSH window.
struct Sink {
    tx: mpsc::Sender<Vec<u8>>,
    thread: std::thread::JoinHandle<std::io::Result<()>>,
}

impl Sink {
    fn spawn<W: std::io::Write + 'static>(open: fn() -> W) -> Sink {
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
        let thread = std::thread::spawn(move || {
            let mut out = open();
            while let Some(chunk) = rx.blocking_recv() {
                out.write_all(&chunk)?;
                if rx.is_empty() {
                    out.flush()?;
                }
            }
            out.flush()
        });
        Sink { tx, thread }
    }

    /// Queues a chunk; false when the writer has stopped (its error comes from `finish`).
    async fn send(&self, chunk: Vec<u8>) -> bool {
        self.tx.send(chunk).await.is_ok()
    }

    /// Waits until everything queued is written.
    async fn finish(self) -> std::io::Result<()> {
        drop(self.tx);
        let thread = self.thread;
        match tokio::task::spawn_blocking(move || thread.join()).await {
            Ok(Ok(r)) => r,
            _ => Err(std::io::Error::other("the output writer stopped")),
        }
    }
}

impl Bastion {
    /// Runs `request` with this process's stdin, stdout and stderr streamed both ways (EOF
    /// passed on); on a PTY (with the local terminal in raw mode, restored on every return)
    /// when `pty` is given. Returns the remote exit status.
    pub async fn run(&self, request: Request<'_>, pty: Option<Pty>) -> Result<u32, SshError> {
        let channel = self.open_session().await?;
        let err = |e| self.channel_error(e);
        if let Some(p) = &pty {
            channel
                .request_pty(false, &p.term, p.cols, p.rows, 0, 0, &[])
                .await
                .map_err(err)?;
        }
        match request {
            Request::Exec(cmd) => channel.exec(true, cmd).await.map_err(err)?,
            Request::ExecBytes(cmd) => channel.exec(true, cmd).await.map_err(err)?,
            Request::Shell => channel.request_shell(true).await.map_err(err)?,
        }
        let raw = match pty {
            Some(_) => Some(RawMode::enable().map_err(|source| SshError::Io {
                what: "cannot put the terminal in raw mode",
                source,
            })?),
            None => None,
        };
        let (mut read, write) = channel.split();
        let write = Arc::new(write);
        let stdin_pump = {
            let write = write.clone();
            tokio::spawn(async move {
                let mut stdin = tokio::io::stdin();
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    match stdin.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if write.data(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = write.eof().await;
            })
        };
        let resize = raw.as_ref().map(|_| {
            let write = write.clone();
            tokio::spawn(super::pty::pass_window_changes(write))
        });
        let stdout = Sink::spawn(std::io::stdout);
        let stderr = Sink::spawn(std::io::stderr);
        let mut status = None;
        // Keep reading after ExitStatus: output may still follow until the channel closes.
        while let Some(msg) = read.wait().await {
            let sent = match msg {
                ChannelMsg::Data { data } => stdout.send(data.to_vec()).await,
                ChannelMsg::ExtendedData { data, ext: 1 } => stderr.send(data.to_vec()).await,
                ChannelMsg::ExitStatus { exit_status } => {
                    status = Some(exit_status);
                    true
                }
                ChannelMsg::ExitSignal { signal_name, .. } => {
                    status = Some(signal_status(&signal_name));
                    true
                }
                ChannelMsg::Close => break,
                _ => true,
            };
            if !sent {
                break; // the sink failed: its error is reported below
            }
        }
        let result = match (stdout.finish().await, stderr.finish().await) {
            (Err(e), _) | (_, Err(e)) => Err(e),
            _ => Ok(()),
        };
        stdin_pump.abort();
        if let Some(r) = resize {
            r.abort();
        }
        drop(raw);
        result.map_err(|source| SshError::Io {
            what: "writing the remote output",
            source,
        })?;
        status.ok_or_else(|| SshError::Disconnected {
            target: self.target().to_string(),
        })
    }
}
