//! What of a step's values is known now (the rest resolves once the
//! resources it reads exist).

use std::collections::BTreeMap;

use super::resolve::Resolved;
use crate::world::{Attrs, Tags, Value};

/// Attributes whose values are all known; `None` while any is pending.
pub fn known_attrs(attrs: &BTreeMap<String, Resolved>) -> Option<Attrs> {
    attrs
        .iter()
        .map(|(k, v)| Some((k.clone(), v.known()?.clone())))
        .collect()
}

/// Tags whose values are all known, as tag strings; `None` while any is pending.
pub fn known_tags(tags: &BTreeMap<String, Resolved>) -> Option<Tags> {
    tags.iter()
        .map(|(k, v)| match v.known()? {
            Value::Str(s) => Some((k.clone(), s.clone())),
            other => Some((k.clone(), other.to_string())),
        })
        .collect()
}

/// The tags a user set, as observed (drctl's own and AWS's left out).
pub fn user_tags(observed: &Tags, declared: &BTreeMap<String, Resolved>) -> Tags {
    observed
        .iter()
        .filter(|(k, _)| {
            !k.starts_with("drctl:")
                && !k.starts_with("aws:")
                && (k.as_str() != crate::types::tags::NAME || declared.contains_key(k.as_str()))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
