//! The run journal: an append-only, fsync'd event log per run under
//! `<state-dir>/runs/<run-id>/events.jsonl`. Every intent is written before
//! its API call, every result after, every gate decision with who, when,
//! why and how long it waited. A run's status is derived from its events, so
//! a process killed at any point leaves a journal that `resume` can finish.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::plan::Action;
use crate::world::Address;

pub use crate::clock::Millis;

/// The wall clock, for what is not part of a run (runs read the injected clock).
pub fn now_millis() -> Millis {
    jiff::Timestamp::now().as_millisecond()
}

pub fn format_millis(ms: Millis) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// The gate as it was when the run reached it (so `approve` needs no repo).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateSpec {
    pub approvals: u32,
    pub approvers: Vec<String>,
    pub timeout_secs: Option<u64>,
    pub reject_on_timeout: bool,
}

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
    },
    /// Written before the API call.
    Intent {
        at: Millis,
        address: Address,
        action: Action,
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
            | Event::RunFinished { at, .. } => *at,
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

/// One run's journal, open for appending.
pub struct Journal {
    pub run_id: String,
    pub dir: PathBuf,
    file: Mutex<File>,
    written: Mutex<usize>,
}

pub fn runs_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("runs")
}

impl Journal {
    /// Creates `runs/<run-id>/` and its log.
    pub fn create(state_dir: &Path, run_id: &str) -> Result<Journal, Error> {
        let dir = runs_dir(state_dir).join(run_id);
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            action: "create run directory",
            path: dir.clone(),
            source,
        })?;
        Self::open_dir(dir, run_id)
    }

    /// Opens an existing run for appending.
    pub fn open(state_dir: &Path, run_id: &str) -> Result<Journal, Error> {
        let dir = runs_dir(state_dir).join(run_id);
        if !dir.join("events.jsonl").is_file() {
            return Err(unknown_run(state_dir, run_id));
        }
        Self::open_dir(dir, run_id)
    }

    fn open_dir(dir: PathBuf, run_id: &str) -> Result<Journal, Error> {
        let path = dir.join("events.jsonl");
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|source| Error::Io {
                action: "open journal",
                path: path.clone(),
                source,
            })?;
        let written = read_events(&path)?.len();
        Ok(Journal {
            run_id: run_id.to_string(),
            dir,
            file: Mutex::new(file),
            written: Mutex::new(written),
        })
    }

    /// Appends one event and waits until it is on disk.
    pub fn append(&self, event: &Event) -> Result<(), Error> {
        let mut line = serde_json::to_string(event).expect("events serialise");
        line.push('\n');
        let path = self.dir.join("events.jsonl");
        let io = |source| Error::Io {
            action: "append to journal",
            path: path.clone(),
            source,
        };
        {
            let mut file = self.file.lock().expect("journal lock poisoned");
            // `drctl approve` and `reject` append to a run's journal from
            // other processes: appends (and the repair of a torn tail) take
            // turns under an OS lock on the file, held for one line.
            File::lock(&file).map_err(io)?;
            let written = drop_torn_tail(&file, &path)
                .and_then(|()| file.write_all(line.as_bytes()))
                .and_then(|()| file.sync_data());
            let unlocked = File::unlock(&file);
            written.and(unlocked).map_err(io)?;
        }
        let mut written = self.written.lock().expect("journal counter poisoned");
        *written += 1;
        crash_point(*written);
        Ok(())
    }

    pub fn events(&self) -> Result<Vec<Event>, Error> {
        read_events(&self.dir.join("events.jsonl"))
    }
}

/// Fault injection for the crash tests: `DRCTL_CRASH_AFTER_EVENT=N` makes
/// the process SIGKILL itself right after the journal's N-th event is on
/// disk; `DRCTL_INTERRUPT_AFTER_EVENT=N` sends it a SIGINT (a Ctrl-C) there.
fn crash_point(written: usize) {
    use rustix::process::{getpid, kill_process, Signal};
    for (variable, signal) in [
        ("DRCTL_CRASH_AFTER_EVENT", Signal::KILL),
        ("DRCTL_INTERRUPT_AFTER_EVENT", Signal::INT),
    ] {
        if std::env::var(variable).ok().and_then(|n| n.parse().ok()) == Some(written) {
            let _ = kill_process(getpid(), signal);
        }
    }
}

fn unknown_run(state_dir: &Path, run_id: &str) -> Error {
    let known: Vec<String> = list_runs(state_dir).into_iter().map(|r| r.0).collect();
    Error::usage(
        format!("no run `{run_id}` under {}", runs_dir(state_dir).display()),
        crate::diag::suggest(run_id, known.iter().map(String::as_str))
            .or_else(|| Some("`drctl runs` lists the runs".into())),
    )
}

/// Reads a journal. Only a torn last line is skipped: the final line, when
/// it does not end with a newline (a write cut off by a crash, or one still
/// under way in another process; either way its `append` had not returned,
/// so nothing acted on it). Any other line that does not parse is an error
/// naming the file and the line: skipping it would silently lose an intent,
/// an outcome or a gate decision.
pub fn read_events(path: &Path) -> Result<Vec<Event>, Error> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Io {
                action: "read journal",
                path: path.to_path_buf(),
                source,
            })
        }
    };
    parse_events(path, &bytes)
}

fn parse_events(path: &Path, bytes: &[u8]) -> Result<Vec<Event>, Error> {
    bytes[..complete_lines_len(bytes)]
        .split_inclusive(|&b| b == b'\n')
        .enumerate()
        .map(|(index, line)| {
            serde_json::from_slice(line).map_err(|source| Error::CorruptJournal {
                path: path.to_path_buf(),
                line: index + 1,
                source,
            })
        })
        .collect()
}

/// The length of the journal's complete lines: up to its last newline.
fn complete_lines_len(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |last| last + 1)
}

/// Cuts a torn last line off before appending, so that the next event starts
/// a line of its own instead of turning the torn one into a corrupt middle
/// line. Called with the journal's OS lock held: no append is under way.
fn drop_torn_tail(file: &File, path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut last = [0u8];
    file.read_exact_at(&mut last, len - 1)?;
    if last[0] == b'\n' {
        return Ok(());
    }
    let mut bytes = vec![0u8; usize::try_from(len).expect("a journal fits in memory")];
    file.read_exact_at(&mut bytes, 0)?;
    let keep = complete_lines_len(&bytes);
    tracing::warn!(
        "{}: dropping a torn last line ({} bytes) left by a process that died while writing it",
        path.display(),
        bytes.len() - keep
    );
    file.set_len(keep as u64)
}

/// Every run directory with its events, newest first.
pub fn list_runs(state_dir: &Path) -> Vec<(String, Vec<Event>)> {
    let Ok(entries) = std::fs::read_dir(runs_dir(state_dir)) else {
        return Vec::new();
    };
    let mut runs: Vec<(String, Vec<Event>)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let id = e.file_name().to_str()?.to_string();
            match read_events(&e.path().join("events.jsonl")) {
                Ok(events) => Some((id, events)),
                Err(err) => {
                    tracing::warn!("run {id} is not listed: {err}");
                    None
                }
            }
        })
        .collect();
    runs.sort_by(|a, b| b.0.cmp(&a.0));
    runs
}

/// What a run's events say about it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunState {
    pub status: RunStatus,
    /// Phases whose execution finished without failures.
    pub finished_phases: Vec<String>,
    /// The gate a paused run waits at, its spec, since when, and who approved so far.
    pub waiting: Option<WaitingGate>,
    /// Intents with no outcome: calls the process may or may not have made.
    pub in_flight: Vec<(Address, Action)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WaitingGate {
    pub phase: String,
    pub gate: GateSpec,
    pub since: Millis,
    /// The plan shown at the gate, which approvals are for.
    pub plan_hash: String,
    pub approved_by: Vec<String>,
}

/// Derives a run's state from its events (pure).
pub fn run_state(events: &[Event]) -> RunState {
    let mut status = RunStatus::Running;
    let mut finished = Vec::new();
    let mut waiting: Option<WaitingGate> = None;
    let mut in_flight: Vec<(Address, Action)> = Vec::new();
    for event in events {
        match event {
            Event::PhaseFinished { phase, failed, .. } if *failed == 0 => {
                finished.push(phase.clone());
            }
            Event::Intent {
                address, action, ..
            } => in_flight.push((address.clone(), *action)),
            Event::Outcome { address, .. } => in_flight.retain(|(a, _)| a != address),
            Event::GateWaiting {
                phase,
                gate,
                at,
                plan_hash,
            } => match waiting.as_mut().filter(|w| &w.phase == phase) {
                // The same gate showing another plan: earlier approvals were
                // for the old plan and no longer count; the wait goes on.
                Some(w) => {
                    if &w.plan_hash != plan_hash {
                        w.plan_hash = plan_hash.clone();
                        w.approved_by.clear();
                    }
                }
                None => {
                    waiting = Some(WaitingGate {
                        phase: phase.clone(),
                        gate: gate.clone(),
                        since: *at,
                        plan_hash: plan_hash.clone(),
                        approved_by: Vec::new(),
                    });
                }
            },
            Event::GateDecision {
                phase,
                decision,
                by,
                plan_hash,
                ..
            } => match decision {
                Decision::Approve => {
                    if let Some(w) = waiting
                        .as_mut()
                        .filter(|w| &w.phase == phase && &w.plan_hash == plan_hash)
                    {
                        if !w.approved_by.contains(by) {
                            w.approved_by.push(by.clone());
                        }
                    }
                }
                Decision::Auto => {}
                Decision::Reject | Decision::Timeout => status = RunStatus::Rejected,
            },
            Event::PhaseStarted { phase, .. } => {
                if waiting.as_ref().map(|w| &w.phase) == Some(phase) {
                    waiting = None;
                }
                if status != RunStatus::Rejected {
                    status = RunStatus::Running;
                }
            }
            Event::Paused { .. } => status = RunStatus::Paused,
            Event::Interrupted { .. } => status = RunStatus::Interrupted,
            Event::Resumed { .. } if status != RunStatus::Rejected => status = RunStatus::Running,
            Event::RunFinished { status: s, .. } => status = *s,
            _ => {}
        }
    }
    RunState {
        status,
        finished_phases: finished,
        waiting,
        in_flight,
    }
}

/// `drctl runs show`: the run as a readable timeline with durations and gate waits.
pub fn timeline(events: &[Event]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let start = events.first().map(Event::at).unwrap_or(0);
    let offset = |at: Millis| format!("+{:>7.1}s", (at - start) as f64 / 1000.0);
    let mut phase_start: std::collections::BTreeMap<&str, Millis> = Default::default();
    for event in events {
        let at = event.at();
        let line = match event {
            Event::RunStarted { run_id, runbook, environment, region, user, host, auto_approve, .. } => format!(
                "run {run_id}: runbook {runbook}, environment {environment} in {region}, by {user} on {host}, started {}{}",
                format_millis(at),
                auto_approve.as_ref().map(|r| format!(", auto-approve ({r})")).unwrap_or_default()
            ),
            Event::PhasePlanned { phase, summary, .. } => format!("phase {phase} planned: {summary}"),
            Event::PhaseStarted { phase, .. } => {
                phase_start.insert(phase, at);
                format!("phase {phase} started")
            }
            Event::PhaseFinished { phase, failed, .. } => {
                let took = phase_start.get(phase.as_str()).map(|s| (at - s) as f64 / 1000.0).unwrap_or(0.0);
                format!("phase {phase} finished in {took:.1}s{}", if *failed > 0 { format!(", {failed} failed") } else { String::new() })
            }
            Event::Intent { address, action, .. } => format!("  {} {address} …", action.symbol()),
            Event::Outcome { address, action, ok: true, id, .. } => format!("  {} {address} done {id}", action.symbol()),
            Event::Outcome { address, error, .. } => format!("  ! {address} failed: {}", error.as_deref().unwrap_or("")),
            Event::GateWaiting { phase, gate, .. } => format!(
                "gate before {phase}: waiting for {} approval(s){}",
                gate.approvals,
                if gate.approvers.is_empty() { String::new() } else { format!(" from {}", gate.approvers.join("/")) }
            ),
            Event::GateDecision { phase, decision, by, reason, waited_ms, .. } => format!(
                "gate before {phase}: {} after waiting {:.1}s",
                decision_sentence(*decision, by, reason.as_deref()),
                *waited_ms as f64 / 1000.0,
            ),
            Event::Paused { phase, .. } => format!("paused at the gate before {phase}"),
            Event::Interrupted { .. } => "interrupted".to_string(),
            Event::Resumed { by, pid, .. } => format!("resumed by {by} (pid {pid})"),
            Event::RunFinished { status, .. } => format!("run {status}"),
        };
        let _ = writeln!(out, "{} {line}", offset(at));
    }
    let state = run_state(events);
    let _ = writeln!(out, "status: {}", state.status);
    out
}

/// A gate decision as a sentence: `approved by alice: "checked the plan"`,
/// `passed by --auto-approve (root, reason: drill)`, `passed (auto gate)`.
pub fn decision_sentence(decision: Decision, by: &str, reason: Option<&str>) -> String {
    let quoted = reason.map(|r| format!(": \"{r}\"")).unwrap_or_default();
    match decision {
        Decision::Approve => format!("approved by {by}{quoted}"),
        Decision::Reject => format!("rejected by {by}{quoted}"),
        Decision::Auto if by == "policy" => {
            format!("passed ({})", reason.unwrap_or("auto gate"))
        }
        Decision::Auto => match reason {
            Some(r) if r != "--auto-approve" => {
                format!("passed by --auto-approve ({by}, reason: {r})")
            }
            _ => format!("passed by --auto-approve ({by})"),
        },
        Decision::Timeout => format!(
            "rejected by its timeout ({})",
            reason.unwrap_or("no approval in time")
        ),
    }
}

/// The per-user index of runs: run id → state directory, so a printed
/// `drctl resume ID` works from any directory. One JSON line per run under
/// `$XDG_STATE_HOME/drctl/` (else `~/.local/state/drctl/`).
pub mod index {
    use std::io::Write as _;
    use std::path::{Path, PathBuf};

    fn file() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
        Some(base.join("drctl").join("runs.jsonl"))
    }

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Entry {
        run_id: String,
        state_dir: PathBuf,
    }

    /// Remembers where run `run_id` lives. Best effort: a run that cannot be
    /// indexed still runs (`--state-dir` finds it).
    pub fn record(run_id: &str, state_dir: &Path) {
        let Some(path) = file() else { return };
        let entry = Entry {
            run_id: run_id.to_string(),
            state_dir: std::path::absolute(state_dir).unwrap_or_else(|_| state_dir.into()),
        };
        let written =
            std::fs::create_dir_all(path.parent().unwrap_or(Path::new("."))).and_then(|()| {
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)?;
                let line = serde_json::to_string(&entry).map_err(std::io::Error::other)?;
                writeln!(f, "{line}")
            });
        if let Err(e) = written {
            tracing::warn!(index = %path.display(), error = %e, "could not index the run");
        }
    }

    /// The state directory of run `run_id`, if this user ran it.
    pub fn lookup(run_id: &str) -> Option<PathBuf> {
        let text = std::fs::read_to_string(file()?).ok()?;
        text.lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<Entry>(l).ok())
            .find(|e| e.run_id == run_id)
            .map(|e| e.state_dir)
    }
}

/// The OS user, the default approver name.
pub fn current_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(user_from_passwd)
        .unwrap_or_else(|| "unknown".into())
}

/// The name of this process's uid in /etc/passwd (cron and CI often set no USER).
fn user_from_passwd() -> Option<String> {
    let uid = rustix::process::getuid().as_raw().to_string();
    std::fs::read_to_string("/etc/passwd")
        .ok()?
        .lines()
        .find(|line| line.split(':').nth(2) == Some(uid.as_str()))
        .and_then(|line| line.split(':').next())
        .map(str::to_string)
}

pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ResourceKind;

    fn gate() -> GateSpec {
        GateSpec {
            approvals: 2,
            approvers: vec![],
            timeout_secs: None,
            reject_on_timeout: false,
        }
    }

    fn approval(at: Millis, by: &str, plan_hash: &str) -> Event {
        Event::GateDecision {
            at,
            phase: "two".into(),
            decision: Decision::Approve,
            by: by.into(),
            reason: None,
            waited_ms: 1,
            plan_hash: plan_hash.into(),
        }
    }

    #[test]
    fn approvals_are_for_the_plan_shown_and_a_new_plan_sets_them_aside() {
        let waiting = |plan_hash: &str, at| Event::GateWaiting {
            at,
            phase: "two".into(),
            gate: gate(),
            plan_hash: plan_hash.into(),
        };
        let mut events = vec![waiting("p1", 1), approval(2, "alice", "p1")];
        let state = run_state(&events);
        assert_eq!(state.waiting.as_ref().unwrap().approved_by, ["alice"]);
        // The files changed during the pause: the gate shows another plan.
        events.push(waiting("p2", 3));
        let w = run_state(&events).waiting.unwrap();
        assert_eq!(w.plan_hash, "p2");
        assert!(w.approved_by.is_empty(), "alice approved p1, not p2");
        assert_eq!(w.since, 1, "the gate has waited since it was first reached");
        // An approval of the old plan (e.g. a stale `approve`) does not count.
        events.push(approval(4, "bob", "p1"));
        assert!(run_state(&events).waiting.unwrap().approved_by.is_empty());
        events.push(approval(5, "bob", "p2"));
        assert_eq!(run_state(&events).waiting.unwrap().approved_by, ["bob"]);
    }

    fn started(at: Millis) -> Event {
        Event::PhaseStarted {
            at,
            phase: "one".into(),
        }
    }

    fn line(event: &Event) -> String {
        serde_json::to_string(event).unwrap() + "\n"
    }

    fn journal_with(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn a_torn_last_line_is_skipped() {
        let whole = line(&started(1)) + &line(&started(2));
        for torn in ["{\"event\":\"phase_sta", "{", "\u{0}\u{0}"] {
            let (_dir, path) = journal_with(&format!("{whole}{torn}"));
            assert_eq!(
                read_events(&path).unwrap(),
                [started(1), started(2)],
                "{torn:?}"
            );
        }
        // Even a complete event without its newline: its append never returned.
        let (_dir, path) = journal_with(whole.trim_end());
        assert_eq!(read_events(&path).unwrap(), [started(1)]);
        let (_dir, path) = journal_with("");
        assert_eq!(read_events(&path).unwrap(), []);
    }

    #[test]
    fn a_corrupt_line_before_the_last_is_an_error_naming_file_and_line() {
        let text = line(&started(1)) + "{\"event\":\"phase_sta\n" + &line(&started(3));
        let (_dir, path) = journal_with(&text);
        let err = read_events(&path).unwrap_err();
        assert!(
            matches!(&err, Error::CorruptJournal { path: p, line: 2, .. } if p == &path),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("journal {} is corrupt at line 2", path.display())
        );
        // An empty line is no event either.
        let (_dir, path) = journal_with(&(line(&started(1)) + "\n" + &line(&started(3))));
        assert!(matches!(
            read_events(&path),
            Err(Error::CorruptJournal { line: 2, .. })
        ));
    }

    #[test]
    fn a_corrupt_last_line_that_ends_with_a_newline_is_an_error() {
        let (_dir, path) = journal_with(&(line(&started(1)) + "not json\n"));
        assert!(matches!(
            read_events(&path),
            Err(Error::CorruptJournal { line: 2, .. })
        ));
    }

    #[test]
    fn an_append_after_a_torn_line_drops_the_torn_line_first() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::create(dir.path(), "run-1").unwrap();
        journal.append(&started(1)).unwrap();
        drop(journal);
        let path = runs_dir(dir.path()).join("run-1/events.jsonl");
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"event\":\"phase_fin").unwrap();
        drop(file);
        let journal = Journal::open(dir.path(), "run-1").unwrap();
        journal.append(&started(2)).unwrap();
        assert_eq!(journal.events().unwrap(), [started(1), started(2)]);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            line(&started(1)) + &line(&started(2))
        );
    }

    #[test]
    fn state_follows_gates_phases_and_in_flight_calls() {
        let a = Address::new("net", ResourceKind::Vpc, "main");
        let events = vec![
            Event::PhaseStarted {
                at: 1,
                phase: "one".into(),
            },
            Event::Intent {
                at: 2,
                address: a.clone(),
                action: Action::Create,
            },
            Event::Outcome {
                at: 3,
                address: a.clone(),
                action: Action::Create,
                ok: true,
                id: "vpc-1".into(),
                error: None,
            },
            Event::PhaseFinished {
                at: 4,
                phase: "one".into(),
                failed: 0,
            },
            Event::GateWaiting {
                at: 5,
                phase: "two".into(),
                gate: gate(),
                plan_hash: "p1".into(),
            },
            approval(6, "alice", "p1"),
            approval(7, "alice", "p1"),
            Event::Paused {
                at: 8,
                phase: "two".into(),
            },
        ];
        let state = run_state(&events);
        assert_eq!(state.status, RunStatus::Paused);
        assert_eq!(state.finished_phases, ["one"]);
        let waiting = state.waiting.expect("waiting");
        assert_eq!(waiting.approved_by, ["alice"], "one person counts once");
        assert!(state.in_flight.is_empty());

        let mut more = events.clone();
        more.push(Event::Intent {
            at: 9,
            address: a.clone(),
            action: Action::Update,
        });
        assert_eq!(run_state(&more).in_flight, vec![(a, Action::Update)]);
        more.push(Event::GateDecision {
            at: 10,
            phase: "two".into(),
            decision: Decision::Reject,
            by: "bob".into(),
            reason: None,
            waited_ms: 3,
            plan_hash: "p1".into(),
        });
        assert_eq!(run_state(&more).status, RunStatus::Rejected);
    }
}
