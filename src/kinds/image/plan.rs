//! Planning an image (pure): work out the recipe, then reuse a finished image
//! of that recipe (this environment's, or any other's in the region unless
//! the run rebakes), or bake; add the copies a region is missing; and put
//! images past `keep` in cleanup unless something launches them. Builders
//! and unfinished images left by an interrupted bake are picked up by the
//! bake of the same recipe, or cleaned up.

use super::{
    is_builder, short, Recipe, BAKED_TAG, BASE_TAG, BUILDER_TAG, COPY_OF_TAG, RECIPE_TAG,
    SCRIPT_TAG, TYPE_TAG,
};
use crate::model::Runbook;
use crate::plan::resolve::Resolved;
use crate::plan::{deletion, known_tags, user_tags, Action, Change, OwnPlan, OwnPlanInput};
use crate::types::tags;
use crate::world::{base_filter_key, KnownImage, ObservedResource, Value};

/// The attributes a person reads in the plan; the rest are computed inputs
/// of the bake (recipe, script hash, region).
const SHOWN: &[&str] = &[
    "base_image",
    "instance_type",
    "subnet",
    "provision",
    "copy_to_regions",
    "keep",
    "bake_timeout",
];

pub(super) fn plan(input: &OwnPlanInput<'_>) -> OwnPlan {
    let mut change = input.skeleton();
    let (builders, images): (Vec<&ObservedResource>, Vec<&ObservedResource>) =
        input.objects.iter().copied().partition(|o| is_builder(o));
    let bake = BakeInputs::read(input, &mut change);
    let Some(recipe) = bake.recipe else {
        return base_pending(change, &builders, &bake.copy_to);
    };
    let hash = recipe.hash();
    set(&mut change, "recipe", hash.clone());
    let known = KnownRecipe {
        input,
        runbook: input.scope.runbook,
        builders,
        images,
        hash,
        address: change.address.to_string(),
    };
    let current = known.reuse_or_bake(&mut change, &recipe, bake.script_path.as_deref());
    known.add_copies(&mut change, &bake.copy_to, current.as_ref());
    let mut cleanup = Vec::new();
    known.resume_or_clean_bakes(&mut change, &mut cleanup);
    let current_id = current.as_ref().map(|c| c.id.as_str());
    known.retain(&mut change, current_id, &mut cleanup);
    own_plan(change, cleanup)
}

/// The recipe's inputs, as the bake will send them, and the regions to copy
/// the image to.
struct BakeInputs {
    /// The provisioning script as the stack names it (for "script … changed").
    script_path: Option<String>,
    /// `None` while the base image's id is pending on another step.
    recipe: Option<Recipe>,
    /// `copy_to_regions` without the image's own region.
    copy_to: Vec<String>,
}

impl BakeInputs {
    /// Sets the bake's computed inputs on `change` (script, region, base),
    /// and leaves only the attributes a person reads in its diff.
    fn read(input: &OwnPlanInput<'_>, change: &mut Change) -> Self {
        let region = &input.scope.runbook.region;
        let (script_path, script_sha) = script(input, change);
        set(change, "region", region.clone());
        let base = resolve_base(input, change);
        let instance_type = change.known_str("instance_type");
        let recipe = match (base, instance_type) {
            (Some((base_image, base_identity)), Some(instance_type)) => Some(Recipe {
                base_image,
                base_identity,
                script_sha256: script_sha,
                instance_type,
            }),
            _ => None,
        };
        change.attrs.retain(|a| SHOWN.contains(&a.name.as_str()));
        let copy_to = known_list(change, "copy_to_regions")
            .into_iter()
            .filter(|r| r != region)
            .collect();
        BakeInputs {
            script_path,
            recipe,
            copy_to,
        }
    }
}

/// The provisioning script's path and hash ("" when there is nothing to
/// hash); its file and hash go on the step, for the bake.
fn script(input: &OwnPlanInput<'_>, change: &mut Change) -> (Option<String>, String) {
    let Some(path) = input
        .resource
        .attr("provision")
        .and_then(|e| e.as_literal_str())
    else {
        return (None, String::new());
    };
    let file = input.scope.project.stack_file(input.stack, path);
    match input.scope.project.files.get(&file) {
        Some(digest) => {
            set(change, "script_file", file.display().to_string());
            set(change, "script_sha256", digest.sha256.clone());
            (Some(path.to_string()), digest.sha256.clone())
        }
        // Validation reports a missing file; nothing to hash.
        None => (Some(path.to_string()), String::new()),
    }
}

/// The base is another image this run bakes: its id, and so the recipe, are
/// known only then, so nothing can be reused or continued yet.
fn base_pending(mut change: Change, builders: &[&ObservedResource], copy_to: &[String]) -> OwnPlan {
    change.headline = Some(format!(
        "bake image {} (base image and recipe known when the step runs)",
        change.address.name
    ));
    change.steps = copy_steps(copy_to);
    let address = change.address.to_string();
    let cleanup = builders
        .iter()
        .map(|b| stale_builder(b, &address))
        .collect();
    own_plan(change, cleanup)
}

/// An image whose recipe is known: what stands at its address, split into
/// builders and images, and the recipe's hash they are matched by.
struct KnownRecipe<'a> {
    input: &'a OwnPlanInput<'a>,
    runbook: &'a Runbook,
    builders: Vec<&'a ObservedResource>,
    images: Vec<&'a ObservedResource>,
    hash: String,
    /// The image's address, as cleanup headlines name it.
    address: String,
}

impl KnownRecipe<'_> {
    /// The image the step starts from: this environment's finished image of
    /// the recipe, else another environment's to reuse (unless the run
    /// rebakes), else none, and the step bakes.
    fn reuse_or_bake(
        &self,
        change: &mut Change,
        recipe: &Recipe,
        script_path: Option<&str>,
    ) -> Option<ObservedResource> {
        let hash = &self.hash;
        if let Some(own) = self.ours_of_recipe() {
            change.action = Action::NoOp;
            change.attrs.clear();
            return Some(own.clone());
        }
        if let Some(other) = self.reusable() {
            change.action = Action::NoOp;
            change.attrs.clear();
            change.headline = Some(format!(
                "reuse {} (recipe {hash}, baked by {} on {})",
                other.id,
                other.tag(tags::ENV).unwrap_or("another environment"),
                day(&other.created)
            ));
            return Some(as_observed(other, &change.address));
        }
        change.action = Action::Create;
        let why = why_bake(
            &self.images,
            recipe,
            script_path,
            self.runbook.rebake_images,
        );
        change.headline = Some(format!(
            "bake image {} from {} (recipe {hash}, {why})",
            change.address.name, recipe.base_image
        ));
        None
    }

    /// This environment's newest finished image of the recipe.
    fn ours_of_recipe(&self) -> Option<&ObservedResource> {
        self.images
            .iter()
            .copied()
            .filter(|o| finished(o))
            .filter(|o| o.tags.get(RECIPE_TAG) == Some(&self.hash))
            .max_by(|a, b| created(a).cmp(created(b)))
    }

    /// Another environment's newest image of the recipe in this region;
    /// none when the run rebakes.
    fn reusable(&self) -> Option<&KnownImage> {
        if self.runbook.rebake_images {
            return None;
        }
        self.of_recipe_in(&self.runbook.region)
            .filter(|i| i.tag(tags::ENV) != Some(self.runbook.environment.as_str()))
            .max_by(|a, b| (&a.created, &a.id).cmp(&(&b.created, &b.id)))
    }

    /// The finished images of the recipe in `region`, whoever baked them.
    fn of_recipe_in<'r>(&'r self, region: &'r str) -> impl Iterator<Item = &'r KnownImage> {
        self.input.lookups.images.iter().filter(move |i| {
            i.region == region && i.usable() && i.tag(RECIPE_TAG) == Some(&self.hash)
        })
    }

    /// Copies: a region that has a finished image of this recipe (a copy,
    /// or a bake there) needs none. An image that exists is updated for
    /// them, and for its tags when it is this environment's.
    fn add_copies(
        &self,
        change: &mut Change,
        copy_to: &[String],
        current: Option<&ObservedResource>,
    ) {
        let missing: Vec<String> = copy_to
            .iter()
            .filter(|r| self.of_recipe_in(r).next().is_none())
            .cloned()
            .collect();
        change.steps = copy_steps(&missing);
        let Some(current) = current else {
            return;
        };
        let own = current.tags.get(tags::ENV) == Some(&self.runbook.environment);
        let tags_differ = own
            && known_tags(&change.tags)
                .is_some_and(|k| user_tags(&current.tags, &change.tags) != k);
        if tags_differ {
            change.steps.push("~ tags".into());
        }
        if !change.steps.is_empty() {
            change.action = Action::Update;
            if change.headline.is_none() {
                change.headline = Some(format!(
                    "update image {} ({})",
                    change.address.name, current.id
                ));
            }
        }
        change.current = Some(current.clone());
    }

    /// Builders and unfinished images: the bake of this recipe continues
    /// them; anything else is left over from an interrupted bake.
    fn resume_or_clean_bakes(&self, change: &mut Change, cleanup: &mut Vec<Change>) {
        let baking = change.action == Action::Create;
        let address = &self.address;
        for b in &self.builders {
            if baking && b.tags.get(RECIPE_TAG) == Some(&self.hash) {
                change.reasons.push(format!(
                    "continues the interrupted bake on builder {}",
                    b.id
                ));
            } else {
                cleanup.push(stale_builder(b, address));
            }
        }
        for image in self.images.iter().filter(|o| !finished(o)) {
            let continued = baking
                && image.tags.get(RECIPE_TAG) == Some(&self.hash)
                && self
                    .builders
                    .iter()
                    .any(|b| image.tags.get(BUILDER_TAG) == Some(&b.id));
            if continued {
                change
                    .reasons
                    .push(format!("continues the interrupted bake of {}", image.id));
            } else {
                let mut d = deletion(image, Some("an unfinished bake".into()));
                d.headline = Some(format!(
                    "deregister unfinished image {} of {address}",
                    image.id
                ));
                cleanup.push(d);
            }
        }
    }

    /// Retention: the newest `keep` finished images of this address, the
    /// current (or the one being baked) counted first. An image something
    /// still launches is kept past `keep`, and the plan says by whom.
    fn retain(&self, change: &mut Change, current_id: Option<&str>, cleanup: &mut Vec<Change>) {
        let Some(keep) = known_int(change, "keep") else {
            return;
        };
        let address = &self.address;
        let mut older: Vec<&ObservedResource> = self
            .images
            .iter()
            .copied()
            .filter(|o| finished(o))
            .filter(|o| Some(o.id.as_str()) != current_id)
            .filter(|o| o.tags.get(tags::ENV) == Some(&self.runbook.environment))
            .collect();
        older.sort_by(|a, b| created(b).cmp(created(a)).then(b.id.cmp(&a.id)));
        for old in older.into_iter().skip((keep as usize).saturating_sub(1)) {
            let users = users_of(self.input.lookups, &self.runbook.region, &old.id);
            if users.is_empty() {
                let mut d = deletion(old, Some(format!("retention, keep {keep}")));
                d.headline = Some(format!(
                    "deregister {} of {address} (retention, keep {keep})",
                    old.id
                ));
                cleanup.push(d);
                continue;
            }
            change.reasons.push(format!(
                "{} is past retention (keep {keep}) but kept: in use by {}",
                old.id,
                users.join(", ")
            ));
            if change.headline.is_none() {
                change.headline = Some(format!(
                    "keep image {} ({})",
                    change.address.name,
                    current_id.unwrap_or_default()
                ));
            }
        }
    }
}

/// A finished image: available, its last tag written.
fn finished(o: &ObservedResource) -> bool {
    crate::world::image_finished(
        o.attrs.get("state").and_then(Value::as_str).unwrap_or(""),
        &o.tags,
    )
}

fn copy_steps(regions: &[String]) -> Vec<String> {
    regions.iter().map(|r| format!("+ copy to {r}")).collect()
}

/// The image's step; an image has no cutover and no canary.
fn own_plan(change: Change, cleanup: Vec<Change>) -> OwnPlan {
    OwnPlan {
        change,
        cleanup,
        cutover: None,
        canary_gates: Default::default(),
    }
}

/// `base_image` as the id the bake launches from, and its identity for the
/// recipe; `None` while the id is pending on another step.
fn resolve_base(input: &OwnPlanInput<'_>, change: &mut Change) -> Option<(String, String)> {
    match change.desired.get("base_image")?.clone() {
        Resolved::Known(Value::Str(id)) => Some((id.clone(), format!("id:{id}"))),
        Resolved::Known(Value::Table(filter)) => {
            let (owners, name) = super::base_filter(&filter);
            let found = input
                .lookups
                .base_images
                .get(&base_filter_key(&owners, &name))?;
            let identity = format!("image:{}/{}", found.owner, found.name);
            set(change, "base_image", found.id.clone());
            set(change, "base_identity", identity.clone());
            for attr in change.attrs.iter_mut().filter(|a| a.name == "base_image") {
                attr.after = Some(Resolved::Known(Value::Str(format!(
                    "{} ({name}, newest of {})",
                    found.id,
                    owners.join(", ")
                ))));
            }
            Some((found.id.clone(), identity))
        }
        _ => None,
    }
}

/// Why a bake is needed, compared with this environment's newest image.
fn why_bake(
    images: &[&ObservedResource],
    recipe: &Recipe,
    script_path: Option<&str>,
    rebake: bool,
) -> String {
    let newest = images
        .iter()
        .filter(|o| o.tags.contains_key(tags::SPEC))
        .max_by(|a, b| created(a).cmp(created(b)));
    let Some(newest) = newest else {
        return if rebake {
            "rebake requested: baking from scratch".into()
        } else {
            "no image of this recipe in the region yet".into()
        };
    };
    let mut why = Vec::new();
    let tag = |k: &str| newest.tags.get(k).map(String::as_str).unwrap_or("");
    if tag(BASE_TAG) != recipe.base_image {
        why.push(format!(
            "base image {} → {}",
            tag(BASE_TAG),
            recipe.base_image
        ));
    }
    if tag(SCRIPT_TAG) != short(&recipe.script_sha256) {
        why.push(match script_path {
            Some(path) => format!("script {path} changed"),
            None => "script removed".into(),
        });
    }
    if tag(TYPE_TAG) != recipe.instance_type {
        why.push(format!(
            "instance type {} → {}",
            tag(TYPE_TAG),
            recipe.instance_type
        ));
    }
    if why.is_empty() {
        why.push(format!("recipe changed since {}", newest.id));
    }
    why.join(", ")
}

fn stale_builder(builder: &ObservedResource, address: &str) -> Change {
    let mut d = deletion(builder, Some("left by an interrupted bake".into()));
    d.headline = Some(format!(
        "terminate builder {} of {address} (left by an interrupted bake)",
        builder.id
    ));
    d
}

/// Who launches `id` or one of its copies.
fn users_of(lookups: &crate::world::Lookups, region: &str, id: &str) -> Vec<String> {
    let source = format!("{region}/{id}");
    let mut users: Vec<String> = lookups.image_users.get(id).cloned().unwrap_or_default();
    for copy in lookups
        .images
        .iter()
        .filter(|i| i.tag(COPY_OF_TAG) == Some(source.as_str()))
    {
        for user in lookups.image_users.get(&copy.id).into_iter().flatten() {
            users.push(format!("{user} in {} (copy {})", copy.region, copy.id));
        }
    }
    users
}

/// Another environment's image, standing at this address for this run.
fn as_observed(image: &KnownImage, address: &crate::world::Address) -> ObservedResource {
    let (attrs, exports) = super::image_values(image);
    ObservedResource {
        address: address.clone(),
        id: image.id.clone(),
        attrs,
        exports,
        tags: image.tags.clone(),
    }
}

/// When it was baked: drctl's own millisecond tag, else EC2's creation date.
fn created(o: &ObservedResource) -> &str {
    o.tags
        .get(BAKED_TAG)
        .map(String::as_str)
        .or_else(|| o.attrs.get("created").and_then(Value::as_str))
        .unwrap_or("")
}

/// `2026-11-20` from EC2's `2026-11-20T03:12:44.000Z`.
fn day(created: &str) -> &str {
    created.get(..10).unwrap_or(created)
}

fn set(change: &mut Change, key: &str, value: String) {
    change
        .desired
        .insert(key.to_string(), Resolved::Known(Value::Str(value)));
}

fn known_int(change: &Change, key: &str) -> Option<i64> {
    change.desired.get(key)?.known()?.as_int()
}

fn known_list(change: &Change, key: &str) -> Vec<String> {
    change
        .desired
        .get(key)
        .and_then(Resolved::known)
        .and_then(Value::as_str_list)
        .map(|l| l.into_iter().map(str::to_string).collect())
        .unwrap_or_default()
}
