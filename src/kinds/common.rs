//! The normal forms and schema pieces shared by kinds.

use std::collections::BTreeMap;

use crate::kinds::schema::{opt, Field, Ty};
use crate::world::Value;

// --- Normal forms shared by kinds -----------------------------------------

/// A list as a set: sorted, without duplicates.
pub(crate) fn sorted(value: Value) -> Value {
    match value {
        Value::List(mut items) => {
            items.sort();
            items.dedup();
            Value::List(items)
        }
        other => other,
    }
}

pub(crate) const HEALTH_CHECK: &[Field] = &[
    opt("path", Ty::Str),
    opt("interval", Ty::Int { min: 5, max: 300 }),
    opt("healthy_threshold", Ty::Int { min: 2, max: 10 }),
];

/// A target group's protocols (listeners have their own: `listener::PROTOCOL`).
pub(crate) const PROTOCOL: Ty = Ty::Enum(&["HTTP", "HTTPS", "TCP"]);

/// `health_check` with AWS's defaults filled in.
pub(crate) fn normal_health_check(value: Value) -> Value {
    let mut t = match value {
        Value::Table(t) => t,
        _ => BTreeMap::new(),
    };
    t.entry("path".into()).or_insert(Value::Str("/".into()));
    t.entry("interval".into()).or_insert(Value::Int(30));
    t.entry("healthy_threshold".into()).or_insert(Value::Int(5));
    Value::Table(t)
}
