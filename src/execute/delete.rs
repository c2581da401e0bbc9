//! Deletions, dependents first: a plan's clean-up (old copies, removed
//! resources), and a whole environment's destroy. Each rank of
//! [`delete_rank`] runs in parallel; its batches go to `progress` as the
//! phase's do (see the module above), deletions starting only once
//! recorded.

use std::collections::BTreeSet;
use std::time::Instant;

use futures_util::stream::FuturesUnordered;

use super::{
    hand_over, render_cloud_error, start_if, Event, Outcome, OutcomeKind, Progress, Report,
    WaitReports,
};
use crate::cloud::provider::Provider;
use crate::cloud::wait;
use crate::plan::{Action, Change};
use crate::planner::normalize::delete_rank;
use crate::world::ObservedResource;

/// Deletes what the plan retires (old copies, removed resources), dependents first.
pub async fn cleanup<P: Provider>(
    provider: &P,
    deletions: &[Change],
    parallelism: usize,
    progress: Progress<'_>,
) -> Report {
    let started = Instant::now();
    let mut report = Report::default();
    let deletions: Vec<&Change> = deletions.iter().collect();
    // Only a record: whether it was kept decides nothing.
    let _ = progress(&[Event::CleanupStarted {
        count: deletions.len(),
    }]);
    delete_in_order(provider, &deletions, parallelism, progress, &mut report).await;
    report.elapsed = started.elapsed();
    report
}

/// Deletes resources rank by rank (dependents first), each rank in parallel.
pub async fn delete_in_order<P: Provider>(
    provider: &P,
    deletions: &[&Change],
    parallelism: usize,
    progress: Progress<'_>,
    report: &mut Report,
) {
    let ranks: BTreeSet<u8> = deletions
        .iter()
        .map(|c| delete_rank(c.address.kind))
        .collect();
    for rank in ranks {
        let mut queue = deletions
            .iter()
            .copied()
            .filter(|c| delete_rank(c.address.kind) == rank)
            .peekable();
        let mut in_flight = FuturesUnordered::new();
        let mut waits = WaitReports::new();
        // A deletion's outcome and the deletions that take its place.
        let mut batch = Vec::new();
        loop {
            let mut starting = Vec::new();
            while in_flight.len() + starting.len() < parallelism.max(1) {
                let Some(change) = queue.next() else { break };
                batch.push(Event::Started {
                    address: change.address.clone(),
                    action: Action::Delete,
                    depends_on: Vec::new(),
                    phase: None,
                });
                let step = async move {
                    let started = Instant::now();
                    let current = change
                        .current
                        .as_ref()
                        .expect("a deletion has a current resource");
                    let result = provider.delete(current).await;
                    (change, current.id.clone(), result, started.elapsed())
                };
                let step = wait::reporting_waits(waits.reporter(&change.address), step);
                starting.push((change, step));
            }
            let recorded = hand_over(&mut batch, progress);
            start_if(recorded, starting, &mut in_flight, report, &mut batch);
            if in_flight.is_empty() {
                match queue.peek() {
                    Some(_) => continue, // none started: the next ones try
                    None => break,
                }
            }
            let Some((change, id, result, elapsed)) = waits.next(&mut in_flight, progress).await
            else {
                break;
            };
            let outcome = Outcome {
                address: change.address.clone(),
                action: Action::Delete,
                result: match result {
                    Ok(()) => OutcomeKind::Done(id),
                    Err(e) => OutcomeKind::Failed(render_cloud_error(&e)),
                },
                elapsed,
            };
            batch.push(Event::Finished(outcome.clone()));
            report.outcomes.push(outcome);
        }
        hand_over(&mut batch, progress);
    }
}

/// Deletes everything observed (one environment), dependents first.
pub async fn destroy<P: Provider>(
    provider: &P,
    observed: &[ObservedResource],
    parallelism: usize,
    progress: Progress<'_>,
) -> Report {
    let started = Instant::now();
    let changes: Vec<Change> = observed
        .iter()
        .map(|o| crate::plan::deletion(o, None))
        .collect();
    let refs: Vec<&Change> = changes.iter().collect();
    let mut report = Report::default();
    // Only a record: whether it was kept decides nothing.
    let _ = progress(&[Event::CleanupStarted { count: refs.len() }]);
    delete_in_order(provider, &refs, parallelism, progress, &mut report).await;
    report.elapsed = started.elapsed();
    report
}
