//! Which services a run cut over, read from its journal, and the colour
//! each moved its traffic to: what an automatic rollback may move back.

use std::collections::BTreeMap;

use crate::graph::PhaseSpec;
use crate::journal::Event;
use crate::kinds::service;
use crate::world::{Address, Snapshot};

/// Each cut-over service with the colour the run moved its traffic to:
/// the colour whose target group the cutover step returned. A service whose
/// colour is gone is left out (there is nothing to move traffic away from).
pub(super) fn cut_over_colours(
    snapshot: &Snapshot,
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
pub(super) struct CutOver {
    pub service: Address,
    pub target_group: String,
}

/// The services the journaled run cut over: those a runbook phase names in
/// its `cutover` list whose step in that phase succeeded (the last such
/// step of each, after a resume).
pub(super) fn cut_over_in(events: &[Event], phases: &[PhaseSpec]) -> Vec<CutOver> {
    let mut running: Option<&PhaseSpec> = None;
    // The phase of each step in flight: pipelined phases overlap, so the
    // intent names it (older journals do not: the phase running then).
    let mut phase_of: BTreeMap<&Address, Option<&PhaseSpec>> = BTreeMap::new();
    let mut found: Vec<CutOver> = Vec::new();
    for event in events {
        match event {
            Event::PhaseStarted { phase: name, .. } => {
                running = phases.iter().find(|p| &p.name == name);
            }
            Event::Intent { address, phase, .. } => {
                let named = phase
                    .as_ref()
                    .map(|name| phases.iter().find(|p| &p.name == name));
                phase_of.insert(address, named.unwrap_or(running));
            }
            Event::Outcome {
                address,
                ok: true,
                id,
                ..
            } => {
                let phase = phase_of.get(address).copied().unwrap_or(running);
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

/// Each service the journaled run cut over, with the colour it moved it to
/// in `snapshot` (the world the checks read).
pub(super) fn live_colours(
    events: &[Event],
    phases: &[PhaseSpec],
    snapshot: &Snapshot,
) -> BTreeMap<String, String> {
    cut_over_colours(snapshot, &cut_over_in(events, phases))
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
                barrier: false,
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
                barrier: false,
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
