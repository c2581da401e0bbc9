//! plan and outputs: the environment observed by its tags and the runbook
//! planned against it; no state file, nothing changed.

use std::path::PathBuf;

use super::{absolute, load, source_hash, sources, Connect, Context, Loaded, SavedPlan};
use crate::cloud::aws::AwsProvider;
use crate::error::Error;
use crate::events::{Event as Shown, NextStep};
use crate::forecast::{Forecast, Measured};
use crate::plan::{self, Plan};
use crate::run;
use crate::world::Snapshot;

pub struct PlanRequest {
    /// `--root`; otherwise found from the runbook's path.
    pub root: Option<PathBuf>,
    /// A runbook path or name.
    pub runbook: String,
    /// Save the plan here for `apply FILE`.
    pub out: Option<PathBuf>,
    /// Forecast the plan's RTO, from what the runbook's past drills
    /// measured (`plan --forecast`).
    pub forecast: Option<Measured>,
}

/// A plan, and its RTO forecast when one was asked for.
#[derive(Debug)]
pub struct Planned {
    pub plan: Plan,
    pub forecast: Option<Forecast>,
}

/// Observes the environment and plans the runbook against it.
pub async fn plan<C: Connect>(
    ctx: &Context<'_>,
    connect: &C,
    request: &PlanRequest,
) -> Result<Planned, Error> {
    let mut loaded = load(request.root.as_deref(), &request.runbook)?;
    loaded.reached_through(connect, &ctx.store.root());
    let runbook = loaded.runbook();
    let provider = connect.connect(&runbook.region).await?;
    let plan = make_plan(ctx, &provider, &loaded).await?;
    let shown = plan::redacted(&plan);
    ctx.sink.event(&Shown::Planned {
        plan: Box::new(shown.clone()),
    });
    if let Some(out) = &request.out {
        // Saved without its secrets: `apply FILE` plans again from the same
        // files and world and runs that plan if it is this one.
        let saved = SavedPlan {
            drctl_plan: plan::PLAN_FORMAT,
            root: absolute(&loaded.project.root),
            runbook_file: absolute(&runbook.file),
            target: Some(connect.target(&runbook.region, &ctx.store.root())),
            plan: shown,
        };
        saved.write(out)?;
        ctx.sink.event(&Shown::PlanSaved {
            path: out.clone(),
            apply_with: NextStep::ApplySaved { plan: out.clone() },
        });
    }
    let forecast = (request.forecast.as_ref()).map(|measured| forecast(&loaded, &plan, measured));
    Ok(Planned { plan, forecast })
}

/// The RTO forecast of `plan`: its steps timed by what past drills
/// `measured` (else the runbook's `[forecast.priors]`, else drctl's
/// priors), run as when no gate waits on a person, its phases'
/// `barrier = true` kept.
pub fn forecast(loaded: &Loaded, plan: &Plan, measured: &Measured) -> Forecast {
    let runbook = loaded.runbook();
    let barriers = crate::graph::runbook_phases(&loaded.project, runbook)
        .into_iter()
        .filter(|p| p.barrier)
        .map(|p| p.name)
        .collect();
    crate::forecast::forecast(&crate::forecast::Inputs {
        plan,
        barriers: &barriers,
        priors: &runbook.forecast_priors,
        measured,
    })
}

/// Observes the runbook's environment (and its image lookups) and plans it.
pub(crate) async fn make_plan(
    ctx: &Context<'_>,
    provider: &AwsProvider,
    loaded: &Loaded,
) -> Result<Plan, Error> {
    let runbook = loaded.runbook();
    let snapshot = run::observe_for(provider, &loaded.project, runbook, ctx.clock).await?;
    plan_observed(loaded, &snapshot)
}

/// [`make_plan`] of a world already observed.
pub(crate) fn plan_observed(loaded: &Loaded, snapshot: &Snapshot) -> Result<Plan, Error> {
    let runbook = loaded.runbook();
    let hash = source_hash(&sources(&loaded.project, runbook)?);
    Ok(crate::planner::plan(
        &loaded.project,
        runbook,
        snapshot,
        hash,
    ))
}

pub struct OutputRequest {
    pub root: Option<PathBuf>,
    /// A runbook path or name.
    pub runbook: String,
}

/// The runbook's root stacks' outputs, read from what exists (by tags):
/// no state file.
pub async fn outputs<C: Connect>(
    ctx: &Context<'_>,
    connect: &C,
    request: &OutputRequest,
) -> Result<Vec<plan::OutputValue>, Error> {
    let loaded = load(request.root.as_deref(), &request.runbook)?;
    let runbook = loaded.runbook();
    let provider = connect.connect(&runbook.region).await?;
    let (_, plan) = observe_and_plan(ctx, &provider, &loaded).await?;
    Ok(plan::outputs(&loaded.project, runbook, &plan))
}

/// The runbook's environment observed (with its image lookups) and planned,
/// to read what the world holds (outputs, exports, images), not to apply:
/// no source hash.
pub(crate) async fn observe_and_plan(
    ctx: &Context<'_>,
    provider: &AwsProvider,
    loaded: &Loaded,
) -> Result<(Snapshot, Plan), Error> {
    let runbook = loaded.runbook();
    let snapshot = run::observe_for(provider, &loaded.project, runbook, ctx.clock).await?;
    let plan = crate::planner::plan(&loaded.project, runbook, &snapshot, String::new());
    Ok((snapshot, plan))
}
