//! The automatic rollback after failed checks: every service the run cut
//! over goes back to its previous colour at once, in one run journaled like
//! `drctl rollback` (CodeDeploy's automatic rollback).

use std::collections::BTreeMap;

use super::super::plan_observed;
use super::super::traffic::{rollback_of, run_command, Command, ROLLBACK_PHASE};
use super::super::{Connect, Session};
use crate::error::Error;
use crate::events::Event as Shown;
use crate::execute::OutcomeKind;
use crate::kinds::service;
use crate::outcome::RolledBack;
use crate::plan::{Change, Plan};
use crate::run::{self, RunEnd};
use crate::world::{Address, Snapshot};

/// After post-cutover checks failed: every service in `cut_over` (with the
/// colour the run moved it to) goes back to its previous colour. A service
/// no longer on that colour (rolled back already, by hand or before a kill)
/// is left alone, so traffic never goes back to a colour someone rolled
/// away from. Never fails: what could not be done is in the notes.
/// The caller holds the environment's lock.
pub(super) async fn roll_back_after_failed_checks<C: Connect>(
    session: &Session<'_, C>,
    cut_over: &BTreeMap<String, String>,
) -> Vec<RolledBack> {
    let notes = roll_back(session, cut_over).await.unwrap_or_else(|e| {
        cut_over
            .iter()
            .map(|(service, was_live)| RolledBack {
                note: format!("the rollback could not run: {}", e.render()),
                ..note_for(service, was_live)
            })
            .collect()
    });
    session.ctx.sink.event(&Shown::RolledBack {
        services: notes.clone(),
    });
    notes
}

/// Plans the rollback from the world as it is, runs it, and says per
/// service what happened.
async fn roll_back<C: Connect>(
    session: &Session<'_, C>,
    cut_over: &BTreeMap<String, String>,
) -> Result<Vec<RolledBack>, Error> {
    let Session {
        ctx,
        provider,
        loaded,
        ..
    } = *session;
    let snapshot = run::observe_for(provider, &loaded.project, loaded.runbook(), ctx.clock).await?;
    let planned = plan_observed(loaded, &snapshot)?;
    let (mut notes, steps) = rollback_steps(&snapshot, &planned, cut_over);
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
    let run_id = super::super::new_run_id(ctx.clock);
    let command = Command {
        run_id: &run_id,
        phase: ROLLBACK_PHASE,
        approval: "automatic: post-cutover checks failed".into(),
    };
    let end = run_command(session, planned, steps, &command).await?;
    let report = match &end {
        RunEnd::Succeeded(r) | RunEnd::Failed(r) | RunEnd::Interrupted(r) => Some(r),
        _ => None,
    };
    // The notes still blank are the services the run was to move.
    for note in notes.iter_mut().filter(|n| n.note.is_empty()) {
        note.run_id = Some(run_id.clone());
        let address = note.service.parse::<Address>().ok();
        let outcome = report.and_then(|r| {
            r.outcomes
                .iter()
                .find(|o| Some(&o.address) == address.as_ref())
        });
        (note.ok, note.note) = ran(note, outcome.map(|o| &o.result));
    }
    Ok(notes)
}

/// Per service, a note, and the rollback steps for those still on the
/// colour the run moved them to (their notes left blank until it ran).
fn rollback_steps(
    snapshot: &Snapshot,
    planned: &Plan,
    cut_over: &BTreeMap<String, String>,
) -> (Vec<RolledBack>, Vec<Change>) {
    let changes: Vec<&Change> = planned.phases.iter().flat_map(|p| &p.changes).collect();
    let mut notes = Vec::new();
    let mut steps = Vec::new();
    for (service, was_live) in cut_over {
        let mut note = note_for(service, was_live);
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
            match rollback_of(snapshot, &changes, &found.address) {
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
    (notes, steps)
}

/// A service's note before anything was done for it.
fn note_for(service: &str, was_live: &str) -> RolledBack {
    RolledBack {
        service: service.to_string(),
        from: was_live.to_string(),
        to: None,
        run_id: None,
        ok: false,
        note: String::new(),
    }
}

/// Whether the rollback step of `note`'s service did it, and the sentence.
fn ran(note: &RolledBack, outcome: Option<&OutcomeKind>) -> (bool, String) {
    let to = note.to.clone().unwrap_or_default();
    match outcome {
        Some(OutcomeKind::Done(_)) => (
            true,
            format!(
                "rolled back: traffic moved from {} to {to} in one call",
                note.from
            ),
        ),
        Some(OutcomeKind::Failed(e)) => (false, format!("the rollback to {to} failed: {e}")),
        _ => (false, format!("the rollback to {to} did not run (stopped)")),
    }
}
