//! The Resource Groups Tagging API: every resource of any service carrying
//! a tag, listed by AWS itself rather than by drctl's per-kind discovery.
//! The drill's leak check asks it, so a resource drctl does not manage (or
//! no longer recognises) still shows up.

use std::collections::BTreeMap;

use aws_sdk_resourcegroupstagging::types::TagFilter;
use aws_sdk_resourcegroupstagging::Client;

use super::sdk::TAGGING;
use super::CloudError;

/// One tagged resource: its ARN and all its tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedResource {
    pub arn: String,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct SdkTagging {
    client: Client,
}

impl SdkTagging {
    pub fn from_client(client: Client) -> Self {
        SdkTagging { client }
    }

    /// Every resource in the region tagged `key = value`, all pages.
    pub async fn tagged(&self, key: &str, value: &str) -> Result<Vec<TaggedResource>, CloudError> {
        self.get_resources(TagFilter::builder().key(key).values(value).build())
            .await
    }

    /// Every resource in the region carrying `key`, whatever its value.
    pub async fn with_key(&self, key: &str) -> Result<Vec<TaggedResource>, CloudError> {
        self.get_resources(TagFilter::builder().key(key).build())
            .await
    }

    async fn get_resources(&self, filter: TagFilter) -> Result<Vec<TaggedResource>, CloudError> {
        let request = self.client.get_resources().tag_filters(filter);
        let mappings: Vec<_> = TAGGING
            .call(request.into_paginator().items().send().try_collect())
            .await?;
        Ok(mappings
            .into_iter()
            .filter_map(|m| {
                let tags = m
                    .tags()
                    .iter()
                    .map(|t| (t.key().to_string(), t.value().to_string()))
                    .collect();
                Some(TaggedResource {
                    arn: m.resource_arn?.to_string(),
                    tags,
                })
            })
            .collect())
    }
}
