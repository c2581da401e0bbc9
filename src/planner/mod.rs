//! The planner: desired (a validated runbook) + observed (resources found by
//! tag) → a [`Plan`] of creates, updates, replacements and deletions, per phase.
//!
//! Pure and synchronous: no clock, no I/O, no cloud. What is printed is
//! exactly what `apply` executes.

mod diff;
mod lookups;
pub mod normalize;

use std::collections::BTreeMap;

use diff::diff;
pub use diff::Desired;
pub use lookups::lookups_needed;
use normalize::spec_hash;

use crate::graph::{resource_order, runbook_phases};
use crate::kinds::KindDef;
use crate::model::{Project, Resource, Runbook, Stack};
use crate::plan::resolve::{Exports, Scope};
use crate::plan::{
    deletion, Action, CanaryGates, Change, OwnPlanInput, PhasePlan, Plan, PLAN_FORMAT, REPLACED,
};
use crate::world::{Address, ObservedResource, Snapshot};

/// Plans `runbook` against what exists. `observed` is everything tagged with
/// the runbook's environment.
pub fn plan(
    project: &Project,
    runbook: &Runbook,
    snapshot: &Snapshot,
    source_hash: String,
) -> Plan {
    // Usually one object per address; more when a replacement or a crashed
    // run left another copy behind.
    let mut by_address: BTreeMap<Address, Vec<&ObservedResource>> = snapshot
        .resources
        .iter()
        .map(|(address, objects)| (address.clone(), objects.iter().collect()))
        .collect();
    let mut cleanup = Vec::new();

    let mut exports: BTreeMap<Address, Exports> = BTreeMap::new();
    let mut phases = Vec::new();
    let all_phases = runbook_phases(project, runbook);
    // Services cut over in a phase after their own: (phase, gated) by address.
    let mut cut_over_in: BTreeMap<Address, (String, bool)> = BTreeMap::new();
    for phase in &all_phases {
        for service in &phase.cutover {
            let address = Address::new(
                &service.stack,
                crate::model::ResourceKind::Service,
                &service.name,
            );
            if !phase.stacks.contains(&service.stack) {
                let gated = !matches!(phase.gate, crate::model::Gate::Auto);
                cut_over_in.insert(address, (phase.name.clone(), gated));
            }
        }
    }
    // Cutover steps planned with their service, run in their own phase.
    let mut deferred: BTreeMap<String, Vec<Change>> = BTreeMap::new();
    // Phases whose canaries stop at gates between weights.
    let mut holds: BTreeMap<String, CanaryGates> = BTreeMap::new();
    for phase in all_phases {
        let mut changes = Vec::new();
        for stack_name in &phase.stacks {
            let stack = &project.stacks[stack_name];
            for resource in resource_order(stack) {
                let address = Address::new(&stack.name, resource.kind, &resource.name);
                let scope = Scope {
                    project,
                    runbook,
                    exports: &exports,
                };
                let copies = by_address.remove(&address).unwrap_or_default();
                let skeleton = || diff(&scope, stack, resource, address.clone(), None);
                let own = resource.kind.def().plan_itself(&OwnPlanInput {
                    scope: &scope,
                    stack,
                    resource,
                    objects: &copies,
                    lookups: &snapshot.lookups,
                    address: &address,
                    now: snapshot.taken_at,
                    cutover_phase: cut_over_in
                        .get(&address)
                        .map(|(phase, gated)| (phase.as_str(), *gated)),
                    skeleton: &skeleton,
                });
                if let Some(own) = own {
                    let exported = match (&own.change.action, &own.change.current) {
                        (Action::NoOp | Action::Update, Some(o)) => {
                            Exports::Known(o.exports.clone())
                        }
                        _ => Exports::After(phase.name.clone()),
                    };
                    if let (Some(step), Some((later, _))) = (own.cutover, cut_over_in.get(&address))
                    {
                        deferred.entry(later.clone()).or_default().push(step);
                        let gates = holds.entry(later.clone()).or_default();
                        gates.before = gates.before.take().or(own.canary_gates.before);
                        gates.after = gates.after.take().or(own.canary_gates.after);
                    }
                    exports.insert(address, exported);
                    cleanup.extend(own.cleanup);
                    changes.push(own.change);
                    continue;
                }
                let (current, others) = choose_copy(&scope, stack, resource, copies);
                for other in others {
                    cleanup.push(deletion(
                        other,
                        Some(format!(
                            "another copy of {address} ({}) is kept",
                            current.map_or("", |c| c.id.as_str())
                        )),
                    ));
                }
                let change = diff(&scope, stack, resource, address.clone(), current);
                let exported = match (&change.action, current) {
                    (Action::NoOp | Action::Update, Some(o)) => Exports::Known(o.exports.clone()),
                    _ => Exports::After(phase.name.clone()),
                };
                exports.insert(address, exported);
                if let (Action::Replace, Some(old)) = (change.action, current) {
                    cleanup.push(deletion(
                        old,
                        Some(format!("{REPLACED}, replaced in phase {}", phase.name)),
                    ));
                }
                changes.push(change);
            }
        }
        changes.extend(deferred.remove(&phase.name).unwrap_or_default());
        let gates = holds.remove(&phase.name).unwrap_or_default();
        phases.push(PhasePlan {
            name: phase.name.clone(),
            gate: match &gates.before {
                Some(name) => format!(
                    "{name}, {}",
                    crate::graph::gate_label(&crate::graph::canary_gate(project, &phase))
                ),
                None => crate::graph::gate_label(&phase.gate),
            },
            changes,
            cutover: phase.cutover.iter().map(|s| s.to_string()).collect(),
            canary_gates: gates,
        });
    }
    for o in by_address.into_values().flatten() {
        cleanup.push(deletion(o, Some("no longer declared".to_string())));
    }
    cleanup.sort_by_key(|c| (normalize::delete_rank(c.address.kind), c.address.clone()));
    Plan {
        format: PLAN_FORMAT,
        runbook: runbook.name.clone(),
        environment: runbook.environment.clone(),
        region: runbook.region.clone(),
        source_hash,
        fingerprint: snapshot.fingerprint(),
        observed_at: snapshot.taken_at,
        phases,
        cleanup,
    }
}

/// Which of several resources claiming one address is the resource: the one
/// already matching the desired spec, else the newest run's, else the first.
fn choose_copy<'o>(
    scope: &Scope<'_>,
    stack: &Stack,
    resource: &Resource,
    mut copies: Vec<&'o ObservedResource>,
) -> (Option<&'o ObservedResource>, Vec<&'o ObservedResource>) {
    if copies.len() > 1 {
        let wanted = Desired::of(scope, stack, resource)
            .known()
            .map(|(attrs, tags)| spec_hash(resource.kind, &attrs, &tags));
        let key = |o: &&ObservedResource| {
            let matches = wanted.is_some() && o.spec_hash() == wanted.as_deref();
            (matches, o.run_id().unwrap_or("").to_string())
        };
        // Stable: among equal keys the first (by id) wins.
        let best = (0..copies.len())
            .rev()
            .max_by_key(|&i| key(&copies[i]))
            .expect("more than one copy");
        let kept = copies.remove(best);
        return (Some(kept), copies);
    }
    (copies.pop(), Vec::new())
}
