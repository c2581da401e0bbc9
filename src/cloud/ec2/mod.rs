//! The EC2 adapter: what the engine asks of EC2 (this file), and its SDK
//! implementation ([`SdkEc2`], in `client.rs`; security-group rule conversion
//! in `rules.rs`, filters and tags on the wire in `wire.rs`).
//!
//! Discovery is batched: one paginated, tag-filtered Describe per resource
//! kind, never one call per resource. Reads return the SDK's own types (the
//! provider normalises them); writes take plain values. Lookups by id use
//! filters rather than id parameters, so an id that is gone (or not yet
//! visible: EC2 is eventually consistent) reads as "nothing" instead of an
//! error.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{
    Image, Instance, InternetGateway, RouteTable, SecurityGroup, Subnet, Vpc,
};

use super::CloudError;
use crate::cloud::sdk::EC2;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::Filter;
use std::fmt::Debug;
use std::future::IntoFuture;

/// Shared by the SDK calls of `client.rs` and `images.rs`.
/// Every item of one paginated Describe per filter set, in order.
pub(super) async fn each_filter_set<T, E, R, F>(
    sets: Vec<Vec<Filter>>,
    describe: impl Fn(Vec<Filter>) -> F,
) -> Result<Vec<T>, CloudError>
where
    F: IntoFuture<Output = Result<Vec<T>, SdkError<E, R>>>,
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: Debug,
{
    let mut out = Vec::new();
    for filters in sets {
        out.extend(EC2.call(describe(filters)).await?);
    }
    Ok(out)
}

/// Every item of the paginated Describe `$request` (a fluent builder,
/// built afresh for each set) over the filter sets `$sets`.
macro_rules! describe_by_filters {
    ($sets:expr, $request:expr) => {
        each_filter_set($sets, |filters| {
            let request = $request.set_filters(Some(filters));
            request.into_paginator().items().send().try_collect()
        })
    };
}

mod by_tag_key;
mod client;
mod images;
mod preflight;
mod rules;
mod wire;

pub use by_tag_key::KeyedTags;
pub use client::SdkEc2;
pub use images::ImageUser;
pub use preflight::{DryRun, DryRunAnswer};
pub use rules::{ip_permissions, sg_rules};
pub use wire::{snapshot_ids, tag_map};

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
    /// An OS shutdown stops the instance instead of terminating it (an
    /// image builder's power-off must leave a disk to image).
    pub stop_on_shutdown: bool,
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

    // --- Images -----------------------------------------------------------

    /// Images named like `name_pattern` (`*` and `?` wildcards) owned by any
    /// of `owners` (account ids or aliases such as `amazon` and `self`; none:
    /// every image this account may launch).
    async fn describe_images(
        &self,
        owners: &[String],
        name_pattern: &str,
    ) -> Result<Vec<Image>, CloudError>;
    /// Images this account owns carrying all these tags. An empty map selects
    /// nothing, never everything.
    async fn images_tagged(
        &self,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<Image>, CloudError>;

    // --- Tags -------------------------------------------------------------

    /// Adds or overwrites `tags` on every resource in `ids`.
    async fn create_tags(
        &self,
        ids: &[String],
        tags: &BTreeMap<String, String>,
    ) -> Result<(), CloudError>;
    async fn delete_tags(&self, ids: &[String], keys: &[String]) -> Result<(), CloudError>;
    /// Every EC2 resource of any type tagged `key = value`, as (id, resource
    /// type), e.g. `("i-0abc…", "instance")`: DescribeTags, not per-kind reads.
    async fn tagged_resources(
        &self,
        key: &str,
        value: &str,
    ) -> Result<Vec<(String, String)>, CloudError>;
}
