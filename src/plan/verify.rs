//! What a plan is checked against before it runs: the hashes approvals bind
//! to, the steps the engine cannot execute yet, and how the world moved
//! since a saved plan was made.

use std::collections::BTreeMap;

use super::{Action, Change, PhasePlan, Plan};
use crate::world::{Address, ObservedResource, Snapshot};

/// What a person approves at a gate: a hash of the phase's steps exactly as
/// shown (each step's address, action, attribute changes, reasons and the
/// object it acts on). A re-plan that hashes differently needs a new approval.
pub fn phase_hash(phase: &PhasePlan) -> String {
    steps_hash(&phase.changes, &phase.cutover)
}

/// The same for the cleanup deletions.
pub fn cleanup_hash(cleanup: &[Change]) -> String {
    steps_hash(cleanup, &[])
}

fn steps_hash(changes: &[Change], cutover: &[String]) -> String {
    let steps: Vec<_> = changes
        .iter()
        .filter(|c| c.action != Action::NoOp)
        .map(|c| {
            (
                &c.address,
                c.action,
                &c.attrs,
                &c.reasons,
                c.current.as_ref().map(|o| &o.id),
                (&c.headline, &c.steps),
            )
        })
        .collect();
    crate::digest::hash_json(&(steps, cutover))
}

/// What differs between the world a plan saw and the world now, by address.
pub fn world_changes(planned: &Plan, snapshot: &Snapshot) -> Vec<String> {
    let before: BTreeMap<(Address, String), &ObservedResource> = planned
        .phases
        .iter()
        .flat_map(|p| &p.changes)
        .chain(&planned.cleanup)
        .filter_map(|c| c.current.as_ref())
        // A reused image is another environment's: not observed as ours.
        .filter(|o| {
            o.tags.get(crate::types::tags::ENV).map(String::as_str)
                == Some(planned.environment.as_str())
        })
        .map(|o| ((o.address.clone(), o.id.clone()), o))
        .collect();
    let now: BTreeMap<(Address, String), &ObservedResource> = snapshot
        .objects()
        .map(|o| ((o.address.clone(), o.id.clone()), o))
        .collect();
    let mut out = Vec::new();
    for (key, o) in &now {
        match before.get(key) {
            None => out.push(format!("{} ({}) appeared", key.0, key.1)),
            Some(b) if b != o => out.push(format!("{} ({}) changed", key.0, key.1)),
            Some(_) => {}
        }
    }
    for key in before.keys() {
        if !now.contains_key(key) {
            out.push(format!("{} ({}) is gone", key.0, key.1));
        }
    }
    if out.is_empty() && planned.fingerprint != snapshot.fingerprint() {
        out.push(
            "the images looked up changed (a base image, or an image of a recipe baked, copied or deregistered)"
                .into(),
        );
    }
    out
}
