//! The EC2 adapter: what the engine asks of EC2, and its SDK implementation.
//!
//! Discovery is batched: one paginated, tag-filtered Describe per resource
//! kind, never one call per resource.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use aws_sdk_ec2::Client;

use super::{call_error, tags, CloudError};

/// A VPC as observed in the cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedVpc {
    pub id: String,
    pub cidr_block: String,
    pub tags: BTreeMap<String, String>,
}

/// What drctl needs from EC2. One implementation talks to the SDK; the
/// engine is written against this trait.
#[allow(async_fn_in_trait)] // used with generics inside this crate, never as dyn
pub trait Ec2 {
    /// Availability zones of the client's region (also a cheap liveness probe).
    async fn availability_zones(&self) -> Result<Vec<String>, CloudError>;

    /// Creates a VPC carrying `tags` from the first instant (TagSpecifications,
    /// so a crash between create and tag cannot leave it anonymous).
    async fn create_vpc(
        &self,
        cidr_block: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudError>;

    /// Every VPC tagged `drctl:env = env`.
    async fn vpcs_in_env(&self, env: &str) -> Result<Vec<ObservedVpc>, CloudError>;

    async fn delete_vpc(&self, id: &str) -> Result<(), CloudError>;
}

/// [`Ec2`] over the official SDK.
#[derive(Clone, Debug)]
pub struct SdkEc2 {
    client: Client,
}

impl SdkEc2 {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        SdkEc2 {
            client: Client::new(config),
        }
    }
}

fn env_filter(env: &str) -> Filter {
    Filter::builder()
        .name(format!("tag:{}", tags::ENV))
        .values(env)
        .build()
}

fn tag_specification(
    resource_type: ResourceType,
    tags: &BTreeMap<String, String>,
) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource_type)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .build()
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect()
}

impl Ec2 for SdkEc2 {
    async fn availability_zones(&self) -> Result<Vec<String>, CloudError> {
        let out = self
            .client
            .describe_availability_zones()
            .send()
            .await
            .map_err(|e| call_error("EC2", "DescribeAvailabilityZones", e))?;
        Ok(out
            .availability_zones()
            .iter()
            .filter_map(|z| z.zone_name().map(str::to_string))
            .collect())
    }

    async fn create_vpc(
        &self,
        cidr_block: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudError> {
        let out = self
            .client
            .create_vpc()
            .cidr_block(cidr_block)
            .tag_specifications(tag_specification(ResourceType::Vpc, tags))
            .send()
            .await
            .map_err(|e| call_error("EC2", "CreateVpc", e))?;
        out.vpc()
            .and_then(|v| v.vpc_id())
            .map(str::to_string)
            .ok_or(CloudError::MissingField {
                service: "EC2",
                operation: "CreateVpc",
                field: "VpcId",
            })
    }

    async fn vpcs_in_env(&self, env: &str) -> Result<Vec<ObservedVpc>, CloudError> {
        let mut pages = self
            .client
            .describe_vpcs()
            .filters(env_filter(env))
            .into_paginator()
            .items()
            .send();
        let mut vpcs = Vec::new();
        while let Some(vpc) = pages.next().await {
            let vpc = vpc.map_err(|e| call_error("EC2", "DescribeVpcs", e))?;
            let Some(id) = vpc.vpc_id() else { continue };
            vpcs.push(ObservedVpc {
                id: id.to_string(),
                cidr_block: vpc.cidr_block().unwrap_or_default().to_string(),
                tags: tag_map(vpc.tags()),
            });
        }
        Ok(vpcs)
    }

    async fn delete_vpc(&self, id: &str) -> Result<(), CloudError> {
        self.client
            .delete_vpc()
            .vpc_id(id)
            .send()
            .await
            .map_err(|e| call_error("EC2", "DeleteVpc", e))?;
        Ok(())
    }
}
