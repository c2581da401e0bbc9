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

use std::cmp::Reverse;
use std::collections::BTreeMap;

use serde::Serialize;

use super::report::{
    CreatedResource, CriticalPath, GateRecord, PhaseTiming, StackTiming, StepTiming,
};
use crate::clock::Millis;
use crate::journal::Event;
use crate::plan::Action;
use crate::world::Address;

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
/// rebuild could have been with unlimited parallelism and no gates.
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
    // Journal order is a topological order: a link's step finished (its
    // outcome was written) before the step it links to was begun.
    let mut chains: Vec<(Millis, Option<usize>)> = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        let before = |dep: &Address| {
            (0..i)
                .rev()
                .find(|&j| steps[j].address == dep && steps[j].outcome_index < step.intent_index)
        };
        let links = step
            .depends_on
            .iter()
            .chain(std::iter::once(step.address))
            .filter_map(before);
        let previous = longest(links, &steps, &chains);
        let so_far = previous.map_or(0, |j| chains[j].0);
        chains.push((so_far + step.duration(), previous));
    }
    let mut chain = Vec::new();
    let mut at = longest(0..steps.len(), &steps, &chains);
    let bound_ms = at.map_or(0, |i| chains[i].0);
    while let Some(i) = at {
        chain.push(steps[i].address.to_string());
        at = chains[i].1;
    }
    chain.reverse();
    CriticalPath {
        bound_ms,
        steps: chain,
        rto_ratio: None,
    }
}

/// Of the candidate steps, the one ending the longest chain, ties broken as
/// [`critical_path`] says.
fn longest(
    candidates: impl Iterator<Item = usize>,
    steps: &[Step<'_>],
    chains: &[(Millis, Option<usize>)],
) -> Option<usize> {
    let tie_break = |i: usize| Reverse((steps[i].address.to_string(), steps[i].intent_index));
    candidates.max_by_key(|&i| (chains[i].0, tie_break(i)))
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

/// RTO divided by the critical-path bound; `None` when there is no bound to
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

/// One stretch of a phase's execution by one process.
struct Attempt<'a> {
    phase: &'a str,
    start: Millis,
    end: Millis,
    /// From its `PhaseFinished`; `None` when its process stopped in it.
    failed: Option<usize>,
}

/// A step whose call reported back: its intent and the outcome closing it.
#[derive(Clone, Copy)]
struct Step<'a> {
    /// The phase running when it was begun; `None` for the cleanup after
    /// the phases.
    phase: Option<&'a str>,
    address: &'a Address,
    action: Action,
    depends_on: &'a [Address],
    started_at: Millis,
    ended_at: Millis,
    ok: bool,
    error: Option<&'a str>,
    intent_index: usize,
    outcome_index: usize,
}

impl Step<'_> {
    fn duration(&self) -> Millis {
        (self.ended_at - self.started_at).max(0)
    }

    fn timing(&self) -> StepTiming {
        StepTiming {
            address: self.address.to_string(),
            action: word(&self.action),
            started_at: self.started_at,
            duration_ms: self.duration(),
            ok: self.ok,
            error: self.error.map(str::to_string),
        }
    }
}

/// The journal read once: phase attempts and completed steps.
struct Read<'a> {
    attempts: Vec<Attempt<'a>>,
    steps: Vec<Step<'a>>,
}

fn read<'a>(events: &'a [Event]) -> Read<'a> {
    let mut attempts = Vec::new();
    let mut steps = Vec::new();
    let mut open: Option<Attempt<'a>> = None;
    // Intents waiting for their outcomes, as steps still to be closed.
    let mut pending: BTreeMap<&'a Address, Step<'a>> = BTreeMap::new();
    // The time of the last event before the current one: where an
    // attempt whose process stopped ends.
    let mut previous_at: Option<Millis> = None;
    let mut close = |open: &mut Option<Attempt<'a>>, end: Option<Millis>| {
        if let Some(mut attempt) = open.take() {
            attempt.end = end.unwrap_or(attempt.start).max(attempt.start);
            attempts.push(attempt);
        }
    };
    for (index, event) in events.iter().enumerate() {
        match event {
            Event::PhaseStarted { at, phase } => {
                close(&mut open, previous_at);
                open = Some(Attempt {
                    phase,
                    start: *at,
                    end: *at,
                    failed: None,
                });
            }
            Event::PhaseFinished { at, phase, failed } => {
                if let Some(attempt) = open.as_mut().filter(|a| a.phase == phase) {
                    attempt.failed = Some(*failed);
                    close(&mut open, Some(*at));
                }
            }
            Event::Interrupted { .. } | Event::Resumed { .. } => {
                close(&mut open, previous_at);
                // Calls in flight died with their process: an outcome
                // from here on answers a new intent.
                pending.clear();
            }
            Event::Intent {
                at,
                address,
                action,
                depends_on,
            } => {
                let step = Step {
                    phase: open.as_ref().map(|a| a.phase),
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
    close(&mut open, previous_at);
    Read { attempts, steps }
}

/// The last completed step of each address within each phase (and within
/// the cleanup): an earlier pair was a failure that a resume retried.
fn last_pairs<'a>(steps: &[Step<'a>]) -> Vec<Step<'a>> {
    let mut last: BTreeMap<(Option<&str>, &Address), &Step<'a>> = BTreeMap::new();
    for step in steps {
        last.insert((step.phase, step.address), step);
    }
    last.into_values().copied().collect()
}

/// Each stack's span over the given steps (sorted by start): first start to
/// last end, stacks in the order they started.
fn stack_spans(steps: &[&Step<'_>]) -> Vec<StackTiming> {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::ResourceKind;

    /// A journal written one event a line, `<at> <event> <args>`, in the
    /// journal's own words (`create`, `approve`); a line `<start>..<end>
    /// <address> [<dependency>,…]` is a create and its success.
    fn journal(script: &str) -> Vec<Event> {
        let addr = |text: &str| {
            let p: Vec<&str> = text.split('.').collect();
            Address::new(p[0], ResourceKind::from_name(p[1]).expect("a kind"), p[2])
        };
        let mut events = Vec::new();
        for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let w: Vec<&str> = line.split_whitespace().collect();
            let number = |text: &str| text.parse::<Millis>().expect("a number");
            if let Some((start, end)) = w[0].split_once("..") {
                let deps: Vec<Address> = w
                    .get(2)
                    .map_or(vec![], |d| d.split(',').map(addr).collect());
                events.push(json!({"event": "intent", "at": number(start), "address": addr(w[1]), "action": "create", "depends_on": deps}));
                events.push(json!({"event": "outcome", "at": number(end), "address": addr(w[1]), "action": "create", "ok": true, "id": "id", "error": null}));
                continue;
            }
            let at = number(w[0]);
            events.push(match w[1] {
                "start" => json!({"event": "phase_started", "at": at, "phase": w[2]}),
                "finish" => json!({"event": "phase_finished", "at": at, "phase": w[2], "failed": number(w[3])}),
                "paused" => json!({"event": "paused", "at": at, "phase": w[2]}),
                "interrupted" => json!({"event": "interrupted", "at": at}),
                "resumed" => json!({"event": "resumed", "at": at, "by": "bob", "pid": 7}),
                "intent" => json!({"event": "intent", "at": at, "address": addr(w[2]), "action": w[3]}),
                "ok" => json!({"event": "outcome", "at": at, "address": addr(w[2]), "action": w[3], "ok": true, "id": w[4], "error": null}),
                "fail" => json!({"event": "outcome", "at": at, "address": addr(w[2]), "action": w[3], "ok": false, "id": "", "error": w[4..].join(" ")}),
                "decide" => json!({"event": "gate_decision", "at": at, "phase": w[2], "decision": w[3], "by": "alice", "reason": "looked | fine", "waited_ms": number(w[4])}),
                other => panic!("no event `{other}` in the test script"),
            });
        }
        events
            .into_iter()
            .map(|e| serde_json::from_value(e).expect("an event"))
            .collect()
    }

    fn rows<T>(items: &[T], row: impl Fn(&T) -> String) -> Vec<String> {
        items.iter().map(row).collect()
    }

    #[test]
    fn a_phase_counts_from_its_start_to_its_end_without_its_gate_wait() {
        let events = journal(
            "1000 paused net
             61000 decide net approve 60000
             62000 start net
             62100..70000 net.vpc.main
             70100..75000 net.subnet.a net.vpc.main
             62200..64000 base.security_group.web
             75100 intent net.route_table.public update
             76000 fail net.route_table.public update boom
             77000 finish net 1",
        );
        let [net] = &phases(&events)[..] else {
            panic!("one phase")
        };
        assert_eq!((net.name.as_str(), net.failed), ("net", 1));
        assert_eq!((net.started_at, net.ended_at), (62_000, 77_000));
        assert_eq!(net.duration_ms, 15_000, "the gate's minute is not in it");
        let stacks = rows(&net.stacks, |s| format!("{} {}", s.name, s.duration_ms));
        assert_eq!(stacks, ["net 13900", "base 1800"]);
        assert_eq!(
            rows(&net.steps, |s| format!("{s:?}")),
            [
                "StepTiming { address: \"net.vpc.main\", action: \"create\", started_at: 62100, duration_ms: 7900, ok: true, error: None }",
                "StepTiming { address: \"base.security_group.web\", action: \"create\", started_at: 62200, duration_ms: 1800, ok: true, error: None }",
                "StepTiming { address: \"net.subnet.a\", action: \"create\", started_at: 70100, duration_ms: 4900, ok: true, error: None }",
                "StepTiming { address: \"net.route_table.public\", action: \"update\", started_at: 75100, duration_ms: 900, ok: false, error: Some(\"boom\") }",
            ]
        );
    }

    #[test]
    fn a_resumed_phase_counts_its_attempts_and_the_last_completed_pair_of_each_step() {
        // Killed (kill -9: no outcome, no Interrupted) during the subnet's
        // call; resumed an hour later, failed, stopped by Ctrl-C after the
        // phase finished, resumed again.
        let events = journal(
            "10000 start app
             10000..12000 app.vpc.main
             13000 intent app.subnet.a create
             3600000 resumed
             3600500 decide app auto 0
             3601000 start app
             3601000..3604000 app.subnet.a app.vpc.main
             3604000 intent app.instances.web create
             3605000 fail app.instances.web create quota
             3606000 finish app 1
             3606500 interrupted
             7200000 resumed
             7200000 start app
             7200000..7230000 app.instances.web app.subnet.a
             7231000 finish app 0",
        );
        let [app] = &phases(&events)[..] else {
            panic!("one phase however often it started")
        };
        assert_eq!((app.started_at, app.ended_at), (10_000, 7_231_000));
        // 10s→13s (the last event the killed process wrote), then 5s, then 31s.
        assert_eq!(app.duration_ms, 3_000 + 5_000 + 31_000);
        assert_eq!(app.failed, 0, "the last attempt's count");
        assert_eq!(
            rows(&app.steps, |s| format!("{s:?}")),
            [
                "StepTiming { address: \"app.vpc.main\", action: \"create\", started_at: 10000, duration_ms: 2000, ok: true, error: None }",
                "StepTiming { address: \"app.subnet.a\", action: \"create\", started_at: 3601000, duration_ms: 3000, ok: true, error: None }",
                "StepTiming { address: \"app.instances.web\", action: \"create\", started_at: 7200000, duration_ms: 30000, ok: true, error: None }",
            ]
        );
    }

    #[test]
    fn a_phase_whose_process_stopped_in_it_ends_at_its_last_event_and_counts_failures() {
        let events = journal(
            "0 start one
             100 intent s.vpc.main create
             900 fail s.vpc.main create denied
             1000 intent s.subnet.a create",
        );
        let one = &phases(&events)[0];
        assert_eq!(
            (one.ended_at, one.duration_ms, one.failed),
            (1_000, 1_000, 1)
        );
        assert_eq!(one.steps.len(), 1, "a call with no outcome is no step");
    }

    #[test]
    fn gates_are_recorded_with_their_decision_in_the_journal_spelling() {
        let events = journal(
            "5 decide compute approve 4
             6 start compute
             9 decide cutover timeout 3",
        );
        let gates = rows(&gates(&events), |g| format!("{g:?}"));
        assert_eq!(
            gates,
            [
                "GateRecord { phase: \"compute\", decision: \"approve\", by: \"alice\", reason: Some(\"looked | fine\"), at: 5, waited_ms: 4 }",
                "GateRecord { phase: \"cutover\", decision: \"timeout\", by: \"alice\", reason: Some(\"looked | fine\"), at: 9, waited_ms: 3 }",
            ]
        );
    }

    #[test]
    fn the_critical_path_is_the_longest_chain_of_dependent_steps() {
        // `n.route_table.main` was unchanged: not journaled, no link.
        let script = |instances_after: &str| {
            journal(&format!(
                "0..10 n.vpc.main
                 0..40 a.image.app
                 10..15 n.subnet.a n.vpc.main
                 10..12 n.security_group.web n.vpc.main
                 40..70 w.instances.web n.subnet.a,n.security_group.web,n.route_table.main{instances_after}"
            ))
        };
        let path = critical_path(&script(",a.image.app"));
        // Through the image: 40 + 30 beats vpc, subnet, instances: 10 + 5 + 30.
        assert_eq!((path.bound_ms, path.rto_ratio), (70, None));
        assert_eq!(path.steps, ["a.image.app", "w.instances.web"]);
        let path = critical_path(&script(""));
        assert_eq!(path.bound_ms, 45);
        assert_eq!(
            path.steps,
            ["n.vpc.main", "n.subnet.a", "w.instances.web"],
            "first step first"
        );
    }

    #[test]
    fn critical_path_ties_break_by_address_whatever_the_journal_order() {
        let diamond = |first: &str, second: &str| {
            journal(&format!(
                "0..10 n.vpc.main
                 10..15 {first} n.vpc.main
                 10..15 {second} n.vpc.main
                 15..20 n.route_table.main {first},{second}"
            ))
        };
        let one = critical_path(&diamond("n.subnet.b", "n.subnet.a"));
        assert_eq!(one, critical_path(&diamond("n.subnet.a", "n.subnet.b")));
        assert_eq!(one.bound_ms, 20);
        assert_eq!(
            one.steps,
            ["n.vpc.main", "n.subnet.a", "n.route_table.main"]
        );
    }

    #[test]
    fn the_critical_path_links_a_dependency_only_once_it_had_finished() {
        // The vpc's update in phase two began with the subnet, so the subnet
        // did not wait for it; the update in phase three follows the one in
        // phase two, which follows the create.
        let events = journal(
            "0 start one
             0..10 n.vpc.main
             10 finish one 0
             10 start two
             11 intent n.vpc.main update
             11..20 n.subnet.a n.vpc.main
             50 ok n.vpc.main update vpc-1
             50 finish two 0
             50 start three
             50 intent n.vpc.main update
             51 ok n.vpc.main update vpc-1",
        );
        let path = critical_path(&events);
        assert_eq!(path.steps, ["n.vpc.main", "n.vpc.main", "n.vpc.main"]);
        assert_eq!(path.bound_ms, 10 + 39 + 1);
    }

    #[test]
    fn resources_created_are_the_last_successful_create_or_replace_of_each_address() {
        let events = journal(
            "1 ok n.vpc.main create vpc-1
             2 fail n.subnet.a create no
             3 ok n.security_group.web update sg-1
             4 ok w.instances.web create i-1
             5 ok w.instances.web replace i-2
             6 ok n.vpc.main delete vpc-1",
        );
        let created = rows(&resources_created(&events), |c| {
            format!("{} {}", c.address, c.id)
        });
        assert_eq!(created, ["n.vpc.main vpc-1", "w.instances.web i-2"]);
    }

    #[test]
    fn an_empty_journal_has_no_phases_and_no_path_and_no_rto_ratio() {
        assert!(phases(&[]).is_empty() && gates(&[]).is_empty());
        assert!(resources_created(&[]).is_empty());
        let path = critical_path(&[]);
        assert_eq!((path.bound_ms, path.steps.len()), (0, 0));
        assert_eq!(rto_ratio(90_000, path.bound_ms), None);
        assert_eq!(rto_ratio(90_000, 60_000), Some(1.5));
    }
}
