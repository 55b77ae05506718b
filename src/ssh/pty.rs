//! The local terminal's side of a remote PTY: its size and type, and raw mode restored on
//! every exit path (`session` passes its resizes on). Knows nothing of what runs remotely.

use std::io::IsTerminal;

/// The terminal the remote side gets.
#[derive(Debug, Clone)]
pub struct Pty {
    pub term: String,
    pub cols: u32,
    pub rows: u32,
}

impl Pty {
    /// The local terminal's size and `$TERM` (xterm-256color when unset).
    pub fn local() -> Pty {
        let (cols, rows) = crossterm::terminal::size().unwrap_or((80, 24));
        let term = std::env::var("TERM")
            .ok()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "xterm-256color".to_string());
        Pty {
            term,
            cols: u32::from(cols),
            rows: u32::from(rows),
        }
    }

    /// A PTY when stdin is a terminal (as OpenSSH decides for `ssh host`), else none.
    pub fn if_terminal() -> Option<Pty> {
        std::io::stdin().is_terminal().then(Pty::local)
    }

    /// A PTY when stdin and stdout are both terminals: a tool run through a PTY writes CRLF
    /// line ends and merges stderr into stdout, which a pipe or a file must not get.
    pub fn if_interactive() -> Option<Pty> {
        (std::io::stdin().is_terminal() && std::io::stdout().is_terminal()).then(Pty::local)
    }
}

/// The local terminal in raw mode for as long as this lives.
pub struct RawMode(());

impl RawMode {
    pub fn enable() -> std::io::Result<RawMode> {
        crossterm::terminal::enable_raw_mode()?;
        Ok(RawMode(()))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}
