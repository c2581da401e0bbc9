//! A canary strategy: `{ canary = [10, 50, 100], wait = "5m", gate = "manual" }`.
//! Each weight is watched for `wait`; with a `gate`, the cutover phase stops
//! after each weight below 100% and goes on behind a gate of its own, named
//! after the phase and the next weight (`cutover@50%`, see
//! [`crate::types::GateId`]), until the new colour has it all.

use std::time::Duration;

use crate::kinds::schema::{opt, req, Field, Ty};
use crate::kinds::Problems;
use crate::model::{Expr, ExprKind, Gate, ManualGate, OnTimeout, Resource};
use crate::world::{Attrs, Value};

const MANUAL: &[Field] = &[
    opt("approvals", Ty::Int { min: 1, max: 100 }),
    opt("approvers", Ty::List(&Ty::Str)),
    opt("timeout", Ty::Duration),
    opt("on_timeout", Ty::Enum(&["wait", "reject"])),
];

pub(super) const CANARY: &[Field] = &[
    req("canary", Ty::List(&Ty::Int { min: 1, max: 100 })),
    // How long each weighted step is watched before the next one.
    opt("wait", Ty::Duration),
    // The gate passed before each weight after the first (as a phase's).
    opt(
        "gate",
        Ty::OneOf(&[
            Ty::Enum(&["auto", "manual"]),
            Ty::Object(&[req("manual", Ty::Object(MANUAL))]),
        ]),
    ),
];

/// How a service's traffic moves: the weights (percent on the new colour,
/// ending at 100), how long each is watched, and whether a gate stands
/// between them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Canary {
    pub steps: Vec<i64>,
    pub wait: Duration,
    pub gated: bool,
}

impl Canary {
    /// From a service's known attributes; blue/green is one step of 100.
    pub fn of(attrs: &Attrs) -> Canary {
        let Some(t) = attrs.get("strategy").and_then(Value::as_table) else {
            return Canary {
                steps: vec![100],
                wait: Duration::ZERO,
                gated: false,
            };
        };
        let steps = t
            .get("canary")
            .and_then(Value::as_list)
            .map(|l| l.iter().filter_map(Value::as_int).collect())
            .unwrap_or_else(|| vec![100]);
        let wait = t
            .get("wait")
            .and_then(Value::as_str)
            .and_then(|w| humantime::parse_duration(w).ok())
            .unwrap_or_default();
        Canary {
            gated: steps.len() > 1 && t.contains_key("gate"),
            steps,
            wait,
        }
    }

    /// Where this cutover step stops, from `share` percent on the new
    /// colour: the next weight when gated, else all the way.
    pub fn until(&self, share: i64) -> i64 {
        if !self.gated {
            return 100;
        }
        self.next_after(share)
    }

    /// The first weight above `share` (100 when none is).
    pub fn next_after(&self, share: i64) -> i64 {
        self.steps
            .iter()
            .copied()
            .find(|p| *p > share)
            .unwrap_or(100)
    }
}

/// The gate a service declares between its canary weights, if any (a
/// canary of one weight has nothing to stop between).
pub fn canary_gate(resource: &Resource) -> Option<Gate> {
    let strategy = resource.attr("strategy")?;
    let weights = match &strategy.get("canary")?.kind {
        ExprKind::List(items) => items.len(),
        _ => 0,
    };
    let gate = strategy.get("gate").filter(|_| weights > 1)?;
    Some(match gate.as_literal_str() {
        Some("manual") => Gate::Manual(ManualGate::default()),
        Some(_) => Gate::Auto,
        None => Gate::Manual(manual_gate(gate.get("manual")?)),
    })
}

fn manual_gate(manual: &Expr) -> ManualGate {
    let int = |key| match manual.get(key).map(|e| &e.kind) {
        Some(ExprKind::Int(n)) => Some(*n),
        _ => None,
    };
    let approvers: Vec<String> = match manual.get("approvers").map(|e| &e.kind) {
        Some(ExprKind::List(items)) => items
            .iter()
            .filter_map(|i| i.as_literal_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    let text = |key| manual.get(key).and_then(Expr::as_literal_str);
    ManualGate {
        approvals: int("approvals").unwrap_or(1) as u32,
        approvers,
        timeout: text("timeout").and_then(|t| humantime::parse_duration(t).ok()),
        on_timeout: match text("on_timeout") {
            Some("reject") => OnTimeout::Reject,
            _ => OnTimeout::Wait,
        },
    }
}

/// The checks the schema cannot make: weights that increase to 100, and a
/// manual gate that can be passed.
pub(super) fn check(resource: &Resource, base: &str, problems: &mut Problems<'_>) {
    let Some(strategy) = resource.attr("strategy") else {
        return;
    };
    if let Some(steps) = strategy.get("canary") {
        if let ExprKind::List(items) = &steps.kind {
            let values: Vec<i64> = items
                .iter()
                .filter_map(|i| match i.kind {
                    ExprKind::Int(n) => Some(n),
                    _ => None,
                })
                .collect();
            let increasing = values.windows(2).all(|w| w[0] < w[1]);
            if values.len() == items.len() && (!increasing || values.last() != Some(&100)) {
                problems
                    .error(
                        steps.pos,
                        &format!("{base}.strategy.canary"),
                        format!("canary steps {values:?} must increase and end at 100"),
                    )
                    .with_hint("e.g. canary = [10, 50, 100]");
            }
        }
    }
    let Some(manual) = strategy.get("gate").and_then(|g| g.get("manual")) else {
        return;
    };
    let path = format!("{base}.strategy.gate.manual");
    let gate = manual_gate(manual);
    if !gate.approvers.is_empty() && gate.approvals as usize > gate.approvers.len() {
        let at = manual.get("approvals").map_or(manual.pos, |e| e.pos);
        problems.error(
            at,
            &format!("{path}.approvals"),
            format!(
                "{} approvals needed but only {} approver(s) listed",
                gate.approvals,
                gate.approvers.len()
            ),
        );
    }
    if let (Some(on), None) = (manual.get("on_timeout"), manual.get("timeout")) {
        if on.as_literal_str() == Some("reject") {
            problems
                .error(
                    on.pos,
                    &format!("{path}.on_timeout"),
                    "`on_timeout` needs a `timeout`",
                )
                .with_hint("add e.g. `timeout = \"4h\"`");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(steps: &[i64], gated: bool) -> Canary {
        Canary {
            steps: steps.to_vec(),
            wait: Duration::ZERO,
            gated,
        }
    }

    #[test]
    fn a_gated_canary_stops_at_each_weight_and_an_ungated_one_goes_all_the_way() {
        let gated = canary(&[10, 50, 100], true);
        assert_eq!(
            [0, 10, 30, 50].map(|s| gated.until(s)),
            [10, 50, 50, 100],
            "from no traffic, from each weight, and from a share between weights"
        );
        let ungated = canary(&[10, 50, 100], false);
        assert_eq!([0, 10, 50].map(|s| ungated.until(s)), [100, 100, 100]);
        assert_eq!(gated.next_after(100), 100);
    }

    #[test]
    fn strategy_attributes_read_as_a_canary() {
        let strategy = |pairs: Vec<(&str, Value)>| {
            Attrs::from([(
                "strategy".to_string(),
                Value::Table(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()),
            )])
        };
        let steps = Value::List(vec![Value::Int(10), Value::Int(100)]);
        let read = Canary::of(&strategy(vec![
            ("canary", steps.clone()),
            ("wait", Value::Str("5m".into())),
            ("gate", Value::Str("manual".into())),
        ]));
        assert_eq!(read.steps, [10, 100]);
        assert_eq!(read.wait, Duration::from_secs(300));
        assert!(read.gated);
        assert!(!Canary::of(&strategy(vec![("canary", steps)])).gated);
        let blue_green = Canary::of(&Attrs::from([(
            "strategy".to_string(),
            Value::Str("blue_green".into()),
        )]));
        assert_eq!(blue_green, canary(&[100], false));
    }
}
