//! [`SdkEc2`]: the [`Ec2`] trait over the official SDK's client. Each method
//! is one request (or one per batch of ids or filter values), sent through
//! [`EC2`]`.call`, which names the operation in any error.

use std::collections::BTreeMap;
use std::fmt::Debug;

use aws_sdk_ec2::types::{
    AttributeBooleanValue, Image, Instance, InstanceType, InternetGateway, ResourceType,
    RouteTable, SecurityGroup, ShutdownBehavior, Subnet, Tag, Vpc, VpcAttributeName,
};
use aws_sdk_ec2::Client;

use super::each_filter_set;
use super::wire::{
    filter, filter_sets, live_instances, sdk_tags, tag_map, tag_specification, IDS_PER_CALL,
};
use super::{ip_permissions, Ec2, Launch, ObservedVpc, Select, SgRule};
use crate::cloud::sdk::{AttemptRecorder, EC2};
use crate::cloud::CloudError;

/// [`Ec2`] over the official SDK.
#[derive(Clone, Debug)]
pub struct SdkEc2 {
    pub(super) client: Client,
}

impl SdkEc2 {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        let config = aws_sdk_ec2::config::Builder::from(config)
            .interceptor(AttemptRecorder)
            .build();
        SdkEc2 {
            client: Client::from_conf(config),
        }
    }

    /// Over a client built elsewhere (e.g. with interceptors).
    pub fn from_client(client: Client) -> Self {
        SdkEc2 { client }
    }
}

fn bool_value(value: bool) -> AttributeBooleanValue {
    AttributeBooleanValue::builder().value(value).build()
}

impl Ec2 for SdkEc2 {
    async fn availability_zones(&self) -> Result<Vec<String>, CloudError> {
        let out = EC2
            .call(self.client.describe_availability_zones().send())
            .await?;
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
        let request = self
            .client
            .create_vpc()
            .cidr_block(cidr_block)
            .tag_specifications(tag_specification(ResourceType::Vpc, tags));
        let out = EC2.call(request.send()).await?;
        EC2.required(out, "VpcId", |o| o.vpc?.vpc_id)
    }

    async fn vpcs_in_env(&self, env: &str) -> Result<Vec<ObservedVpc>, CloudError> {
        Ok(self
            .describe_vpcs(Select::Env(env))
            .await?
            .iter()
            .filter_map(|vpc| {
                Some(ObservedVpc {
                    id: vpc.vpc_id()?.to_string(),
                    cidr_block: vpc.cidr_block().unwrap_or_default().to_string(),
                    tags: tag_map(vpc.tags()),
                })
            })
            .collect())
    }

    async fn delete_vpc(&self, id: &str) -> Result<(), CloudError> {
        EC2.call(self.client.delete_vpc().vpc_id(id).send()).await?;
        Ok(())
    }

    async fn describe_vpcs(&self, select: Select<'_>) -> Result<Vec<Vpc>, CloudError> {
        describe_by_filters!(filter_sets(select, "vpc-id"), self.client.describe_vpcs()).await
    }

    async fn vpc_dns_hostnames(&self, vpc: &str) -> Result<bool, CloudError> {
        let request = self
            .client
            .describe_vpc_attribute()
            .vpc_id(vpc)
            .attribute(VpcAttributeName::EnableDnsHostnames);
        let out = EC2.call(request.send()).await?;
        Ok(out
            .enable_dns_hostnames()
            .and_then(|a| a.value())
            .unwrap_or(false))
    }

    async fn set_vpc_dns_hostnames(&self, vpc: &str, enabled: bool) -> Result<(), CloudError> {
        let request = self
            .client
            .modify_vpc_attribute()
            .vpc_id(vpc)
            .enable_dns_hostnames(bool_value(enabled));
        EC2.call(request.send()).await?;
        Ok(())
    }

    async fn describe_subnets(&self, select: Select<'_>) -> Result<Vec<Subnet>, CloudError> {
        describe_by_filters!(
            filter_sets(select, "subnet-id"),
            self.client.describe_subnets()
        )
        .await
    }

    async fn create_subnet(
        &self,
        vpc: &str,
        cidr_block: &str,
        availability_zone: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudError> {
        let request = self
            .client
            .create_subnet()
            .vpc_id(vpc)
            .cidr_block(cidr_block)
            .availability_zone(availability_zone)
            .tag_specifications(tag_specification(ResourceType::Subnet, tags));
        let out = EC2.call(request.send()).await?;
        EC2.required(out, "SubnetId", |o| o.subnet?.subnet_id)
    }

    async fn set_subnet_map_public_ip(
        &self,
        subnet: &str,
        enabled: bool,
    ) -> Result<(), CloudError> {
        let request = self
            .client
            .modify_subnet_attribute()
            .subnet_id(subnet)
            .map_public_ip_on_launch(bool_value(enabled));
        EC2.call(request.send()).await?;
        Ok(())
    }

    async fn delete_subnet(&self, id: &str) -> Result<(), CloudError> {
        EC2.call(self.client.delete_subnet().subnet_id(id).send())
            .await?;
        Ok(())
    }

    async fn describe_internet_gateways(
        &self,
        select: Select<'_>,
    ) -> Result<Vec<InternetGateway>, CloudError> {
        describe_by_filters!(
            filter_sets(select, "internet-gateway-id"),
            self.client.describe_internet_gateways()
        )
        .await
    }

    async fn create_internet_gateway(
        &self,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudError> {
        let request = self
            .client
            .create_internet_gateway()
            .tag_specifications(tag_specification(ResourceType::InternetGateway, tags));
        let out = EC2.call(request.send()).await?;
        EC2.required(out, "InternetGatewayId", |o| {
            o.internet_gateway?.internet_gateway_id
        })
    }

    async fn attach_internet_gateway(&self, igw: &str, vpc: &str) -> Result<(), CloudError> {
        let request = self
            .client
            .attach_internet_gateway()
            .internet_gateway_id(igw)
            .vpc_id(vpc);
        EC2.call(request.send()).await?;
        Ok(())
    }

    async fn detach_internet_gateway(&self, igw: &str, vpc: &str) -> Result<(), CloudError> {
        let request = self
            .client
            .detach_internet_gateway()
            .internet_gateway_id(igw)
            .vpc_id(vpc);
        EC2.call(request.send()).await?;
        Ok(())
    }

    async fn delete_internet_gateway(&self, id: &str) -> Result<(), CloudError> {
        let request = self
            .client
            .delete_internet_gateway()
            .internet_gateway_id(id);
        EC2.call(request.send()).await?;
        Ok(())
    }

    async fn describe_route_tables(
        &self,
        select: Select<'_>,
    ) -> Result<Vec<RouteTable>, CloudError> {
        describe_by_filters!(
            filter_sets(select, "route-table-id"),
            self.client.describe_route_tables()
        )
        .await
    }

    async fn route_tables_of_subnet(&self, subnet: &str) -> Result<Vec<RouteTable>, CloudError> {
        let sets = vec![vec![filter("association.subnet-id", &[subnet.to_string()])]];
        describe_by_filters!(sets, self.client.describe_route_tables()).await
    }

    async fn create_route_table(
        &self,
        vpc: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudError> {
        let request = self
            .client
            .create_route_table()
            .vpc_id(vpc)
            .tag_specifications(tag_specification(ResourceType::RouteTable, tags));
        let out = EC2.call(request.send()).await?;
        EC2.required(out, "RouteTableId", |o| o.route_table?.route_table_id)
    }

    async fn create_route(
        &self,
        route_table: &str,
        destination: &str,
        gateway: &str,
    ) -> Result<(), CloudError> {
        let request = self
            .client
            .create_route()
            .route_table_id(route_table)
            .destination_cidr_block(destination)
            .gateway_id(gateway);
        EC2.call(request.send()).await?;
        Ok(())
    }

    async fn replace_route(
        &self,
        route_table: &str,
        destination: &str,
        gateway: &str,
    ) -> Result<(), CloudError> {
        let request = self
            .client
            .replace_route()
            .route_table_id(route_table)
            .destination_cidr_block(destination)
            .gateway_id(gateway);
        EC2.call(request.send()).await?;
        Ok(())
    }

    async fn delete_route(&self, route_table: &str, destination: &str) -> Result<(), CloudError> {
        let request = self
            .client
            .delete_route()
            .route_table_id(route_table)
            .destination_cidr_block(destination);
        EC2.call(request.send()).await?;
        Ok(())
    }

    async fn associate_route_table(
        &self,
        route_table: &str,
        subnet: &str,
    ) -> Result<String, CloudError> {
        let request = self
            .client
            .associate_route_table()
            .route_table_id(route_table)
            .subnet_id(subnet);
        let out = EC2.call(request.send()).await?;
        EC2.required(out, "AssociationId", |o| o.association_id)
    }

    async fn replace_route_table_association(
        &self,
        association: &str,
        route_table: &str,
    ) -> Result<(), CloudError> {
        let request = self
            .client
            .replace_route_table_association()
            .association_id(association)
            .route_table_id(route_table);
        EC2.call(request.send()).await?;
        Ok(())
    }

    async fn disassociate_route_table(&self, association: &str) -> Result<(), CloudError> {
        let request = self
            .client
            .disassociate_route_table()
            .association_id(association);
        EC2.call(request.send()).await?;
        Ok(())
    }

    async fn delete_route_table(&self, id: &str) -> Result<(), CloudError> {
        let request = self.client.delete_route_table().route_table_id(id);
        EC2.call(request.send()).await?;
        Ok(())
    }

    async fn describe_security_groups(
        &self,
        select: Select<'_>,
    ) -> Result<Vec<SecurityGroup>, CloudError> {
        describe_by_filters!(
            filter_sets(select, "group-id"),
            self.client.describe_security_groups()
        )
        .await
    }

    async fn security_group_by_name(
        &self,
        vpc: &str,
        name: &str,
    ) -> Result<Option<SecurityGroup>, CloudError> {
        let request = self
            .client
            .describe_security_groups()
            .filters(filter("vpc-id", &[vpc.to_string()]))
            .filters(filter("group-name", &[name.to_string()]));
        let out = EC2.call(request.send()).await?;
        Ok(out.security_groups.unwrap_or_default().into_iter().next())
    }

    async fn create_security_group(
        &self,
        name: &str,
        description: &str,
        vpc: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudError> {
        let request = self
            .client
            .create_security_group()
            .group_name(name)
            .description(description)
            .vpc_id(vpc)
            .tag_specifications(tag_specification(ResourceType::SecurityGroup, tags));
        let out = EC2.call(request.send()).await?;
        EC2.required(out, "GroupId", |o| o.group_id)
    }

    async fn authorize(
        &self,
        group: &str,
        egress: bool,
        rules: &[SgRule],
    ) -> Result<(), CloudError> {
        if rules.is_empty() {
            return Ok(());
        }
        let perms = Some(ip_permissions(rules));
        if egress {
            let request = self.client.authorize_security_group_egress();
            EC2.call(request.group_id(group).set_ip_permissions(perms).send())
                .await?;
        } else {
            let request = self.client.authorize_security_group_ingress();
            EC2.call(request.group_id(group).set_ip_permissions(perms).send())
                .await?;
        }
        Ok(())
    }

    async fn revoke(&self, group: &str, egress: bool, rules: &[SgRule]) -> Result<(), CloudError> {
        if rules.is_empty() {
            return Ok(());
        }
        let perms = Some(ip_permissions(rules));
        if egress {
            let request = self.client.revoke_security_group_egress();
            EC2.call(request.group_id(group).set_ip_permissions(perms).send())
                .await?;
        } else {
            let request = self.client.revoke_security_group_ingress();
            EC2.call(request.group_id(group).set_ip_permissions(perms).send())
                .await?;
        }
        Ok(())
    }

    async fn delete_security_group(&self, id: &str) -> Result<(), CloudError> {
        EC2.call(self.client.delete_security_group().group_id(id).send())
            .await?;
        Ok(())
    }

    async fn describe_instances(&self, select: Select<'_>) -> Result<Vec<Instance>, CloudError> {
        let mut sets = filter_sets(select, "instance-id");
        if !matches!(select, Select::Ids(_)) {
            sets.iter_mut()
                .for_each(|filters| filters.push(live_instances()));
        }
        let reservations = describe_by_filters!(sets, self.client.describe_instances()).await?;
        Ok(reservations
            .into_iter()
            .flat_map(|r| r.instances.unwrap_or_default())
            .collect())
    }

    async fn run_instances(&self, launch: &Launch<'_>) -> Result<Vec<String>, CloudError> {
        let mut request = self
            .client
            .run_instances()
            .image_id(launch.image)
            .instance_type(InstanceType::from(launch.instance_type))
            .subnet_id(launch.subnet)
            .min_count(launch.count)
            .max_count(launch.count)
            .client_token(launch.client_token)
            .tag_specifications(tag_specification(ResourceType::Instance, launch.tags));
        if !launch.security_groups.is_empty() {
            request = request.set_security_group_ids(Some(launch.security_groups.to_vec()));
        }
        if launch.stop_on_shutdown {
            request = request.instance_initiated_shutdown_behavior(ShutdownBehavior::Stop);
        }
        if !launch.user_data.is_empty() {
            request = request.user_data(aws_smithy_types::base64::encode(launch.user_data));
        }
        let out = EC2.call(request.send()).await?;
        EC2.required(out, "Instances", |o| {
            let ids: Vec<String> = o
                .instances?
                .into_iter()
                .filter_map(|i| i.instance_id)
                .collect();
            (!ids.is_empty()).then_some(ids)
        })
    }

    async fn terminate_instances(&self, ids: &[String]) -> Result<(), CloudError> {
        for chunk in ids.chunks(IDS_PER_CALL) {
            let request = self.client.terminate_instances();
            EC2.call(request.set_instance_ids(Some(chunk.to_vec())).send())
                .await?;
        }
        Ok(())
    }

    async fn describe_images(
        &self,
        owners: &[String],
        name_pattern: &str,
    ) -> Result<Vec<Image>, CloudError> {
        let mut request = self
            .client
            .describe_images()
            .filters(filter("name", &[name_pattern.to_string()]));
        if !owners.is_empty() {
            request = request.set_owners(Some(owners.to_vec()));
        }
        EC2.call(request.into_paginator().items().send().try_collect())
            .await
    }

    async fn images_tagged(
        &self,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<Image>, CloudError> {
        // Without an owner, DescribeImages scans every public image.
        describe_by_filters!(
            filter_sets(Select::Tagged(tags), "image-id"),
            self.client.describe_images().owners("self")
        )
        .await
    }

    async fn create_tags(
        &self,
        ids: &[String],
        tags: &BTreeMap<String, String>,
    ) -> Result<(), CloudError> {
        if tags.is_empty() {
            return Ok(());
        }
        for chunk in ids.chunks(IDS_PER_CALL) {
            let request = self
                .client
                .create_tags()
                .set_resources(Some(chunk.to_vec()))
                .set_tags(Some(sdk_tags(tags)));
            EC2.call(request.send()).await?;
        }
        Ok(())
    }

    async fn delete_tags(&self, ids: &[String], keys: &[String]) -> Result<(), CloudError> {
        if keys.is_empty() {
            return Ok(());
        }
        let keys: Vec<Tag> = keys.iter().map(|k| Tag::builder().key(k).build()).collect();
        for chunk in ids.chunks(IDS_PER_CALL) {
            let request = self
                .client
                .delete_tags()
                .set_resources(Some(chunk.to_vec()))
                .set_tags(Some(keys.clone()));
            EC2.call(request.send()).await?;
        }
        Ok(())
    }

    async fn tagged_resources(
        &self,
        key: &str,
        value: &str,
    ) -> Result<Vec<(String, String)>, CloudError> {
        let request = self
            .client
            .describe_tags()
            .filters(filter("key", &[key.to_string()]))
            .filters(filter("value", &[value.to_string()]));
        let found: Vec<_> = EC2
            .call(request.into_paginator().items().send().try_collect())
            .await?;
        Ok(found
            .into_iter()
            .filter_map(|t| {
                let kind = t.resource_type.map(|r| r.as_str().to_string());
                Some((t.resource_id?, kind.unwrap_or_default()))
            })
            .collect())
    }
}
