//! The AWS half of [`crate::kinds::service::colours`]: reading its objects back, creating,
//! updating and deleting them.

use crate::kinds::service::FLEET_TAG;
use crate::kinds::service::LIVE_SINCE_TAG;
use crate::kinds::service::REPLACED_AT_TAG;
use aws_sdk_ec2::types::{Instance, InstanceStateName};
use std::collections::BTreeMap;

use crate::cloud::aws::{AwsProvider, Discovery};
use crate::cloud::ec2::tag_map;
use crate::cloud::elbv2::{forward_weights, ListenerRule, ListenerRules};
use crate::cloud::CloudError;
use crate::kinds::service::colours::{service_object, Colour};
use crate::model::ResourceKind;
use crate::types::tags;
use crate::world::{Address, ObservedResource, Tags};

/// Every service of the discovery's environment.
pub(super) async fn observe(
    aws: &AwsProvider,
    pass: &Discovery,
) -> Result<Vec<ObservedResource>, CloudError> {
    let env = pass.env();
    let elbv2 = pass.elbv2(aws).await?;
    let mut groups = Vec::new();
    for group in &elbv2.target_groups {
        if let Some(t) = elbv2.ours(group.target_group_arn(), env) {
            groups.push((group, t));
        }
    }
    let instances = pass.instances(aws).await?;
    let serviced =
        |t: &Tags| Address::from_tags(t).is_some_and(|a| a.kind == ResourceKind::Service);
    if !groups.iter().any(|(_, t)| serviced(t))
        && !instances.iter().any(|i| serviced(&tag_map(i.tags())))
    {
        // No service here: no listener read either.
        return Ok(Vec::new());
    }
    let listeners = pass.listeners(aws).await?;
    let mut rules = Vec::new();
    for listener in listeners.iter().filter_map(|l| l.listener_arn()) {
        rules.extend(aws.elbv2.rules(listener).await?);
    }
    Ok(assemble(&groups, instances, listeners, &rules))
}

/// The service objects from one read of target groups, instances and listeners.
fn assemble(
    groups: &[(&aws_sdk_elasticloadbalancingv2::types::TargetGroup, Tags)],
    instances: &[Instance],
    listeners: &[aws_sdk_elasticloadbalancingv2::types::Listener],
    rules: &[ListenerRule],
) -> Vec<ObservedResource> {
    let mut found = Found {
        traffic: traffic_of(listeners),
        test_rules: test_rules_of(rules),
        colours: BTreeMap::new(),
    };
    for (group, t) in groups {
        found.add_target_group(group, t);
    }
    for instance in instances {
        found.add_instance(instance);
    }
    found
        .colours
        .into_iter()
        .map(|(address, colours)| service_object(address, colours))
        .collect()
}

/// Target group → the listener whose default action forwards to it, and
/// its share of that listener's traffic.
fn traffic_of(
    listeners: &[aws_sdk_elasticloadbalancingv2::types::Listener],
) -> BTreeMap<String, (String, i32)> {
    let mut traffic = BTreeMap::new();
    for listener in listeners {
        for (group, share) in forward_weights(listener.default_actions()) {
            traffic.insert(group, (listener.listener_arn().unwrap_or("").into(), share));
        }
    }
    traffic
}

/// Target group → the test rule that puts it in use before any traffic.
fn test_rules_of(rules: &[ListenerRule]) -> BTreeMap<&str, &str> {
    rules
        .iter()
        .filter(|r| r.matches_header(crate::kinds::service::TEST_HEADER))
        .flat_map(|r| r.forwards_to.iter().map(|g| (g.as_str(), r.arn.as_str())))
        .collect()
}

/// The service address and colour a target group's or instance's tags
/// name; `None` for anything that is not a service's colour.
fn service_colour(t: &Tags) -> Option<(Address, &String)> {
    let (Some(address), Some(colour)) = (Address::from_tags(t), t.get(tags::COLOR)) else {
        return None;
    };
    (address.kind == ResourceKind::Service).then_some((address, colour))
}

/// The colours one read found, gathered by service.
struct Found<'r> {
    traffic: BTreeMap<String, (String, i32)>,
    test_rules: BTreeMap<&'r str, &'r str>,
    /// (address, colour) → colour, and the tags of its target group.
    colours: BTreeMap<Address, BTreeMap<String, (Colour, Tags)>>,
}

impl Found<'_> {
    /// A colour's target group: where traffic reaches it, and what its tags
    /// record (fleet, finished, when it went live and was replaced).
    fn add_target_group(
        &mut self,
        group: &aws_sdk_elasticloadbalancingv2::types::TargetGroup,
        t: &Tags,
    ) {
        let Some((address, colour)) = service_colour(t) else {
            return;
        };
        let arn = group.target_group_arn().unwrap_or("").to_string();
        let (listener, share) = self.traffic.get(&arn).cloned().unwrap_or_default();
        let millis = |k: &str| t.get(k).and_then(|v| v.parse::<i64>().ok());
        let health_check = crate::cloud::kinds::target_group::health_check_of(group);
        let test_rule = self
            .test_rules
            .get(arn.as_str())
            .map_or_else(String::new, |r| r.to_string());
        let entry = Colour {
            name: colour.clone(),
            target_group: arn,
            fleet: t.get(FLEET_TAG).cloned().unwrap_or_default(),
            complete: t.contains_key(tags::SPEC),
            traffic: share.into(),
            listener,
            test_rule,
            port: group.port().unwrap_or(0).into(),
            health_check: Some(health_check),
            live_since: millis(LIVE_SINCE_TAG),
            replaced_at: millis(REPLACED_AT_TAG),
            ..Colour::default()
        };
        self.colours
            .entry(address)
            .or_default()
            .insert(colour.clone(), (entry, t.clone()));
    }

    /// An instance of a colour (one whose target group is gone, or not
    /// made yet, still counts); terminated ones are gone.
    fn add_instance(&mut self, instance: &Instance) {
        let t = tag_map(instance.tags());
        let Some((address, colour)) = service_colour(&t) else {
            return;
        };
        let state = instance.state().and_then(|s| s.name());
        if matches!(
            state,
            Some(InstanceStateName::Terminated | InstanceStateName::ShuttingDown)
        ) {
            return;
        }
        let (entry, _) = self
            .colours
            .entry(address)
            .or_default()
            .entry(colour.clone())
            .or_insert_with(|| {
                (
                    Colour {
                        name: colour.clone(),
                        ..Colour::default()
                    },
                    t.clone(),
                )
            });
        entry
            .instances
            .push(instance.instance_id().unwrap_or("").to_string());
        if matches!(
            state,
            Some(InstanceStateName::Running | InstanceStateName::Pending)
        ) {
            entry.running += 1;
            if entry.image.is_empty() {
                entry.image = instance.image_id().unwrap_or("").into();
                entry.instance_type = instance
                    .instance_type()
                    .map(|t| t.as_str().to_string())
                    .unwrap_or_default();
            }
        }
    }
}

/// One service read afresh (every step starts from the world as it is now).
pub(super) async fn read(
    aws: &AwsProvider,
    address: &Address,
    env: &str,
) -> Result<Option<ObservedResource>, CloudError> {
    let pass = Discovery::new(env);
    Ok(observe(aws, &pass)
        .await?
        .into_iter()
        .find(|s| &s.address == address))
}
