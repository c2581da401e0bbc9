//! The run journal: an append-only, fsync'd event log per run under
//! `<state-dir>/runs/<run-id>/events.jsonl`. Every intent is written before
//! its API call, every result after, every gate decision with who, when,
//! why and how long it waited. A run's status is derived from its events, so
//! a process killed at any point leaves a journal that `resume` can finish.

use crate::store::Layout;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::Error;

pub use crate::clock::{format_millis, Millis};
pub use events::{Decision, DrillStart, Event, GateSpec, RunStatus, RunTarget, DRILL_POLICY};

/// The wall clock, for what is not part of a run (runs read the injected clock).
pub fn now_millis() -> Millis {
    jiff::Timestamp::now().as_millisecond()
}

/// One run's journal, open for appending.
pub struct Journal {
    pub run_id: String,
    pub dir: PathBuf,
    file: Mutex<File>,
    written: Mutex<usize>,
}

pub fn runs_dir(state_dir: &Path) -> PathBuf {
    Layout::new(state_dir).runs()
}

impl Journal {
    /// Creates `runs/<run-id>/` and its log.
    pub fn create(state_dir: &Path, run_id: &str) -> Result<Journal, Error> {
        let dir = Layout::new(state_dir).run(run_id);
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            action: "create run directory",
            path: dir.clone(),
            source,
        })?;
        Self::open_dir(dir, run_id)
    }

    /// Opens an existing run for appending.
    pub fn open(state_dir: &Path, run_id: &str) -> Result<Journal, Error> {
        let dir = Layout::new(state_dir).run(run_id);
        if !Layout::journal_in(&dir).is_file() {
            return Err(unknown_run(state_dir, run_id));
        }
        Self::open_dir(dir, run_id)
    }

    fn open_dir(dir: PathBuf, run_id: &str) -> Result<Journal, Error> {
        let path = Layout::journal_in(&dir);
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
        let path = Layout::journal_in(&self.dir);
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
        crash_point(*written, event);
        Ok(())
    }

    pub fn events(&self) -> Result<Vec<Event>, Error> {
        read_events(&Layout::journal_in(&self.dir))
    }
}

/// Fault injection for the crash tests: `DRCTL_CRASH_AFTER_EVENT=N` makes
/// the process SIGKILL itself right after the journal's N-th event is on
/// disk; `DRCTL_INTERRUPT_AFTER_EVENT=N` sends it a SIGINT (a Ctrl-C) there,
/// `DRCTL_TERMINATE_AFTER_EVENT=N` a SIGTERM (a scheduler stopping it).
/// `N` may also be an event's name (`drill_checked`): after the first such event.
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
            match read_events(&Layout::journal_in(&e.path())) {
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
}
