//! Desired attributes in the one shape the cloud adapters read resources back
//! in (see `world`): defaults filled, rules split into canonical form, sets
//! sorted. Also which attributes can change in place, and the spec hash.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::resolve::Resolved;
use crate::model::ResourceKind;
use crate::world::{Attrs, Tags, Value};

/// Fills defaults and canonicalises every known attribute of `kind`.
pub fn normalize(kind: ResourceKind, attrs: &mut BTreeMap<String, Resolved>) {
    use ResourceKind as K;
    let mut default = |key: &str, value: Value| {
        attrs
            .entry(key.to_string())
            .or_insert(Resolved::Known(value));
    };
    let empty = || Value::List(Vec::new());
    match kind {
        K::Vpc => default("enable_dns_hostnames", Value::Bool(false)),
        K::Subnet => default("map_public_ip", Value::Bool(false)),
        K::RouteTable => {
            default("routes", empty());
            default("subnets", empty());
        }
        K::SecurityGroup => {
            default("ingress", empty());
            // AWS gives every new group an allow-all egress rule; no `egress`
            // means "keep that", not "no egress at all".
            default(
                "egress",
                Value::List(vec![rule("-1", -1, -1, "cidr", "0.0.0.0/0")]),
            );
        }
        // No `security_groups` on a fleet or load balancer means "AWS's
        // default group", which is not ours to manage: the key stays unset.
        K::Instances | K::Service => default("user_data", Value::Str(String::new())),
        K::LoadBalancer => default("internal", Value::Bool(false)),
        K::TargetGroup => default("health_check", Value::Table(BTreeMap::new())),
        K::InternetGateway | K::Image | K::Listener => {}
    }
    for (key, value) in attrs.iter_mut() {
        if let Resolved::Known(v) = value {
            *v = normalize_attr(kind, key, std::mem::replace(v, Value::Bool(false)));
        }
    }
}

fn rule(protocol: &str, from: i64, to: i64, source_key: &str, source: &str) -> Value {
    Value::Table(BTreeMap::from([
        ("protocol".to_string(), Value::Str(protocol.to_string())),
        ("from_port".to_string(), Value::Int(from)),
        ("to_port".to_string(), Value::Int(to)),
        (source_key.to_string(), Value::Str(source.to_string())),
    ]))
}

fn sorted(value: Value) -> Value {
    match value {
        Value::List(mut items) => {
            items.sort();
            items.dedup();
            Value::List(items)
        }
        other => other,
    }
}

fn normalize_attr(kind: ResourceKind, key: &str, value: Value) -> Value {
    use ResourceKind as K;
    match (kind, key) {
        (K::SecurityGroup, "ingress" | "egress") => match value {
            Value::List(rules) => {
                sorted(Value::List(rules.into_iter().map(normalize_rule).collect()))
            }
            other => other,
        },
        (K::RouteTable, "routes") => match value {
            Value::List(routes) => sorted(Value::List(
                routes
                    .into_iter()
                    .map(|r| match r {
                        Value::Table(mut t) => {
                            t.retain(|k, _| k == "destination" || k == "gateway");
                            Value::Table(t)
                        }
                        other => other,
                    })
                    .collect(),
            )),
            other => other,
        },
        (K::RouteTable, "subnets")
        | (K::LoadBalancer, "subnets" | "security_groups")
        | (K::Instances | K::Service, "security_groups") => sorted(value),
        (K::TargetGroup, "health_check") | (K::Service, "health_check") => {
            let mut t = match value {
                Value::Table(t) => t,
                _ => BTreeMap::new(),
            };
            t.entry("path".into()).or_insert(Value::Str("/".into()));
            t.entry("interval".into()).or_insert(Value::Int(30));
            t.entry("healthy_threshold".into()).or_insert(Value::Int(5));
            Value::Table(t)
        }
        _ => value,
    }
}

/// `{ protocol, port | from_port+to_port, cidr | security_group }` →
/// `{ protocol, from_port, to_port, cidr | security_group }`, with "all" as "-1".
fn normalize_rule(rule: Value) -> Value {
    let Value::Table(t) = rule else { return rule };
    let protocol = match t.get("protocol").and_then(Value::as_str) {
        Some("all") | Some("-1") => "-1".to_string(),
        Some(p) => p.to_string(),
        None => "-1".to_string(),
    };
    let (from, to) = if protocol == "-1" {
        (-1, -1)
    } else if let Some(port) = t.get("port").and_then(Value::as_int) {
        (port, port)
    } else {
        (
            t.get("from_port").and_then(Value::as_int).unwrap_or(-1),
            t.get("to_port").and_then(Value::as_int).unwrap_or(-1),
        )
    };
    let mut out = BTreeMap::from([
        ("protocol".to_string(), Value::Str(protocol)),
        ("from_port".to_string(), Value::Int(from)),
        ("to_port".to_string(), Value::Int(to)),
    ]);
    for source in ["cidr", "security_group"] {
        if let Some(v) = t.get(source) {
            out.insert(source.to_string(), v.clone());
        }
    }
    Value::Table(out)
}

/// Whether AWS can change `attr` of a live `kind` (otherwise: replace).
pub fn updatable(kind: ResourceKind, attr: &str) -> bool {
    use ResourceKind as K;
    matches!(
        (kind, attr),
        (K::Vpc, "enable_dns_hostnames")
            | (K::Subnet, "map_public_ip")
            | (K::RouteTable, "routes" | "subnets")
            | (K::SecurityGroup, "ingress" | "egress")
            | (K::Instances, "count")
            | (K::TargetGroup, "health_check")
            | (K::LoadBalancer, "subnets" | "security_groups")
            | (K::Listener, "protocol" | "port" | "default_target_group")
    )
}

/// Whether leaving `attr` unset asks for something (so an observed value is
/// a difference). Only a listener's forward target does: unset means a fixed
/// 503. Other unset attributes are AWS's defaults, not ours to manage.
pub fn unset_is_a_value(kind: ResourceKind, attr: &str) -> bool {
    (kind, attr) == (ResourceKind::Listener, "default_target_group")
}

/// Attributes an adapter cannot read back and that force a replacement: a
/// changed spec hash with no visible difference means one of these changed.
pub fn hidden_force_new(kind: ResourceKind) -> &'static [&'static str] {
    match kind {
        ResourceKind::Instances => &["user_data", "subnets"],
        _ => &[],
    }
}

/// The `drctl:spec` tag: a short hash of everything the resource was asked to be.
pub fn spec_hash(kind: ResourceKind, attrs: &Attrs, user_tags: &Tags) -> String {
    let canonical = serde_json::json!({ "kind": kind, "attrs": attrs, "tags": user_tags });
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Deletion order: lower ranks go first. Every kind refers only to kinds of a
/// higher rank, so deleting rank by rank never hits a dependency violation.
pub fn delete_rank(kind: ResourceKind) -> u8 {
    use ResourceKind as K;
    match kind {
        K::Service => 0,
        K::Listener => 1,
        K::LoadBalancer => 2,
        K::TargetGroup => 3,
        K::Instances => 4,
        K::Image => 5,
        K::RouteTable => 6,
        K::InternetGateway => 7,
        K::SecurityGroup => 8,
        K::Subnet => 9,
        K::Vpc => 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn every_reference_points_to_a_later_deleted_kind() {
        // A kind's id-typed attributes must name kinds deleted after it.
        // (Security groups naming each other in rules are the exception the
        // adapter handles: it revokes a group's rules before deleting it.)
        for kind in ResourceKind::ALL {
            for field in kind.fields() {
                let mut targets = Vec::new();
                collect_id_kinds(&field.ty, &mut targets);
                for target in targets.into_iter().filter(|t| *t != kind) {
                    assert!(
                        delete_rank(target) > delete_rank(kind),
                        "{kind}.{} refers to {target}, which must be deleted later",
                        field.name
                    );
                }
            }
        }
    }

    fn collect_id_kinds(ty: &crate::model::Ty, out: &mut Vec<ResourceKind>) {
        use crate::model::Ty;
        match ty {
            Ty::IdOf(k) => out.push(*k),
            Ty::List(inner) => collect_id_kinds(inner, out),
            Ty::Object(fields) => fields.iter().for_each(|f| collect_id_kinds(&f.ty, out)),
            Ty::OneOf(tys) => tys.iter().for_each(|t| collect_id_kinds(t, out)),
            _ => {}
        }
    }
}
