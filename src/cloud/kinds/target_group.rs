//! The AWS half of [`crate::kinds::target_group`]: reading its objects back, creating,
//! updating and deleting them.

use crate::cloud::aws::{AwsProvider, Discovery};
use crate::cloud::elbv2::{Elbv2, TargetGroupSpec};
use crate::cloud::kinds::common::{elbv2_name, identity_tags, vanished, Seen};
use crate::cloud::provider::CreateRequest;
use crate::cloud::CloudError;
use crate::kinds::common::Want;
use crate::types::ResourceKind;
use crate::world::{Attrs, ObservedResource, Tags, Value};
use aws_sdk_elasticloadbalancingv2::types::TargetGroup as AwsTargetGroup;
use std::collections::BTreeMap;

pub struct TargetGroup;

impl super::AwsKind for TargetGroup {
    aws_operations!();
}

async fn observe(aws: &AwsProvider, pass: &Discovery) -> Result<Vec<ObservedResource>, CloudError> {
    let elbv2 = pass.elbv2(aws).await?;
    let mut found = Vec::new();
    for group in &elbv2.target_groups {
        if let Some(t) = elbv2.ours(group.target_group_arn(), pass.env()) {
            found.extend(seen(group, t).and_then(|s| s.discovered(ResourceKind::TargetGroup)));
        }
    }
    Ok(found)
}

async fn update(
    aws: &AwsProvider,
    current: &ObservedResource,
    attrs: &Attrs,
    tags: &Tags,
) -> Result<ObservedResource, CloudError> {
    let (address, id) = (&current.address, current.id.as_str());
    modify(aws, current, attrs).await?;
    aws.retag_elbv2(id, &current.tags, tags).await?;
    let group = aws.elbv2.target_group(id).await?;
    let tags = aws.elbv2_tags(id).await?;
    group
        .as_ref()
        .and_then(|g| seen(g, tags))
        .map(|s| s.at(address))
        .ok_or_else(|| vanished(address, id))
}

async fn delete(aws: &AwsProvider, current: &ObservedResource) -> Result<(), CloudError> {
    let id = current.id.as_str();
    // In use until the listener forwarding to it is changed or gone.
    aws.patiently(&format!("delete {id}"), || {
        aws.elbv2.delete_target_group(id)
    })
    .await
}

fn seen(group: &AwsTargetGroup, tags: Tags) -> Option<Seen> {
    let arn = group.target_group_arn()?;
    let health_check = health_check_of(group);
    Some(
        Seen::new(arn, tags)
            .attr("vpc", Value::Str(group.vpc_id().unwrap_or_default().into()))
            .attr(
                "protocol",
                Value::Str(
                    group
                        .protocol()
                        .map(|p| p.as_str())
                        .unwrap_or_default()
                        .into(),
                ),
            )
            .attr("port", Value::Int(group.port().unwrap_or_default().into()))
            .attr("health_check", health_check)
            .export("arn", Value::Str(arn.into())),
    )
}

/// A target group's health check as drctl models it (AWS's defaults filled in).
pub(crate) fn health_check_of(group: &AwsTargetGroup) -> Value {
    Value::Table(BTreeMap::from([
        (
            "path".to_string(),
            Value::Str(group.health_check_path().unwrap_or("/").into()),
        ),
        (
            "interval".to_string(),
            Value::Int(group.health_check_interval_seconds().unwrap_or(30).into()),
        ),
        (
            "healthy_threshold".to_string(),
            Value::Int(group.healthy_threshold_count().unwrap_or(5).into()),
        ),
    ]))
}

async fn create(
    aws: &AwsProvider,
    req: &CreateRequest<'_>,
) -> Result<ObservedResource, CloudError> {
    let want = Want::new(req.address, req.attrs);
    let name = elbv2_name(req.address, req.tags);
    let health_check = want.health_check()?;
    let spec = TargetGroupSpec {
        name: &name,
        protocol: want.str("protocol")?,
        port: want.i32("port")?,
        vpc: want.str("vpc")?,
        health_check: &health_check,
    };
    let (group, tags) = create_or_adopt(aws, &spec, req.tags).await?;
    seen(&group, tags)
        .map(|s| s.at(req.address))
        .ok_or(CloudError::MissingField {
            service: "ELBv2",
            operation: "CreateTargetGroup",
            field: "TargetGroupArn",
        })
}

/// Creates the target group, or adopts the one of that name left by a create
/// cut short, if it is the same resource (its identity tags): AWS returns
/// the existing group for an identical create, moto refuses. Returns it
/// with its tags.
pub(crate) async fn create_or_adopt(
    aws: &AwsProvider,
    spec: &TargetGroupSpec<'_>,
    tags: &Tags,
) -> Result<(AwsTargetGroup, Tags), CloudError> {
    match aws.elbv2.create_target_group(spec, tags).await {
        Ok(group) => Ok((group, tags.clone())),
        Err(e) if e.code() == Some("DuplicateTargetGroupName") => {
            let Some(group) = aws.elbv2.target_group_by_name(spec.name).await? else {
                return Err(e);
            };
            let arn = group.target_group_arn().unwrap_or_default().to_string();
            let found = aws.elbv2_tags(&arn).await?;
            if identity_tags(&found) != identity_tags(tags) {
                return Err(e);
            }
            Ok((group, found))
        }
        Err(e) => Err(e),
    }
}

async fn modify(
    aws: &AwsProvider,
    current: &ObservedResource,
    attrs: &Attrs,
) -> Result<(), CloudError> {
    let want = Want::new(&current.address, attrs);
    let health_check = want.health_check()?;
    if current.attrs.get("health_check") != attrs.get("health_check") {
        let protocol = want.str("protocol")?;
        aws.elbv2
            .modify_health_check(&current.id, protocol, &health_check)
            .await?;
    }
    Ok(())
}
