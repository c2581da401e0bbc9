//! [`SdkElbv2`]: the [`Elbv2`] trait over the official SDK's client. Each
//! method is one request (or one per batch of ARNs), sent through
//! [`ELBV2`]`.call`, which names the operation in any error.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::IntoFuture;

use aws_sdk_elasticloadbalancingv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_elasticloadbalancingv2::types::{
    Listener, LoadBalancer, LoadBalancerSchemeEnum, LoadBalancerTypeEnum, ProtocolEnum, Tag,
    TagDescription, TargetDescription, TargetGroup, TargetTypeEnum,
};
use aws_sdk_elasticloadbalancingv2::Client;

use super::{
    default_action, health_check_protocol, DefaultAction, Elbv2, HealthCheck, LoadBalancerSpec,
    TargetGroupSpec, TargetHealth, TAGS_PER_CALL,
};
use crate::cloud::sdk::{AttemptRecorder, ELBV2};
use crate::cloud::CloudError;

/// [`Elbv2`] over the official SDK.
#[derive(Clone, Debug)]
pub struct SdkElbv2 {
    pub(super) client: Client,
}

impl SdkElbv2 {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        let config = aws_sdk_elasticloadbalancingv2::config::Builder::from(config)
            .interceptor(AttemptRecorder)
            .build();
        SdkElbv2 {
            client: Client::from_conf(config),
        }
    }

    /// Over a client built elsewhere (e.g. with interceptors).
    pub fn from_client(client: Client) -> Self {
        SdkElbv2 { client }
    }

    /// The tag descriptions of `arns`; `None` when one of them does not
    /// exist (any more): ELBv2 then fails the whole call.
    async fn describe_tags(
        &self,
        arns: &[String],
    ) -> Result<Option<Vec<TagDescription>>, CloudError> {
        let request = self
            .client
            .describe_tags()
            .set_resource_arns(Some(arns.to_vec()));
        let out = found(ELBV2.call(request.send()).await)?;
        Ok(out.map(|o| o.tag_descriptions.unwrap_or_default()))
    }
}

/// A drill's ELBv2 resources go without the `Name` tag (ELBv2 shows a
/// resource's own name, not the tag): room under the tag quota (moto allows
/// 10 per resource, AWS 50) for `drctl:drill`, `drctl:expires` and a
/// colour's marks.
pub(super) fn sdk_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    let drill = tags.contains_key(crate::types::tags::DRILL);
    tags.iter()
        .filter(|(k, _)| !(drill && k.as_str() == crate::types::tags::NAME))
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// Sends `targets` as `(instance id, port)` descriptions with `send`; no call
/// for none (ELBv2 would reject an empty list).
async fn send_targets<T, E, R, F>(
    targets: &[(String, i32)],
    send: impl FnOnce(Vec<TargetDescription>) -> F,
) -> Result<(), CloudError>
where
    F: IntoFuture<Output = Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: Debug,
{
    if targets.is_empty() {
        return Ok(());
    }
    let targets = targets
        .iter()
        .map(|(id, port)| TargetDescription::builder().id(id).port(*port).build());
    ELBV2.call(send(targets.collect())).await?;
    Ok(())
}

/// `None` for an error saying the resource is not there (any more): ELBv2
/// answers Describe by ARN for a deleted resource with a `*NotFound` code.
pub(super) fn found<T>(result: Result<T, CloudError>) -> Result<Option<T>, CloudError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.code().is_some_and(|c| c.ends_with("NotFound")) => Ok(None),
        Err(e) => Err(e),
    }
}

impl Elbv2 for SdkElbv2 {
    async fn load_balancers(&self) -> Result<Vec<LoadBalancer>, CloudError> {
        let request = self.client.describe_load_balancers();
        ELBV2
            .call(request.into_paginator().items().send().try_collect())
            .await
    }

    async fn load_balancer(&self, arn: &str) -> Result<Option<LoadBalancer>, CloudError> {
        let request = self
            .client
            .describe_load_balancers()
            .load_balancer_arns(arn);
        let out = found(ELBV2.call(request.send()).await)?;
        Ok(out.and_then(|o| o.load_balancers?.into_iter().next()))
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
        let out = ELBV2.call(request.send()).await?;
        ELBV2.required(out, "LoadBalancers", |o| {
            o.load_balancers?.into_iter().next()
        })
    }

    async fn set_subnets(&self, arn: &str, subnets: &[String]) -> Result<(), CloudError> {
        let request = self
            .client
            .set_subnets()
            .load_balancer_arn(arn)
            .set_subnets(Some(subnets.to_vec()));
        ELBV2.call(request.send()).await?;
        Ok(())
    }

    async fn set_security_groups(&self, arn: &str, groups: &[String]) -> Result<(), CloudError> {
        let request = self
            .client
            .set_security_groups()
            .load_balancer_arn(arn)
            .set_security_groups(Some(groups.to_vec()));
        ELBV2.call(request.send()).await?;
        Ok(())
    }

    async fn delete_load_balancer(&self, arn: &str) -> Result<(), CloudError> {
        let request = self.client.delete_load_balancer().load_balancer_arn(arn);
        ELBV2.call(request.send()).await?;
        Ok(())
    }

    async fn target_groups(&self) -> Result<Vec<TargetGroup>, CloudError> {
        let request = self.client.describe_target_groups();
        ELBV2
            .call(request.into_paginator().items().send().try_collect())
            .await
    }

    async fn target_group(&self, arn: &str) -> Result<Option<TargetGroup>, CloudError> {
        let request = self.client.describe_target_groups().target_group_arns(arn);
        let out = found(ELBV2.call(request.send()).await)?;
        Ok(out.and_then(|o| o.target_groups?.into_iter().next()))
    }

    async fn target_group_by_name(&self, name: &str) -> Result<Option<TargetGroup>, CloudError> {
        let request = self.client.describe_target_groups().names(name);
        let out = found(ELBV2.call(request.send()).await)?;
        Ok(out.and_then(|o| o.target_groups?.into_iter().next()))
    }

    async fn create_target_group(
        &self,
        spec: &TargetGroupSpec<'_>,
        tags: &BTreeMap<String, String>,
    ) -> Result<TargetGroup, CloudError> {
        let request = self
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
            .set_tags(Some(sdk_tags(tags)));
        let out = ELBV2.call(request.send()).await?;
        ELBV2.required(out, "TargetGroups", |o| o.target_groups?.into_iter().next())
    }

    async fn modify_health_check(
        &self,
        arn: &str,
        protocol: &str,
        health_check: &HealthCheck,
    ) -> Result<(), CloudError> {
        let request = self
            .client
            .modify_target_group()
            .target_group_arn(arn)
            .health_check_protocol(health_check_protocol(protocol))
            .health_check_path(&health_check.path)
            .health_check_interval_seconds(health_check.interval)
            .healthy_threshold_count(health_check.healthy_threshold);
        ELBV2.call(request.send()).await?;
        Ok(())
    }

    async fn delete_target_group(&self, arn: &str) -> Result<(), CloudError> {
        let request = self.client.delete_target_group().target_group_arn(arn);
        ELBV2.call(request.send()).await?;
        Ok(())
    }

    async fn target_health(&self, target_group_arn: &str) -> Result<Vec<TargetHealth>, CloudError> {
        let request = self
            .client
            .describe_target_health()
            .target_group_arn(target_group_arn);
        let out = ELBV2.call(request.send()).await?;
        Ok(out
            .target_health_descriptions
            .unwrap_or_default()
            .into_iter()
            .filter_map(|d| {
                let target = d.target?;
                let health = d.target_health;
                let health = health.as_ref();
                Some(TargetHealth {
                    id: target.id?,
                    port: target.port,
                    state: health
                        .and_then(|h| h.state())
                        .map_or_else(String::new, |s| s.as_str().to_string()),
                    reason: health
                        .and_then(|h| h.reason())
                        .map(|r| r.as_str().to_string()),
                    description: health.and_then(|h| h.description().map(str::to_string)),
                })
            })
            .collect())
    }

    async fn register_targets(
        &self,
        target_group_arn: &str,
        targets: &[(String, i32)],
    ) -> Result<(), CloudError> {
        send_targets(targets, |targets| {
            let request = self
                .client
                .register_targets()
                .target_group_arn(target_group_arn);
            request.set_targets(Some(targets)).send()
        })
        .await
    }

    async fn deregister_targets(
        &self,
        target_group_arn: &str,
        targets: &[(String, i32)],
    ) -> Result<(), CloudError> {
        send_targets(targets, |targets| {
            let request = self
                .client
                .deregister_targets()
                .target_group_arn(target_group_arn);
            request.set_targets(Some(targets)).send()
        })
        .await
    }

    async fn listeners(&self, load_balancer: &str) -> Result<Vec<Listener>, CloudError> {
        let request = self
            .client
            .describe_listeners()
            .load_balancer_arn(load_balancer);
        let all = ELBV2.call(request.into_paginator().items().send().try_collect());
        // Deleted since it was listed: it has no listeners any more.
        Ok(found(all.await)?.unwrap_or_default())
    }

    async fn listener(&self, arn: &str) -> Result<Option<Listener>, CloudError> {
        let request = self.client.describe_listeners().listener_arns(arn);
        let out = found(ELBV2.call(request.send()).await)?;
        Ok(out.and_then(|o| o.listeners?.into_iter().next()))
    }

    async fn create_listener(
        &self,
        load_balancer: &str,
        protocol: &str,
        port: i32,
        certificate: Option<&str>,
        action: DefaultAction<'_>,
        tags: &BTreeMap<String, String>,
    ) -> Result<Listener, CloudError> {
        let request = self
            .client
            .create_listener()
            .load_balancer_arn(load_balancer)
            .protocol(ProtocolEnum::from(protocol))
            .port(port)
            .set_certificates(certificate.map(|arn| {
                vec![
                    aws_sdk_elasticloadbalancingv2::types::Certificate::builder()
                        .certificate_arn(arn)
                        .build(),
                ]
            }))
            .default_actions(default_action(action))
            .set_tags(Some(sdk_tags(tags)));
        let out = ELBV2.call(request.send()).await?;
        ELBV2.required(out, "Listeners", |o| o.listeners?.into_iter().next())
    }

    async fn modify_listener(
        &self,
        arn: &str,
        protocol: &str,
        port: i32,
        certificate: Option<&str>,
        action: Option<DefaultAction<'_>>,
    ) -> Result<(), CloudError> {
        let request = self
            .client
            .modify_listener()
            .listener_arn(arn)
            .protocol(ProtocolEnum::from(protocol))
            .port(port)
            .set_certificates(certificate.map(|arn| {
                vec![
                    aws_sdk_elasticloadbalancingv2::types::Certificate::builder()
                        .certificate_arn(arn)
                        .build(),
                ]
            }))
            .set_default_actions(action.map(|a| vec![default_action(a)]));
        ELBV2.call(request.send()).await?;
        Ok(())
    }

    async fn set_default_action(
        &self,
        arn: &str,
        action: DefaultAction<'_>,
    ) -> Result<(), CloudError> {
        let request = self
            .client
            .modify_listener()
            .listener_arn(arn)
            .default_actions(default_action(action));
        ELBV2.call(request.send()).await?;
        Ok(())
    }

    async fn deregistration_delay(
        &self,
        target_group_arn: &str,
    ) -> Result<std::time::Duration, CloudError> {
        let request = self
            .client
            .describe_target_group_attributes()
            .target_group_arn(target_group_arn);
        let out = ELBV2.call(request.send()).await?;
        let seconds = out
            .attributes()
            .iter()
            .find(|a| a.key() == Some("deregistration_delay.timeout_seconds"))
            .and_then(|a| a.value()?.parse::<u64>().ok())
            // AWS's default when the attribute is not reported.
            .unwrap_or(300);
        Ok(std::time::Duration::from_secs(seconds))
    }

    async fn delete_listener(&self, arn: &str) -> Result<(), CloudError> {
        let request = self.client.delete_listener().listener_arn(arn);
        ELBV2.call(request.send()).await?;
        Ok(())
    }

    async fn tags(
        &self,
        arns: &[String],
    ) -> Result<BTreeMap<String, BTreeMap<String, String>>, CloudError> {
        let mut out = BTreeMap::new();
        for chunk in arns.chunks(TAGS_PER_CALL) {
            let descriptions = match self.describe_tags(chunk).await? {
                Some(descriptions) => descriptions,
                // One ARN of the batch was deleted since it was listed and the
                // whole call failed: ask one by one (rare: only under a race).
                None if chunk.len() > 1 => {
                    let mut descriptions = Vec::new();
                    for arn in chunk {
                        let one = self.describe_tags(std::slice::from_ref(arn)).await?;
                        descriptions.extend(one.unwrap_or_default());
                    }
                    descriptions
                }
                None => Vec::new(),
            };
            for d in descriptions {
                let Some(arn) = d.resource_arn else {
                    continue;
                };
                let tags = d
                    .tags
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|t| Some((t.key?, t.value.unwrap_or_default())))
                    .collect();
                out.insert(arn, tags);
            }
        }
        Ok(out)
    }

    async fn add_tags(&self, arn: &str, tags: &BTreeMap<String, String>) -> Result<(), CloudError> {
        if sdk_tags(tags).is_empty() {
            return Ok(());
        }
        let request = self
            .client
            .add_tags()
            .resource_arns(arn)
            .set_tags(Some(sdk_tags(tags)));
        ELBV2.call(request.send()).await?;
        Ok(())
    }

    async fn remove_tags(&self, arn: &str, keys: &[String]) -> Result<(), CloudError> {
        if keys.is_empty() {
            return Ok(());
        }
        let request = self
            .client
            .remove_tags()
            .resource_arns(arn)
            .set_tag_keys(Some(keys.to_vec()));
        ELBV2.call(request.send()).await?;
        Ok(())
    }
}
