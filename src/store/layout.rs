//! Where drctl keeps its records in a state directory (`.drctl` by
//! default): the one place that knows the layout. Journals, locks, drill
//! reports and the scheduler's state are named here as [`Key`]s; no other
//! module joins a name onto the state directory.
//!
//! ```text
//! runs/<run id>/events.jsonl       a run's journal (append-only)
//! locks/<env>@<region>.lock        an environment's lock (OS lock + holder)
//! runs/<run id>/events/<seq>      …in a bucket: one object per append
//! locks/broken/<lock>.<ms>.json    who broke a lease (`drctl unlock`)
//! reports/<runbook>/<run id>.json  a drill's report (and .md)
//! schedule/state.json              the scheduler's state
//! schedule/daemon.lock             one scheduler per state directory
//! pushed/<run id>.json             a fallback store's note: this run is in the shared store
//! sandbox/                         the local moto server
//! ```
//!
//! The local store puts a key under the state directory; a store in a
//! bucket would put it under its prefix.

use std::path::{Path, PathBuf};

/// A record's name in a store: relative, `/`-separated.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(String);

/// The two forms of a drill's report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Json,
    Markdown,
}

impl Key {
    /// Where the runs are, one under each id.
    pub fn runs() -> Key {
        Key("runs".into())
    }

    /// One run's records.
    pub fn run(run_id: &str) -> Key {
        Key(format!("runs/{run_id}"))
    }

    /// One run's journal.
    pub fn journal(run_id: &str) -> Key {
        Key(format!("runs/{run_id}/events.jsonl"))
    }

    /// A run's journal in a bucket: one numbered object per append, under
    /// this folder.
    pub fn journal_parts(run_id: &str) -> Key {
        Key(format!("runs/{run_id}/events"))
    }

    /// The `seq`-th object of a run's journal in a bucket.
    pub fn journal_part(run_id: &str, seq: u64) -> Key {
        Key(format!("runs/{run_id}/events/{seq:010}"))
    }

    /// Who broke the lease of `lock`, and when (`at`, ms).
    pub fn broken_lock(lock: &Key, at: i64) -> Key {
        Key(format!("locks/broken/{}.{at}.json", lock.name()))
    }

    /// Where environments' locks are.
    pub fn locks() -> Key {
        Key("locks".into())
    }

    /// The lock of an environment in a region.
    pub fn environment_lock(env: &str, region: &str) -> Key {
        Key(format!("locks/{env}@{region}.lock"))
    }

    /// Where the drill reports are, one folder per runbook.
    pub fn all_reports() -> Key {
        Key("reports".into())
    }

    /// A runbook's drill reports.
    pub fn reports(runbook: &str) -> Key {
        Key(format!("reports/{runbook}"))
    }

    /// A drill's report. The run id starts with the run's UTC start time,
    /// so a runbook's reports sort by time.
    pub fn report(runbook: &str, run_id: &str, format: ReportFormat) -> Key {
        let extension = match format {
            ReportFormat::Json => "json",
            ReportFormat::Markdown => "md",
        };
        Key(format!("reports/{runbook}/{run_id}.{extension}"))
    }

    /// In a fallback store (`rebuild --state-fallback DIR`): which of run
    /// `run_id`'s records `drctl state push DIR` put in the shared store.
    pub fn pushed(run_id: &str) -> Key {
        Key(format!("pushed/{run_id}.json"))
    }

    /// The scheduler's state.
    pub fn schedule_state() -> Key {
        Key("schedule/state.json".into())
    }

    /// The claim of one fire (`fire`, ms) of a runbook's schedule.
    pub fn fire_claim(runbook: &str, fire: i64) -> Key {
        Key(format!("schedule/claims/{runbook}/{fire}"))
    }

    /// The lock that keeps one scheduler per store.
    pub fn scheduler_lock() -> Key {
        Key("schedule/daemon.lock".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last part of the key (a file's name, locally).
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// A key as a listing names it (relative, `/`-separated).
    pub(super) fn from_relative(key: String) -> Key {
        Key(key)
    }

    /// The key of `name` within this one.
    pub(super) fn child(&self, name: &str) -> Key {
        Key(format!("{}/{name}", self.0))
    }

    /// The key as a path under `root`.
    pub(super) fn under(&self, root: &Path) -> PathBuf {
        self.0
            .split('/')
            .fold(root.to_path_buf(), |p, part| p.join(part))
    }
}

/// The local sandbox's directory: not a record, a place on this machine
/// (it runs moto), so it is a path whatever store holds the records.
pub fn sandbox_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("sandbox")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_what_existing_state_directories_hold() {
        let root = Path::new(".drctl");
        let shown = |key: Key| key.under(root).display().to_string();
        assert_eq!(shown(Key::journal("r-1")), ".drctl/runs/r-1/events.jsonl");
        assert_eq!(shown(Key::run("r-1")), ".drctl/runs/r-1");
        assert_eq!(
            shown(Key::environment_lock("web", "us-west-2")),
            ".drctl/locks/web@us-west-2.lock"
        );
        assert_eq!(
            shown(Key::report("web", "r-1", ReportFormat::Json)),
            ".drctl/reports/web/r-1.json"
        );
        assert_eq!(
            shown(Key::report("web", "r-1", ReportFormat::Markdown)),
            ".drctl/reports/web/r-1.md"
        );
        assert_eq!(shown(Key::schedule_state()), ".drctl/schedule/state.json");
        assert_eq!(shown(Key::scheduler_lock()), ".drctl/schedule/daemon.lock");
        assert_eq!(shown(Key::pushed("r-1")), ".drctl/pushed/r-1.json");
        assert_eq!(shown(Key::all_reports()), ".drctl/reports");
        assert_eq!(sandbox_dir(root).display().to_string(), ".drctl/sandbox");
        assert_eq!(
            Key::journal("r-1").under(root),
            root.join("runs").join("r-1").join("events.jsonl")
        );
        assert_eq!(Key::reports("web").child("a.json").name(), "a.json");
    }
}
