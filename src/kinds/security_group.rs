//! `security_group`: a VPC's security group and exactly its ingress and
//! egress rules.

use super::{Kind, Problems};
use crate::kinds::common::sorted;
use crate::kinds::schema::{opt, req, Field, Ty, ValueType};
use crate::model::{Expr, ExprKind, Resource};
use crate::types::ResourceKind;
use crate::world::Value;
use std::collections::BTreeMap;

pub struct SecurityGroup;

const ANY_PORT: Ty = Ty::Int {
    min: -1,
    max: 65535,
};

/// `port` or `from_port` + `to_port`; `cidr` or `security_group` (checked by the validator).
pub const RULE: &[Field] = &[
    req("protocol", Ty::Enum(&["tcp", "udp", "icmp", "all", "-1"])),
    opt("port", ANY_PORT),
    opt("from_port", ANY_PORT),
    opt("to_port", ANY_PORT),
    opt("cidr", Ty::Cidr),
    opt("security_group", Ty::IdOf(ResourceKind::SecurityGroup)),
    opt("description", Ty::Str),
];

const FIELDS: &[Field] = &[
    req("vpc", Ty::IdOf(ResourceKind::Vpc)),
    req("description", Ty::Str),
    opt("ingress", Ty::List(&Ty::Object(RULE))),
    opt("egress", Ty::List(&Ty::Object(RULE))),
];

impl Kind for SecurityGroup {
    fn fields(&self) -> &'static [Field] {
        FIELDS
    }

    fn exports(&self) -> &'static [(&'static str, ValueType)] {
        &[("id", ValueType::Str)]
    }

    fn defaults(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("ingress", Value::List(Vec::new())),
            // AWS gives every new group an allow-all egress rule; no `egress`
            // means "keep that", not "no egress at all".
            (
                "egress",
                Value::List(vec![rule("-1", -1, -1, "cidr", "0.0.0.0/0")]),
            ),
        ]
    }

    fn normalize_attr(&self, key: &str, value: Value) -> Value {
        match (key, value) {
            ("ingress" | "egress", Value::List(rules)) => {
                sorted(Value::List(rules.into_iter().map(normalize_rule).collect()))
            }
            (_, other) => other,
        }
    }

    fn updatable(&self, attr: &str) -> bool {
        matches!(attr, "ingress" | "egress")
    }

    fn check(&self, resource: &Resource, base: &str, problems: &mut Problems<'_>) {
        for direction in ["ingress", "egress"] {
            let Some(Expr {
                kind: ExprKind::List(rules),
                ..
            }) = resource.attr(direction)
            else {
                continue;
            };
            for (i, rule) in rules.iter().enumerate() {
                check_rule(rule, &format!("{base}.{direction}[{i}]"), problems);
            }
        }
    }
}

// --- Validation and normal form ----------------------------------------------

fn check_rule(rule: &Expr, path: &str, problems: &mut Problems<'_>) {
    if !matches!(rule.kind, ExprKind::Table(_)) {
        return; // the schema check already reported it
    }
    let has = |k: &str| rule.get(k).is_some();
    let ports_ok = match (has("port"), has("from_port"), has("to_port")) {
        (true, false, false) | (false, true, true) => true,
        (false, false, false) => matches!(
            rule.get("protocol").and_then(Expr::as_literal_str),
            Some("all" | "-1")
        ),
        _ => false,
    };
    if !ports_ok {
        problems
            .error(
                rule.pos,
                path,
                "a rule needs `port`, or both `from_port` and `to_port`",
            )
            .with_hint(format!(
                "allowed keys: {}",
                RULE.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
            ));
    }
    if has("cidr") == has("security_group") {
        problems.error(
            rule.pos,
            path,
            "a rule needs exactly one of `cidr` or `security_group`",
        );
    }
}

/// A rule in its normal form.
pub(crate) fn rule(protocol: &str, from: i64, to: i64, source_key: &str, source: &str) -> Value {
    Value::Table(BTreeMap::from([
        ("protocol".to_string(), Value::Str(protocol.to_string())),
        ("from_port".to_string(), Value::Int(from)),
        ("to_port".to_string(), Value::Int(to)),
        (source_key.to_string(), Value::Str(source.to_string())),
    ]))
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
