//! The one signal watcher: SIGINT and SIGTERM (Ctrl-C elsewhere), the normal ways to stop a
//! long-running command. Knows nothing of what is being stopped.

/// SIGINT and SIGTERM, watched from the moment this is made, so that a signal that arrives
/// while a command is still connecting is not lost to the default handler.
pub struct Shutdown {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Shutdown {
    /// Starts watching (inside a tokio runtime).
    pub fn install() -> std::io::Result<Shutdown> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Shutdown {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Shutdown {})
    }

    /// Resolves at the next SIGINT or SIGTERM (Ctrl-C elsewhere).
    pub async fn requested(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sigterm_is_seen() {
        let mut shutdown = Shutdown::install().unwrap();
        let me = std::process::id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &me])
            .status()
            .unwrap();
        assert!(sent.success());
        tokio::time::timeout(std::time::Duration::from_secs(10), shutdown.requested())
            .await
            .expect("SIGTERM was not seen");
    }
}
