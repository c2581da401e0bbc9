//! Which machine images a drill used: reused by recipe (whose, and which
//! recipe) or baked in the drill (and how long the bake took, from the
//! journal's intent and outcome of the image's step).

use crate::drill::report::ImageUse;
use crate::journal::Event;
use crate::model::ResourceKind;
use crate::plan::Plan;
use crate::types::tags;

/// The images of `plan` (made after the rebuild) as the drill used them.
pub(super) fn images_used(plan: &Plan, events: &[Event]) -> Vec<ImageUse> {
    let mut used = Vec::new();
    for change in plan.phases.iter().flat_map(|p| &p.changes) {
        if change.address.kind != ResourceKind::Image {
            continue;
        }
        let address = change.address.to_string();
        let Some(current) = &change.current else {
            // Not there after the rebuild: its bake failed (the failure is
            // in the report's steps).
            continue;
        };
        let recipe = current
            .exports
            .get("recipe")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
        let owner = current.tags.get(tags::ENV).cloned();
        let baked_here = owner.as_deref() == Some(plan.environment.as_str());
        let bake = baked_here
            .then(|| super::timing::last_create(events, &change.address))
            .flatten();
        used.push(ImageUse {
            address,
            image_id: current.id.clone(),
            how: if baked_here { "baked" } else { "reused" }.into(),
            bake_ms: bake.map(|(_, ms)| ms),
            bake_started_at: bake.map(|(started, _)| started),
            recipe,
            baked_by: if baked_here { None } else { owner },
        });
    }
    used
}
