//! The normal forms and schema pieces shared by kinds.

use std::collections::BTreeMap;

use crate::kinds::schema::{opt, Field, Ty};
use crate::world::{Address, Attrs, Value};

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

// --- Reading attributes handed in by the planner ---------------------------

/// A step's attributes as the planner hands them over, read with the type
/// each is normalised to; anything else is a [`BadAttr`].
pub(crate) struct Want<'a> {
    pub(crate) address: &'a Address,
    pub(crate) attrs: &'a Attrs,
}

impl<'a> Want<'a> {
    pub(crate) fn new(address: &'a Address, attrs: &'a Attrs) -> Self {
        Want { address, attrs }
    }

    pub(crate) fn bad(&self, key: &str, expected: &'static str) -> BadAttr {
        BadAttr {
            address: self.address.to_string(),
            key: key.to_string(),
            expected,
        }
    }

    pub(crate) fn str(&self, key: &str) -> Result<&'a str, BadAttr> {
        self.attrs
            .get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| self.bad(key, "a string"))
    }

    pub(crate) fn opt_str(&self, key: &str) -> Result<Option<&'a str>, BadAttr> {
        match self.attrs.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| self.bad(key, "a string")),
        }
    }

    pub(crate) fn bool(&self, key: &str, default: bool) -> Result<bool, BadAttr> {
        match self.attrs.get(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| self.bad(key, "a boolean")),
        }
    }

    pub(crate) fn i32(&self, key: &str) -> Result<i32, BadAttr> {
        self.attrs
            .get(key)
            .and_then(Value::as_int)
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| self.bad(key, "a 32-bit integer"))
    }

    pub(crate) fn list(&self, key: &str) -> Result<&'a [Value], BadAttr> {
        match self.attrs.get(key) {
            None => Ok(&[]),
            Some(v) => v.as_list().ok_or_else(|| self.bad(key, "a list")),
        }
    }

    /// A list of strings; absent is empty.
    pub(crate) fn strs(&self, key: &str) -> Result<Vec<String>, BadAttr> {
        self.list(key)?
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| self.bad(key, "a list of strings"))
    }
}

/// An attribute not in the normalised shape the planner hands over (a
/// planner bug, never user input: that is validated before).
#[derive(Debug, thiserror::Error)]
#[error("{address}: attribute `{key}` must be {expected}")]
pub struct BadAttr {
    pub address: String,
    pub key: String,
    pub expected: &'static str,
}
