//! The root stacks' outputs, resolved from a plan (like Terraform's outputs).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::resolve::{self, Exports, Resolved, Scope};
use super::{sensitive_marker, Action, Plan};
use crate::model::{Project, Runbook};
use crate::world::Address;

/// One output of a root stack, as far as it is known from what exists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputValue {
    pub stack: String,
    pub name: String,
    pub value: Resolved,
    /// Reads a sensitive var: shown only as its hash.
    pub sensitive: bool,
}

/// The outputs of the runbook's root stacks (like Terraform's outputs),
/// read from `plan`: values of resources that exist and need no change are
/// known; the rest are pending on the phase that creates them. Secrets are
/// redacted.
pub fn outputs(project: &Project, runbook: &Runbook, plan: &Plan) -> Vec<OutputValue> {
    let exports: BTreeMap<Address, Exports> = plan
        .phases
        .iter()
        .flat_map(|p| p.changes.iter().map(move |c| (p, c)))
        .map(|(p, c)| {
            let exported = match (&c.action, &c.current) {
                (Action::NoOp, Some(o)) => Exports::Known(o.exports.clone()),
                _ => Exports::After(p.name.clone()),
            };
            (c.address.clone(), exported)
        })
        .collect();
    let scope = Scope {
        project,
        runbook,
        exports: &exports,
    };
    let mut out = Vec::new();
    for root in &runbook.stacks {
        let Some(stack) = project.stacks.get(&root.name) else {
            continue;
        };
        for output in &stack.outputs {
            let sensitive = resolve::reads_sensitive_var(project, runbook, stack, &output.value);
            let value = scope.resolve(stack, &output.value);
            out.push(OutputValue {
                stack: stack.name.clone(),
                name: output.name.clone(),
                value: match (&value, sensitive) {
                    (Resolved::Known(v), true) => Resolved::Known(sensitive_marker(v)),
                    _ => value,
                },
                sensitive,
            });
        }
    }
    out
}
