//! `drctl sweep`: what expired drills left, found by their tags in every
//! region the runbooks and their image copies use, deleted dependents first
//! through the same executor as `destroy`, each environment as a journaled
//! run of its own, then checked with the leak check: nothing may be left.
//!
//! Safety: only objects carrying `drctl:drill` and a `drctl:expires` that
//! has passed are touched (or, in a shared store, any `drctl:expires` once
//! the drill's lease has lapsed); an environment a runbook names is never
//! touched at all; an environment a live run holds is left alone.
//!
//! - `find`: the reads (tagging API, DescribeTags, discovery) and the rule.
//! - `summary`: what a sweep returns.

mod find;
pub mod summary;

use std::path::PathBuf;
use std::time::Duration;

use crate::app::{self, new_run_id, Connect, Context};
use crate::cloud::aws::AwsProvider;
use crate::error::Error;
use crate::events::{Answer, Event as Shown, Question};
use crate::execute::{self, Event as Progress, OutcomeKind};
use crate::journal::{current_user, host_name, Event, Journal, RunStatus};
use crate::lock::EnvLock;
use crate::model::{ExprKind, Part, Project, ResourceKind};
use crate::run;

pub use summary::{Kept, SweepReason, SweepSummary, SweptDrill};

/// The phase name a sweep's journaled run records (never resumed as a
/// runbook's phases: a sweep starts again from what is tagged).
pub use crate::app::traffic::SWEEP_PHASE;

pub struct SweepRequest {
    pub root: Option<PathBuf>,
    /// Runbook paths or names; none: every runbook of the project.
    pub runbooks: Vec<String>,
    /// Where to look; none: the runbooks' regions and image copy regions.
    pub regions: Vec<String>,
    /// List only: no mutating call, no journal.
    pub dry_run: bool,
    /// Do not ask.
    pub yes: bool,
    pub parallelism: usize,
    /// Pauses before looking for leftovers again (AWS's indexes lag).
    pub settle: Vec<Duration>,
    /// Only the drills of this environment (`<env>-drill-…`): a drill's
    /// sweep before it builds.
    pub drills_of: Option<String>,
}

impl SweepRequest {
    pub fn new(runbooks: Vec<String>) -> SweepRequest {
        SweepRequest {
            root: None,
            runbooks,
            regions: Vec::new(),
            dry_run: false,
            yes: false,
            parallelism: 8,
            settle: vec![Duration::from_secs(5), Duration::from_secs(15)],
            drills_of: None,
        }
    }
}

/// One environment found sweepable, before anything is deleted.
struct Found {
    drill: SweptDrill,
    objects: Vec<crate::world::ObservedResource>,
    provider: AwsProvider,
}

/// Finds and (unless `dry_run`) sweeps.
pub async fn sweep<C: Connect>(
    ctx: &Context<'_>,
    connect: &C,
    request: &SweepRequest,
) -> Result<SweepSummary, Error> {
    let project = load_project(request)?;
    let regions = if request.regions.is_empty() {
        regions_of(&project)
    } else {
        request.regions.clone()
    };
    sweep_in(ctx, connect, &project, &regions, request).await
}

/// Sweeps the given regions of a loaded project (a drill sweeps its
/// runbook's before building).
pub(crate) async fn sweep_in<C: Connect>(
    ctx: &Context<'_>,
    connect: &C,
    project: &Project,
    regions: &[String],
    request: &SweepRequest,
) -> Result<SweepSummary, Error> {
    let mut summary = SweepSummary {
        dry_run: request.dry_run,
        regions: regions.to_vec(),
        ..SweepSummary::default()
    };
    let mut found = Vec::new();
    for region in regions {
        let provider = connect.connect(region).await?;
        let mut here = find_in(ctx, project, &provider, region, &mut summary.kept).await?;
        if let Some(env) = &request.drills_of {
            let prefix = format!("{env}-drill-");
            here.retain(|f| f.drill.environment.starts_with(&prefix));
            summary.kept.retain(|k| k.environment.starts_with(&prefix));
        }
        found.extend(here);
    }
    for f in &found {
        ctx.sink.event(&Shown::DrillStage {
            message: format!(
                "{} {}",
                if request.dry_run {
                    "Would sweep"
                } else {
                    "Sweeping"
                },
                f.drill.line(ctx.clock.now())
            ),
        });
    }
    if request.dry_run || found.is_empty() {
        summary.drills = found.into_iter().map(|f| f.drill).collect();
        return Ok(summary);
    }
    if !request.yes {
        confirm(ctx, &found)?;
    }
    for f in found {
        summary
            .drills
            .push(sweep_one(ctx, connect, project, f, request).await?);
    }
    Ok(summary)
}

/// Every environment in `region` that holds sweepable objects.
async fn find_in(
    ctx: &Context<'_>,
    project: &Project,
    provider: &AwsProvider,
    region: &str,
    kept: &mut Vec<Kept>,
) -> Result<Vec<Found>, Error> {
    let lapsed = lapsed_leases(ctx, region);
    let now = ctx.clock.now();
    let mut found = Vec::new();
    for env in find::drill_environments(provider, now, &lapsed).await? {
        let keep = |reason: String| Kept {
            environment: env.clone(),
            region: region.to_string(),
            reason,
        };
        if let Some(owner) = app::claimed_by(project, &env) {
            kept.push(keep(format!(
                "runbook {owner}'s environment: never swept, whatever its tags"
            )));
            continue;
        }
        let observed = run::observe(provider, &env, ctx.clock).await?;
        let observed: Vec<_> = observed.objects().cloned().collect();
        let lease_lapsed = lapsed.contains(&env);
        let eligible = find::eligible(&observed, now, lease_lapsed);
        if eligible.kept > 0 {
            kept.push(keep(format!(
                "{} resource(s) without a drctl:expires in the past left alone",
                eligible.kept
            )));
        }
        if eligible.objects.is_empty() {
            continue;
        }
        let mut objects = eligible.objects;
        objects.sort_by_key(|o| {
            (
                crate::planner::normalize::delete_rank(o.address.kind),
                o.address.clone(),
            )
        });
        let expired = eligible.expires_at.is_some_and(|at| at <= now);
        found.push(Found {
            drill: SweptDrill {
                environment: env.clone(),
                region: region.to_string(),
                started_at: summary::started_at(eligible.drill.as_deref(), &env),
                drill: eligible.drill,
                expired_at: eligible.expires_at,
                reason: if expired {
                    SweepReason::Expired
                } else {
                    SweepReason::LeaseLapsed
                },
                resources: objects
                    .iter()
                    .map(|o| (o.address.to_string(), o.id.clone()))
                    .collect(),
                run_id: None,
                failed: Vec::new(),
                left: Vec::new(),
            },
            objects,
            provider: provider.clone(),
        });
    }
    Ok(found)
}

/// Environments (in `region`) whose lock's lease in the shared store has
/// lapsed: their run's process is gone. A local store has no leases.
fn lapsed_leases(ctx: &Context<'_>, region: &str) -> Vec<String> {
    let suffix = format!("@{region}");
    let locks = ctx.store.environment_locks().unwrap_or_else(|e| {
        tracing::warn!("cannot read the store's locks: {e}");
        Vec::new()
    });
    locks
        .into_iter()
        // As a takeover counts it: LastModified has whole seconds.
        .filter(|l| {
            l.lease
                .is_some_and(|lease| lease.renewed_ms_ago > lease.lease_ms as i64 + 1000)
        })
        .filter_map(|l| l.name.strip_suffix(&suffix).map(str::to_string))
        .collect()
}

fn confirm(ctx: &Context<'_>, found: &[Found]) -> Result<(), Error> {
    let count: usize = found.iter().map(|f| f.objects.len()).sum();
    let question = Question::Confirm {
        prompt: format!(
            "Delete {count} resource(s) of {} expired drill(s)?",
            found.len()
        ),
        expected: "yes".into(),
    };
    match ctx.sink.ask(&question) {
        Some(Answer::Approve) => Ok(()),
        Some(_) => Err(Error::Declined),
        None => Err(Error::usage(
            "refusing to sweep without approval: no terminal to ask on",
            Some("pass --yes to sweep without asking (or --dry-run to list)".into()),
        )),
    }
}

/// Deletes one environment's sweepable objects as a journaled run, then
/// looks for what is left.
async fn sweep_one<C: Connect>(
    ctx: &Context<'_>,
    connect: &C,
    project: &Project,
    found: Found,
    request: &SweepRequest,
) -> Result<SweptDrill, Error> {
    let Found {
        mut drill,
        objects,
        provider,
    } = found;
    let run_id = format!("sweep-{}", new_run_id(ctx.clock));
    let _lock = match EnvLock::acquire(
        ctx.store.as_ref(),
        &drill.environment,
        &drill.region,
        &run_id,
    ) {
        Ok(lock) => lock,
        Err(e) => {
            // A live run (the drill itself, tearing down) holds it.
            drill.failed.push(format!("not swept: {e}"));
            return Ok(drill);
        }
    };
    let journal = Journal::create(ctx.store.as_ref(), &run_id)?;
    journal.append(&Event::RunStarted {
        at: ctx.clock.now(),
        run_id: run_id.clone(),
        runbook: SWEEP_PHASE.into(),
        root: app::absolute(&project.root),
        runbook_file: PathBuf::new(),
        environment: drill.environment.clone(),
        region: drill.region.clone(),
        phases: vec![SWEEP_PHASE.into()],
        user: current_user(),
        host: host_name(),
        pid: std::process::id(),
        auto_approve: Some(format!(
            "expired drill {}",
            drill.drill.as_deref().unwrap_or("(unknown)")
        )),
        sources: Default::default(),
        approved_cleanup: objects
            .iter()
            .map(|o| (o.address.clone(), o.id.clone()))
            .collect(),
        target: Some(connect.target(&drill.region, &ctx.store.root())),
        drill: None,
    })?;
    crate::journal::index::record(&run_id, &ctx.store.root());
    // The repository's [notify] webhooks hear of its end.
    crate::notify::watch(&journal)?;
    drill.run_id = Some(run_id.clone());
    journal.append(&Event::PhaseStarted {
        at: ctx.clock.now(),
        phase: SWEEP_PHASE.into(),
    })?;
    let journal_error = std::sync::Mutex::new(None);
    // Each batch is journaled before the deletions it announces start;
    // one the journal refuses starts none.
    let report = execute::destroy(&provider, &objects, request.parallelism, &|events| {
        let records: Vec<Event> = events
            .iter()
            .filter_map(|e| match e {
                Progress::Started {
                    address, action, ..
                } => Some(Event::Intent {
                    at: ctx.clock.now(),
                    address: address.clone(),
                    action: *action,
                    depends_on: Vec::new(),
                    phase: None,
                }),
                Progress::Finished(outcome) => Some(Event::Outcome {
                    at: ctx.clock.now(),
                    address: outcome.address.clone(),
                    action: outcome.action,
                    ok: matches!(outcome.result, OutcomeKind::Done(_)),
                    id: String::new(),
                    error: match &outcome.result {
                        OutcomeKind::Done(_) => None,
                        OutcomeKind::Failed(e) => Some(e.clone()),
                        _ => Some("not deleted".into()),
                    },
                }),
                _ => None,
            })
            .collect();
        let written = journal.append_all(&records);
        for event in events {
            ctx.sink.event(&Shown::Step(event.clone()));
        }
        match written {
            Ok(()) => true,
            Err(e) => {
                journal_error.lock().expect("poisoned").get_or_insert(e);
                false
            }
        }
    })
    .await;
    if let Some(e) = journal_error.into_inner().expect("poisoned") {
        return Err(e);
    }
    drill.failed = report
        .failures()
        .map(|o| match &o.result {
            OutcomeKind::Failed(e) => format!("{}: {e}", o.address),
            _ => format!("{}: not deleted", o.address),
        })
        .collect();
    journal.append(&Event::PhaseFinished {
        at: ctx.clock.now(),
        phase: SWEEP_PHASE.into(),
        failed: drill.failed.len(),
        hold: None,
    })?;
    let leftovers =
        crate::drill::leaks::leak_check(&provider, &drill.environment, &request.settle).await?;
    drill.left = leftovers
        .leaks
        .iter()
        .map(|l| format!("{} ({})", l.resource, l.resource_type))
        .collect();
    crate::notify::sweep_finished(
        &journal,
        crate::notify::SweepResult {
            dry_run: false,
            regions: vec![drill.region.clone()],
            drills: drill.drill.iter().cloned().collect(),
            found: objects.len(),
            deleted: objects.len().saturating_sub(drill.failed.len()),
            left: drill.left.clone(),
        },
    );
    journal.append(&Event::RunFinished {
        at: ctx.clock.now(),
        status: if drill.failed.is_empty() && drill.left.is_empty() {
            RunStatus::Succeeded
        } else {
            RunStatus::Failed
        },
    })?;
    Ok(drill)
}

/// The runbooks asked for (all when none is), with the others for the
/// environment claims.
fn load_project(request: &SweepRequest) -> Result<Project, Error> {
    let first = request.runbooks.first().map(String::as_str).unwrap_or(".");
    let root = app::project_root(request.root.as_deref(), first);
    let paths = request
        .runbooks
        .iter()
        .map(|r| app::runbook_path(&root, r))
        .collect::<Result<Vec<_>, _>>()?;
    let (project, diags) = crate::load::validate::load_project(&root, &paths);
    if !diags.is_empty() {
        return Err(Error::Invalid(diags));
    }
    Ok(project)
}

/// The runbooks' regions and the regions their images are copied to (as
/// written: a copy region given by a variable needs `--region`).
pub fn regions_of(project: &Project) -> Vec<String> {
    let mut regions: Vec<String> = Vec::new();
    let mut add = |r: &str| {
        if !r.is_empty() && !regions.iter().any(|x| x == r) {
            regions.push(r.to_string());
        }
    };
    for runbook in &project.runbooks {
        add(&runbook.region);
    }
    // Every stack's images (the project's stacks are few; a copy region of
    // a stack no runbook uses costs one look).
    let images = (project.stacks.values())
        .flat_map(|s| &s.resources)
        .filter(|r| r.kind == ResourceKind::Image);
    for (_, value) in images
        .flat_map(|r| &r.attrs)
        .filter(|(k, _)| k == "copy_to_regions")
    {
        let ExprKind::List(items) = &value.kind else {
            continue;
        };
        for item in items {
            if let ExprKind::Str(t) = &item.kind {
                if let [Part::Lit(region)] = t.parts.as_slice() {
                    add(region);
                }
            }
        }
    }
    regions
}
