//! A run's state, derived from its events alone (pure): status, finished
//! phases, the gate it waits at and the approvals that count there.

use super::{Decision, Event, GateSpec, Millis, RunStatus};
use crate::plan::Action;
use crate::world::Address;

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
            // Stopped at a canary weight below 100% (`hold`), the phase goes on.
            Event::PhaseFinished {
                phase,
                failed: 0,
                hold: None,
                ..
            } => finished.push(phase.clone()),
            Event::Intent {
                address, action, ..
            } => in_flight.push((address.clone(), *action)),
            Event::Outcome { address, .. } => in_flight.retain(|(a, _)| a != address),
            Event::GateWaiting {
                phase,
                gate,
                at,
                plan_hash,
                ..
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
                // Its gate, or a canary gate of its own (`cutover@50%`), passed.
                if waiting.as_ref().is_some_and(|w| {
                    &w.phase == phase || crate::types::GateId::parse(&w.phase).phase == *phase
                }) {
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
            summary: None,
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
                depends_on: vec![],
                phase: None,
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
                hold: None,
            },
            Event::GateWaiting {
                at: 5,
                phase: "two".into(),
                gate: gate(),
                plan_hash: "p1".into(),
                summary: None,
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
            depends_on: vec![],
            phase: None,
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

    #[test]
    fn a_phase_stopped_at_a_canary_weight_is_not_finished_and_its_gate_clears_on_start() {
        let started = |at| Event::PhaseStarted {
            at,
            phase: "cutover".into(),
        };
        let finished = |at, hold: Option<&str>| Event::PhaseFinished {
            at,
            phase: "cutover".into(),
            failed: 0,
            hold: hold.map(str::to_string),
        };
        let mut events = vec![
            started(1),
            finished(2, Some("cutover@50%")),
            Event::GateWaiting {
                at: 3,
                phase: "cutover@50%".into(),
                gate: gate(),
                plan_hash: "p".into(),
                summary: None,
            },
        ];
        let state = run_state(&events);
        assert!(state.finished_phases.is_empty(), "the canary is at 10%");
        assert_eq!(state.waiting.unwrap().phase, "cutover@50%");
        events.push(started(4));
        assert!(
            run_state(&events).waiting.is_none(),
            "its canary gate was passed"
        );
        events.push(finished(5, None));
        assert_eq!(run_state(&events).finished_phases, ["cutover"]);
    }
}
