//! Gates: what passes a run into its next phase. A manual gate counts the
//! approvals recorded for the plan that was shown (a different plan needs
//! new ones), heeds its approvers and its timeout; every decision lands in
//! the journal first, then the sink. A decision by policy (an `auto` gate,
//! `--auto-approve`, a drill's) is written with the phase's start, in the
//! same append, before any call of the phase.

use std::time::Duration;

use super::{Opening, Recorder, RunContext};
use crate::error::Error;
use crate::events::{Answer, Event as Shown, Question};
use crate::graph::PhaseSpec;
use crate::journal::{current_user, run_state, Decision, Event, GateSpec, RunStatus, WaitingGate};
use crate::model::{Gate, ManualGate, OnTimeout};

pub(super) enum GateResult {
    /// What the gate leaves to write with the phase's start.
    Pass(Opening),
    Paused {
        approvals: usize,
        needed: u32,
    },
    Rejected {
        by: String,
    },
    /// Rejected by another process, which ended the run in the journal.
    RejectedElsewhere {
        by: String,
    },
}

pub fn gate_spec(gate: &ManualGate) -> GateSpec {
    GateSpec {
        approvals: gate.approvals,
        approvers: gate.approvers.clone(),
        timeout_secs: gate.timeout.map(|t| t.as_secs()),
        reject_on_timeout: gate.on_timeout == OnTimeout::Reject,
    }
}

/// Everything about one gate decision, as the journal and the sink get it.
struct Decided<'a> {
    phase: &'a str,
    decision: Decision,
    by: &'a str,
    reason: Option<String>,
    waited_ms: i64,
    plan_hash: &'a str,
}

pub(super) fn pass_gate(
    ctx: &RunContext<'_>,
    phase: &PhaseSpec,
    (plan_hash, summary): (&str, &str),
    auto_approve: Option<&str>,
) -> Result<GateResult, Error> {
    let journal = ctx.journal;
    let policy = |decision, by: &str, reason, waited_ms, mut opening: Opening| {
        let (event, shown) = decision_records(
            ctx.clock.now(),
            Decided {
                phase: &phase.name,
                decision,
                by,
                reason,
                waited_ms,
                plan_hash,
            },
        );
        opening.records.push(event);
        opening.shown.push(shown);
        GateResult::Pass(opening)
    };
    let decide = |decision, by: &str, reason, waited_ms| {
        record(
            &ctx.recorder(),
            Decided {
                phase: &phase.name,
                decision,
                by,
                reason,
                waited_ms,
                plan_hash,
            },
        )
    };
    let manual = match &phase.gate {
        Gate::Auto => {
            let reason = Some("auto gate".into());
            return Ok(policy(
                Decision::Auto,
                "policy",
                reason,
                0,
                Opening::default(),
            ));
        }
        Gate::Manual(m) => m,
    };
    let spec = gate_spec(manual);
    let state = run_state(&journal.events()?);
    let shown_before = state.waiting.as_ref().filter(|w| w.phase == phase.name);
    let mut opening = Opening::default();
    // The gate has waited since it was first reached, whichever plan it shows.
    let mut since = shown_before.map(|w| w.since);
    if shown_before.is_none_or(|w| w.plan_hash != plan_hash) {
        if let Some(w) = shown_before {
            // Approved (or shown) another plan: this one needs its own approvals.
            ctx.sink.event(&Shown::PlanChangedAtGate {
                phase: phase.name.clone(),
                set_aside: w.approved_by.clone(),
            });
        }
        let now = ctx.now();
        since = since.or(Some(now));
        let shown = Event::GateWaiting {
            at: now,
            phase: phase.name.clone(),
            gate: spec.clone(),
            plan_hash: plan_hash.to_string(),
            summary: Some(summary.to_string()),
        };
        match auto_approve {
            // Passed at once: written with the decision.
            Some(_) => opening.records.push(shown),
            // Approvals (from anywhere) are for this record.
            None => journal.append(&shown)?,
        }
    }
    if let Some(reason) = auto_approve {
        let waited = ctx.now() - since.expect("shown before, or now");
        let (user, reason) = (current_user(), Some(reason.to_string()));
        return Ok(policy(Decision::Auto, &user, reason, waited, opening));
    }
    let waiting = run_state(&journal.events()?)
        .waiting
        .expect("just recorded");
    if let Some(end) = check_timeout(&ctx.recorder(), &phase.name, &spec, &waiting)? {
        return Ok(end);
    }
    let mut approved = waiting.approved_by.clone();
    loop {
        if approved.len() >= spec.approvals as usize {
            return Ok(GateResult::Pass(Opening::default()));
        }
        let paused = |approved: &Vec<String>| GateResult::Paused {
            approvals: approved.len(),
            needed: spec.approvals,
        };
        let user = current_user();
        let may_approve = (spec.approvers.is_empty() || spec.approvers.contains(&user))
            && !approved.contains(&user);
        let question = Question::Gate {
            phase: phase.name.clone(),
            approvals: approved.len(),
            needed: spec.approvals,
            approved_by: approved.clone(),
            user: user.clone(),
            may_approve,
        };
        let seen = approved.len();
        // A stop request (Ctrl-C) ends the wait too: the run pauses.
        let answer = ctx.sink.ask_watching(&question, WATCH_EVERY, &mut || {
            ctx.cancel.is_cancelled() || settled_elsewhere(ctx, &spec, &waiting, seen)
        });
        if ctx.cancel.is_cancelled() {
            return Ok(paused(&approved));
        }
        let waited = ctx.now() - waiting.since;
        match answer {
            Some(Answer::Approve) if may_approve => {
                decide(Decision::Approve, &user, None, waited)?;
                approved.push(user);
            }
            Some(Answer::Reject) => {
                decide(Decision::Reject, &user, None, waited)?;
                return Ok(GateResult::Rejected { by: user });
            }
            // What was decided elsewhere first (a timeout another command
            // recorded included), then the deadline.
            Some(Answer::Overtaken) => match decided_elsewhere(ctx, &phase.name, &approved)? {
                Elsewhere::Approvals(now) => {
                    approved = now;
                    let waiting = WaitingGate {
                        approved_by: approved.clone(),
                        ..waiting.clone()
                    };
                    if let Some(end) = check_timeout(&ctx.recorder(), &phase.name, &spec, &waiting)?
                    {
                        return Ok(end);
                    }
                }
                Elsewhere::Rejected { by } => return Ok(GateResult::RejectedElsewhere { by }),
                Elsewhere::Gone => return Ok(paused(&approved)),
            },
            Some(Answer::Approve | Answer::Defer) | None => return Ok(paused(&approved)),
        }
    }
}

/// How often a prompt at a gate looks at the journal for a decision made
/// elsewhere (`drctl approve` or `reject` on another machine, through the
/// shared store): a few seconds, one read of the journal's new records.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// Whether a person need no longer answer the prompt at `waiting`: its
/// deadline passed, or the journal holds a decision this process did not
/// make (the run rejected, or approvals beyond the `seen` ones). A journal
/// that cannot be read now is looked at again at the next tick.
fn settled_elsewhere(
    ctx: &RunContext<'_>,
    spec: &GateSpec,
    waiting: &WaitingGate,
    seen: usize,
) -> bool {
    let timed_out = spec.reject_on_timeout
        && spec
            .timeout_secs
            .is_some_and(|limit| ctx.now() - waiting.since >= limit as i64 * 1000);
    if timed_out {
        return true;
    }
    let Ok(events) = ctx.journal.events() else {
        return false;
    };
    let state = run_state(&events);
    state.status.is_final()
        || state
            .waiting
            .is_none_or(|w| w.phase != waiting.phase || w.approved_by.len() > seen)
}

/// What another process decided at the gate before `phase`.
enum Elsewhere {
    /// Everyone who approved it so far.
    Approvals(Vec<String>),
    Rejected {
        by: String,
    },
    /// The run no longer waits there (resumed or ended elsewhere).
    Gone,
}

/// Reads what was decided elsewhere at the gate before `phase` and shows
/// the decisions this process has not shown (approvals by those not in
/// `shown`, a rejection).
fn decided_elsewhere(
    ctx: &RunContext<'_>,
    phase: &str,
    shown: &[String],
) -> Result<Elsewhere, Error> {
    let events = ctx.journal.events()?;
    let state = run_state(&events);
    let show = |decision: Decision, by: &str| {
        let reason = events.iter().rev().find_map(|e| match e {
            Event::GateDecision {
                phase: p,
                decision: d,
                by: b,
                reason,
                ..
            } if p == phase && *d == decision && b == by => Some(reason.clone()),
            _ => None,
        });
        ctx.sink.event(&Shown::GateDecided {
            phase: phase.to_string(),
            decision,
            by: by.to_string(),
            reason: reason.flatten(),
        });
    };
    if state.status == RunStatus::Rejected {
        let rejection = events.iter().rev().find_map(|e| match e {
            Event::GateDecision { decision, by, .. }
                if matches!(decision, Decision::Reject | Decision::Timeout) =>
            {
                Some((*decision, by.clone()))
            }
            _ => None,
        });
        let (decision, by) = rejection.unwrap_or((Decision::Reject, "another process".into()));
        show(decision, &by);
        return Ok(Elsewhere::Rejected { by });
    }
    match state.waiting {
        Some(w) if w.phase == phase => {
            for by in w.approved_by.iter().filter(|by| !shown.contains(by)) {
                show(Decision::Approve, by);
            }
            Ok(Elsewhere::Approvals(w.approved_by))
        }
        _ => Ok(Elsewhere::Gone),
    }
}

/// Rejects the run when the gate's timeout ran out and it says so.
fn check_timeout(
    rec: &Recorder<'_>,
    phase: &str,
    spec: &GateSpec,
    waiting: &WaitingGate,
) -> Result<Option<GateResult>, Error> {
    let Some(limit) = spec.timeout_secs else {
        return Ok(None);
    };
    // Approved in time: the deadline was met, however late the resume.
    if waiting.approved_by.len() >= spec.approvals as usize {
        return Ok(None);
    }
    let waited = rec.clock.now() - waiting.since;
    if spec.reject_on_timeout && waited >= limit as i64 * 1000 {
        record(
            rec,
            Decided {
                phase,
                decision: Decision::Timeout,
                by: "policy",
                reason: Some(format!("no approval within {limit}s")),
                waited_ms: waited,
                plan_hash: &waiting.plan_hash,
            },
        )?;
        return Ok(Some(GateResult::Rejected {
            by: "timeout".into(),
        }));
    }
    Ok(None)
}

/// Writes a decision now, then shows it.
fn record(rec: &Recorder<'_>, d: Decided<'_>) -> Result<(), Error> {
    let (event, shown) = decision_records(rec.clock.now(), d);
    rec.journal.append(&event)?;
    rec.sink.event(&shown);
    Ok(())
}

/// A decision as the journal records it and as the sink shows it.
fn decision_records(at: i64, d: Decided<'_>) -> (Event, Shown) {
    let event = Event::GateDecision {
        at,
        phase: d.phase.to_string(),
        decision: d.decision,
        by: d.by.to_string(),
        reason: d.reason.clone(),
        waited_ms: d.waited_ms,
        plan_hash: d.plan_hash.to_string(),
    };
    let shown = Shown::GateDecided {
        phase: d.phase.to_string(),
        decision: d.decision,
        by: d.by.to_string(),
        reason: d.reason,
    };
    (event, shown)
}

/// `drctl approve`: one person's approval of the gate a run waits at.
pub fn approve(
    rec: &Recorder<'_>,
    gate: Option<&str>,
    by: &str,
    reason: Option<String>,
) -> Result<(usize, u32), Error> {
    let journal = rec.journal;
    let state = run_state(&journal.events()?);
    if state.status.is_final() {
        return Err(Error::usage(
            format!(
                "run {} is {}; there is nothing to approve",
                journal.run_id, state.status
            ),
            None,
        ));
    }
    let Some(waiting) = state.waiting else {
        return Err(Error::usage(
            format!("run {} is not waiting at a gate", journal.run_id),
            None,
        ));
    };
    if let Some(name) = gate {
        if name != waiting.phase {
            return Err(Error::usage(
                format!(
                    "run {} waits at the gate before phase `{}`, not `{name}`",
                    journal.run_id, waiting.phase
                ),
                None,
            ));
        }
    }
    if !waiting.gate.approvers.is_empty() && !waiting.gate.approvers.iter().any(|a| a == by) {
        return Err(Error::usage(
            format!(
                "`{by}` may not approve the gate before phase `{}`",
                waiting.phase
            ),
            Some(format!(
                "its approvers are: {}",
                waiting.gate.approvers.join(", ")
            )),
        ));
    }
    if waiting.approved_by.iter().any(|a| a == by) {
        return Err(Error::usage(
            format!("`{by}` already approved the gate before phase `{}`; approvals must come from different people", waiting.phase),
            None,
        ));
    }
    if reject_if_overdue(rec)?.is_some() {
        return Err(Error::usage(
            format!(
                "the gate before phase `{}` timed out; the run is rejected",
                waiting.phase
            ),
            Some("start a new run with `drctl apply`".into()),
        ));
    }
    // The approval is for the plan the gate shows now (its hash).
    record(
        rec,
        Decided {
            phase: &waiting.phase,
            decision: Decision::Approve,
            by,
            reason,
            waited_ms: rec.clock.now() - waiting.since,
            plan_hash: &waiting.plan_hash,
        },
    )?;
    Ok((waiting.approved_by.len() + 1, waiting.gate.approvals))
}

/// Ends the run rejected when it waits at a gate whose deadline passed
/// without its approvals (`on_timeout = "reject"`): whichever command
/// looks at the run first — a prompt, `resume`, `approve`, `runs` — does
/// it, so a paused run never sits past its deadline looking alive. The
/// gate's phase when it did.
pub fn reject_if_overdue(rec: &Recorder<'_>) -> Result<Option<String>, Error> {
    let state = run_state(&rec.journal.events()?);
    let Some(waiting) = state.waiting.filter(|_| !state.status.is_final()) else {
        return Ok(None);
    };
    if check_timeout(rec, &waiting.phase, &waiting.gate, &waiting)?.is_none() {
        return Ok(None);
    }
    rec.journal.append(&Event::RunFinished {
        at: rec.clock.now(),
        status: RunStatus::Rejected,
    })?;
    Ok(Some(waiting.phase))
}

/// `drctl reject`: ends the run at its gate.
pub fn reject(rec: &Recorder<'_>, by: &str, reason: Option<String>) -> Result<String, Error> {
    let journal = rec.journal;
    let state = run_state(&journal.events()?);
    if state.status.is_final() {
        return Err(Error::usage(
            format!("run {} is already {}", journal.run_id, state.status),
            None,
        ));
    }
    let phase = state
        .waiting
        .as_ref()
        .map(|w| w.phase.clone())
        .unwrap_or_default();
    let now = rec.clock.now();
    let since = state.waiting.as_ref().map_or(now, |w| w.since);
    let plan_hash = state
        .waiting
        .as_ref()
        .map(|w| w.plan_hash.clone())
        .unwrap_or_default();
    record(
        rec,
        Decided {
            phase: &phase,
            decision: Decision::Reject,
            by,
            reason,
            waited_ms: now - since,
            plan_hash: &plan_hash,
        },
    )?;
    journal.append(&Event::RunFinished {
        at: rec.clock.now(),
        status: RunStatus::Rejected,
    })?;
    Ok(phase)
}
