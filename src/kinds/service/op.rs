//! What a service step does, as a type the planner writes and the executor
//! matches. It travels in the step's computed attributes (so a saved plan
//! and an approval cover it, byte for byte as before), written and read
//! here only (the planner also shows `to` and `from` on a colour's step).

use crate::kinds::common::{BadAttr, Want};
use crate::plan::resolve::Resolved;
use crate::plan::Change;
use crate::world::Value;

/// One service step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ServiceOp {
    /// Remove the idle colours `replace`, create `colour`; with `then`,
    /// move the traffic to it as soon as it is healthy (no cutover phase).
    Colour {
        colour: String,
        replace: Vec<String>,
        then: Option<Move>,
    },
    /// Move the listener's traffic.
    Cutover(Move),
    /// Health checks in place on every colour, and `retire` retired.
    Maintain { retire: Vec<String> },
    /// Only `retire` retired (`drctl retire`).
    Retire { retire: Vec<String> },
}

/// The listener's traffic from colour `from` ("" for none) to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Move {
    pub to: String,
    pub from: String,
    /// Stop at this weight (a gated canary); `None`: all the way.
    pub until: Option<i64>,
}

impl Move {
    /// The share of the traffic `to` has once the move is done.
    pub fn up_to(&self) -> i64 {
        self.until.unwrap_or(100)
    }
}

impl ServiceOp {
    /// Into `change`'s computed attributes.
    pub fn write(&self, change: &mut Change) {
        let set = |change: &mut Change, key: &str, value: Value| {
            change
                .desired
                .insert(key.to_string(), Resolved::Known(value));
        };
        let (operation, moved) = match self {
            ServiceOp::Colour {
                colour,
                replace,
                then,
            } => {
                set(change, "color", Value::Str(colour.clone()));
                set(change, "cut_over", Value::Bool(then.is_some()));
                set(change, "replace", Value::str_list(replace.iter().cloned()));
                ("colour", then.as_ref())
            }
            ServiceOp::Cutover(moved) => ("cutover", Some(moved)),
            ServiceOp::Maintain { retire } | ServiceOp::Retire { retire } => {
                set(change, "retire", Value::str_list(retire.iter().cloned()));
                let name = if matches!(self, ServiceOp::Maintain { .. }) {
                    "maintain"
                } else {
                    "retire"
                };
                (name, None)
            }
        };
        // A new colour's fleet comes up before its listener is needed (to
        // put it in use, health-checked): a new load balancer provisions
        // meanwhile. Stale colours come out of the listener first, so then
        // it is needed at once; every other operation needs it at once.
        if matches!(self, ServiceOp::Colour { replace, .. } if replace.is_empty()) {
            change.late.insert("listener".into());
        } else {
            change.late.remove("listener");
        }
        set(change, "operation", Value::Str(operation.into()));
        if let Some(moved) = moved {
            set(change, "to", Value::Str(moved.to.clone()));
            set(change, "from", Value::Str(moved.from.clone()));
            if let Some(until) = moved.until {
                set(change, "until", Value::Int(until));
            }
        }
    }

    /// From a step's attributes, as the executor gets them.
    pub fn read(want: &Want<'_>) -> Result<ServiceOp, BadAttr> {
        let moved = || -> Result<Move, BadAttr> {
            Ok(Move {
                to: want.str("to")?.to_string(),
                from: want.opt_str("from")?.unwrap_or("").to_string(),
                until: match want.attrs.get("until") {
                    None => None,
                    Some(_) => Some(i64::from(want.i32("until")?)),
                },
            })
        };
        Ok(match want.str("operation")? {
            "colour" => ServiceOp::Colour {
                colour: want.str("color")?.to_string(),
                replace: want.strs("replace")?,
                then: match want.bool("cut_over", false)? {
                    true => Some(moved()?),
                    false => None,
                },
            },
            "cutover" => ServiceOp::Cutover(moved()?),
            "maintain" => ServiceOp::Maintain {
                retire: want.strs("retire")?,
            },
            "retire" => ServiceOp::Retire {
                retire: want.strs("retire")?,
            },
            _ => return Err(want.bad("operation", "colour, cutover, maintain or retire")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ResourceKind;
    use crate::plan::Action;
    use crate::world::Address;

    /// What the executor reads back from what the planner wrote.
    fn round_trip(op: &ServiceOp) -> ServiceOp {
        let address = Address::new("app", ResourceKind::Service, "web");
        let mut change = Change {
            address: address.clone(),
            action: Action::Update,
            attrs: Vec::new(),
            reasons: Vec::new(),
            current: None,
            depends_on: Default::default(),
            desired: Default::default(),
            tags: Default::default(),
            sensitive: Default::default(),
            headline: None,
            steps: Vec::new(),
        late: Default::default(),
        };
        op.write(&mut change);
        let attrs = crate::plan::known_attrs(&change.desired).expect("all known");
        ServiceOp::read(&Want::new(&address, &attrs)).expect("reads back")
    }

    #[test]
    fn every_operation_reads_back_as_written() {
        let moved = |until| Move {
            to: "green".into(),
            from: "blue".into(),
            until,
        };
        for op in [
            ServiceOp::Colour {
                colour: "green".into(),
                replace: vec!["blue".into()],
                then: Some(moved(None)),
            },
            ServiceOp::Colour {
                colour: "blue".into(),
                replace: Vec::new(),
                then: None,
            },
            ServiceOp::Cutover(moved(Some(50))),
            ServiceOp::Cutover(moved(None)),
            ServiceOp::Maintain {
                retire: vec!["blue".into()],
            },
            ServiceOp::Retire {
                retire: vec!["green".into()],
            },
        ] {
            assert_eq!(round_trip(&op), op);
        }
        assert_eq!(moved(None).up_to(), 100);
        assert_eq!(moved(Some(10)).up_to(), 10);
    }
}
