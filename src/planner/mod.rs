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

use crate::graph::{resource_order, runbook_phases, PhaseSpec};
use crate::kinds::KindDef;
use crate::model::{Project, Resource, Runbook, Stack};
use crate::plan::resolve::{Exports, Scope};
use crate::plan::{
    deletion, Action, CanaryGates, Change, OwnPlan, OwnPlanInput, PhasePlan, Plan, PLAN_FORMAT,
    REPLACED,
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
    let all_phases = runbook_phases(project, runbook);
    let mut planner = Planner {
        project,
        runbook,
        snapshot,
        by_address: snapshot
            .resources
            .iter()
            .map(|(address, objects)| (address.clone(), objects.iter().collect()))
            .collect(),
        cut_over_in: cut_over_in(&all_phases),
        exports: BTreeMap::new(),
        cleanup: Vec::new(),
        deferred: BTreeMap::new(),
        holds: BTreeMap::new(),
    };
    let phases = all_phases
        .into_iter()
        .map(|phase| planner.plan_phase(phase))
        .collect();
    let mut cleanup = planner.cleanup;
    for o in planner.by_address.into_values().flatten() {
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

/// Services cut over in a phase after their own: (phase, gated) by address.
fn cut_over_in(phases: &[PhaseSpec]) -> BTreeMap<Address, (String, bool)> {
    let mut cut_over_in = BTreeMap::new();
    for phase in phases {
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
    cut_over_in
}

/// One pass over a runbook's phases, in order: each step reads what the
/// steps before it export, and leaves what it replaces for cleanup.
struct Planner<'a> {
    project: &'a Project,
    runbook: &'a Runbook,
    snapshot: &'a Snapshot,
    /// Usually one object per address; more when a replacement or a crashed
    /// run left another copy behind. What is left at the end is no longer
    /// declared.
    by_address: BTreeMap<Address, Vec<&'a ObservedResource>>,
    cut_over_in: BTreeMap<Address, (String, bool)>,
    exports: BTreeMap<Address, Exports>,
    cleanup: Vec<Change>,
    /// Cutover steps planned with their service, run in their own phase.
    deferred: BTreeMap<String, Vec<Change>>,
    /// Phases whose canaries stop at gates between weights.
    holds: BTreeMap<String, CanaryGates>,
}

/// A declared resource, and the phase that applies it.
struct Declared<'a> {
    phase: &'a str,
    stack: &'a Stack,
    resource: &'a Resource,
    address: Address,
}

impl<'a> Planner<'a> {
    fn plan_phase(&mut self, phase: PhaseSpec) -> PhasePlan {
        let project = self.project;
        let mut changes = Vec::new();
        for stack_name in &phase.stacks {
            let stack = &project.stacks[stack_name];
            for resource in resource_order(stack) {
                let at = Declared {
                    phase: &phase.name,
                    stack,
                    resource,
                    address: Address::new(&stack.name, resource.kind, &resource.name),
                };
                let copies = self.by_address.remove(&at.address).unwrap_or_default();
                let planned = self.plan_resource(&at, copies);
                changes.push(self.record(at, planned));
            }
        }
        // The cutovers of services applied in earlier phases run here.
        changes.extend(self.deferred.remove(&phase.name).unwrap_or_default());
        let gates = self.holds.remove(&phase.name).unwrap_or_default();
        PhasePlan {
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
        }
    }

    /// The kind's own plan of the resource, if it makes one, else the diff
    /// of the copy kept against the declaration.
    fn plan_resource(&self, at: &Declared<'_>, copies: Vec<&'a ObservedResource>) -> OwnPlan {
        let scope = Scope {
            project: self.project,
            runbook: self.runbook,
            exports: &self.exports,
        };
        let skeleton = || diff(&scope, at.stack, at.resource, at.address.clone(), None);
        let own = at.resource.kind.def().plan_itself(&OwnPlanInput {
            scope: &scope,
            stack: at.stack,
            resource: at.resource,
            objects: &copies,
            lookups: &self.snapshot.lookups,
            address: &at.address,
            now: self.snapshot.taken_at,
            cutover_phase: self
                .cut_over_in
                .get(&at.address)
                .map(|(phase, gated)| (phase.as_str(), *gated)),
            skeleton: &skeleton,
        });
        own.unwrap_or_else(|| diff_copies(&scope, at, copies))
    }

    /// Keeps what later steps need of a planned resource (its exports, its
    /// cutover for a later phase, its cleanup) and returns its step.
    fn record(&mut self, at: Declared<'_>, planned: OwnPlan) -> Change {
        if let (Some(step), Some((later, _))) = (planned.cutover, self.cut_over_in.get(&at.address))
        {
            self.deferred.entry(later.clone()).or_default().push(step);
            let gates = self.holds.entry(later.clone()).or_default();
            gates.before = gates.before.take().or(planned.canary_gates.before);
            gates.after = gates.after.take().or(planned.canary_gates.after);
        }
        // Known now if the resource stays as it is or is updated in place;
        // else only once the phase has made it.
        let exported = match (&planned.change.action, &planned.change.current) {
            (Action::NoOp | Action::Update, Some(o)) => Exports::Known(o.exports.clone()),
            _ => Exports::After(at.phase.to_string()),
        };
        self.exports.insert(at.address, exported);
        self.cleanup.extend(planned.cleanup);
        planned.change
    }
}

/// A resource the planner diffs itself: one copy kept, the others deleted,
/// and the old one deleted once replaced.
fn diff_copies(scope: &Scope<'_>, at: &Declared<'_>, copies: Vec<&ObservedResource>) -> OwnPlan {
    let (current, others) = choose_copy(scope, at.stack, at.resource, copies);
    let mut cleanup: Vec<Change> = others
        .into_iter()
        .map(|other| {
            deletion(
                other,
                Some(format!(
                    "another copy of {} ({}) is kept",
                    at.address,
                    current.map_or("", |c| c.id.as_str())
                )),
            )
        })
        .collect();
    let change = diff(scope, at.stack, at.resource, at.address.clone(), current);
    if let (Action::Replace, Some(old)) = (change.action, current) {
        cleanup.push(deletion(
            old,
            Some(format!("{REPLACED}, replaced in phase {}", at.phase)),
        ));
    }
    OwnPlan {
        change,
        cleanup,
        cutover: None,
        canary_gates: CanaryGates::default(),
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
