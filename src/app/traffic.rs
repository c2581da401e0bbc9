//! `drctl rollback` and `drctl retire`: one service step each, planned from
//! the world as it is, run under the environment's lock and journaled like
//! any run (never resumed as the runbook's phases: they are re-run instead).

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use super::plan_observed;
use super::runs::{start_run, RunResult, RunStart};
use super::{load, sources, Connect, Context, Loaded, Session};
use crate::error::Error;
use crate::events::Event as Shown;
use crate::kinds::service;
use crate::lock::EnvLock;
use crate::model::ResourceKind;
use crate::plan::{self, Change, PhasePlan, Plan};
use crate::run::{self, RunContext};
use crate::world::Address;

/// The phase names of these commands' runs (a space: never a runbook's).
pub const ROLLBACK_PHASE: &str = "drctl rollback";
pub const RETIRE_PHASE: &str = "drctl retire";
/// A sweep's run (`drctl sweep`, defined here so that `resume` can refuse
/// it without reaching up into the drill layer).
pub const SWEEP_PHASE: &str = "drctl sweep";

pub struct TrafficRequest {
    pub root: Option<PathBuf>,
    /// A runbook path or name.
    pub runbook: String,
    /// `stack.service.name` or the service's name; `None`: every service.
    pub service: Option<String>,
    pub parallelism: usize,
}

pub enum TrafficResult {
    Run(RunResult),
    /// Nothing to do, and why (e.g. no colour due for retirement).
    Nothing(String),
}

/// Points each named service's listener back at its previous colour.
pub async fn rollback<C: Connect>(
    ctx: &Context<'_>,
    connect: &C,
    request: &TrafficRequest,
    cancel: &CancellationToken,
) -> Result<TrafficResult, Error> {
    let wanted = request.service.as_deref().ok_or_else(|| {
        Error::usage(
            "rollback needs the service to roll back",
            Some("e.g. drctl rollback web-dr-drill web.service.web".into()),
        )
    })?;
    one_step(
        ctx,
        connect,
        request,
        cancel,
        ROLLBACK_PHASE,
        |planned, snapshot, address| rollback_of(snapshot, planned, address).map(|s| vec![s]),
        Some(wanted),
    )
    .await
}

/// The step pointing `address`'s listener back at its previous colour, from
/// the service as observed and its planned change (the step's template).
pub(super) fn rollback_of(
    snapshot: &crate::world::Snapshot,
    planned: &[&Change],
    address: &Address,
) -> Result<Change, String> {
    back_of(snapshot, planned, address, service::rollback_step)
}

/// `step` made from the service at `address` as observed and its planned
/// change (the step's template).
fn back_of(
    snapshot: &crate::world::Snapshot,
    planned: &[&Change],
    address: &Address,
    step: impl Fn(&crate::world::ObservedResource, &Change) -> Result<Change, String>,
) -> Result<Change, String> {
    let Some(service) = snapshot.get(address) else {
        return Err(format!(
            "{address} does not exist in this environment: nothing to roll back"
        ));
    };
    let template = planned
        .iter()
        .find(|c| &c.address == address)
        .ok_or_else(|| format!("{address} is not planned"))?;
    step(service, template)
}

/// Retires old colours whose `retire_after` has passed (after draining).
pub async fn retire<C: Connect>(
    ctx: &Context<'_>,
    connect: &C,
    request: &TrafficRequest,
    cancel: &CancellationToken,
) -> Result<TrafficResult, Error> {
    one_step(
        ctx,
        connect,
        request,
        cancel,
        RETIRE_PHASE,
        |planned, _, address| {
            Ok(planned
                .iter()
                .filter(|c| &c.address == address)
                .filter_map(|c| service::retirement_step(c))
                .collect())
        },
        request.service.as_deref(),
    )
    .await
}

async fn one_step<C: Connect>(
    ctx: &Context<'_>,
    connect: &C,
    request: &TrafficRequest,
    cancel: &CancellationToken,
    phase: &str,
    steps_of: impl Fn(&[&Change], &crate::world::Snapshot, &Address) -> Result<Vec<Change>, String>,
    wanted: Option<&str>,
) -> Result<TrafficResult, Error> {
    let mut loaded = load(request.root.as_deref(), &request.runbook)?;
    loaded.reached_through(connect, &ctx.store.root());
    let services = services_named(&loaded, wanted)?;
    let command = StepsOf {
        phase,
        approval: format!("{phase} (command)"),
        // Asked for by name: why it cannot be done is the answer.
        refuse: wanted.map(|_| request.runbook.as_str()),
        lock: true,
    };
    let provider = connect.connect(&loaded.runbook().region).await?;
    let session = Session {
        ctx,
        connect,
        provider: &provider,
        loaded: &loaded,
        parallelism: request.parallelism,
        cancel,
    };
    run_steps(&session, &services, &command, steps_of).await
}

/// Sends every canary under way in the runbook's environment back whole to
/// its live colour (a run rejected at a gate between canary weights);
/// `locked`: the caller holds the environment's lock.
pub(super) async fn abort_canaries<C: Connect>(
    session: &Session<'_, C>,
    approval: String,
    locked: bool,
) -> Result<TrafficResult, Error> {
    let services = services_named(session.loaded, None)?;
    let command = StepsOf {
        phase: ROLLBACK_PHASE,
        approval,
        refuse: None,
        lock: !locked,
    };
    let steps_of = |planned: &[&Change], snapshot: &crate::world::Snapshot, address: &Address| {
        back_of(snapshot, planned, address, service::canary_rollback_step).map(|s| vec![s])
    };
    run_steps(session, &services, &command, steps_of).await
}

/// What [`run_steps`] runs, and how it is recorded.
struct StepsOf<'a> {
    phase: &'a str,
    approval: String,
    /// The runbook asked for by name, when one service was: a service whose
    /// step cannot be made is then an error, not skipped.
    refuse: Option<&'a str>,
    /// Take the environment's lock (the caller does not hold it).
    lock: bool,
}

/// Plans the steps `steps_of` makes for `services` from the world as it is
/// and runs them as a run of their own, under the environment's lock.
async fn run_steps<C: Connect>(
    session: &Session<'_, C>,
    services: &[Address],
    what: &StepsOf<'_>,
    steps_of: impl Fn(&[&Change], &crate::world::Snapshot, &Address) -> Result<Vec<Change>, String>,
) -> Result<TrafficResult, Error> {
    let Session {
        ctx,
        provider,
        loaded,
        ..
    } = *session;
    let runbook = loaded.runbook();
    let run_id = super::new_run_id(ctx.clock);
    let lock = match what.lock {
        true => Some(EnvLock::acquire(
            ctx.store.as_ref(),
            &runbook.environment,
            &runbook.region,
            &run_id,
        )?),
        false => None,
    };
    let snapshot = run::observe_for(provider, &loaded.project, runbook, ctx.clock).await?;
    let planned = plan_observed(loaded, &snapshot)?;
    let changes: Vec<&Change> = planned.phases.iter().flat_map(|p| &p.changes).collect();
    let mut steps = Vec::new();
    for address in services {
        match steps_of(&changes, &snapshot, address) {
            Ok(found) => steps.extend(found),
            Err(why) => {
                if let Some(named) = what.refuse {
                    return Err(Error::usage(
                        why,
                        Some(format!("drctl plan {named} shows the service's colours")),
                    ));
                }
            }
        }
    }
    if steps.is_empty() {
        let pending: Vec<String> = changes
            .iter()
            .filter(|c| services.contains(&c.address))
            .flat_map(|c| service::kept_for_rollback(c).cloned())
            .collect();
        let why = if pending.is_empty() {
            "no old colour to retire".to_string()
        } else {
            format!("no old colour is due yet:\n  {}", pending.join("\n  "))
        };
        return Ok(TrafficResult::Nothing(why));
    }
    let command = Command {
        run_id: &run_id,
        phase: what.phase,
        approval: what.approval.clone(),
    };
    let end = run_command(session, planned, steps, &command).await?;
    drop(lock);
    Ok(TrafficResult::Run(RunResult {
        run_id,
        end,
        outputs: Vec::new(),
        after_cutover: None,
    }))
}

/// A command's run: which, under what approval.
pub(super) struct Command<'a> {
    pub run_id: &'a str,
    pub phase: &'a str,
    /// Recorded as the run's approval (the command, or the failed checks).
    pub approval: String,
}

/// Shows `steps` as a one-phase plan and runs it, journaled as its own run.
/// The caller holds the environment's lock.
pub(super) async fn run_command<C: Connect>(
    session: &Session<'_, C>,
    planned: Plan,
    steps: Vec<Change>,
    command: &Command<'_>,
) -> Result<run::RunEnd, Error> {
    let Session { ctx, loaded, .. } = *session;
    let runbook = loaded.runbook();
    let plan = Plan {
        phases: vec![PhasePlan {
            name: command.phase.to_string(),
            gate: "none (the command is the approval)".into(),
            changes: steps,
            cutover: Vec::new(),
            canary_gates: Default::default(),
        }],
        cleanup: Vec::new(),
        ..planned
    };
    ctx.sink.event(&Shown::Planned {
        plan: Box::new(plan::redacted(&plan)),
    });
    let journal = start_run(
        session,
        RunStart {
            plan: &plan,
            sources: sources(&loaded.project, runbook)?,
            run_id: command.run_id,
            auto_approve: Some(command.approval.clone()),
            drill: None,
        },
    )?;
    drive_steps(
        session.provider,
        &session.run_context(&journal, false),
        &plan,
    )
    .await
}

/// Runs `plan`'s one phase as planned, with no gate and no re-planning: a
/// command's single step (`drctl rollback`, `drctl retire`), journaled like
/// every run.
async fn drive_steps(
    provider: &crate::cloud::aws::AwsProvider,
    ctx: &RunContext<'_>,
    plan: &Plan,
) -> Result<run::RunEnd, Error> {
    let report = run::journaled_phase(
        provider,
        ctx,
        plan,
        0,
        &mut crate::execute::Applied::default(),
        run::Opening::default(),
    )
    .await?;
    let report = match run::stopped_after_phase(ctx, report)? {
        Ok(report) => report,
        Err(end) => return Ok(end),
    };
    ctx.journal.append(&crate::journal::Event::RunFinished {
        at: ctx.clock.now(),
        status: crate::journal::RunStatus::Succeeded,
    })?;
    Ok(run::RunEnd::Succeeded(report))
}

/// The runbook's services `wanted` names (all of them if `None`).
pub(crate) fn services_named(loaded: &Loaded, wanted: Option<&str>) -> Result<Vec<Address>, Error> {
    let all: Vec<Address> = crate::graph::runbook_phases(&loaded.project, loaded.runbook())
        .iter()
        .flat_map(|p| &p.stacks)
        .filter_map(|s| loaded.project.stacks.get(s))
        .flat_map(|stack| {
            stack
                .resources
                .iter()
                .filter(|r| r.kind == ResourceKind::Service)
                .map(|r| Address::new(&stack.name, r.kind, &r.name))
                .collect::<Vec<_>>()
        })
        .collect();
    let Some(wanted) = wanted else {
        return Ok(all);
    };
    let matching: Vec<Address> = all
        .iter()
        .filter(|a| wanted.parse::<Address>().is_ok_and(|w| w == **a) || a.name == wanted)
        .cloned()
        .collect();
    match matching.len() {
        1 => Ok(matching),
        0 => Err(Error::usage(
            format!(
                "runbook {} has no service `{wanted}`",
                loaded.runbook().name
            ),
            Some(if all.is_empty() {
                "it declares no service".to_string()
            } else {
                format!(
                    "its services: {}",
                    all.iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }),
        )),
        _ => Err(Error::usage(
            format!("`{wanted}` names several services"),
            Some(format!(
                "name one as stack.service.name: {}",
                matching
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        )),
    }
}

/// A run these commands started is re-run, not resumed as the runbook's phases.
pub(crate) fn refuse_resume(phases: &[String]) -> Result<(), Error> {
    for phase in phases {
        if phase == ROLLBACK_PHASE || phase == RETIRE_PHASE || phase == SWEEP_PHASE {
            return Err(Error::usage(
                format!("this run was `{phase}`, which is not resumed"),
                Some(format!(
                    "run `{phase} …` again: it starts from the listener and colours as they are"
                )),
            ));
        }
    }
    Ok(())
}
