//! EC2 calls that baking needs: builder instances, images, their snapshots
//! and copies, and what uses an image. Same rules as `client.rs`: one request
//! per call (or per batch), errors named by operation.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Image, ResourceType};

use super::each_filter_set;
use super::wire::{filter, filter_sets, live_instances, tag_specification};
use super::SdkEc2;
use super::Select;
use crate::cloud::sdk::EC2;
use crate::cloud::CloudError;

/// Who uses an image: an instance or a launch template version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ImageUser {
    pub image: String,
    /// `instance i-…` or `launch template lt-… (name) version N`.
    pub user: String,
}

impl SdkEc2 {
    /// CreateImage of a stopped builder, the image tagged from its first
    /// instant (its snapshots are tagged afterwards: not every EC2 accepts
    /// snapshot tag specifications here).
    pub async fn create_image(
        &self,
        instance: &str,
        name: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudError> {
        let request = self
            .client
            .create_image()
            .instance_id(instance)
            .name(name)
            .description(format!("baked by drctl from builder {instance}"))
            .tag_specifications(tag_specification(ResourceType::Image, tags));
        let out = EC2.call(request.send()).await?;
        EC2.required(out, "ImageId", |o| o.image_id)
    }

    /// CopyImage into this client's region from `source_region`, tagged
    /// `tags` from the call on (AWS; moto ignores the TagSpecifications, so
    /// the caller tags the copy again).
    pub async fn copy_image(
        &self,
        source_region: &str,
        source_image: &str,
        name: &str,
        client_token: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudError> {
        let request = self
            .client
            .copy_image()
            .source_region(source_region)
            .source_image_id(source_image)
            .name(name)
            .description(format!(
                "copy by drctl of {source_image} from {source_region}"
            ))
            .client_token(client_token)
            .tag_specifications(tag_specification(ResourceType::Image, tags));
        let out = EC2.call(request.send()).await?;
        EC2.required(out, "ImageId", |o| o.image_id)
    }

    /// Images by id (those that no longer exist are simply absent).
    pub async fn images_by_id(&self, ids: &[String]) -> Result<Vec<Image>, CloudError> {
        describe_by_filters!(
            filter_sets(Select::Ids(ids), "image-id"),
            self.client.describe_images().owners("self")
        )
        .await
    }

    /// Which of `ids` are snapshots that exist.
    pub async fn existing_snapshots(&self, ids: &[String]) -> Result<Vec<String>, CloudError> {
        let found = describe_by_filters!(
            filter_sets(Select::Ids(ids), "snapshot-id"),
            self.client.describe_snapshots().owner_ids("self")
        )
        .await?;
        Ok(found.into_iter().filter_map(|s| s.snapshot_id).collect())
    }

    /// Images this account owns that carry the tag `key` (any value).
    pub async fn images_with_tag_key(&self, key: &str) -> Result<Vec<Image>, CloudError> {
        let request = self
            .client
            .describe_images()
            .owners("self")
            .filters(filter("tag-key", &[key.to_string()]));
        EC2.call(request.into_paginator().items().send().try_collect())
            .await
    }

    pub async fn deregister_image(&self, id: &str) -> Result<(), CloudError> {
        EC2.call(self.client.deregister_image().image_id(id).send())
            .await
            .map(|_| ())
    }

    pub async fn delete_snapshot(&self, id: &str) -> Result<(), CloudError> {
        EC2.call(self.client.delete_snapshot().snapshot_id(id).send())
            .await
            .map(|_| ())
    }

    /// Instances (not terminated) and launch templates (their default and
    /// latest versions) that launch any of `images`.
    pub async fn image_users(&self, images: &[String]) -> Result<Vec<ImageUser>, CloudError> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let mut users = Vec::new();
        let mut sets = filter_sets(Select::Ids(images), "image-id");
        sets.iter_mut().for_each(|f| f.push(live_instances()));
        let reservations = describe_by_filters!(sets, self.client.describe_instances()).await?;
        for instance in reservations
            .into_iter()
            .flat_map(|r| r.instances.unwrap_or_default())
        {
            if let (Some(image), Some(id)) = (instance.image_id, instance.instance_id) {
                users.push(ImageUser {
                    image,
                    user: format!("instance {id}"),
                });
            }
        }
        let request = self
            .client
            .describe_launch_template_versions()
            .versions("$Latest")
            .versions("$Default");
        let versions: Vec<_> = EC2
            .call(request.into_paginator().items().send().try_collect())
            .await?;
        for version in versions {
            let Some(image) = version.launch_template_data.and_then(|d| d.image_id) else {
                continue;
            };
            if images.contains(&image) {
                users.push(ImageUser {
                    image,
                    user: format!(
                        "launch template {} ({}) version {}",
                        version.launch_template_id.unwrap_or_default(),
                        version.launch_template_name.unwrap_or_default(),
                        version.version_number.unwrap_or_default()
                    ),
                });
            }
        }
        users.sort();
        users.dedup();
        Ok(users)
    }
}
