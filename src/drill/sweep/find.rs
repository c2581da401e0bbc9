//! Finding what dead drills left in one region: every resource carrying
//! `drctl:expires`, through the tagging API and EC2's DescribeTags (any
//! resource type), grouped by environment; then, per environment, drctl's
//! own discovery (the EC2 and ELBv2 describes) for what it can delete in
//! dependency order. Only reads.

use std::collections::{BTreeMap, BTreeSet};

use crate::cloud::aws::AwsProvider;
use crate::cloud::CloudError;
use crate::types::tags;
use crate::world::{ObservedResource, Tags};

/// The environments in the region holding a drill's object that may be
/// swept at `now` (those in `lapsed` whatever their expiry): only these
/// are looked at further.
pub(super) async fn drill_environments(
    aws: &AwsProvider,
    now: i64,
    lapsed: &[String],
) -> Result<BTreeSet<String>, CloudError> {
    let mut envs = BTreeSet::new();
    let mut note = |tags: &BTreeMap<String, String>| {
        if let Some(env) = tags.get(tags::ENV) {
            if sweepable(tags, now, lapsed.contains(env)) {
                envs.insert(env.clone());
            }
        }
    };
    for tagged in aws.tagging.with_key(tags::EXPIRES).await? {
        note(&tagged.tags);
    }
    let ec2 = aws
        .ec2
        .tags_with_keys(&[tags::ENV, tags::DRILL, tags::EXPIRES])
        .await?;
    for keyed in ec2.values() {
        note(&keyed.tags);
    }
    Ok(envs)
}

/// Whether an object may be swept at `now`: a drill's (`drctl:drill`), with
/// a `drctl:expires` that has passed, or any `drctl:expires` at all once
/// its drill's lease has lapsed. Nothing else, however it is tagged.
pub(super) fn sweepable(tags_: &Tags, now: i64, lease_lapsed: bool) -> bool {
    if !tags_.contains_key(tags::DRILL) {
        return false;
    }
    match tags_.get(tags::EXPIRES).map(|v| tags::parse_expires(v)) {
        Some(Some(at)) => at <= now || lease_lapsed,
        _ => false,
    }
}

/// The objects of one environment that may be swept, and its drill and
/// deadline (the earliest, if its objects disagree).
pub(super) struct Eligible {
    pub objects: Vec<ObservedResource>,
    pub drill: Option<String>,
    pub expires_at: Option<i64>,
    /// Objects of the environment left alone (no past `drctl:expires`).
    pub kept: usize,
}

pub(super) fn eligible(observed: &[ObservedResource], now: i64, lease_lapsed: bool) -> Eligible {
    let (objects, kept): (Vec<_>, Vec<_>) = observed
        .iter()
        .cloned()
        .partition(|o| sweepable(&o.tags, now, lease_lapsed));
    let drill = objects
        .iter()
        .filter_map(|o| o.tags.get(tags::DRILL))
        .min()
        .cloned();
    let expires_at = objects
        .iter()
        .filter_map(|o| tags::parse_expires(o.tags.get(tags::EXPIRES)?))
        .min();
    Eligible {
        objects,
        drill,
        expires_at,
        kept: kept.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags_(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_a_drill_s_objects_past_their_expiry_are_sweepable() {
        // 2026-01-01T00:00:00Z
        let now = 1_767_225_600_000;
        let past = "2025-12-31T23:00:00Z";
        let future = "2026-01-01T01:00:00Z";
        let drill = |expires: &str| tags_(&[(tags::DRILL, "r1"), (tags::EXPIRES, expires)]);
        assert!(sweepable(&drill(past), now, false));
        assert!(!sweepable(&drill(future), now, false));
        assert!(sweepable(&drill(future), now, true), "lease lapsed");
        assert!(!sweepable(&drill("garbage"), now, true));
        assert!(!sweepable(&tags_(&[(tags::DRILL, "r1")]), now, true));
        assert!(!sweepable(&tags_(&[(tags::EXPIRES, past)]), now, false));
    }
}
