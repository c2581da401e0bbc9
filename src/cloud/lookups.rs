//! The lookups a plan needs besides the environment's own resources (see
//! [`Lookups`]): base-image filters resolved to their newest match, every
//! image drctl baked in the regions that matter (tag-key filter, one paginated
//! DescribeImages per region), and who launches those images (one
//! DescribeInstances and one DescribeLaunchTemplateVersions per region).

use aws_sdk_ec2::types::Image;
use futures_util::future::try_join_all;

use super::aws::AwsProvider;
use super::ec2::{snapshot_ids, tag_map, Ec2};
use super::CloudError;
use crate::kinds::image::RECIPE_TAG;
use crate::world::LookupRequest;
use crate::world::{base_filter_key, BaseImage, KnownImage, Lookups};

pub(super) async fn look_up(
    aws: &AwsProvider,
    request: &LookupRequest,
) -> Result<Lookups, CloudError> {
    let mut lookups = Lookups::default();
    if request.is_empty() {
        return Ok(lookups);
    }
    let region = aws.region();
    let bases = try_join_all(
        request
            .base_filters
            .iter()
            .map(|(owners, name)| resolve_base(aws, &region, owners, name)),
    );
    let regions = try_join_all(
        request
            .image_regions
            .iter()
            .map(|region| images_in(aws, region)),
    );
    let (bases, regions) = tokio::try_join!(bases, regions)?;
    for ((owners, name), base) in request.base_filters.iter().zip(bases) {
        lookups
            .base_images
            .insert(base_filter_key(owners, name), base);
    }
    for (images, users) in regions {
        lookups.images.extend(images);
        for (image, user) in users {
            lookups.image_users.entry(image).or_default().push(user);
        }
    }
    lookups
        .images
        .sort_by(|a, b| (&a.region, &a.id).cmp(&(&b.region, &b.id)));
    Ok(lookups)
}

/// The newest available image named like `name` owned by one of `owners`.
async fn resolve_base(
    aws: &AwsProvider,
    region: &str,
    owners: &[String],
    name: &str,
) -> Result<BaseImage, CloudError> {
    let found = aws.ec2.describe_images(owners, name).await?;
    found
        .into_iter()
        .filter(|i| i.state().is_some_and(|s| s.as_str() == "available"))
        // Newest first; then by name, which for published images carries
        // the release date (and is the same in every region, where ids differ).
        .max_by(|a, b| {
            (a.creation_date(), a.name(), a.image_id()).cmp(&(
                b.creation_date(),
                b.name(),
                b.image_id(),
            ))
        })
        .map(|i| BaseImage {
            id: i.image_id().unwrap_or_default().to_string(),
            name: i.name().unwrap_or_default().to_string(),
            owner: i.owner_id().unwrap_or_default().to_string(),
            created: i.creation_date().unwrap_or_default().to_string(),
        })
        .ok_or_else(|| CloudError::Failed {
            what: format!(
                "base image `{name}` owned by {} in {region}",
                owners.join(" or ")
            ),
            state: "not found".into(),
            reason: "no available image matches: check `owners` and the `name` pattern (`*` matches any run of characters)".into(),
        })
}

/// The drctl images of `region` and who launches them.
async fn images_in(
    aws: &AwsProvider,
    region: &str,
) -> Result<(Vec<KnownImage>, Vec<(String, String)>), CloudError> {
    let ec2 = aws.ec2_in(region);
    let images: Vec<KnownImage> = ec2
        .images_with_tag_key(RECIPE_TAG)
        .await?
        .iter()
        .map(|i| known_image(region, i))
        .collect();
    let ids: Vec<String> = images.iter().map(|i| i.id.clone()).collect();
    let users = ec2
        .image_users(&ids)
        .await?
        .into_iter()
        .map(|u| (u.image, u.user))
        .collect();
    Ok((images, users))
}

/// An image as planning reads it.
pub(crate) fn known_image(region: &str, image: &Image) -> KnownImage {
    KnownImage {
        region: region.to_string(),
        id: image.image_id().unwrap_or_default().to_string(),
        name: image.name().unwrap_or_default().to_string(),
        state: image
            .state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        created: image.creation_date().unwrap_or_default().to_string(),
        tags: tag_map(image.tags()),
        snapshots: snapshot_ids(image),
    }
}
