//! The AWS half of [`crate::kinds::subnet`]: reading its objects back, creating,
//! updating and deleting them.

use crate::cloud::aws::{AwsProvider, Discovery};
use crate::cloud::ec2::{self, Ec2, Select};
use crate::cloud::kinds::common::{discovered, Seen};
use crate::cloud::provider::CreateRequest;
use crate::cloud::CloudError;
use crate::kinds::common::Want;
use crate::types::ResourceKind;
use crate::world::{Attrs, ObservedResource, Tags, Value};
use aws_sdk_ec2::types::Subnet as AwsSubnet;

pub struct Subnet;

impl super::AwsKind for Subnet {
    aws_operations!(existing "ec2:subnet" => describe_subnets.subnet_id);
}

async fn observe(aws: &AwsProvider, pass: &Discovery) -> Result<Vec<ObservedResource>, CloudError> {
    let subnets = aws.ec2.describe_subnets(Select::Env(pass.env())).await?;
    Ok(discovered(&subnets, seen, ResourceKind::Subnet))
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
    aws.patiently(&format!("delete {id}"), || aws.ec2.delete_subnet(id))
        .await
}

fn seen(subnet: &AwsSubnet) -> Option<Seen> {
    let s = |v: Option<&str>| Value::Str(v.unwrap_or_default().to_string());
    Some(
        Seen::with_id(subnet.subnet_id()?, ec2::tag_map(subnet.tags()))
            .attr("vpc", s(subnet.vpc_id()))
            .attr("cidr_block", s(subnet.cidr_block()))
            .attr("availability_zone", s(subnet.availability_zone()))
            .attr(
                "map_public_ip",
                Value::Bool(subnet.map_public_ip_on_launch().unwrap_or(false)),
            ),
    )
}

async fn read(aws: &AwsProvider, id: &str) -> Result<Option<Seen>, CloudError> {
    let ids = [id.to_string()];
    Ok(aws
        .ec2
        .describe_subnets(Select::Ids(&ids))
        .await?
        .first()
        .and_then(seen))
}

async fn create(
    aws: &AwsProvider,
    req: &CreateRequest<'_>,
) -> Result<ObservedResource, CloudError> {
    let want = Want::new(req.address, req.attrs);
    let id = aws
        .ec2
        .create_subnet(
            want.str("vpc")?,
            want.str("cidr_block")?,
            want.str("availability_zone")?,
            req.tags,
        )
        .await?;
    if want.bool("map_public_ip", false)? {
        aws.settle(&format!("subnet {id}"), || {
            aws.ec2.set_subnet_map_public_ip(&id, true)
        })
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
    let wanted = want.bool("map_public_ip", false)?;
    if current.attrs.get("map_public_ip") != Some(&Value::Bool(wanted)) {
        aws.ec2
            .set_subnet_map_public_ip(&current.id, wanted)
            .await?;
    }
    Ok(())
}
