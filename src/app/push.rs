//! `drctl state push DIR`: the history a fallback store holds (runs made
//! with `rebuild --state-fallback DIR` while the shared store was out of
//! reach) merged into the shared store once it is back.
//!
//! Only history is at stake: what exists is read from the tags, never from
//! a store. So the merge only adds. A run the target lacks is copied; a run
//! the target holds with the same records (or those and more, continued
//! there) is left; a run the target holds with fewer of them, all alike,
//! gets the rest appended (it went on here after an earlier push); a run id
//! the target holds with other records is a conflict, reported and left
//! alone on both sides. Drill reports are written only where nothing is.
//! Locks and the scheduler's state belong to the store they were taken in
//! and are never pushed.
//!
//! The source keeps a note per run of what it pushed, and where
//! ([`Key::pushed`]), so pushing again reads nothing remote for runs
//! already pushed and says there is nothing to push. Everything goes
//! through [`RunStore`]: the merge does not care what either store is.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::digest::sha256_hex;
use crate::journal::Event;
use crate::store::{Key, RunStore, StoreError};

/// How a run's records in the source stand against the target's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// The target holds them all, in order (and maybe more after them).
    Present,
    /// The target holds the first `n` of them and nothing else: the rest
    /// go after (`n` is 0 when the target has none).
    Behind(usize),
    /// The target holds other records under this run id.
    Conflict,
}

/// Compares a run's records in the source with the target's, oldest first.
pub fn standing(source: &[Vec<u8>], target: &[Vec<u8>]) -> Standing {
    if target.len() >= source.len() && target[..source.len()] == *source {
        Standing::Present
    } else if target.len() < source.len() && source[..target.len()] == *target {
        Standing::Behind(target.len())
    } else {
        Standing::Conflict
    }
}

/// What a push did with one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunPushed {
    /// Copied whole: the target had none of it.
    Copied { records: usize },
    /// The target had its first `had` records; `added` more went after.
    Continued { had: usize, added: usize },
    /// The target held it already (pushed from elsewhere, or a note lost).
    AlreadyThere,
    /// An earlier push put every record of it there: not read again.
    PushedBefore,
    /// The target holds other records under this id: left as they are.
    Conflict { ours: usize, theirs: usize },
}

/// What a push did with one drill report (`reports/<runbook>/<file>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportPushed {
    Copied,
    AlreadyThere,
    /// The target holds another report under this name: left as it is.
    Conflict,
}

/// What `drctl state push` did, run by run and report by report.
#[derive(Debug, Default)]
pub struct Pushed {
    /// The target, as it names itself.
    pub to: String,
    /// By run id, oldest first.
    pub runs: Vec<(String, RunPushed)>,
    /// By key (`reports/<runbook>/<file>`).
    pub reports: Vec<(String, ReportPushed)>,
}

impl Pushed {
    /// Runs and reports that went to the target in this push.
    pub fn written(&self) -> usize {
        let runs = self
            .runs
            .iter()
            .filter(|(_, r)| matches!(r, RunPushed::Copied { .. } | RunPushed::Continued { .. }));
        let reports = self
            .reports
            .iter()
            .filter(|(_, r)| *r == ReportPushed::Copied);
        runs.count() + reports.count()
    }

    /// Run ids and report keys the target holds otherwise.
    pub fn conflicts(&self) -> Vec<&str> {
        let runs = self
            .runs
            .iter()
            .filter(|(_, r)| matches!(r, RunPushed::Conflict { .. }))
            .map(|(id, _)| id.as_str());
        let reports = self
            .reports
            .iter()
            .filter(|(_, r)| *r == ReportPushed::Conflict)
            .map(|(key, _)| key.as_str());
        runs.chain(reports).collect()
    }
}

/// The source's note of a push of one run ([`Key::pushed`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PushNote {
    /// The target's root (`s3://BUCKET/PREFIX`).
    to: String,
    /// How many of the run's records the target held after the push…
    records: usize,
    /// …and their digest: a run that changed since is looked at again.
    digest: String,
    at: Millis,
}

fn digest(records: &[Vec<u8>]) -> String {
    sha256_hex(&records.join(&b'\n'))
}

fn read_note(store: &dyn RunStore, run_id: &str) -> Option<PushNote> {
    let bytes = store.get(&Key::pushed(run_id)).ok()??;
    serde_json::from_slice(&bytes).ok()
}

/// Merges the runs and drill reports of `source` into `target` (see the
/// module's doc); `now` dates the notes it leaves in the source. A store
/// that fails stops the push; what was pushed so far is noted, so pushing
/// again goes on from there.
pub fn push(
    source: &dyn RunStore,
    target: &dyn RunStore,
    now: Millis,
) -> Result<Pushed, StoreError> {
    let to = target.root().display().to_string();
    let mut ids = source.list_runs()?;
    ids.sort();
    let mut runbooks = BTreeSet::new();
    let mut pushed = Pushed {
        to: to.clone(),
        ..Pushed::default()
    };
    for id in ids {
        let records = source.read_run(&id)?;
        if let Some(Ok(Event::RunStarted { runbook, .. })) =
            records.first().map(|r| serde_json::from_slice::<Event>(r))
        {
            runbooks.insert(runbook);
        }
        if records.is_empty() {
            continue; // a run that never wrote its start: nothing to tell
        }
        let noted = read_note(source, &id).is_some_and(|n| {
            n.to == to && n.records == records.len() && n.digest == digest(&records)
        });
        if noted {
            pushed.runs.push((id, RunPushed::PushedBefore));
            continue;
        }
        let theirs = target.read_run(&id)?;
        let done = match standing(&records, &theirs) {
            Standing::Conflict => RunPushed::Conflict {
                ours: records.len(),
                theirs: theirs.len(),
            },
            Standing::Present => RunPushed::AlreadyThere,
            Standing::Behind(had) => {
                let log = match target.open_run(&id)? {
                    Some(log) => log,
                    None => target.create_run(&id)?,
                };
                log.append(&records[had..])?;
                match had {
                    0 => RunPushed::Copied {
                        records: records.len(),
                    },
                    had => RunPushed::Continued {
                        had,
                        added: records.len() - had,
                    },
                }
            }
        };
        if !matches!(done, RunPushed::Conflict { .. }) {
            let note = PushNote {
                to: to.clone(),
                records: records.len(),
                digest: digest(&records),
                at: now,
            };
            let bytes = serde_json::to_vec(&note).expect("a push note serialises");
            source.put(&Key::pushed(&id), &bytes)?;
        }
        pushed.runs.push((id, done));
    }
    // Reports are found by their runs' runbooks (in any store) and by the
    // folders a state directory lists.
    for folder in source.list(&Key::all_reports())? {
        runbooks.insert(folder.name().to_string());
    }
    for runbook in runbooks {
        for key in source.list(&Key::reports(&runbook))? {
            let Some(bytes) = source.get(&key)? else {
                continue;
            };
            let done = if target.claim(&key, &bytes)? {
                ReportPushed::Copied
            } else if target.get(&key)?.as_deref() == Some(bytes.as_slice()) {
                ReportPushed::AlreadyThere
            } else {
                ReportPushed::Conflict
            };
            pushed.reports.push((key.as_str().to_string(), done));
        }
    }
    Ok(pushed)
}

/// How a run's records stand when it ran on a fallback store, for `drctl
/// runs`: `None` for a run that used the store it was meant to.
pub fn fallback_note(store: &dyn RunStore, run_id: &str, events: &[Event]) -> Option<String> {
    let Some(Event::RunStarted {
        target: Some(target),
        ..
    }) = events.first()
    else {
        return None;
    };
    let fallback = target.fallback.as_ref()?;
    if crate::store::absolute(&store.root()) != target.state_dir {
        return Some(format!(
            "ran on the fallback store {}",
            target.state_dir.display()
        ));
    }
    Some(match read_note(store, run_id) {
        Some(note) if note.records >= events.len() => {
            format!("fallback store, pushed to {}", note.to)
        }
        Some(note) => format!(
            "fallback store, {} record(s) not yet pushed to {}",
            events.len().saturating_sub(note.records),
            note.to
        ),
        None => format!("fallback store, not yet pushed to {}", fallback.instead_of),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{LocalStore, ReportFormat};

    fn records(texts: &[&str]) -> Vec<Vec<u8>> {
        texts.iter().map(|t| t.as_bytes().to_vec()).collect()
    }

    #[test]
    fn a_run_stands_present_behind_or_in_conflict() {
        let ours = records(&["a", "b", "c"]);
        for (theirs, expected) in [
            (vec![], Standing::Behind(0)),
            (vec!["a"], Standing::Behind(1)),
            (vec!["a", "b", "c"], Standing::Present),
            (vec!["a", "b", "c", "d"], Standing::Present),
            (vec!["x"], Standing::Conflict),
            (vec!["a", "x"], Standing::Conflict),
            (vec!["a", "b", "x", "d"], Standing::Conflict),
        ] {
            assert_eq!(standing(&ours, &records(&theirs)), expected, "{theirs:?}");
        }
        assert_eq!(standing(&[], &records(&["a"])), Standing::Present);
    }

    fn stores() -> (tempfile::TempDir, LocalStore, LocalStore) {
        let dir = tempfile::tempdir().unwrap();
        let source = LocalStore::new(&dir.path().join("fallback"));
        let target = LocalStore::new(&dir.path().join("shared"));
        (dir, source, target)
    }

    fn write_run(store: &dyn RunStore, id: &str, texts: &[&str]) {
        let log = match store.open_run(id).unwrap() {
            Some(log) => log,
            None => store.create_run(id).unwrap(),
        };
        log.append(&records(texts)).unwrap();
    }

    #[test]
    fn a_push_copies_runs_and_reports_once_and_nothing_else() {
        let (_dir, source, target) = stores();
        write_run(&source, "r-1", &["{\"one\":1}", "{\"two\":2}"]);
        write_run(&source, "r-2", &["{\"three\":3}"]);
        let report = Key::report("web", "r-1", ReportFormat::Json);
        source.put(&report, b"{\"verdict\":\"passed\"}").unwrap();
        source.put(&Key::schedule_state(), b"{}").unwrap();
        let holder = crate::store::LockHolder {
            pid: std::process::id(),
            host: "here".into(),
            user: "me".into(),
            run_id: "r-2".into(),
            since: 0,
        };
        let _lock = source
            .lock_environment("web", "us-west-2", &holder)
            .unwrap();

        let pushed = push(&source, &target, 7).unwrap();
        assert_eq!(
            pushed.runs,
            vec![
                ("r-1".to_string(), RunPushed::Copied { records: 2 }),
                ("r-2".to_string(), RunPushed::Copied { records: 1 }),
            ]
        );
        assert_eq!(
            pushed.reports,
            vec![(report.as_str().to_string(), ReportPushed::Copied)]
        );
        assert_eq!((pushed.written(), pushed.conflicts().len()), (3, 0));
        assert_eq!(
            target.read_run("r-1").unwrap(),
            source.read_run("r-1").unwrap()
        );
        assert_eq!(
            target.get(&report).unwrap().as_deref(),
            Some(&b"{\"verdict\":\"passed\"}"[..])
        );
        // Locks and the scheduler's state stay where they were taken.
        assert_eq!(target.get(&Key::schedule_state()).unwrap(), None);
        assert!(target.environment_locks().unwrap().is_empty());
        // Nothing of the push's own notes goes to the target.
        assert_eq!(target.get(&Key::pushed("r-1")).unwrap(), None);

        // Again: every run noted as pushed, the report found there already.
        let again = push(&source, &target, 8).unwrap();
        assert!(again
            .runs
            .iter()
            .all(|(_, r)| *r == RunPushed::PushedBefore));
        assert_eq!(
            again.reports,
            vec![(report.as_str().to_string(), ReportPushed::AlreadyThere)]
        );
        assert_eq!(again.written(), 0);
        assert_eq!(target.read_run("r-1").unwrap().len(), 2);
    }

    #[test]
    fn a_run_continued_after_a_push_is_pushed_again_from_where_it_was() {
        let (_dir, source, target) = stores();
        write_run(&source, "r-1", &["a"]);
        push(&source, &target, 1).unwrap();
        write_run(&source, "r-1", &["b", "c"]);
        let pushed = push(&source, &target, 2).unwrap();
        assert_eq!(
            pushed.runs,
            vec![("r-1".to_string(), RunPushed::Continued { had: 1, added: 2 })]
        );
        assert_eq!(target.read_run("r-1").unwrap(), records(&["a", "b", "c"]));
        // A run the target holds already, from another push, is left.
        let elsewhere = LocalStore::new(&source.root().with_file_name("other"));
        write_run(&elsewhere, "r-1", &["a", "b"]);
        let pushed = push(&elsewhere, &target, 3).unwrap();
        assert_eq!(
            pushed.runs,
            vec![("r-1".to_string(), RunPushed::AlreadyThere)]
        );
    }

    #[test]
    fn a_run_id_the_target_holds_otherwise_is_a_conflict_and_nothing_is_overwritten() {
        let (_dir, source, target) = stores();
        write_run(&target, "r-1", &["theirs", "also theirs"]);
        write_run(&source, "r-1", &["ours"]);
        let report = Key::report("web", "r-1", ReportFormat::Markdown);
        target.put(&report, b"their report").unwrap();
        source.put(&report, b"our report").unwrap();

        let pushed = push(&source, &target, 1).unwrap();
        assert_eq!(
            pushed.runs,
            vec![(
                "r-1".to_string(),
                RunPushed::Conflict { ours: 1, theirs: 2 }
            )]
        );
        assert_eq!(pushed.conflicts(), vec!["r-1", report.as_str()]);
        assert_eq!(
            target.read_run("r-1").unwrap(),
            records(&["theirs", "also theirs"])
        );
        assert_eq!(
            target.get(&report).unwrap().as_deref(),
            Some(&b"their report"[..])
        );
        // Not noted as pushed: the next push says so again.
        assert_eq!(source.get(&Key::pushed("r-1")).unwrap(), None);
        let again = push(&source, &target, 2).unwrap();
        assert_eq!(again.conflicts().len(), 2);
    }
}
