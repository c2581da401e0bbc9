//! EC2's DescribeTags by key, whatever the value: how `drctl sweep` finds
//! every EC2 resource a drill left, of any type, without knowing its
//! environment's name.

use std::collections::BTreeMap;

use super::wire::filter;
use super::SdkEc2;
use crate::cloud::sdk::EC2;
use crate::cloud::CloudError;

/// An EC2 resource's tags among those asked for, and its type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyedTags {
    /// `instance`, `security-group`, `image`, …
    pub resource_type: String,
    pub tags: BTreeMap<String, String>,
}

impl SdkEc2 {
    /// Every EC2 resource carrying any of `keys`, with its values of them,
    /// by resource id (all pages, one request per page).
    pub async fn tags_with_keys(
        &self,
        keys: &[&str],
    ) -> Result<BTreeMap<String, KeyedTags>, CloudError> {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        let request = self.client.describe_tags().filters(filter("key", &keys));
        let found: Vec<_> = EC2
            .call(request.into_paginator().items().send().try_collect())
            .await?;
        let mut by_id: BTreeMap<String, KeyedTags> = BTreeMap::new();
        for tag in found {
            let (Some(id), Some(key)) = (tag.resource_id, tag.key) else {
                continue;
            };
            let entry = by_id.entry(id).or_default();
            if let Some(kind) = tag.resource_type {
                entry.resource_type = kind.as_str().to_string();
            }
            entry.tags.insert(key, tag.value.unwrap_or_default());
        }
        Ok(by_id)
    }
}
