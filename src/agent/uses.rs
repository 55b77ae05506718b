//! How many operations and detached forwards are in progress: the agent leaves only when
//! there are none, `persist` after the last one ended. Knows nothing of what the uses are.

use std::sync::Arc;

use tokio::sync::watch;

/// The count of uses in progress (none at first), shared by whoever starts one and whoever
/// waits for none.
#[derive(Clone, Default)]
pub struct Uses(Arc<watch::Sender<usize>>);

/// One use in progress, counted until dropped.
pub struct UseGuard(Uses);

impl Uses {
    pub fn hold(&self) -> UseGuard {
        self.0.send_modify(|n| *n += 1);
        UseGuard(self.clone())
    }

    /// The count, told on every change.
    pub fn subscribe(&self) -> watch::Receiver<usize> {
        self.0.subscribe()
    }
}

impl Drop for UseGuard {
    fn drop(&mut self) {
        self.0.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}
