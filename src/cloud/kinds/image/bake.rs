//! A bake, as a chain of ensures a resumed run picks up where it stopped:
//! the builder of this address and recipe (found by its tags, or launched
//! with the script and drctl's power-off as user data) → stopped (the script
//! finished, within `bake_timeout`) → its image (found by the builder tag,
//! or CreateImage) → available → image and snapshots tagged, `drctl:spec`
//! last → builder terminated → copies. The builder is terminated whatever
//! happens; an image that did not finish is deregistered with its snapshots.
//! After a bake that worked, the builder's shutting down is not waited for:
//! the run checks it before it ends ([`crate::cloud::background`]).

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ec2::types::{Image as SdkImage, InstanceStateName};

use super::{copies, finish, finished, observed_image, retire};
use crate::cloud::aws::AwsProvider;
use crate::cloud::ec2::{Ec2, Launch, Select};
use crate::cloud::kinds::common::identity_tags;
use crate::cloud::provider::CreateRequest;
use crate::cloud::wait::{self, Probe};
use crate::cloud::CloudError;
use crate::kinds::common::Want;
use crate::kinds::image::{
    short, Recipe, BAKED_TAG, BASE_TAG, BUILDER_ROLE, BUILDER_TAG, COPIES_TAG, POWER_OFF,
    RECIPE_TAG, ROLE_TAG, SCRIPT_TAG, TYPE_TAG,
};
use crate::types::tags;
use crate::world::{Address, ObservedResource};

pub(super) async fn bake(
    aws: &AwsProvider,
    request: &CreateRequest<'_>,
) -> Result<ObservedResource, CloudError> {
    let address = request.address;
    let want = Want::new(address, request.attrs);
    let recipe = Recipe::from_attrs(&want)?;
    let hash = recipe.hash();
    if let Some(planned) = want.opt_str("recipe")? {
        if planned != hash {
            return Err(want
                .bad("recipe", "the recipe of the other attributes")
                .into());
        }
    }
    let region = want.str("region")?.to_string();
    let copy_to = want.strs("copy_to_regions")?;
    let timeout = humantime::parse_duration(want.str("bake_timeout")?)
        .map_err(|_| want.bad("bake_timeout", "a duration"))?;
    let script = read_script(&want, address)?;

    let identity = identity(request);
    let mut image_tags = identity.clone();
    image_tags.extend([
        (RECIPE_TAG.to_string(), hash.clone()),
        (BASE_TAG.to_string(), recipe.base_image.clone()),
        (
            SCRIPT_TAG.to_string(),
            short(&recipe.script_sha256).to_string(),
        ),
        (TYPE_TAG.to_string(), recipe.instance_type.clone()),
        (
            BAKED_TAG.to_string(),
            humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        ),
    ]);
    let spec = request.tags.get(tags::SPEC).cloned().unwrap_or_default();

    // A run that stopped after its image was finished only copies.
    let mut of_recipe = identity_tags(&identity).unwrap_or_default();
    of_recipe.insert(RECIPE_TAG.into(), hash.clone());
    let done = aws
        .ec2
        .images_tagged(&of_recipe)
        .await?
        .into_iter()
        .find(finished);
    let (image, spec_written) = match done {
        Some(image) => {
            // Stopped after the image was finished, before the builder went.
            for builder in builders(aws, request, &hash).await? {
                terminate_later(aws, address, &builder).await?;
            }
            (image, None)
        }
        None => {
            let builder = ensure_builder(aws, request, &recipe, &hash, &script).await?;
            let made = make_image(aws, address, &builder, &image_tags, &spec, timeout).await;
            // Whatever happened, the builder goes (a failed terminate is
            // reported; the next plan lists the builder for cleanup).
            let image = match made {
                Ok(image) => image,
                Err(e) => {
                    if let Err(t) = terminate(aws, address, &builder).await {
                        tracing::warn!("{t}");
                    }
                    discard_unfinished(aws, &identity, &builder).await;
                    return Err(e);
                }
            };
            terminate_later(aws, address, &builder).await?;
            (image, Some(spec))
        }
    };
    // As read when it became available, plus the tags written since.
    let mut observed = observed_image(address, &image).ok_or_else(|| {
        crate::cloud::kinds::common::vanished(address, image.image_id().unwrap_or(""))
    })?;
    if let Some(spec) = spec_written {
        observed.tags.insert(tags::SPEC.to_string(), spec);
    }
    if let Some(copies) = copies::ensure(aws, &region, &observed, &copy_to).await? {
        observed.tags.insert(COPIES_TAG.to_string(), copies);
    }
    Ok(observed)
}

/// drctl's identity tags of the request (env, stack, resource, run, Name),
/// without the spec hash, which is written last.
fn identity(request: &CreateRequest<'_>) -> BTreeMap<String, String> {
    request
        .tags
        .iter()
        .filter(|(k, _)| k.as_str() != tags::SPEC)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The script with drctl's power-off appended, checked against the hash
/// the plan was approved with.
fn read_script(want: &Want<'_>, address: &Address) -> Result<String, CloudError> {
    let Some(file) = want.opt_str("script_file")? else {
        return Ok(format!("#!/bin/sh\n{POWER_OFF}"));
    };
    let changed = |reason: String| CloudError::Failed {
        what: format!("{address}: provisioning script {file}"),
        state: "not as planned".into(),
        reason,
    };
    let bytes = std::fs::read(file).map_err(|e| changed(format!("cannot read it: {e}")))?;
    let sha = crate::digest::sha256_hex(&bytes);
    let planned = want.opt_str("script_sha256")?.unwrap_or("");
    if sha != planned {
        return Err(changed(format!(
            "it changed after the plan was made (planned sha256 {}, now {}): plan again",
            short(planned),
            short(&sha)
        )));
    }
    let mut script = String::from_utf8(bytes)
        .map_err(|_| changed("it is not UTF-8 text (user data must be a script)".into()))?;
    if !script.ends_with('\n') {
        script.push('\n');
    }
    script.push_str(POWER_OFF);
    Ok(script)
}

/// This address's builders of this recipe (not terminated), by id.
async fn builders(
    aws: &AwsProvider,
    request: &CreateRequest<'_>,
    hash: &str,
) -> Result<Vec<String>, CloudError> {
    let mut select = identity_tags(request.tags).unwrap_or_default();
    select.insert(ROLE_TAG.into(), BUILDER_ROLE.into());
    select.insert(RECIPE_TAG.into(), hash.to_string());
    let found = aws.ec2.describe_instances(Select::Tagged(&select)).await?;
    let mut ids: Vec<String> = found
        .iter()
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect();
    ids.sort();
    Ok(ids)
}

/// This address's builder of this recipe, or a new one.
async fn ensure_builder(
    aws: &AwsProvider,
    request: &CreateRequest<'_>,
    recipe: &Recipe,
    hash: &str,
    script: &str,
) -> Result<String, CloudError> {
    if let Some(id) = builders(aws, request, hash).await?.into_iter().next() {
        return Ok(id);
    }
    let mut tags_ = identity(request);
    tags_.insert(ROLE_TAG.into(), BUILDER_ROLE.into());
    tags_.insert(RECIPE_TAG.into(), hash.to_string());
    if let Some(name) = tags_.get_mut(tags::NAME) {
        name.push_str(" builder");
    }
    let want = Want::new(request.address, request.attrs);
    aws.ec2
        .run_instances(&Launch {
            image: &recipe.base_image,
            instance_type: &recipe.instance_type,
            subnet: want.str("subnet")?,
            security_groups: &[],
            user_data: script,
            count: 1,
            client_token: request.client_token,
            tags: &tags_,
            stop_on_shutdown: true,
        })
        .await?
        .into_iter()
        .next()
        .ok_or(CloudError::MissingField {
            service: "EC2",
            operation: "RunInstances",
            field: "Instances",
        })
}

/// From a builder to a finished image: wait for the power-off, image it,
/// wait until available, tag it and its snapshots, `drctl:spec` last.
async fn make_image(
    aws: &AwsProvider,
    address: &Address,
    builder: &str,
    image_tags: &BTreeMap<String, String>,
    spec: &str,
    timeout: Duration,
) -> Result<SdkImage, CloudError> {
    wait_stopped(aws, address, builder, timeout).await?;
    let existing = aws
        .ec2
        .images_tagged(&of_builder(image_tags, builder))
        .await?;
    let id = match existing.iter().filter_map(|i| i.image_id()).min() {
        Some(id) => id.to_string(),
        None => {
            let mut tags_ = image_tags.clone();
            tags_.insert(BUILDER_TAG.into(), builder.to_string());
            let name = image_name(image_tags, builder);
            aws.ec2.create_image(builder, &name, &tags_).await?
        }
    };
    let what = format!("{address}: image {id}");
    finish(aws, &aws.ec2, &what, &id, image_tags, spec).await
}

/// `<env>/<stack>/<name>/<recipe>/<builder>`: unique per region, as AWS
/// requires, and readable in the console (at most 128 characters).
fn image_name(tags_: &BTreeMap<String, String>, builder: &str) -> String {
    let get = |k: &str| tags_.get(k).map(String::as_str).unwrap_or("");
    let tail = format!(
        "{}/{}/{}/{builder}",
        get(tags::STACK),
        get(tags::RESOURCE),
        get(RECIPE_TAG)
    );
    let room = 128usize.saturating_sub(tail.len() + 1);
    let env: String = get(tags::ENV).chars().take(room).collect();
    format!("{env}/{tail}").chars().take(128).collect()
}

async fn wait_stopped(
    aws: &AwsProvider,
    address: &Address,
    builder: &str,
    timeout: Duration,
) -> Result<(), CloudError> {
    let what = format!("{address}: builder {builder} to finish provisioning and power off");
    let ids = [builder.to_string()];
    let result = wait::until(&what, timeout, aws.waits.backoff, || async {
        stop_if_interrupted(address)?;
        let found = aws.ec2.describe_instances(Select::Ids(&ids)).await?;
        let state = found
            .first()
            .and_then(|i| i.state()?.name().cloned())
            .unwrap_or(InstanceStateName::Pending);
        match state {
            InstanceStateName::Stopped => Ok(Probe::Done(())),
            InstanceStateName::ShuttingDown | InstanceStateName::Terminated => {
                Err(CloudError::Failed {
                    what: format!("{address}: builder {builder}"),
                    state: state.as_str().to_string(),
                    reason: "it terminated before provisioning finished (something else ended it)"
                        .into(),
                })
            }
            other => Ok(Probe::Waiting(other.as_str().to_string())),
        }
    })
    .await;
    result.map_err(|e| match e {
        CloudError::Timeout { waited, last_state, .. } => CloudError::Failed {
            what: format!("{address}: builder {builder}"),
            state: format!("still {last_state}"),
            reason: format!(
                "provisioning did not finish within bake_timeout ({}): the script never reached its final power-off. The builder was terminated; its console output (aws ec2 get-console-output --instance-id {builder}) says why",
                humantime::format_duration(Duration::from_secs(waited.as_secs()))
            ),
        },
        other => other,
    })
}

/// Polls `id` until it is available; a failed image ends the wait.
pub(super) async fn wait_available(
    aws: &AwsProvider,
    ec2: &crate::cloud::ec2::SdkEc2,
    what: &str,
    id: &str,
) -> Result<SdkImage, CloudError> {
    let ids = [id.to_string()];
    wait::until(
        &format!("{what} to become available"),
        aws.waits.images,
        aws.waits.backoff,
        || async {
            stop_if_interrupted(what)?;
            let found = ec2.images_by_id(&ids).await?;
            let Some(image) = found.into_iter().next() else {
                return Ok(Probe::Waiting("not visible yet".into()));
            };
            match image
                .state()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default()
                .as_str()
            {
                "available" => Ok(Probe::Done(image)),
                state @ ("failed" | "error" | "invalid" | "deregistered") => {
                    Err(CloudError::Failed {
                        what: what.to_string(),
                        state: state.to_string(),
                        reason: image
                            .state_reason()
                            .and_then(|r| r.message())
                            .unwrap_or("EC2 gave no reason")
                            .to_string(),
                    })
                }
                state => Ok(Probe::Waiting(state.to_string())),
            }
        },
    )
    .await
}

/// A bake gives up its waits when the run is stopped (Ctrl-C, SIGTERM):
/// the builder is then terminated like after any failure.
fn stop_if_interrupted(what: impl std::fmt::Display) -> Result<(), CloudError> {
    if wait::interrupted() {
        return Err(CloudError::Failed {
            what: what.to_string(),
            state: "interrupted".into(),
            reason: "the run was stopped; the bake is abandoned and its builder terminated (resume bakes again)".into(),
        });
    }
    Ok(())
}

pub(super) async fn terminate(
    aws: &AwsProvider,
    address: &Address,
    builder: &str,
) -> Result<(), CloudError> {
    let what = format!("{address}: builder");
    crate::cloud::kinds::instances::terminate(aws, &what, &[builder.to_string()]).await
}

/// Asks AWS to terminate the builder of a finished image; whether it did is
/// checked before the run ends, off the critical path.
async fn terminate_later(
    aws: &AwsProvider,
    address: &Address,
    builder: &str,
) -> Result<(), CloudError> {
    let instances = vec![builder.to_string()];
    crate::cloud::kinds::common::gone_ok(aws.ec2.terminate_instances(&instances).await)?;
    aws.background
        .terminating(crate::cloud::background::Terminating {
            address: address.clone(),
            what: format!("{address}: builder"),
            instances,
        });
    Ok(())
}

/// The tags that select the images made from `builder` for the resource
/// `identity` names.
fn of_builder(identity: &BTreeMap<String, String>, builder: &str) -> BTreeMap<String, String> {
    let mut selector = identity_tags(identity).unwrap_or_default();
    selector.insert(BUILDER_TAG.into(), builder.to_string());
    selector
}

/// After a failed bake: the builder's image, unless finished, is
/// deregistered and its snapshots deleted (best effort: what is left is
/// listed for cleanup by the next plan).
async fn discard_unfinished(aws: &AwsProvider, identity: &BTreeMap<String, String>, builder: &str) {
    let Ok(images) = aws.ec2.images_tagged(&of_builder(identity, builder)).await else {
        return;
    };
    for image in images.iter().filter(|i| !finished(i)) {
        if let Some(id) = image.image_id() {
            if let Err(e) = retire::deregister(&aws.ec2, id).await {
                tracing::warn!("could not deregister unfinished image {id}: {e}");
            }
        }
    }
}
