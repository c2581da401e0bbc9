//! A run: phases in order, each re-planned with the real values of the
//! phases before it, behind its gate, journaled so that any interruption
//! (kill -9, Ctrl-C, a pause at a gate) is finished by `drctl resume`.
//!
//! Waiting is a value here: a manual gate without its approvals returns
//! [`RunEnd::Paused`]; the caller decides to prompt, print or exit.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::cloud::provider::Provider;
use crate::error::Error;
use crate::execute::{self, ApplyOptions, Event as Progress, OutcomeKind, Report};
use crate::graph::{runbook_phases, PhaseSpec};
use crate::journal::{
    current_user, now_millis, run_state, Decision, Event, GateSpec, Journal, RunStatus,
};
use crate::model::{Gate, ManualGate, OnTimeout, Project, Runbook};
use crate::plan::{self, render, Plan};

/// How a run ended (for now).
#[derive(Debug)]
pub enum RunEnd {
    Succeeded(Report),
    Failed(Report),
    /// Waiting at the gate before `phase`.
    Paused {
        phase: String,
        approvals: usize,
        needed: u32,
    },
    Rejected {
        phase: String,
        by: String,
    },
    Interrupted(Report),
}

/// A person's answer at a terminal prompt.
pub enum Answer {
    Approve,
    Reject,
    /// Leave the gate open; the run pauses.
    Defer,
}

/// Asks a person at a manual gate: the phase, its gate, who approved so far.
pub type AskAtGate<'a> = &'a dyn Fn(&str, &GateSpec, &[String]) -> Answer;

/// What a run needs besides the cloud.
pub struct RunContext<'a> {
    pub project: &'a Project,
    pub runbook: &'a Runbook,
    pub journal: &'a Journal,
    pub options: ApplyOptions,
    /// Set by the first Ctrl-C: nothing new starts.
    pub cancel: &'a AtomicBool,
    /// Asks a person at a manual gate (a terminal); `None` pauses instead.
    pub ask: Option<AskAtGate<'a>>,
    /// Shows a phase's plan before its gate and its execution.
    pub show: &'a dyn Fn(&str),
    pub progress: &'a dyn Fn(Progress<'_>),
}

/// Runs (or continues) the journaled run to its end or its next pause.
pub async fn drive<P: Provider>(provider: &P, ctx: &RunContext<'_>) -> Result<RunEnd, Error> {
    let phases = runbook_phases(ctx.project, ctx.runbook);
    let auto_approve = ctx.journal.events()?.iter().find_map(|e| match e {
        Event::RunStarted { auto_approve, .. } => auto_approve.clone(),
        _ => None,
    });
    let mut total = Report::default();
    for (index, phase) in phases.iter().enumerate() {
        let state = run_state(&ctx.journal.events()?);
        if state.finished_phases.contains(&phase.name) {
            continue;
        }
        // Re-plan with what the earlier phases really produced.
        let plan = replan(provider, ctx).await?;
        let phase_text = render::render_phase(&plan.phases[index], index + 1, phases.len());
        (ctx.show)(&phase_text);
        match pass_gate(ctx, phase, auto_approve.as_deref())? {
            GateResult::Pass => {}
            GateResult::Paused { approvals, needed } => {
                ctx.journal.append(&Event::Paused {
                    at: now_millis(),
                    phase: phase.name.clone(),
                })?;
                return Ok(RunEnd::Paused {
                    phase: phase.name.clone(),
                    approvals,
                    needed,
                });
            }
            GateResult::Rejected { by } => {
                ctx.journal.append(&Event::RunFinished {
                    at: now_millis(),
                    status: RunStatus::Rejected,
                })?;
                return Ok(RunEnd::Rejected {
                    phase: phase.name.clone(),
                    by,
                });
            }
        }
        let changes = plan.phases[index]
            .changes
            .iter()
            .filter(|c| c.action != plan::Action::NoOp)
            .count();
        ctx.journal.append(&Event::PhasePlanned {
            at: now_millis(),
            phase: phase.name.clone(),
            summary: plan::render::summary_line(&plan),
            changes,
        })?;
        ctx.journal.append(&Event::PhaseStarted {
            at: now_millis(),
            phase: phase.name.clone(),
        })?;
        let report = execute::apply_phase(
            provider,
            ctx.project,
            ctx.runbook,
            &plan,
            index,
            &mut execute::Applied::observed_before(&plan, index),
            &ctx.options,
            ctx.cancel,
            &|event| journaled(ctx, event),
        )
        .await;
        let failed = report.failures().count();
        ctx.journal.append(&Event::PhaseFinished {
            at: now_millis(),
            phase: phase.name.clone(),
            failed,
        })?;
        total.outcomes.extend(report.outcomes);
        total.elapsed += report.elapsed;
        if ctx.cancel.load(Ordering::SeqCst) {
            ctx.journal
                .append(&Event::Interrupted { at: now_millis() })?;
            return Ok(RunEnd::Interrupted(total));
        }
        if failed > 0 {
            ctx.journal.append(&Event::RunFinished {
                at: now_millis(),
                status: RunStatus::Failed,
            })?;
            return Ok(RunEnd::Failed(total));
        }
    }
    // Cleanup, re-planned: old copies and removed resources, dependents first.
    let plan = replan(provider, ctx).await?;
    if !plan.cleanup.is_empty() {
        let report = execute::cleanup(provider, &plan, ctx.options.parallelism, &|e| {
            journaled(ctx, e)
        })
        .await;
        total.outcomes.extend(report.outcomes);
        total.elapsed += report.elapsed;
    }
    let status = if total.succeeded() {
        RunStatus::Succeeded
    } else {
        RunStatus::Failed
    };
    ctx.journal.append(&Event::RunFinished {
        at: now_millis(),
        status,
    })?;
    Ok(if total.succeeded() {
        RunEnd::Succeeded(total)
    } else {
        RunEnd::Failed(total)
    })
}

async fn replan<P: Provider>(provider: &P, ctx: &RunContext<'_>) -> Result<Plan, Error> {
    let observed = provider.discover(&ctx.runbook.environment).await?;
    Ok(plan::plan(
        ctx.project,
        ctx.runbook,
        &observed,
        String::new(),
    ))
}

/// Writes intents before their calls and outcomes after, then reports progress.
fn journaled(ctx: &RunContext<'_>, event: Progress<'_>) {
    let entry = match &event {
        Progress::Started { address, action } => Some(Event::Intent {
            at: now_millis(),
            address: (*address).clone(),
            action: *action,
        }),
        Progress::Finished(outcome) => match &outcome.result {
            OutcomeKind::Done(id) => Some(Event::Outcome {
                at: now_millis(),
                address: outcome.address.clone(),
                action: outcome.action,
                ok: true,
                id: id.clone(),
                error: None,
            }),
            OutcomeKind::Failed(e) => Some(Event::Outcome {
                at: now_millis(),
                address: outcome.address.clone(),
                action: outcome.action,
                ok: false,
                id: String::new(),
                error: Some(e.clone()),
            }),
            OutcomeKind::Skipped { .. } | OutcomeKind::NotStarted => None,
        },
        _ => None,
    };
    if let Some(entry) = entry {
        if let Err(e) = ctx.journal.append(&entry) {
            // Losing the journal loses resumability: stop starting new work.
            tracing::error!("{}", e.render());
            ctx.cancel.store(true, Ordering::SeqCst);
        }
    }
    (ctx.progress)(event);
}

enum GateResult {
    Pass,
    Paused { approvals: usize, needed: u32 },
    Rejected { by: String },
}

pub fn gate_spec(gate: &ManualGate) -> GateSpec {
    GateSpec {
        approvals: gate.approvals,
        approvers: gate.approvers.clone(),
        timeout_secs: gate.timeout.map(|t| t.as_secs()),
        reject_on_timeout: gate.on_timeout == OnTimeout::Reject,
    }
}

fn pass_gate(
    ctx: &RunContext<'_>,
    phase: &PhaseSpec,
    auto_approve: Option<&str>,
) -> Result<GateResult, Error> {
    let journal = ctx.journal;
    let manual = match &phase.gate {
        Gate::Auto => {
            record(
                journal,
                &phase.name,
                Decision::Auto,
                "policy",
                Some("auto gate".into()),
                0,
            )?;
            return Ok(GateResult::Pass);
        }
        Gate::Manual(m) => m,
    };
    let spec = gate_spec(manual);
    let mut state = run_state(&journal.events()?);
    if state.waiting.as_ref().map(|w| &w.phase) != Some(&phase.name) {
        journal.append(&Event::GateWaiting {
            at: now_millis(),
            phase: phase.name.clone(),
            gate: spec.clone(),
        })?;
        state = run_state(&journal.events()?);
    }
    let waiting = state.waiting.expect("just recorded");
    let waited = now_millis() - waiting.since;
    if let Some(reason) = auto_approve {
        record(
            journal,
            &phase.name,
            Decision::Auto,
            &current_user(),
            Some(reason.to_string()),
            waited,
        )?;
        return Ok(GateResult::Pass);
    }
    if let Some(end) = check_timeout(journal, &phase.name, &spec, waiting.since)? {
        return Ok(end);
    }
    let mut approved = waiting.approved_by;
    loop {
        if approved.len() >= spec.approvals as usize {
            return Ok(GateResult::Pass);
        }
        let Some(ask) = ctx.ask else {
            return Ok(GateResult::Paused {
                approvals: approved.len(),
                needed: spec.approvals,
            });
        };
        let user = current_user();
        let may_approve = (spec.approvers.is_empty() || spec.approvers.contains(&user))
            && !approved.contains(&user);
        if !may_approve {
            return Ok(GateResult::Paused {
                approvals: approved.len(),
                needed: spec.approvals,
            });
        }
        let waited = now_millis() - waiting.since;
        match ask(&phase.name, &spec, &approved) {
            Answer::Approve => {
                record(journal, &phase.name, Decision::Approve, &user, None, waited)?;
                approved.push(user);
            }
            Answer::Reject => {
                record(journal, &phase.name, Decision::Reject, &user, None, waited)?;
                return Ok(GateResult::Rejected { by: user });
            }
            Answer::Defer => {
                return Ok(GateResult::Paused {
                    approvals: approved.len(),
                    needed: spec.approvals,
                })
            }
        }
    }
}

/// Rejects the run when the gate's timeout ran out and it says so.
fn check_timeout(
    journal: &Journal,
    phase: &str,
    spec: &GateSpec,
    since: i64,
) -> Result<Option<GateResult>, Error> {
    let Some(limit) = spec.timeout_secs else {
        return Ok(None);
    };
    let waited = now_millis() - since;
    if spec.reject_on_timeout && waited >= limit as i64 * 1000 {
        record(
            journal,
            phase,
            Decision::Timeout,
            "policy",
            Some(format!("no approval within {}s", limit)),
            waited,
        )?;
        return Ok(Some(GateResult::Rejected {
            by: "timeout".into(),
        }));
    }
    Ok(None)
}

fn record(
    journal: &Journal,
    phase: &str,
    decision: Decision,
    by: &str,
    reason: Option<String>,
    waited_ms: i64,
) -> Result<(), Error> {
    journal.append(&Event::GateDecision {
        at: now_millis(),
        phase: phase.to_string(),
        decision,
        by: by.to_string(),
        reason,
        waited_ms,
    })
}

/// `drctl approve`: one person's approval of the gate a run waits at.
pub fn approve(
    journal: &Journal,
    gate: Option<&str>,
    by: &str,
    reason: Option<String>,
) -> Result<(usize, u32), Error> {
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
    if let Some(GateResult::Rejected { .. }) =
        check_timeout(journal, &waiting.phase, &waiting.gate, waiting.since)?
    {
        journal.append(&Event::RunFinished {
            at: now_millis(),
            status: RunStatus::Rejected,
        })?;
        return Err(Error::usage(
            format!(
                "the gate before phase `{}` timed out; the run is rejected",
                waiting.phase
            ),
            Some("start a new run with `drctl apply`".into()),
        ));
    }
    record(
        journal,
        &waiting.phase,
        Decision::Approve,
        by,
        reason,
        now_millis() - waiting.since,
    )?;
    Ok((waiting.approved_by.len() + 1, waiting.gate.approvals))
}

/// `drctl reject`: ends the run at its gate.
pub fn reject(journal: &Journal, by: &str, reason: Option<String>) -> Result<String, Error> {
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
    let since = state.waiting.as_ref().map_or(now_millis(), |w| w.since);
    record(
        journal,
        &phase,
        Decision::Reject,
        by,
        reason,
        now_millis() - since,
    )?;
    journal.append(&Event::RunFinished {
        at: now_millis(),
        status: RunStatus::Rejected,
    })?;
    Ok(phase)
}
