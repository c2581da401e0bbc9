//! Planning a service (pure): keep the live colour if it runs what is
//! declared (updating health checks in place, retiring old colours whose
//! `retire_after` has passed), else bring up a colour that does (reusing a
//! finished idle one, as after an interrupted run) and cut traffic over to
//! it, in the runbook's cutover phase or, without one, once it is healthy.
//!
//! Every step carries `operation` and its inputs as computed attributes, so
//! what was approved is exactly what runs ([`super::steps::run`]).

use std::time::Duration;

use super::canary::Canary;
use super::colours::{colours_of, live, Colour};
use super::op::{Move, ServiceOp};
use super::{duration_of, fleet_hash, other_colour, RETIRE_AFTER_DEFAULT};
use crate::clock::Millis;
use crate::model::ResourceKind;
use crate::plan::resolve::Resolved;
use crate::plan::{Action, AttrDiff, CanaryGates, Change, OwnPlan, OwnPlanInput};
use crate::types::GateId;
use crate::world::{Attrs, Value};

pub(super) fn plan(input: &OwnPlanInput<'_>) -> OwnPlan {
    let skeleton = input.skeleton();
    let mut change = skeleton.clone();
    change.current = input.objects.first().map(|s| (*s).clone());
    let state = ServiceState::read(&change);
    if let Some(live) = state.live.as_ref().filter(|l| state.runs_declared(l)) {
        state.maintain(&mut change, live, input.now);
        return OwnPlan {
            change,
            cleanup: Vec::new(),
            cutover: None,
            canary_gates: Default::default(),
        };
    }
    let moving = Moving::new(input, &state, &change);
    moving.set_ends(&mut change);
    match moving.ready {
        Some(ready) => moving.resume(&mut change, ready),
        None => moving.new_colour(&mut change),
    }
    let canary_gates = moving.gates();
    let cutover = moving.cutover_step(skeleton, &change, canary_gates.before.as_ref());
    OwnPlan {
        change,
        cleanup: Vec::new(),
        cutover,
        canary_gates,
    }
}

/// The service's colours as observed, and what its declaration asks of
/// them as far as it is known.
struct ServiceState {
    colours: Vec<Colour>,
    live: Option<Colour>,
    known: Option<Attrs>,
    /// [`fleet_hash`] of the declaration; `None` while any of it is pending.
    fleet: Option<String>,
    retire_after: Duration,
}

impl ServiceState {
    fn read(change: &Change) -> Self {
        let colours = change.current.as_ref().map(colours_of).unwrap_or_default();
        let known = crate::plan::known_attrs(&change.desired);
        let fleet = known.as_ref().and_then(fleet_hash);
        let retire_after = known
            .as_ref()
            .map(|a| duration_of(a, "retire_after", RETIRE_AFTER_DEFAULT))
            .unwrap_or_default();
        ServiceState {
            live: live(&colours).cloned(),
            colours,
            known,
            fleet,
            retire_after,
        }
    }

    /// A finished colour running what is declared: traffic may go to it.
    fn runs_declared(&self, c: &Colour) -> bool {
        c.complete && self.fleet.as_deref() == Some(c.fleet.as_str())
    }

    /// The live colour runs what is declared: health checks in place, and old
    /// colours retired once due.
    fn maintain(&self, change: &mut Change, live: &Colour, now: Millis) {
        let name = change.address.to_string();
        change.attrs.clear();
        change.action = Action::NoOp;
        let wanted_check = change
            .desired
            .get("health_check")
            .and_then(Resolved::known)
            .cloned();
        let stale_checks: Vec<&Colour> = self
            .colours
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
        for c in self.colours.iter().filter(|c| c.name != live.name) {
            let due = match (c.complete, c.replaced_at) {
                (true, Some(at)) => at + self.retire_after.as_millis() as i64,
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
}

/// Traffic is to move: from the live colour (if any) to a finished idle
/// colour that runs the declaration, or to a new one, in the canary's steps.
struct Moving<'a> {
    input: &'a OwnPlanInput<'a>,
    state: &'a ServiceState,
    /// A colour an earlier run made and left before (or during) its cutover.
    ready: Option<&'a Colour>,
    from: Option<String>,
    to: String,
    canary: Canary,
    /// A canary stopped at a gate between weights has some of the traffic.
    share: i64,
    /// The move goes in canary steps (there is a live colour to share with).
    stepped: bool,
    /// The weight this cutover step stops at.
    until: i64,
    listener: String,
    /// The service's address, as headlines name it.
    name: String,
}

impl<'a> Moving<'a> {
    fn new(input: &'a OwnPlanInput<'a>, state: &'a ServiceState, change: &Change) -> Self {
        let from = state.live.as_ref().map(|l| l.name.clone());
        let ready = state
            .colours
            .iter()
            .find(|c| Some(&c.name) != from.as_ref() && state.runs_declared(c));
        let to = match ready {
            Some(c) => c.name.clone(),
            None => from.as_deref().map_or("blue", other_colour).to_string(),
        };
        let canary = Canary::of(state.known.as_ref().unwrap_or(&Default::default()));
        let share = ready.map_or(0, |c| c.traffic);
        let stepped = canary.steps.len() > 1 && state.live.is_some();
        let until = match input.cutover_phase {
            Some(_) if stepped => canary.until(share),
            _ => 100,
        };
        Moving {
            input,
            state,
            ready,
            from,
            to,
            canary,
            share,
            stepped,
            until,
            listener: listener_label(change),
            name: change.address.to_string(),
        }
    }

    /// No cutover phase: the step itself moves the traffic, once healthy.
    fn inline(&self) -> bool {
        self.input.cutover_phase.is_none()
    }

    fn moved(&self, until: Option<i64>) -> Move {
        Move {
            to: self.to.clone(),
            from: self.from.clone().unwrap_or_default(),
            until,
        }
    }

    /// Shown on every step, as the cutover reads them.
    fn set_ends(&self, change: &mut Change) {
        set(change, "to", Value::Str(self.to.clone()));
        set(
            change,
            "from",
            Value::Str(self.from.clone().unwrap_or_default()),
        );
    }

    /// The gate before this step, when it is not the phase's own, and the
    /// one the phase goes on behind after it.
    fn gates(&self) -> CanaryGates {
        let phase = self.input.cutover_phase.map(|(phase, _)| phase);
        CanaryGates {
            before: phase
                .filter(|_| self.stepped && self.canary.gated && self.share > 0)
                .map(|phase| GateId::canary(phase, self.until)),
            after: phase
                .filter(|_| self.until < 100)
                .map(|phase| GateId::canary(phase, self.canary.next_after(self.until))),
        }
    }

    /// `cutover listener …: blue → green` with the canary's steps, `when`.
    fn line(&self, when: &str) -> String {
        let from = self.from.as_deref().unwrap_or("503 (no colour)");
        let mut line = format!("cutover listener {}: {from} → {}", self.listener, self.to);
        if self.stepped {
            let canary = &self.canary;
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
            if canary.gated || self.share > 0 {
                line.push_str(&format!(": now {}% → {}%", self.share, self.until));
            }
        }
        format!("{line} ({when})")
    }

    fn inline_cutover_line(&self) -> String {
        format!("~ {}", self.line("once every target is healthy"))
    }

    /// An earlier run made the colour and stopped before the cutover (or
    /// between canary weights): no new colour, only the move.
    fn resume(&self, change: &mut Change, ready: &Colour) {
        let (to, name) = (&self.to, &self.name);
        change.attrs.clear();
        change.headline = Some(if ready.traffic > 0 {
            format!(
                "{to} colour of {name} takes {}% of the traffic (canary, {} instance(s)): no new colour",
                ready.traffic,
                ready.instances.len()
            )
        } else {
            format!(
                "{to} colour of {name} is ready (idle, {} instance(s)): no new colour",
                ready.instances.len()
            )
        });
        if self.inline() {
            change.action = Action::Update;
            ServiceOp::Cutover(self.moved(None)).write(change);
            change.steps.push(self.inline_cutover_line());
        } else {
            change.action = Action::NoOp;
        }
    }

    /// A new colour, after removing the idle ones in its way.
    fn new_colour(&self, change: &mut Change) {
        let (to, listener) = (&self.to, &self.listener);
        change.action = Action::Create;
        let stale: Vec<&Colour> = self
            .state
            .colours
            .iter()
            .filter(|c| Some(&c.name) != self.from.as_ref())
            .collect();
        for c in &stale {
            let why = self.why_removed(c);
            change
                .steps
                .push(format!("- remove idle {} first ({why})", c.name));
        }
        ServiceOp::Colour {
            colour: to.clone(),
            replace: stale.iter().map(|c| c.name.clone()).collect(),
            then: self.inline().then(|| self.moved(None)),
        }
        .write(change);
        change.headline = Some(format!(
            "create {to} colour of {} ({})",
            self.name,
            fleet_summary(change)
        ));
        // AWS health-checks a target group only once the listener uses it.
        let live = self.state.live.as_ref();
        change.steps.push(match live {
            Some(live) => format!(
                "  {to} joins listener {listener} at weight 0 beside {} (health-checked, no traffic)",
                live.name
            ),
            None => format!(
                "  test traffic reaches {to} on listener {listener} with header {}: {to} until the cutover",
                super::TEST_HEADER
            ),
        });
        if let Some(live) = live {
            change.attrs = fleet_diffs(change, live);
            change.steps.push(format!(
                "  {} stays for rollback until {} after the cutover",
                live.name,
                humantime::format_duration(self.state.retire_after)
            ));
        }
        if self.inline() {
            change.steps.push(self.inline_cutover_line());
        }
    }

    /// Why an idle colour goes before the new one is made.
    fn why_removed(&self, c: &Colour) -> String {
        match (c.complete, c.replaced_at) {
            _ if c.traffic > 0 => format!(
                "a canary of another fleet with {}% of the traffic, which goes back to {} first",
                c.traffic,
                self.from.as_deref().unwrap_or("the live colour")
            ),
            (false, _) => "its create never finished".to_string(),
            // A new colour needs its name: the rollback target goes early.
            (true, Some(at)) => format!(
                "the rollback colour, kept until {}: a new colour needs its name",
                clock_time(at + self.state.retire_after.as_millis() as i64)
            ),
            (true, None) => "it runs another fleet and takes no traffic".to_string(),
        }
    }

    /// The move as a step of the later cutover phase, behind that phase's
    /// gate (or the canary's, between weights).
    fn cutover_step(
        &self,
        skeleton: Change,
        change: &Change,
        round_gate: Option<&GateId>,
    ) -> Option<Change> {
        let (phase, gated) = self.input.cutover_phase?;
        let when = match round_gate {
            Some(gate) => format!("after gate \"{gate}\""),
            None if gated => format!("after gate \"{phase}\""),
            None => format!("in phase \"{phase}\""),
        };
        let mut step = skeleton;
        step.action = Action::Update;
        step.current = self.input.objects.first().map(|s| (*s).clone());
        step.attrs.clear();
        step.depends_on.insert(step.address.clone());
        step.desired = change.desired.clone();
        ServiceOp::Cutover(self.moved(self.canary.gated.then_some(self.until))).write(&mut step);
        step.headline = Some(self.line(&when));
        step.steps.clear();
        Some(step)
    }
}

/// A computed attribute of the step.
pub(super) fn set(change: &mut Change, key: &str, value: Value) {
    change
        .desired
        .insert(key.to_string(), Resolved::Known(value));
}

/// How the listener reads in a plan: its address's name, if the service names
/// a listener of its own stack.
pub(super) fn listener_label(change: &Change) -> String {
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
