//! Where drctl keeps its records in a state directory (`.drctl` by
//! default): the one place that knows the layout. Journals, locks, drill
//! reports, the scheduler's state and the sandbox each ask here for their
//! paths; no other module joins a name onto the state directory.
//!
//! ```text
//! runs/<run id>/events.jsonl       a run's journal (append-only)
//! locks/<env>@<region>.lock        an environment's lock (OS lock + holder)
//! reports/<runbook>/<run id>.json  a drill's report (and .md)
//! schedule/state.json              the scheduler's state
//! schedule/daemon.lock             one scheduler per state directory
//! sandbox/                         the local moto server
//! ```
//!
//! A first step towards one run store (issue 19): the records keep their
//! files and their OS locks; a store shared by a team (S3) will implement
//! the same places behind an interface of appends, listings, leases and
//! whole-object reads and writes.

use std::path::{Path, PathBuf};

/// A state directory's layout.
#[derive(Debug, Clone, Copy)]
pub struct Layout<'a> {
    root: &'a Path,
}

impl<'a> Layout<'a> {
    pub fn new(state_dir: &'a Path) -> Layout<'a> {
        Layout { root: state_dir }
    }

    /// The directory holding one directory per run.
    pub fn runs(&self) -> PathBuf {
        self.root.join("runs")
    }

    /// One run's directory.
    pub fn run(&self, run_id: &str) -> PathBuf {
        self.runs().join(run_id)
    }

    /// The journal in a run's directory.
    pub fn journal_in(run_dir: &Path) -> PathBuf {
        run_dir.join("events.jsonl")
    }

    /// One run's journal.
    pub fn journal(&self, run_id: &str) -> PathBuf {
        Self::journal_in(&self.run(run_id))
    }

    /// The lock of an environment in a region.
    pub fn lock(&self, env: &str, region: &str) -> PathBuf {
        self.root.join("locks").join(format!("{env}@{region}.lock"))
    }

    /// A runbook's drill reports.
    pub fn reports(&self, runbook: &str) -> PathBuf {
        self.root.join("reports").join(runbook)
    }

    /// A drill's JSON report (its Markdown one beside it, `.md`).
    pub fn report(&self, runbook: &str, run_id: &str) -> PathBuf {
        self.reports(runbook).join(format!("{run_id}.json"))
    }

    /// The scheduler's directory.
    pub fn schedule(&self) -> PathBuf {
        self.root.join("schedule")
    }

    /// The scheduler's state.
    pub fn schedule_state(&self) -> PathBuf {
        self.schedule().join("state.json")
    }

    /// The lock that keeps one scheduler per state directory.
    pub fn schedule_lock(&self) -> PathBuf {
        self.schedule().join("daemon.lock")
    }

    /// The local sandbox's directory.
    pub fn sandbox(&self) -> PathBuf {
        self.root.join("sandbox")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_what_existing_state_directories_hold() {
        let layout = Layout::new(Path::new(".drctl"));
        let shown = |p: PathBuf| p.display().to_string();
        assert_eq!(shown(layout.journal("r-1")), ".drctl/runs/r-1/events.jsonl");
        assert_eq!(
            shown(layout.lock("web", "us-west-2")),
            ".drctl/locks/web@us-west-2.lock"
        );
        assert_eq!(
            shown(layout.report("web", "r-1")),
            ".drctl/reports/web/r-1.json"
        );
        assert_eq!(shown(layout.schedule_state()), ".drctl/schedule/state.json");
        assert_eq!(shown(layout.schedule_lock()), ".drctl/schedule/daemon.lock");
        assert_eq!(shown(layout.sandbox()), ".drctl/sandbox");
    }
}
