//! approve and reject: a person's decision at a run's gate, journaled.

use tokio_util::sync::CancellationToken;

use super::runs::{say_what_is_left, RunResult};
use super::traffic::{abort_canaries, TrafficResult};
use super::{load_file, Connect, Context, Session};
use crate::error::Error;
use crate::events::{Event as Shown, NextStep};
use crate::journal::{Event, Journal};
use crate::run::{self, Recorder};

pub struct ApproveRequest {
    pub run_id: String,
    /// The phase whose gate (default: the one the run waits at).
    pub gate: Option<String>,
    pub by: String,
    pub reason: Option<String>,
}

#[derive(Debug)]
pub struct Approved {
    pub by: String,
    pub have: usize,
    pub need: u32,
}

/// One person's approval of the plan the run's gate shows.
pub fn approve(ctx: &Context<'_>, request: &ApproveRequest) -> Result<Approved, Error> {
    let journal = Journal::open(ctx.store.as_ref(), &request.run_id)?;
    crate::notify::watch(&journal)?;
    let recorder = Recorder {
        journal: &journal,
        clock: ctx.clock,
        sink: ctx.sink,
    };
    let (have, need) = run::approve(
        &recorder,
        request.gate.as_deref(),
        &request.by,
        request.reason.clone(),
    )?;
    Ok(Approved {
        by: request.by.clone(),
        have,
        need,
    })
}

/// Ends run `run_id` rejected if it waits at a gate whose deadline passed
/// without its approvals (see [`run::reject_if_overdue`]): what a command
/// that only looks at runs does first. The gate's phase when it did.
pub fn reject_if_overdue(ctx: &Context<'_>, run_id: &str) -> Result<Option<String>, Error> {
    let journal = Journal::open(ctx.store.as_ref(), run_id)?;
    crate::notify::watch(&journal)?;
    run::reject_if_overdue(&Recorder {
        journal: &journal,
        clock: ctx.clock,
        sink: ctx.sink,
    })
}

pub struct RejectRequest {
    pub run_id: String,
    pub by: String,
    pub reason: Option<String>,
}

#[derive(Debug)]
pub struct Rejected {
    /// The gate the run waited at ("" if none).
    pub gate: String,
    /// Rejected between canary weights: the run sending the canary's
    /// traffic back to the live colour.
    pub canary_back: Option<RunResult>,
}

/// Ends a run at its gate. Then says what the phases before the gate left
/// built, and how to remove it; rejected between canary weights, the canary
/// goes back whole to the live colour (a run of its own).
pub async fn reject<C: Connect>(
    ctx: &Context<'_>,
    connect: &C,
    request: &RejectRequest,
) -> Result<Rejected, Error> {
    let journal = Journal::open(ctx.store.as_ref(), &request.run_id)?;
    crate::notify::watch(&journal)?;
    let recorder = Recorder {
        journal: &journal,
        clock: ctx.clock,
        sink: ctx.sink,
    };
    let gate = run::reject(&recorder, &request.by, request.reason.clone())?;
    let mut canary_back = None;
    if let Some(Event::RunStarted {
        root,
        runbook_file,
        environment,
        region,
        drill: None,
        ..
    }) = journal.events()?.first()
    {
        // A drill's rejection ends in its teardown instead (the caller).
        let mut loaded = load_file(root, runbook_file)?;
        loaded.retarget(environment, region);
        let provider = connect.connect(&loaded.runbook().region).await?;
        let cancel = CancellationToken::new();
        let session = Session {
            ctx,
            connect,
            provider: &provider,
            loaded: &loaded,
            parallelism: 1,
            cancel: &cancel,
        };
        canary_back = send_canary_back(&session, &gate, &request.by, false).await;
        say_what_is_left(ctx, &provider, &loaded).await?;
    }
    Ok(Rejected { gate, canary_back })
}

/// Rejected at a gate between canary weights (by a person or a timeout):
/// the canary goes back whole to the live colour, as a run of its own
/// approved by the rejection. A failure is said, not raised: the
/// rejection stands either way. `locked`: the caller holds the
/// environment's lock.
pub(super) async fn send_canary_back<C: Connect>(
    at: &Session<'_, C>,
    gate: &str,
    by: &str,
    locked: bool,
) -> Option<RunResult> {
    if !crate::types::GateId::parse(gate).is_canary() {
        return None;
    }
    let approval = format!("{by} rejected the canary at gate {gate}");
    // One step, and not stopped by a Ctrl-C meant for the run: the
    // rejection stands either way, and the canary must go back whole.
    let cancel = CancellationToken::new();
    let session = Session {
        parallelism: 1,
        cancel: &cancel,
        ..*at
    };
    let Session { ctx, loaded, .. } = session;
    match abort_canaries(&session, approval, locked).await {
        Ok(TrafficResult::Run(back)) => Some(back),
        Ok(TrafficResult::Nothing(_)) => None,
        Err(e) => {
            let root = super::absolute(&loaded.project.root);
            let services = super::traffic::services_named(loaded, None).unwrap_or_default();
            ctx.sink.event(&Shown::CanaryLeft {
                gate: gate.to_string(),
                why: e.to_string(),
                rollback_with: services
                    .iter()
                    .map(|s| NextStep::Rollback {
                        root: root.clone(),
                        runbook: loaded.runbook().name.clone(),
                        service: s.to_string(),
                    })
                    .collect(),
            });
            None
        }
    }
}
