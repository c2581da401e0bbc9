//! A drill's ttl, kept while it runs: a watchdog that stops the rebuild at
//! the drill's deadline (`drctl:expires` on everything it made), so that a
//! drill stuck past its ttl tears down and fails as "expired" instead of
//! racing a sweep of its own resources.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, Millis};

pub(super) struct Expiry {
    /// Cancelled by the run's own stop request or at the deadline.
    token: CancellationToken,
    fired: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Expiry {
    /// Watches `expires_at` (read on `clock`); stops what `parent` stops too.
    pub fn watch(clock: &dyn Clock, expires_at: Millis, parent: &CancellationToken) -> Expiry {
        let token = parent.child_token();
        let fired = Arc::new(AtomicBool::new(false));
        let left = Duration::from_millis((expires_at - clock.now()).max(0) as u64);
        let task = tokio::spawn({
            let (token, fired) = (token.clone(), fired.clone());
            async move {
                tokio::time::sleep(left).await;
                fired.store(true, Ordering::SeqCst);
                token.cancel();
            }
        });
        Expiry { token, fired, task }
    }

    /// The stop request the rebuild heeds.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Whether the deadline, not a person, stopped the drill.
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

impl Drop for Expiry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The failure an expired drill reports.
pub(super) fn expired_failure(expires_at: Option<Millis>) -> String {
    let when = expires_at
        .map(|at| format!(" ({})", crate::clock::format_millis(at)))
        .unwrap_or_default();
    format!("expired: the drill ran past its ttl{when} and was stopped and torn down")
}
