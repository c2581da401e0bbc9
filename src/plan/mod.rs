//! A plan's data: per phase, the steps (creates, updates, replacements,
//! deletions, and a service's own steps) exactly as shown and as executed,
//! with how they render, hash and hide secrets, and how a step's values
//! resolve. Made by [`crate::planner`], run by [`crate::execute`].

mod known;
mod outputs;
mod redact;
pub mod render;
pub mod resolve;
mod verify;

pub use known::{known_attrs, known_tags, user_tags};
pub use outputs::{outputs, OutputValue};
pub use verify::{cleanup_hash, phase_hash, world_changes};

pub use redact::{redacted, redacted_phase, sensitive_marker};

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::model::{Resource, Stack};
use crate::world::{Address, ObservedResource, Value};
use resolve::{Resolved, Scope};

/// Version of the saved-plan format; a different one is refused.
/// 2: steps carry their desired values, pending ones as fillable templates.
pub const PLAN_FORMAT: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format: u32,
    pub runbook: String,
    pub environment: String,
    pub region: String,
    /// Hash of the stack and runbook files the plan was made from.
    pub source_hash: String,
    /// Hash of what was observed; `apply` refuses the plan if the world changed.
    pub fingerprint: String,
    /// When the world was observed (the injected clock's time).
    pub observed_at: Millis,
    pub phases: Vec<PhasePlan>,
    /// Deletions (resources no longer declared, old copies of replaced ones),
    /// after the last phase, dependents first.
    pub cleanup: Vec<Change>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhasePlan {
    pub name: String,
    /// How the gate before this phase reads, e.g. "manual, 2 approvals".
    pub gate: String,
    /// Every declared resource of the phase's stacks, in dependency order
    /// (no-ops included: they carry the exports dependents read).
    pub changes: Vec<Change>,
    /// Services whose traffic switches in this phase.
    pub cutover: Vec<String>,
    /// A canary this phase cuts over is under way or stops short of 100%:
    /// the gate before the phase is the canary's (`cutover@50%`), and after
    /// its steps the phase goes on behind another, not on to the next phase.
    #[serde(default, flatten)]
    pub canary_gates: CanaryGates,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    /// Create a new copy (in this phase), delete the old one in cleanup.
    Replace,
    Delete,
    NoOp,
}

impl Action {
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
            Action::NoOp => " ",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub address: Address,
    pub action: Action,
    /// Attributes that differ (all of them for a create).
    pub attrs: Vec<AttrDiff>,
    /// Why, in words, where the attributes do not say it all.
    pub reasons: Vec<String>,
    /// The resource as observed (for everything but a create).
    pub current: Option<ObservedResource>,
    /// Resources this one reads (ids, ARNs), which must be applied before it.
    pub depends_on: BTreeSet<Address>,
    /// Every attribute the resource is to have, normalised; values pending on
    /// earlier steps are filled in by the executor from what those returned.
    /// Empty for deletions.
    #[serde(default)]
    pub desired: BTreeMap<String, Resolved>,
    /// The user's tags, likewise.
    #[serde(default)]
    pub tags: BTreeMap<String, Resolved>,
    /// Attributes that carry secrets (the kind says so, or they read a
    /// sensitive var): shown only as `(sensitive, sha256 …)`, see [`redacted`].
    #[serde(default)]
    pub sensitive: BTreeSet<String>,
    /// How the step reads, where a kind says it better than "create X"
    /// (`bake image app from ami-…`, `reuse ami-…`, `deregister ami-…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headline: Option<String>,
    /// The sub-steps it takes, one line each (`+ copy to us-west-2`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
    /// Attributes the step reads only once under way (a new colour needs
    /// its listener only to be health-checked, after its fleet is up): it
    /// may start before the steps they wait on are done, and is handed
    /// them when they are ([`crate::cloud::provider::LateInputs`]).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub late: BTreeSet<String>,
}

impl Change {
    /// A desired attribute's text, if it is known at planning time.
    pub fn known_str(&self, key: &str) -> Option<String> {
        self.desired.get(key)?.known()?.as_str().map(str::to_string)
    }

    /// The steps only its late attributes wait on: every other input must
    /// be done before it starts, these need not.
    pub fn late_dependencies(&self) -> BTreeSet<Address> {
        let early: BTreeSet<Address> = self
            .desired
            .iter()
            .filter(|(key, _)| !self.late.contains(*key))
            .chain(&self.tags)
            .flat_map(|(_, value)| value.pending_on())
            .collect();
        self.late
            .iter()
            .filter_map(|key| self.desired.get(key))
            .flat_map(Resolved::pending_on)
            .filter(|a| !early.contains(a) && self.depends_on.contains(a))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttrDiff {
    pub name: String,
    pub before: Option<Value>,
    pub after: Option<Resolved>,
    pub forces_replacement: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub replace: usize,
    pub destroy: usize,
}

impl Summary {
    pub fn total(&self) -> usize {
        self.add + self.change + self.replace + self.destroy
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} to add, {} to change, {} to replace, {} to destroy",
            self.add, self.change, self.replace, self.destroy
        )
    }
}

impl PhasePlan {
    /// This phase's changes alone (the journal records it per phase).
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for change in &self.changes {
            match change.action {
                Action::Create => s.add += 1,
                Action::Update => s.change += 1,
                Action::Replace => s.replace += 1,
                Action::Delete | Action::NoOp => {}
            }
        }
        s
    }
}

impl Plan {
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for change in self.phases.iter().flat_map(|p| &p.changes) {
            match change.action {
                Action::Create => s.add += 1,
                Action::Update => s.change += 1,
                Action::Replace => s.replace += 1,
                Action::Delete | Action::NoOp => {}
            }
        }
        s.destroy = self
            .cleanup
            .iter()
            .filter(|c| !c.reasons.iter().any(|r| r.starts_with(REPLACED)))
            .count();
        s
    }

    pub fn has_changes(&self) -> bool {
        self.summary() != Summary::default()
    }
}

/// How the deletion of a replaced resource's old copy begins its reason.
pub const REPLACED: &str = "old copy";

/// A step deleting `o`, for `reason` (none: destroy).
pub fn deletion(o: &ObservedResource, reason: Option<String>) -> Change {
    Change {
        address: o.address.clone(),
        action: Action::Delete,
        attrs: Vec::new(),
        reasons: reason.into_iter().collect(),
        current: Some(o.clone()),
        depends_on: BTreeSet::new(),
        desired: BTreeMap::new(),
        tags: BTreeMap::new(),
        sensitive: BTreeSet::new(),
        headline: None,
        steps: Vec::new(),
        late: BTreeSet::new(),
    }
}

/// What a kind that plans itself gets ([`crate::kinds::Kind::plan_itself`]).
pub struct OwnPlanInput<'a> {
    pub scope: &'a Scope<'a>,
    pub stack: &'a Stack,
    pub resource: &'a Resource,
    /// What the environment has at the resource's address.
    pub objects: &'a [&'a ObservedResource],
    pub lookups: &'a crate::world::Lookups,
    pub address: &'a Address,
    /// When the world was observed (the injected clock): what is due by then.
    pub now: crate::clock::Millis,
    /// The later phase that cuts this service over, and whether a gate
    /// stops the run before it; `None`: no such phase (cut over at once).
    pub cutover_phase: Option<(&'a str, bool)>,
    /// The planner's own step for the resource, as a create (see
    /// [`OwnPlanInput::skeleton`]).
    pub skeleton: &'a dyn Fn() -> Change,
}

/// A self-planned resource's step, and the deletions it adds to cleanup.
pub struct OwnPlan {
    pub change: Change,
    pub cleanup: Vec<Change>,
    /// A step for the phase in [`OwnPlanInput::cutover_phase`].
    pub cutover: Option<Change>,
    /// The canary gate the step waits behind instead of its phase's own (a
    /// gated canary that stopped at a weight below 100%), and the one its
    /// phase goes on behind after it, when it stops short again.
    pub canary_gates: CanaryGates,
}

/// The gates between a gated canary's weights ([`crate::types::GateId`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CanaryGates {
    /// Passed before this step (a canary under way), instead of the phase's gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<crate::types::GateId>,
    /// Passed after it, before the next weight: the step stops short of 100%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<crate::types::GateId>,
}

impl OwnPlanInput<'_> {
    /// The resource as a create: desired values, tags, what it reads,
    /// which attributes are sensitive (made on demand: only kinds that plan
    /// themselves need it).
    pub fn skeleton(&self) -> Change {
        (self.skeleton)()
    }
}
