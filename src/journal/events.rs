//! What a journal records: its events (a run's start and target, each
//! step's intent and outcome, gate decisions, a drill's checks and end) and
//! the run statuses derived from them. The file they go to is `mod.rs`'s.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Millis;
use crate::plan::Action;
use crate::world::Address;

/// The gate as it was when the run reached it (so `approve` needs no repo).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateSpec {
    pub approvals: u32,
    pub approvers: Vec<String>,
    pub timeout_secs: Option<u64>,
    pub reject_on_timeout: bool,
}

/// What a drill run remembers beyond an apply run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillStart {
    /// The runbook's own environment (never touched by the drill).
    pub source_environment: String,
    /// `[drill].teardown`: `always`, `on_success` or `never`.
    pub teardown: String,
    /// `--junit FILE`, absolute.
    pub junit: Option<PathBuf>,
    /// When the drill began (before it observed and planned): RTO's zero.
    #[serde(default)]
    pub started_at: Millis,
    /// Images are baked from scratch (`[drill] rebake` or `--rebake`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rebake: bool,
    /// The drill's deadline (`[drill] ttl` after its start), tagged on
    /// everything it creates as `drctl:expires`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Millis>,
    /// What the drill's sweep before building removed (or failed to), one
    /// line per expired drill: `12 resources of drill … started 3 days ago`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub swept: Vec<String>,
    /// The RTO forecast made from the drill's plan as it started (its
    /// report sets it against the measured RTO).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<crate::forecast::Forecast>,
}

impl DrillStart {
    /// The lifetime the drill `run_id` tags its resources with.
    pub fn lifetime(&self, run_id: &str) -> Option<crate::types::tags::Lifetime> {
        self.expires_at
            .map(|expires_at| crate::types::tags::Lifetime {
                drill: run_id.to_string(),
                expires_at,
            })
    }
}

/// The reason recorded when a drill's gates pass by `[drill] auto_approve`.
pub const DRILL_POLICY: &str = "[drill] auto_approve";

/// The cloud endpoint a run talks to (its region is the runbook's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunTarget {
    /// `--endpoint-url`, if one was given.
    pub endpoint_url: Option<String>,
    /// The local sandbox (`--sandbox`).
    pub sandbox: bool,
    /// `--profile`, if one was given.
    pub profile: Option<String>,
    pub region: String,
    /// The state directory holding the run, absolute.
    pub state_dir: PathBuf,
    /// Set when the run's records went to a local store (`rebuild
    /// --state-fallback DIR`, which is `state_dir`) because the shared store
    /// could not be reached: until `drctl state push DIR`, only this machine
    /// has its history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<StoreFallback>,
}

/// Why a run's records are on a fallback store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreFallback {
    /// The store the run would have used (`s3://BUCKET/PREFIX`).
    pub instead_of: String,
    /// The error that store gave, naming its bucket and region.
    pub error: String,
    /// Why the operator went on without it (`--reason`).
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Reject,
    /// Passed by policy: an `auto` gate, `--auto-approve`, or a drill.
    Auto,
    /// The gate's timeout ran out (`on_timeout = "reject"`).
    Timeout,
}

// One RunStarted per run and a few events per step: boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        at: Millis,
        run_id: String,
        runbook: String,
        root: PathBuf,
        runbook_file: PathBuf,
        environment: String,
        region: String,
        phases: Vec<String>,
        user: String,
        host: String,
        /// The process that started it (a second Ctrl-C marks its own run).
        #[serde(default)]
        pid: u32,
        /// `--auto-approve`: every gate passes, recorded as such.
        auto_approve: Option<String>,
        /// SHA-256 of each stack and runbook file the run was planned from,
        /// by path relative to the project root.
        #[serde(default)]
        sources: BTreeMap<String, String>,
        /// The deletions approved with the run's plan: (address, object id).
        /// Cleanup deletes only these, and duplicates this run itself made.
        #[serde(default)]
        approved_cleanup: Vec<(Address, String)>,
        /// Where the run runs, so `resume`, `approve`, `reject` and `runs
        /// show` go to the same place without the flags being repeated.
        #[serde(default)]
        target: Option<RunTarget>,
        /// Set when the run is a DR drill: after its phases come the checks,
        /// the teardown and the leak check, on resume too.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        drill: Option<DrillStart>,
    },
    /// The plan a phase is about to execute (re-planned with real values).
    PhasePlanned {
        at: Millis,
        phase: String,
        summary: String,
        changes: usize,
    },
    PhaseStarted {
        at: Millis,
        phase: String,
    },
    PhaseFinished {
        at: Millis,
        phase: String,
        failed: usize,
        /// A canary stopped at a weight below 100%: the phase is not done
        /// and goes on behind this gate (`cutover@50%`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hold: Option<String>,
    },
    /// Written before the API call.
    Intent {
        at: Millis,
        address: Address,
        action: Action,
        /// The steps this one waited for: the edges of the critical path.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        depends_on: Vec<Address>,
        /// The phase it belongs to: phases that pipeline overlap, so the
        /// phase running last is not necessarily its own. None for a
        /// clean-up (and in journals written before phases pipelined).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phase: Option<String>,
    },
    /// Written after it.
    Outcome {
        at: Millis,
        address: Address,
        action: Action,
        ok: bool,
        id: String,
        error: Option<String>,
    },
    /// The gate shows the phase plan hashing to `plan_hash`; approvals are
    /// for that plan only. A re-plan that differs is recorded again, which
    /// sets the approvals so far aside.
    GateWaiting {
        at: Millis,
        phase: String,
        gate: GateSpec,
        #[serde(default)]
        plan_hash: String,
        /// The phase plan's one-line summary (`2 to add, 1 to change`), as
        /// the approver is shown it; journals before notifications lack it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        summary: Option<String>,
    },
    GateDecision {
        at: Millis,
        phase: String,
        decision: Decision,
        by: String,
        reason: Option<String>,
        waited_ms: Millis,
        /// The plan this decision was about.
        #[serde(default)]
        plan_hash: String,
    },
    Paused {
        at: Millis,
        phase: String,
    },
    Interrupted {
        at: Millis,
    },
    Resumed {
        at: Millis,
        by: String,
        pid: u32,
    },
    RunFinished {
        at: Millis,
        status: RunStatus,
    },
    /// The checks after a rebuild or a cutover ran to the end: their results
    /// (a drill report's `checks[]`), the names of those that failed, and
    /// when every check had passed (a drill's RTO end). A run resumed after
    /// this point goes on from them (the rollback if one failed) instead of
    /// checking an environment a teardown or rollback may have changed.
    /// Journals written before this record read as it: `drill_checked`
    /// (same fields) and `cutover_checks_failed` (only `failed`).
    #[serde(alias = "drill_checked", alias = "cutover_checks_failed")]
    Checked {
        at: Millis,
        #[serde(default)]
        results: Vec<crate::outcome::CheckResult>,
        #[serde(default)]
        failed: Vec<String>,
        #[serde(default)]
        recovered_at: Option<Millis>,
        /// Each service the run cut over, with the colour it moved it to: a
        /// rollback after failed checks moves only what is still on it.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        live: BTreeMap<String, String>,
    },
    /// Post-cutover checks failed and the services the run cut over were
    /// rolled back (each in a run of its own, as `drctl rollback`).
    RolledBack {
        at: Millis,
        services: Vec<crate::outcome::RolledBack>,
    },
    /// A drill's end: checked, torn down, leak-checked and reported.
    DrillFinished {
        at: Millis,
        passed: bool,
        report: PathBuf,
        /// The verdict's one word (`passed`, `failed`, …) and the RTO
        /// measured against its target, for notifications; older journals
        /// lack them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        verdict: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rto_ms: Option<Millis>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rto_target_ms: Option<Millis>,
    },
    /// The leak check after a drill's teardown found objects still carrying
    /// its environment's tags (type and id of each).
    LeakFound {
        at: Millis,
        environment: String,
        resources: Vec<String>,
    },
    /// A notification (`[notify]`) was delivered: which event, to which
    /// webhook (its URL without path or query, which may hold a token),
    /// after how many attempts.
    Notified {
        at: Millis,
        notice: String,
        webhook: String,
        attempts: u32,
        status: u16,
    },
    /// A notification could not be delivered after its attempts; the run
    /// went on regardless.
    NotifyFailed {
        at: Millis,
        notice: String,
        webhook: String,
        attempts: u32,
        error: String,
    },
}

impl Event {
    pub fn at(&self) -> Millis {
        match self {
            Event::RunStarted { at, .. }
            | Event::PhasePlanned { at, .. }
            | Event::PhaseStarted { at, .. }
            | Event::PhaseFinished { at, .. }
            | Event::Intent { at, .. }
            | Event::Outcome { at, .. }
            | Event::GateWaiting { at, .. }
            | Event::GateDecision { at, .. }
            | Event::Paused { at, .. }
            | Event::Interrupted { at }
            | Event::Resumed { at, .. }
            | Event::RunFinished { at, .. }
            | Event::Checked { at, .. }
            | Event::RolledBack { at, .. }
            | Event::DrillFinished { at, .. }
            | Event::LeakFound { at, .. }
            | Event::Notified { at, .. }
            | Event::NotifyFailed { at, .. } => *at,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Paused,
    Interrupted,
    Succeeded,
    Failed,
    Rejected,
}

impl RunStatus {
    pub fn is_final(self) -> bool {
        matches!(self, RunStatus::Succeeded | RunStatus::Rejected)
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            RunStatus::Running => "running",
            RunStatus::Paused => "paused at a gate",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Rejected => "rejected",
        };
        f.write_str(s)
    }
}
