//! Plans as anyone may see them: secrets replaced by their hash.

use super::resolve::Resolved;
use super::{Change, PhasePlan, Plan};
use crate::digest::hash_json;
use crate::world::Value;

/// The plan as anyone may see it: every sensitive value replaced by
/// `(sensitive, sha256 …)` — enough to see that it changed, never what it
/// is. Plans reach sinks, `--json` and saved files only in this form.
pub fn redacted(plan: &Plan) -> Plan {
    let mut plan = plan.clone();
    for phase in &mut plan.phases {
        phase.changes.iter_mut().for_each(redact_change);
    }
    plan.cleanup.iter_mut().for_each(redact_change);
    plan
}

/// One phase of a plan, redacted.
pub fn redacted_phase(phase: &PhasePlan) -> PhasePlan {
    let mut phase = phase.clone();
    phase.changes.iter_mut().for_each(redact_change);
    phase
}

fn redact_change(change: &mut Change) {
    for attr in &mut change.attrs {
        if change.sensitive.contains(&attr.name) {
            attr.before = attr.before.as_ref().map(sensitive_marker);
            attr.after = attr.after.as_ref().map(redact_resolved);
        }
    }
    for (key, value) in &mut change.desired {
        if change.sensitive.contains(key) {
            *value = redact_resolved(value);
        }
    }
}

fn redact_resolved(value: &Resolved) -> Resolved {
    match value {
        Resolved::Known(v) => Resolved::Known(sensitive_marker(v)),
        // A template's literal parts may be the secret itself.
        Resolved::After { phase, .. } => Resolved::Known(Value::Str(format!(
            "(sensitive, known after phase {phase})"
        ))),
    }
}

/// `(sensitive, sha256 3f2a9c01d4e5)` for a secret value.
pub fn sensitive_marker(value: &Value) -> Value {
    let hash = hash_json(value);
    Value::Str(format!("(sensitive, sha256 {})", &hash[..12]))
}
