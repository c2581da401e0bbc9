//! The AWS half of [`crate::kinds::internet_gateway`]: reading its objects back, creating,
//! updating and deleting them.

use crate::cloud::aws::{AwsProvider, Discovery};
use crate::cloud::ec2::{self, Ec2, Select};
use crate::cloud::kinds::common::{discovered, Seen};
use crate::cloud::provider::CreateRequest;
use crate::cloud::CloudError;
use crate::kinds::common::Want;
use crate::types::ResourceKind;
use crate::world::{Attrs, ObservedResource, Tags, Value};
use aws_sdk_ec2::types::InternetGateway as AwsInternetGateway;

pub struct InternetGateway;

impl super::AwsKind for InternetGateway {
    aws_operations!(existing "ec2:internet_gateway" => describe_internet_gateways.internet_gateway_id);
}

async fn observe(aws: &AwsProvider, pass: &Discovery) -> Result<Vec<ObservedResource>, CloudError> {
    let igws = aws
        .ec2
        .describe_internet_gateways(Select::Env(pass.env()))
        .await?;
    Ok(discovered(&igws, seen, ResourceKind::InternetGateway))
}

async fn update(
    aws: &AwsProvider,
    current: &ObservedResource,
    attrs: &Attrs,
    tags: &Tags,
) -> Result<ObservedResource, CloudError> {
    let (address, id) = (&current.address, current.id.as_str());
    let wanted = Want::new(address, attrs).str("vpc")?;
    let attached = current
        .attrs
        .get("vpc")
        .and_then(Value::as_str)
        .unwrap_or("");
    if attached != wanted {
        if !attached.is_empty() {
            aws.patiently(&format!("detach {id} from {attached}"), || {
                aws.ec2.detach_internet_gateway(id, attached)
            })
            .await?;
        }
        aws.settle(&format!("internet gateway {id}"), || {
            aws.ec2.attach_internet_gateway(id, wanted)
        })
        .await?;
    }
    aws.retag_and_read_ec2(current, tags, || async {
        Ok(read(aws, id).await?.as_ref().and_then(seen))
    })
    .await
}

fn seen(igw: &AwsInternetGateway) -> Option<Seen> {
    // Unattached (e.g. a create interrupted between create and attach):
    // `vpc` reads "", a difference the next plan finishes by attaching.
    let vpc = igw
        .attachments()
        .iter()
        .find_map(|a| a.vpc_id())
        .unwrap_or_default();
    Some(
        Seen::with_id(igw.internet_gateway_id()?, ec2::tag_map(igw.tags()))
            .attr("vpc", Value::Str(vpc.to_string())),
    )
}

async fn read(aws: &AwsProvider, id: &str) -> Result<Option<AwsInternetGateway>, CloudError> {
    let ids = [id.to_string()];
    Ok(aws
        .ec2
        .describe_internet_gateways(Select::Ids(&ids))
        .await?
        .into_iter()
        .next())
}

async fn create(
    aws: &AwsProvider,
    req: &CreateRequest<'_>,
) -> Result<ObservedResource, CloudError> {
    let want = Want::new(req.address, req.attrs);
    let vpc = want.str("vpc")?;
    let id = aws.ec2.create_internet_gateway(req.tags).await?;
    let attached = aws
        .settle(&format!("internet gateway {id}"), || {
            aws.ec2.attach_internet_gateway(&id, vpc)
        })
        .await;
    if let Err(e) = attached {
        // Do not leave a detached gateway behind; if this cleanup fails
        // too, discovery finds it (tagged) without a `vpc`.
        if let Err(cleanup) = aws.ec2.delete_internet_gateway(&id).await {
            tracing::warn!(%id, error = %cleanup, "could not delete the unattached internet gateway");
        }
        return Err(e);
    }
    aws.read_back(req.address, &id, || async {
        Ok(read(aws, &id).await?.as_ref().and_then(seen))
    })
    .await
}

async fn delete(aws: &AwsProvider, current: &ObservedResource) -> Result<(), CloudError> {
    let id = current.id.as_str();
    let Some(igw) = read(aws, id).await? else {
        return Ok(());
    };
    for vpc in igw.attachments().iter().filter_map(|a| a.vpc_id()) {
        // Fails while instances in the VPC hold public addresses.
        aws.patiently(&format!("detach {id} from {vpc}"), || {
            aws.ec2.detach_internet_gateway(id, vpc)
        })
        .await?;
    }
    aws.patiently(&format!("delete {id}"), || {
        aws.ec2.delete_internet_gateway(id)
    })
    .await
}
