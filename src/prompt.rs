//! Questions to the person at the terminal, and the refusal when there is none.
//!
//! Every prompt needs stdin and stderr to be terminals; without one it fails with a hint that
//! says how to give the answer another way (a flag, a stored secret). It knows nothing of SSH.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("{question}: no terminal to ask on; {hint}")]
    NoTerminal { question: String, hint: String },
    #[error("{question}: interrupted")]
    Interrupted { question: String },
    #[error("{question}")]
    Failed {
        question: String,
        source: dialoguer::Error,
    },
}

impl crate::exit::ExitStatus for PromptError {
    /// Ctrl-C at a prompt is an interruption (130); anything else a usage error (2).
    fn exit_status(&self) -> u8 {
        match self {
            PromptError::Interrupted { .. } => crate::exit::INTERRUPTED,
            _ => crate::exit::USAGE,
        }
    }
}

/// Whether a person can be asked: stdin and stderr are both terminals.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Whether this process may show a waiting line: not with `--quiet` or JSON output.
static PROGRESS: AtomicBool = AtomicBool::new(true);
/// Whether a waiting line is on the terminal now.
static SHOWN: AtomicBool = AtomicBool::new(false);

/// Turns waiting lines off (or on) for this process: off with `--quiet` and JSON output.
pub fn set_progress(on: bool) {
    PROGRESS.store(on, Ordering::Relaxed);
}

/// Whether this process shows waiting lines (an agent it starts is told the same).
pub fn progress() -> bool {
    PROGRESS.load(Ordering::Relaxed)
}

/// A line on stderr that says what the command waits for (`connecting to HOST:PORT ...`),
/// so that a slow or unreachable server is not a blank screen: on a terminal only, never in
/// a pipe, with `--quiet` or with JSON output. It is erased when dropped, before a question
/// is asked and before a log line is written, so the line it leaves is clean for what comes
/// next (the command's output, or its error).
#[must_use = "the line is erased when this is dropped"]
pub struct WaitingLine(());

/// Shows `text` as the waiting line when this process may.
pub fn waiting_line(text: &str) -> Option<WaitingLine> {
    if !progress() || !std::io::stderr().is_terminal() {
        return None;
    }
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{text}");
    let _ = err.flush();
    SHOWN.store(true, Ordering::Relaxed);
    Some(WaitingLine(()))
}

impl Drop for WaitingLine {
    fn drop(&mut self) {
        erase_waiting_line();
    }
}

/// Erases the waiting line if one is shown: the cursor goes back to the start of the line,
/// which is cleared.
pub fn erase_waiting_line() {
    if SHOWN.swap(false, Ordering::Relaxed) {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(b"\r\x1b[K");
        let _ = err.flush();
    }
}

/// Refuses without a terminal; with one, discards the input typed before the question was
/// asked (type-ahead), as OpenSSH does, so only what is typed after it can answer.
fn require(question: &str, hint: &str) -> Result<(), PromptError> {
    erase_waiting_line();
    if interactive() {
        #[cfg(unix)]
        if let Err(e) =
            rustix::termios::tcflush(std::io::stdin(), rustix::termios::QueueSelector::IFlush)
        {
            tracing::debug!("cannot discard type-ahead: {e}");
        }
        Ok(())
    } else {
        Err(PromptError::NoTerminal {
            question: question.to_string(),
            hint: hint.to_string(),
        })
    }
}

/// Prints every line of `question` but the last once, and returns the last: dialoguer redraws
/// its prompt line on each key, and a prompt of several lines would be printed again each time.
fn prompt_line(question: &str) -> &str {
    match question.rsplit_once('\n') {
        Some((head, last)) => {
            eprintln!("{head}");
            last
        }
        None => question,
    }
}

/// The error of an answered-not prompt. Menus hide the cursor while they are drawn and show it
/// again only on an answer: after Ctrl-C (or any failure) it is shown here, so that the
/// shell the person returns to has one.
fn failed(question: &str, source: dialoguer::Error) -> PromptError {
    show_cursor();
    let dialoguer::Error::IO(io) = &source;
    if io.kind() == std::io::ErrorKind::Interrupted {
        return PromptError::Interrupted {
            question: question.to_string(),
        };
    }
    PromptError::Failed {
        question: question.to_string(),
        source,
    }
}

/// Ctrl-C (or SIGTERM) while a question is asked: the cursor is shown again (a menu hides
/// it), a file being written is not left half-made beside its target (`files`), and the
/// process ends with 130, instead of dying from the signal with the cursor gone. Call once,
/// inside the runtime, before the first question.
pub fn restore_terminal_on_interrupt() {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let Ok(mut shutdown) = crate::signals::Shutdown::install() else {
        return;
    };
    runtime.spawn(async move {
        shutdown.requested().await;
        crate::files::remove_unfinished();
        show_cursor();
        std::process::exit(i32::from(crate::exit::INTERRUPTED));
    });
}

fn show_cursor() {
    let mut err = std::io::stderr();
    let _ = err.write_all(b"\x1b[?25h\n");
    let _ = err.flush();
}

/// Asks yes or no; `default` is the answer to a bare Enter.
pub fn confirm(question: &str, default: bool, hint: &str) -> Result<bool, PromptError> {
    require(question, hint)?;
    dialoguer::Confirm::new()
        .with_prompt(prompt_line(question))
        .default(default)
        .interact()
        .map_err(|source| failed(question, source))
}

/// Asks for a secret without echoing it.
pub fn password(question: &str, hint: &str) -> Result<String, PromptError> {
    require(question, hint)?;
    dialoguer::Password::new()
        .with_prompt(prompt_line(question))
        .allow_empty_password(true)
        .interact()
        .map_err(|source| failed(question, source))
}

/// Asks for a line of text; `default` is the answer to a bare Enter (empty allowed when it is
/// `Some("")`). `validate` is asked again after every answer until it accepts one.
pub fn input(
    question: &str,
    default: Option<&str>,
    hint: &str,
    validate: impl Fn(&str) -> Result<(), String>,
) -> Result<String, PromptError> {
    require(question, hint)?;
    let mut p = dialoguer::Input::<String>::new()
        .with_prompt(prompt_line(question))
        .validate_with(move |s: &String| validate(s.trim()));
    if let Some(d) = default {
        p = p.default(d.to_string()).allow_empty(d.is_empty());
        p = p.show_default(!d.is_empty());
    }
    p.interact_text()
        .map(|s| s.trim().to_string())
        .map_err(|source| failed(question, source))
}

/// Asks to pick one of `items` with the arrow keys; returns its index.
pub fn select(
    question: &str,
    items: &[String],
    default: usize,
    hint: &str,
) -> Result<usize, PromptError> {
    require(question, hint)?;
    dialoguer::Select::new()
        .with_prompt(prompt_line(question))
        .items(items)
        .default(default)
        .interact()
        .map_err(|source| failed(question, source))
}
