//! Verification: the runbook's checks against what was built (target
//! health, where a listener forwards, HTTP, a command), run after a drill's
//! rebuild and after an apply's cutover. Below the application layer, so
//! apply and drill both use it and neither reaches into the other.

use std::time::Duration;

pub mod checks;
pub mod http;

pub use checks::{run_all, CheckRun};

/// How long a `target_health` check waits for every target by default.
pub const HEALTH_DEADLINE: Duration = Duration::from_secs(600);
