//! What every kind's AWS half uses: a resource as read from a Describe
//! result ([`Seen`]), the planner's attributes as the adapter reads them
//! ([`Want`]), tag bookkeeping and AWS's error classes.

use crate::cloud::elbv2::HealthCheck;
use crate::cloud::{names, CloudError};
use crate::kinds::common::{BadAttr, Want};
use crate::types::{tags, ResourceKind};
use crate::world::{Address, Attrs, ObservedResource, Tags, Value};

/// A resource as read from one Describe result, before its address is known
/// (discovery reads the address from the tags; create and update know it).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Seen {
    pub(crate) id: String,
    pub(crate) attrs: Attrs,
    pub(crate) exports: Attrs,
    pub(crate) tags: Tags,
}

impl Seen {
    pub(crate) fn new(id: &str, tags: Tags) -> Self {
        Seen {
            id: id.to_string(),
            attrs: Attrs::new(),
            exports: Attrs::new(),
            tags,
        }
    }

    /// For kinds whose only export is their `id`.
    pub(crate) fn with_id(id: &str, tags: Tags) -> Self {
        Seen::new(id, tags).export("id", Value::Str(id.to_string()))
    }

    pub(crate) fn attr(mut self, key: &str, value: Value) -> Self {
        self.attrs.insert(key.to_string(), value);
        self
    }

    pub(crate) fn export(mut self, key: &str, value: Value) -> Self {
        self.exports.insert(key.to_string(), value);
        self
    }

    pub(crate) fn at(self, address: &Address) -> ObservedResource {
        ObservedResource {
            address: address.clone(),
            id: self.id,
            attrs: self.attrs,
            exports: self.exports,
            tags: self.tags,
        }
    }

    /// As discovered: only if tagged with an address of `kind` (a resource of
    /// another kind wearing this tag, e.g. a service's target group, is not
    /// this kind's business).
    pub(crate) fn discovered(self, kind: ResourceKind) -> Option<ObservedResource> {
        let address = Address::from_tags(&self.tags)?;
        (address.kind == kind).then(|| self.at(&address))
    }
}

// --- Normalising what AWS reports -------------------------------------------

pub(crate) fn sorted_strs<'a>(items: impl IntoIterator<Item = &'a str>) -> Value {
    let mut items: Vec<&str> = items.into_iter().collect();
    items.sort_unstable();
    items.dedup();
    Value::str_list(items)
}

/// The drctl identity tags (env, stack, resource) out of a full tag set.
pub(crate) fn identity_tags(tags: &Tags) -> Option<Tags> {
    [tags::ENV, tags::STACK, tags::RESOURCE]
        .iter()
        .map(|k| Some((k.to_string(), tags.get(*k)?.clone())))
        .collect()
}

/// Tags to add or overwrite, and keys to remove, to go from `current` to
/// exactly `desired`. Never removed: `aws:*` (AWS's), and the marks another
/// resource keeps on this one (`drctl:traffic`, a service's on its listener).
pub(crate) fn tag_changes(current: &Tags, desired: &Tags) -> (Tags, Vec<String>) {
    let set = desired
        .iter()
        .filter(|(k, v)| current.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let remove = current
        .keys()
        .filter(|k| {
            !desired.contains_key(*k) && !k.starts_with("aws:") && k.as_str() != tags::TRAFFIC
        })
        .cloned()
        .collect();
    (set, remove)
}

pub(crate) fn is_not_found(e: &CloudError) -> bool {
    e.code()
        .is_some_and(|c| c.ends_with("NotFound") || c == "Gateway.NotAttached")
}

pub(crate) fn is_dependency(e: &CloudError) -> bool {
    matches!(e.code(), Some("DependencyViolation" | "ResourceInUse"))
}

/// Treats "already gone" as done.
pub(crate) fn gone_ok(result: Result<(), CloudError>) -> Result<(), CloudError> {
    match result {
        Err(e) if is_not_found(&e) => Ok(()),
        other => other,
    }
}

/// Updated, then not found when read back: deleted behind drctl's back.
pub(crate) fn vanished(address: &Address, id: &str) -> CloudError {
    CloudError::Failed {
        what: format!("{address} ({id})"),
        state: "gone".into(),
        reason: "it was deleted while being updated".into(),
    }
}

pub(crate) fn elbv2_name(address: &Address, tags: &Tags) -> String {
    names::elbv2_name(
        tags.get(tags::ENV).map_or("", String::as_str),
        &address.stack,
        &address.resource(),
        tags.get(tags::SPEC).map_or("", String::as_str),
    )
}

/// Observed resources from one Describe result: those tagged with an
/// address of `kind`.
pub(crate) fn discovered<T>(
    items: &[T],
    seen: impl Fn(&T) -> Option<Seen>,
    kind: ResourceKind,
) -> Vec<ObservedResource> {
    items
        .iter()
        .filter_map(|item| seen(item)?.discovered(kind))
        .collect()
}

impl Want<'_> {
    pub(crate) fn health_check(&self) -> Result<HealthCheck, BadAttr> {
        const SHAPE: &str = "a table { path, interval, healthy_threshold }";
        let t = self
            .attrs
            .get("health_check")
            .and_then(Value::as_table)
            .ok_or_else(|| self.bad("health_check", SHAPE))?;
        let int = |k: &str| {
            t.get(k)
                .and_then(Value::as_int)
                .and_then(|n| i32::try_from(n).ok())
        };
        let read = || {
            Some(HealthCheck {
                path: t.get("path").and_then(Value::as_str)?.to_string(),
                interval: int("interval")?,
                healthy_threshold: int("healthy_threshold")?,
            })
        };
        read().ok_or_else(|| self.bad("health_check", SHAPE))
    }
}

/// [`super::AwsKind::existing`] from one Describe of the ids: the ids of
/// what it returns.
pub(crate) fn existing_by<'a, T: 'a>(
    describe: impl std::future::Future<Output = Result<Vec<T>, CloudError>> + Send + 'a,
    id: impl Fn(T) -> Option<String> + Send + 'a,
) -> super::Op<'a, std::collections::BTreeSet<String>> {
    Box::pin(async move { Ok(describe.await?.into_iter().filter_map(id).collect()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn tags_change_exactly_but_aws_tags_stay() {
        let current = Tags::from([
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string()),
            ("aws:cloudformation:stack".to_string(), "x".to_string()),
        ]);
        let desired = Tags::from([
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "3".to_string()),
            ("c".to_string(), "4".to_string()),
        ]);
        let (set, remove) = tag_changes(&current, &desired);
        assert_eq!(
            set,
            Tags::from([
                ("b".to_string(), "3".to_string()),
                ("c".to_string(), "4".to_string())
            ])
        );
        assert!(remove.is_empty());
        let (set, remove) = tag_changes(&desired, &Tags::new());
        assert!(set.is_empty());
        assert_eq!(remove, ids(&["a", "b", "c"]));
    }
}
