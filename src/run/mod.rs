//! A run: phases in order, each re-planned with the real values of the
//! phases before it, shown, passed through its gate and executed; then the
//! approved cleanup. Everything lands in the run's journal first, so a run
//! stopped anywhere (gate, Ctrl-C, kill -9) continues with `resume`.
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
use crate::execute::{self, ApplyOptions, Event as Progress, OutcomeKind, Report};
use crate::graph::{runbook_phases, PhaseSpec};
use crate::journal::{run_state, Event, Journal, RunStatus};
use crate::model::{Gate, Project, Runbook};
use crate::plan::{self, Plan};
use crate::world::Snapshot;

mod gates;

pub use gates::{approve, gate_spec, reject, reject_if_overdue};
use gates::{pass_gate, GateResult};

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
/// really produced, through its gate (or its canary's), then applied.
async fn phase_pass<P: Provider>(
    provider: &P,
    ctx: &RunContext<'_>,
    phases: &[PhaseSpec],
    index: usize,
    approved: &Approved,
) -> Result<Pass, Error> {
    let phase = &phases[index];
    let events = ctx.journal.events()?;
    if run_state(&events).finished_phases.contains(&phase.name) {
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
    let plan_hash = plan::phase_hash(&plan::redacted_phase(phase_plan));
    ctx.sink.event(&Shown::PhasePlanned {
        number: index + 1,
        total: phases.len(),
        phase: Box::new(plan::redacted_phase(phase_plan)),
        plan_hash: plan_hash.clone(),
    });
    let summary = phase_plan.summary().to_string();
    let opening = match pass_gate(
        ctx,
        &gate,
        (&plan_hash, &summary),
        approved.gates.as_deref(),
    )? {
        GateResult::Pass(opening) => opening,
        GateResult::Paused { approvals, needed } => {
            ctx.journal.append(&Event::Paused {
                at: ctx.now(),
                phase: gate.name.clone(),
            })?;
            return Ok(Pass::Ended(RunEnd::Paused {
                phase: gate.name,
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
                phase: gate.name,
                by,
            }));
        }
        // Its end is in the journal already, written by whoever rejected.
        GateResult::RejectedElsewhere { by } => {
            return Ok(Pass::Ended(RunEnd::Rejected {
                phase: gate.name,
                by,
            }));
        }
    };
    let mut applied = execute::Applied::observed_before(&plan, index);
    let report = journaled_phase(provider, ctx, &plan, index, &mut applied, opening).await?;
    Ok(Pass::Ran(report))
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
    let journaled = Journaled { ctx };
    Ok(
        execute::cleanup(provider, &approved, ctx.options.parallelism, &|e| {
            journaled.batch(e)
        })
        .await,
    )
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

/// Applies phase `index` of `plan`, its start and end journaled around it;
/// `opening` (what its gate decided) is written with its start, in one
/// append that must succeed before anything of the phase runs.
pub(crate) async fn journaled_phase<P: Provider>(
    provider: &P,
    ctx: &RunContext<'_>,
    plan: &Plan,
    index: usize,
    applied: &mut execute::Applied,
    mut opening: Opening,
) -> Result<Report, Error> {
    let phase = &plan.phases[index];
    let summary = phase.summary();
    opening.records.push(Event::PhasePlanned {
        at: ctx.now(),
        phase: phase.name.clone(),
        summary: summary.to_string(),
        changes: summary.total(),
    });
    opening.records.push(Event::PhaseStarted {
        at: ctx.now(),
        phase: phase.name.clone(),
    });
    ctx.journal.append_all(&opening.records)?;
    opening.shown.iter().for_each(|s| ctx.sink.event(s));
    let journaled = Journaled { ctx };
    let report = execute::apply_phase(
        provider,
        plan,
        index,
        applied,
        &ctx.options,
        ctx.cancel,
        &|events| journaled.batch(events),
    )
    .await;
    ctx.journal.append(&Event::PhaseFinished {
        at: ctx.now(),
        phase: phase.name.clone(),
        failed: report.failures().count(),
        hold: phase.canary_gates.after.as_ref().map(ToString::to_string),
    })?;
    Ok(report)
}

/// What a phase's gate leaves to write with the phase's start: the
/// decisions of a policy (an `auto` gate, `--auto-approve`, a drill's),
/// which nothing acts on before the phase runs, and what the sink is shown
/// once they are durable.
#[derive(Default)]
pub(crate) struct Opening {
    records: Vec<Event>,
    shown: Vec<Shown>,
}

/// The journal's side of the executor's progress: each batch (a step's
/// outcome and the intents of the steps it let start) is one append, made
/// before the calls it announces; the sink sees the batch after.
struct Journaled<'a, 'c> {
    ctx: &'a RunContext<'c>,
}

impl Journaled<'_, '_> {
    /// Whether the batch is in the journal: the calls it announces are
    /// made only if it is.
    fn batch(&self, events: &[Progress]) -> bool {
        let ctx = self.ctx;
        let records: Vec<Event> = events.iter().filter_map(|e| record_of(ctx, e)).collect();
        let recorded = match ctx.journal.append_all(&records) {
            Ok(()) => true,
            Err(e) => {
                // Losing the journal loses resumability: stop starting new work.
                tracing::error!("{}", e.render());
                ctx.cancel.cancel();
                false
            }
        };
        for event in events {
            ctx.sink.event(&Shown::Step(event.clone()));
        }
        recorded
    }
}

/// The journal's record of an executor event: intents before their calls,
/// outcomes after; nothing for the rest.
fn record_of(ctx: &RunContext<'_>, event: &Progress) -> Option<Event> {
    match event {
        Progress::Started {
            address,
            action,
            depends_on,
        } => Some(Event::Intent {
            at: ctx.now(),
            address: address.clone(),
            action: *action,
            depends_on: depends_on.clone(),
        }),
        Progress::Finished(outcome) => match &outcome.result {
            OutcomeKind::Done(id) => Some(Event::Outcome {
                at: ctx.now(),
                address: outcome.address.clone(),
                action: outcome.action,
                ok: true,
                id: id.clone(),
                error: None,
            }),
            OutcomeKind::Failed(e) => Some(Event::Outcome {
                at: ctx.now(),
                address: outcome.address.clone(),
                action: outcome.action,
                ok: false,
                id: String::new(),
                error: Some(e.clone()),
            }),
            OutcomeKind::Skipped { .. } | OutcomeKind::NotStarted => None,
        },
        _ => None,
    }
}
