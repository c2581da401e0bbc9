//! Copies of an image in other regions, made in parallel (one client per
//! region). A copy carries its source's recipe, so a stack applied in that
//! region reuses it like any image of the recipe; EC2 copies no tags, so
//! drctl tags each copy itself, `drctl:spec` last, and records the copies on
//! the source (`drctl:copies`) so that deleting the source deletes them.

use crate::cloud::kinds::image::finished;
use std::collections::BTreeMap;

use futures_util::future::try_join_all;

use crate::cloud::aws::AwsProvider;
use crate::cloud::ec2::{tag_map, Ec2};
use crate::cloud::CloudError;
use crate::kinds::image::{COPIES_TAG, COPY_OF_TAG, RECIPE_TAG};
use crate::types::tags;
use crate::world::ObservedResource;

/// The copies `source` (in `source_region`) is to have: each region of
/// `regions` gets one unless it has a finished image of the same recipe.
pub(super) async fn ensure(
    aws: &AwsProvider,
    source_region: &str,
    source: &ObservedResource,
    regions: &[String],
) -> Result<Option<String>, CloudError> {
    let regions: Vec<&String> = regions.iter().filter(|r| *r != source_region).collect();
    if regions.is_empty() {
        return Ok(None);
    }
    let made = try_join_all(
        regions
            .iter()
            .map(|region| copy_to(aws, source_region, source, region)),
    )
    .await?;
    let mut record = recorded(&source.tags);
    let before = record.clone();
    record.extend(made.into_iter().flatten());
    if record == before {
        return Ok(None);
    }
    let value = record
        .iter()
        .map(|(r, id)| format!("{r}={id}"))
        .collect::<Vec<_>>()
        .join(" ");
    let tag = BTreeMap::from([(COPIES_TAG.to_string(), value.clone())]);
    aws.ec2
        .create_tags(std::slice::from_ref(&source.id), &tag)
        .await?;
    Ok(Some(value))
}

/// The copies recorded on a source image: region → image id.
pub(super) fn recorded(tags_: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    tags_
        .get(COPIES_TAG)
        .map(|v| {
            v.split_whitespace()
                .filter_map(|pair| pair.split_once('='))
                .map(|(r, id)| (r.to_string(), id.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Ensures one region's copy; `None` when that region already had a
/// finished image of the recipe that is not this source's copy.
async fn copy_to(
    aws: &AwsProvider,
    source_region: &str,
    source: &ObservedResource,
    region: &str,
) -> Result<Option<(String, String)>, CloudError> {
    let ec2 = aws.ec2_in(region);
    let recipe = source.tags.get(RECIPE_TAG).cloned().unwrap_or_default();
    let of_recipe = BTreeMap::from([(RECIPE_TAG.to_string(), recipe)]);
    let copy_of = format!("{source_region}/{}", source.id);
    let there = ec2.images_tagged(&of_recipe).await?;
    if let Some(image) = there.iter().find(|i| finished(i)) {
        let ours = tag_map(image.tags()).get(COPY_OF_TAG) == Some(&copy_of);
        return Ok(ours.then(|| {
            (
                region.to_string(),
                image.image_id().unwrap_or("").to_string(),
            )
        }));
    }
    // A copy started before (EC2 copies no tags, and a resumed run may
    // have stopped before tagging it): found by its name.
    let name = source
        .attrs
        .get("name")
        .and_then(|v| v.as_str())
        .unwrap_or(&source.id)
        .to_string();
    let mut copy_tags: BTreeMap<String, String> = source
        .tags
        .iter()
        .filter(|(k, _)| k.as_str() != tags::SPEC && k.as_str() != COPIES_TAG)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    copy_tags.insert(COPY_OF_TAG.into(), copy_of);
    let started = ec2.describe_images(&["self".to_string()], &name).await?;
    let id = match started.iter().filter_map(|i| i.image_id()).min() {
        Some(id) => id.to_string(),
        None => {
            let token: String = format!("drctl-copy-{}-{region}", source.id)
                .chars()
                .take(64)
                .collect();
            ec2.copy_image(source_region, &source.id, &name, &token, &copy_tags)
                .await?
        }
    };
    ec2.create_tags(std::slice::from_ref(&id), &copy_tags)
        .await?;
    let what = format!("{}: copy {id} in {region}", source.address);
    let spec = source.tags.get(tags::SPEC).cloned().unwrap_or_default();
    super::finish(aws, &ec2, &what, &id, &copy_tags, &spec).await?;
    Ok(Some((region.to_string(), id)))
}
