//! When the phases of a pipelined run start and finish: a phase starts
//! with the first of its steps looked at, and finishes once each has its
//! outcome.

use super::Event;
use crate::plan::Plan;

/// Which phases of a pipelined run have started, and how many of their
/// steps are still without an outcome.
pub(super) struct PhaseBook<'p> {
    plan: &'p Plan,
    first: usize,
    started: Vec<bool>,
    left: Vec<usize>,
    failed: Vec<usize>,
}

impl<'p> PhaseBook<'p> {
    pub(super) fn new(plan: &'p Plan, phases: std::ops::Range<usize>) -> Self {
        let left: Vec<usize> = phases
            .clone()
            .map(|k| plan.phases[k].changes.len())
            .collect();
        PhaseBook {
            plan,
            first: phases.start,
            started: vec![false; left.len()],
            failed: vec![0; left.len()],
            left,
        }
    }

    /// Announces phase `k` the first time one of its steps is looked at.
    pub(super) fn start(&mut self, k: usize, batch: &mut Vec<Event>) {
        let i = k - self.first;
        if !std::mem::replace(&mut self.started[i], true) {
            batch.push(Event::PhaseStarted {
                name: self.plan.phases[k].name.clone(),
                number: k + 1,
                total: self.plan.phases.len(),
            });
            self.finish_if_done(k, batch);
        }
    }

    /// One more step of phase `k` has its outcome.
    pub(super) fn settled(&mut self, k: usize, ok: bool, batch: &mut Vec<Event>) {
        let i = k - self.first;
        self.left[i] = self.left[i].saturating_sub(1);
        self.failed[i] += usize::from(!ok);
        if self.started[i] {
            self.finish_if_done(k, batch);
        }
    }

    fn finish_if_done(&mut self, k: usize, batch: &mut Vec<Event>) {
        let i = k - self.first;
        if self.left[i] == 0 {
            // Never finished twice.
            self.left[i] = usize::MAX;
            batch.push(Event::PhaseFinished {
                name: self.plan.phases[k].name.clone(),
                number: k + 1,
                failed: self.failed[i],
            });
        }
    }

    /// At the end: a phase that started finishes, whatever is left of it
    /// (its steps stopped short); one that never started stays unstarted.
    pub(super) fn finish_started(&mut self, batch: &mut Vec<Event>) {
        for i in 0..self.started.len() {
            if self.started[i] && self.left[i] != usize::MAX {
                self.left[i] = 0;
                self.finish_if_done(self.first + i, batch);
            }
        }
    }
}
