//! After a cutover: the runbook's checks, and if one fails, every service
//! the run cut over goes back to its previous colour at once (CodeDeploy's
//! automatic rollback). Drills and applies both end through here.

use std::collections::BTreeMap;

use super::plan_observed;
use super::traffic::{rollback_of, run_command, Command, ROLLBACK_PHASE};
use super::{Connect, Session};
use crate::error::Error;
use crate::events::Event as Shown;
use crate::journal::{Event, Journal};
use crate::kinds::service;
use crate::outcome::{CheckResult, CheckStatus, RolledBack};
use crate::plan::{Change, Plan};
use crate::run;
use crate::world::{Address, Snapshot};

/// After post-cutover checks failed: every service the run cut over goes
/// back to its previous colour, in one run journaled like `drctl rollback`.
/// `cut_over` holds each service with the colour the run moved it to; a
/// service no longer on that colour (rolled back already, by hand or before
/// a kill) is left alone, so traffic never goes back to a colour someone
/// rolled away from.
/// The caller holds the environment's lock.
async fn roll_back_after_failed_checks<C: Connect>(
    session: &Session<'_, C>,
    cut_over: &BTreeMap<String, String>,
) -> Vec<RolledBack> {
    let Session {
        ctx,
        provider,
        loaded,
        ..
    } = *session;
    let outcome = async {
        let runbook = loaded.runbook();
        let snapshot = run::observe_for(provider, &loaded.project, runbook, ctx.clock).await?;
        let planned = plan_observed(loaded, &snapshot)?;
        let changes: Vec<&Change> = planned.phases.iter().flat_map(|p| &p.changes).collect();
        let mut notes = Vec::new();
        let mut steps = Vec::new();
        for (service, was_live) in cut_over {
            let mut note = RolledBack {
                service: service.clone(),
                from: was_live.clone(),
                to: None,
                run_id: None,
                ok: false,
                note: String::new(),
            };
            // Journaled as its text; read back as an address.
            let address = service.parse::<Address>().ok();
            let Some(found) = snapshot
                .objects()
                .find(|o| Some(&o.address) == address.as_ref())
            else {
                note.note = format!("{service} does not exist any more: nothing to roll back");
                notes.push(note);
                continue;
            };
            let live = service::live_colour(found);
            if live.as_deref() != Some(was_live.as_str()) {
                note.ok = true;
                note.note = match &live {
                    Some(now) => format!("not moved: {now} is already live, not {was_live}"),
                    None => "not moved: the service takes no traffic now".into(),
                };
                note.to = live;
            } else {
                match rollback_of(&snapshot, &changes, &found.address) {
                    Ok(back) => {
                        note.to = back
                            .desired
                            .get("to")
                            .and_then(|v| v.known()?.as_str().map(str::to_string));
                        steps.push(back);
                    }
                    Err(why) => note.note = why,
                }
            }
            notes.push(note);
        }
        if steps.is_empty() {
            return Ok(notes);
        }
        ctx.sink.event(&Shown::DrillStage {
            message: format!(
                "A check failed after the cutover: rolling back {} to the previous colour …",
                steps
                    .iter()
                    .map(|s| s.address.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
        let run_id = super::new_run_id(ctx.clock);
        let command = Command {
            run_id: &run_id,
            phase: ROLLBACK_PHASE,
            approval: "automatic: post-cutover checks failed".into(),
        };
        let end = run_command(session, planned, steps, &command).await?;
        let report = match &end {
            run::RunEnd::Succeeded(r) | run::RunEnd::Failed(r) | run::RunEnd::Interrupted(r) => {
                Some(r)
            }
            _ => None,
        };
        for note in notes.iter_mut().filter(|n| n.note.is_empty()) {
            note.run_id = Some(run_id.clone());
            let address = note.service.parse::<Address>().ok();
            let outcome = report.and_then(|r| {
                r.outcomes
                    .iter()
                    .find(|o| Some(&o.address) == address.as_ref())
            });
            let to = note.to.clone().unwrap_or_default();
            (note.ok, note.note) = match outcome.map(|o| &o.result) {
                Some(crate::execute::OutcomeKind::Done(_)) => (
                    true,
                    format!(
                        "rolled back: traffic moved from {} to {to} in one call",
                        note.from
                    ),
                ),
                Some(crate::execute::OutcomeKind::Failed(e)) => {
                    (false, format!("the rollback to {to} failed: {e}"))
                }
                _ => (false, format!("the rollback to {to} did not run (stopped)")),
            };
        }
        Ok::<_, Error>(notes)
    }
    .await;
    let notes = outcome.unwrap_or_else(|e: Error| {
        cut_over
            .iter()
            .map(|(service, was_live)| RolledBack {
                service: service.clone(),
                from: was_live.clone(),
                to: None,
                run_id: None,
                ok: false,
                note: format!("the rollback could not run: {}", e.render()),
            })
            .collect()
    });
    ctx.sink.event(&Shown::RolledBack {
        services: notes.clone(),
    });
    notes
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
        provider,
        loaded,
        cancel,
        ..
    } = *session;
    let runbook = loaded.runbook();
    let phases = crate::graph::runbook_phases(&loaded.project, runbook);
    let events = journal.events()?;
    let cut_over = cut_over_in(&events, &phases);
    // Ctrl-C: nothing new starts, and no check is failed by the interruption.
    if cut_over.is_empty() || runbook.drill.checks.is_empty() || cancel.is_cancelled() {
        return Ok(None);
    }
    let services: Vec<String> = cut_over.iter().map(|c| c.service.to_string()).collect();
    let live = cut_over_colours(&observed.0, &cut_over);
    // Failed before a stop (kill, Ctrl-C in the rollback): the rollback
    // goes on; checking the half rolled-back world again would not do.
    let recorded = events.iter().find_map(|e| match e {
        Event::CutoverChecksFailed { at, failed } => Some((*at, failed.clone())),
        _ => None,
    });
    let checks = match recorded {
        Some((at, failed)) => failed
            .into_iter()
            .map(|name| CheckResult {
                name,
                kind: String::new(),
                status: CheckStatus::Failed,
                detail: "failed before drctl stopped; not run again".into(),
                started_at: at,
                duration_ms: 0,
            })
            .collect(),
        None => {
            ctx.sink.event(&Shown::DrillStage {
                message: format!(
                    "Cut over {}. Running the runbook's {} check(s) …",
                    services.join(", "),
                    runbook.drill.checks.len()
                ),
            });
            let run = crate::verify::CheckRun {
                clock: ctx.clock,
                sink: ctx.sink,
                provider,
                project: &loaded.project,
                runbook: loaded.runbook(),
                run_id: &journal.run_id,
                health_deadline: crate::verify::HEALTH_DEADLINE,
            };
            let checks: Vec<CheckResult> = crate::verify::run_all(&run, observed, cancel).await?;
            let failed: Vec<String> = checks
                .iter()
                .filter(|c| c.status == CheckStatus::Failed)
                .map(|c| c.name.clone())
                .collect();
            if !failed.is_empty() {
                journal.append(&Event::CutoverChecksFailed {
                    at: ctx.clock.now(),
                    failed,
                })?;
            }
            checks
        }
    };
    let rolled_back = roll_back_if_failed(session, journal, &checks, &live).await?;
    Ok(Some(AfterCutover {
        services,
        checks,
        rolled_back,
    }))
}

/// If a check failed: the rollback of every service in `cut_over` (see
/// [`roll_back_after_failed_checks`]), journaled in the run that cut them
/// over. Nothing when every check passed, nothing was cut over, or Ctrl-C
/// was pressed.
pub(crate) async fn roll_back_if_failed<C: Connect>(
    session: &Session<'_, C>,
    journal: &Journal,
    checks: &[CheckResult],
    cut_over: &BTreeMap<String, String>,
) -> Result<Vec<RolledBack>, Error> {
    let failed = checks.iter().any(|c| c.status == CheckStatus::Failed);
    if !failed || cut_over.is_empty() || session.cancel.is_cancelled() {
        return Ok(Vec::new());
    }
    let rolled_back = roll_back_after_failed_checks(session, cut_over).await;
    journal.append(&Event::RolledBack {
        at: session.ctx.clock.now(),
        services: rolled_back.clone(),
    })?;
    Ok(rolled_back)
}

/// Each cut-over service with the colour the run moved its traffic to:
/// the colour whose target group the cutover step returned. A service whose
/// colour is gone is left out (there is nothing to move traffic away from).
pub(crate) fn cut_over_colours(
    snapshot: &crate::world::Snapshot,
    cut_over: &[CutOver],
) -> BTreeMap<String, String> {
    cut_over
        .iter()
        .filter_map(|c| {
            let found = snapshot.objects().find(|o| o.address == c.service)?;
            let colour = service::colours_of(found)
                .into_iter()
                .find(|colour| colour.target_group == c.target_group)?;
            Some((c.service.to_string(), colour.name))
        })
        .collect()
}

/// A service a run cut over, and the target group its cutover step left
/// live (the step's journaled id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CutOver {
    pub service: Address,
    pub target_group: String,
}

/// The services the journaled run cut over: those a runbook phase names in
/// its `cutover` list whose step in that phase succeeded (the last such
/// step of each, after a resume).
pub(crate) fn cut_over_in(
    events: &[crate::journal::Event],
    phases: &[crate::graph::PhaseSpec],
) -> Vec<CutOver> {
    use crate::journal::Event;
    let mut phase: Option<&crate::graph::PhaseSpec> = None;
    let mut found: Vec<CutOver> = Vec::new();
    for event in events {
        match event {
            Event::PhaseStarted { phase: name, .. } => {
                phase = phases.iter().find(|p| &p.name == name);
            }
            Event::Outcome {
                address,
                ok: true,
                id,
                ..
            } => {
                let named =
                    phase.is_some_and(|p| p.cutover.iter().any(|s| s.address() == *address));
                if named {
                    found.retain(|c| c.service != *address);
                    found.push(CutOver {
                        service: address.clone(),
                        target_group: id.clone(),
                    });
                }
            }
            _ => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Event;
    use crate::model::{Gate, ServiceRef};
    use crate::plan::Action;

    fn outcome(name: &str, ok: bool) -> Event {
        Event::Outcome {
            at: 0,
            address: crate::world::Address::new("web", crate::model::ResourceKind::Service, name),
            action: Action::Update,
            ok,
            id: format!("tg-{name}"),
            error: None,
        }
    }

    fn started(phase: &str) -> Event {
        Event::PhaseStarted {
            at: 0,
            phase: phase.into(),
        }
    }

    #[test]
    fn only_a_cutover_phase_step_that_succeeded_counts_as_a_cutover() {
        let phases = vec![
            crate::graph::PhaseSpec {
                name: "compute".into(),
                stacks: vec!["web".into()],
                cutover: Vec::new(),
                gate: Gate::Auto,
            },
            crate::graph::PhaseSpec {
                name: "cutover".into(),
                stacks: Vec::new(),
                cutover: vec![
                    ServiceRef {
                        stack: "web".into(),
                        name: "web".into(),
                        pos: Default::default(),
                    },
                    ServiceRef {
                        stack: "web".into(),
                        name: "api".into(),
                        pos: Default::default(),
                    },
                ],
                gate: Gate::Auto,
            },
        ];
        let events = vec![
            // The new colour, made in compute: not a cutover.
            started("compute"),
            outcome("web", true),
            outcome("api", true),
            started("cutover"),
            outcome("web", true),
            outcome("api", false),
        ];
        assert_eq!(
            cut_over_in(&events, &phases),
            vec![CutOver {
                service: "web.service.web".parse().unwrap(),
                target_group: "tg-web".into()
            }]
        );
        assert!(cut_over_in(&events[..3], &phases).is_empty());
    }

    /// A service whose colours are `(name, traffic)`, target groups `tg-<name>`.
    fn world(colours: &[(&str, i64)]) -> crate::world::Snapshot {
        use crate::world::{Attrs, ObservedResource, Value};
        let table = colours
            .iter()
            .map(|(name, traffic)| {
                let colour = service::Colour {
                    target_group: format!("tg-{name}"),
                    traffic: *traffic,
                    complete: true,
                    ..service::Colour::default()
                };
                let value: Value =
                    serde_json::from_value(serde_json::to_value(colour).unwrap()).unwrap();
                (name.to_string(), value)
            })
            .collect();
        let found = ObservedResource {
            address: crate::world::Address::new("web", crate::model::ResourceKind::Service, "web"),
            id: "tg-blue".into(),
            attrs: Attrs::from([("colors".to_string(), Value::Table(table))]),
            exports: Attrs::new(),
            tags: BTreeMap::new(),
        };
        crate::world::Snapshot::new(0, vec![found])
    }

    #[test]
    fn what_is_rolled_back_is_the_colour_the_run_cut_over_to_not_whatever_is_live() {
        let cut = |tg: &str| {
            vec![CutOver {
                service: "web.service.web".parse().unwrap(),
                target_group: tg.into(),
            }]
        };
        // The run moved traffic to green; someone rolled it back to blue by
        // hand since. The failed checks must not send traffic to green again:
        // the rollback is from green, which is no longer live, so nothing moves.
        let rolled_back_by_hand = world(&[("blue", 100), ("green", 0)]);
        assert_eq!(
            cut_over_colours(&rolled_back_by_hand, &cut("tg-green")),
            BTreeMap::from([("web.service.web".to_string(), "green".to_string())])
        );
        // The colour it moved to is gone: nothing to move traffic away from.
        assert!(cut_over_colours(&rolled_back_by_hand, &cut("tg-red")).is_empty());
    }
}
