//! apply and resume: a run from its plan to its end, journaled, with what
//! its end means besides (outputs, the checks after a cutover, what a
//! rejection left built).

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use super::{absolute, make_plan, observe_and_plan, Loaded, SavedPlan, Session};
use super::{load, load_file, new_run_id, source_hash, sources, Connect, Context};
use crate::cloud::aws::AwsProvider;
use crate::error::Error;
use crate::events::{Answer, Event as Shown, NextStep, Question};
use crate::journal::{current_user, host_name, Event, Journal, RunStatus};
use crate::lock::EnvLock;
use crate::plan::{self, Plan};
use crate::run::{self, RunEnd};

/// After a rejection: what the phases before the gate left built.
pub(super) async fn say_what_is_left(
    ctx: &Context<'_>,
    provider: &AwsProvider,
    loaded: &Loaded,
) -> Result<(), Error> {
    let runbook = loaded.runbook();
    let snapshot = run::observe(provider, &runbook.environment, ctx.clock).await?;
    if !snapshot.is_empty() {
        ctx.sink.event(&Shown::LeftBuilt {
            environment: runbook.environment.clone(),
            resources: snapshot.objects().map(|o| o.address.clone()).collect(),
            destroy_with: NextStep::Destroy {
                root: absolute(&loaded.project.root),
                runbook: runbook.name.clone(),
                environment: loaded.other_environment().map(str::to_string),
            },
        });
    }
    Ok(())
}

pub struct ApplyRequest {
    pub root: Option<PathBuf>,
    /// A runbook (path or name), or a plan file saved with `plan --out`.
    pub target: String,
    /// `--auto-approve`, with the reason recorded (default "--auto-approve").
    pub auto_approve: Option<String>,
    pub parallelism: usize,
}

#[derive(Debug)]
pub enum ApplyResult {
    /// The environment already matches; no run was started.
    NoChanges,
    Run(RunResult),
}

/// How a run (or its continuation) ended.
#[derive(Debug)]
pub struct RunResult {
    pub run_id: String,
    pub end: RunEnd,
    /// The root stacks' outputs, after a run that succeeded.
    pub outputs: Vec<plan::OutputValue>,
    /// The runbook's checks after a cutover, and any automatic rollback.
    pub after_cutover: Option<super::AfterCutover>,
}

/// An error that stopped the journaled run: the run is marked interrupted
/// and the error says how to continue it.
pub(super) fn stopped(ctx: &Context<'_>, journal: &Journal, error: Error) -> Error {
    let _ = journal.append(&Event::Interrupted {
        at: ctx.clock.now(),
    });
    Error::RunStopped {
        run_id: journal.run_id.clone(),
        source: Box::new(error),
    }
}

/// What a run's end means besides itself: after success, the checks after a
/// cutover (and the rollback if one fails), then the run's finish in the
/// journal, and the outputs; what is left built after a rejection.
pub(super) async fn finish<C: Connect>(
    session: &Session<'_, C>,
    journal: &Journal,
    end: RunEnd,
) -> Result<RunResult, Error> {
    let Session {
        ctx,
        provider,
        loaded,
        cancel,
        ..
    } = *session;
    let mut outputs = Vec::new();
    let mut after_cutover = None;
    let mut interrupted = None;
    match &end {
        RunEnd::Succeeded(report) => {
            let done = async {
                // Observed once: the checks and the outputs read the same
                // world, unless a rollback has moved a listener since.
                let mut observed = observe_and_plan(ctx, provider, loaded).await?;
                let after =
                    super::post_cutover::check_after_cutover(session, journal, &observed).await?;
                if after.as_ref().is_some_and(|a| a.moved_traffic()) {
                    observed = observe_and_plan(ctx, provider, loaded).await?;
                }
                let outputs = plan::outputs(&loaded.project, loaded.runbook(), &observed.1);
                // The run is done only now (see `RunContext::checks_follow`).
                let failed = after.as_ref().is_some_and(|a| a.failed());
                let mut interrupted = None;
                if cancel.is_cancelled() && !failed {
                    journal.append(&Event::Interrupted {
                        at: ctx.clock.now(),
                    })?;
                    interrupted = Some(RunEnd::Interrupted(report.clone()));
                } else {
                    journal.append(&Event::RunFinished {
                        at: ctx.clock.now(),
                        status: if failed {
                            RunStatus::Failed
                        } else {
                            RunStatus::Succeeded
                        },
                    })?;
                }
                Ok::<_, Error>((after, outputs, interrupted))
            };
            (after_cutover, outputs, interrupted) =
                done.await.map_err(|e| stopped(ctx, journal, e))?;
        }
        RunEnd::Rejected { phase, by } => {
            // Rejected at the prompt, or by its timeout.
            super::decisions::send_canary_back(session, phase, by, true).await;
            say_what_is_left(ctx, provider, loaded).await?;
        }
        _ => {}
    }
    let end = interrupted.unwrap_or(end);
    Ok(RunResult {
        run_id: journal.run_id.clone(),
        end,
        outputs,
        after_cutover,
    })
}

/// Plans (or takes a saved plan), has it confirmed, and runs it phase by
/// phase. The environment is locked before anything is observed.
pub async fn apply<C: Connect>(
    ctx: &Context<'_>,
    connect: &C,
    request: &ApplyRequest,
    cancel: &CancellationToken,
) -> Result<ApplyResult, Error> {
    let saved = SavedPlan::read(&request.target)?;
    let mut loaded = match &saved {
        Some(saved) => load_file(&saved.root, &saved.runbook_file)?,
        None => load(request.root.as_deref(), &request.target)?,
    };
    loaded.reached_through(connect, &ctx.store.root());
    let runbook = loaded.runbook();
    let provider = connect.connect(&runbook.region).await?;
    let run_id = new_run_id(ctx.clock);
    // Locked before planning: what is planned cannot change under another run.
    let lock = EnvLock::acquire(
        ctx.store.as_ref(),
        &runbook.environment,
        &runbook.region,
        &run_id,
    )?;
    let sources = sources(&loaded.project, runbook)?;
    let plan = match saved {
        Some(saved) => {
            let hash = source_hash(&sources);
            saved_plan_still_holds(ctx, &provider, &loaded, saved, &request.target, &hash).await?
        }
        None => confirmed_plan(ctx, &provider, &loaded, request).await?,
    };
    if !plan.has_changes() {
        return Ok(ApplyResult::NoChanges);
    }
    let session = Session {
        ctx,
        connect,
        provider: &provider,
        loaded: &loaded,
        parallelism: request.parallelism,
        cancel,
    };
    let journal = start_run(
        &session,
        RunStart {
            plan: &plan,
            sources,
            run_id: &run_id,
            auto_approve: request.auto_approve.clone(),
            drill: None,
        },
    )?;
    let end = drive(&session, &journal, true)
        .await
        .map_err(|e| stopped(ctx, &journal, e))?;
    // Held through the post-cutover checks: a rollback moves the listener.
    let result = finish(&session, &journal, end).await?;
    drop(lock);
    Ok(ApplyResult::Run(result))
}

/// A saved plan, planned again from the same files and world: that plan
/// is the saved one, with its secrets (the file holds none). Refused when
/// the files or the world changed since, or the file was edited.
async fn saved_plan_still_holds(
    ctx: &Context<'_>,
    provider: &AwsProvider,
    loaded: &Loaded,
    saved: SavedPlan,
    file: &str,
    source_hash: &str,
) -> Result<Plan, Error> {
    let runbook = loaded.runbook();
    let stale = |why: Vec<String>| Error::StalePlan {
        file: file.to_string(),
        why,
    };
    if source_hash != saved.plan.source_hash {
        return Err(stale(vec![
            "the stack or runbook files changed since the plan was made".into(),
        ]));
    }
    let snapshot = run::observe_for(provider, &loaded.project, runbook, ctx.clock).await?;
    if snapshot.fingerprint() != saved.plan.fingerprint {
        return Err(stale(plan::world_changes(&saved.plan, &snapshot)));
    }
    let mut fresh = crate::planner::plan(
        &loaded.project,
        runbook,
        &snapshot,
        saved.plan.source_hash.clone(),
    );
    fresh.observed_at = saved.plan.observed_at;
    if plan::redacted(&fresh) != saved.plan {
        return Err(stale(vec![
            "planning again from the same files and world gives another plan (was it edited?)"
                .into(),
        ]));
    }
    ctx.sink.event(&Shown::Planned {
        plan: Box::new(saved.plan),
    });
    Ok(fresh)
}

/// A new plan, shown; on a terminal the whole plan is confirmed once
/// (without one, the runbook's gates are the approval).
async fn confirmed_plan(
    ctx: &Context<'_>,
    provider: &AwsProvider,
    loaded: &Loaded,
    request: &ApplyRequest,
) -> Result<Plan, Error> {
    let plan = make_plan(ctx, provider, loaded).await?;
    ctx.sink.event(&Shown::Planned {
        plan: Box::new(plan::redacted(&plan)),
    });
    if plan.has_changes() && request.auto_approve.is_none() {
        let question = Question::Confirm {
            prompt: format!(
                "Apply these changes to environment {}?",
                loaded.runbook().environment
            ),
            expected: "yes".into(),
        };
        match ctx.sink.ask(&question) {
            Some(Answer::Approve) | None => {}
            Some(_) => return Err(Error::Declined),
        }
    }
    Ok(plan)
}

/// What a new run's start record holds besides where it runs.
pub(crate) struct RunStart<'a> {
    pub plan: &'a Plan,
    /// The run's files and their hashes.
    pub sources: std::collections::BTreeMap<String, String>,
    pub run_id: &'a str,
    /// The approval the command line gave (`--auto-approve`, a drill's
    /// policy, a command's own), if any.
    pub auto_approve: Option<String>,
    pub drill: Option<crate::journal::DrillStart>,
}

/// Creates the run's journal with its start record, indexes it, and says so.
pub(crate) fn start_run<C: Connect>(
    session: &Session<'_, C>,
    start: RunStart<'_>,
) -> Result<Journal, Error> {
    let Session {
        ctx,
        connect,
        loaded,
        ..
    } = *session;
    let RunStart {
        plan,
        sources,
        run_id,
        auto_approve,
        drill,
    } = start;
    let runbook = loaded.runbook();
    // A bad `[notify]` stops the run before it is recorded.
    crate::notify::webhooks(&loaded.project.root, &runbook.notify)?;
    let journal = Journal::create(ctx.store.as_ref(), run_id)?;
    journal.append(&Event::RunStarted {
        at: ctx.clock.now(),
        run_id: run_id.to_string(),
        runbook: runbook.name.clone(),
        root: absolute(&loaded.project.root),
        runbook_file: absolute(&runbook.file),
        environment: runbook.environment.clone(),
        region: runbook.region.clone(),
        phases: plan.phases.iter().map(|p| p.name.clone()).collect(),
        user: current_user(),
        host: host_name(),
        pid: std::process::id(),
        auto_approve,
        sources,
        approved_cleanup: plan
            .cleanup
            .iter()
            .filter_map(|c| Some((c.address.clone(), c.current.as_ref()?.id.clone())))
            .collect(),
        target: Some(connect.target(&runbook.region, &ctx.store.root())),
        drill,
    })?;
    crate::journal::index::record(run_id, &ctx.store.root());
    crate::notify::watch(&journal)?;
    ctx.sink.event(&Shown::RunStarted {
        run_id: run_id.to_string(),
        journal: journal.location.clone(),
    });
    Ok(journal)
}

/// Runs the journaled run (see [`run::drive`]); `checks_follow`: the
/// caller checks the environment after a cutover and journals the finish.
pub(crate) async fn drive<C>(
    session: &Session<'_, C>,
    journal: &Journal,
    checks_follow: bool,
) -> Result<RunEnd, Error> {
    run::drive(
        session.provider,
        &session.run_context(journal, checks_follow),
    )
    .await
}
