//! After a cutover, or a drill's rebuild: the runbook's checks, journaled
//! as one `checked` record, and if one fails, every service the run cut over
//! goes back to its previous colour at once (CodeDeploy's automatic
//! rollback). Applies and drills both end through here.

mod cut_over;
mod rollback;

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Connect, Session};
use crate::clock::Millis;
use crate::error::Error;
use crate::events::Event as Shown;
use crate::journal::{Event, Journal};
use crate::outcome::{CheckResult, CheckStatus, RolledBack};
use crate::plan::Plan;
use crate::verify::CheckRun;
use crate::world::Snapshot;

/// What the checks found: the run's `checked` record.
#[derive(Debug, Default, Clone)]
pub(crate) struct Checked {
    pub results: Vec<CheckResult>,
    /// When every check had passed (a drill's RTO end); `None` when one failed.
    pub recovered_at: Option<Millis>,
    /// Each service the run cut over, with the colour it moved it to.
    pub live: BTreeMap<String, String>,
}

impl Checked {
    /// The checks the run journaled before it was stopped, if it got that
    /// far: they stand, since a rollback or teardown may have changed the
    /// world since.
    pub(crate) fn recorded(events: &[Event]) -> Option<Checked> {
        events.iter().find_map(|e| match e {
            Event::Checked {
                at,
                results,
                failed,
                recovered_at,
                live,
            } => Some(Checked {
                results: match results.is_empty() {
                    // A record from before results were journaled: names only.
                    true => failed.iter().map(|name| failed_before(name, *at)).collect(),
                    false => results.clone(),
                },
                recovered_at: *recovered_at,
                live: live.clone(),
            }),
            _ => None,
        })
    }

    pub(crate) fn failed(&self) -> impl Iterator<Item = &CheckResult> {
        self.results
            .iter()
            .filter(|c| c.status == CheckStatus::Failed)
    }
}

fn failed_before(name: &str, at: Millis) -> CheckResult {
    CheckResult {
        name: name.to_string(),
        kind: String::new(),
        status: CheckStatus::Failed,
        detail: "failed before drctl stopped; not run again".into(),
        started_at: at,
        duration_ms: 0,
    }
}

/// What the checks run against, and how long they wait.
pub(crate) struct Checking<'a> {
    /// The environment as the run left it, observed and planned.
    pub observed: &'a (Snapshot, Plan),
    /// For every target of a `target_health` check to turn healthy.
    pub health_deadline: Duration,
    /// When checking began: the recovery time if no check had to pass.
    pub began: Millis,
}

/// Runs the runbook's checks and journals what they found, unless Ctrl-C
/// stopped them (a resume checks again). `events` is the run's journal so
/// far: it says which services the run cut over.
pub(crate) async fn run_checks<C: Connect>(
    session: &Session<'_, C>,
    journal: &Journal,
    events: &[Event],
    checking: Checking<'_>,
) -> Result<Checked, Error> {
    let Session {
        ctx,
        provider,
        loaded,
        cancel,
        ..
    } = *session;
    let phases = crate::graph::runbook_phases(&loaded.project, loaded.runbook());
    let live = cut_over::live_colours(events, &phases, &checking.observed.0);
    let how = CheckRun {
        clock: ctx.clock,
        sink: ctx.sink,
        provider,
        project: &loaded.project,
        runbook: loaded.runbook(),
        run_id: &journal.run_id,
        health_deadline: checking.health_deadline,
    };
    let results = crate::verify::run_all(&how, checking.observed, cancel).await?;
    let checked = Checked {
        recovered_at: recovered_at(&results, checking.began),
        results,
        live,
    };
    if !cancel.is_cancelled() {
        journal.append(&Event::Checked {
            at: ctx.clock.now(),
            results: checked.results.clone(),
            failed: checked.failed().map(|c| c.name.clone()).collect(),
            recovered_at: checked.recovered_at,
            live: checked.live.clone(),
        })?;
    }
    Ok(checked)
}

/// Recovered when the last check that passed did; a skipped check (a name
/// not in DNS yet) is waited for, not timed. Never, if one failed.
fn recovered_at(results: &[CheckResult], began: Millis) -> Option<Millis> {
    if results.iter().any(|c| c.status == CheckStatus::Failed) {
        return None;
    }
    results
        .iter()
        .filter(|c| c.status == CheckStatus::Passed)
        .map(|c| c.started_at + c.duration_ms)
        .max()
        .or(Some(began))
}

/// If a check failed: every service in `checked.live` goes back to its
/// previous colour, journaled in the run that cut them over. Once: a run
/// stopped after the rollback finds it in `events`. Nothing when every
/// check passed, nothing was cut over, or Ctrl-C was pressed.
/// The caller holds the lock.
pub(crate) async fn roll_back_if_failed<C: Connect>(
    session: &Session<'_, C>,
    journal: &Journal,
    events: &[Event],
    checked: &Checked,
) -> Result<Vec<RolledBack>, Error> {
    if let Some(done) = events.iter().find_map(|e| match e {
        Event::RolledBack { services, .. } => Some(services.clone()),
        _ => None,
    }) {
        return Ok(done);
    }
    let failed = checked.failed().next().is_some();
    if !failed || checked.live.is_empty() || session.cancel.is_cancelled() {
        return Ok(Vec::new());
    }
    let rolled_back = rollback::roll_back_after_failed_checks(session, &checked.live).await;
    journal.append(&Event::RolledBack {
        at: session.ctx.clock.now(),
        services: rolled_back.clone(),
    })?;
    Ok(rolled_back)
}

/// What ran after an apply's cutover.
#[derive(Debug, Default)]
pub struct AfterCutover {
    /// The services the run cut over.
    pub services: Vec<String>,
    pub checks: Vec<CheckResult>,
    pub rolled_back: Vec<RolledBack>,
}

impl AfterCutover {
    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.status == CheckStatus::Failed)
    }

    /// A rollback run moved a listener (the world differs from the checked one).
    pub fn moved_traffic(&self) -> bool {
        self.rolled_back.iter().any(|r| r.run_id.is_some())
    }
}

/// After an apply or resume that cut a service over: the runbook's checks
/// against `observed` (the environment as the run left it), and the
/// automatic rollback if one fails. `None` when the run cut nothing over or
/// the runbook has no checks. The caller holds the lock.
pub(crate) async fn check_after_cutover<C: Connect>(
    session: &Session<'_, C>,
    journal: &Journal,
    observed: &(Snapshot, Plan),
) -> Result<Option<AfterCutover>, Error> {
    let Session {
        ctx,
        loaded,
        cancel,
        ..
    } = *session;
    let runbook = loaded.runbook();
    let phases = crate::graph::runbook_phases(&loaded.project, runbook);
    let events = journal.events()?;
    let cut_over = cut_over::cut_over_in(&events, &phases);
    // Ctrl-C: nothing new starts, and no check is failed by the interruption.
    if cut_over.is_empty() || runbook.drill.checks.is_empty() || cancel.is_cancelled() {
        return Ok(None);
    }
    let services: Vec<String> = cut_over.iter().map(|c| c.service.to_string()).collect();
    // Checked before a stop (kill, Ctrl-C in the rollback): the rollback
    // goes on; checking the half rolled-back world again would not do.
    let mut checked = match Checked::recorded(&events) {
        Some(recorded) => recorded,
        None => {
            ctx.sink.event(&Shown::DrillStage {
                message: format!(
                    "Cut over {}. Running the runbook's {} check(s) …",
                    services.join(", "),
                    runbook.drill.checks.len()
                ),
            });
            let checking = Checking {
                observed,
                health_deadline: crate::verify::HEALTH_DEADLINE,
                began: ctx.clock.now(),
            };
            run_checks(session, journal, &events, checking).await?
        }
    };
    // As the world says now: a record from before `live` was journaled has none.
    checked.live = cut_over::cut_over_colours(&observed.0, &cut_over);
    let rolled_back = roll_back_if_failed(session, journal, &events, &checked).await?;
    Ok(Some(AfterCutover {
        services,
        checks: checked.results,
        rolled_back,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(line: &str) -> Checked {
        let event: Event = serde_json::from_str(line).expect("the record reads");
        Checked::recorded(&[event]).expect("a checked record")
    }

    fn check(name: &str, status: CheckStatus, started_at: Millis) -> CheckResult {
        CheckResult {
            name: name.into(),
            kind: "http".into(),
            status,
            detail: String::new(),
            started_at,
            duration_ms: 10,
        }
    }

    #[test]
    fn journals_from_before_the_one_checked_record_still_read_as_it() {
        // An apply stopped between its failed checks and the rollback.
        let apply = read(r#"{"event":"cutover_checks_failed","at":5,"failed":["http web"]}"#);
        assert_eq!(apply.results, vec![failed_before("http web", 5)]);
        assert_eq!(apply.failed().count(), 1);
        assert_eq!(apply.recovered_at, None);
        // A drill stopped after its checks.
        let drill = read(
            r#"{"event":"drill_checked","at":7,"recovered_at":9,
                "results":[{"name":"http web","kind":"http","status":"passed",
                            "detail":"200","started_at":1,"duration_ms":8}],
                "live":{"web.service.web":"green"}}"#,
        );
        assert_eq!(drill.results.len(), 1);
        assert_eq!(drill.failed().count(), 0);
        assert_eq!(drill.recovered_at, Some(9));
        assert_eq!(drill.live["web.service.web"], "green");
    }

    #[test]
    fn recovery_is_when_the_last_check_passed_and_never_after_a_failure() {
        let passed = [
            check("a", CheckStatus::Passed, 100),
            check("b", CheckStatus::Passed, 300),
            check("c", CheckStatus::Skipped, 900),
        ];
        assert_eq!(recovered_at(&passed, 50), Some(310));
        assert_eq!(recovered_at(&[], 50), Some(50));
        let one_failed = [passed[0].clone(), check("d", CheckStatus::Failed, 200)];
        assert_eq!(recovered_at(&one_failed, 50), None);
    }
}
