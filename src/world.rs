//! What exists, in terms both the planner and the cloud adapters speak:
//! resolved values, resource addresses, and resources as observed.
//!
//! Attribute shapes are a contract: the planner normalises desired attributes
//! (see `plan::normalize`) into exactly the shape an adapter reports when it
//! reads a resource back, so diffing is a plain comparison.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::types::ResourceKind;

/// A fully resolved attribute value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Str(String),
    List(Vec<Value>),
    Table(BTreeMap<String, Value>),
}

pub type Attrs = BTreeMap<String, Value>;
pub type Tags = BTreeMap<String, String>;

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_table(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Table(t) => Some(t),
            _ => None,
        }
    }

    /// A list of strings (ids), or `None` if any item is not a string.
    pub fn as_str_list(&self) -> Option<Vec<&str>> {
        self.as_list()?.iter().map(Value::as_str).collect()
    }

    pub fn str_list<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Value {
        Value::List(items.into_iter().map(|s| Value::Str(s.into())).collect())
    }
}

impl fmt::Display for Value {
    /// TOML-like, for plans: `"a"`, `3`, `true`, `["a", "b"]`, `{ k = "v" }`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(n) => write!(f, "{n}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Value::Table(t) => {
                f.write_str("{ ")?;
                for (i, (k, v)) in t.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k} = {v}")?;
                }
                f.write_str(" }")
            }
        }
    }
}

/// A resource's place in the repository: `<stack>.<kind>.<name>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Address {
    pub stack: String,
    pub kind: ResourceKind,
    pub name: String,
}

impl Address {
    pub fn new(stack: &str, kind: ResourceKind, name: &str) -> Self {
        Address {
            stack: stack.to_string(),
            kind,
            name: name.to_string(),
        }
    }

    /// `<kind>.<name>`, the `drctl:resource` tag value.
    pub fn resource(&self) -> String {
        format!("{}.{}", self.kind, self.name)
    }

    /// Reads an address back from `drctl:stack` and `drctl:resource` tag values.
    pub fn from_tags(tags: &Tags) -> Option<Self> {
        let stack = tags.get(crate::types::tags::STACK)?;
        let (kind, name) = tags.get(crate::types::tags::RESOURCE)?.split_once('.')?;
        Some(Address::new(stack, ResourceKind::from_name(kind)?, name))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.stack, self.kind, self.name)
    }
}

/// `<stack>.<kind>.<name>`, as [`Address`] displays itself (records and
/// the command line write addresses so).
impl std::str::FromStr for Address {
    type Err = String;

    fn from_str(text: &str) -> Result<Address, String> {
        let mut parts = text.rsplitn(3, '.');
        let (name, kind, stack) = (parts.next(), parts.next(), parts.next());
        let kind = kind.and_then(ResourceKind::from_name);
        match (stack, kind, name) {
            (Some(stack), Some(kind), Some(name)) if !stack.is_empty() && !name.is_empty() => {
                Ok(Address::new(stack, kind, name))
            }
            _ => Err(format!(
                "`{text}` is not an address (<stack>.<kind>.<name>)"
            )),
        }
    }
}

/// A resource as read back from the cloud.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedResource {
    pub address: Address,
    /// The primary cloud id: `vpc-…`, `subnet-…`, `sg-…`, an ARN for ELBv2
    /// kinds; for `instances`, the first instance id (all are in `exports.ids`).
    pub id: String,
    /// The attributes the adapter can read back, in the normalised shape.
    /// Keys it cannot observe are absent (the `drctl:spec` tag covers them).
    pub attrs: Attrs,
    /// What `${kind.name.attr}` reads: `id`, `arn`, `dns_name`, `ids`, `private_ips`.
    pub exports: Attrs,
    pub tags: Tags,
}

impl ObservedResource {
    pub fn spec_hash(&self) -> Option<&str> {
        self.tags.get(crate::types::tags::SPEC).map(String::as_str)
    }

    pub fn run_id(&self) -> Option<&str> {
        self.tags.get(crate::types::tags::RUN).map(String::as_str)
    }
}

/// Everything observed of one environment at one moment, filled by one
/// observe pass (batched, tag-filtered Describe calls). The planner reads
/// only this; it never calls the cloud.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When the observation was made (the injected clock's time).
    pub taken_at: crate::clock::Millis,
    /// The objects each address owns: usually one; several while a
    /// replacement is under way or when a crashed run left a copy behind
    /// (and, with the image and service kinds, an image's copies and kept
    /// versions, a service's colours). Sorted by id.
    pub resources: BTreeMap<Address, Vec<ObservedResource>>,
    /// What planning needs besides the environment's own resources.
    #[serde(default)]
    pub lookups: Lookups,
}

impl Snapshot {
    pub fn new(taken_at: crate::clock::Millis, observed: Vec<ObservedResource>) -> Self {
        let mut resources: BTreeMap<Address, Vec<ObservedResource>> = BTreeMap::new();
        for o in observed {
            resources.entry(o.address.clone()).or_default().push(o);
        }
        for objects in resources.values_mut() {
            objects.sort_by(|a, b| a.id.cmp(&b.id));
        }
        Snapshot {
            taken_at,
            resources,
            lookups: Lookups::default(),
        }
    }

    pub fn with_lookups(mut self, lookups: Lookups) -> Self {
        self.lookups = lookups;
        self
    }

    /// Every object, by address then id.
    pub fn objects(&self) -> impl Iterator<Item = &ObservedResource> {
        self.resources.values().flatten()
    }

    /// The object at `address` (the first, when copies share it).
    pub fn get(&self, address: &Address) -> Option<&ObservedResource> {
        self.resources.get(address)?.first()
    }

    pub fn len(&self) -> usize {
        self.resources.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    /// A hash of everything observed (ids, attributes, exports, tags), not
    /// of when: a saved plan is refused when this changes.
    pub fn fingerprint(&self) -> String {
        if self.lookups == Lookups::default() {
            crate::digest::hash_json(&self.objects().collect::<Vec<_>>())
        } else {
            crate::digest::hash_json(&(self.objects().collect::<Vec<_>>(), &self.lookups))
        }
    }
}

/// What planning reads beyond the environment's own resources, gathered in
/// the same observe pass: base images resolved, the images drctl baked (any
/// environment's: an image is reused by recipe), and who launches them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lookups {
    /// Each base-image filter's newest match, by [`base_filter_key`].
    pub base_images: BTreeMap<String, BaseImage>,
    /// Every image tagged `drctl:recipe`, in the runbook's region and each
    /// region images are copied to.
    pub images: Vec<KnownImage>,
    /// Who launches each of `images`: `instance i-…`, `launch template …`.
    pub image_users: BTreeMap<String, Vec<String>>,
}

/// What a base-image filter (`{ owners, name }`) is looked up by.
pub fn base_filter_key<S: AsRef<str>>(owners: &[S], name: &str) -> String {
    let owners: Vec<&str> = owners.iter().map(AsRef::as_ref).collect();
    format!("owners={} name={name}", owners.join(","))
}

/// A base image as resolved in the runbook's region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseImage {
    pub id: String,
    pub name: String,
    pub owner: String,
    pub created: String,
}

/// An image drctl baked or copied, as DescribeImages reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownImage {
    pub region: String,
    pub id: String,
    pub name: String,
    /// `pending`, `available`, `failed`, …
    pub state: String,
    /// ISO 8601, as EC2 reports it (sorts by time).
    pub created: String,
    pub tags: Tags,
    pub snapshots: Vec<String>,
}

impl KnownImage {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).map(String::as_str)
    }

    /// Available and finished: its last tag (`drctl:spec`) is written.
    pub fn usable(&self) -> bool {
        image_finished(&self.state, &self.tags)
    }
}

/// Whether an image drctl made is finished: available, with its
/// `drctl:spec` tag (written last, so a bake or copy cut short has none).
pub fn image_finished(state: &str, tags: &Tags) -> bool {
    state == "available" && tags.contains_key(crate::types::tags::SPEC)
}
/// What planning needs looked up besides the environment's resources
/// (built from the runbook by the kinds that need it; empty: no calls).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LookupRequest {
    /// Base-image filters to resolve in the provider's region: (owners, name glob).
    pub base_filters: Vec<(Vec<String>, String)>,
    /// Regions whose drctl-baked images, and who uses them, to read.
    pub image_regions: BTreeSet<String>,
}

impl LookupRequest {
    pub fn is_empty(&self) -> bool {
        self.base_filters.is_empty() && self.image_regions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_reads_back_as_written() {
        let address = Address::new("app", ResourceKind::Service, "web");
        assert_eq!(address.to_string().parse::<Address>(), Ok(address));
        for bad in ["app.web", "app.bucket.web", ".service.web", "app.service."] {
            assert!(bad.parse::<Address>().is_err(), "{bad}");
        }
    }
}
