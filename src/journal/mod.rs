//! The run journal: an append-only, fsync'd event log per run under
//! `<state-dir>/runs/<run-id>/events.jsonl`. Every intent is written before
//! its API call, every result after, every gate decision with who, when,
//! why and how long it waited. A run's status is derived from its events, so
//! a process killed at any point leaves a journal that `resume` can finish.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::Error;
use crate::store::{Key, RunLog, RunStore};

pub use crate::clock::{format_millis, Millis};
pub use events::{
    Decision, DrillStart, Event, GateSpec, RunStatus, RunTarget, StoreFallback, DRILL_POLICY,
};

/// The wall clock, for what is not part of a run (runs read the injected clock).
pub fn now_millis() -> Millis {
    jiff::Timestamp::now().as_millisecond()
}

/// One run's journal, open for appending.
pub struct Journal {
    pub run_id: String,
    /// Where the run's records are (its directory, locally), for people.
    pub location: PathBuf,
    /// Where its journal is, for messages about a line of it.
    file: PathBuf,
    log: Box<dyn RunLog>,
    written: Mutex<usize>,
    /// Told of each record once it is durable (notifications).
    watcher: std::sync::OnceLock<std::sync::Arc<dyn Watcher>>,
}

/// Something told of every record a journal writes, once it is durable: the
/// notifications (`crate::notify`) watch a run this way, so a gate, a
/// decision or a run's end notifies whichever command wrote it. It may
/// append records of its own (they reach it too).
pub trait Watcher: Send + Sync {
    fn written(&self, journal: &Journal, event: &Event);

    /// For a caller that knows the watcher's type (a notification that is
    /// no journal record, as a sweep's result).
    fn as_any(&self) -> &dyn std::any::Any;
}

impl Journal {
    /// Starts the journal of a new run.
    pub fn create(store: &dyn RunStore, run_id: &str) -> Result<Journal, Error> {
        let log = store.create_run(run_id)?;
        Ok(Self::with(store, run_id, log, 0))
    }

    /// Opens an existing run for appending.
    pub fn open(store: &dyn RunStore, run_id: &str) -> Result<Journal, Error> {
        let Some(log) = store.open_run(run_id)? else {
            return Err(unknown_run(store, run_id));
        };
        let file = store.location(&Key::journal(run_id));
        let written = parse_events(&file, log.read()?)?.len();
        Ok(Self::with(store, run_id, log, written))
    }

    fn with(store: &dyn RunStore, run_id: &str, log: Box<dyn RunLog>, written: usize) -> Journal {
        Journal {
            run_id: run_id.to_string(),
            location: store.location(&Key::run(run_id)),
            file: store.location(&Key::journal(run_id)),
            log,
            written: Mutex::new(written),
            watcher: std::sync::OnceLock::new(),
        }
    }

    /// Tells `watcher` of each record appended from now on (the first
    /// watcher set stays).
    pub fn watch(&self, watcher: std::sync::Arc<dyn Watcher>) {
        let _ = self.watcher.set(watcher);
    }

    /// The watcher [`Journal::watch`] set, if any.
    pub fn watcher(&self) -> Option<&dyn Watcher> {
        self.watcher.get().map(|w| w.as_ref())
    }

    /// Appends one event and waits until it is durable.
    pub fn append(&self, event: &Event) -> Result<(), Error> {
        self.append_all(std::slice::from_ref(event))
    }

    /// Appends `events` as one record of the store (one object on S3) and
    /// waits until they are durable, all of them or none. For events with
    /// nothing between them that acts on the first (no call, no decision):
    /// a step's outcome and the intents of the steps it let start, a
    /// phase's start. Nothing to append is no write at all.
    pub fn append_all(&self, events: &[Event]) -> Result<(), Error> {
        if events.is_empty() {
            return Ok(());
        }
        let records: Vec<Vec<u8>> = events
            .iter()
            .map(|e| serde_json::to_vec(e).expect("events serialise"))
            .collect();
        self.log.append(&records)?;
        {
            let mut written = self.written.lock().expect("journal counter poisoned");
            for event in events {
                *written += 1;
                crash_point(*written, event);
            }
        }
        if let Some(watcher) = self.watcher.get() {
            for event in events {
                watcher.written(self, event);
            }
        }
        Ok(())
    }

    pub fn events(&self) -> Result<Vec<Event>, Error> {
        parse_events(&self.file, self.log.read()?)
    }
}

/// Fault injection for the crash tests: `DRCTL_CRASH_AFTER_EVENT=N` makes
/// the process SIGKILL itself right after the journal's N-th event is on
/// disk; `DRCTL_INTERRUPT_AFTER_EVENT=N` sends it a SIGINT (a Ctrl-C) there,
/// `DRCTL_TERMINATE_AFTER_EVENT=N` a SIGTERM (a scheduler stopping it).
/// `N` may also be an event's name (`checked`): after the first such event.
/// Events appended together ([`Journal::append_all`]) become durable
/// together, so the signal comes once the whole append is: the first point
/// after event N at which a real crash can stop drctl. The journal a test
/// finds then holds event N and the rest of its append.
/// Test builds only: a release binary never kills itself on a variable's say.
#[cfg(not(debug_assertions))]
fn crash_point(_written: usize, _event: &Event) {}

/// See above: the debug build the tests drive.
#[cfg(debug_assertions)]
fn crash_point(written: usize, event: &Event) {
    use rustix::process::{getpid, kill_process, Signal};
    for (variable, signal) in [
        ("DRCTL_CRASH_AFTER_EVENT", Signal::KILL),
        ("DRCTL_INTERRUPT_AFTER_EVENT", Signal::INT),
        ("DRCTL_TERMINATE_AFTER_EVENT", Signal::TERM),
    ] {
        // `N` or `N,M,…`: after each of those events (a second Ctrl-C too).
        let points = std::env::var(variable).unwrap_or_default();
        let name = || {
            serde_json::to_value(event)
                .ok()
                .and_then(|v| v["event"].as_str().map(str::to_string))
                .unwrap_or_default()
        };
        if points.split(',').any(|n| {
            let n = n.trim();
            n.parse::<usize>().ok() == Some(written)
                || (!n.is_empty() && n.parse::<usize>().is_err() && n == name())
        }) {
            let _ = kill_process(getpid(), signal);
        }
    }
}

fn unknown_run(store: &dyn RunStore, run_id: &str) -> Error {
    let known: Vec<String> = store.list_runs().unwrap_or_default();
    Error::usage(
        format!(
            "no run `{run_id}` under {}",
            store.location(&Key::runs()).display()
        ),
        crate::diag::suggest(run_id, known.iter().map(String::as_str))
            .or_else(|| Some("`drctl runs` lists the runs".into())),
    )
}

/// A run's events (none for an unknown run). The store leaves out a torn
/// last record (see [`RunLog::append`]: its append never returned, so
/// nothing acted on it); any other record that does not parse is an error
/// naming the journal and the line: skipping it would silently lose an
/// intent, an outcome or a gate decision.
pub fn read_events(store: &dyn RunStore, run_id: &str) -> Result<Vec<Event>, Error> {
    let records = store.read_run(run_id)?;
    parse_events(&store.location(&Key::journal(run_id)), records)
}

fn parse_events(path: &Path, records: Vec<Vec<u8>>) -> Result<Vec<Event>, Error> {
    records
        .iter()
        .enumerate()
        .map(|(index, record)| {
            serde_json::from_slice(record).map_err(|source| Error::CorruptJournal {
                path: path.to_path_buf(),
                line: index + 1,
                source,
            })
        })
        .collect()
}

/// Every run with its events, newest first.
pub fn list_runs(store: &dyn RunStore) -> Vec<(String, Vec<Event>)> {
    let ids = match store.list_runs() {
        Ok(ids) => ids,
        Err(err) => {
            tracing::warn!("cannot list the runs: {err}");
            return Vec::new();
        }
    };
    let mut runs: Vec<(String, Vec<Event>)> = ids
        .into_iter()
        .filter_map(|id| match read_events(store, &id) {
            Ok(events) => Some((id, events)),
            Err(err) => {
                tracing::warn!("run {id} is not listed: {err}");
                None
            }
        })
        .collect();
    runs.sort_by(|a, b| b.0.cmp(&a.0));
    runs
}

mod events;
pub mod index;
mod state;
mod timeline;

pub use state::{run_state, RunState, WaitingGate};
pub use timeline::{decision_sentence, timeline};

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
    use crate::store::LocalStore;
    use std::fs::OpenOptions;
    use std::io::Write;

    fn started(at: Millis) -> Event {
        Event::PhaseStarted {
            at,
            phase: "one".into(),
        }
    }

    fn line(event: &Event) -> String {
        serde_json::to_string(event).unwrap() + "\n"
    }

    /// A state directory whose run `r` has `text` for its journal.
    fn journal_with(text: &str) -> (tempfile::TempDir, LocalStore, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let path = store.location(&Key::journal("r"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        (dir, store, path)
    }

    #[test]
    fn a_torn_last_line_is_skipped() {
        let whole = line(&started(1)) + &line(&started(2));
        for torn in ["{\"event\":\"phase_sta", "{", "\u{0}\u{0}"] {
            let (_dir, store, _) = journal_with(&format!("{whole}{torn}"));
            assert_eq!(
                read_events(&store, "r").unwrap(),
                [started(1), started(2)],
                "{torn:?}"
            );
        }
        // Even a complete event without its newline: its append never returned.
        let (_dir, store, _) = journal_with(whole.trim_end());
        assert_eq!(read_events(&store, "r").unwrap(), [started(1)]);
        let (_dir, store, _) = journal_with("");
        assert_eq!(read_events(&store, "r").unwrap(), []);
    }

    #[test]
    fn a_corrupt_line_before_the_last_is_an_error_naming_file_and_line() {
        let text = line(&started(1)) + "{\"event\":\"phase_sta\n" + &line(&started(3));
        let (_dir, store, path) = journal_with(&text);
        let err = read_events(&store, "r").unwrap_err();
        assert!(
            matches!(&err, Error::CorruptJournal { path: p, line: 2, .. } if p == &path),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("journal {} is corrupt at line 2", path.display())
        );
        // An empty line is no event either.
        let (_dir, store, _) = journal_with(&(line(&started(1)) + "\n" + &line(&started(3))));
        assert!(matches!(
            read_events(&store, "r"),
            Err(Error::CorruptJournal { line: 2, .. })
        ));
    }

    #[test]
    fn a_corrupt_last_line_that_ends_with_a_newline_is_an_error() {
        let (_dir, store, _) = journal_with(&(line(&started(1)) + "not json\n"));
        assert!(matches!(
            read_events(&store, "r"),
            Err(Error::CorruptJournal { line: 2, .. })
        ));
    }

    #[test]
    fn an_append_after_a_torn_line_drops_the_torn_line_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let journal = Journal::create(&store, "run-1").unwrap();
        journal.append(&started(1)).unwrap();
        drop(journal);
        let path = store.location(&Key::journal("run-1"));
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"event\":\"phase_fin").unwrap();
        drop(file);
        let journal = Journal::open(&store, "run-1").unwrap();
        journal.append(&started(2)).unwrap();
        assert_eq!(journal.events().unwrap(), [started(1), started(2)]);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            line(&started(1)) + &line(&started(2))
        );
    }
}
