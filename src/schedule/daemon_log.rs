//! What `drctl schedule run` reports: one event per line of its log (text
//! or JSON lines, as the CLI renders them).

use std::path::PathBuf;

use serde::Serialize;

use super::StopSignal;
use crate::clock::Millis;
use crate::schedule::state::Verdict;
use crate::schedule::{Job, Shift};

/// What the daemon reports, one line each in its log.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Started: the runbooks it watches and their next fires.
    Watching {
        state_file: PathBuf,
        runbooks: Vec<Watched>,
    },
    /// Another daemon holds the store's scheduler lock: this one stands by.
    Standby {
        lock: PathBuf,
        holder: String,
    },
    /// A due fire someone else claimed (and runs): not run here.
    FireTaken {
        job: Job,
        runbook: String,
        fire: String,
        by: String,
    },
    /// Nothing is due until this fire.
    Waiting {
        job: Job,
        runbook: String,
        fire: String,
    },
    DrillStarted {
        runbook: String,
        /// The fire the drill is for, in the runbook's time zone.
        fire: String,
        shift: Shift,
        /// How many fires this one drill stands for (missed ones fold in).
        fires: usize,
        pid: u32,
        /// The drill's run id, given to it: its report is `<run id>.json`.
        run_id: String,
    },
    DrillFinished {
        runbook: String,
        fire: String,
        verdict: Verdict,
        exit_code: Option<i32>,
        /// The signal that killed the drill, if one did.
        signal: Option<i32>,
        duration_ms: Millis,
        /// The newest report the drill wrote, if it wrote one.
        report: Option<PathBuf>,
        /// Why the drill could not run at all.
        error: Option<String>,
    },
    /// A runbook's scheduled preflight started (`[preflight] schedule`).
    PreflightStarted {
        runbook: String,
        fire: String,
        shift: Shift,
        fires: usize,
        pid: u32,
    },
    /// Its verdict: `passed` (exit 0: nothing failed), `failed` (exit 1),
    /// `error` (anything else).
    PreflightFinished {
        runbook: String,
        fire: String,
        verdict: Verdict,
        exit_code: Option<i32>,
        signal: Option<i32>,
        duration_ms: Millis,
        error: Option<String>,
    },
    /// A stop was asked for; `in_flight` is the drill being torn down first.
    Stopping {
        signal: StopSignal,
        in_flight: Option<String>,
    },
    Stopped,
}

#[derive(Debug, Clone, Serialize)]
pub struct Watched {
    pub job: Job,
    pub runbook: String,
    pub schedule: String,
    pub timezone: String,
    /// Seen for the first time: fires before now are not made up for.
    pub new: bool,
    /// The next fire not yet handled (it may be due already).
    pub next: Option<String>,
}
