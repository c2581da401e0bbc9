//! The ELBv2 adapter: application load balancers, target groups and
//! listeners, and their SDK implementation.
//!
//! ELBv2 has no server-side tag filter: discovery lists load balancers and
//! target groups (paginated) and reads their tags in batches of
//! [`TAGS_PER_CALL`] ARNs.

use std::collections::BTreeMap;

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, FixedResponseActionConfig, Listener, LoadBalancer,
    LoadBalancerSchemeEnum, LoadBalancerTypeEnum, ProtocolEnum, Tag, TargetGroup, TargetTypeEnum,
};
use aws_sdk_elasticloadbalancingv2::Client;

use super::{call_error, CloudError};

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

    /// The listeners of one load balancer (paginated).
    async fn listeners(&self, load_balancer: &str) -> Result<Vec<Listener>, CloudError>;
    async fn listener(&self, arn: &str) -> Result<Option<Listener>, CloudError>;
    async fn create_listener(
        &self,
        load_balancer: &str,
        protocol: &str,
        port: i32,
        action: DefaultAction<'_>,
        tags: &BTreeMap<String, String>,
    ) -> Result<Listener, CloudError>;
    async fn modify_listener(
        &self,
        arn: &str,
        protocol: &str,
        port: i32,
        action: DefaultAction<'_>,
    ) -> Result<(), CloudError>;
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

/// [`Elbv2`] over the official SDK.
#[derive(Clone, Debug)]
pub struct SdkElbv2 {
    client: Client,
}

impl SdkElbv2 {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        SdkElbv2 {
            client: Client::new(config),
        }
    }

    /// Over a client built elsewhere (e.g. with interceptors).
    pub fn from_client(client: Client) -> Self {
        SdkElbv2 { client }
    }
}

fn sdk_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

fn missing(operation: &'static str, field: &'static str) -> CloudError {
    CloudError::MissingField {
        service: "ELBv2",
        operation,
        field,
    }
}

fn not_found(err: &CloudError) -> bool {
    err.code().is_some_and(|c| c.ends_with("NotFound"))
}

/// The health-check protocol for a target group's protocol: HTTPS checks for
/// HTTPS groups, HTTP checks otherwise (also for TCP groups, so the path is
/// meaningful everywhere).
pub fn health_check_protocol(protocol: &str) -> ProtocolEnum {
    if protocol.eq_ignore_ascii_case("HTTPS") {
        ProtocolEnum::Https
    } else {
        ProtocolEnum::Http
    }
}

/// The wire form of a default action.
pub fn default_action(action: DefaultAction<'_>) -> Action {
    match action {
        DefaultAction::Forward(target_group) => Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn(target_group)
            .build(),
        DefaultAction::Unavailable => Action::builder()
            .r#type(ActionTypeEnum::FixedResponse)
            .fixed_response_config(
                FixedResponseActionConfig::builder()
                    .status_code("503")
                    .content_type("text/plain")
                    .message_body(UNAVAILABLE_BODY)
                    .build(),
            )
            .build(),
    }
}

/// The single target group a listener's default actions forward to, if
/// they forward everything to exactly one (a plain forward, or a forward
/// config with one group). `None` for fixed responses, redirects and
/// weighted forwards across several groups.
pub fn forwarded_target_group(actions: &[Action]) -> Option<String> {
    let [action] = actions else { return None };
    if action.r#type() != Some(&ActionTypeEnum::Forward) {
        return None;
    }
    if let Some(arn) = action.target_group_arn() {
        return Some(arn.to_string());
    }
    match action.forward_config()?.target_groups() {
        [only] => only.target_group_arn().map(str::to_string),
        _ => None,
    }
}

impl Elbv2 for SdkElbv2 {
    async fn load_balancers(&self) -> Result<Vec<LoadBalancer>, CloudError> {
        let mut pages = self
            .client
            .describe_load_balancers()
            .into_paginator()
            .items()
            .send();
        let mut out = Vec::new();
        while let Some(item) = pages.next().await {
            out.push(item.map_err(|e| call_error("ELBv2", "DescribeLoadBalancers", e))?);
        }
        Ok(out)
    }

    async fn load_balancer(&self, arn: &str) -> Result<Option<LoadBalancer>, CloudError> {
        match self
            .client
            .describe_load_balancers()
            .load_balancer_arns(arn)
            .send()
            .await
            .map_err(|e| call_error("ELBv2", "DescribeLoadBalancers", e))
        {
            Ok(out) => Ok(out.load_balancers().first().cloned()),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn create_load_balancer(
        &self,
        spec: &LoadBalancerSpec<'_>,
        tags: &BTreeMap<String, String>,
    ) -> Result<LoadBalancer, CloudError> {
        let mut request = self
            .client
            .create_load_balancer()
            .name(spec.name)
            .r#type(LoadBalancerTypeEnum::Application)
            .scheme(if spec.internal {
                LoadBalancerSchemeEnum::Internal
            } else {
                LoadBalancerSchemeEnum::InternetFacing
            })
            .set_subnets(Some(spec.subnets.to_vec()))
            .set_tags(Some(sdk_tags(tags)));
        if !spec.security_groups.is_empty() {
            request = request.set_security_groups(Some(spec.security_groups.to_vec()));
        }
        let out = request
            .send()
            .await
            .map_err(|e| call_error("ELBv2", "CreateLoadBalancer", e))?;
        out.load_balancers()
            .first()
            .cloned()
            .ok_or(missing("CreateLoadBalancer", "LoadBalancers"))
    }

    async fn set_subnets(&self, arn: &str, subnets: &[String]) -> Result<(), CloudError> {
        self.client
            .set_subnets()
            .load_balancer_arn(arn)
            .set_subnets(Some(subnets.to_vec()))
            .send()
            .await
            .map_err(|e| call_error("ELBv2", "SetSubnets", e))?;
        Ok(())
    }

    async fn set_security_groups(&self, arn: &str, groups: &[String]) -> Result<(), CloudError> {
        self.client
            .set_security_groups()
            .load_balancer_arn(arn)
            .set_security_groups(Some(groups.to_vec()))
            .send()
            .await
            .map_err(|e| call_error("ELBv2", "SetSecurityGroups", e))?;
        Ok(())
    }

    async fn delete_load_balancer(&self, arn: &str) -> Result<(), CloudError> {
        self.client
            .delete_load_balancer()
            .load_balancer_arn(arn)
            .send()
            .await
            .map_err(|e| call_error("ELBv2", "DeleteLoadBalancer", e))?;
        Ok(())
    }

    async fn target_groups(&self) -> Result<Vec<TargetGroup>, CloudError> {
        let mut pages = self
            .client
            .describe_target_groups()
            .into_paginator()
            .items()
            .send();
        let mut out = Vec::new();
        while let Some(item) = pages.next().await {
            out.push(item.map_err(|e| call_error("ELBv2", "DescribeTargetGroups", e))?);
        }
        Ok(out)
    }

    async fn target_group(&self, arn: &str) -> Result<Option<TargetGroup>, CloudError> {
        match self
            .client
            .describe_target_groups()
            .target_group_arns(arn)
            .send()
            .await
            .map_err(|e| call_error("ELBv2", "DescribeTargetGroups", e))
        {
            Ok(out) => Ok(out.target_groups().first().cloned()),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn target_group_by_name(&self, name: &str) -> Result<Option<TargetGroup>, CloudError> {
        match self
            .client
            .describe_target_groups()
            .names(name)
            .send()
            .await
            .map_err(|e| call_error("ELBv2", "DescribeTargetGroups", e))
        {
            Ok(out) => Ok(out.target_groups().first().cloned()),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn create_target_group(
        &self,
        spec: &TargetGroupSpec<'_>,
        tags: &BTreeMap<String, String>,
    ) -> Result<TargetGroup, CloudError> {
        let out = self
            .client
            .create_target_group()
            .name(spec.name)
            .protocol(ProtocolEnum::from(spec.protocol))
            .port(spec.port)
            .vpc_id(spec.vpc)
            .target_type(TargetTypeEnum::Instance)
            .health_check_protocol(health_check_protocol(spec.protocol))
            .health_check_path(&spec.health_check.path)
            .health_check_interval_seconds(spec.health_check.interval)
            .healthy_threshold_count(spec.health_check.healthy_threshold)
            .set_tags(Some(sdk_tags(tags)))
            .send()
            .await
            .map_err(|e| call_error("ELBv2", "CreateTargetGroup", e))?;
        out.target_groups()
            .first()
            .cloned()
            .ok_or(missing("CreateTargetGroup", "TargetGroups"))
    }

    async fn modify_health_check(
        &self,
        arn: &str,
        protocol: &str,
        health_check: &HealthCheck,
    ) -> Result<(), CloudError> {
        self.client
            .modify_target_group()
            .target_group_arn(arn)
            .health_check_protocol(health_check_protocol(protocol))
            .health_check_path(&health_check.path)
            .health_check_interval_seconds(health_check.interval)
            .healthy_threshold_count(health_check.healthy_threshold)
            .send()
            .await
            .map_err(|e| call_error("ELBv2", "ModifyTargetGroup", e))?;
        Ok(())
    }

    async fn delete_target_group(&self, arn: &str) -> Result<(), CloudError> {
        self.client
            .delete_target_group()
            .target_group_arn(arn)
            .send()
            .await
            .map_err(|e| call_error("ELBv2", "DeleteTargetGroup", e))?;
        Ok(())
    }

    async fn listeners(&self, load_balancer: &str) -> Result<Vec<Listener>, CloudError> {
        let mut pages = self
            .client
            .describe_listeners()
            .load_balancer_arn(load_balancer)
            .into_paginator()
            .items()
            .send();
        let mut out = Vec::new();
        while let Some(item) = pages.next().await {
            match item.map_err(|e| call_error("ELBv2", "DescribeListeners", e)) {
                Ok(listener) => out.push(listener),
                // Deleted since it was listed: it has no listeners any more.
                Err(e) if not_found(&e) => return Ok(Vec::new()),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn listener(&self, arn: &str) -> Result<Option<Listener>, CloudError> {
        match self
            .client
            .describe_listeners()
            .listener_arns(arn)
            .send()
            .await
            .map_err(|e| call_error("ELBv2", "DescribeListeners", e))
        {
            Ok(out) => Ok(out.listeners().first().cloned()),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn create_listener(
        &self,
        load_balancer: &str,
        protocol: &str,
        port: i32,
        action: DefaultAction<'_>,
        tags: &BTreeMap<String, String>,
    ) -> Result<Listener, CloudError> {
        let out = self
            .client
            .create_listener()
            .load_balancer_arn(load_balancer)
            .protocol(ProtocolEnum::from(protocol))
            .port(port)
            .default_actions(default_action(action))
            .set_tags(Some(sdk_tags(tags)))
            .send()
            .await
            .map_err(|e| call_error("ELBv2", "CreateListener", e))?;
        out.listeners()
            .first()
            .cloned()
            .ok_or(missing("CreateListener", "Listeners"))
    }

    async fn modify_listener(
        &self,
        arn: &str,
        protocol: &str,
        port: i32,
        action: DefaultAction<'_>,
    ) -> Result<(), CloudError> {
        self.client
            .modify_listener()
            .listener_arn(arn)
            .protocol(ProtocolEnum::from(protocol))
            .port(port)
            .default_actions(default_action(action))
            .send()
            .await
            .map_err(|e| call_error("ELBv2", "ModifyListener", e))?;
        Ok(())
    }

    async fn delete_listener(&self, arn: &str) -> Result<(), CloudError> {
        self.client
            .delete_listener()
            .listener_arn(arn)
            .send()
            .await
            .map_err(|e| call_error("ELBv2", "DeleteListener", e))?;
        Ok(())
    }

    async fn tags(
        &self,
        arns: &[String],
    ) -> Result<BTreeMap<String, BTreeMap<String, String>>, CloudError> {
        let mut out = BTreeMap::new();
        for chunk in arns.chunks(TAGS_PER_CALL) {
            let descriptions = match self
                .client
                .describe_tags()
                .set_resource_arns(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| call_error("ELBv2", "DescribeTags", e))
            {
                Ok(o) => o.tag_descriptions().to_vec(),
                // One ARN of the batch was deleted since it was listed and the
                // whole call failed: ask one by one (rare: only under a race).
                Err(e) if not_found(&e) && chunk.len() > 1 => {
                    let mut descriptions = Vec::new();
                    for arn in chunk {
                        match self
                            .client
                            .describe_tags()
                            .resource_arns(arn)
                            .send()
                            .await
                            .map_err(|e| call_error("ELBv2", "DescribeTags", e))
                        {
                            Ok(o) => descriptions.extend(o.tag_descriptions().iter().cloned()),
                            Err(e) if not_found(&e) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    descriptions
                }
                Err(e) if not_found(&e) => Vec::new(),
                Err(e) => return Err(e),
            };
            for d in descriptions {
                let Some(arn) = d.resource_arn() else {
                    continue;
                };
                let tags = d
                    .tags()
                    .iter()
                    .filter_map(|t| {
                        Some((
                            t.key()?.to_string(),
                            t.value().unwrap_or_default().to_string(),
                        ))
                    })
                    .collect();
                out.insert(arn.to_string(), tags);
            }
        }
        Ok(out)
    }

    async fn add_tags(&self, arn: &str, tags: &BTreeMap<String, String>) -> Result<(), CloudError> {
        if tags.is_empty() {
            return Ok(());
        }
        self.client
            .add_tags()
            .resource_arns(arn)
            .set_tags(Some(sdk_tags(tags)))
            .send()
            .await
            .map_err(|e| call_error("ELBv2", "AddTags", e))?;
        Ok(())
    }

    async fn remove_tags(&self, arn: &str, keys: &[String]) -> Result<(), CloudError> {
        if keys.is_empty() {
            return Ok(());
        }
        self.client
            .remove_tags()
            .resource_arns(arn)
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .await
            .map_err(|e| call_error("ELBv2", "RemoveTags", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_elasticloadbalancingv2::types::{ForwardActionConfig, TargetGroupTuple};

    #[test]
    fn a_single_forward_names_its_target_group() {
        let plain = default_action(DefaultAction::Forward("arn:tg/a"));
        assert_eq!(forwarded_target_group(&[plain]), Some("arn:tg/a".into()));

        let tuple = |arn: &str| {
            TargetGroupTuple::builder()
                .target_group_arn(arn)
                .weight(1)
                .build()
        };
        let one = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .forward_config(
                ForwardActionConfig::builder()
                    .target_groups(tuple("b"))
                    .build(),
            )
            .build();
        assert_eq!(forwarded_target_group(&[one]), Some("b".into()));

        let weighted = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .forward_config(
                ForwardActionConfig::builder()
                    .target_groups(tuple("b"))
                    .target_groups(tuple("c"))
                    .build(),
            )
            .build();
        assert_eq!(forwarded_target_group(&[weighted]), None);
        assert_eq!(
            forwarded_target_group(&[default_action(DefaultAction::Unavailable)]),
            None
        );
    }
}
