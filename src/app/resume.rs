//! `drctl resume`: a paused, interrupted or failed run continued where it
//! stopped, from this machine or (with a shared store) another.

use std::path::Path;

use tokio_util::sync::CancellationToken;

use super::runs::{drive, finish, stopped, RunResult};
use super::{changed_files, load_file, sources, Connect, Context, Loaded, Session};
use crate::cloud::aws::AwsProvider;
use crate::error::Error;
use crate::events::Event as Shown;
use crate::execute::{Outcome, OutcomeKind, Report};
use crate::journal::{current_user, run_state, Event, Journal, RunStatus};
use crate::lock::EnvLock;
use crate::run::RunEnd;

/// Continues a paused, interrupted or failed run where it stopped, holding
/// the environment's lock from start to end.
pub async fn resume<C: Connect>(
    ctx: &Context<'_>,
    connect: &C,
    run_id: &str,
    parallelism: usize,
    cancel: &CancellationToken,
) -> Result<RunResult, Error> {
    let run = continue_run(ctx, connect, run_id, parallelism, cancel).await?;
    let session = Session {
        ctx,
        connect,
        provider: &run.provider,
        loaded: &run.loaded,
        parallelism,
        cancel,
    };
    let result = finish(&session, &run.journal, run.end).await;
    drop(run.lock);
    result
}

/// A run continued to its end or its next pause, with what it ran against;
/// the environment's lock is still held.
pub(crate) struct Continued {
    pub end: RunEnd,
    pub loaded: Loaded,
    pub provider: AwsProvider,
    pub journal: Journal,
    pub lock: EnvLock,
}

/// A run that cannot go on is refused: one that ended, or one rolled back
/// after failed checks (stopped before saying so, it says so now; resuming
/// would check the rolled-back world).
fn refuse_ended(
    ctx: &Context<'_>,
    journal: &Journal,
    events: &[Event],
    state: &crate::journal::RunState,
) -> Result<(), Error> {
    let run_id = &journal.run_id;
    if state.status.is_final() {
        return Err(Error::usage(
            format!("run {run_id} is {}; nothing to resume", state.status),
            None,
        ));
    }
    let rolled_back = events.iter().find_map(|e| match e {
        Event::RolledBack { services, .. } => Some(services),
        _ => None,
    });
    let Some(services) = rolled_back else {
        return Ok(());
    };
    if state.status != RunStatus::Failed {
        journal.append(&Event::RunFinished {
            at: ctx.clock.now(),
            status: RunStatus::Failed,
        })?;
    }
    let hint = if services.iter().all(|s| s.ok) {
        "fix what the checks found, then apply the runbook again: its plan cuts over anew"
    } else {
        "the rollback did not finish (see `drctl runs show` for this run): `drctl rollback RUNBOOK SERVICE` moves a service back by hand"
    };
    Err(Error::usage(
        format!("run {run_id} ended when checks failed after its cutover and it was rolled back; nothing to resume"),
        Some(hint.into()),
    ))
}

/// The run's repository: where it started, or, on another machine (a
/// shared store), the checkout drctl runs in, with the runbook at the same
/// place in it. Edited files are found by their hashes either way.
fn load_started_files(root: &Path, runbook_file: &Path) -> Result<Loaded, Error> {
    if root.is_dir() {
        return load_file(root, runbook_file);
    }
    let here = std::env::current_dir()
        .ok()
        .and_then(|cwd| super::find_root(&cwd));
    let relative = runbook_file.strip_prefix(root).unwrap_or(runbook_file);
    match here {
        Some(here) => load_file(&here, &here.join(relative)),
        None => Err(Error::usage(
            format!(
                "the run started in {}, which is not here, and no checkout of it is around the current directory",
                root.display()
            ),
            Some("run drctl from a checkout of the same repository".into()),
        )),
    }
}

/// A continuation's end, its summary made of the whole run.
fn of_the_whole_run(end: RunEnd, journal: &Journal, ctx: &Context<'_>) -> RunEnd {
    let whole = |report| {
        whole_run(
            report,
            &journal.events().unwrap_or_default(),
            ctx.clock.now(),
        )
    };
    match end {
        RunEnd::Succeeded(report) => RunEnd::Succeeded(whole(report)),
        RunEnd::Failed(report) => RunEnd::Failed(whole(report)),
        RunEnd::Interrupted(report) => RunEnd::Interrupted(whole(report)),
        other => other,
    }
}

/// [`resume`]'s run, without what its end means to an apply (outputs, the
/// checks after a cutover): a drill's resume concludes in its own way.
pub(crate) async fn continue_run<C: Connect>(
    ctx: &Context<'_>,
    connect: &C,
    run_id: &str,
    parallelism: usize,
    cancel: &CancellationToken,
) -> Result<Continued, Error> {
    let journal = Journal::open(ctx.store.as_ref(), run_id)?;
    crate::notify::watch(&journal)?;
    let events = journal.events()?;
    let state = run_state(&events);
    refuse_ended(ctx, &journal, &events, &state)?;
    let Some(Event::RunStarted {
        root,
        runbook_file,
        sources: started_from,
        environment,
        region,
        drill,
        phases,
        ..
    }) = events.first()
    else {
        return Err(Error::usage(
            format!("run {run_id} has no start record"),
            None,
        ));
    };
    super::traffic::refuse_resume(phases)?;
    let mut loaded = load_started_files(root, runbook_file)?;
    // Where the run started, whatever the runbook says now (a drill's
    // environment is not in the file at all).
    loaded.retarget(environment, region);
    loaded.set_rebake(drill.as_ref().is_some_and(|d| d.rebake));
    loaded.set_lifetime(drill.as_ref().and_then(|d| d.lifetime(run_id)));
    let runbook = loaded.runbook();
    // Taken before anything is written: a live run of this id refuses the resume.
    let lock = EnvLock::acquire(
        ctx.store.as_ref(),
        &runbook.environment,
        &runbook.region,
        run_id,
    )?;
    let provider = connect.connect(&runbook.region).await?;
    let now = sources(&loaded.project, runbook)?;
    let edited = changed_files(started_from, &now);
    if !edited.is_empty() {
        // Each phase is re-planned from these files and shown at its gate;
        // a plan that differs from the approved one waits for new approvals.
        ctx.sink.event(&Shown::SourcesChanged { files: edited });
    }
    journal.append(&Event::Resumed {
        at: ctx.clock.now(),
        by: current_user(),
        pid: std::process::id(),
    })?;
    for (address, action) in &state.in_flight {
        ctx.sink.event(&Shown::InFlightAtStop {
            address: address.clone(),
            action: *action,
        });
    }
    // An apply's run finishes after its post-cutover checks; a drill's
    // checks are its own.
    let checks_follow = drill.is_none();
    let session = Session {
        ctx,
        connect,
        provider: &provider,
        loaded: &loaded,
        parallelism,
        cancel,
    };
    let end = drive(&session, &journal, checks_follow)
        .await
        // A drill concludes its own way (teardown, report) on an error.
        .map_err(|e| {
            if checks_follow {
                stopped(ctx, &journal, e)
            } else {
                e
            }
        })?;
    let end = of_the_whole_run(end, &journal, ctx);
    Ok(Continued {
        end,
        loaded,
        provider,
        journal,
        lock,
    })
}

/// A continuation's report widened to the whole run: every step the
/// journal records as done (the latest outcome per address and action),
/// plus what this continuation could not do; timed from the run's start.
fn whole_run(report: Report, events: &[Event], now: crate::clock::Millis) -> Report {
    use std::collections::BTreeMap;
    let mut started: BTreeMap<(String, String), crate::clock::Millis> = BTreeMap::new();
    let mut done: BTreeMap<(String, String), Outcome> = BTreeMap::new();
    for event in events {
        match event {
            Event::Intent {
                at,
                address,
                action,
                ..
            } => {
                started.insert((address.to_string(), format!("{action:?}")), *at);
            }
            Event::Outcome {
                at,
                address,
                action,
                ok: true,
                id,
                ..
            } => {
                let key = (address.to_string(), format!("{action:?}"));
                let began = started.get(&key).copied().unwrap_or(*at);
                done.insert(
                    key,
                    Outcome {
                        address: address.clone(),
                        action: *action,
                        result: OutcomeKind::Done(id.clone()),
                        elapsed: std::time::Duration::from_millis((at - began).max(0) as u64),
                    },
                );
            }
            _ => {}
        }
    }
    let mut outcomes: Vec<Outcome> = done.into_values().collect();
    outcomes.extend(
        report
            .outcomes
            .into_iter()
            .filter(|o| !matches!(o.result, OutcomeKind::Done(_))),
    );
    let start = events.first().map(Event::at).unwrap_or(now);
    Report {
        outcomes,
        elapsed: std::time::Duration::from_millis((now - start).max(0) as u64),
    }
}
