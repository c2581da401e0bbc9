//! Steps that start before all their inputs are known: a step's late
//! attributes ([`crate::plan::Change::late`]) wait on steps of the same
//! run, and are handed to it under way ([`LateInputs`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::step::prepare;
use super::ApplyOptions;
use crate::cloud::provider::LateInputs;
use crate::plan::Change;
use crate::world::{Address, Attrs};

/// Whether `change` may start now: every input it needs at once is known
/// and each late one (`Change::late`) will be, by a step of this run. The
/// late inputs still missing, if it may (empty: it needs nothing more).
pub(super) fn may_start(
    change: &Change,
    exports: &BTreeMap<Address, Attrs>,
    in_run: &BTreeSet<&Address>,
) -> Option<BTreeSet<Address>> {
    let missing = |d: &&Address| !exports.contains_key(*d);
    let late = change.late_dependencies();
    let early_missing = change
        .depends_on
        .iter()
        .filter(missing)
        .any(|d| !late.contains(d) || !in_run.contains(d));
    if early_missing {
        return None;
    }
    Some(late.into_iter().filter(|d| missing(&d)).collect())
}

/// What steps that started before their late inputs were known read: the
/// run's exports and failures so far, republished as each step finishes.
#[derive(Default)]
pub(super) struct LateBoard {
    board: Arc<std::sync::Mutex<Board>>,
    finished: Option<tokio::sync::watch::Sender<u64>>,
}

#[derive(Default)]
struct Board {
    exports: BTreeMap<Address, Attrs>,
    broken: BTreeSet<Address>,
}

impl LateBoard {
    /// The late inputs of `change`, which waits on the steps `waits_on`.
    pub(super) fn inputs<'c>(
        &mut self,
        change: &'c Change,
        waits_on: BTreeSet<Address>,
        environment: &str,
        options: &ApplyOptions,
    ) -> LateInputs<'c> {
        let finished = self
            .finished
            .get_or_insert_with(|| tokio::sync::watch::channel(0).0)
            .subscribe();
        let board = self.board.clone();
        let (environment, run_id) = (environment.to_string(), options.run_id.clone());
        let lifetime = options.lifetime.clone();
        LateInputs::new(finished, move || {
            let board = board.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(failed) = waits_on.iter().find(|d| board.broken.contains(*d)) {
                return Some(Err(format!("{failed} did not get applied")));
            }
            if !waits_on.iter().all(|d| board.exports.contains_key(d)) {
                return None;
            }
            let none = BTreeSet::new();
            let ready = prepare(
                change,
                &environment,
                &board.exports,
                &run_id,
                lifetime.as_ref(),
                &none,
            );
            Some(ready.map(|p| (p.attrs, p.tags)))
        })
    }

    /// A step finished: what waits under way reads the run as it is now.
    pub(super) fn publish(
        &self,
        exports: &BTreeMap<Address, Attrs>,
        broken: &BTreeMap<Address, Address>,
    ) {
        let Some(finished) = &self.finished else {
            return; // nothing waits under way
        };
        {
            let mut board = self.board.lock().unwrap_or_else(|e| e.into_inner());
            board.exports = exports.clone();
            board.broken = broken.keys().cloned().collect();
        }
        finished.send_modify(|n| *n += 1);
    }
}
