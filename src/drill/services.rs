//! The report's services section: the colours a drill made, the step that
//! cut the listener over, and what an automatic rollback did after failed
//! checks. Built from the rebuilt environment and the journal's timings.

use super::report::{ColourUse, CutoverStep, PhaseTiming, ServiceUse};
use crate::app::RolledBack;
use crate::graph::PhaseSpec;
use crate::kinds::service;
use crate::model::ResourceKind;
use crate::world::{Address, Snapshot};

pub fn services_used(
    rebuilt: &Snapshot,
    phases: &[PhaseSpec],
    timings: &[PhaseTiming],
    rolled_back: &[RolledBack],
) -> Vec<ServiceUse> {
    rebuilt
        .objects()
        .filter(|o| o.address.kind == ResourceKind::Service)
        .map(|found| {
            let address = found.address.to_string();
            let colours: Vec<ColourUse> = service::colours_of(found)
                .into_iter()
                .map(|c| ColourUse {
                    name: c.name,
                    target_group: c.target_group,
                    instances: c.instances.len(),
                    image: c.image,
                    instance_type: c.instance_type,
                    traffic: c.traffic,
                })
                .collect();
            let live = service::live_colour(found);
            ServiceUse {
                cutover: cutover_step(&found.address, phases, timings),
                rollback: rolled_back.iter().find(|r| r.service == address).cloned(),
                address,
                colours,
                live,
            }
        })
        .collect()
}

/// The service's step in the phase that names it in its `cutover` list.
fn cutover_step(
    address: &Address,
    phases: &[PhaseSpec],
    timings: &[PhaseTiming],
) -> Option<CutoverStep> {
    let phase = phases
        .iter()
        .find(|p| p.cutover.iter().any(|s| s.address() == *address))?;
    let timing = timings.iter().find(|t| t.name == phase.name)?;
    // The report's timings name steps by their address's text.
    let text = address.to_string();
    let step = timing.steps.iter().find(|s| s.address == text)?;
    Some(CutoverStep {
        phase: phase.name.clone(),
        started_at: step.started_at,
        duration_ms: step.duration_ms,
        ok: step.ok,
    })
}
