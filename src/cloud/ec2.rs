//! The EC2 adapter: what the engine asks of EC2, and its SDK implementation.
//!
//! Discovery is batched: one paginated, tag-filtered Describe per resource
//! kind, never one call per resource. Reads return the SDK's own types (the
//! provider normalises them); writes take plain values. Lookups by id use
//! filters rather than id parameters, so an id that is gone (or not yet
//! visible: EC2 is eventually consistent) reads as "nothing" instead of an
//! error.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{
    AttributeBooleanValue, Filter, Instance, InstanceType, InternetGateway, IpPermission, IpRange,
    Ipv6Range, ResourceType, RouteTable, SecurityGroup, Subnet, Tag, TagSpecification,
    UserIdGroupPair, Vpc, VpcAttributeName,
};
use aws_sdk_ec2::Client;

use super::{call_error, tags, CloudError};

/// A VPC as observed in the cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedVpc {
    pub id: String,
    pub cidr_block: String,
    pub tags: BTreeMap<String, String>,
}

/// Which resources a Describe call returns.
#[derive(Debug, Clone, Copy)]
pub enum Select<'a> {
    /// Everything tagged `drctl:env = env`.
    Env(&'a str),
    /// Everything carrying all these tags (e.g. env, stack and resource).
    /// An empty map selects nothing, never everything.
    Tagged(&'a BTreeMap<String, String>),
    /// These ids. Ids that do not exist (any more, or yet) are simply absent.
    Ids(&'a [String]),
}

/// One security-group rule: one protocol, one port range, one source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SgRule {
    /// `tcp`, `udp`, `icmp` or `-1` (all traffic).
    pub protocol: String,
    /// -1 with protocol `-1` (and for "any" ICMP type).
    pub from_port: i32,
    pub to_port: i32,
    pub source: RuleSource,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuleSource {
    /// IPv4 or IPv6 CIDR block.
    Cidr(String),
    /// Another security group, by id.
    Group(String),
}

/// Everything RunInstances needs for one subnet.
#[derive(Debug, Clone)]
pub struct Launch<'a> {
    pub image: &'a str,
    pub instance_type: &'a str,
    pub subnet: &'a str,
    pub security_groups: &'a [String],
    /// Plain text; base64-encoded on the wire. Empty means none.
    pub user_data: &'a str,
    pub count: i32,
    pub client_token: &'a str,
    pub tags: &'a BTreeMap<String, String>,
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

    // --- VPCs -------------------------------------------------------------

    async fn describe_vpcs(&self, select: Select<'_>) -> Result<Vec<Vpc>, CloudError>;
    /// DescribeVpcs does not report DNS attributes: one call per VPC.
    async fn vpc_dns_hostnames(&self, vpc: &str) -> Result<bool, CloudError>;
    async fn set_vpc_dns_hostnames(&self, vpc: &str, enabled: bool) -> Result<(), CloudError>;

    // --- Subnets ----------------------------------------------------------

    async fn describe_subnets(&self, select: Select<'_>) -> Result<Vec<Subnet>, CloudError>;
    async fn create_subnet(
        &self,
        vpc: &str,
        cidr_block: &str,
        availability_zone: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudError>;
    async fn set_subnet_map_public_ip(&self, subnet: &str, enabled: bool)
        -> Result<(), CloudError>;
    async fn delete_subnet(&self, id: &str) -> Result<(), CloudError>;

    // --- Internet gateways ------------------------------------------------

    async fn describe_internet_gateways(
        &self,
        select: Select<'_>,
    ) -> Result<Vec<InternetGateway>, CloudError>;
    async fn create_internet_gateway(
        &self,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudError>;
    async fn attach_internet_gateway(&self, igw: &str, vpc: &str) -> Result<(), CloudError>;
    async fn detach_internet_gateway(&self, igw: &str, vpc: &str) -> Result<(), CloudError>;
    async fn delete_internet_gateway(&self, id: &str) -> Result<(), CloudError>;

    // --- Route tables -----------------------------------------------------

    async fn describe_route_tables(
        &self,
        select: Select<'_>,
    ) -> Result<Vec<RouteTable>, CloudError>;
    /// The route tables explicitly associated with `subnet`.
    async fn route_tables_of_subnet(&self, subnet: &str) -> Result<Vec<RouteTable>, CloudError>;
    async fn create_route_table(
        &self,
        vpc: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudError>;
    async fn create_route(
        &self,
        route_table: &str,
        destination: &str,
        gateway: &str,
    ) -> Result<(), CloudError>;
    async fn replace_route(
        &self,
        route_table: &str,
        destination: &str,
        gateway: &str,
    ) -> Result<(), CloudError>;
    async fn delete_route(&self, route_table: &str, destination: &str) -> Result<(), CloudError>;
    /// Returns the association id.
    async fn associate_route_table(
        &self,
        route_table: &str,
        subnet: &str,
    ) -> Result<String, CloudError>;
    async fn replace_route_table_association(
        &self,
        association: &str,
        route_table: &str,
    ) -> Result<(), CloudError>;
    async fn disassociate_route_table(&self, association: &str) -> Result<(), CloudError>;
    async fn delete_route_table(&self, id: &str) -> Result<(), CloudError>;

    // --- Security groups --------------------------------------------------

    async fn describe_security_groups(
        &self,
        select: Select<'_>,
    ) -> Result<Vec<SecurityGroup>, CloudError>;
    async fn security_group_by_name(
        &self,
        vpc: &str,
        name: &str,
    ) -> Result<Option<SecurityGroup>, CloudError>;
    async fn create_security_group(
        &self,
        name: &str,
        description: &str,
        vpc: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudError>;
    /// `egress` false: ingress rules. One call for all `rules`.
    async fn authorize(
        &self,
        group: &str,
        egress: bool,
        rules: &[SgRule],
    ) -> Result<(), CloudError>;
    async fn revoke(&self, group: &str, egress: bool, rules: &[SgRule]) -> Result<(), CloudError>;
    async fn delete_security_group(&self, id: &str) -> Result<(), CloudError>;

    // --- Instances --------------------------------------------------------

    /// With [`Select::Env`] or [`Select::Tagged`]: instances that are
    /// pending, running, stopping or stopped (never shutting-down or
    /// terminated). With [`Select::Ids`]: those instances in any state.
    async fn describe_instances(&self, select: Select<'_>) -> Result<Vec<Instance>, CloudError>;
    /// Returns the new instances' ids.
    async fn run_instances(&self, launch: &Launch<'_>) -> Result<Vec<String>, CloudError>;
    async fn terminate_instances(&self, ids: &[String]) -> Result<(), CloudError>;

    // --- Tags -------------------------------------------------------------

    /// Adds or overwrites `tags` on every resource in `ids`.
    async fn create_tags(
        &self,
        ids: &[String],
        tags: &BTreeMap<String, String>,
    ) -> Result<(), CloudError>;
    async fn delete_tags(&self, ids: &[String], keys: &[String]) -> Result<(), CloudError>;
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

    /// Over a client built elsewhere (e.g. with interceptors).
    pub fn from_client(client: Client) -> Self {
        SdkEc2 { client }
    }
}

/// EC2 accepts at most 200 values per filter; ids are looked up in batches.
const FILTER_VALUES: usize = 200;
/// CreateTags/DeleteTags/TerminateInstances take many resource ids per call.
const IDS_PER_CALL: usize = 500;

fn env_filter(env: &str) -> Filter {
    Filter::builder()
        .name(format!("tag:{}", tags::ENV))
        .values(env)
        .build()
}

fn filter(name: &str, values: &[String]) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.to_vec()))
        .build()
}

/// The filters for `select`, batched: one filter set per Describe call.
/// `id_filter` names the kind's id filter (`vpc-id`, `subnet-id`, …).
fn filter_sets(select: Select<'_>, id_filter: &str) -> Vec<Vec<Filter>> {
    match select {
        Select::Env(env) => vec![vec![env_filter(env)]],
        // No tags would select everything: select nothing instead.
        Select::Tagged(tags) if tags.is_empty() => Vec::new(),
        Select::Tagged(tags) => vec![tags
            .iter()
            .map(|(k, v)| filter(&format!("tag:{k}"), std::slice::from_ref(v)))
            .collect()],
        Select::Ids(ids) => ids
            .chunks(FILTER_VALUES)
            .map(|chunk| vec![filter(id_filter, chunk)])
            .collect(),
    }
}

fn tag_specification(
    resource_type: ResourceType,
    tags: &BTreeMap<String, String>,
) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource_type)
        .set_tags(Some(sdk_tags(tags)))
        .build()
}

fn sdk_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// An EC2 tag list as a map.
pub fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect()
}

fn missing(operation: &'static str, field: &'static str) -> CloudError {
    CloudError::MissingField {
        service: "EC2",
        operation,
        field,
    }
}

fn bool_value(value: bool) -> AttributeBooleanValue {
    AttributeBooleanValue::builder().value(value).build()
}

/// The wire form of `rules`: one IpPermission per rule. Protocol `-1`
/// carries no ports (that is how AWS stores it, and revoking must match).
pub fn ip_permissions(rules: &[SgRule]) -> Vec<IpPermission> {
    rules
        .iter()
        .map(|rule| {
            let mut perm = IpPermission::builder().ip_protocol(&rule.protocol);
            if rule.protocol != "-1" {
                perm = perm.from_port(rule.from_port).to_port(rule.to_port);
            }
            perm = match &rule.source {
                RuleSource::Cidr(cidr) if cidr.contains(':') => {
                    perm.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(cidr).build())
                }
                RuleSource::Cidr(cidr) => perm.ip_ranges(IpRange::builder().cidr_ip(cidr).build()),
                RuleSource::Group(group) => {
                    perm.user_id_group_pairs(UserIdGroupPair::builder().group_id(group).build())
                }
            };
            perm.build()
        })
        .collect()
}

/// Splits AWS's IpPermissions (several ranges and groups each) into one
/// [`SgRule`] per source, with protocols and ports normalised. Prefix-list
/// sources have no place in drctl's model and are left out.
pub fn sg_rules(perms: &[IpPermission]) -> Vec<SgRule> {
    let mut rules = Vec::new();
    for perm in perms {
        let protocol = match perm.ip_protocol().unwrap_or("-1") {
            "6" => "tcp",
            "17" => "udp",
            "1" => "icmp",
            other => other,
        }
        .to_string();
        let (from_port, to_port) = if protocol == "-1" {
            (-1, -1)
        } else {
            (perm.from_port().unwrap_or(-1), perm.to_port().unwrap_or(-1))
        };
        let sources = perm
            .ip_ranges()
            .iter()
            .filter_map(|r| r.cidr_ip().map(|c| RuleSource::Cidr(c.to_string())))
            .chain(
                perm.ipv6_ranges()
                    .iter()
                    .filter_map(|r| r.cidr_ipv6().map(|c| RuleSource::Cidr(c.to_string()))),
            )
            .chain(
                perm.user_id_group_pairs()
                    .iter()
                    .filter_map(|p| p.group_id().map(|g| RuleSource::Group(g.to_string()))),
            );
        for source in sources {
            rules.push(SgRule {
                protocol: protocol.clone(),
                from_port,
                to_port,
                source,
            });
        }
    }
    rules.sort();
    rules.dedup();
    rules
}

impl SdkEc2 {
    async fn all_vpcs(&self, filters: Vec<Filter>) -> Result<Vec<Vpc>, CloudError> {
        let mut pages = self
            .client
            .describe_vpcs()
            .set_filters(Some(filters))
            .into_paginator()
            .items()
            .send();
        let mut out = Vec::new();
        while let Some(item) = pages.next().await {
            out.push(item.map_err(|e| call_error("EC2", "DescribeVpcs", e))?);
        }
        Ok(out)
    }
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
            .ok_or(missing("CreateVpc", "VpcId"))
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
        self.client
            .delete_vpc()
            .vpc_id(id)
            .send()
            .await
            .map_err(|e| call_error("EC2", "DeleteVpc", e))?;
        Ok(())
    }

    async fn describe_vpcs(&self, select: Select<'_>) -> Result<Vec<Vpc>, CloudError> {
        let mut out = Vec::new();
        for filters in filter_sets(select, "vpc-id") {
            out.extend(self.all_vpcs(filters).await?);
        }
        Ok(out)
    }

    async fn vpc_dns_hostnames(&self, vpc: &str) -> Result<bool, CloudError> {
        let out = self
            .client
            .describe_vpc_attribute()
            .vpc_id(vpc)
            .attribute(VpcAttributeName::EnableDnsHostnames)
            .send()
            .await
            .map_err(|e| call_error("EC2", "DescribeVpcAttribute", e))?;
        Ok(out
            .enable_dns_hostnames()
            .and_then(|a| a.value())
            .unwrap_or(false))
    }

    async fn set_vpc_dns_hostnames(&self, vpc: &str, enabled: bool) -> Result<(), CloudError> {
        self.client
            .modify_vpc_attribute()
            .vpc_id(vpc)
            .enable_dns_hostnames(bool_value(enabled))
            .send()
            .await
            .map_err(|e| call_error("EC2", "ModifyVpcAttribute", e))?;
        Ok(())
    }

    async fn describe_subnets(&self, select: Select<'_>) -> Result<Vec<Subnet>, CloudError> {
        let mut out = Vec::new();
        for filters in filter_sets(select, "subnet-id") {
            let mut pages = self
                .client
                .describe_subnets()
                .set_filters(Some(filters))
                .into_paginator()
                .items()
                .send();
            while let Some(item) = pages.next().await {
                out.push(item.map_err(|e| call_error("EC2", "DescribeSubnets", e))?);
            }
        }
        Ok(out)
    }

    async fn create_subnet(
        &self,
        vpc: &str,
        cidr_block: &str,
        availability_zone: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudError> {
        let out = self
            .client
            .create_subnet()
            .vpc_id(vpc)
            .cidr_block(cidr_block)
            .availability_zone(availability_zone)
            .tag_specifications(tag_specification(ResourceType::Subnet, tags))
            .send()
            .await
            .map_err(|e| call_error("EC2", "CreateSubnet", e))?;
        out.subnet()
            .and_then(|s| s.subnet_id())
            .map(str::to_string)
            .ok_or(missing("CreateSubnet", "SubnetId"))
    }

    async fn set_subnet_map_public_ip(
        &self,
        subnet: &str,
        enabled: bool,
    ) -> Result<(), CloudError> {
        self.client
            .modify_subnet_attribute()
            .subnet_id(subnet)
            .map_public_ip_on_launch(bool_value(enabled))
            .send()
            .await
            .map_err(|e| call_error("EC2", "ModifySubnetAttribute", e))?;
        Ok(())
    }

    async fn delete_subnet(&self, id: &str) -> Result<(), CloudError> {
        self.client
            .delete_subnet()
            .subnet_id(id)
            .send()
            .await
            .map_err(|e| call_error("EC2", "DeleteSubnet", e))?;
        Ok(())
    }

    async fn describe_internet_gateways(
        &self,
        select: Select<'_>,
    ) -> Result<Vec<InternetGateway>, CloudError> {
        let mut out = Vec::new();
        for filters in filter_sets(select, "internet-gateway-id") {
            let mut pages = self
                .client
                .describe_internet_gateways()
                .set_filters(Some(filters))
                .into_paginator()
                .items()
                .send();
            while let Some(item) = pages.next().await {
                out.push(item.map_err(|e| call_error("EC2", "DescribeInternetGateways", e))?);
            }
        }
        Ok(out)
    }

    async fn create_internet_gateway(
        &self,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudError> {
        let out = self
            .client
            .create_internet_gateway()
            .tag_specifications(tag_specification(ResourceType::InternetGateway, tags))
            .send()
            .await
            .map_err(|e| call_error("EC2", "CreateInternetGateway", e))?;
        out.internet_gateway()
            .and_then(|g| g.internet_gateway_id())
            .map(str::to_string)
            .ok_or(missing("CreateInternetGateway", "InternetGatewayId"))
    }

    async fn attach_internet_gateway(&self, igw: &str, vpc: &str) -> Result<(), CloudError> {
        self.client
            .attach_internet_gateway()
            .internet_gateway_id(igw)
            .vpc_id(vpc)
            .send()
            .await
            .map_err(|e| call_error("EC2", "AttachInternetGateway", e))?;
        Ok(())
    }

    async fn detach_internet_gateway(&self, igw: &str, vpc: &str) -> Result<(), CloudError> {
        self.client
            .detach_internet_gateway()
            .internet_gateway_id(igw)
            .vpc_id(vpc)
            .send()
            .await
            .map_err(|e| call_error("EC2", "DetachInternetGateway", e))?;
        Ok(())
    }

    async fn delete_internet_gateway(&self, id: &str) -> Result<(), CloudError> {
        self.client
            .delete_internet_gateway()
            .internet_gateway_id(id)
            .send()
            .await
            .map_err(|e| call_error("EC2", "DeleteInternetGateway", e))?;
        Ok(())
    }

    async fn describe_route_tables(
        &self,
        select: Select<'_>,
    ) -> Result<Vec<RouteTable>, CloudError> {
        let mut out = Vec::new();
        for filters in filter_sets(select, "route-table-id") {
            let mut pages = self
                .client
                .describe_route_tables()
                .set_filters(Some(filters))
                .into_paginator()
                .items()
                .send();
            while let Some(item) = pages.next().await {
                out.push(item.map_err(|e| call_error("EC2", "DescribeRouteTables", e))?);
            }
        }
        Ok(out)
    }

    async fn route_tables_of_subnet(&self, subnet: &str) -> Result<Vec<RouteTable>, CloudError> {
        let out = self
            .client
            .describe_route_tables()
            .filters(filter("association.subnet-id", &[subnet.to_string()]))
            .send()
            .await
            .map_err(|e| call_error("EC2", "DescribeRouteTables", e))?;
        Ok(out.route_tables().to_vec())
    }

    async fn create_route_table(
        &self,
        vpc: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudError> {
        let out = self
            .client
            .create_route_table()
            .vpc_id(vpc)
            .tag_specifications(tag_specification(ResourceType::RouteTable, tags))
            .send()
            .await
            .map_err(|e| call_error("EC2", "CreateRouteTable", e))?;
        out.route_table()
            .and_then(|r| r.route_table_id())
            .map(str::to_string)
            .ok_or(missing("CreateRouteTable", "RouteTableId"))
    }

    async fn create_route(
        &self,
        route_table: &str,
        destination: &str,
        gateway: &str,
    ) -> Result<(), CloudError> {
        self.client
            .create_route()
            .route_table_id(route_table)
            .destination_cidr_block(destination)
            .gateway_id(gateway)
            .send()
            .await
            .map_err(|e| call_error("EC2", "CreateRoute", e))?;
        Ok(())
    }

    async fn replace_route(
        &self,
        route_table: &str,
        destination: &str,
        gateway: &str,
    ) -> Result<(), CloudError> {
        self.client
            .replace_route()
            .route_table_id(route_table)
            .destination_cidr_block(destination)
            .gateway_id(gateway)
            .send()
            .await
            .map_err(|e| call_error("EC2", "ReplaceRoute", e))?;
        Ok(())
    }

    async fn delete_route(&self, route_table: &str, destination: &str) -> Result<(), CloudError> {
        self.client
            .delete_route()
            .route_table_id(route_table)
            .destination_cidr_block(destination)
            .send()
            .await
            .map_err(|e| call_error("EC2", "DeleteRoute", e))?;
        Ok(())
    }

    async fn associate_route_table(
        &self,
        route_table: &str,
        subnet: &str,
    ) -> Result<String, CloudError> {
        let out = self
            .client
            .associate_route_table()
            .route_table_id(route_table)
            .subnet_id(subnet)
            .send()
            .await
            .map_err(|e| call_error("EC2", "AssociateRouteTable", e))?;
        out.association_id()
            .map(str::to_string)
            .ok_or(missing("AssociateRouteTable", "AssociationId"))
    }

    async fn replace_route_table_association(
        &self,
        association: &str,
        route_table: &str,
    ) -> Result<(), CloudError> {
        self.client
            .replace_route_table_association()
            .association_id(association)
            .route_table_id(route_table)
            .send()
            .await
            .map_err(|e| call_error("EC2", "ReplaceRouteTableAssociation", e))?;
        Ok(())
    }

    async fn disassociate_route_table(&self, association: &str) -> Result<(), CloudError> {
        self.client
            .disassociate_route_table()
            .association_id(association)
            .send()
            .await
            .map_err(|e| call_error("EC2", "DisassociateRouteTable", e))?;
        Ok(())
    }

    async fn delete_route_table(&self, id: &str) -> Result<(), CloudError> {
        self.client
            .delete_route_table()
            .route_table_id(id)
            .send()
            .await
            .map_err(|e| call_error("EC2", "DeleteRouteTable", e))?;
        Ok(())
    }

    async fn describe_security_groups(
        &self,
        select: Select<'_>,
    ) -> Result<Vec<SecurityGroup>, CloudError> {
        let mut out = Vec::new();
        for filters in filter_sets(select, "group-id") {
            let mut pages = self
                .client
                .describe_security_groups()
                .set_filters(Some(filters))
                .into_paginator()
                .items()
                .send();
            while let Some(item) = pages.next().await {
                out.push(item.map_err(|e| call_error("EC2", "DescribeSecurityGroups", e))?);
            }
        }
        Ok(out)
    }

    async fn security_group_by_name(
        &self,
        vpc: &str,
        name: &str,
    ) -> Result<Option<SecurityGroup>, CloudError> {
        let out = self
            .client
            .describe_security_groups()
            .filters(filter("vpc-id", &[vpc.to_string()]))
            .filters(filter("group-name", &[name.to_string()]))
            .send()
            .await
            .map_err(|e| call_error("EC2", "DescribeSecurityGroups", e))?;
        Ok(out.security_groups().first().cloned())
    }

    async fn create_security_group(
        &self,
        name: &str,
        description: &str,
        vpc: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudError> {
        let out = self
            .client
            .create_security_group()
            .group_name(name)
            .description(description)
            .vpc_id(vpc)
            .tag_specifications(tag_specification(ResourceType::SecurityGroup, tags))
            .send()
            .await
            .map_err(|e| call_error("EC2", "CreateSecurityGroup", e))?;
        out.group_id()
            .map(str::to_string)
            .ok_or(missing("CreateSecurityGroup", "GroupId"))
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
            self.client
                .authorize_security_group_egress()
                .group_id(group)
                .set_ip_permissions(perms)
                .send()
                .await
                .map_err(|e| call_error("EC2", "AuthorizeSecurityGroupEgress", e))?;
        } else {
            self.client
                .authorize_security_group_ingress()
                .group_id(group)
                .set_ip_permissions(perms)
                .send()
                .await
                .map_err(|e| call_error("EC2", "AuthorizeSecurityGroupIngress", e))?;
        }
        Ok(())
    }

    async fn revoke(&self, group: &str, egress: bool, rules: &[SgRule]) -> Result<(), CloudError> {
        if rules.is_empty() {
            return Ok(());
        }
        let perms = Some(ip_permissions(rules));
        if egress {
            self.client
                .revoke_security_group_egress()
                .group_id(group)
                .set_ip_permissions(perms)
                .send()
                .await
                .map_err(|e| call_error("EC2", "RevokeSecurityGroupEgress", e))?;
        } else {
            self.client
                .revoke_security_group_ingress()
                .group_id(group)
                .set_ip_permissions(perms)
                .send()
                .await
                .map_err(|e| call_error("EC2", "RevokeSecurityGroupIngress", e))?;
        }
        Ok(())
    }

    async fn delete_security_group(&self, id: &str) -> Result<(), CloudError> {
        self.client
            .delete_security_group()
            .group_id(id)
            .send()
            .await
            .map_err(|e| call_error("EC2", "DeleteSecurityGroup", e))?;
        Ok(())
    }

    async fn describe_instances(&self, select: Select<'_>) -> Result<Vec<Instance>, CloudError> {
        let live = filter(
            "instance-state-name",
            &["pending", "running", "stopping", "stopped"].map(String::from),
        );
        let mut out = Vec::new();
        for mut filters in filter_sets(select, "instance-id") {
            if !matches!(select, Select::Ids(_)) {
                filters.push(live.clone());
            }
            let mut pages = self
                .client
                .describe_instances()
                .set_filters(Some(filters))
                .into_paginator()
                .items()
                .send();
            while let Some(reservation) = pages.next().await {
                let reservation =
                    reservation.map_err(|e| call_error("EC2", "DescribeInstances", e))?;
                out.extend(reservation.instances().iter().cloned());
            }
        }
        Ok(out)
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
        if !launch.user_data.is_empty() {
            request = request.user_data(aws_smithy_types::base64::encode(launch.user_data));
        }
        let out = request
            .send()
            .await
            .map_err(|e| call_error("EC2", "RunInstances", e))?;
        let ids: Vec<String> = out
            .instances()
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect();
        if ids.is_empty() {
            return Err(missing("RunInstances", "Instances"));
        }
        Ok(ids)
    }

    async fn terminate_instances(&self, ids: &[String]) -> Result<(), CloudError> {
        for chunk in ids.chunks(IDS_PER_CALL) {
            self.client
                .terminate_instances()
                .set_instance_ids(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| call_error("EC2", "TerminateInstances", e))?;
        }
        Ok(())
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
            self.client
                .create_tags()
                .set_resources(Some(chunk.to_vec()))
                .set_tags(Some(sdk_tags(tags)))
                .send()
                .await
                .map_err(|e| call_error("EC2", "CreateTags", e))?;
        }
        Ok(())
    }

    async fn delete_tags(&self, ids: &[String], keys: &[String]) -> Result<(), CloudError> {
        if keys.is_empty() {
            return Ok(());
        }
        let keys: Vec<Tag> = keys.iter().map(|k| Tag::builder().key(k).build()).collect();
        for chunk in ids.chunks(IDS_PER_CALL) {
            self.client
                .delete_tags()
                .set_resources(Some(chunk.to_vec()))
                .set_tags(Some(keys.clone()))
                .send()
                .await
                .map_err(|e| call_error("EC2", "DeleteTags", e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(protocol: &str, from: i32, to: i32, source: RuleSource) -> SgRule {
        SgRule {
            protocol: protocol.into(),
            from_port: from,
            to_port: to,
            source,
        }
    }

    #[test]
    fn permissions_with_several_sources_split_into_one_rule_each() {
        let perm = IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(80)
            .to_port(80)
            .ip_ranges(IpRange::builder().cidr_ip("10.0.0.0/8").build())
            .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
            .user_id_group_pairs(UserIdGroupPair::builder().group_id("sg-1").build())
            .build();
        let all = IpPermission::builder()
            .ip_protocol("-1")
            .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
            .build();
        assert_eq!(
            sg_rules(&[perm, all]),
            vec![
                rule("-1", -1, -1, RuleSource::Cidr("0.0.0.0/0".into())),
                rule("tcp", 80, 80, RuleSource::Cidr("0.0.0.0/0".into())),
                rule("tcp", 80, 80, RuleSource::Cidr("10.0.0.0/8".into())),
                rule("tcp", 80, 80, RuleSource::Group("sg-1".into())),
            ]
        );
    }

    #[test]
    fn rules_round_trip_through_the_wire_form() {
        let rules = vec![
            rule("-1", -1, -1, RuleSource::Group("sg-2".into())),
            rule("icmp", -1, -1, RuleSource::Cidr("10.0.0.0/8".into())),
            rule("udp", 53, 53, RuleSource::Cidr("::/0".into())),
        ];
        let perms = ip_permissions(&rules);
        assert_eq!(perms[0].from_port(), None, "protocol -1 carries no ports");
        assert_eq!(sg_rules(&perms), rules);
    }

    #[test]
    fn numeric_protocols_read_as_names() {
        let perm = IpPermission::builder()
            .ip_protocol("6")
            .from_port(22)
            .to_port(22)
            .ip_ranges(IpRange::builder().cidr_ip("10.0.0.0/8").build())
            .build();
        assert_eq!(sg_rules(&[perm])[0].protocol, "tcp");
    }
}
