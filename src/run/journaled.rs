//! The journal's side of a run: phases started with what their gates
//! decided, and the executor's progress written batch by batch, each
//! before the calls it announces.

use super::RunContext;
use crate::cloud::provider::Provider;
use crate::error::Error;
use crate::events::Event as Shown;
use crate::execute::{self, Event as Progress, OutcomeKind, Report};
use crate::journal::Event;
use crate::plan::Plan;

/// Applies phase `index` of `plan`, its start and end journaled around it;
/// `opening` (what its gate decided) is written with its start, in one
/// append that must succeed before anything of the phase runs.
pub(crate) async fn journaled_phase<P: Provider>(
    provider: &P,
    ctx: &RunContext<'_>,
    plan: &Plan,
    index: usize,
    applied: &mut execute::Applied,
    opening: Opening,
) -> Result<Report, Error> {
    let phases = index..index + 1;
    journaled_phases(provider, ctx, plan, phases, applied, opening).await
}

/// Applies `phases` of `plan` as one graph ([`execute::apply_phases`]).
/// `opening` (what their gates decided), each phase's plan and the first
/// one's start are written in one append that must succeed before anything
/// runs; the later phases' starts and every phase's end are journaled as
/// the executor reports them.
pub(super) async fn journaled_phases<P: Provider>(
    provider: &P,
    ctx: &RunContext<'_>,
    plan: &Plan,
    phases: std::ops::Range<usize>,
    applied: &mut execute::Applied,
    mut opening: Opening,
) -> Result<Report, Error> {
    for phase in &plan.phases[phases.clone()] {
        let summary = phase.summary();
        opening.records.push(Event::PhasePlanned {
            at: ctx.now(),
            phase: phase.name.clone(),
            summary: summary.to_string(),
            changes: summary.total(),
        });
    }
    opening.records.push(Event::PhaseStarted {
        at: ctx.now(),
        phase: plan.phases[phases.start].name.clone(),
    });
    ctx.journal.append_all(&opening.records)?;
    opening.shown.iter().for_each(|s| ctx.sink.event(s));
    let journaled = Journaled {
        ctx,
        phases: Some((plan, phases.start)),
    };
    let report = execute::apply_phases(
        provider,
        plan,
        phases,
        applied,
        &ctx.options,
        ctx.cancel,
        &|events| journaled.batch(events),
    )
    .await;
    Ok(report)
}

/// What a phase's gate leaves to write with the phase's start: the
/// decisions of a policy (an `auto` gate, `--auto-approve`, a drill's),
/// which nothing acts on before the phase runs, and what the sink is shown
/// once they are durable.
#[derive(Default)]
pub(crate) struct Opening {
    pub(super) records: Vec<Event>,
    pub(super) shown: Vec<Shown>,
}

impl Opening {
    /// Another phase's, written in the same append.
    pub(super) fn append(&mut self, other: Opening) {
        self.records.extend(other.records);
        self.shown.extend(other.shown);
    }
}

/// The journal's side of the executor's progress: each batch (a step's
/// outcome and the intents of the steps it let start) is one append, made
/// before the calls it announces; the sink sees the batch after.
pub(super) struct Journaled<'a, 'c> {
    pub(super) ctx: &'a RunContext<'c>,
    /// The plan whose phases run, and the first of them (whose start was
    /// journaled with its gate's decision); none for a clean-up.
    pub(super) phases: Option<(&'a Plan, usize)>,
}

impl Journaled<'_, '_> {
    /// Whether the batch is in the journal: the calls it announces are
    /// made only if it is.
    pub(super) fn batch(&self, events: &[Progress]) -> bool {
        let ctx = self.ctx;
        let records: Vec<Event> = events
            .iter()
            .filter_map(|e| record_of(ctx, self.phases, e))
            .collect();
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
fn record_of(
    ctx: &RunContext<'_>,
    phases: Option<(&Plan, usize)>,
    event: &Progress,
) -> Option<Event> {
    match event {
        // The first phase's start went with its gate's decision.
        Progress::PhaseStarted { name, number, .. } => match phases {
            Some((_, first)) if number - 1 != first => Some(Event::PhaseStarted {
                at: ctx.now(),
                phase: name.clone(),
            }),
            _ => None,
        },
        Progress::PhaseFinished {
            name,
            number,
            failed,
        } => Some(Event::PhaseFinished {
            at: ctx.now(),
            phase: name.clone(),
            failed: *failed,
            hold: phases.and_then(|(plan, _)| {
                let gates = &plan.phases[number - 1].canary_gates;
                gates.after.as_ref().map(ToString::to_string)
            }),
        }),
        Progress::Started {
            address,
            action,
            depends_on,
            phase,
        } => Some(Event::Intent {
            at: ctx.now(),
            address: address.clone(),
            action: *action,
            depends_on: depends_on.clone(),
            phase: phase.clone(),
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
