//! The journal read for timing: each phase's attempts (a resumed phase has
//! several) and each step as its intent and the outcome that closed it (a
//! call whose process died has none; a resume's retry is a new pair).

use std::collections::BTreeMap;

use super::word;
use crate::clock::Millis;
use crate::drill::report::{StackTiming, StepTiming};
use crate::journal::Event;
use crate::plan::Action;
use crate::world::Address;

/// One stretch of a phase's execution by one process.
pub(super) struct Attempt<'a> {
    pub(super) phase: &'a str,
    pub(super) start: Millis,
    pub(super) end: Millis,
    /// From its `PhaseFinished`; `None` when its process stopped in it.
    pub(super) failed: Option<usize>,
    /// Where its `PhaseStarted` is in the journal: attempts are listed in
    /// the order they started, though pipelined phases end in any order.
    opened_at_index: usize,
}

/// A step whose call reported back: its intent and the outcome closing it.
#[derive(Clone, Copy)]
pub(super) struct Step<'a> {
    /// The phase running when it was begun; `None` for the cleanup after
    /// the phases.
    pub(super) phase: Option<&'a str>,
    pub(super) address: &'a Address,
    pub(super) action: Action,
    pub(super) depends_on: &'a [Address],
    pub(super) started_at: Millis,
    pub(super) ended_at: Millis,
    pub(super) ok: bool,
    pub(super) error: Option<&'a str>,
    pub(super) intent_index: usize,
    pub(super) outcome_index: usize,
}

impl Step<'_> {
    pub(super) fn duration(&self) -> Millis {
        (self.ended_at - self.started_at).max(0)
    }

    pub(super) fn timing(&self) -> StepTiming {
        StepTiming {
            address: self.address.to_string(),
            action: word(&self.action),
            kind: crate::forecast::step_kind_of(self.address.kind, self.action)
                .map(|k| k.to_string()),
            started_at: self.started_at,
            duration_ms: self.duration(),
            ok: self.ok,
            error: self.error.map(str::to_string),
        }
    }
}

/// The journal read once: phase attempts and completed steps.
pub(super) struct Read<'a> {
    pub(super) attempts: Vec<Attempt<'a>>,
    pub(super) steps: Vec<Step<'a>>,
}

pub(super) fn read<'a>(events: &'a [Event]) -> Read<'a> {
    let mut attempts = Vec::new();
    let mut steps = Vec::new();
    // Phases that pipeline run at once: each has its attempt open.
    let mut open: Vec<Attempt<'a>> = Vec::new();
    // Intents waiting for their outcomes, as steps still to be closed.
    let mut pending: BTreeMap<&'a Address, Step<'a>> = BTreeMap::new();
    // The time of the last event before the current one: where an
    // attempt whose process stopped ends.
    let mut previous_at: Option<Millis> = None;
    let mut close = |mut attempt: Attempt<'a>, end: Option<Millis>| {
        attempt.end = end.unwrap_or(attempt.start).max(attempt.start);
        attempts.push(attempt);
    };
    for (index, event) in events.iter().enumerate() {
        match event {
            Event::PhaseStarted { at, phase } => {
                // Started again without finishing: the process stopped.
                if let Some(i) = open.iter().position(|a| a.phase == phase) {
                    close(open.remove(i), previous_at);
                }
                open.push(Attempt {
                    phase,
                    start: *at,
                    end: *at,
                    failed: None,
                    opened_at_index: index,
                });
            }
            Event::PhaseFinished {
                at, phase, failed, ..
            } => {
                if let Some(i) = open.iter().position(|a| a.phase == phase) {
                    let mut attempt = open.remove(i);
                    attempt.failed = Some(*failed);
                    close(attempt, Some(*at));
                }
            }
            Event::Interrupted { .. } | Event::Resumed { .. } => {
                open.drain(..).for_each(|a| close(a, previous_at));
                // Calls in flight died with their process: an outcome
                // from here on answers a new intent.
                pending.clear();
            }
            Event::Intent {
                at,
                address,
                action,
                depends_on,
                phase,
            } => {
                // Its own phase, if the journal names it; else (older
                // journals, one phase at a time) the phase running.
                let phase = match phase {
                    Some(named) => open.iter().find(|a| a.phase == named),
                    None => None,
                }
                .or(open.last())
                .map(|a| a.phase);
                let step = Step {
                    phase,
                    address,
                    action: *action,
                    depends_on,
                    started_at: *at,
                    ended_at: *at,
                    ok: false,
                    error: None,
                    intent_index: index,
                    outcome_index: index,
                };
                pending.insert(address, step);
            }
            Event::Outcome {
                at,
                address,
                action,
                ok,
                error,
                ..
            } => {
                if let Some(step) = pending.remove(address) {
                    steps.push(Step {
                        action: *action,
                        ended_at: *at,
                        ok: *ok,
                        error: error.as_deref(),
                        outcome_index: index,
                        ..step
                    });
                }
            }
            _ => {}
        }
        previous_at = Some(event.at());
    }
    open.drain(..).for_each(|a| close(a, previous_at));
    attempts.sort_by_key(|a| a.opened_at_index);
    Read { attempts, steps }
}

/// The last completed step of each address within each phase (and within
/// the cleanup): an earlier pair was a failure that a resume retried.
pub(super) fn last_pairs<'a>(steps: &[Step<'a>]) -> Vec<Step<'a>> {
    let mut last: BTreeMap<(Option<&str>, &Address), &Step<'a>> = BTreeMap::new();
    for step in steps {
        last.insert((step.phase, step.address), step);
    }
    last.into_values().copied().collect()
}

/// Each stack's span over the given steps (sorted by start): first start to
/// last end, stacks in the order they started.
pub(super) fn stack_spans(steps: &[&Step<'_>]) -> Vec<StackTiming> {
    let mut spans: Vec<(&str, Millis, Millis)> = Vec::new();
    for step in steps {
        let stack = step.address.stack.as_str();
        let end = step.started_at + step.duration();
        match spans.iter_mut().find(|(name, ..)| *name == stack) {
            Some((_, _, last_end)) => *last_end = (*last_end).max(end),
            None => spans.push((stack, step.started_at, end)),
        }
    }
    spans
        .into_iter()
        .map(|(name, start, end)| StackTiming {
            name: name.to_string(),
            duration_ms: end - start,
        })
        .collect()
}
