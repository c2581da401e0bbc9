//! The request side of EC2's wire format shared by every call: which
//! filters a [`Select`] becomes, and tag maps as EC2 tag lists.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};

use super::Select;
use crate::types::tags;

/// EC2 accepts at most 200 values per filter; ids are looked up in batches.
const FILTER_VALUES: usize = 200;
/// CreateTags/DeleteTags/TerminateInstances take many resource ids per call.
pub(super) const IDS_PER_CALL: usize = 500;

fn env_filter(env: &str) -> Filter {
    Filter::builder()
        .name(format!("tag:{}", tags::ENV))
        .values(env)
        .build()
}

pub(super) fn filter(name: &str, values: &[String]) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.to_vec()))
        .build()
}

/// Instances that are pending, running, stopping or stopped: neither
/// shutting down nor terminated.
pub(super) fn live_instances() -> Filter {
    filter(
        "instance-state-name",
        &["pending", "running", "stopping", "stopped"].map(String::from),
    )
}

/// The filters for `select`, batched: one filter set per Describe call.
/// `id_filter` names the kind's id filter (`vpc-id`, `subnet-id`, …).
pub(super) fn filter_sets(select: Select<'_>, id_filter: &str) -> Vec<Vec<Filter>> {
    match select {
        Select::Env(env) => vec![vec![env_filter(env)]],
        // No tags would select everything: select nothing instead.
        Select::Tagged(tags) if tags.is_empty() => Vec::new(),
        Select::Tagged(tags) => vec![tags
            .iter()
            .map(|(k, v)| filter(&format!("tag:{k}"), std::slice::from_ref(v)))
            .collect()],
        Select::Ids(ids) => ids
            .chunks(FILTER_VALUES)
            .map(|chunk| vec![filter(id_filter, chunk)])
            .collect(),
    }
}

pub(super) fn tag_specification(
    resource_type: ResourceType,
    tags: &BTreeMap<String, String>,
) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource_type)
        .set_tags(Some(sdk_tags(tags)))
        .build()
}

pub(super) fn sdk_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// The snapshots behind an image's block devices.
pub fn snapshot_ids(image: &aws_sdk_ec2::types::Image) -> Vec<String> {
    image
        .block_device_mappings()
        .iter()
        .filter_map(|m| m.ebs()?.snapshot_id().map(str::to_string))
        .collect()
}

/// An EC2 tag list as a map.
pub fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect()
}
