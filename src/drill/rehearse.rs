//! A drill from start to end: rebuild the runbook's stacks in an isolated
//! environment through the same run engine as `apply` (journal, gates,
//! resume), then check, tear down, look for leaks, and report. A drill
//! killed anywhere is continued by `drctl resume`, which ends in the same
//! [`conclude`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::app::runs::{drive, start_run};
use crate::app::{self as app_layer, traffic};
use crate::app::{absolute, observe_and_plan, plan_observed};
use crate::app::{load, load_file, new_run_id, sources, Connect, Context, Loaded};
use crate::cloud::aws::AwsProvider;
use crate::error::Error;
use crate::events::Event as Shown;
use crate::execute::{self, Report};
use crate::journal::{run_state, DrillStart, Event, Journal, RunStatus, DRILL_POLICY};
use crate::lock::EnvLock;
use crate::model::Teardown as Policy;
use crate::plan;
use crate::run::{self, RunEnd};

use super::report::{
    CheckResult, CheckStatus, CriticalPath, DrillReport, Rto, Verdict, REPORT_FORMAT,
};
use super::{history, services, teardown, timing};
use crate::verify::CheckRun;

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
    cancel: &AtomicBool,
) -> Result<DrillOutcome, Error> {
    // Bad input touches nothing: checked before anything is loaded or asked.
    let given = match &request.run_id {
        Some(id) => Some(given_run_id(ctx.state_dir, id)?),
        None => None,
    };
    let mut loaded = load(request.root.as_deref(), &request.runbook)?;
    let source = loaded.runbook().clone();
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
    loaded.retarget(&environment, &region);
    let rebake = source.drill.rebake || request.rebake;
    loaded.set_rebake(rebake);
    let provider = connect.connect(&region).await?;
    // RTO's zero: the cloud is reachable (starting a sandbox is not recovery).
    let began = ctx.clock.now();
    let run_id = match given {
        Some(id) => id,
        None => new_run_id(ctx.clock),
    };
    let lock = EnvLock::acquire(ctx.state_dir, &environment, &region, &run_id)?;
    let snapshot =
        run::observe_for(&provider, &loaded.project, loaded.runbook(), ctx.clock).await?;
    if !snapshot.is_empty() {
        return Err(Error::usage(
            format!(
                "environment {environment} already holds {} resource(s); a drill rebuilds from nothing",
                snapshot.len()
            ),
            Some(format!(
                "leave out --environment for a fresh one, or remove it first: drctl destroy {} --environment {environment}",
                source.name
            )),
        ));
    }
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
    let auto_approve =
        (source.drill.auto_approve && !request.interactive).then(|| DRILL_POLICY.to_string());
    let journal = start_run(
        ctx,
        connect,
        &loaded,
        &plan,
        sources(&loaded.project, loaded.runbook())?,
        &run_id,
        auto_approve,
        Some(DrillStart {
            source_environment: source.environment.clone(),
            teardown: policy_name(source.drill.teardown).into(),
            junit: request.junit.as_ref().map(|p| absolute(p)),
            started_at: began,
            rebake,
        }),
    )?;
    // An error that stops the rebuild (not a failed step: those are in the
    // RunEnd) still ends in teardown and a report: nobody is watching.
    let end = drive(
        ctx,
        &provider,
        &loaded,
        &journal,
        (request.parallelism, false),
        cancel,
    )
    .await;
    // Boxed: the drill's whole future (rebuild, checks, teardown, report)
    // is otherwise one type too deep for the compiler's layout query.
    let outcome = Box::pin(conclude(
        ctx, connect, &provider, &loaded, &journal, end, request, cancel,
    ))
    .await;
    drop(lock);
    outcome
}

/// Continues a drill run: its phases if they are not done, then the checks,
/// teardown, leak check and report.
pub async fn resume<C: Connect>(
    ctx: &Context<'_>,
    connect: &C,
    run_id: &str,
    parallelism: usize,
    cancel: &AtomicBool,
) -> Result<DrillOutcome, Error> {
    let journal = Journal::open(ctx.state_dir, run_id)?;
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
    let end = match run_state(&events).status {
        RunStatus::Succeeded => RunEnd::Succeeded(Report::default()),
        RunStatus::Rejected => RunEnd::Rejected {
            phase: String::new(),
            by: "a person".into(),
        },
        _ => {
            // The run's own continuation; the drill concludes in its own way.
            crate::app::runs::continue_run(ctx, connect, run_id, parallelism, cancel)
                .await?
                .end
        }
    };
    let end = Ok(end);
    let mut loaded = load_file(root, runbook_file)?;
    loaded.retarget(environment, region);
    loaded.set_rebake(start.rebake);
    let provider = connect.connect(region).await?;
    let lock = EnvLock::acquire(ctx.state_dir, environment, region, run_id)?;
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
    let outcome = Box::pin(conclude(
        ctx, connect, &provider, &loaded, &journal, end, &request, cancel,
    ))
    .await;
    drop(lock);
    outcome
}

/// A run id given on the command line: a file name of its own (letters,
/// digits, `-`, `_`, `.`; not `.`-first) that no run has yet.
fn given_run_id(state_dir: &std::path::Path, id: &str) -> Result<String, Error> {
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
    if crate::store::Layout::new(state_dir).run(id).exists() {
        return Err(Error::usage(
            format!("run {id} exists already"),
            Some("give a new --run-id, or `drctl resume` that run".into()),
        ));
    }
    Ok(id.to_string())
}

fn check_failures(results: &[CheckResult]) -> Vec<String> {
    results
        .iter()
        .filter(|c| c.status == CheckStatus::Failed)
        .map(|c| format!("check {} failed: {}", c.name, c.detail))
        .collect()
}

/// After the phases: checks (and a rollback of what was cut over if they
/// fail), teardown per policy, leak check, report.
#[allow(clippy::too_many_arguments)]
async fn conclude<C: Connect>(
    ctx: &Context<'_>,
    connect: &C,
    provider: &AwsProvider,
    loaded: &Loaded,
    journal: &Journal,
    end: Result<RunEnd, Error>,
    request: &DrillRequest,
    cancel: &AtomicBool,
) -> Result<DrillOutcome, Error> {
    let mut failures = Vec::new();
    let end = end.unwrap_or_else(|e| {
        failures.push(format!("the rebuild stopped: {e}"));
        RunEnd::Failed(Report::default())
    });
    if let RunEnd::Paused {
        phase,
        approvals,
        needed,
    } = end
    {
        return Ok(DrillOutcome::Paused {
            run_id: journal.run_id.clone(),
            phase,
            approvals,
            needed,
        });
    }
    let runbook = loaded.runbook();
    let env = runbook.environment.clone();
    let started = journal.events()?;
    let Some(Event::RunStarted {
        at: run_started_at,
        user,
        host,
        drill: Some(start),
        ..
    }) = started.first().cloned()
    else {
        return Err(Error::usage(
            format!("run {} is not a drill", journal.run_id),
            None,
        ));
    };
    let started_at = if start.started_at > 0 {
        start.started_at
    } else {
        run_started_at
    };
    let mut results: Vec<CheckResult> = Vec::new();
    let mut recovered_at = None;
    // Each service the rebuild cut over, with its live colour when checked.
    let mut live = BTreeMap::new();
    let checked = started.iter().find_map(|e| match e {
        Event::DrillChecked {
            results,
            recovered_at,
            live,
            ..
        } => Some((results.clone(), *recovered_at, live.clone())),
        _ => None,
    });
    let phases = crate::graph::runbook_phases(&loaded.project, runbook);
    let has_services = !traffic::services_named(loaded, None)?.is_empty();
    // What the rebuild left, observed and planned once: the checks read its
    // outputs, the report its images.
    let checks_began = ctx.clock.now();
    let to_check = matches!(end, RunEnd::Succeeded(_)) && checked.is_none();
    let has_images = !crate::kinds::image::lookups_needed(&loaded.project, runbook).is_empty();
    let rebuilt = match to_check || has_images || has_services {
        // The drill environment as the rebuild left it, and its plan.
        true => Some(observe_and_plan(ctx, provider, loaded).await),
        false => None,
    };
    match &end {
        RunEnd::Succeeded(_) => {
            if let Some((recorded, at, recorded_live)) = checked {
                live = recorded_live;
                // Checked before the drill was stopped: the environment may
                // be half torn down now, so the results stand as recorded.
                ctx.sink.event(&Shown::DrillStage {
                    message: "The checks ran before the drill was stopped; their results stand."
                        .into(),
                });
                match serde_json::from_value(recorded) {
                    Ok(recorded) => {
                        results = recorded;
                        recovered_at = at;
                        failures.extend(check_failures(&results));
                    }
                    // Never read as "no checks": that would pass the drill.
                    Err(e) => {
                        failures.push(format!("the journaled check results do not read: {e}"))
                    }
                }
            } else {
                let mut ran = true;
                ctx.sink.event(&Shown::DrillStage {
                    message: format!("Rebuilt. Running {} check(s) …", runbook.drill.checks.len()),
                });
                let run = match &rebuilt {
                    Some(Ok(rebuilt)) => {
                        live = app_layer::cut_over_colours(
                            &rebuilt.0,
                            &app_layer::cut_over_in(&started, &phases),
                        );
                        let run = CheckRun {
                            clock: ctx.clock,
                            sink: ctx.sink,
                            provider,
                            project: &loaded.project,
                            runbook: loaded.runbook(),
                            run_id: &journal.run_id,
                            health_deadline: request.settings.health_deadline,
                        };
                        crate::verify::run_all(&run, rebuilt, cancel)
                            .await
                            .map_err(|e| e.to_string())
                    }
                    Some(Err(e)) => Err(e.to_string()),
                    None => unreachable!("observed for the checks"),
                };
                match run {
                    Ok(done) => results = done,
                    Err(e) => {
                        ran = false;
                        failures.push(format!("the checks could not run: {e}"));
                    }
                }
                failures.extend(check_failures(&results));
                if failures.is_empty() {
                    // Recovered when the last check that passed did; a skipped
                    // check (a name not in DNS yet) is waited for, not timed.
                    recovered_at = results
                        .iter()
                        .filter(|c| c.status == CheckStatus::Passed)
                        .map(|c| c.started_at + c.duration_ms)
                        .max()
                        .or(Some(checks_began));
                }
                if ran && !cancel.load(std::sync::atomic::Ordering::SeqCst) {
                    journal.append(&Event::DrillChecked {
                        at: ctx.clock.now(),
                        results: serde_json::to_value(&results).unwrap_or_default(),
                        recovered_at,
                        live: live.clone(),
                    })?;
                }
            }
        }
        RunEnd::Failed(report) if report.outcomes.is_empty() => {}
        RunEnd::Failed(report) => {
            let steps: Vec<String> = report
                .failures()
                .map(|o| match &o.result {
                    execute::OutcomeKind::Failed(e) => format!("{}: {e}", o.address),
                    _ => o.address.to_string(),
                })
                .collect();
            failures.push(format!(
                "the rebuild failed; not done: {}",
                steps.join("; ")
            ));
        }
        RunEnd::Rejected { phase, by } if !phase.is_empty() => {
            failures.push(format!("rejected at the gate before {phase} by {by}"))
        }
        RunEnd::Rejected { .. } => failures.push("rejected at a gate".into()),
        RunEnd::Interrupted(_) => {
            failures.push("interrupted (Ctrl-C) before the rebuild finished".into())
        }
        RunEnd::Paused { .. } => unreachable!("returned above"),
    }
    // Failed checks after a cutover: traffic goes back before anything is
    // torn down (once: a resumed drill finds it done in the journal).
    let rolled_back = services::roll_back_if_checks_failed(
        ctx, connect, provider, loaded, journal, &started, &results, &live, request, cancel,
    )
    .await?;
    for failed in rolled_back.iter().filter(|r| !r.ok && r.run_id.is_some()) {
        failures.push(format!(
            "the rollback of {} failed: {}",
            failed.service, failed.note
        ));
    }
    let images = match &rebuilt {
        Some(Ok((_, plan))) => super::images::images_used(plan, &started),
        Some(Err(e)) => {
            tracing::warn!("could not read which images the drill used: {}", e.render());
            Vec::new()
        }
        None => Vec::new(),
    };

    let (teardown, leak_check) = teardown::per_policy(
        ctx,
        provider,
        &env,
        (runbook.drill.teardown, &start.teardown),
        request,
        &mut failures,
    )
    .await;

    let events = journal.events()?;
    let measured = recovered_at.map(|at| at - started_at);
    let target = runbook.rto_target.map(|d| d.as_millis() as i64);
    let phase_timings = timing::phases(&events);
    let services = match &rebuilt {
        Some(Ok((snapshot, _))) => {
            services::services_used(snapshot, &phases, &phase_timings, &rolled_back)
        }
        _ => Vec::new(),
    };
    let mut critical_path: CriticalPath = timing::critical_path(&events);
    critical_path.rto_ratio =
        measured.and_then(|rto| timing::rto_ratio(rto, critical_path.bound_ms));
    let report = DrillReport {
        format: REPORT_FORMAT,
        runbook: runbook.name.clone(),
        environment: env.clone(),
        source_environment: start.source_environment.clone(),
        region: runbook.region.clone(),
        run_id: journal.run_id.clone(),
        user,
        host,
        started_at,
        ended_at: ctx.clock.now(),
        verdict: if failures.is_empty() {
            Verdict::Passed
        } else {
            Verdict::Failed
        },
        failures,
        rto: Rto {
            measured_ms: measured,
            target_ms: target,
            met: measured.zip(target).map(|(m, t)| m <= t),
        },
        critical_path,
        phases: phase_timings,
        gates: timing::gates(&events),
        checks: results,
        images,
        services,
        resources_created: timing::resources_created(&events),
        teardown,
        leak_check,
    };
    let mut finished = history::write_reports(ctx, report, start.junit.clone())?;
    finished.root = absolute(&loaded.project.root);
    journal.append(&Event::DrillFinished {
        at: ctx.clock.now(),
        passed: finished.report.passed(),
        report: finished.json.clone(),
    })?;
    Ok(DrillOutcome::Finished(Box::new(finished)))
}

fn policy_name(policy: Policy) -> &'static str {
    match policy {
        Policy::Always => "always",
        Policy::OnSuccess => "on_success",
        Policy::Never => "never",
    }
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
