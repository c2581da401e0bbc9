//! What `drctl schedule run` remembers between starts, a whole object in
//! the run store (`schedule/state.json` in a state directory): per runbook, the newest fire time it
//! has handled, and its last run. A fire after that time and before now was
//! missed (the daemon was down) and runs once when it starts again.
//!
//! ```json
//! {
//!   "format": 1,
//!   "runbooks": {
//!     "web-dr-drill": {
//!       "handled_through": "2026-03-14T04:00:00Z",
//!       "last_run": {
//!         "fire": "2026-03-14T04:00:00Z",
//!         "fires": 1,
//!         "started_at": "2026-03-14T04:00:00.2Z",
//!         "finished_at": "2026-03-14T04:21:09Z",
//!         "verdict": "passed",
//!         "exit_code": 0
//!       }
//!     }
//!   }
//! }
//! ```
//!
//! Written whole (locally: to a temporary file renamed over the old one),
//! so a crash leaves the old state or the new, never half of one.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::ScheduleError;
use crate::store::{Key, RunStore};

/// Bumped when a field changes meaning or goes away (adding one does not).
pub const STATE_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub format: u32,
    pub runbooks: BTreeMap<String, RunbookState>,
}

impl Default for State {
    fn default() -> Self {
        State {
            format: STATE_FORMAT,
            runbooks: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunbookState {
    /// Every fire at or before this instant has been handled: run, folded
    /// into a run, or before the daemon first saw the runbook.
    #[serde(with = "rfc3339")]
    pub handled_through: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<LastRun>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    /// The fire the run was for (the newest of those it stands for).
    #[serde(with = "rfc3339")]
    pub fire: Timestamp,
    /// How many fires it stands for (more than one: some were missed).
    pub fires: usize,
    #[serde(with = "rfc3339")]
    pub started_at: Timestamp,
    /// Absent while it runs, or when the daemon died before it ended.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "rfc3339_opt")]
    pub finished_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// How a drill ended, read from its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Exit 0.
    Passed,
    /// Exit 1: the drill ran and did not pass.
    Failed,
    /// Anything else: the drill could not run or was killed.
    Error,
}

impl Verdict {
    pub fn from_exit(code: Option<i32>) -> Verdict {
        match code {
            Some(0) => Verdict::Passed,
            Some(1) => Verdict::Failed,
            _ => Verdict::Error,
        }
    }
}

impl State {
    /// Sets up the runbooks that are scheduled now: one seen for the first
    /// time starts at `now` (nothing before it counts as missed); one no
    /// longer scheduled is forgotten, so scheduling it again later does not
    /// make up for the time in between. Returns the runbooks set up.
    pub fn reconcile<'a>(
        &mut self,
        scheduled: impl IntoIterator<Item = &'a str>,
        now: Timestamp,
    ) -> Vec<String> {
        let scheduled: Vec<&str> = scheduled.into_iter().collect();
        self.runbooks
            .retain(|name, _| scheduled.contains(&name.as_str()));
        let mut added = Vec::new();
        for name in scheduled {
            self.runbooks.entry(name.to_string()).or_insert_with(|| {
                added.push(name.to_string());
                RunbookState {
                    handled_through: now,
                    last_run: None,
                }
            });
        }
        added
    }
}

/// The state in `store`; none yet is the empty state.
pub fn load(store: &dyn RunStore) -> Result<State, ScheduleError> {
    let key = Key::schedule_state();
    let Some(bytes) = store.get(&key)? else {
        return Ok(State::default());
    };
    serde_json::from_slice(&bytes).map_err(|source| ScheduleError::CorruptState {
        path: store.location(&key),
        source,
    })
}

/// Writes `state` whole to `store`.
pub fn save(store: &dyn RunStore, state: &State) -> Result<(), ScheduleError> {
    let mut bytes = serde_json::to_vec_pretty(state).expect("the state serializes");
    bytes.push(b'\n');
    Ok(store.put(&Key::schedule_state(), &bytes)?)
}

/// Who runs one fire of a runbook's schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FireClaim {
    /// This caller: its drill is the fire's one run.
    Ours,
    /// Someone else claimed it first (another daemon, a CronJob fired
    /// twice): `run ID by USER@HOST`.
    Taken(String),
}

/// Claims the fire of `runbook`'s schedule at `fire` (milliseconds) for
/// run `run_id`, with a create that succeeds for one caller only, from
/// anywhere on the store: every way a drill is scheduled (the daemon,
/// `drill --scheduled` from a CronJob, a timer or a workflow) claims it,
/// so a fire fired twice runs once.
pub fn claim_fire(
    store: &dyn RunStore,
    runbook: &str,
    fire: i64,
    run_id: &str,
) -> Result<FireClaim, crate::store::StoreError> {
    let key = Key::fire_claim(runbook, fire);
    let by = format!(
        "{}@{}",
        crate::journal::current_user(),
        crate::journal::host_name()
    );
    let claim = serde_json::json!({ "run_id": run_id, "by": by });
    if store.claim(&key, claim.to_string().as_bytes())? {
        return Ok(FireClaim::Ours);
    }
    let holder = store
        .get(&key)?
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .map(|c| {
            format!(
                "run {} by {}",
                c["run_id"].as_str().unwrap_or("?"),
                c["by"].as_str().unwrap_or("?")
            )
        })
        .unwrap_or_else(|| "another start".into());
    Ok(FireClaim::Taken(holder))
}

/// Timestamps as RFC 3339 text (jiff's serde support is not enabled).
mod rfc3339 {
    use jiff::Timestamp;
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(t)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

mod rfc3339_opt {
    use jiff::Timestamp;
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::rfc3339::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| s.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LocalStore;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("RFC 3339")
    }

    #[test]
    fn a_runbook_seen_first_starts_now_and_one_unscheduled_is_forgotten() {
        let mut state = State::default();
        state.runbooks.insert(
            "old".into(),
            RunbookState {
                handled_through: ts("2026-01-01T00:00:00Z"),
                last_run: None,
            },
        );
        state.runbooks.insert(
            "kept".into(),
            RunbookState {
                handled_through: ts("2026-02-01T00:00:00Z"),
                last_run: None,
            },
        );
        let added = state.reconcile(["kept", "new"], ts("2026-03-01T00:00:00Z"));
        assert_eq!(added, ["new"]);
        assert_eq!(
            state.runbooks.keys().collect::<Vec<_>>(),
            ["kept", "new"],
            "`old` is no longer scheduled"
        );
        assert_eq!(
            state.runbooks["kept"].handled_through,
            ts("2026-02-01T00:00:00Z")
        );
        assert_eq!(
            state.runbooks["new"].handled_through,
            ts("2026-03-01T00:00:00Z")
        );
    }

    #[test]
    fn the_state_round_trips_and_a_missing_file_is_empty() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = LocalStore::new(dir.path());
        let path = store.location(&Key::schedule_state());
        assert_eq!(load(&store).expect("missing is empty"), State::default());
        let mut state = State::default();
        state.runbooks.insert(
            "web".into(),
            RunbookState {
                handled_through: ts("2026-03-14T04:00:00Z"),
                last_run: Some(LastRun {
                    fire: ts("2026-03-14T04:00:00Z"),
                    fires: 2,
                    started_at: ts("2026-03-14T04:00:01Z"),
                    finished_at: None,
                    verdict: None,
                    exit_code: None,
                }),
            },
        );
        save(&store, &state).expect("save");
        assert_eq!(load(&store).expect("load"), state);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(
            text.contains("\"handled_through\": \"2026-03-14T04:00:00Z\""),
            "{text}"
        );
        assert!(!text.contains("finished_at"), "{text}");
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, ["state.json"], "no temporary file is left");
    }

    #[test]
    fn a_damaged_state_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = LocalStore::new(dir.path());
        let path = store.location(&Key::schedule_state());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "{\"format\": 1, \"runb").unwrap();
        let err = load(&store).expect_err("corrupt");
        assert!(matches!(err, ScheduleError::CorruptState { .. }), "{err}");
        assert!(err.to_string().contains("state.json"), "{err}");
    }

    #[test]
    fn verdicts_follow_the_drill_exit_codes() {
        assert_eq!(Verdict::from_exit(Some(0)), Verdict::Passed);
        assert_eq!(Verdict::from_exit(Some(1)), Verdict::Failed);
        assert_eq!(Verdict::from_exit(Some(2)), Verdict::Error);
        assert_eq!(Verdict::from_exit(None), Verdict::Error);
    }
}
