//! Steps of their own, outside a plan's phases (`drctl retire`, `drctl
//! rollback`, a rejected run's canary): each starts from a planned or
//! observed service and carries only what it acts on.

use super::colours::{canary_under_way, colours_of, live};
use super::op::{Move, ServiceOp};
use super::plan::{listener_label, set};
use crate::plan::resolve::Resolved;
use crate::plan::{Action, Change};
use crate::world::{ObservedResource, Value};

/// `drctl retire`: the retirements a planned service step would make, alone.
pub fn retirement_step(planned: &Change) -> Option<Change> {
    let retire = planned.desired.get("retire").and_then(Resolved::known)?;
    if retire.as_list().is_none_or(<[Value]>::is_empty) {
        return None;
    }
    let mut step = standalone(planned);
    step.steps = planned
        .steps
        .iter()
        .filter(|s| s.starts_with("- retire"))
        .cloned()
        .collect();
    step.headline = Some(format!("retire old colours of {}", planned.address));
    let retire = retire.as_list().unwrap_or_default();
    ServiceOp::Retire {
        retire: retire
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
    }
    .write(&mut step);
    Some(step)
}

/// A step of its own (`drctl retire`, `drctl rollback`): it reads nothing
/// another step makes, and carries only what it acts on.
fn standalone(planned: &Change) -> Change {
    let mut step = planned.clone();
    step.action = Action::Update;
    step.attrs.clear();
    step.steps.clear();
    step.reasons.clear();
    step.depends_on.clear();
    step.desired.clear();
    step.tags.clear();
    step.sensitive.clear();
    step
}

/// `drctl rollback`: traffic back to the colour it came from, if that colour
/// still exists, finished, with instances. The listener is the live colour's.
pub fn rollback_step(service: &ObservedResource, template: &Change) -> Result<Change, String> {
    let colours = colours_of(service);
    let Some(live) = live(&colours) else {
        return Err(format!(
            "{} takes no traffic: nothing to roll back",
            service.address
        ));
    };
    let label = listener_label(template);
    if let Some(canary) = canary_under_way(&colours) {
        // Stopped between canary weights: all of it back on the live colour.
        let mut step = traffic_step(service, template, &live.name, &canary.name, &live.listener);
        step.headline = Some(format!(
            "rollback: listener {label}: the canary of {} stops at {}%, all traffic back to {}",
            canary.name, canary.traffic, live.name
        ));
        return Ok(step);
    }
    let Some(previous) = colours
        .iter()
        .find(|c| c.name != live.name && c.complete && !c.instances.is_empty())
    else {
        return Err(format!(
            "nothing to roll back to: {} is live and no other colour of {} remains (retired, or never made)",
            live.name, service.address
        ));
    };
    let mut step = traffic_step(
        service,
        template,
        &previous.name,
        &live.name,
        &live.listener,
    );
    step.headline = Some(format!(
        "rollback: listener {label} from {} back to {}",
        live.name, previous.name
    ));
    Ok(step)
}

/// A rejected run's canary: all traffic back to the live colour, if a
/// canary is under way.
pub fn canary_rollback_step(
    service: &ObservedResource,
    template: &Change,
) -> Result<Change, String> {
    if canary_under_way(&colours_of(service)).is_none() {
        return Err(format!("{}: no canary under way", service.address));
    }
    rollback_step(service, template)
}

/// A step of its own moving all of `listener`'s traffic to colour `to`.
fn traffic_step(
    service: &ObservedResource,
    template: &Change,
    to: &str,
    from: &str,
    listener: &str,
) -> Change {
    let mut step = standalone(template);
    step.current = Some(service.clone());
    ServiceOp::Cutover(Move {
        to: to.to_string(),
        from: from.to_string(),
        until: None,
    })
    .write(&mut step);
    set(&mut step, "listener", Value::Str(listener.to_string()));
    // Going back is one call, whatever the strategy was.
    set(&mut step, "strategy", Value::Str("blue_green".into()));
    step
}
