//! Desired attributes in the one shape the cloud adapters read resources back
//! in (see `world`): defaults filled, rules split into canonical form, sets
//! sorted. Also which attributes can change in place, and the spec hash.
//!
//! What each kind fills in and accepts in place is its own business (see
//! `crate::kinds`); these functions are the planner's view of it.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::kinds::KindDef;
use crate::model::ResourceKind;
use crate::plan::resolve::Resolved;
use crate::world::{Attrs, Tags, Value};

/// Fills defaults and canonicalises every known attribute of `kind`.
pub fn normalize(kind: ResourceKind, attrs: &mut BTreeMap<String, Resolved>) {
    let def = kind.def();
    for (key, value) in def.defaults() {
        attrs
            .entry(key.to_string())
            .or_insert(Resolved::Known(value));
    }
    for (key, value) in attrs.iter_mut() {
        if let Resolved::Known(v) = value {
            *v = def.normalize_attr(key, std::mem::replace(v, Value::Bool(false)));
        }
    }
}

/// Whether AWS can change `attr` of a live `kind` (otherwise: replace).
pub fn updatable(kind: ResourceKind, attr: &str) -> bool {
    kind.def().updatable(attr)
}

/// Whether leaving `attr` unset asks for something (so an observed value is
/// a difference), e.g. a listener's forward target: unset means a fixed 503.
/// Other unset attributes are AWS's defaults, not ours to manage.
pub fn unset_is_a_value(kind: ResourceKind, attr: &str) -> bool {
    kind.def().unset_is_a_value(attr)
}

/// Attributes an adapter cannot read back and that force a replacement: a
/// changed spec hash with no visible difference means one of these changed.
pub fn hidden_force_new(kind: ResourceKind) -> &'static [&'static str] {
    kind.def().hidden_force_new()
}

/// The `drctl:spec` tag: a short hash of everything the resource was asked to be.
pub fn spec_hash(kind: ResourceKind, attrs: &Attrs, user_tags: &Tags) -> String {
    let canonical = serde_json::json!({ "kind": kind, "attrs": attrs, "tags": user_tags });
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Deletion order: lower ranks go first ([`crate::kinds::delete_rank`]).
pub fn delete_rank(kind: ResourceKind) -> u8 {
    crate::kinds::delete_rank(kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::security_group::rule;

    fn known(attrs: BTreeMap<String, Resolved>) -> BTreeMap<String, Value> {
        attrs
            .into_iter()
            .map(|(k, v)| (k, v.known().cloned().expect("known")))
            .collect()
    }

    #[test]
    fn rules_are_canonical_and_egress_defaults_to_allow_all() {
        let mut attrs = BTreeMap::from([(
            "ingress".to_string(),
            Resolved::Known(Value::List(vec![
                Value::Table(BTreeMap::from([
                    ("protocol".into(), Value::Str("tcp".into())),
                    ("port".into(), Value::Int(80)),
                    ("cidr".into(), Value::Str("0.0.0.0/0".into())),
                    ("description".into(), Value::Str("web".into())),
                ])),
                Value::Table(BTreeMap::from([
                    ("protocol".into(), Value::Str("all".into())),
                    ("cidr".into(), Value::Str("10.0.0.0/8".into())),
                ])),
            ])),
        )]);
        normalize(ResourceKind::SecurityGroup, &mut attrs);
        let attrs = known(attrs);
        assert_eq!(
            attrs["ingress"],
            Value::List(vec![
                rule("tcp", 80, 80, "cidr", "0.0.0.0/0"),
                rule("-1", -1, -1, "cidr", "10.0.0.0/8"),
            ])
        );
        assert_eq!(
            attrs["egress"],
            Value::List(vec![rule("-1", -1, -1, "cidr", "0.0.0.0/0")])
        );
    }

    #[test]
    fn spec_hash_changes_with_any_input() {
        let attrs = Attrs::from([("cidr_block".into(), Value::Str("10.0.0.0/16".into()))]);
        let tags = Tags::new();
        let a = spec_hash(ResourceKind::Vpc, &attrs, &tags);
        assert_eq!(a.len(), 16);
        assert_eq!(a, spec_hash(ResourceKind::Vpc, &attrs, &tags));
        let mut other = attrs.clone();
        other.insert("cidr_block".into(), Value::Str("10.1.0.0/16".into()));
        assert_ne!(a, spec_hash(ResourceKind::Vpc, &other, &tags));
        let tagged = Tags::from([("team".into(), "sre".into())]);
        assert_ne!(a, spec_hash(ResourceKind::Vpc, &attrs, &tagged));
    }

    #[test]
    fn what_a_resource_names_is_deleted_after_it() {
        // Every id-typed attribute names a kind deleted later (a security
        // group naming another in its rules is the adapter's to handle: it
        // revokes a group's rules before deleting it).
        for kind in ResourceKind::ALL {
            for named in crate::kinds::names(kind).into_iter().filter(|n| *n != kind) {
                assert!(
                    delete_rank(named) > delete_rank(kind),
                    "{kind} names {named}, which must be deleted later"
                );
            }
        }
        use ResourceKind::*;
        // The chain a service stands on, front to back.
        let chain = [Service, Listener, LoadBalancer, Subnet, Vpc];
        assert!(chain
            .windows(2)
            .all(|w| delete_rank(w[0]) < delete_rank(w[1])));
        // What nothing names goes first, beside each other.
        for first in [Service, Instances, RouteTable] {
            assert_eq!(delete_rank(first), 0, "{first}");
        }
        assert_eq!(delete_rank(Vpc), 4);
    }
}
