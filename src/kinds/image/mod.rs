//! `image`: a machine image baked from a base image and a provisioning
//! script (SPEC.md "`image` — baking").
//!
//! An image is found again by its **recipe**: a hash of what makes the image
//! (the base image, the script's bytes, the builder's instance type). The
//! planner ([`plan`]) reuses any finished image of the same recipe in the
//! region, whichever environment baked it; otherwise the create is a bake
//! ([`bake`]): a builder instance runs the script, powers off, is imaged and
//! terminated. Copies to other regions ([`copies`]) carry the same recipe, so
//! a stack applied there finds the copy the same way. Deletion ([`retire`])
//! never removes an image something still launches.
//!
//! Objects at an image's address: the environment's own images (the current
//! one and older versions kept by `keep`) and, while a bake is under way or
//! after one was interrupted, its builder instance.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Image as SdkImage, Instance};

use super::common::{identity_tags, sorted, Seen, Want};
use super::{Kind, Problems, ResourceKind};
use crate::cloud::aws::{AwsProvider, Discovery};
use crate::cloud::ec2::{snapshot_ids, tag_map, Ec2, SdkEc2};
use crate::cloud::lookups::known_image;
use crate::cloud::{tags, CloudError};
use crate::model::schema::{opt, req, Field, Ty, ValueType};
use crate::model::Resource;
use crate::world::{Attrs, KnownImage, ObservedResource, Tags, Value};

mod bake;
mod copies;
mod plan;
mod retire;

pub struct Image;

/// The recipe hash an image was baked from (on images and their copies).
pub const RECIPE_TAG: &str = "drctl:recipe";
/// `builder` on a bake's builder instance.
const ROLE_TAG: &str = "drctl:role";
const BUILDER_ROLE: &str = "builder";
/// On an image: the builder instance it was made from (a resumed bake finds it).
const BUILDER_TAG: &str = "drctl:builder";
/// On an image: its recipe's inputs, so a plan can say what changed.
const BASE_TAG: &str = "drctl:base-image";
const SCRIPT_TAG: &str = "drctl:script-sha256";
const TYPE_TAG: &str = "drctl:instance-type";
/// On an image: when its bake started, to the millisecond (EC2's creation
/// date has whole seconds: two bakes in one second would not sort).
const BAKED_TAG: &str = "drctl:baked-at";
/// On a source image: its copies, `region=ami-… region=ami-…`.
const COPIES_TAG: &str = "drctl:copies";
/// On a copy: `region/ami-…` of its source.
const COPY_OF_TAG: &str = "drctl:copy-of";

/// The last lines of every builder's user data. The power-off is how drctl
/// knows the script finished (the builder reaches `stopped`), with no SSH or
/// agent; the marker line is the sandbox's cue (src/sandbox/moto_launcher.py).
const POWER_OFF: &str =
    "# drctl: provisioning finished; power off so the image is taken from a stopped disk\nshutdown -h now\n";

const BAKE_TIMEOUT_DEFAULT: &str = "30m";

const IMAGE_FILTER: &[Field] = &[req("owners", Ty::List(&Ty::Str)), req("name", Ty::Str)];

const FIELDS: &[Field] = &[
    req(
        "base_image",
        Ty::OneOf(&[Ty::IdOf(ResourceKind::Image), Ty::Object(IMAGE_FILTER)]),
    ),
    req("instance_type", Ty::Str),
    req("subnet", Ty::IdOf(ResourceKind::Subnet)),
    // A path: the script's bytes never appear in plans, only their hash.
    opt("provision", Ty::File),
    opt("copy_to_regions", Ty::List(&Ty::Str)),
    opt("keep", Ty::Int { min: 1, max: 1000 }),
    opt("bake_timeout", Ty::Duration),
];

impl Kind for Image {
    fn fields(&self) -> &'static [Field] {
        FIELDS
    }

    fn exports(&self) -> &'static [(&'static str, ValueType)] {
        &[("id", ValueType::Str), ("recipe", ValueType::Str)]
    }

    fn defaults(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("copy_to_regions", Value::List(Vec::new())),
            ("bake_timeout", Value::Str(BAKE_TIMEOUT_DEFAULT.into())),
        ]
    }

    fn normalize_attr(&self, key: &str, value: Value) -> Value {
        match key {
            "copy_to_regions" => sorted(value),
            _ => value,
        }
    }

    fn delete_rank(&self) -> u8 {
        // After the fleets launched from it.
        5
    }

    fn plan_itself(&self, input: &crate::plan::OwnPlanInput<'_>) -> Option<crate::plan::OwnPlan> {
        Some(plan::plan(input))
    }

    fn check(&self, resource: &Resource, base: &str, problems: &mut Problems<'_>) {
        if let Some(crate::model::expr::ExprKind::List(regions)) =
            resource.attr("copy_to_regions").map(|e| &e.kind)
        {
            for (i, region) in regions.iter().enumerate() {
                let Some(name) = region.as_literal_str() else {
                    continue;
                };
                if !crate::model::decode::is_region_name(name) {
                    problems
                        .error(
                            region.pos,
                            &format!("{base}.copy_to_regions[{i}]"),
                            format!("`{name}` is not an AWS region name"),
                        )
                        .with_hint("write a region like \"us-west-2\" or \"eu-central-1\"");
                }
            }
        }
        // Planning hashes the script read at load time: a path computed
        // from variables would be read only when baking.
        if let Some(expr) = resource.attr("provision") {
            if expr.as_literal_str().is_none() {
                problems
                    .error(expr.pos, &format!("{base}.provision"), "expected a literal path to a script (no `${…}` references)")
                    .with_hint("write the path relative to the stack file, e.g. \"files/app-provision.sh\"");
            }
        }
    }

    aws_operations!();
}

/// A `base_image = { owners, name }` filter's owners and name pattern.
fn base_filter(filter: &BTreeMap<String, Value>) -> (Vec<String>, String) {
    let owners = filter
        .get("owners")
        .and_then(Value::as_str_list)
        .unwrap_or_default();
    let name = filter.get("name").and_then(Value::as_str).unwrap_or("");
    (owners.into_iter().map(str::to_string).collect(), name.to_string())
}

// --- The recipe ---------------------------------------------------------------

/// What makes an image: equal recipes make equal images.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Recipe {
    /// The base image id in the bake region.
    base_image: String,
    /// What the base is, region-independently: `image:<owner>/<name>` for a
    /// filter's match (the same public image has another id in each
    /// region), `id:<ami>` for an id given as such.
    base_identity: String,
    /// Hex sha256 of the provisioning script (empty: none).
    script_sha256: String,
    instance_type: String,
}

impl Recipe {
    /// The short hash images are tagged and found by.
    fn hash(&self) -> String {
        let input = serde_json::json!({
            "format": 1,
            "base": self.base_identity,
            "script_sha256": self.script_sha256,
            "instance_type": self.instance_type,
        });
        crate::plan::hash_json(&input)[..16].to_string()
    }

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

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
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
fn image_seen(image: &SdkImage) -> Option<Seen> {
    identity_tags(&tag_map(image.tags()))?;
    image.image_id()?;
    image.state()?;
    // The region is the reader's own; an observed object does not carry it.
    Some(seen_of(&known_image("", image)))
}

/// An image as every reader of drctl's images sees it: this environment's
/// (discovery) or another's (a reuse the plan found in the lookups).
fn seen_of(image: &KnownImage) -> Seen {
    let recipe = image.tag(RECIPE_TAG).unwrap_or("").to_string();
    Seen::new(&image.id, image.tags.clone())
        .attr("state", Value::Str(image.state.clone()))
        .attr("created", Value::Str(image.created.clone()))
        .attr("snapshots", Value::str_list(image.snapshots.iter().cloned()))
        .attr("name", Value::Str(image.name.clone()))
        .export("id", Value::Str(image.id.clone()))
        .export("recipe", Value::Str(recipe))
}

/// Available, and its last tag (`drctl:spec`) written: an image to use.
fn finished(image: &SdkImage) -> bool {
    let state = image.state().map_or("", |s| s.as_str());
    crate::world::image_finished(state, &tag_map(image.tags()))
}

/// The last steps of a bake and of a copy: wait until image `id` (in
/// `ec2`'s region) is available, tag its snapshots with `tags`, then write
/// `drctl:spec` (the mark of a finished image) last. Returns the image as
/// it became available, whose tags lack only `drctl:spec`.
async fn finish(
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
fn builder_seen(instance: &Instance) -> Option<Seen> {
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

fn is_builder(o: &ObservedResource) -> bool {
    o.attrs.get("role").and_then(Value::as_str) == Some(BUILDER_ROLE)
}

/// An image as read back after a bake or update.
fn observed_image(address: &crate::world::Address, image: &SdkImage) -> Option<ObservedResource> {
    image_seen(image).map(|s| s.at(address))
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
    let found = aws.ec2.images_by_id(std::slice::from_ref(&current.id)).await?;
    found
        .first()
        .and_then(|i| observed_image(&current.address, i))
        .ok_or_else(|| super::common::vanished(&current.address, &current.id))
}

async fn delete(aws: &AwsProvider, current: &ObservedResource) -> Result<(), CloudError> {
    retire::delete(aws, current).await
}

// --- What planning looks up ---------------------------------------------------

/// The lookups a plan of `runbook` needs for its images: base-image filters
/// to resolve, and the regions whose drctl images it may reuse (its own and
/// every copy region). Nothing when it has no image.
pub fn lookups_needed(
    project: &crate::model::Project,
    runbook: &crate::model::Runbook,
) -> crate::cloud::provider::LookupRequest {
    use crate::plan::resolve::{Resolved, Scope};
    let exports = BTreeMap::new();
    let scope = Scope {
        project,
        runbook,
        exports: &exports,
    };
    let mut request = crate::cloud::provider::LookupRequest::default();
    for phase in crate::graph::runbook_phases(project, runbook) {
        for stack in phase.stacks.iter().filter_map(|s| project.stacks.get(s)) {
            for resource in stack.resources.iter().filter(|r| r.kind == ResourceKind::Image) {
                request.image_regions.insert(runbook.region.clone());
                if let Some(Resolved::Known(Value::Table(filter))) =
                    resource.attr("base_image").map(|e| scope.resolve(stack, e))
                {
                    let wanted = base_filter(&filter);
                    if !request.base_filters.contains(&wanted) {
                        request.base_filters.push(wanted);
                    }
                }
                if let Some(Resolved::Known(regions)) =
                    resource.attr("copy_to_regions").map(|e| scope.resolve(stack, e))
                {
                    for region in regions.as_str_list().unwrap_or_default() {
                        request.image_regions.insert(region.to_string());
                    }
                }
            }
        }
    }
    request
}

#[cfg(test)]
mod tests;
