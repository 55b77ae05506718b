//! The one exit-status contract (DESIGN.md, "Exit statuses, everywhere").
//!
//! Every error type of the library says its own status through [`ExitStatus`]; commands fail
//! with [`Error`], which takes the status from the error it was made from, and `main` asks it
//! and maps nothing else. Knows nothing of any command or module.

use std::fmt;

/// An operation failed after connecting; for `health`, a check failed.
pub const FAILED: u8 = 1;
/// A usage or configuration error (clap's convention).
pub const USAGE: u8 = 2;
/// Interrupted by a signal (Ctrl-C) before the work was done.
pub const INTERRUPTED: u8 = 130;
/// Could not connect, authenticate or verify the bastion (OpenSSH's convention).
pub const UNREACHABLE: u8 = 255;

/// The exit status an error stands for.
pub trait ExitStatus {
    fn exit_status(&self) -> u8;
}

impl ExitStatus for std::io::Error {
    /// The system failed us: 1. An error that is the user's to fix has a type of its own
    /// that says so.
    fn exit_status(&self) -> u8 {
        FAILED
    }
}

/// What a command fails with: the error with its causes, and the status of the error it was
/// made from (a context added on top keeps that status).
pub struct Error {
    status: u8,
    inner: anyhow::Error,
}

impl Error {
    /// A usage or configuration error with this one-line message.
    pub fn usage(message: impl fmt::Display) -> Self {
        Self::with_status(USAGE, message)
    }

    /// An operation that failed after connecting, with this one-line message.
    pub fn failed(message: impl fmt::Display) -> Self {
        Self::with_status(FAILED, message)
    }

    /// A message with an explicit status (for the rare error that has no type of its own).
    pub fn with_status(status: u8, message: impl fmt::Display) -> Self {
        Self {
            status,
            inner: anyhow::Error::msg(message.to_string()),
        }
    }

    /// The same error, said in the light of what was being done; the status is kept.
    pub fn context(self, what: impl fmt::Display + Send + Sync + 'static) -> Self {
        Self {
            status: self.status,
            inner: self.inner.context(what),
        }
    }

    /// Whether the cause is a closed stdout (`paragon-admin ... | head`): not an error to report.
    pub fn is_broken_pipe(&self) -> bool {
        self.inner.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        })
    }

    /// The innermost error of the given type, for callers that branch on it.
    pub fn find<E: std::error::Error + Send + Sync + 'static>(&self) -> Option<&E> {
        self.inner.chain().find_map(|c| c.downcast_ref::<E>())
    }
}

impl ExitStatus for Error {
    fn exit_status(&self) -> u8 {
        self.status
    }
}

impl<E> From<E> for Error
where
    E: ExitStatus + std::error::Error + Send + Sync + 'static,
{
    fn from(e: E) -> Self {
        Self {
            status: e.exit_status(),
            inner: anyhow::Error::new(e),
        }
    }
}

/// The error and its causes on one line, `: ` between them. Each error type prints a cause
/// either in its own message or as its `source`, never both, so nothing repeats here.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for cause in self.inner.chain() {
            if !first {
                f.write_str(": ")?;
            }
            first = false;
            // One line, whatever the cause printed (a YAML parser's message has line breaks
            // that are kept by the error types that show it on purpose).
            let text = cause.to_string();
            f.write_str(&text.replace('\n', " "))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self} (exit status {})", self.status)
    }
}

/// `.context(..)` on any result whose error becomes an [`Error`].
pub trait Context<T> {
    fn context(self, what: impl fmt::Display + Send + Sync + 'static) -> Result<T, Error>;
    fn with_context<W, F>(self, what: F) -> Result<T, Error>
    where
        W: fmt::Display + Send + Sync + 'static,
        F: FnOnce() -> W;
}

impl<T, E: Into<Error>> Context<T> for Result<T, E> {
    fn context(self, what: impl fmt::Display + Send + Sync + 'static) -> Result<T, Error> {
        self.map_err(|e| e.into().context(what))
    }

    fn with_context<W, F>(self, what: F) -> Result<T, Error>
    where
        W: fmt::Display + Send + Sync + 'static,
        F: FnOnce() -> W,
    {
        self.map_err(|e| e.into().context(what()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("the bastion is unreachable")]
    struct Unreachable;

    impl ExitStatus for Unreachable {
        fn exit_status(&self) -> u8 {
            UNREACHABLE
        }
    }

    #[test]
    fn status_comes_from_the_error_and_survives_context() {
        let e: Error = Unreachable.into();
        assert_eq!(e.exit_status(), UNREACHABLE);
        let e = e.context("fetching the kubeconfig");
        assert_eq!(e.exit_status(), UNREACHABLE);
        assert_eq!(
            e.to_string(),
            "fetching the kubeconfig: the bastion is unreachable"
        );
        assert!(e.find::<Unreachable>().is_some());
    }

    /// A cause no message of ours could contain by accident.
    const CAUSE: &str = "cause-7f3a";

    fn io_cause() -> std::io::Error {
        std::io::Error::other(CAUSE)
    }

    /// The error's line as `main` prints it names the cause exactly once.
    fn says_cause_once(e: impl Into<Error>) -> String {
        let line = e.into().to_string();
        assert_eq!(line.matches(CAUSE).count(), 1, "{line}");
        line
    }

    #[test]
    fn every_cause_is_printed_once() {
        use std::net::SocketAddr;
        let addr: SocketAddr = ([127, 0, 0, 1], 8080).into();

        // Shown by themselves too (health findings, the forward log): cause in the message.
        let e = crate::ssh::SshError::Connect {
            target: "b:22".into(),
            cause: io_cause(),
        };
        assert!(e.to_string().contains(CAUSE), "{e}");
        assert_eq!(
            says_cause_once(e),
            format!("cannot connect to b:22: {CAUSE}")
        );
        let e = crate::dial::DialError::Io {
            target: "db:5432".into(),
            cause: io_cause(),
        };
        assert!(e.to_string().contains(CAUSE), "{e}");
        // DialError has no status of its own (it reaches a command inside other errors), so it
        // is chained here as those carry it.
        says_cause_once(Error {
            status: FAILED,
            inner: anyhow::Error::new(e),
        });
        let e = crate::ssh::known_hosts::KnownHostsError::Read {
            path: "/k/known_hosts".into(),
            cause: io_cause(),
        };
        assert!(e.to_string().contains(CAUSE), "{e}");
        says_cause_once(e);

        // Only ever reported through this type: the cause is chained.
        let line = says_cause_once(crate::forward::ForwardError::Bind {
            addr,
            source: io_cause(),
        });
        assert_eq!(line, format!("cannot listen on 127.0.0.1:8080: {CAUSE}"));
        says_cause_once(crate::sandbox::SandboxError::Bind {
            addr,
            source: io_cause(),
        });
    }

    #[test]
    fn a_chained_io_cause_is_still_found() {
        // `ssh ... | head`: the closed stdout must be seen through SshError::Io.
        let e: Error = crate::ssh::SshError::Io {
            what: "writing the remote output",
            source: std::io::ErrorKind::BrokenPipe.into(),
        }
        .into();
        assert!(e.is_broken_pipe(), "{e}");
    }

    #[test]
    fn plain_messages_carry_their_status() {
        assert_eq!(Error::usage("bad").exit_status(), USAGE);
        assert_eq!(Error::failed("bad").exit_status(), FAILED);
        let r: Result<(), std::io::Error> = Err(std::io::ErrorKind::BrokenPipe.into());
        let e = r.context("writing the report").unwrap_err();
        assert!(e.is_broken_pipe());
        assert_eq!(e.exit_status(), FAILED);
        assert_eq!(io_cause().exit_status(), FAILED);
    }
}
