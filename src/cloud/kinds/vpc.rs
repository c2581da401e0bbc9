//! The AWS half of [`crate::kinds::vpc`]: reading its objects back, creating,
//! updating and deleting them.

use crate::cloud::aws::{AwsProvider, Discovery};
use crate::cloud::ec2::{self, Ec2, Select};
use crate::cloud::kinds::common::{discovered, Seen};
use crate::cloud::provider::CreateRequest;
use crate::cloud::CloudError;
use crate::kinds::common::Want;
use crate::types::tags;
use crate::types::ResourceKind;
use crate::world::{Attrs, ObservedResource, Tags, Value};
use aws_sdk_ec2::types::Vpc as AwsVpc;

pub struct Vpc;

impl super::AwsKind for Vpc {
    aws_operations!(existing "ec2:vpc" => describe_vpcs.vpc_id);
}

async fn observe(aws: &AwsProvider, pass: &Discovery) -> Result<Vec<ObservedResource>, CloudError> {
    let vpcs = aws.ec2.describe_vpcs(Select::Env(pass.env())).await?;
    Ok(discovered(&vpcs, seen, ResourceKind::Vpc))
}

async fn update(
    aws: &AwsProvider,
    current: &ObservedResource,
    attrs: &Attrs,
    tags: &Tags,
) -> Result<ObservedResource, CloudError> {
    let id = current.id.as_str();
    modify(aws, current, attrs).await?;
    aws.retag_and_read_ec2(current, tags, || read(aws, id))
        .await
}

async fn delete(aws: &AwsProvider, current: &ObservedResource) -> Result<(), CloudError> {
    let id = current.id.as_str();
    aws.patiently(&format!("delete {id}"), || aws.ec2.delete_vpc(id))
        .await
}

fn seen(vpc: &AwsVpc) -> Option<Seen> {
    // `enable_dns_hostnames` is not in DescribeVpcs (one DescribeVpcAttribute
    // per VPC would be needed): not observed, the spec hash covers it.
    Some(Seen::with_id(vpc.vpc_id()?, ec2::tag_map(vpc.tags())).attr(
        "cidr_block",
        Value::Str(vpc.cidr_block().unwrap_or_default().into()),
    ))
}

async fn read(aws: &AwsProvider, id: &str) -> Result<Option<Seen>, CloudError> {
    let ids = [id.to_string()];
    Ok(aws
        .ec2
        .describe_vpcs(Select::Ids(&ids))
        .await?
        .first()
        .and_then(seen))
}

async fn create(
    aws: &AwsProvider,
    req: &CreateRequest<'_>,
) -> Result<ObservedResource, CloudError> {
    let want = Want::new(req.address, req.attrs);
    // The spec hash is tagged last: `enable_dns_hostnames` is not observed,
    // so a VPC whose create stopped before its attribute was set must not
    // claim the spec; without the tag, the next plan finishes it (update).
    let mut identity = req.tags.clone();
    let spec = identity.remove(tags::SPEC);
    let id = aws
        .ec2
        .create_vpc(want.str("cidr_block")?, &identity)
        .await?;
    // AWS's default is off; only a wanted `true` needs a call.
    if want.bool("enable_dns_hostnames", false)? {
        aws.settle(&format!("VPC {id}"), || {
            aws.ec2.set_vpc_dns_hostnames(&id, true)
        })
        .await?;
    }
    if let Some(spec) = spec {
        let ids = [id.clone()];
        let spec = Tags::from([(tags::SPEC.to_string(), spec)]);
        aws.settle(&format!("VPC {id}"), || aws.ec2.create_tags(&ids, &spec))
            .await?;
    }
    aws.read_back(req.address, &id, || read(aws, &id)).await
}

async fn modify(
    aws: &AwsProvider,
    current: &ObservedResource,
    attrs: &Attrs,
) -> Result<(), CloudError> {
    let want = Want::new(&current.address, attrs);
    if let Some(wanted) = attrs.get("enable_dns_hostnames") {
        let wanted = wanted
            .as_bool()
            .ok_or_else(|| want.bad("enable_dns_hostnames", "a boolean"))?;
        if aws.ec2.vpc_dns_hostnames(&current.id).await? != wanted {
            aws.ec2.set_vpc_dns_hostnames(&current.id, wanted).await?;
        }
    }
    Ok(())
}
