//! The ELBv2 adapter: application load balancers, target groups and
//! listeners: what the engine asks of ELBv2 (this file), and its SDK
//! implementation ([`SdkElbv2`], in `client.rs`; listener actions and health
//! checks on the wire in `wire.rs`).
//!
//! ELBv2 has no server-side tag filter: discovery lists load balancers and
//! target groups (paginated) and reads their tags in batches of
//! [`TAGS_PER_CALL`] ARNs.

use std::collections::BTreeMap;

use aws_sdk_elasticloadbalancingv2::types::{Listener, LoadBalancer, TargetGroup};

use super::CloudError;

mod client;
mod preflight;
mod rules;
mod wire;

pub use client::SdkElbv2;
pub use rules::{free_priority, ListenerRule, ListenerRules};
pub use wire::{default_action, forward_weights, forwarded_target_group, health_check_protocol};

/// DescribeTags and Describe* by ARN take at most 20 ARNs per call.
pub const TAGS_PER_CALL: usize = 20;

/// The body of the default action of a listener with no target group.
pub const UNAVAILABLE_BODY: &str = "service unavailable";

/// A target group's health check, as drctl models it (always HTTP(S) on the
/// traffic port; see [`health_check_protocol`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub path: String,
    pub interval: i32,
    pub healthy_threshold: i32,
}

#[derive(Debug, Clone)]
pub struct TargetGroupSpec<'a> {
    pub name: &'a str,
    /// `HTTP`, `HTTPS` or `TCP`.
    pub protocol: &'a str,
    pub port: i32,
    pub vpc: &'a str,
    pub health_check: &'a HealthCheck,
}

#[derive(Debug, Clone)]
pub struct LoadBalancerSpec<'a> {
    pub name: &'a str,
    pub subnets: &'a [String],
    pub security_groups: &'a [String],
    pub internal: bool,
}

/// A listener's default action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultAction<'a> {
    /// Forward everything to this target group (ARN).
    Forward(&'a str),
    /// A fixed `503 service unavailable` response.
    Unavailable,
    /// Split between target groups by weight: `(ARN, weight)` (a canary).
    Weighted(&'a [(String, i32)]),
}

/// One registered target's health, as DescribeTargetHealth reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHealth {
    /// The instance id.
    pub id: String,
    pub port: Option<i32>,
    /// `initial`, `healthy`, `unhealthy`, `unused`, `draining` or
    /// `unavailable`; empty if AWS sent none.
    pub state: String,
    /// Why it is not healthy, e.g. `Target.InvalidState`.
    pub reason: Option<String>,
    pub description: Option<String>,
}

/// What drctl needs from ELBv2. One implementation talks to the SDK.
#[allow(async_fn_in_trait)] // used with generics inside this crate, never as dyn
pub trait Elbv2 {
    /// Every load balancer in the region (paginated).
    async fn load_balancers(&self) -> Result<Vec<LoadBalancer>, CloudError>;
    /// `None` when it does not exist (any more).
    async fn load_balancer(&self, arn: &str) -> Result<Option<LoadBalancer>, CloudError>;
    async fn create_load_balancer(
        &self,
        spec: &LoadBalancerSpec<'_>,
        tags: &BTreeMap<String, String>,
    ) -> Result<LoadBalancer, CloudError>;
    async fn set_subnets(&self, arn: &str, subnets: &[String]) -> Result<(), CloudError>;
    async fn set_security_groups(&self, arn: &str, groups: &[String]) -> Result<(), CloudError>;
    async fn delete_load_balancer(&self, arn: &str) -> Result<(), CloudError>;

    /// Every target group in the region (paginated).
    async fn target_groups(&self) -> Result<Vec<TargetGroup>, CloudError>;
    async fn target_group(&self, arn: &str) -> Result<Option<TargetGroup>, CloudError>;
    async fn target_group_by_name(&self, name: &str) -> Result<Option<TargetGroup>, CloudError>;
    async fn create_target_group(
        &self,
        spec: &TargetGroupSpec<'_>,
        tags: &BTreeMap<String, String>,
    ) -> Result<TargetGroup, CloudError>;
    async fn modify_health_check(
        &self,
        arn: &str,
        protocol: &str,
        health_check: &HealthCheck,
    ) -> Result<(), CloudError>;
    async fn delete_target_group(&self, arn: &str) -> Result<(), CloudError>;

    /// The health of every target registered with the group. A target that
    /// was terminated drops out of the list.
    async fn target_health(&self, target_group_arn: &str) -> Result<Vec<TargetHealth>, CloudError>;
    /// Registers `(instance id, port)` targets, all in one call.
    async fn register_targets(
        &self,
        target_group_arn: &str,
        targets: &[(String, i32)],
    ) -> Result<(), CloudError>;
    /// Deregisters `(instance id, port)` targets, all in one call; they drain
    /// for the group's deregistration delay before they are gone.
    async fn deregister_targets(
        &self,
        target_group_arn: &str,
        targets: &[(String, i32)],
    ) -> Result<(), CloudError>;

    /// The listeners of one load balancer (paginated).
    async fn listeners(&self, load_balancer: &str) -> Result<Vec<Listener>, CloudError>;
    async fn listener(&self, arn: &str) -> Result<Option<Listener>, CloudError>;
    /// `certificate`: the default certificate's ARN (HTTPS).
    async fn create_listener(
        &self,
        load_balancer: &str,
        protocol: &str,
        port: i32,
        certificate: Option<&str>,
        action: DefaultAction<'_>,
        tags: &BTreeMap<String, String>,
    ) -> Result<Listener, CloudError>;
    /// Changes protocol and port, the default certificate unless `None`
    /// (the listener keeps its own), and the default action unless `None`.
    async fn modify_listener(
        &self,
        arn: &str,
        protocol: &str,
        port: i32,
        certificate: Option<&str>,
        action: Option<DefaultAction<'_>>,
    ) -> Result<(), CloudError>;
    /// Moves a listener's traffic: its default action, in one call.
    async fn set_default_action(
        &self,
        arn: &str,
        action: DefaultAction<'_>,
    ) -> Result<(), CloudError>;
    /// How long a deregistered target drains (`deregistration_delay.timeout_seconds`).
    async fn deregistration_delay(
        &self,
        target_group_arn: &str,
    ) -> Result<std::time::Duration, CloudError>;
    async fn delete_listener(&self, arn: &str) -> Result<(), CloudError>;

    /// The tags of each ARN, [`TAGS_PER_CALL`] ARNs per call. An ARN that
    /// vanished meanwhile is left out.
    async fn tags(
        &self,
        arns: &[String],
    ) -> Result<BTreeMap<String, BTreeMap<String, String>>, CloudError>;
    async fn add_tags(&self, arn: &str, tags: &BTreeMap<String, String>) -> Result<(), CloudError>;
    async fn remove_tags(&self, arn: &str, keys: &[String]) -> Result<(), CloudError>;
}
