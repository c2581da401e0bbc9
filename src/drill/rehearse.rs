//! A drill from start to end: rebuild the runbook's stacks in an isolated
//! environment through the same run engine as `apply` (journal, gates,
//! resume), then check, tear down, look for leaks, and report. A drill
//! killed anywhere is continued by `drctl resume`, which ends in the same
//! [`super::conclude`].

use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::app::runs::{drive, start_run, RunStart};
use crate::app::{
    absolute, load, load_file, new_run_id, plan_observed, sources, Connect, Context, Loaded,
    Session,
};
use crate::error::Error;
use crate::events::Event as Shown;
use crate::execute::Report;
use crate::journal::{run_state, DrillStart, Event, Journal, RunStatus, DRILL_POLICY};
use crate::lock::EnvLock;
use crate::plan;
use crate::run::{self, RunEnd};
use crate::world::Snapshot;

use super::conclude::Concluding;
use super::expiry::Expiry;
use super::report::DrillReport;
use super::sweep::SweepRequest;
use crate::types::tags::Lifetime;

pub struct DrillRequest {
    pub root: Option<PathBuf>,
    /// A runbook path or name.
    pub runbook: String,
    /// Default: `<environment>-drill-<UTC timestamp>`.
    pub environment: Option<String>,
    /// Default: the runbook's region.
    pub region: Option<String>,
    /// Gates ask (or pause) as in an apply, instead of `[drill] auto_approve`.
    pub interactive: bool,
    /// Also write the report as JUnit XML here.
    pub junit: Option<PathBuf>,
    /// Bake images from scratch (and time the bake) instead of reusing.
    pub rebake: bool,
    pub parallelism: usize,
    pub settings: DrillSettings,
    /// The run id to use (the scheduler names its drills, so it knows which
    /// report is theirs); default: a new one.
    pub run_id: Option<String>,
}

/// How long a drill waits on the cloud after the rebuild.
#[derive(Debug, Clone)]
pub struct DrillSettings {
    /// For every target of a `target_health` check to turn healthy.
    pub health_deadline: Duration,
    /// Pauses before looking for leaks again (AWS's indexes lag deletions).
    pub leak_settle: Vec<Duration>,
}

impl Default for DrillSettings {
    fn default() -> Self {
        DrillSettings {
            health_deadline: crate::verify::HEALTH_DEADLINE,
            leak_settle: vec![Duration::from_secs(5), Duration::from_secs(15)],
        }
    }
}

#[derive(Debug)]
pub enum DrillOutcome {
    /// Waiting at a gate (`--interactive` without a terminal).
    Paused {
        run_id: String,
        phase: String,
        approvals: usize,
        needed: u32,
    },
    Finished(Box<Finished>),
}

#[derive(Debug)]
pub struct Finished {
    pub report: DrillReport,
    pub json: PathBuf,
    pub markdown: PathBuf,
    pub junit: Option<PathBuf>,
    /// The project root, absolute (for the commands printed next).
    pub root: PathBuf,
}

/// `fleet-dr-drill-20261122t051500z`: sortable, unique per second, and kept
/// short (ELBv2 names derived from it are hashed to 32 characters anyway).
pub fn drill_environment(environment: &str, now_ms: i64) -> String {
    let now = jiff::Timestamp::from_millisecond(now_ms).unwrap_or_else(|_| jiff::Timestamp::now());
    format!("{environment}-drill-{}", now.strftime("%Y%m%dt%H%M%Sz"))
}

/// Runs a drill of `request.runbook` to its end (or its first pause).
pub async fn drill<C: Connect>(
    ctx: &Context<'_>,
    connect: &C,
    request: &DrillRequest,
    cancel: &CancellationToken,
) -> Result<DrillOutcome, Error> {
    // Bad input touches nothing: checked before anything is loaded or asked.
    let given = match &request.run_id {
        Some(id) => Some(given_run_id(ctx.store.as_ref(), id)?),
        None => None,
    };
    let mut loaded = load(request.root.as_deref(), &request.runbook)?;
    let source = loaded.runbook().clone();
    retarget_at_drill(ctx, request, &mut loaded)?;
    let (environment, region) = (
        loaded.runbook().environment.clone(),
        loaded.runbook().region.clone(),
    );
    let rebake = source.drill.rebake || request.rebake;
    // Every drill sweeps first: the runbook's expired drills' leftovers.
    // Boxed, like the conclusion: the drill's future is deep enough.
    let swept = Box::pin(sweep_first(
        ctx,
        connect,
        &loaded,
        &source.environment,
        request,
    ))
    .await;
    let provider = connect.connect(&region).await?;
    // RTO's zero: the cloud is reachable (starting a sandbox is not recovery).
    let began = ctx.clock.now();
    let run_id = match given {
        Some(id) => id,
        None => new_run_id(ctx.clock),
    };
    let lock = EnvLock::acquire(ctx.store.as_ref(), &environment, &region, &run_id)?;
    // On everything the drill creates, from its first call: a drill that
    // dies leaves what `drctl sweep` finds once this has passed.
    let expires_at = began + source.drill_ttl().as_millis() as i64;
    loaded.set_lifetime(Some(Lifetime {
        drill: run_id.clone(),
        expires_at,
    }));
    let snapshot =
        run::observe_for(&provider, &loaded.project, loaded.runbook(), ctx.clock).await?;
    refuse_built(&snapshot, &environment, &source.name)?;
    ctx.sink.event(&Shown::DrillStage {
        message: format!(
            "Drill of {}: rebuilding from nothing in the isolated environment {environment} ({region}); {} is not touched.",
            source.name, source.environment
        ),
    });
    let plan = plan_observed(&loaded, &snapshot)?;
    ctx.sink.event(&Shown::Planned {
        plan: Box::new(plan::redacted(&plan)),
    });
    let forecast = forecast_at_start(ctx, &loaded, &plan, &source.name);
    let auto_approve =
        (source.drill.auto_approve && !request.interactive).then(|| DRILL_POLICY.to_string());
    let expiry = Expiry::watch(ctx.clock, expires_at, cancel);
    let session = Session {
        ctx,
        connect,
        provider: &provider,
        loaded: &loaded,
        parallelism: request.parallelism,
        cancel: expiry.token(),
    };
    let journal = start_run(
        &session,
        RunStart {
            plan: &plan,
            sources: sources(&loaded.project, loaded.runbook())?,
            run_id: &run_id,
            auto_approve,
            drill: Some(DrillStart {
                source_environment: source.environment.clone(),
                teardown: source.drill.teardown.name().into(),
                junit: request.junit.as_ref().map(|p| absolute(p)),
                started_at: began,
                rebake,
                expires_at: Some(expires_at),
                swept,
                forecast: Some(forecast),
            }),
        },
    )?;
    // An error that stops the rebuild (not a failed step: those are in the
    // RunEnd) still ends in teardown and a report: nobody is watching.
    let end = drive(&session, &journal, false).await;
    let expired = expiry.fired();
    drop(expiry);
    // Boxed: the drill's whole future (rebuild, checks, teardown, report)
    // is otherwise one type too deep for the compiler's layout query.
    let concluding = Concluding {
        ctx,
        connect,
        provider: &provider,
        loaded: &loaded,
        journal: &journal,
        request,
        cancel,
        expired,
    };
    let outcome = Box::pin(concluding.conclude(end)).await;
    drop(lock);
    outcome
}

/// The RTO forecast of the drill's plan, from the runbook's drills before
/// it, said as the drill starts (its report sets it against the measured
/// RTO). Past reports that cannot be read leave the forecast to the priors:
/// the drill itself does not need them.
fn forecast_at_start(
    ctx: &Context<'_>,
    loaded: &Loaded,
    plan: &plan::Plan,
    runbook: &str,
) -> crate::forecast::Forecast {
    let measured = super::history::measured_in(ctx.store.as_ref(), runbook).unwrap_or_else(|e| {
        tracing::warn!("forecasting from the priors alone: {}", e.render());
        Default::default()
    });
    let forecast = crate::app::forecast(loaded, plan, &measured);
    let chain: Vec<&str> = forecast
        .critical_path
        .iter()
        .map(|s| s.step.as_str())
        .collect();
    ctx.sink.event(&Shown::DrillStage {
        message: format!(
            "Forecast RTO {} (critical path: {}).",
            crate::forecast::duration(forecast.rto_ms),
            if chain.is_empty() {
                "no step takes time".to_string()
            } else {
                chain.join(" → ")
            }
        ),
    });
    forecast
}

/// Sweeps what the runbook's expired drills left (in its region and image
/// copy regions), before the drill builds; one line per drill swept. A
/// sweep that cannot run does not stop the drill: its line says why.
async fn sweep_first<C: Connect>(
    ctx: &Context<'_>,
    connect: &C,
    loaded: &Loaded,
    source_environment: &str,
    request: &DrillRequest,
) -> Vec<String> {
    let sweep = SweepRequest {
        yes: true,
        parallelism: request.parallelism,
        settle: request.settings.leak_settle.clone(),
        drills_of: Some(source_environment.to_string()),
        ..SweepRequest::new(Vec::new())
    };
    let regions = super::sweep::regions_of(&loaded.project);
    ctx.sink.event(&Shown::DrillStage {
        message: format!(
            "Sweeping expired drills of {source_environment} in {} …",
            regions.join(", ")
        ),
    });
    match super::sweep::sweep_in(ctx, connect, &loaded.project, &regions, &sweep).await {
        Ok(summary) => {
            let now = ctx.clock.now();
            let lines: Vec<String> = (summary.drills.iter())
                .map(|d| match (d.failed.is_empty(), d.left.is_empty()) {
                    (true, true) => d.line(now),
                    _ => format!(
                        "{} — incomplete: {}",
                        d.line(now),
                        d.failed
                            .iter()
                            .chain(&d.left)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                })
                .collect();
            for line in &lines {
                ctx.sink.event(&Shown::DrillStage {
                    message: format!("Swept {line}"),
                });
            }
            lines
        }
        Err(e) => vec![format!("the sweep before the drill could not run: {e}")],
    }
}

/// Points the loaded runbook at the drill's own environment (`--environment`,
/// or a new one named by the time) and region; never a runbook's.
fn retarget_at_drill(
    ctx: &Context<'_>,
    request: &DrillRequest,
    loaded: &mut Loaded,
) -> Result<(), Error> {
    let source = loaded.runbook();
    let region = request.region.clone().unwrap_or(source.region.clone());
    let environment = request
        .environment
        .clone()
        .unwrap_or_else(|| drill_environment(&source.environment, ctx.clock.now()));
    if let Some(owner) = crate::app::claimed_by(&loaded.project, &environment) {
        return Err(Error::usage(
            format!("a drill never runs in a runbook's environment ({environment} is {owner}'s)"),
            Some("leave out --environment, or give one of the drill's own".into()),
        ));
    }
    let rebake = source.drill.rebake || request.rebake;
    loaded.retarget(&environment, &region);
    loaded.set_rebake(rebake);
    Ok(())
}

/// A drill rebuilds from nothing: an environment that holds anything is
/// refused.
fn refuse_built(snapshot: &Snapshot, environment: &str, runbook: &str) -> Result<(), Error> {
    if snapshot.is_empty() {
        return Ok(());
    }
    Err(Error::usage(
        format!(
            "environment {environment} already holds {} resource(s); a drill rebuilds from nothing",
            snapshot.len()
        ),
        Some(format!(
            "leave out --environment for a fresh one, or remove it first: drctl destroy {runbook} --environment {environment}"
        )),
    ))
}

/// Continues a drill run: its phases if they are not done, then the checks,
/// teardown, leak check and report.
pub async fn resume<C: Connect>(
    ctx: &Context<'_>,
    connect: &C,
    run_id: &str,
    parallelism: usize,
    cancel: &CancellationToken,
) -> Result<DrillOutcome, Error> {
    let journal = Journal::open(ctx.store.as_ref(), run_id)?;
    crate::notify::watch(&journal)?;
    let events = journal.events()?;
    if let Some(Event::DrillFinished { report, .. }) = events
        .iter()
        .find(|e| matches!(e, Event::DrillFinished { .. }))
    {
        return Err(Error::usage(
            format!(
                "drill {run_id} is finished; its report is {}",
                report.display()
            ),
            None,
        ));
    }
    let Some(Event::RunStarted {
        root,
        runbook_file,
        environment,
        region,
        drill: Some(start),
        ..
    }) = events.first()
    else {
        return Err(Error::usage(format!("run {run_id} is not a drill"), None));
    };
    // Past its ttl, a drill is not rebuilt further: it ends as expired.
    let expired = start.expires_at.is_some_and(|at| ctx.clock.now() >= at);
    let end = match run_state(&events).status {
        _ if expired => RunEnd::Interrupted(Report::default()),
        RunStatus::Succeeded => RunEnd::Succeeded(Report::default()),
        RunStatus::Rejected => RunEnd::Rejected {
            phase: String::new(),
            by: "a person".into(),
        },
        _ => {
            // The run's own continuation; the drill concludes in its own way.
            crate::app::resume::continue_run(ctx, connect, run_id, parallelism, cancel)
                .await?
                .end
        }
    };
    let end = Ok(end);
    let mut loaded = load_file(root, runbook_file)?;
    loaded.retarget(environment, region);
    loaded.set_rebake(start.rebake);
    loaded.set_lifetime(start.lifetime(run_id));
    let provider = connect.connect(region).await?;
    let lock = EnvLock::acquire(ctx.store.as_ref(), environment, region, run_id)?;
    let request = DrillRequest {
        root: Some(root.clone()),
        runbook: runbook_file.display().to_string(),
        environment: Some(environment.clone()),
        region: Some(region.clone()),
        interactive: false,
        junit: start.junit.clone(),
        rebake: start.rebake,
        parallelism,
        settings: DrillSettings::default(),
        // Already named: this is its conclusion.
        run_id: None,
    };
    let concluding = Concluding {
        ctx,
        connect,
        provider: &provider,
        loaded: &loaded,
        journal: &journal,
        request: &request,
        cancel,
        expired,
    };
    let outcome = Box::pin(concluding.conclude(end)).await;
    drop(lock);
    outcome
}

/// A run id given on the command line: a file name of its own (letters,
/// digits, `-`, `_`, `.`; not `.`-first) that no run has yet.
fn given_run_id(store: &dyn crate::store::RunStore, id: &str) -> Result<String, Error> {
    let fine = !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !fine {
        return Err(Error::usage(
            format!("--run-id {id:?} is not a run id"),
            Some("use 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'".into()),
        ));
    }
    if store.has_run(id) {
        return Err(Error::usage(
            format!("run {id} exists already"),
            Some("give a new --run-id, or `drctl resume` that run".into()),
        ));
    }
    Ok(id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drill_environments_are_named_by_their_start() {
        // 2026-11-22T05:15:00Z
        assert_eq!(
            drill_environment("fleet-dr", 1_795_324_500_000),
            "fleet-dr-drill-20261122t051500z"
        );
    }
}
