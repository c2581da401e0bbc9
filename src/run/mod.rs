//! A run: phases in order, each re-planned with the real values of the
//! phases before it, shown, passed through its gate and executed; then the
//! approved cleanup. Everything lands in the run's journal first, so a run
//! stopped anywhere (gate, Ctrl-C, kill -9) continues with `resume`.
//!
//! When nobody waits at a gate (an `auto` gate, `--auto-approve`, a drill's
//! policy), the phases from there on are planned and run as one graph
//! ([`execute::apply_phases`]): a step starts once the steps it reads are
//! done, so a load balancer provisions beside a bake in an earlier phase.
//! A phase with `barrier = true`, a gate that waits on a person and a
//! canary's weights keep strict order ([`pipelined_until`]).
//!
//! Waiting is a value here: a manual gate without its approvals returns
//! [`RunEnd::Paused`]; the caller decides to prompt, print or exit. An
//! approval is for the plan that was shown: a re-plan that differs (files
//! edited during a pause, the world changed) is shown again and waits for
//! new approvals, so nothing runs that nobody approved. Gates, approvals and
//! rejections are in [`gates`].

use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::cloud::provider::Provider;
use crate::error::Error;
use crate::events::{Event as Shown, Sink};
use crate::execute::{self, ApplyOptions, OutcomeKind, Report};
use crate::graph::{runbook_phases, PhaseSpec};
use crate::journal::{run_state, Event, Journal, RunStatus};
use crate::model::{Gate, Project, Runbook};
use crate::plan::{self, Plan};
use crate::world::Snapshot;

mod gates;
mod journaled;

pub use gates::{approve, gate_spec, reject, reject_if_overdue};
use gates::{pass_gate, GateResult};
pub(crate) use journaled::{journaled_phase, Opening};
use journaled::{journaled_phases, Journaled};

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

/// What a run needs besides the cloud.
pub struct RunContext<'a> {
    pub project: &'a Project,
    pub runbook: &'a Runbook,
    pub journal: &'a Journal,
    pub options: ApplyOptions,
    /// Set by the first Ctrl-C: nothing new starts.
    pub cancel: &'a CancellationToken,
    pub clock: &'a dyn Clock,
    /// Where the run reports, and asks at manual gates.
    pub sink: &'a dyn Sink,
    /// The caller checks the environment after a successful end and
    /// journals the run's finish itself: until then the run is not done,
    /// so a kill during the checks leaves it to `resume`.
    pub checks_follow: bool,
}

impl RunContext<'_> {
    fn now(&self) -> i64 {
        self.clock.now()
    }

    fn recorder(&self) -> Recorder<'_> {
        Recorder {
            journal: self.journal,
            clock: self.clock,
            sink: self.sink,
        }
    }
}

/// Where gate decisions go: the journal first, then the sink.
pub struct Recorder<'a> {
    pub journal: &'a Journal,
    pub clock: &'a dyn Clock,
    pub sink: &'a dyn Sink,
}

/// Observes the environment once (the injected clock stamps the snapshot).
pub async fn observe<P: Provider>(
    provider: &P,
    environment: &str,
    clock: &dyn Clock,
) -> Result<Snapshot, Error> {
    let observed = provider.discover(environment).await?;
    Ok(Snapshot::new(clock.now(), observed))
}

/// Observes the runbook's environment and what its plan looks up besides
/// (images by recipe, base images), at once.
pub async fn observe_for<P: Provider>(
    provider: &P,
    project: &Project,
    runbook: &Runbook,
    clock: &dyn Clock,
) -> Result<Snapshot, Error> {
    let request = crate::planner::lookups_needed(project, runbook);
    let (observed, lookups) = tokio::try_join!(
        provider.discover(&runbook.environment),
        provider.look_up(&request)
    )?;
    Ok(Snapshot::new(clock.now(), observed).with_lookups(lookups))
}

/// Runs (or continues) the journaled run to its end or its next pause.
pub async fn drive<P: Provider>(provider: &P, ctx: &RunContext<'_>) -> Result<RunEnd, Error> {
    let phases = runbook_phases(ctx.project, ctx.runbook);
    let approved = Approved::at_start(ctx)?;
    let mut total = Report::default();
    for (index, phase) in phases.iter().enumerate() {
        // A phase runs again behind a canary gate while a canary it cuts
        // over stops short of 100%: each pass moves it to a higher weight
        // (of at most 100), or fails.
        for pass in 0.. {
            if pass > 100 {
                return Err(Error::Cloud(crate::cloud::CloudError::Failed {
                    what: format!("phase {}", phase.name),
                    state: "stuck".into(),
                    reason: "its canary went round 100 times without reaching 100%".into(),
                }));
            }
            let ran = match phase_pass(provider, ctx, &phases, index, &approved).await? {
                Pass::PhaseDone => break,
                Pass::Ended(end) => return Ok(end),
                Pass::Ran(report) => report,
            };
            total.outcomes.extend(ran.outcomes);
            total.elapsed += ran.elapsed;
            total = match stopped_after_phase(ctx, total)? {
                Ok(go_on) => go_on,
                Err(end) => return Ok(end),
            };
        }
    }
    total
        .outcomes
        .extend(settle_background(provider, ctx).await?);
    total = match stopped_after_phase(ctx, total)? {
        Ok(go_on) => go_on,
        Err(end) => return Ok(end),
    };
    let cleaned = clean_up(provider, ctx, &approved).await?;
    total.outcomes.extend(cleaned.outcomes);
    total.elapsed += cleaned.elapsed;
    if !(total.succeeded() && ctx.checks_follow) {
        let status = if total.succeeded() {
            RunStatus::Succeeded
        } else {
            RunStatus::Failed
        };
        ctx.journal.append(&Event::RunFinished {
            at: ctx.now(),
            status,
        })?;
    }
    Ok(if total.succeeded() {
        RunEnd::Succeeded(total)
    } else {
        RunEnd::Failed(total)
    })
}

/// What the run's start settled beyond its plan.
#[derive(Default)]
struct Approved {
    /// Why every gate passes by itself (`--auto-approve`, a drill's policy).
    gates: Option<String>,
    /// The clean-up (old copies, removed resources) approved with the plan.
    cleanup: Vec<(crate::world::Address, String)>,
}

impl Approved {
    fn at_start(ctx: &RunContext<'_>) -> Result<Approved, Error> {
        Ok(ctx
            .journal
            .events()?
            .iter()
            .find_map(|e| match e {
                Event::RunStarted {
                    auto_approve,
                    approved_cleanup,
                    ..
                } => Some(Approved {
                    gates: auto_approve.clone(),
                    cleanup: approved_cleanup.clone(),
                }),
                _ => None,
            })
            .unwrap_or_default())
    }
}

/// How one pass over a phase ended.
enum Pass {
    /// The journal says the phase is finished: on to the next.
    PhaseDone,
    /// Paused or rejected at its gate.
    Ended(RunEnd),
    /// Its steps ran (a canary phase may need another pass).
    Ran(Report),
}

/// One pass over phase `index`: re-planned with what the earlier phases
/// really produced, through its gate (or its canary's), then applied with
/// the phases that pipeline after it ([`pipelined_until`]).
async fn phase_pass<P: Provider>(
    provider: &P,
    ctx: &RunContext<'_>,
    phases: &[PhaseSpec],
    index: usize,
    approved: &Approved,
) -> Result<Pass, Error> {
    let phase = &phases[index];
    let events = ctx.journal.events()?;
    let finished = run_state(&events).finished_phases;
    if finished.contains(&phase.name) {
        return Ok(Pass::PhaseDone);
    }
    let plan = replan(provider, ctx).await?;
    let phase_plan = &plan.phases[index];
    // A canary gate only once this run has passed the phase's own: a
    // canary left under way by another run is not approved by it.
    let started = events
        .iter()
        .any(|e| matches!(e, Event::PhaseStarted { phase: p, .. } if p == &phase.name));
    let gate = match &phase_plan.canary_gates.before {
        Some(gate) if started => PhaseSpec {
            name: gate.to_string(),
            gate: crate::graph::canary_gate(ctx.project, phase),
            ..phase.clone()
        },
        // Another run's canary: the phase's gate, manual if either is.
        Some(_) if phase.gate == Gate::Auto => PhaseSpec {
            gate: crate::graph::canary_gate(ctx.project, phase),
            ..phase.clone()
        },
        _ => phase.clone(),
    };
    let segment = index..pipelined_until(phases, index, approved, &plan, &finished);
    let mut opening = Opening::default();
    for k in segment.clone() {
        let gate = if k == index { &gate } else { &phases[k] };
        match pass_phase_gate(ctx, gate, &plan, k, approved)? {
            GateResult::Pass(passed) => opening.append(passed),
            GateResult::Paused { approvals, needed } => {
                ctx.journal.append(&Event::Paused {
                    at: ctx.now(),
                    phase: gate.name.clone(),
                })?;
                return Ok(Pass::Ended(RunEnd::Paused {
                    phase: gate.name.clone(),
                    approvals,
                    needed,
                }));
            }
            GateResult::Rejected { by } => {
                ctx.journal.append(&Event::RunFinished {
                    at: ctx.now(),
                    status: RunStatus::Rejected,
                })?;
                return Ok(Pass::Ended(RunEnd::Rejected {
                    phase: gate.name.clone(),
                    by,
                }));
            }
            // Its end is in the journal already, written by whoever rejected.
            GateResult::RejectedElsewhere { by } => {
                return Ok(Pass::Ended(RunEnd::Rejected {
                    phase: gate.name.clone(),
                    by,
                }));
            }
        }
    }
    let mut applied = execute::Applied::observed_before(&plan, index);
    let report = journaled_phases(provider, ctx, &plan, segment, &mut applied, opening).await?;
    Ok(Pass::Ran(report))
}

/// Phase `k`'s plan shown, then its gate (`gate`: the phase's own or its
/// canary's) passed or not.
fn pass_phase_gate(
    ctx: &RunContext<'_>,
    gate: &PhaseSpec,
    plan: &Plan,
    k: usize,
    approved: &Approved,
) -> Result<GateResult, Error> {
    let phase_plan = &plan.phases[k];
    let plan_hash = plan::phase_hash(&plan::redacted_phase(phase_plan));
    ctx.sink.event(&Shown::PhasePlanned {
        number: k + 1,
        total: plan.phases.len(),
        phase: Box::new(plan::redacted_phase(phase_plan)),
        plan_hash: plan_hash.clone(),
    });
    let summary = phase_plan.summary().to_string();
    pass_gate(ctx, gate, (&plan_hash, &summary), approved.gates.as_deref())
}

/// Where the run of phases from `index` on stops pipelining (exclusive):
/// phases run as one graph while nobody waits at their gates (an `auto`
/// gate, or every gate passing by policy) and none keeps strict order
/// (`barrier = true`), runs a canary (each weight is a pass of its own)
/// or was finished already (by an earlier, interrupted run).
fn pipelined_until(
    phases: &[PhaseSpec],
    index: usize,
    approved: &Approved,
    plan: &Plan,
    finished: &[String],
) -> usize {
    let canary = |k: usize| {
        let gates = &plan.phases[k].canary_gates;
        gates.before.is_some() || gates.after.is_some()
    };
    let joins = |k: usize| {
        let phase = &phases[k];
        !phase.barrier
            && (phase.gate == Gate::Auto || approved.gates.is_some())
            && !canary(k)
            && !finished.contains(&phase.name)
    };
    if phases[index].barrier || canary(index) {
        return index + 1;
    }
    (index + 1..phases.len())
        .find(|&k| !joins(k))
        .unwrap_or(phases.len())
}

/// Clean-up, re-planned: old copies and removed resources, dependents
/// first; only what was approved with the run's plan, or duplicates this
/// run made. The rest is shown, not deleted.
async fn clean_up<P: Provider>(
    provider: &P,
    ctx: &RunContext<'_>,
    approved: &Approved,
) -> Result<Report, Error> {
    let plan = replan(provider, ctx).await?;
    let (approved, unapproved): (Vec<_>, Vec<_>) = plan.cleanup.iter().cloned().partition(|c| {
        let current = c.current.as_ref().expect("a deletion has a current object");
        approved
            .cleanup
            .contains(&(c.address.clone(), current.id.clone()))
            || current.run_id() == Some(ctx.journal.run_id.as_str())
    });
    for change in &unapproved {
        let id = change
            .current
            .as_ref()
            .map(|o| o.id.clone())
            .unwrap_or_default();
        ctx.sink.event(&Shown::CleanupNotApproved {
            address: change.address.clone(),
            id,
        });
    }
    if approved.is_empty() {
        return Ok(Report::default());
    }
    let journaled = Journaled { ctx, phases: None };
    Ok(
        execute::cleanup(provider, &approved, ctx.options.parallelism, &|e| {
            journaled.batch(e)
        })
        .await,
    )
}

/// What steps left to finish on their own (a builder shutting down),
/// checked once every phase is done: each that did not finish fails the
/// step that started it, in the journal too.
async fn settle_background<P: Provider>(
    provider: &P,
    ctx: &RunContext<'_>,
) -> Result<Vec<execute::Outcome>, Error> {
    let mut failed = Vec::new();
    for (address, e) in provider.settle_background().await {
        let error = format!("{e} (left behind after the step)");
        ctx.journal.append(&Event::Outcome {
            at: ctx.now(),
            address: address.clone(),
            action: crate::plan::Action::Create,
            ok: false,
            id: String::new(),
            error: Some(error.clone()),
        })?;
        failed.push(execute::Outcome {
            address,
            action: crate::plan::Action::Create,
            result: OutcomeKind::Failed(error),
            elapsed: std::time::Duration::ZERO,
        });
    }
    Ok(failed)
}

async fn replan<P: Provider>(provider: &P, ctx: &RunContext<'_>) -> Result<Plan, Error> {
    let snapshot = observe_for(provider, ctx.project, ctx.runbook, ctx.clock).await?;
    Ok(crate::planner::plan(
        ctx.project,
        ctx.runbook,
        &snapshot,
        String::new(),
    ))
}

/// After a phase: the run's end if it was stopped (Ctrl-C) or a step failed
/// (journaled), else the report to go on with.
pub(crate) fn stopped_after_phase(
    ctx: &RunContext<'_>,
    total: Report,
) -> Result<Result<Report, RunEnd>, Error> {
    if ctx.cancel.is_cancelled() {
        ctx.journal.append(&Event::Interrupted { at: ctx.now() })?;
        return Ok(Err(RunEnd::Interrupted(total)));
    }
    if !total.succeeded() {
        ctx.journal.append(&Event::RunFinished {
            at: ctx.now(),
            status: RunStatus::Failed,
        })?;
        return Ok(Err(RunEnd::Failed(total)));
    }
    Ok(Ok(total))
}
