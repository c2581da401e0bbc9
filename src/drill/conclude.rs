//! A drill after its phases: the checks (run now, or as journaled before a
//! stop), a rollback of what was cut over if they failed, teardown per
//! policy, the leak check, and the report.

use tokio_util::sync::CancellationToken;

use super::rehearse::{DrillOutcome, DrillRequest};
use super::report::{
    CheckResult, CheckStatus, CriticalPath, DrillReport, ForecastAgainst, ImageUse, LeakCheck, Rto,
    Teardown, Verdict, REPORT_FORMAT,
};
use super::{history, services, teardown, timing};
use crate::app::{absolute, observe_and_plan, roll_back_if_failed, run_checks, traffic};
use crate::app::{Checked, Checking, Connect, Context, Loaded, RolledBack, Session};
use crate::clock::Millis;
use crate::cloud::aws::AwsProvider;
use crate::error::Error;
use crate::events::Event as Shown;
use crate::execute::{self, Report};
use crate::journal::{DrillStart, Event, Journal};
use crate::plan::Plan;
use crate::run::RunEnd;
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
    /// Stopped at its ttl: torn down whatever the policy, verdict "expired".
    pub expired: bool,
}

/// The rebuild's journal prologue: who started it, when, and how.
struct Started {
    events: Vec<Event>,
    at: Millis,
    user: String,
    host: String,
    start: DrillStart,
}

/// What the drill found before its teardown.
struct Found {
    checked: Checked,
    rolled_back: Vec<RolledBack>,
    /// The rebuilt environment, observed and planned once (when something
    /// reads it): the checks read its outputs, the report its images and
    /// services.
    rebuilt: Option<Result<(Snapshot, Plan), Error>>,
}

/// What the teardown left to report.
struct TornDown {
    images: Vec<ImageUse>,
    teardown: Teardown,
    leak_check: LeakCheck,
}

impl<C: Connect> Concluding<'_, C> {
    /// The drill's run session, for the checks and a rollback.
    fn session(&self) -> Session<'_, C> {
        Session {
            ctx: self.ctx,
            connect: self.connect,
            provider: self.provider,
            loaded: self.loaded,
            parallelism: self.request.parallelism,
            cancel: self.cancel,
        }
    }

    /// After the phases: checks (and a rollback of what was cut over if they
    /// fail), teardown per policy, leak check, report.
    pub(super) async fn conclude(
        mut self,
        end: Result<RunEnd, Error>,
    ) -> Result<DrillOutcome, Error> {
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
        let started = self.started()?;
        if self.expired {
            failures.push(super::expiry::expired_failure(started.start.expires_at));
        }
        let found = self.check(&end, &started, &mut failures).await?;
        // Checks that ran past the ttl (each has a deadline of its own, so
        // they end): expired all the same, and torn down whatever the policy.
        if !self.expired
            && started
                .start
                .expires_at
                .is_some_and(|at| ctx.clock.now() >= at)
        {
            self.expired = true;
            failures.push(super::expiry::expired_failure(started.start.expires_at));
        }
        let images = match &found.rebuilt {
            Some(Ok((_, plan))) => super::images::images_used(plan, &started.events),
            Some(Err(e)) => {
                tracing::warn!("could not read which images the drill used: {}", e.render());
                Vec::new()
            }
            None => Vec::new(),
        };
        let runbook = loaded.runbook();
        let policy = match self.expired {
            true => crate::model::Teardown::Always,
            false => runbook.drill.teardown,
        };
        let (teardown, leak_check) = teardown::per_policy(
            ctx,
            self.provider,
            &runbook.environment,
            policy,
            self.request,
            &mut failures,
        )
        .await;
        if !leak_check.leaks.is_empty() {
            journal.append(&Event::LeakFound {
                at: ctx.clock.now(),
                environment: runbook.environment.clone(),
                resources: leak_check
                    .leaks
                    .iter()
                    .map(|l| format!("{} {}", l.resource_type, l.resource))
                    .collect(),
            })?;
        }
        let torn_down = TornDown {
            images,
            teardown,
            leak_check,
        };
        let junit = started.start.junit.clone();
        let report = self.report(started, found, torn_down, failures)?;
        let mut finished = history::write_reports(ctx, report, junit)?;
        finished.root = absolute(&loaded.project.root);
        journal.append(&Event::DrillFinished {
            at: ctx.clock.now(),
            passed: finished.report.passed(),
            report: finished.json.clone(),
            verdict: Some(
                match finished.report.verdict {
                    Verdict::Passed => "passed",
                    Verdict::Failed => "failed",
                    Verdict::Expired => "expired",
                }
                .into(),
            ),
            rto_ms: finished.report.rto.measured_ms,
            rto_target_ms: finished.report.rto.target_ms,
        })?;
        Ok(DrillOutcome::Finished(Box::new(finished)))
    }

    /// The checks (run now, or as journaled before a stop), then, if one
    /// failed, traffic goes back before anything is torn down (once: a
    /// resumed drill finds it done in the journal).
    async fn check(
        &self,
        end: &RunEnd,
        started: &Started,
        failures: &mut Vec<String>,
    ) -> Result<Found, Error> {
        let (ctx, loaded) = (self.ctx, self.loaded);
        let runbook = loaded.runbook();
        let recorded = Checked::recorded(&started.events);
        let checks_began = ctx.clock.now();
        let to_check = matches!(end, RunEnd::Succeeded(_)) && recorded.is_none();
        let has_images = !crate::planner::lookups_needed(&loaded.project, runbook).is_empty();
        let has_services = !traffic::services_named(loaded, None)?.is_empty();
        let rebuilt = match to_check || has_images || has_services {
            true => Some(observe_and_plan(ctx, self.provider, loaded).await),
            false => None,
        };
        let checked = match (end, recorded) {
            (RunEnd::Succeeded(_), Some(recorded)) => {
                ctx.sink.event(&Shown::DrillStage {
                    message: "The checks ran before the drill was stopped; their results stand."
                        .into(),
                });
                recorded
            }
            (RunEnd::Succeeded(_), None) => {
                let observed = rebuilt.as_ref().expect("observed for the checks");
                self.run_checks(observed, &started.events, checks_began, failures)
                    .await?
            }
            (RunEnd::Interrupted(_), _) if self.expired => Checked::default(),
            (other, _) => {
                failures.extend(end_failure(other));
                Checked::default()
            }
        };
        failures.extend(check_failures(&checked.results));
        let session = self.session();
        let rolled_back =
            roll_back_if_failed(&session, self.journal, &started.events, &checked).await?;
        for failed in rolled_back.iter().filter(|r| !r.ok && r.run_id.is_some()) {
            failures.push(format!(
                "the rollback of {} failed: {}",
                failed.service, failed.note
            ));
        }
        Ok(Found {
            checked,
            rolled_back,
            rebuilt,
        })
    }

    /// Runs the checks against the rebuilt environment (journaled unless
    /// the drill is stopping); checks that could not run fail the drill.
    async fn run_checks(
        &self,
        rebuilt: &Result<(Snapshot, Plan), Error>,
        events: &[Event],
        began: Millis,
        failures: &mut Vec<String>,
    ) -> Result<Checked, Error> {
        let (ctx, loaded) = (self.ctx, self.loaded);
        ctx.sink.event(&Shown::DrillStage {
            message: format!(
                "Rebuilt. Running {} check(s) …",
                loaded.runbook().drill.checks.len()
            ),
        });
        let session = self.session();
        let ran = match rebuilt {
            Ok(observed) => {
                let checking = Checking {
                    observed,
                    health_deadline: self.request.settings.health_deadline,
                    began,
                };
                run_checks(&session, self.journal, events, checking)
                    .await
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        Ok(ran.unwrap_or_else(|e| {
            failures.push(format!("the checks could not run: {e}"));
            Checked::default()
        }))
    }

    /// The drill's report, from its journal and what it found.
    fn report(
        &self,
        started: Started,
        found: Found,
        torn_down: TornDown,
        failures: Vec<String>,
    ) -> Result<DrillReport, Error> {
        let (ctx, loaded) = (self.ctx, self.loaded);
        let runbook = loaded.runbook();
        let events = self.journal.events()?;
        let measured = found.checked.recovered_at.map(|at| at - started.at);
        let target = runbook.rto_target.map(|d| d.as_millis() as i64);
        let phase_timings = timing::phases(&events);
        let phases = crate::graph::runbook_phases(&loaded.project, runbook);
        let services = match &found.rebuilt {
            Some(Ok((snapshot, _))) => {
                services::services_used(snapshot, &phases, &phase_timings, &found.rolled_back)
            }
            _ => Vec::new(),
        };
        let mut critical_path: CriticalPath = timing::critical_path(&events);
        critical_path.rto_ratio =
            measured.and_then(|rto| timing::rto_ratio(rto, critical_path.bound_ms));
        let mut phase_order = timing::phase_order(&events);
        phase_order.rto_ratio =
            measured.and_then(|rto| timing::rto_ratio(rto, phase_order.bound_ms));
        let forecast =
            (started.start.forecast.clone()).map(|made| ForecastAgainst::new(made, measured));
        Ok(DrillReport {
            format: REPORT_FORMAT,
            runbook: runbook.name.clone(),
            environment: runbook.environment.clone(),
            source_environment: started.start.source_environment,
            region: runbook.region.clone(),
            run_id: self.journal.run_id.clone(),
            user: started.user,
            host: started.host,
            started_at: started.at,
            ended_at: ctx.clock.now(),
            verdict: if self.expired {
                Verdict::Expired
            } else if failures.is_empty() {
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
            phase_order,
            forecast,
            phases: phase_timings,
            gates: timing::gates(&events),
            checks: found.checked.results,
            images: torn_down.images,
            services,
            resources_created: timing::resources_created(&events),
            teardown: torn_down.teardown,
            leak_check: torn_down.leak_check,
            swept: started.start.swept.clone(),
        })
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
