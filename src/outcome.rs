//! What runs end in, shared by the layers that produce them (checks,
//! rollbacks) and those that record or show them (events, the journal,
//! reports): defined once here, below all of them.

use serde::{Deserialize, Serialize};

use crate::clock::Millis;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Passed,
    Failed,
    /// Could not be run here (e.g. a name that does not resolve in the
    /// sandbox); never counted as passed.
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// As written in the runbook, e.g. `target_health fleet.target_group.web`.
    pub name: String,
    /// `target_health`, `listener_forwards_to`, `http`, `command`
    pub kind: String,
    pub status: CheckStatus,
    /// What was seen (or why it was skipped).
    pub detail: String,
    pub started_at: Millis,
    pub duration_ms: Millis,
}

/// What an automatic rollback did for one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolledBack {
    /// `stack.service.name`
    pub service: String,
    /// The colour that was live when the checks failed.
    pub from: String,
    /// The colour traffic went back to (`None`: it did not move).
    pub to: Option<String>,
    /// The rollback's own run, journaled like `drctl rollback`.
    pub run_id: Option<String>,
    pub ok: bool,
    /// One sentence: what happened, or why nothing could.
    pub note: String,
}
