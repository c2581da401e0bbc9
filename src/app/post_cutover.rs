//! After a cutover: the runbook's checks, and if one fails, every service
//! the run cut over goes back to its previous colour at once (CodeDeploy's
//! automatic rollback). Drills and applies both end through here.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use super::plan_observed;
use super::traffic::{run_command, Command, ROLLBACK_PHASE};
use super::{Connect, Context, Loaded};
use crate::drill::report::{CheckResult, CheckStatus};
use crate::error::Error;
use crate::events::Event as Shown;
use crate::journal::{Event, Journal};
use crate::kinds::service;
use crate::run;

/// What an automatic rollback did for one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolledBack {
    /// `stack.service.name`
    pub service: String,
    /// The colour that was live when the checks failed.
    pub from: String,
    /// The colour traffic went back to (`None`: it did not move).
    pub to: Option<String>,
    /// The rollback's own run, journaled like `drctl rollback`.
    pub run_id: Option<String>,
    pub ok: bool,
    /// One sentence: what happened, or why nothing could.
    pub note: String,
}

/// After post-cutover checks failed: every service the run cut over goes
/// back to its previous colour, in one run journaled like `drctl rollback`.
/// `cut_over` holds each service with the colour the run moved it to; a
/// service no longer on that colour (rolled back already, by hand or before
/// a kill) is left alone, so traffic never goes back to a colour someone
/// rolled away from.
/// The caller holds the environment's lock.
pub(crate) async fn roll_back_after_failed_checks<C: Connect>(
    ctx: &Context<'_>,
    connect: &C,
    provider: &crate::cloud::aws::AwsProvider,
    loaded: &Loaded,
    cut_over: &BTreeMap<String, String>,
    parallelism: usize,
    cancel: &AtomicBool,
) -> Vec<RolledBack> {
    let outcome = async {
        let runbook = loaded.runbook();
        let snapshot = run::observe_for(provider, &loaded.project, runbook, ctx.clock).await?;
        let planned = plan_observed(loaded, &snapshot)?;
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
            let found = snapshot
                .objects()
                .find(|o| &o.address.to_string() == service);
            let live =
                found.and_then(|o| o.exports.get("live_color")?.as_str().map(str::to_string));
            let step = planned
                .phases
                .iter()
                .flat_map(|p| &p.changes)
                .find(|c| &c.address.to_string() == service);
            match (found, step) {
                _ if live.as_deref() != Some(was_live.as_str()) => {
                    note.ok = true;
                    note.to = live.clone();
                    note.note = match live {
                        Some(now) => format!("not moved: {now} is already live, not {was_live}"),
                        None => "not moved: the service takes no traffic now".into(),
                    };
                }
                (Some(found), Some(step)) => match service::rollback_step(found, step) {
                    Ok(back) => {
                        note.to = back
                            .desired
                            .get("to")
                            .and_then(|v| v.known()?.as_str().map(str::to_string));
                        steps.push(back);
                    }
                    Err(why) => note.note = why,
                },
                _ => note.note = format!("{service} is not in the runbook's plan"),
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
            parallelism,
        };
        let end = run_command(
            ctx, connect, provider, loaded, planned, steps, &command, cancel,
        )
        .await?;
        let report = match &end {
            run::RunEnd::Succeeded(r) | run::RunEnd::Failed(r) | run::RunEnd::Interrupted(r) => {
                Some(r)
            }
            _ => None,
        };
        for note in notes.iter_mut().filter(|n| n.note.is_empty()) {
            note.run_id = Some(run_id.clone());
            let outcome = report.and_then(|r| {
                r.outcomes
                    .iter()
                    .find(|o| o.address.to_string() == note.service)
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
}

/// After an apply (not a drill: it checks in its own stage) that cut a
/// service over: the runbook's checks against the environment as it is now,
/// and the automatic rollback if one fails. `None` when the run cut nothing
/// over or the runbook has no checks. The caller holds the lock.
pub(crate) async fn check_after_cutover<C: Connect>(
    ctx: &Context<'_>,
    connect: &C,
    provider: &crate::cloud::aws::AwsProvider,
    loaded: &Loaded,
    journal: &Journal,
    parallelism: usize,
    cancel: &AtomicBool,
) -> Result<Option<AfterCutover>, Error> {
    let runbook = loaded.runbook();
    let events = journal.events()?;
    let is_drill = matches!(
        events.first(),
        Some(Event::RunStarted { drill: Some(_), .. })
    );
    let phases = crate::graph::runbook_phases(&loaded.project, runbook);
    let cut_over = cut_over_in(&events, &phases);
    // Ctrl-C: nothing new starts, and no check is failed by the interruption.
    if is_drill
        || cut_over.is_empty()
        || runbook.drill.checks.is_empty()
        || cancel.load(Ordering::SeqCst)
    {
        return Ok(None);
    }
    let services: Vec<String> = cut_over.iter().map(|c| c.service.clone()).collect();
    let snapshot = run::observe_for(provider, &loaded.project, runbook, ctx.clock).await?;
    let plan = plan_observed(loaded, &snapshot)?;
    let live = cut_over_colours(&snapshot, &cut_over);
    ctx.sink.event(&Shown::DrillStage {
        message: format!(
            "Cut over {}. Running the runbook's {} check(s) …",
            services.join(", "),
            runbook.drill.checks.len()
        ),
    });
    let rebuilt = (snapshot, plan);
    let checks = crate::drill::checks::run_all(
        ctx,
        provider,
        loaded,
        &rebuilt,
        &journal.run_id,
        crate::drill::rehearse::DrillSettings::default().health_deadline,
        cancel,
    )
    .await?;
    let mut after = AfterCutover {
        services,
        checks,
        rolled_back: Vec::new(),
    };
    if after.failed() && !live.is_empty() && !cancel.load(Ordering::SeqCst) {
        after.rolled_back = roll_back_after_failed_checks(
            ctx,
            connect,
            provider,
            loaded,
            &live,
            parallelism,
            cancel,
        )
        .await;
        journal.append(&Event::RolledBack {
            at: ctx.clock.now(),
            services: after.rolled_back.clone(),
        })?;
    }
    Ok(Some(after))
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
            let found = snapshot
                .objects()
                .find(|o| o.address.to_string() == c.service)?;
            let colour = service::colours_of(found)
                .into_iter()
                .find(|colour| colour.target_group == c.target_group)?;
            Some((c.service.clone(), colour.name))
        })
        .collect()
}

/// A service a run cut over, and the target group its cutover step left
/// live (the step's journaled id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CutOver {
    pub service: String,
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
                let service = address.to_string();
                let named =
                    phase.is_some_and(|p| p.cutover.iter().any(|s| s.to_string() == service));
                if named {
                    found.retain(|c| c.service != service);
                    found.push(CutOver {
                        service,
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
                service: "web.service.web".into(),
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
                service: "web.service.web".into(),
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
