//! The AWS half of [`crate::kinds::image`]: reading its objects back, creating,
//! updating and deleting them.

mod bake;
mod copies;
mod retire;

use crate::cloud::aws::{AwsProvider, Discovery};
use crate::cloud::ec2::{snapshot_ids, tag_map, Ec2, SdkEc2};
use crate::cloud::kinds::common::{existing_by, identity_tags, Seen};
use crate::cloud::lookups::known_image;
use crate::cloud::CloudError;
use crate::kinds::common::Want;
use crate::kinds::image::image_values;
use crate::kinds::image::{Recipe, BUILDER_ROLE, ROLE_TAG};
use crate::types::tags;
use crate::types::ResourceKind;
use crate::world::{Attrs, KnownImage, ObservedResource, Tags, Value};
use aws_sdk_ec2::types::{Image as SdkImage, Instance};
use std::collections::BTreeMap;

pub struct Image;

impl super::AwsKind for Image {
    aws_operations!();

    fn existing<'a>(
        &'a self,
        aws: &'a AwsProvider,
        resource_type: &str,
        ids: &'a [String],
    ) -> Option<super::Op<'a, std::collections::BTreeSet<String>>> {
        match resource_type {
            "ec2:image" => Some(existing_by(aws.ec2.images_by_id(ids), |i| i.image_id)),
            // A bake's snapshots are the image's.
            "ec2:snapshot" => Some(Box::pin(async move {
                Ok(aws.ec2.existing_snapshots(ids).await?.into_iter().collect())
            })),
            _ => None,
        }
    }
}

impl Recipe {
    /// From a bake's attributes (see `plan.rs` for the computed ones).
    fn from_attrs(want: &Want<'_>) -> Result<Self, CloudError> {
        let base_image = want.str("base_image")?.to_string();
        let base_identity = match want.opt_str("base_identity")? {
            Some(identity) => identity.to_string(),
            None => format!("id:{base_image}"),
        };
        Ok(Recipe {
            base_identity,
            base_image,
            script_sha256: want.opt_str("script_sha256")?.unwrap_or("").to_string(),
            instance_type: want.str("instance_type")?.to_string(),
        })
    }
}

// --- Reading back -------------------------------------------------------------

async fn observe(aws: &AwsProvider, pass: &Discovery) -> Result<Vec<ObservedResource>, CloudError> {
    let env = BTreeMap::from([(tags::ENV.to_string(), pass.env().to_string())]);
    let images = aws.ec2.images_tagged(&env).await?;
    let mut found: Vec<ObservedResource> = images
        .iter()
        .filter_map(|i| image_seen(i)?.discovered(ResourceKind::Image))
        .collect();
    found.extend(
        pass.instances(aws)
            .await?
            .iter()
            .filter_map(|i| builder_seen(i)?.discovered(ResourceKind::Image)),
    );
    Ok(found)
}

/// One of drctl's images (its source region's copy record included).
pub(super) fn image_seen(image: &SdkImage) -> Option<Seen> {
    identity_tags(&tag_map(image.tags()))?;
    image.image_id()?;
    image.state()?;
    // The region is the reader's own; an observed object does not carry it.
    Some(seen_of(&known_image("", image)))
}

/// An image as every reader of drctl's images sees it: this environment's
/// (discovery) or another's (a reuse the plan found in the lookups).
pub(super) fn seen_of(image: &KnownImage) -> Seen {
    let (attrs, exports) = image_values(image);
    Seen {
        attrs,
        exports,
        ..Seen::new(&image.id, image.tags.clone())
    }
}

/// Available, and its last tag (`drctl:spec`) written: an image to use.
pub(super) fn finished(image: &SdkImage) -> bool {
    let state = image.state().map_or("", |s| s.as_str());
    crate::world::image_finished(state, &tag_map(image.tags()))
}

/// The last steps of a bake and of a copy: wait until image `id` (in
/// `ec2`'s region) is available, tag its snapshots with `tags`, then write
/// `drctl:spec` (the mark of a finished image) last. Returns the image as
/// it became available, whose tags lack only `drctl:spec`.
pub(super) async fn finish(
    aws: &AwsProvider,
    ec2: &SdkEc2,
    what: &str,
    id: &str,
    tags_: &Tags,
    spec: &str,
) -> Result<SdkImage, CloudError> {
    let image = bake::wait_available(aws, ec2, what, id).await?;
    ec2.create_tags(&snapshot_ids(&image), tags_).await?;
    let done = BTreeMap::from([(tags::SPEC.to_string(), spec.to_string())]);
    ec2.create_tags(&[id.to_string()], &done).await?;
    Ok(image)
}

/// A bake's builder instance (not terminated).
pub(super) fn builder_seen(instance: &Instance) -> Option<Seen> {
    let tags = tag_map(instance.tags());
    if tags.get(ROLE_TAG).map(String::as_str) != Some(BUILDER_ROLE) {
        return None;
    }
    let state = instance.state()?.name()?.as_str().to_string();
    Some(
        Seen::new(instance.instance_id()?, tags)
            .attr("role", Value::Str(BUILDER_ROLE.into()))
            .attr("state", Value::Str(state)),
    )
}

// --- Create, update, delete ---------------------------------------------------

async fn create(
    aws: &AwsProvider,
    request: &crate::cloud::provider::CreateRequest<'_>,
) -> Result<ObservedResource, CloudError> {
    bake::bake(aws, request).await
}

/// Makes the missing copies (for this environment's image or one it reuses)
/// and sets the user's tags on its own image.
async fn update(
    aws: &AwsProvider,
    current: &ObservedResource,
    attrs: &Attrs,
    tags: &Tags,
) -> Result<ObservedResource, CloudError> {
    let want = Want::new(&current.address, attrs);
    let region = want.str("region")?;
    let copy_to = want.strs("copy_to_regions")?;
    copies::ensure(aws, region, current, &copy_to).await?;
    let ours = current.tags.get(tags::ENV) == tags.get(tags::ENV);
    if ours {
        // Only the user's tags change; drctl's own stay as the bake wrote them.
        let mut desired = current.tags.clone();
        desired.retain(|k, _| k.starts_with("drctl:") || k.starts_with("aws:"));
        desired.extend(
            tags.iter()
                .filter(|(k, _)| !k.starts_with("drctl:"))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        aws.retag_ec2(std::slice::from_ref(&current.id), &current.tags, &desired)
            .await?;
    }
    let found = aws
        .ec2
        .images_by_id(std::slice::from_ref(&current.id))
        .await?;
    found
        .first()
        .and_then(|i| observed_image(&current.address, i))
        .ok_or_else(|| super::common::vanished(&current.address, &current.id))
}

async fn delete(aws: &AwsProvider, current: &ObservedResource) -> Result<(), CloudError> {
    retire::delete(aws, current).await
}

pub(super) fn observed_image(
    address: &crate::world::Address,
    image: &SdkImage,
) -> Option<ObservedResource> {
    image_seen(image).map(|s| s.at(address))
}
