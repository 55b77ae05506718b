//! A session channel streamed both ways: input in (EOF passed on), stdout and stderr out, the
//! remote exit status back; on a PTY when asked. The streams are channels (`Streams`), fed
//! from this process's stdio by `on_local_stdio` (writer threads, raw mode, resizes) or, in
//! the kept agent, from a client's socket. Used by `shell` and the passthrough commands;
//! `exec` shares its reading of exit signals.

use russh::{ChannelMsg, Sig};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

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

/// The exit status a shell reports for a process killed by `sig`: 128 + its number here, for
/// every signal the server names (`USR2`, `BUS`, `SYS`, ...; a `SIG` prefix is allowed). A
/// signal the server does not name (OpenSSH sends `SIG@openssh.com` for all but thirteen)
/// gives 128: never 255, which says the bastion was not reached.
pub(super) fn signal_status(sig: &Sig) -> u32 {
    let name = match sig {
        Sig::HUP => "HUP",
        Sig::INT => "INT",
        Sig::QUIT => "QUIT",
        Sig::ILL => "ILL",
        Sig::ABRT => "ABRT",
        Sig::FPE => "FPE",
        Sig::KILL => "KILL",
        Sig::USR1 => "USR1",
        Sig::SEGV => "SEGV",
        Sig::PIPE => "PIPE",
        Sig::ALRM => "ALRM",
        Sig::TERM => "TERM",
        Sig::Custom(c) => c.as_str(),
    };
    128 + signal_number(name.strip_prefix("SIG").unwrap_or(name)).unwrap_or(0)
}

/// A signal's number on this system, by its name without `SIG`.
#[cfg(unix)]
fn signal_number(name: &str) -> Option<u32> {
    use rustix::process::Signal;
    let sig = match name {
        "HUP" => Signal::HUP,
        "INT" => Signal::INT,
        "QUIT" => Signal::QUIT,
        "ILL" => Signal::ILL,
        "TRAP" => Signal::TRAP,
        "ABRT" | "IOT" => Signal::ABORT,
        "BUS" => Signal::BUS,
        "FPE" => Signal::FPE,
        "KILL" => Signal::KILL,
        "USR1" => Signal::USR1,
        "SEGV" => Signal::SEGV,
        "USR2" => Signal::USR2,
        "PIPE" => Signal::PIPE,
        "ALRM" => Signal::ALARM,
        "TERM" => Signal::TERM,
        "CHLD" => Signal::CHILD,
        "CONT" => Signal::CONT,
        "STOP" => Signal::STOP,
        "TSTP" => Signal::TSTP,
        "TTIN" => Signal::TTIN,
        "TTOU" => Signal::TTOU,
        "URG" => Signal::URG,
        "XCPU" => Signal::XCPU,
        "XFSZ" => Signal::XFSZ,
        "VTALRM" => Signal::VTALARM,
        "PROF" => Signal::PROF,
        "WINCH" => Signal::WINCH,
        "IO" | "POLL" => Signal::IO,
        "SYS" => Signal::SYS,
        #[cfg(any(target_os = "linux", target_os = "android"))]
        "STKFLT" => Signal::STKFLT,
        #[cfg(any(target_os = "linux", target_os = "android"))]
        "PWR" => Signal::POWER,
        _ => return None,
    };
    u32::try_from(sig.as_raw()).ok()
}

/// A signal's number by its name without `SIG`: Linux's numbering where POSIX has none.
#[cfg(not(unix))]
fn signal_number(name: &str) -> Option<u32> {
    const NAMES: [&str; 31] = [
        "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
        "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
        "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
    ];
    NAMES
        .iter()
        .position(|n| *n == name)
        .and_then(|i| u32::try_from(i + 1).ok())
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

/// What the user's side sends into a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Data(Vec<u8>),
    /// The end of stdin: the remote command sees EOF.
    Eof,
    /// The local terminal's new size (columns, rows).
    Resize {
        cols: u32,
        rows: u32,
    },
}

/// What a session sends back, stdout and stderr kept apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
}

/// A session's two directions as channels: this process's stdio, or (in the kept agent) the
/// frames of a client's socket. Bounded, so a slow reader holds back the SSH window.
pub struct Streams {
    pub input: mpsc::Receiver<Input>,
    pub output: mpsc::Sender<Output>,
    /// The user's side went away (the agent's client vanished): the channel is closed.
    pub gone: CancellationToken,
}

impl Bastion {
    /// Runs `request` with this process's stdin, stdout and stderr streamed both ways (EOF
    /// passed on); on a PTY (with the local terminal in raw mode, restored on every return)
    /// when `pty` is given. Returns the remote exit status.
    pub async fn run(&self, request: Request<'_>, pty: Option<Pty>) -> Result<u32, SshError> {
        let on_pty = pty.is_some();
        on_local_stdio(on_pty, |streams| {
            self.stream(request, pty.as_ref(), streams)
        })
        .await
    }

    /// Runs `request` with its input taken from and its output given to `streams`; on a PTY
    /// of `pty`'s size and type when given. Returns the remote exit status; the end of
    /// `streams.output` (its reader gone) ends the session early.
    pub async fn stream(
        &self,
        request: Request<'_>,
        pty: Option<&Pty>,
        streams: Streams,
    ) -> Result<u32, SshError> {
        let channel = self.open_session().await?;
        let err = |e| self.channel_error(e);
        if let Some(p) = pty {
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
        let (mut read, write) = channel.split();
        let write = Arc::new(write);
        let Streams {
            mut input,
            output,
            gone,
        } = streams;
        // Its own task: a write waiting for the remote window must not stop output.
        let input_pump = tokio::spawn({
            let write = write.clone();
            async move {
                while let Some(i) = input.recv().await {
                    let sent = match i {
                        // Owned bytes, cut into packets as large as the server takes:
                        // `data` copies through tokio::io::copy's 8 KiB buffer, so every
                        // 32 KiB chunk went out as four small packets (issue 25).
                        Input::Data(d) => write.data_bytes(d).await.is_ok(),
                        Input::Eof => write.eof().await.is_ok(),
                        Input::Resize { cols, rows } => {
                            write.window_change(cols, rows, 0, 0).await.is_ok()
                        }
                    };
                    if !sent {
                        return;
                    }
                }
            }
        });
        let mut status = None;
        let mut closed = false;
        // Keep reading after ExitStatus: output may still follow until the channel closes.
        loop {
            let msg = tokio::select! {
                m = read.wait() => m,
                () = gone.cancelled() => break,
            };
            let Some(msg) = msg else {
                closed = true;
                break;
            };
            let sent = match msg {
                ChannelMsg::Data { data } => output.send(Output::Stdout(data.to_vec())).await,
                ChannelMsg::ExtendedData { data, ext: 1 } => {
                    output.send(Output::Stderr(data.to_vec())).await
                }
                ChannelMsg::ExitStatus { exit_status } => {
                    status = Some(exit_status);
                    Ok(())
                }
                ChannelMsg::ExitSignal { signal_name, .. } => {
                    status = Some(signal_status(&signal_name));
                    Ok(())
                }
                ChannelMsg::Close => {
                    closed = true;
                    break;
                }
                _ => Ok(()),
            };
            if sent.is_err() {
                break; // the reader stopped: its own error is reported by its side
            }
        }
        input_pump.abort();
        if !closed {
            // Ended on our side first (the reader went away): the remote command must end too.
            tokio::spawn(hang_up(read, write, self.inner.channels.clone()));
        }
        status.ok_or_else(|| SshError::Disconnected {
            target: self.target().to_string(),
        })
    }
}

/// Ends a session channel whose reader went away: EOF and a hang-up signal (as a closed
/// terminal gives), then the server's CLOSE awaited, which also releases russh's half of the
/// channel (see `channel`). Only a command that outlives `CLOSE_WAIT` gets our CLOSE first,
/// and that channel is counted as held. Its own task: the caller does not wait for it.
async fn hang_up(
    mut read: russh::ChannelReadHalf,
    write: Arc<russh::ChannelWriteHalf<russh::client::Msg>>,
    ledger: Arc<super::channel::Ledger>,
) {
    let _ = write.eof().await;
    let _ = write.signal(russh::Sig::HUP).await;
    let released = async {
        while let Some(msg) = read.wait().await {
            if matches!(msg, ChannelMsg::Close) {
                break;
            }
        }
    };
    super::channel::close_unless_released(released, &write, &ledger).await;
}

/// Runs `session` with this process's stdio as its streams: stdin read until EOF (then EOF
/// passed on), stdout and stderr written by their own threads, and on a PTY the terminal in
/// raw mode (restored on every return) and its resizes passed on. A failed write to stdout or
/// stderr (a closed pipe) wins over the session's own result.
pub async fn on_local_stdio<F, Fut, E>(pty: bool, session: F) -> Result<u32, E>
where
    F: FnOnce(Streams) -> Fut,
    Fut: std::future::Future<Output = Result<u32, E>>,
    E: From<SshError>,
{
    let raw = match pty {
        true => Some(RawMode::enable().map_err(|source| SshError::Io {
            what: "cannot put the terminal in raw mode",
            source,
        })?),
        false => None,
    };
    let (input, input_rx) = mpsc::channel(16);
    let (output_tx, mut output) = mpsc::channel(64);
    // A thread of its own reads stdin: tokio's stdin hands every read to its blocking pool
    // and back (two thread switches and a copy per chunk), which made a large stdin wait on
    // the reader rather than on the network (issue 25). Once the session is over the thread
    // may still be parked in a read of a terminal; the process ends without waiting for it.
    let stdin_pump = {
        let input = input.clone();
        std::thread::spawn(move || read_stdin(&input))
    };
    let resize = raw
        .as_ref()
        .map(|_| tokio::spawn(pass_window_changes(input.clone())));
    drop(input);
    let writing = async move {
        let stdout = Sink::spawn(std::io::stdout);
        let stderr = Sink::spawn(std::io::stderr);
        while let Some(o) = output.recv().await {
            let sent = match o {
                Output::Stdout(d) => stdout.send(d).await,
                Output::Stderr(d) => stderr.send(d).await,
            };
            if !sent {
                break; // the sink failed: its error is reported below
            }
        }
        drop(output);
        match (stdout.finish().await, stderr.finish().await) {
            (Err(e), _) | (_, Err(e)) => Err(e),
            _ => Ok(()),
        }
    };
    let streams = Streams {
        input: input_rx,
        output: output_tx,
        gone: CancellationToken::new(),
    };
    let (status, written) = tokio::join!(session(streams), writing);
    // The reader stops at its next chunk: the session's input is gone.
    drop(stdin_pump);
    if let Some(r) = resize {
        r.abort();
    }
    drop(raw);
    written.map_err(|source| SshError::Io {
        what: "writing the remote output",
        source,
    })?;
    status
}

/// How much of stdin one read takes: a pipe holds 64 KiB, and from a file a larger read
/// costs fewer system calls and messages; the session cuts it into packets.
const STDIN_CHUNK: usize = 128 * 1024;

/// Reads this process's stdin into `input` until its end (then `Input::Eof`), an error, or
/// the session no longer taking input.
fn read_stdin(input: &mpsc::Sender<Input>) {
    use std::io::Read;
    let mut stdin = std::io::stdin();
    let mut buf = vec![0u8; STDIN_CHUNK];
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if input.blocking_send(Input::Data(buf[..n].to_vec())).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = input.blocking_send(Input::Eof);
}

/// Passes the local terminal's size on to a session's input on every SIGWINCH.
#[cfg(unix)]
async fn pass_window_changes(input: mpsc::Sender<Input>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut winch) = signal(SignalKind::window_change()) else {
        return;
    };
    while winch.recv().await.is_some() {
        if let Ok((cols, rows)) = crossterm::terminal::size() {
            let resize = Input::Resize {
                cols: u32::from(cols),
                rows: u32::from(rows),
            };
            if input.send(resize).await.is_err() {
                return;
            }
        }
    }
}

/// Windows has no SIGWINCH: the size given when the PTY was opened stays.
#[cfg(not(unix))]
async fn pass_window_changes(_input: mpsc::Sender<Input>) {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn every_signal_the_server_names_is_128_plus_its_number() {
        let custom = |n: &str| signal_status(&Sig::Custom(n.to_string()));
        assert_eq!(signal_status(&Sig::TERM), 143);
        assert_eq!(signal_status(&Sig::USR1), 128 + 10);
        assert_eq!(custom("USR2"), 128 + 12);
        assert_eq!(custom("BUS"), 128 + 7);
        assert_eq!(custom("SYS"), 128 + 31);
        assert_eq!(custom("SIGXCPU"), 128 + 24);
        assert_eq!(custom("WINCH"), 128 + 28);
        // Unnamed (OpenSSH's catch-all) or unknown: 128, never the "not reached" 255.
        assert_eq!(custom("SIG@openssh.com"), 128);
        assert_eq!(custom("NOSUCH"), 128);
    }
}
