//! The AWS half of [`crate::kinds::load_balancer`]: reading its objects back, creating,
//! updating and deleting them.

use crate::cloud::aws::{AwsProvider, Discovery};
use crate::cloud::elbv2::{Elbv2, LoadBalancerSpec};
use crate::cloud::kinds::common::{elbv2_name, gone_ok, sorted_strs, vanished, Seen};
use crate::cloud::provider::CreateRequest;
use crate::cloud::wait::{self, Probe};
use crate::cloud::CloudError;
use crate::kinds::common::Want;
use crate::types::ResourceKind;
use crate::world::{Address, Attrs, ObservedResource, Tags, Value};
use aws_sdk_elasticloadbalancingv2::types::{
    LoadBalancer as AwsLoadBalancer, LoadBalancerSchemeEnum, LoadBalancerStateEnum,
};

pub struct LoadBalancer;

impl super::AwsKind for LoadBalancer {
    aws_operations!();
}

async fn observe(aws: &AwsProvider, pass: &Discovery) -> Result<Vec<ObservedResource>, CloudError> {
    let elbv2 = pass.elbv2(aws).await?;
    let mut found = Vec::new();
    for lb in &elbv2.load_balancers {
        if let Some(t) = elbv2.ours(lb.load_balancer_arn(), pass.env()) {
            found.extend(seen(lb, t).and_then(|s| s.discovered(ResourceKind::LoadBalancer)));
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
    let lb = wait_active(aws, address, id).await?;
    let tags = aws.elbv2_tags(id).await?;
    seen(&lb, tags)
        .map(|s| s.at(address))
        .ok_or_else(|| vanished(address, id))
}

fn seen(lb: &AwsLoadBalancer, tags: Tags) -> Option<Seen> {
    let arn = lb.load_balancer_arn()?;
    Some(
        Seen::new(arn, tags)
            .attr(
                "subnets",
                sorted_strs(lb.availability_zones().iter().filter_map(|z| z.subnet_id())),
            )
            .attr(
                "security_groups",
                sorted_strs(lb.security_groups().iter().map(String::as_str)),
            )
            .attr(
                "internal",
                Value::Bool(lb.scheme() == Some(&LoadBalancerSchemeEnum::Internal)),
            )
            .export("arn", Value::Str(arn.into()))
            .export(
                "dns_name",
                Value::Str(lb.dns_name().unwrap_or_default().into()),
            ),
    )
}

async fn create(
    aws: &AwsProvider,
    req: &CreateRequest<'_>,
) -> Result<ObservedResource, CloudError> {
    let want = Want::new(req.address, req.attrs);
    let name = elbv2_name(req.address, req.tags);
    let mut subnets = want.strs("subnets")?;
    subnets.sort();
    let mut groups = want.strs("security_groups")?;
    groups.sort();
    let spec = LoadBalancerSpec {
        name: &name,
        subnets: &subnets,
        security_groups: &groups,
        internal: want.bool("internal", false)?,
    };
    let created = aws.elbv2.create_load_balancer(&spec, req.tags).await?;
    let arn = created.load_balancer_arn().unwrap_or_default().to_string();
    let lb = wait_active(aws, req.address, &arn).await?;
    seen(&lb, req.tags.clone())
        .map(|s| s.at(req.address))
        .ok_or(CloudError::MissingField {
            service: "ELBv2",
            operation: "CreateLoadBalancer",
            field: "LoadBalancerArn",
        })
}

async fn wait_active(
    aws: &AwsProvider,
    address: &Address,
    arn: &str,
) -> Result<AwsLoadBalancer, CloudError> {
    wait::until(
        &format!("load balancer {address} to become active"),
        aws.waits.load_balancer,
        aws.waits.backoff,
        || async {
            let Some(lb) = aws.elbv2.load_balancer(arn).await? else {
                return Ok(Probe::Waiting("not visible yet".into()));
            };
            let state = lb.state();
            match state.and_then(|s| s.code()) {
                Some(LoadBalancerStateEnum::Active | LoadBalancerStateEnum::ActiveImpaired) => {
                    Ok(Probe::Done(lb))
                }
                Some(LoadBalancerStateEnum::Failed) => Err(CloudError::Failed {
                    what: format!("load balancer {address} ({arn})"),
                    state: "failed".into(),
                    reason: state
                        .and_then(|s| s.reason())
                        .unwrap_or("no reason given")
                        .to_string(),
                }),
                other => Ok(Probe::Waiting(
                    other.map_or("unknown", |c| c.as_str()).to_string(),
                )),
            }
        },
    )
    .await
}

async fn modify(
    aws: &AwsProvider,
    current: &ObservedResource,
    attrs: &Attrs,
) -> Result<(), CloudError> {
    let want = Want::new(&current.address, attrs);
    let mut subnets = want.strs("subnets")?;
    subnets.sort();
    if current.attrs.get("subnets") != Some(&Value::str_list(subnets.iter().map(String::as_str))) {
        aws.elbv2.set_subnets(&current.id, &subnets).await?;
    }
    let mut groups = want.strs("security_groups")?;
    groups.sort();
    if current.attrs.get("security_groups")
        != Some(&Value::str_list(groups.iter().map(String::as_str)))
    {
        aws.elbv2.set_security_groups(&current.id, &groups).await?;
    }
    Ok(())
}

async fn delete(aws: &AwsProvider, current: &ObservedResource) -> Result<(), CloudError> {
    let arn = current.id.as_str();
    gone_ok(aws.elbv2.delete_load_balancer(arn).await)?;
    wait::until(
        &format!("load balancer {} to be deleted", current.address),
        aws.waits.load_balancer,
        aws.waits.backoff,
        || async {
            Ok(match aws.elbv2.load_balancer(arn).await? {
                None => Probe::Done(()),
                Some(lb) => Probe::Waiting(
                    lb.state()
                        .and_then(|s| s.code())
                        .map_or("still listed", |c| c.as_str())
                        .to_string(),
                ),
            })
        },
    )
    .await
}
