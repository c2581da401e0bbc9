//! The executor: runs a [`Plan`] phase by phase through a [`Provider`].
//!
//! Within a phase, every resource starts as soon as the resources it reads
//! are done, at most `parallelism` at a time; a failure skips its dependents
//! and lets independent branches finish. Values only known after an earlier
//! step (ids, ARNs) are resolved just before each call, from what the
//! provider returned.
//!
//! Progress goes to the caller in batches: what happened at one point of
//! the loop (a step's outcome, and the steps that it let start) is one
//! batch, handed over before any call it announces is made. The run's
//! journal writes a batch as one record, so on S3 a step costs one request
//! rather than one per event, and an intent is still durable before its
//! call: the steps a batch announces start only once it was recorded, and
//! end "not started" when it could not be.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};

use tokio_util::sync::CancellationToken;

use crate::cloud::provider::Provider;
use crate::cloud::wait;
use crate::plan::{Action, Change, Plan};
use crate::world::{Address, Attrs, ObservedResource};
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::mpsc;

mod delete;
mod late;
mod phases;
mod step;

use late::{may_start, LateBoard};
use phases::PhaseBook;
use step::{execute, prepare, render_cloud_error};

pub use delete::{cleanup, delete_in_order, destroy};

#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Most resource operations in flight at once.
    pub parallelism: usize,
    /// Recorded in every created resource's `drctl:run` tag.
    pub run_id: String,
    /// A drill's: `drctl:drill` and `drctl:expires` on everything it creates.
    pub lifetime: Option<crate::types::tags::Lifetime>,
}

/// What the executor reports while it works.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    PhaseStarted {
        name: String,
        number: usize,
        total: usize,
    },
    Started {
        address: Address,
        action: Action,
        /// The steps this one waited for (the critical path is computed
        /// from these).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        depends_on: Vec<Address>,
        /// The phase it belongs to; none for deletions.
        #[serde(skip_serializing_if = "Option::is_none")]
        phase: Option<String>,
    },
    Finished(Outcome),
    /// Every step of the phase has its outcome. Phases run together
    /// ([`apply_phases`]) finish in the order their steps do.
    PhaseFinished {
        name: String,
        number: usize,
        /// Steps that did not get done (failed, skipped, not started).
        failed: usize,
    },
    CleanupStarted {
        count: usize,
    },
    CleanupSkipped {
        failed: usize,
    },
    /// A step is waiting on something named (a load balancer becoming
    /// active, instances running); the adapter polls until the deadline.
    Waiting {
        address: Address,
        on: String,
        state: String,
        deadline_in: Duration,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub address: Address,
    pub action: Action,
    pub result: OutcomeKind,
    pub elapsed: Duration,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// Done; the resource's id (empty for deletions).
    Done(String),
    Failed(String),
    /// Not attempted because a resource it reads failed or was skipped.
    Skipped {
        because: Address,
    },
    /// Not started because the run was interrupted (Ctrl-C).
    NotStarted,
}

/// Everything that happened in one apply or destroy.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub outcomes: Vec<Outcome>,
    pub elapsed: Duration,
}

impl Report {
    pub fn failures(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes
            .iter()
            .filter(|o| !matches!(o.result, OutcomeKind::Done(_)))
    }

    pub fn succeeded(&self) -> bool {
        self.failures().next().is_none()
    }

    pub fn count(&self, action: Action) -> usize {
        self.outcomes
            .iter()
            .filter(|o| o.action == action && matches!(o.result, OutcomeKind::Done(_)))
            .count()
    }
}

/// What earlier phases produced: exports dependents read, and what failed.
#[derive(Debug, Default)]
pub struct Applied {
    /// Exports of every resource done (or found unchanged) so far.
    pub exports: BTreeMap<Address, Attrs>,
    /// Addresses that did not get applied, and the failed one upstream.
    pub broken: BTreeMap<Address, Address>,
}

impl Applied {
    /// For a plan made after its first `index` phases were applied: their
    /// resources exist, and the plan observed their exports.
    pub fn observed_before(plan: &Plan, index: usize) -> Applied {
        let exports = plan.phases[..index]
            .iter()
            .flat_map(|p| &p.changes)
            .filter_map(|c| {
                let current = c.current.as_ref()?;
                Some((c.address.clone(), current.exports.clone()))
            })
            .collect();
        Applied {
            exports,
            broken: BTreeMap::new(),
        }
    }
}

/// Where the executor's progress goes: a batch of events at a time (see
/// the module's doc), answering whether it recorded them. The calls a
/// batch's `Started` events announce begin only once it returns `true`.
pub type Progress<'a> = &'a dyn Fn(&[Event]) -> bool;

/// Applies phase `index` of `plan`; `applied` carries what earlier phases
/// produced and receives what this one does. Once `cancel` is set, nothing
/// new starts; what is in flight finishes.
pub async fn apply_phase<P: Provider>(
    provider: &P,
    plan: &Plan,
    index: usize,
    applied: &mut Applied,
    options: &ApplyOptions,
    cancel: &CancellationToken,
    progress: Progress<'_>,
) -> Report {
    let phases = index..index + 1;
    apply_phases(provider, plan, phases, applied, options, cancel, progress).await
}

/// Applies the `phases` of `plan` as one graph, pipelined: a step starts
/// as soon as the steps it reads are done, whatever phase they are in, so
/// a slow step of one phase (a bake) runs beside the next phase's (a load
/// balancer). A step of a resource an earlier phase also changes (a
/// service's cutover after its new colour) waits for that change. The
/// caller keeps strict order where it must by passing one phase at a time.
///
/// A phase starts with the first of its steps looked at, and finishes once
/// each has its outcome; the first phase starts at once.
pub async fn apply_phases<P: Provider>(
    provider: &P,
    plan: &Plan,
    phases: std::ops::Range<usize>,
    applied: &mut Applied,
    options: &ApplyOptions,
    cancel: &CancellationToken,
    progress: Progress<'_>,
) -> Report {
    let started = Instant::now();
    let mut report = Report::default();
    let Applied { exports, broken } = applied;
    let mut book = PhaseBook::new(plan, phases.clone());
    let mut batch = Vec::new();
    book.start(phases.start, &mut batch);
    let steps: Vec<(usize, &Change)> = phases
        .clone()
        .flat_map(|k| plan.phases[k].changes.iter().map(move |c| (k, c)))
        .collect();
    // What became of each step: `Some(true)` once done.
    let mut settled: Vec<Option<bool>> = vec![None; steps.len()];
    let earlier = same_resource_earlier(&steps);
    let mut waiting: Vec<usize> = (0..steps.len()).collect();
    let in_run: BTreeSet<&Address> = steps.iter().map(|(_, c)| &c.address).collect();
    // What steps started before their late inputs were known read.
    let mut late = LateBoard::default();
    let mut in_flight = FuturesUnordered::new();
    let mut waits = WaitReports::new();
    // Once a batch could not be recorded, nothing more starts.
    let mut unrecorded = false;
    loop {
        // Start everything whose inputs are ready, skip what can never be.
        let before = waiting.len();
        let mut still_waiting = Vec::new();
        let mut starting = Vec::new();
        for i in waiting {
            let (phase, change) = steps[i];
            let blocked = earlier[i].iter().find(|&&j| settled[j] == Some(false));
            let pending_earlier = earlier[i].iter().any(|&j| settled[j].is_none());
            if let Some(cause) = change.depends_on.iter().find_map(|d| broken.get(d)) {
                let because = cause.clone();
                broken.insert(change.address.clone(), because.clone());
                book.start(phase, &mut batch);
                let skipped = outcome_never_run(change, OutcomeKind::Skipped { because });
                settled[i] = Some(false);
                finished(&mut report, &mut batch, skipped);
                book.settled(phase, false, &mut batch);
            } else if let Some(&j) = blocked {
                let because = steps[j].1.address.clone();
                book.start(phase, &mut batch);
                let skipped = outcome_never_run(change, OutcomeKind::Skipped { because });
                settled[i] = Some(false);
                finished(&mut report, &mut batch, skipped);
                book.settled(phase, false, &mut batch);
            } else if pending_earlier {
                still_waiting.push(i);
            } else if change.action == Action::NoOp {
                let current = change
                    .current
                    .as_ref()
                    .expect("a no-op has a current resource");
                exports.insert(change.address.clone(), current.exports.clone());
                book.start(phase, &mut batch);
                settled[i] = Some(true);
                book.settled(phase, true, &mut batch);
            } else if let Some(early) = (!cancel.is_cancelled() && !unrecorded)
                .then(|| may_start(change, exports, &in_run))
                .flatten()
                // A step that will wait under way leaves a slot free for
                // the steps it waits on.
                .filter(|early| {
                    let busy = in_flight.len() + starting.len() + usize::from(!early.is_empty());
                    busy < options.parallelism.max(1)
                })
            {
                book.start(phase, &mut batch);
                batch.push(Event::Started {
                    address: change.address.clone(),
                    action: change.action,
                    depends_on: change
                        .depends_on
                        .iter()
                        .filter(|d| !early.contains(*d))
                        .cloned()
                        .collect(),
                    phase: Some(plan.phases[phase].name.clone()),
                });
                let prepared = prepare(
                    change,
                    &plan.environment,
                    exports,
                    &options.run_id,
                    options.lifetime.as_ref(),
                    &change.late,
                );
                let inputs = (!early.is_empty())
                    .then(|| late.inputs(change, early, &plan.environment, options));
                let step = execute(provider, change, prepared, inputs);
                let step = wait::reporting_waits(waits.reporter(&change.address), step);
                let step = async move { (i, step.await) };
                // In flight, a step's long waits heed the run's stop request.
                starting.push((i, wait::interruptible(cancel.clone(), step)));
            } else {
                still_waiting.push(i);
            }
        }
        waiting = still_waiting;
        // Steps just skipped are failures to what waits on them under way.
        late.publish(exports, broken);
        // Recorded before the steps just started make their calls.
        let recorded = hand_over(&mut batch, progress);
        unrecorded |= !recorded;
        for (i, step) in starting {
            if recorded {
                in_flight.push(step);
            } else {
                // Its intent is not durable: it makes no call.
                settled[i] = Some(false);
                let never = outcome_never_run(steps[i].1, OutcomeKind::NotStarted);
                finished(&mut report, &mut batch, never);
                book.settled(steps[i].0, false, &mut batch);
            }
        }
        if in_flight.is_empty() {
            if waiting.is_empty() || waiting.len() == before {
                break;
            }
            continue; // a no-op just made more inputs known
        }
        let next = waits.next(&mut in_flight, progress);
        let Some((i, (change, result, elapsed))) = next.await else {
            break;
        };
        let done = settle(change, result, elapsed, exports, broken);
        late.publish(exports, broken);
        let ok = matches!(done.result, OutcomeKind::Done(_));
        settled[i] = Some(ok);
        finished(&mut report, &mut batch, done);
        book.settled(steps[i].0, ok, &mut batch);
    }
    for i in waiting {
        let (phase, change) = steps[i];
        let stopped = unrecorded || cancel.is_cancelled();
        let never = outcome_never_run(change, not_started(change, exports, stopped));
        finished(&mut report, &mut batch, never);
        book.settled(phase, false, &mut batch);
    }
    book.finish_started(&mut batch);
    hand_over(&mut batch, progress);
    report.elapsed = started.elapsed();
    report
}

/// For each step, the earlier steps (in phase order) of the same resource:
/// a service's cutover waits for its new colour, made in an earlier phase.
fn same_resource_earlier(steps: &[(usize, &Change)]) -> Vec<Vec<usize>> {
    steps
        .iter()
        .enumerate()
        .map(|(i, (_, change))| {
            (0..i)
                .filter(|&j| steps[j].1.address == change.address)
                .collect()
        })
        .collect()
}

fn finished(report: &mut Report, batch: &mut Vec<Event>, outcome: Outcome) {
    batch.push(Event::Finished(outcome.clone()));
    report.outcomes.push(outcome);
}

/// Hands the batch so far to `progress`, if there is one: whether it
/// was recorded.
fn hand_over(batch: &mut Vec<Event>, progress: Progress<'_>) -> bool {
    batch.is_empty() || progress(&std::mem::take(batch))
}

/// Puts the steps whose intents were just handed over in flight if they
/// were `recorded`; otherwise none of them makes its call (an intent is
/// durable before its call) and each ends not started.
fn start_if<F>(
    recorded: bool,
    starting: Vec<(&Change, F)>,
    in_flight: &mut FuturesUnordered<F>,
    report: &mut Report,
    batch: &mut Vec<Event>,
) {
    for (change, step) in starting {
        match recorded {
            true => in_flight.push(step),
            false => finished(
                report,
                batch,
                outcome_never_run(change, OutcomeKind::NotStarted),
            ),
        }
    }
}

fn outcome_never_run(change: &Change, result: OutcomeKind) -> Outcome {
    Outcome {
        address: change.address.clone(),
        action: change.action,
        result,
        elapsed: Duration::ZERO,
    }
}

/// A step that ran: its outcome, and its exports for the steps that read
/// them (or, if it failed, its place among what is broken).
fn settle(
    change: &Change,
    result: Result<ObservedResource, String>,
    elapsed: Duration,
    exports: &mut BTreeMap<Address, Attrs>,
    broken: &mut BTreeMap<Address, Address>,
) -> Outcome {
    let outcome = Outcome {
        address: change.address.clone(),
        action: change.action,
        result: match &result {
            Ok(observed) => OutcomeKind::Done(observed.id.clone()),
            Err(e) => OutcomeKind::Failed(e.clone()),
        },
        elapsed,
    };
    match result {
        Ok(observed) => {
            exports.insert(change.address.clone(), observed.exports);
        }
        Err(_) => {
            broken.insert(change.address.clone(), change.address.clone());
        }
    }
    outcome
}

/// Why a step still waiting when the phase ended never started: the run
/// `stopped` (a stop request, a journal that refused its intent), or an
/// input nothing provided.
fn not_started(change: &Change, exports: &BTreeMap<Address, Attrs>, stopped: bool) -> OutcomeKind {
    if stopped {
        return OutcomeKind::NotStarted;
    }
    // Validation prevents this; a hand-edited saved plan could not.
    let missing: Vec<String> = change
        .depends_on
        .iter()
        .filter(|d| !exports.contains_key(*d))
        .map(|d| d.to_string())
        .collect();
    OutcomeKind::Failed(format!(
        "reads {}, which no earlier step applied",
        missing.join(", ")
    ))
}

/// What in-flight steps report they wait on, passed to `progress` between
/// completions: waiting is reported as it happens, not after the fact.
struct WaitReports {
    tx: mpsc::UnboundedSender<Event>,
    rx: mpsc::UnboundedReceiver<Event>,
}

impl WaitReports {
    fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        WaitReports { tx, rx }
    }

    fn reporter(&self, address: &Address) -> wait::WaitReporter {
        let tx = self.tx.clone();
        let address = address.clone();
        Arc::new(move |w: wait::Waiting| {
            let _ = tx.send(Event::Waiting {
                address: address.clone(),
                on: w.on,
                state: w.state,
                deadline_in: w.deadline_in,
            });
        })
    }

    /// The next step to finish; what others wait on meanwhile goes to
    /// `progress`, as it happens.
    async fn next<S>(&mut self, in_flight: &mut S, progress: Progress<'_>) -> Option<S::Item>
    where
        S: futures_util::Stream + Unpin,
    {
        loop {
            tokio::select! {
                done = in_flight.next() => return done,
                // A wait's progress announces no call.
                Some(event) = self.rx.recv() => { let _ = progress(&[event]); }
            }
        }
    }
}
