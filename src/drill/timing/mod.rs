//! The drill report's timings, read from the run's journal alone (pure): the
//! journal is what survives a crash, so a drill finished by `drctl resume`
//! is timed from the same record as one that ran straight through.
//!
//! Resumes shape the rules. A phase may start several times: it counts from
//! its first start, and its duration is the sum of its attempts, each ending
//! at its `PhaseFinished` or, for a process that stopped, at the last event
//! that process wrote. A step may have an intent without an outcome (the
//! process died during the call) and a later intent and outcome: the last
//! completed pair is the step.

use std::collections::BTreeMap;

use serde::Serialize;

use super::report::{
    CreatedResource, CriticalPath, GateRecord, PhaseBound, PhaseOrderBound, PhaseTiming,
};
use crate::clock::Millis;
use crate::journal::Event;
use crate::plan::Action;
use crate::world::Address;

mod steps;
use steps::{last_pairs, read, stack_spans, Attempt, Step};

/// Each phase, in the order it first started: its duration without its
/// gate's wait, its stacks' spans and its steps.
pub fn phases(events: &[Event]) -> Vec<PhaseTiming> {
    let journal = read(events);
    let mut order: Vec<&str> = Vec::new();
    for attempt in &journal.attempts {
        if !order.contains(&attempt.phase) {
            order.push(attempt.phase);
        }
    }
    let steps = last_pairs(&journal.steps);
    order
        .into_iter()
        .map(|name| {
            let attempts: Vec<&Attempt> = journal
                .attempts
                .iter()
                .filter(|a| a.phase == name)
                .collect();
            let mut steps: Vec<&Step> = steps.iter().filter(|s| s.phase == Some(name)).collect();
            steps.sort_by_key(|s| (s.started_at, s.address.to_string()));
            let last = attempts
                .last()
                .expect("a phase in the order has an attempt");
            // The executor's own count when the phase finished; a phase whose
            // process stopped in it counts the failures it journaled.
            let failed = last
                .failed
                .unwrap_or_else(|| steps.iter().filter(|s| !s.ok).count());
            PhaseTiming {
                name: name.to_string(),
                started_at: attempts[0].start,
                ended_at: last.end,
                duration_ms: attempts.iter().map(|a| a.end - a.start).sum(),
                failed,
                stacks: stack_spans(&steps),
                steps: steps.iter().map(|s| s.timing()).collect(),
            }
        })
        .collect()
}

/// Every gate decision, in journal order, with who made it and how long the
/// gate had waited.
pub fn gates(events: &[Event]) -> Vec<GateRecord> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::GateDecision {
                at,
                phase,
                decision,
                by,
                reason,
                waited_ms,
                ..
            } => Some(GateRecord {
                phase: phase.clone(),
                decision: word(decision),
                by: by.clone(),
                reason: reason.clone(),
                at: *at,
                waited_ms: *waited_ms,
            }),
            _ => None,
        })
        .collect()
}

/// The longest chain of dependent steps, by summed duration: how fast the
/// rebuild could have been with unlimited parallelism and no gates (the
/// dependency-graph bound).
///
/// The chain's links are each step's journaled `depends_on`, each meaning
/// the latest step of that address that had finished when this one started;
/// a dependency with no such step (an unchanged resource, which is not
/// journaled) adds no link. A step also follows the previous step of its own
/// address (a cutover's update waits for the create before it). Ties go to
/// the smaller address, then to the step journaled first, so the same
/// journal always gives the same chain. `rto_ratio` is left to the caller,
/// who knows the RTO.
pub fn critical_path(events: &[Event]) -> CriticalPath {
    let mut steps = last_pairs(&read(events).steps);
    steps.sort_by_key(|s| s.intent_index);
    let (bound_ms, chain) = longest_chain(&steps);
    CriticalPath {
        bound_ms,
        steps: chain,
        rto_ratio: None,
    }
}

/// The phases one after another, each as fast as its own steps allow: the
/// sum of each phase's longest chain of dependent steps (linked as in
/// [`critical_path`], within the phase), the cleanup after them counted as
/// one more. How fast the rebuild could have been had each phase waited for
/// the one before it (the runbook's phase order), against the dependency
/// graph's bound, where a step waits only for what it depends on.
pub fn phase_order(events: &[Event]) -> PhaseOrderBound {
    let journal = read(events);
    let mut steps = last_pairs(&journal.steps);
    steps.sort_by_key(|s| s.intent_index);
    let mut order: Vec<Option<&str>> = Vec::new();
    for attempt in &journal.attempts {
        if !order.contains(&Some(attempt.phase)) {
            order.push(Some(attempt.phase));
        }
    }
    // Steps begun outside any phase: the cleanup after the last one.
    order.push(None);
    let phases: Vec<PhaseBound> = order
        .into_iter()
        .filter_map(|phase| {
            let own: Vec<Step<'_>> = steps.iter().filter(|s| s.phase == phase).copied().collect();
            if own.is_empty() && phase.is_none() {
                return None;
            }
            let (bound_ms, chain) = longest_chain(&own);
            Some(PhaseBound {
                name: phase.unwrap_or("cleanup").to_string(),
                bound_ms,
                steps: chain,
            })
        })
        .collect();
    PhaseOrderBound {
        bound_ms: phases.iter().map(|p| p.bound_ms).sum(),
        phases,
        rto_ratio: None,
    }
}

/// The longest chain of `steps` (in journal order), linked as
/// [`critical_path`] says: its length and its addresses, first step first.
fn longest_chain(steps: &[Step<'_>]) -> (Millis, Vec<String>) {
    // Journal order is a topological order: a link's step finished (its
    // outcome was written) before the step it links to was begun.
    let links: Vec<Vec<usize>> = steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let before = |dep: &Address| {
                (0..i).rev().find(|&j| {
                    steps[j].address == dep && steps[j].outcome_index < step.intent_index
                })
            };
            let mut links: Vec<usize> = step
                .depends_on
                .iter()
                .chain(std::iter::once(step.address))
                .filter_map(before)
                .collect();
            links.sort_unstable();
            links.dedup();
            links
        })
        .collect();
    let durations: Vec<Millis> = steps.iter().map(Step::duration).collect();
    let tie_break = |i: usize| (steps[i].address.to_string(), steps[i].intent_index);
    let path = crate::forecast::path::longest(&durations, &links, tie_break);
    let chain = path
        .chain
        .iter()
        .map(|&i| steps[i].address.to_string())
        .collect();
    (path.total, chain)
}

/// What the drill created and still owns: each address's last successful
/// create or replace, with the id it got, by address.
pub fn resources_created(events: &[Event]) -> Vec<CreatedResource> {
    let mut created: BTreeMap<String, String> = BTreeMap::new();
    for event in events {
        if let Event::Outcome {
            address,
            action: Action::Create | Action::Replace,
            ok: true,
            id,
            ..
        } = event
        {
            created.insert(address.to_string(), id.clone());
        }
    }
    created
        .into_iter()
        .map(|(address, id)| CreatedResource { address, id })
        .collect()
}

/// When the last successful create (or replace) of `address` began, and
/// how long it took: an image's bake.
pub fn last_create(events: &[Event], address: &Address) -> Option<(Millis, Millis)> {
    read(events)
        .steps
        .iter()
        .rfind(|s| {
            s.address == address && s.ok && matches!(s.action, Action::Create | Action::Replace)
        })
        .map(|s| (s.started_at, s.duration()))
}

/// RTO divided by a bound; `None` when there is no bound to
/// divide by (nothing was journaled, or every step took no time).
pub fn rto_ratio(rto_ms: Millis, bound_ms: Millis) -> Option<f64> {
    (bound_ms > 0).then(|| rto_ms as f64 / bound_ms as f64)
}

/// The word serde writes for a unit variant (`create`, `auto`, `skipped`):
/// the reports spell actions, decisions and statuses as the JSON does.
pub(super) fn word(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(word)) => word,
        other => unreachable!("a unit variant serialises as a string, not {other:?}"),
    }
}

#[cfg(test)]
mod tests;
