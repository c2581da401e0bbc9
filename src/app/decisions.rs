//! approve and reject: a person's decision at a run's gate, journaled.

use super::runs::say_what_is_left;
use super::{load_file, Connect, Context};
use crate::error::Error;
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
    let journal = Journal::open(ctx.state_dir, &request.run_id)?;
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

pub struct RejectRequest {
    pub run_id: String,
    pub by: String,
    pub reason: Option<String>,
}

/// Ends a run at its gate; returns the phase it waited before ("" if none).
/// Then says what the phases before the gate left built, and how to remove it.
pub async fn reject<C: Connect>(
    ctx: &Context<'_>,
    connect: &C,
    request: &RejectRequest,
) -> Result<String, Error> {
    let journal = Journal::open(ctx.state_dir, &request.run_id)?;
    let recorder = Recorder {
        journal: &journal,
        clock: ctx.clock,
        sink: ctx.sink,
    };
    let phase = run::reject(&recorder, &request.by, request.reason.clone())?;
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
        say_what_is_left(ctx, &provider, &loaded).await?;
    }
    Ok(phase)
}
