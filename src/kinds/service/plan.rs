//! Planning a service (pure): keep the live colour if it runs what is
//! declared (updating health checks in place, retiring old colours whose
//! `retire_after` has passed), else bring up a colour that does (reusing a
//! finished idle one, as after an interrupted run) and cut traffic over to
//! it, in the runbook's cutover phase or, without one, once it is healthy.
//!
//! Every step carries `operation` and its inputs as computed attributes, so
//! what was approved is exactly what runs ([`super::steps::run`]).

use super::canary::Canary;
use super::colours::{canary_under_way, colours_of, live, Colour};
use super::op::{Move, ServiceOp};
use super::{duration_of, fleet_hash, other_colour, RETIRE_AFTER_DEFAULT};
use crate::clock::Millis;
use crate::model::ResourceKind;
use crate::plan::resolve::Resolved;
use crate::plan::{Action, AttrDiff, Change, OwnPlan, OwnPlanInput};
use crate::types::GateId;
use crate::world::{ObservedResource, Value};

pub(super) fn plan(input: &OwnPlanInput<'_>) -> OwnPlan {
    let skeleton = input.skeleton();
    let mut change = skeleton.clone();
    let service = input.objects.first().copied();
    change.current = service.cloned();
    let colours = service.map(colours_of).unwrap_or_default();
    let known = crate::plan::known_attrs(&change.desired);
    let fleet = known.as_ref().and_then(fleet_hash);
    let retire_after = known
        .as_ref()
        .map(|a| duration_of(a, "retire_after", RETIRE_AFTER_DEFAULT))
        .unwrap_or_default();
    let live = live(&colours).cloned();
    let runs_declared = |c: &Colour| c.complete && fleet.as_deref() == Some(c.fleet.as_str());
    let listener = listener_label(&change);
    let name = change.address.to_string();

    if let Some(live) = live.as_ref().filter(|l| runs_declared(l)) {
        maintain(&mut change, &colours, live, input.now, retire_after);
        return OwnPlan {
            change,
            cleanup: Vec::new(),
            cutover: None,
            canary_gates: Default::default(),
        };
    }

    // Traffic is to move: to a finished idle colour that runs the
    // declaration, or to a new one.
    let from = live.as_ref().map(|l| l.name.clone());
    let ready = colours
        .iter()
        .find(|c| Some(&c.name) != from.as_ref() && runs_declared(c));
    let to = match ready {
        Some(c) => c.name.clone(),
        None => from.as_deref().map_or("blue", other_colour).to_string(),
    };
    let canary = Canary::of(known.as_ref().unwrap_or(&Default::default()));
    // A canary stopped at a gate between weights has some of the traffic.
    let share = ready.map_or(0, |c| c.traffic);
    let stepped = canary.steps.len() > 1 && live.is_some();
    let until = match input.cutover_phase {
        Some(_) if stepped => canary.until(share),
        _ => 100,
    };
    // The gate before this step, when it is not the phase's own, and the
    // one the phase goes on behind after it.
    let round_gate = input
        .cutover_phase
        .filter(|_| stepped && canary.gated && share > 0)
        .map(|(phase, _)| GateId::canary(phase, until));
    let hold = input
        .cutover_phase
        .filter(|_| until < 100)
        .map(|(phase, _)| GateId::canary(phase, canary.next_after(until)));
    let cutover_line = |when: &str| {
        let from = from.as_deref().unwrap_or("503 (no colour)");
        let mut line = format!("cutover listener {listener}: {from} → {to}");
        if stepped {
            let weights: Vec<String> = canary.steps.iter().map(|p| format!("{p}%")).collect();
            line.push_str(&format!(" in steps {}", weights.join(" → ")));
            if !canary.wait.is_zero() {
                line.push_str(&format!(
                    ", {} each",
                    humantime::format_duration(canary.wait)
                ));
            }
            if canary.gated {
                line.push_str(", a gate before each");
            }
            if canary.gated || share > 0 {
                line.push_str(&format!(": now {share}% → {until}%"));
            }
        }
        format!("{line} ({when})")
    };
    let inline = input.cutover_phase.is_none();
    let moved = |until: Option<i64>| Move {
        to: to.clone(),
        from: from.clone().unwrap_or_default(),
        until,
    };
    // Shown on every step, as the cutover reads them.
    set(&mut change, "to", Value::Str(to.clone()));
    set(
        &mut change,
        "from",
        Value::Str(from.clone().unwrap_or_default()),
    );
    match ready {
        Some(c) => {
            // An earlier run made it and stopped before the cutover (or
            // between canary weights).
            change.attrs.clear();
            change.headline = Some(if c.traffic > 0 {
                format!(
                    "{to} colour of {name} takes {}% of the traffic (canary, {} instance(s)): no new colour",
                    c.traffic,
                    c.instances.len()
                )
            } else {
                format!(
                    "{to} colour of {name} is ready (idle, {} instance(s)): no new colour",
                    c.instances.len()
                )
            });
            if inline {
                change.action = Action::Update;
                ServiceOp::Cutover(moved(None)).write(&mut change);
                change.steps.push(format!(
                    "~ {}",
                    cutover_line("once every target is healthy")
                ));
            } else {
                change.action = Action::NoOp;
            }
        }
        None => {
            change.action = Action::Create;
            let stale: Vec<&Colour> = colours
                .iter()
                .filter(|c| Some(&c.name) != from.as_ref())
                .collect();
            for c in &stale {
                let why = match (c.complete, c.replaced_at) {
                    _ if c.traffic > 0 => format!(
                        "a canary of another fleet with {}% of the traffic, which goes back to {} first",
                        c.traffic,
                        from.as_deref().unwrap_or("the live colour")
                    ),
                    (false, _) => "its create never finished".to_string(),
                    // A new colour needs its name: the rollback target goes early.
                    (true, Some(at)) => format!(
                        "the rollback colour, kept until {}: a new colour needs its name",
                        clock_time(at + retire_after.as_millis() as i64)
                    ),
                    (true, None) => "it runs another fleet and takes no traffic".to_string(),
                };
                change
                    .steps
                    .push(format!("- remove idle {} first ({why})", c.name));
            }
            ServiceOp::Colour {
                colour: to.clone(),
                replace: stale.iter().map(|c| c.name.clone()).collect(),
                then: inline.then(|| moved(None)),
            }
            .write(&mut change);
            change.headline = Some(format!(
                "create {to} colour of {name} ({})",
                fleet_summary(&change)
            ));
            // AWS health-checks a target group only once the listener uses it.
            change.steps.push(match &live {
                Some(live) => format!(
                    "  {to} joins listener {listener} at weight 0 beside {} (health-checked, no traffic)",
                    live.name
                ),
                None => format!(
                    "  test traffic reaches {to} on listener {listener} with header {}: {to} until the cutover",
                    super::TEST_HEADER
                ),
            });
            if let Some(live) = &live {
                change.attrs = fleet_diffs(&change, live);
                change.steps.push(format!(
                    "  {} stays for rollback until {} after the cutover",
                    live.name,
                    humantime::format_duration(retire_after)
                ));
            }
            if inline {
                change.steps.push(format!(
                    "~ {}",
                    cutover_line("once every target is healthy")
                ));
            }
        }
    }
    let cutover = input.cutover_phase.map(|(phase, gated)| {
        let when = match round_gate.as_ref() {
            Some(gate) => format!("after gate \"{gate}\""),
            None if gated => format!("after gate \"{phase}\""),
            None => format!("in phase \"{phase}\""),
        };
        let mut step = skeleton;
        step.action = Action::Update;
        step.current = service.cloned();
        step.attrs.clear();
        step.depends_on.insert(step.address.clone());
        step.desired = change.desired.clone();
        ServiceOp::Cutover(moved(canary.gated.then_some(until))).write(&mut step);
        step.headline = Some(cutover_line(&when));
        step.steps.clear();
        step
    });
    OwnPlan {
        change,
        cleanup: Vec::new(),
        cutover,
        canary_gates: crate::plan::CanaryGates {
            before: round_gate,
            after: hold,
        },
    }
}

/// The live colour runs what is declared: health checks in place, and old
/// colours retired once due.
fn maintain(
    change: &mut Change,
    colours: &[Colour],
    live: &Colour,
    now: Millis,
    retire_after: std::time::Duration,
) {
    let name = change.address.to_string();
    change.attrs.clear();
    change.action = Action::NoOp;
    let wanted_check = change
        .desired
        .get("health_check")
        .and_then(Resolved::known)
        .cloned();
    let stale_checks: Vec<&Colour> = colours
        .iter()
        .filter(|c| c.complete && wanted_check.is_some() && c.health_check != wanted_check)
        .collect();
    if let Some(before) = stale_checks
        .iter()
        .find(|c| c.name == live.name)
        .or(stale_checks.first())
    {
        change.attrs.push(AttrDiff {
            name: "health_check".into(),
            before: before.health_check.clone(),
            after: wanted_check.clone().map(Resolved::Known),
            forces_replacement: false,
        });
    }
    let mut retire = Vec::new();
    let mut pending = Vec::new();
    for c in colours.iter().filter(|c| c.name != live.name) {
        let due = match (c.complete, c.replaced_at) {
            (true, Some(at)) => at + retire_after.as_millis() as i64,
            // Unfinished, or never live: nothing to roll back to.
            _ => now,
        };
        if c.traffic > 0 {
            // A canary of another fleet (the declaration went back to the
            // live colour's while it was stopped between weights).
            retire.push(c.name.clone());
            change.steps.push(format!(
                "- retire {}: a canary with {}% of the traffic, which goes back to {} first",
                c.name, c.traffic, live.name
            ));
        } else if due <= now {
            retire.push(c.name.clone());
            change
                .steps
                .push(format!("- retire {} (due {})", c.name, clock_time(due)));
        } else {
            pending.push(c.name.clone());
            change.steps.push(format!(
                "  {} {KEPT_FOR_ROLLBACK} {}",
                c.name,
                clock_time(due)
            ));
        }
    }
    if !change.attrs.is_empty() || !retire.is_empty() {
        change.action = Action::Update;
        ServiceOp::Maintain {
            retire: retire.clone(),
        }
        .write(change);
        let what = if change.attrs.is_empty() {
            "retire old colours".to_string()
        } else {
            let on: Vec<&str> = stale_checks.iter().map(|c| c.name.as_str()).collect();
            format!("health check in place on {}", on.join(", "))
        };
        change.headline = Some(format!("update {name}: {what} ({} is live)", live.name));
    } else if !pending.is_empty() {
        change.headline = Some(format!("{name}: {} is live", live.name));
    }
}

/// A computed attribute of the step.
fn set(change: &mut Change, key: &str, value: Value) {
    change
        .desired
        .insert(key.to_string(), Resolved::Known(value));
}

/// How the listener reads in a plan: its address's name, if the service names
/// a listener of its own stack.
fn listener_label(change: &Change) -> String {
    change
        .depends_on
        .iter()
        .find(|a| a.kind == ResourceKind::Listener)
        .map_or_else(|| "of the service".to_string(), |a| a.name.clone())
}

/// `2 × t3.micro, ami-…` as far as known.
fn fleet_summary(change: &Change) -> String {
    let known = |k: &str| change.desired.get(k).and_then(Resolved::known).cloned();
    let count = known("count").map_or("?".to_string(), |v| v.to_string());
    let size = known("instance_type")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    let image = known("image")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "the image this run makes".into());
    format!("{count} × {size}, {image}")
}

/// What differs from the live colour, as far as a colour shows it.
fn fleet_diffs(change: &Change, live: &Colour) -> Vec<AttrDiff> {
    let mut out = Vec::new();
    let have = [
        ("image", Value::Str(live.image.clone())),
        ("instance_type", Value::Str(live.instance_type.clone())),
        ("count", Value::Int(live.running)),
        ("port", Value::Int(live.port)),
    ];
    for (key, before) in have {
        let after = change.desired.get(key).cloned();
        if after.as_ref().and_then(Resolved::known) != Some(&before) {
            out.push(AttrDiff {
                name: key.into(),
                before: Some(before),
                after,
                forces_replacement: true,
            });
        }
    }
    if out.is_empty() {
        let mut diff = AttrDiff {
            name: "fleet".into(),
            before: Some(Value::Str(live.fleet.clone())),
            after: None,
            forces_replacement: true,
        };
        diff.after = Some(Resolved::Known(Value::Str(
            "another fleet (user data, subnets or security groups changed)".into(),
        )));
        out.push(diff);
    }
    out
}

/// `14:05 UTC` (with the date when it is not today's).
fn clock_time(millis: Millis) -> String {
    match jiff::Timestamp::from_millisecond(millis) {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M UTC").to_string(),
        Err(_) => millis.to_string(),
    }
}

/// How a maintenance step shows a colour kept for rollback, and when it is
/// due: written and recognised here only.
const KEPT_FOR_ROLLBACK: &str = "kept for rollback: retire due";

/// A planned service step's lines about colours kept for rollback that are
/// not due yet (what `drctl retire` shows when nothing is due).
pub fn kept_for_rollback(planned: &Change) -> impl Iterator<Item = &String> {
    planned
        .steps
        .iter()
        .filter(|line| line.contains(KEPT_FOR_ROLLBACK))
}

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
