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

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};

use tokio_util::sync::CancellationToken;

use crate::cloud::provider::{CreateRequest, Provider};
use crate::cloud::{wait, CloudError};
use crate::plan::resolve::Resolved;
use crate::plan::{Action, Change, Plan};
use crate::planner::normalize::{normalize, spec_hash};
use crate::types::tags::{tag_set, Identity};
use crate::world::{Address, Attrs, ObservedResource, Tags, Value};
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::mpsc;

mod delete;

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
    },
    Finished(Outcome),
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
    let started = Instant::now();
    let mut report = Report::default();
    let Applied { exports, broken } = applied;
    let phase = &plan.phases[index];
    // The phase's start goes with its first steps.
    let mut batch = vec![Event::PhaseStarted {
        name: phase.name.clone(),
        number: index + 1,
        total: plan.phases.len(),
    }];
    let mut waiting: Vec<&Change> = phase.changes.iter().collect();
    let mut in_flight = FuturesUnordered::new();
    let mut waits = WaitReports::new();
    // Once a batch could not be recorded, nothing more starts.
    let mut unrecorded = false;
    loop {
        // Start everything whose inputs are ready, skip what can never be.
        let before = waiting.len();
        let mut still_waiting = Vec::new();
        let mut starting = Vec::new();
        for change in waiting {
            if let Some(cause) = change.depends_on.iter().find_map(|d| broken.get(d)) {
                let because = cause.clone();
                broken.insert(change.address.clone(), because.clone());
                let skipped = outcome_never_run(change, OutcomeKind::Skipped { because });
                finished(&mut report, &mut batch, skipped);
            } else if change.action == Action::NoOp {
                let current = change
                    .current
                    .as_ref()
                    .expect("a no-op has a current resource");
                exports.insert(change.address.clone(), current.exports.clone());
            } else if !cancel.is_cancelled()
                && !unrecorded
                && in_flight.len() + starting.len() < options.parallelism.max(1)
                && change.depends_on.iter().all(|d| exports.contains_key(d))
            {
                batch.push(Event::Started {
                    address: change.address.clone(),
                    action: change.action,
                    depends_on: change.depends_on.iter().cloned().collect(),
                });
                let prepared = prepare(
                    change,
                    &plan.environment,
                    exports,
                    &options.run_id,
                    options.lifetime.as_ref(),
                );
                let step = execute(provider, change, prepared);
                let step = wait::reporting_waits(waits.reporter(&change.address), step);
                // In flight, a step's long waits heed the run's stop request.
                starting.push((change, wait::interruptible(cancel.clone(), step)));
            } else {
                still_waiting.push(change);
            }
        }
        waiting = still_waiting;
        // Recorded before the steps just started make their calls.
        let recorded = hand_over(&mut batch, progress);
        unrecorded |= !recorded;
        start_if(recorded, starting, &mut in_flight, &mut report, &mut batch);
        if in_flight.is_empty() {
            if waiting.is_empty() || waiting.len() == before {
                break;
            }
            continue; // a no-op just made more inputs known
        }
        let next = waits.next(&mut in_flight, progress);
        let Some((change, result, elapsed)) = next.await else {
            break;
        };
        let done = settle(change, result, elapsed, exports, broken);
        finished(&mut report, &mut batch, done);
    }
    for change in waiting {
        let stopped = unrecorded || cancel.is_cancelled();
        let never = outcome_never_run(change, not_started(change, exports, stopped));
        finished(&mut report, &mut batch, never);
    }
    hand_over(&mut batch, progress);
    report.elapsed = started.elapsed();
    report
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

/// What a create or update will send, resolved now that its inputs exist.
struct Prepared {
    attrs: Attrs,
    tags: Tags,
    client_token: String,
}

/// Fills in the step's pending values from what earlier steps returned and
/// normalises them: exactly the planned step, with the real ids.
fn prepare(
    change: &Change,
    environment: &str,
    exports: &BTreeMap<Address, Attrs>,
    run_id: &str,
    lifetime: Option<&crate::types::tags::Lifetime>,
) -> Result<Prepared, String> {
    let address = &change.address;
    let pending =
        |key: &str| format!("{address}: `{key}` is still pending on a step that has not run");
    let mut desired: BTreeMap<String, Resolved> = BTreeMap::new();
    for (key, value) in &change.desired {
        let filled = value.fill(exports).ok_or_else(|| pending(key))?;
        desired.insert(key.clone(), Resolved::Known(filled));
    }
    normalize(address.kind, &mut desired);
    let attrs: Attrs = desired
        .into_iter()
        .map(|(k, v)| match v {
            Resolved::Known(v) => Ok((k, v)),
            Resolved::After { .. } => Err(pending(&k)),
        })
        .collect::<Result<_, _>>()?;
    let mut user_tags = Tags::new();
    for (key, value) in &change.tags {
        let text = match value.fill(exports).ok_or_else(|| pending(key))? {
            Value::Str(s) => s,
            other => other.to_string(),
        };
        user_tags.insert(key.clone(), text);
    }
    let hash = spec_hash(address.kind, &attrs, &user_tags);
    // An update keeps the run that created the resource; a create records this one.
    let created_by = match (&change.action, &change.current) {
        (Action::Update, Some(current)) => current.run_id().unwrap_or(run_id).to_string(),
        _ => run_id.to_string(),
    };
    let identity = Identity::new(environment, &address.stack, &address.resource());
    let tags = tag_set(&identity, &hash, &created_by, lifetime, &user_tags);
    // Same run + same address + same spec → same token, so a retried call
    // cannot create twice on AWS (moto ignores tokens; tags and the journal cover it).
    let client_token: String = format!("{run_id}-{hash}-{}", short_hash(&address.to_string()))
        .chars()
        .take(64)
        .collect();
    Ok(Prepared {
        attrs,
        tags,
        client_token,
    })
}

fn short_hash(s: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.as_bytes())[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn execute<'c, P: Provider>(
    provider: &P,
    change: &'c Change,
    prepared: Result<Prepared, String>,
) -> (&'c Change, Result<ObservedResource, String>, Duration) {
    let started = Instant::now();
    let result = async {
        let prepared = prepared?;
        let render = |e: CloudError| render_cloud_error(&e);
        match change.action {
            Action::Create | Action::Replace => provider
                .create(&CreateRequest {
                    address: &change.address,
                    attrs: &prepared.attrs,
                    tags: &prepared.tags,
                    client_token: &prepared.client_token,
                })
                .await
                .map_err(render),
            Action::Update => {
                // An update of what an earlier phase of this run creates (a
                // service's cutover) reads the resource itself when it runs.
                let created_earlier;
                let current = match &change.current {
                    Some(current) => current,
                    None => {
                        created_earlier = ObservedResource {
                            address: change.address.clone(),
                            id: String::new(),
                            attrs: Attrs::new(),
                            exports: Attrs::new(),
                            tags: prepared.tags.clone(),
                        };
                        &created_earlier
                    }
                };
                provider
                    .update(current, &prepared.attrs, &prepared.tags)
                    .await
                    .map_err(render)
            }
            Action::Delete | Action::NoOp => {
                unreachable!("deletions and no-ops are not executed here")
            }
        }
    }
    .await;
    (change, result, started.elapsed())
}

fn render_cloud_error(e: &CloudError) -> String {
    match e.hint() {
        Some(hint) => format!("{e} (hint: {hint})"),
        None => e.to_string(),
    }
}
