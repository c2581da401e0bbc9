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
    /// Depends on something the named phase creates. `pending` is the value
    /// with holes where those exports go: the executor fills them in from
    /// the steps that ran before, it never goes back to the stack files.
    After {
        phase: String,
        pending: Pending,
    },
}

/// A value with holes: exports of resources not created yet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pending {
    /// `${kind.name.attr}` of a resource created later.
    Export {
        address: Address,
        attr: String,
    },
    List(Vec<Resolved>),
    Table(BTreeMap<String, Resolved>),
    /// A string with references in it, e.g. `"http://${load_balancer.lb.dns_name}/"`.
    Concat(Vec<Resolved>),
}

impl Resolved {
    pub fn known(&self) -> Option<&Value> {
        match self {
            Resolved::Known(v) => Some(v),
            Resolved::After { .. } => None,
        }
    }

    /// The value, with pending exports read from `exports` (what earlier
    /// steps produced); `None` while one of them is still missing.
    pub fn fill(&self, exports: &BTreeMap<Address, Attrs>) -> Option<Value> {
        match self {
            Resolved::Known(v) => Some(v.clone()),
            Resolved::After { pending, .. } => match pending {
                Pending::Export { address, attr } => exports.get(address)?.get(attr).cloned(),
                Pending::List(items) => items
                    .iter()
                    .map(|i| i.fill(exports))
                    .collect::<Option<Vec<_>>>()
                    .map(Value::List),
                Pending::Table(entries) => entries
                    .iter()
                    .map(|(k, v)| Some((k.clone(), v.fill(exports)?)))
                    .collect::<Option<BTreeMap<_, _>>>()
                    .map(Value::Table),
                Pending::Concat(parts) => {
                    let mut text = String::new();
                    for part in parts {
                        push_text(&mut text, &part.fill(exports)?);
                    }
                    Some(Value::Str(text))
                }
            },
        }
    }

    /// The resources whose exports it still waits on.
    pub fn pending_on(&self) -> BTreeSet<Address> {
        let mut found = BTreeSet::new();
        let mut stack = vec![self];
        while let Some(value) = stack.pop() {
            match value {
                Resolved::Known(_) => {}
                Resolved::After { pending, .. } => match pending {
                    Pending::Export { address, .. } => {
                        found.insert(address.clone());
                    }
                    Pending::List(items) | Pending::Concat(items) => stack.extend(items),
                    Pending::Table(entries) => stack.extend(entries.values()),
                },
            }
        }
        found
    }

    fn phase(&self) -> Option<&str> {
        match self {
            Resolved::Known(_) => None,
            Resolved::After { phase, .. } => Some(phase),
        }
    }
}

/// Items resolved one by one: known if all are, else pending on the first
/// pending item's phase.
fn combine(
    items: Vec<Resolved>,
    known: impl FnOnce(Vec<Value>) -> Value,
    pending: impl FnOnce(Vec<Resolved>) -> Pending,
) -> Resolved {
    match items.iter().find_map(Resolved::phase) {
        None => Resolved::Known(known(
            items
                .into_iter()
                .filter_map(|i| i.known().cloned())
                .collect(),
        )),
        Some(phase) => Resolved::After {
            phase: phase.to_string(),
            pending: pending(items),
        },
    }
}

fn push_text(text: &mut String, value: &Value) {
    match value {
        Value::Str(s) => text.push_str(s),
        Value::Int(n) => text.push_str(&n.to_string()),
        Value::Bool(b) => text.push_str(&b.to_string()),
        // Validation rejects lists and tables inside strings.
        other => text.push_str(&other.to_string()),
    }
}

impl std::fmt::Display for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resolved::Known(v) => write!(f, "{v}"),
            Resolved::After { phase, .. } => write!(f, "(known after phase {phase})"),
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
                let items = items
                    .iter()
                    .map(|i| self.resolve_depth(stack, i, depth))
                    .collect();
                combine(items, Value::List, Pending::List)
            }
            ExprKind::Table(entries) => {
                let keys: Vec<String> = entries.iter().map(|(k, _)| k.clone()).collect();
                let values = entries
                    .iter()
                    .map(|(_, v)| self.resolve_depth(stack, v, depth))
                    .collect();
                let keys2 = keys.clone();
                combine(
                    values,
                    |vs| Value::Table(keys.into_iter().zip(vs).collect()),
                    |rs| Pending::Table(keys2.into_iter().zip(rs).collect()),
                )
            }
            ExprKind::Str(template) => {
                if let Some(r) = template.as_whole_ref() {
                    return self.reference(stack, &r.target, depth);
                }
                let parts = template
                    .parts
                    .iter()
                    .map(|part| match part {
                        Part::Lit(s) => Resolved::Known(Value::Str(s.clone())),
                        Part::Ref(r) => self.reference(stack, &r.target, depth),
                    })
                    .collect();
                combine(
                    parts,
                    |vs| {
                        let mut text = String::new();
                        vs.iter().for_each(|v| push_text(&mut text, v));
                        Value::Str(text)
                    },
                    Pending::Concat,
                )
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
                    Some(Exports::After(phase)) => Resolved::After {
                        phase: phase.clone(),
                        pending: Pending::Export {
                            address,
                            attr: attr.clone(),
                        },
                    },
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

/// Whether an expression reads a variable declared `sensitive = true` (in
/// the runbook or the stack), following stack outputs into their stacks.
pub fn reads_sensitive_var(
    project: &Project,
    runbook: &Runbook,
    stack: &Stack,
    expr: &Expr,
) -> bool {
    sensitive_depth(project, runbook, stack, expr, 0)
}

fn sensitive_depth(
    project: &Project,
    runbook: &Runbook,
    stack: &Stack,
    expr: &Expr,
    depth: usize,
) -> bool {
    expr.references().iter().any(|r| match &r.target {
        RefTarget::Var(name) => [runbook.vars.get(name), stack.vars.get(name)]
            .into_iter()
            .flatten()
            .any(|v| v.sensitive),
        RefTarget::StackOutput {
            stack: other,
            output,
        } if depth < 64 => project
            .stacks
            .get(other)
            .and_then(|o| Some((o, o.output(output)?)))
            .is_some_and(|(o, out)| sensitive_depth(project, runbook, o, &out.value, depth + 1)),
        _ => false,
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ResourceKind;

    #[test]
    fn pending_values_fill_in_from_what_earlier_steps_returned() {
        let lb = Address::new("web", ResourceKind::LoadBalancer, "public");
        let dns = Resolved::After {
            phase: "two".into(),
            pending: Pending::Export {
                address: lb.clone(),
                attr: "dns_name".into(),
            },
        };
        let url = combine(
            vec![
                Resolved::Known(Value::Str("http://".into())),
                dns.clone(),
                Resolved::Known(Value::Str("/health".into())),
            ],
            |_| unreachable!("one part is pending"),
            Pending::Concat,
        );
        let list = combine(
            vec![Resolved::Known(Value::Str("a".into())), dns],
            |_| unreachable!("one item is pending"),
            Pending::List,
        );
        assert_eq!(url.to_string(), "(known after phase two)");
        let mut exports = BTreeMap::new();
        assert_eq!(url.fill(&exports), None, "not created yet");
        exports.insert(
            lb,
            Attrs::from([("dns_name".into(), Value::Str("lb.example".into()))]),
        );
        assert_eq!(
            url.fill(&exports),
            Some(Value::Str("http://lb.example/health".into()))
        );
        assert_eq!(
            list.fill(&exports),
            Some(Value::str_list(["a", "lb.example"]))
        );
    }
}
