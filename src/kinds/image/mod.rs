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

mod plan;
#[cfg(test)]
mod tests;

use super::{Kind, Problems};
use crate::kinds::common::sorted;
use crate::kinds::schema::{opt, req, Field, Ty, ValueType};
use crate::model::Resource;
use crate::types::ResourceKind;
use crate::world::{Attrs, KnownImage, ObservedResource, Value};
use std::collections::BTreeMap;

pub struct Image;

/// The recipe hash an image was baked from (on images and their copies).
pub const RECIPE_TAG: &str = "drctl:recipe";

/// `builder` on a bake's builder instance.
pub(crate) const ROLE_TAG: &str = "drctl:role";

pub(crate) const BUILDER_ROLE: &str = "builder";

/// On an image: the builder instance it was made from (a resumed bake finds it).
pub(crate) const BUILDER_TAG: &str = "drctl:builder";

/// On an image: its recipe's inputs, so a plan can say what changed.
pub(crate) const BASE_TAG: &str = "drctl:base-image";

pub(crate) const SCRIPT_TAG: &str = "drctl:script-sha256";

pub(crate) const TYPE_TAG: &str = "drctl:instance-type";

/// On an image: when its bake started, to the millisecond (EC2's creation
/// date has whole seconds: two bakes in one second would not sort).
pub(crate) const BAKED_TAG: &str = "drctl:baked-at";

/// On a source image: its copies, `region=ami-… region=ami-…`.
pub(crate) const COPIES_TAG: &str = "drctl:copies";

/// On a copy: `region/ami-…` of its source.
pub(crate) const COPY_OF_TAG: &str = "drctl:copy-of";

/// The last lines of every builder's user data. The power-off is how drctl
/// knows the script finished (the builder reaches `stopped`), with no SSH or
/// agent; the marker line is the sandbox's cue (src/sandbox/moto_launcher.py).
pub(crate) const POWER_OFF: &str =
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
                if !crate::model::is_region_name(name) {
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
}

/// A `base_image = { owners, name }` filter's owners and name pattern.
pub fn base_filter(filter: &BTreeMap<String, Value>) -> (Vec<String>, String) {
    let owners = filter
        .get("owners")
        .and_then(Value::as_str_list)
        .unwrap_or_default();
    let name = filter.get("name").and_then(Value::as_str).unwrap_or("");
    (
        owners.into_iter().map(str::to_string).collect(),
        name.to_string(),
    )
}

// --- The recipe ---------------------------------------------------------------

/// What makes an image: equal recipes make equal images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recipe {
    /// The base image id in the bake region.
    pub(crate) base_image: String,
    /// What the base is, region-independently: `image:<owner>/<name>` for a
    /// filter's match (the same public image has another id in each
    /// region), `id:<ami>` for an id given as such.
    pub(crate) base_identity: String,
    /// Hex sha256 of the provisioning script (empty: none).
    pub(crate) script_sha256: String,
    pub(crate) instance_type: String,
}

impl Recipe {
    /// The short hash images are tagged and found by.
    pub(crate) fn hash(&self) -> String {
        let input = serde_json::json!({
            "format": 1,
            "base": self.base_identity,
            "script_sha256": self.script_sha256,
            "instance_type": self.instance_type,
        });
        crate::digest::hash_json(&input)[..16].to_string()
    }
}

pub(crate) fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// An image's attributes and exports as every reader of drctl's images
/// sees them: this environment's (discovery) or another's (a reuse the plan
/// found in the lookups).
pub(crate) fn image_values(image: &KnownImage) -> (Attrs, Attrs) {
    let recipe = image.tag(RECIPE_TAG).unwrap_or("").to_string();
    let attrs = Attrs::from([
        ("state".to_string(), Value::Str(image.state.clone())),
        ("created".to_string(), Value::Str(image.created.clone())),
        (
            "snapshots".to_string(),
            Value::str_list(image.snapshots.iter().cloned()),
        ),
        ("name".to_string(), Value::Str(image.name.clone())),
    ]);
    let exports = Attrs::from([
        ("id".to_string(), Value::Str(image.id.clone())),
        ("recipe".to_string(), Value::Str(recipe)),
    ]);
    (attrs, exports)
}

pub(crate) fn is_builder(o: &ObservedResource) -> bool {
    o.attrs.get("role").and_then(Value::as_str) == Some(BUILDER_ROLE)
}
