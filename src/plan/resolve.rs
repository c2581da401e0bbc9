//! Turning a stack's expressions into values: variables (runbook overrides
//! first), the environment, and other resources' exports — known, or only
//! known after the phase that creates them.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{EnvField, Expr, ExprKind, Part, Project, RefTarget, Runbook, Stack};
use crate::world::{Address, Attrs, Value};

/// A value as far as it is known when planning.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Resolved {
    Known(Value),
    /// Depends on something the named phase creates.
    After(String),
}

impl Resolved {
    pub fn known(&self) -> Option<&Value> {
        match self {
            Resolved::Known(v) => Some(v),
            Resolved::After(_) => None,
        }
    }
}

impl std::fmt::Display for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resolved::Known(v) => write!(f, "{v}"),
            Resolved::After(phase) => write!(f, "(known after phase {phase})"),
        }
    }
}

/// What other resources export: read back from the cloud, or pending.
#[derive(Debug, Clone, PartialEq)]
pub enum Exports {
    Known(Attrs),
    After(String),
}

/// Everything references can read while planning or applying one runbook.
pub struct Scope<'a> {
    pub project: &'a Project,
    pub runbook: &'a Runbook,
    pub exports: &'a BTreeMap<Address, Exports>,
}

impl Scope<'_> {
    /// Resolves `expr`, written in `stack`.
    pub fn resolve(&self, stack: &Stack, expr: &Expr) -> Resolved {
        self.resolve_depth(stack, expr, 0)
    }

    fn resolve_depth(&self, stack: &Stack, expr: &Expr, depth: usize) -> Resolved {
        match &expr.kind {
            ExprKind::Int(n) => Resolved::Known(Value::Int(*n)),
            ExprKind::Bool(b) => Resolved::Known(Value::Bool(*b)),
            ExprKind::List(items) => {
                let mut out = Vec::new();
                for item in items {
                    match self.resolve_depth(stack, item, depth) {
                        Resolved::Known(v) => out.push(v),
                        after => return after,
                    }
                }
                Resolved::Known(Value::List(out))
            }
            ExprKind::Table(entries) => {
                let mut out = BTreeMap::new();
                for (k, v) in entries {
                    match self.resolve_depth(stack, v, depth) {
                        Resolved::Known(v) => {
                            out.insert(k.clone(), v);
                        }
                        after => return after,
                    }
                }
                Resolved::Known(Value::Table(out))
            }
            ExprKind::Str(template) => {
                if let Some(r) = template.as_whole_ref() {
                    return self.reference(stack, &r.target, depth);
                }
                let mut text = String::new();
                for part in &template.parts {
                    match part {
                        Part::Lit(s) => text.push_str(s),
                        Part::Ref(r) => match self.reference(stack, &r.target, depth) {
                            Resolved::Known(Value::Str(s)) => text.push_str(&s),
                            Resolved::Known(Value::Int(n)) => text.push_str(&n.to_string()),
                            Resolved::Known(Value::Bool(b)) => text.push_str(&b.to_string()),
                            // Validation rejects lists and tables inside strings.
                            Resolved::Known(other) => text.push_str(&other.to_string()),
                            after => return after,
                        },
                    }
                }
                Resolved::Known(Value::Str(text))
            }
        }
    }

    fn reference(&self, stack: &Stack, target: &RefTarget, depth: usize) -> Resolved {
        match target {
            RefTarget::Env(EnvField::Name) => {
                Resolved::Known(Value::Str(self.runbook.environment.clone()))
            }
            RefTarget::Env(EnvField::Region) => {
                Resolved::Known(Value::Str(self.runbook.region.clone()))
            }
            RefTarget::Var(name) => {
                let var = self.runbook.vars.get(name).or_else(|| stack.vars.get(name));
                match var {
                    Some(var) => self.resolve_depth(stack, &var.value, depth),
                    None => panic!(
                        "validated stack `{}` uses undeclared var `{name}`",
                        stack.name
                    ),
                }
            }
            RefTarget::Resource { kind, name, attr } => {
                let address = Address::new(&stack.name, *kind, name);
                match self.exports.get(&address) {
                    Some(Exports::Known(exports)) => match exports.get(attr) {
                        Some(v) => Resolved::Known(v.clone()),
                        None => panic!("adapter for {kind} exported no `{attr}` for {address}"),
                    },
                    Some(Exports::After(phase)) => Resolved::After(phase.clone()),
                    None => panic!("{address} is referenced before it was planned"),
                }
            }
            RefTarget::StackOutput {
                stack: other,
                output,
            } => {
                let other = &self.project.stacks[other];
                let output = other
                    .output(output)
                    .expect("validated output reference resolves");
                // Validation rejects stack cycles; the bound only guards against a bug.
                assert!(depth < 64, "output reference chain too deep");
                self.resolve_depth(other, &output.value, depth + 1)
            }
        }
    }
}

/// The resources an expression reads, following stack outputs into their stacks.
pub fn referenced_resources(project: &Project, stack: &Stack, expr: &Expr) -> BTreeSet<Address> {
    let mut out = BTreeSet::new();
    collect_resources(project, stack, expr, &mut out, 0);
    out
}

fn collect_resources(
    project: &Project,
    stack: &Stack,
    expr: &Expr,
    out: &mut BTreeSet<Address>,
    depth: usize,
) {
    for r in expr.references() {
        match &r.target {
            RefTarget::Resource { kind, name, .. } => {
                out.insert(Address::new(&stack.name, *kind, name));
            }
            RefTarget::StackOutput {
                stack: other,
                output,
            } if depth < 64 => {
                if let Some(other) = project.stacks.get(other) {
                    if let Some(o) = other.output(output) {
                        collect_resources(project, other, &o.value, out, depth + 1);
                    }
                }
            }
            _ => {}
        }
    }
}
