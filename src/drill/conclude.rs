//! A drill after its phases: the checks (run now, or as journaled before a
//! stop), a rollback of what was cut over if they failed, teardown per
//! policy, the leak check, and the report.

use std::collections::BTreeMap;

use tokio_util::sync::CancellationToken;

use super::rehearse::{DrillOutcome, DrillRequest};
use super::report::{
    CheckResult, CheckStatus, CriticalPath, DrillReport, Rto, Verdict, REPORT_FORMAT,
};
use super::{history, services, teardown, timing};
use crate::app::{self as app_layer, absolute, observe_and_plan, traffic};
use crate::app::{Connect, Context, Loaded, Session};
use crate::clock::Millis;
use crate::cloud::aws::AwsProvider;
use crate::error::Error;
use crate::events::Event as Shown;
use crate::execute::{self, Report};
use crate::journal::{DrillStart, Event, Journal};
use crate::plan::Plan;
use crate::run::RunEnd;
use crate::verify::CheckRun;
use crate::world::Snapshot;

/// Where the drill stands once its phases are over.
pub(super) struct Concluding<'a, C> {
    pub ctx: &'a Context<'a>,
    pub connect: &'a C,
    pub provider: &'a AwsProvider,
    pub loaded: &'a Loaded,
    pub journal: &'a Journal,
    pub request: &'a DrillRequest,
    pub cancel: &'a CancellationToken,
}

/// What the checks found: their results, when the environment counted as
/// recovered, and each service the rebuild cut over with its live colour.
#[derive(Default)]
struct Checked {
    results: Vec<CheckResult>,
    recovered_at: Option<Millis>,
    live: BTreeMap<String, String>,
}

/// The rebuild's journal prologue: who started it, when, and how.
struct Started {
    events: Vec<Event>,
    at: Millis,
    user: String,
    host: String,
    start: DrillStart,
}

impl<C: Connect> Concluding<'_, C> {
    /// After the phases: checks (and a rollback of what was cut over if they
    /// fail), teardown per policy, leak check, report.
    pub(super) async fn conclude(&self, end: Result<RunEnd, Error>) -> Result<DrillOutcome, Error> {
        let (ctx, journal, loaded) = (self.ctx, self.journal, self.loaded);
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
        let started = self.started()?;
        let phases = crate::graph::runbook_phases(&loaded.project, runbook);
        let has_services = !traffic::services_named(loaded, None)?.is_empty();
        let recorded = recorded_checks(&started.events);
        // What the rebuild left, observed and planned once: the checks read
        // its outputs, the report its images.
        let checks_began = ctx.clock.now();
        let to_check = matches!(end, RunEnd::Succeeded(_)) && recorded.is_none();
        let has_images = !crate::planner::lookups_needed(&loaded.project, runbook).is_empty();
        let rebuilt = match to_check || has_images || has_services {
            true => Some(observe_and_plan(ctx, self.provider, loaded).await),
            false => None,
        };
        let checked = match &end {
            RunEnd::Succeeded(_) => match recorded {
                Some(recorded) => recall(ctx, recorded, &mut failures),
                None => {
                    let events = started.events.as_slice();
                    self.check(
                        rebuilt.as_ref(),
                        events,
                        &phases,
                        checks_began,
                        &mut failures,
                    )
                    .await?
                }
            },
            other => {
                failures.extend(end_failure(other));
                Checked::default()
            }
        };
        // Failed checks after a cutover: traffic goes back before anything is
        // torn down (once: a resumed drill finds it done in the journal).
        let session = Session {
            ctx,
            connect: self.connect,
            provider: self.provider,
            loaded,
            parallelism: self.request.parallelism,
            cancel: self.cancel,
        };
        let rolled_back = services::roll_back_if_checks_failed(
            &session,
            journal,
            &started.events,
            &checked.results,
            &checked.live,
        )
        .await?;
        for failed in rolled_back.iter().filter(|r| !r.ok && r.run_id.is_some()) {
            failures.push(format!(
                "the rollback of {} failed: {}",
                failed.service, failed.note
            ));
        }
        let images = match &rebuilt {
            Some(Ok((_, plan))) => super::images::images_used(plan, &started.events),
            Some(Err(e)) => {
                tracing::warn!("could not read which images the drill used: {}", e.render());
                Vec::new()
            }
            None => Vec::new(),
        };
        let (teardown, leak_check) = teardown::per_policy(
            ctx,
            self.provider,
            &runbook.environment,
            (runbook.drill.teardown, &started.start.teardown),
            self.request,
            &mut failures,
        )
        .await;

        let events = journal.events()?;
        let started_at = started.at;
        let measured = checked.recovered_at.map(|at| at - started_at);
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
            environment: runbook.environment.clone(),
            source_environment: started.start.source_environment.clone(),
            region: runbook.region.clone(),
            run_id: journal.run_id.clone(),
            user: started.user,
            host: started.host,
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
            checks: checked.results,
            images,
            services,
            resources_created: timing::resources_created(&events),
            teardown,
            leak_check,
        };
        let mut finished = history::write_reports(ctx, report, started.start.junit.clone())?;
        finished.root = absolute(&loaded.project.root);
        journal.append(&Event::DrillFinished {
            at: ctx.clock.now(),
            passed: finished.report.passed(),
            report: finished.json.clone(),
        })?;
        Ok(DrillOutcome::Finished(Box::new(finished)))
    }

    /// The journal's prologue; a run that is not a drill is refused.
    fn started(&self) -> Result<Started, Error> {
        let events = self.journal.events()?;
        let Some(Event::RunStarted {
            at,
            user,
            host,
            drill: Some(start),
            ..
        }) = events.first().cloned()
        else {
            return Err(Error::usage(
                format!("run {} is not a drill", self.journal.run_id),
                None,
            ));
        };
        Ok(Started {
            at: if start.started_at > 0 {
                start.started_at
            } else {
                at
            },
            events,
            user,
            host,
            start,
        })
    }

    /// Runs the checks against the rebuilt environment and journals what
    /// they found (unless they could not run, or the drill is stopping).
    async fn check(
        &self,
        rebuilt: Option<&Result<(Snapshot, Plan), Error>>,
        events: &[Event],
        phases: &[crate::graph::PhaseSpec],
        began: Millis,
        failures: &mut Vec<String>,
    ) -> Result<Checked, Error> {
        let (ctx, loaded) = (self.ctx, self.loaded);
        let mut checked = Checked::default();
        let mut ran = true;
        ctx.sink.event(&Shown::DrillStage {
            message: format!(
                "Rebuilt. Running {} check(s) …",
                loaded.runbook().drill.checks.len()
            ),
        });
        let run = match rebuilt {
            Some(Ok(rebuilt)) => {
                let cut_over = app_layer::cut_over_in(events, phases);
                checked.live = app_layer::cut_over_colours(&rebuilt.0, &cut_over);
                let how = CheckRun {
                    clock: ctx.clock,
                    sink: ctx.sink,
                    provider: self.provider,
                    project: &loaded.project,
                    runbook: loaded.runbook(),
                    run_id: &self.journal.run_id,
                    health_deadline: self.request.settings.health_deadline,
                };
                crate::verify::run_all(&how, rebuilt, self.cancel)
                    .await
                    .map_err(|e| e.to_string())
            }
            Some(Err(e)) => Err(e.to_string()),
            None => unreachable!("observed for the checks"),
        };
        match run {
            Ok(done) => checked.results = done,
            Err(e) => {
                ran = false;
                failures.push(format!("the checks could not run: {e}"));
            }
        }
        failures.extend(check_failures(&checked.results));
        if failures.is_empty() {
            // Recovered when the last check that passed did; a skipped
            // check (a name not in DNS yet) is waited for, not timed.
            checked.recovered_at = checked
                .results
                .iter()
                .filter(|c| c.status == CheckStatus::Passed)
                .map(|c| c.started_at + c.duration_ms)
                .max()
                .or(Some(began));
        }
        if ran && !self.cancel.is_cancelled() {
            self.journal.append(&Event::DrillChecked {
                at: ctx.clock.now(),
                results: serde_json::to_value(&checked.results).unwrap_or_default(),
                recovered_at: checked.recovered_at,
                live: checked.live.clone(),
            })?;
        }
        Ok(checked)
    }
}

/// The check results a run journaled before it was stopped, if it got
/// that far.
type Recorded = (serde_json::Value, Option<Millis>, BTreeMap<String, String>);

fn recorded_checks(events: &[Event]) -> Option<Recorded> {
    events.iter().find_map(|e| match e {
        Event::DrillChecked {
            results,
            recovered_at,
            live,
            ..
        } => Some((results.clone(), *recovered_at, live.clone())),
        _ => None,
    })
}

/// Checked before the drill was stopped: the environment may be half torn
/// down now, so the results stand as recorded.
fn recall(ctx: &Context<'_>, recorded: Recorded, failures: &mut Vec<String>) -> Checked {
    let (results, recovered_at, live) = recorded;
    ctx.sink.event(&Shown::DrillStage {
        message: "The checks ran before the drill was stopped; their results stand.".into(),
    });
    match serde_json::from_value::<Vec<CheckResult>>(results) {
        Ok(results) => {
            failures.extend(check_failures(&results));
            Checked {
                results,
                recovered_at,
                live,
            }
        }
        // Never read as "no checks": that would pass the drill.
        Err(e) => {
            failures.push(format!("the journaled check results do not read: {e}"));
            Checked {
                live,
                ..Checked::default()
            }
        }
    }
}

/// Why a rebuild that did not succeed failed the drill (`None` for one that
/// did nothing at all).
fn end_failure(end: &RunEnd) -> Option<String> {
    match end {
        RunEnd::Succeeded(_) | RunEnd::Paused { .. } => None,
        RunEnd::Failed(report) if report.outcomes.is_empty() => None,
        RunEnd::Failed(report) => {
            let steps: Vec<String> = report
                .failures()
                .map(|o| match &o.result {
                    execute::OutcomeKind::Failed(e) => format!("{}: {e}", o.address),
                    _ => o.address.to_string(),
                })
                .collect();
            Some(format!(
                "the rebuild failed; not done: {}",
                steps.join("; ")
            ))
        }
        RunEnd::Rejected { phase, by } if !phase.is_empty() => {
            Some(format!("rejected at the gate before {phase} by {by}"))
        }
        RunEnd::Rejected { .. } => Some("rejected at a gate".into()),
        RunEnd::Interrupted(_) => Some("interrupted (Ctrl-C) before the rebuild finished".into()),
    }
}

fn check_failures(results: &[CheckResult]) -> Vec<String> {
    results
        .iter()
        .filter(|c| c.status == CheckStatus::Failed)
        .map(|c| format!("check {} failed: {}", c.name, c.detail))
        .collect()
}
