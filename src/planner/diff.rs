//! One resource: what the stack declares (resolved as far as it can be now)
//! against what was observed, as a [`Change`] with its attribute and tag
//! differences, the resources it reads, and its sensitive attributes.

use std::collections::{BTreeMap, BTreeSet};

use super::normalize::{hidden_force_new, normalize, spec_hash, unset_is_a_value, updatable};
use crate::kinds::KindDef;
use crate::model::{Resource, ResourceKind, Stack};
use crate::plan::resolve::{self, Resolved, Scope};
use crate::plan::{known_attrs, known_tags, user_tags};
use crate::plan::{Action, AttrDiff, Change};
use crate::world::{Address, Attrs, ObservedResource, Tags, Value};

/// A resource's attributes and user tags as far as they are known now.
pub struct Desired {
    pub attrs: BTreeMap<String, Resolved>,
    pub tags: BTreeMap<String, Resolved>,
}

impl Desired {
    pub fn of(scope: &Scope<'_>, stack: &Stack, resource: &Resource) -> Self {
        let mut attrs: BTreeMap<String, Resolved> = resource
            .attrs
            .iter()
            .map(|(k, e)| (k.clone(), scope.resolve(stack, e)))
            .collect();
        normalize(resource.kind, &mut attrs);
        let tags = resource
            .tags
            .iter()
            .map(|(k, e)| (k.clone(), scope.resolve(stack, e)))
            .collect();
        Desired { attrs, tags }
    }

    /// Everything, when nothing is pending any more.
    pub fn known(&self) -> Option<(Attrs, Tags)> {
        Some((known_attrs(&self.attrs)?, known_tags(&self.tags)?))
    }
}

/// The step taking `current` (none: nothing yet) to what `resource` declares.
pub fn diff(
    scope: &Scope<'_>,
    stack: &Stack,
    resource: &Resource,
    address: Address,
    current: Option<&ObservedResource>,
) -> Change {
    let desired = Desired::of(scope, stack, resource);
    let depends_on = resource
        .attrs
        .iter()
        .chain(&resource.tags)
        .flat_map(|(_, e)| resolve::referenced_resources(scope.project, stack, e))
        .filter(|a| a != &address)
        .collect();
    let sensitive = sensitive_attrs(scope, stack, resource, &desired);
    let comparison = match current {
        None => Comparison::create(&desired),
        Some(current) => Comparison::of(resource.kind, &desired, current),
    };
    Change {
        address,
        action: comparison.action,
        attrs: comparison.attrs,
        reasons: comparison.reasons,
        current: current.cloned(),
        depends_on,
        desired: desired.attrs,
        tags: desired.tags,
        sensitive,
        headline: None,
        steps: Vec::new(),
        late: Default::default(),
    }
}

/// The declared attributes that carry secrets: by the kind's schema, or
/// because they read a sensitive variable.
fn sensitive_attrs(
    scope: &Scope<'_>,
    stack: &Stack,
    resource: &Resource,
    desired: &Desired,
) -> BTreeSet<String> {
    desired
        .attrs
        .keys()
        .filter(|k| {
            sensitive_attr(resource.kind, k)
                || resource.attr(k).is_some_and(|e| {
                    resolve::reads_sensitive_var(scope.project, scope.runbook, stack, e)
                })
        })
        .cloned()
        .collect()
}

/// What the step does to the resource, the attributes (and tags) it
/// changes, and why, when no attribute shows it.
struct Comparison {
    action: Action,
    attrs: Vec<AttrDiff>,
    reasons: Vec<String>,
}

impl Comparison {
    /// Nothing exists yet: every declared attribute is new.
    fn create(desired: &Desired) -> Self {
        let attrs = desired
            .attrs
            .iter()
            .map(|(k, v)| AttrDiff {
                name: k.clone(),
                before: None,
                after: Some(v.clone()),
                forces_replacement: false,
            })
            .collect();
        Comparison {
            action: Action::Create,
            attrs,
            reasons: Vec::new(),
        }
    }

    fn of(kind: ResourceKind, desired: &Desired, current: &ObservedResource) -> Self {
        let mut attrs = attr_diffs(kind, desired, current);
        let mut reasons = Vec::new();
        let mut replace = attrs.iter().any(|a| a.forces_replacement);
        if let Some((known_attrs, known_tags)) = desired.known() {
            let have_tags = user_tags(&current.tags, &desired.tags);
            if have_tags != known_tags {
                attrs.push(AttrDiff {
                    name: "tags".into(),
                    before: Some(tags_value(&have_tags)),
                    after: Some(Resolved::Known(tags_value(&known_tags))),
                    forces_replacement: false,
                });
            }
            let hash = spec_hash(kind, &known_attrs, &known_tags);
            if attrs.is_empty() && current.spec_hash() != Some(hash.as_str()) {
                replace |= unreported_change(kind, current, &mut reasons);
            }
        }
        let action = if replace {
            Action::Replace
        } else if attrs.is_empty() && reasons.is_empty() {
            Action::NoOp
        } else {
            Action::Update
        };
        Comparison {
            action,
            attrs,
            reasons,
        }
    }
}

/// The attributes AWS reports back that differ from the declaration, and
/// those the declaration dropped where unset is a value of its own.
fn attr_diffs(kind: ResourceKind, desired: &Desired, current: &ObservedResource) -> Vec<AttrDiff> {
    let mut attrs = Vec::new();
    for (name, want) in &desired.attrs {
        let have = current.attrs.get(name);
        let differs = match want {
            Resolved::Known(v) => have.is_some_and(|h| h != v),
            // Pending on a resource that does not exist yet: it will change.
            Resolved::After { .. } => true,
        };
        if differs {
            attrs.push(AttrDiff {
                name: name.clone(),
                before: have.cloned(),
                after: Some(want.clone()),
                forces_replacement: !updatable(kind, name),
            });
        }
    }
    for (name, have) in &current.attrs {
        if unset_is_a_value(kind, name) && !desired.attrs.contains_key(name) {
            attrs.push(AttrDiff {
                name: name.clone(),
                before: Some(have.clone()),
                after: None,
                forces_replacement: !updatable(kind, name),
            });
        }
    }
    attrs
}

/// The spec hash differs but no attribute AWS reports back does: says why
/// in `reasons`, and whether that forces a replacement.
fn unreported_change(
    kind: ResourceKind,
    current: &ObservedResource,
    reasons: &mut Vec<String>,
) -> bool {
    let hidden = hidden_force_new(kind);
    if current.spec_hash().is_none() && hidden.is_empty() {
        // The spec tag is written last: its create stopped half-way.
        reasons.push("its create did not finish (no drctl:spec tag yet): finishing it".into());
        false
    } else if hidden.is_empty() {
        reasons.push("its spec changed in attributes AWS does not report back".into());
        false
    } else {
        reasons.push(format!(
            "its spec changed in attributes AWS does not report back ({}), which force replacement",
            hidden.join(", ")
        ));
        true
    }
}

fn tags_value(tags: &Tags) -> Value {
    Value::Table(
        tags.iter()
            .map(|(k, v)| (k.clone(), Value::Str(v.clone())))
            .collect(),
    )
}

/// Attributes the kind's schema marks as carrying secrets.
fn sensitive_attr(kind: ResourceKind, attr: &str) -> bool {
    kind.fields().iter().any(|f| f.name == attr && f.sensitive)
}
