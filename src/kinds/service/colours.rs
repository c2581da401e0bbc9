//! Reading a service back: its colours (target groups and instances carrying
//! the service's address and a `drctl:color`) and where its listener sends
//! the traffic. A service is one object: the planner sees every colour at
//! once, and a plan's `current` covers them all.
//!
//! The object's `colors` attribute is a table, colour → [`Colour`] fields;
//! its exports are the live colour's (`live_color`, `target_group_arn`,
//! `ids`), or the newest finished colour's before the first cutover.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Instance, InstanceStateName};

use super::{FLEET_TAG, LIVE_SINCE_TAG, REPLACED_AT_TAG};
use crate::cloud::aws::{AwsProvider, Discovery};
use crate::cloud::ec2::tag_map;
use crate::cloud::elbv2::{forward_weights, ListenerRule, ListenerRules};
use crate::cloud::{tags, CloudError};
use crate::model::ResourceKind;
use crate::world::{Address, Attrs, ObservedResource, Tags, Value};

/// One colour of a service, as observed (in the service's `colors`
/// attribute, by name).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Colour {
    #[serde(skip)]
    pub name: String,
    /// Its target group's ARN ("" if an interrupted create made none yet).
    pub target_group: String,
    /// [`super::fleet_hash`] of what it runs ("" if unknown).
    pub fleet: String,
    /// Its create finished (healthy, `drctl:spec` written last).
    pub complete: bool,
    /// Its share of the listener's traffic, in percent.
    pub traffic: i64,
    /// The listener whose default action forwards to it, at any weight (0
    /// included: in use, so AWS health-checks it); "" if none does.
    pub listener: String,
    /// The test-traffic rule forwarding to it while no colour is live
    /// ([`super::TEST_HEADER`]); "" if none does.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub test_rule: String,
    /// Its instances that are not terminated (running or not).
    pub instances: Vec<String>,
    pub running: i64,
    pub image: String,
    pub instance_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<Value>,
    pub port: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_since: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced_at: Option<i64>,
}

impl Colour {
    pub(super) fn to_value(&self) -> Value {
        serde_json::to_value(self)
            .and_then(serde_json::from_value)
            .expect("a colour is a table of plain values")
    }

    fn from_value(name: &str, value: &Value) -> Option<Colour> {
        let colour: Colour = serde_json::from_value(serde_json::to_value(value).ok()?).ok()?;
        Some(Colour {
            name: name.to_string(),
            ..colour
        })
    }
}

/// The colours of an observed service, by name.
pub fn colours_of(service: &ObservedResource) -> Vec<Colour> {
    service
        .attrs
        .get("colors")
        .and_then(Value::as_table)
        .map(|t| {
            t.iter()
                .filter_map(|(name, v)| Colour::from_value(name, v))
                .collect()
        })
        .unwrap_or_default()
}

/// The live colour: of those taking traffic, the one that took it all
/// last (a canary on its way has a share but not that), else the one
/// taking the most.
pub(super) fn live(colours: &[Colour]) -> Option<&Colour> {
    colours
        .iter()
        .filter(|c| c.traffic > 0)
        .max_by_key(|c| (c.live_since, c.traffic))
}

/// A canary on its way: a colour with a share of the traffic that is not
/// the live one.
pub(super) fn canary_under_way(colours: &[Colour]) -> Option<&Colour> {
    let live = live(colours)?;
    colours
        .iter()
        .find(|c| c.traffic > 0 && c.name != live.name)
}

/// The name of an observed service's live colour ([`live`]).
pub fn live_colour(service: &ObservedResource) -> Option<String> {
    live(&colours_of(service)).map(|c| c.name.clone())
}

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
    let mut traffic: BTreeMap<String, (String, i32)> = BTreeMap::new();
    for listener in listeners {
        for (group, share) in forward_weights(listener.default_actions()) {
            traffic.insert(group, (listener.listener_arn().unwrap_or("").into(), share));
        }
    }
    // Target group → the test rule that puts it in use before any traffic.
    let test_rules: BTreeMap<&str, &str> = rules
        .iter()
        .filter(|r| r.matches_header(super::TEST_HEADER))
        .flat_map(|r| r.forwards_to.iter().map(|g| (g.as_str(), r.arn.as_str())))
        .collect();
    // (address, colour) → colour, and the tags of its target group.
    let mut found: BTreeMap<Address, BTreeMap<String, (Colour, Tags)>> = BTreeMap::new();
    for (group, t) in groups {
        let (Some(address), Some(colour)) = (Address::from_tags(t), t.get(tags::COLOR)) else {
            continue;
        };
        if address.kind != ResourceKind::Service {
            continue;
        }
        let arn = group.target_group_arn().unwrap_or("").to_string();
        let (listener, share) = traffic.get(&arn).cloned().unwrap_or_default();
        let millis = |k: &str| t.get(k).and_then(|v| v.parse::<i64>().ok());
        let health_check = crate::kinds::target_group::health_check_of(group);
        let test_rule = test_rules
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
        found
            .entry(address)
            .or_default()
            .insert(colour.clone(), (entry, t.clone()));
    }
    for instance in instances {
        let t = tag_map(instance.tags());
        let (Some(address), Some(colour)) = (Address::from_tags(&t), t.get(tags::COLOR)) else {
            continue;
        };
        if address.kind != ResourceKind::Service {
            continue;
        }
        let state = instance.state().and_then(|s| s.name());
        if matches!(
            state,
            Some(InstanceStateName::Terminated | InstanceStateName::ShuttingDown)
        ) {
            continue;
        }
        let (entry, _) = found
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
    found
        .into_iter()
        .map(|(address, colours)| service_object(address, colours))
        .collect()
}

/// One service from its colours.
fn service_object(address: Address, colours: BTreeMap<String, (Colour, Tags)>) -> ObservedResource {
    let mut list: Vec<(Colour, Tags)> = colours.into_values().collect();
    for (c, _) in &mut list {
        c.instances.sort();
    }
    let all: Vec<Colour> = list.iter().map(|(c, _)| c.clone()).collect();
    let live_colour = live(&all);
    let is_live = live_colour.is_some();
    // What the service exports and is named by: the live colour, else the
    // newest finished one, else any.
    let main = live_colour
        .or_else(|| {
            all.iter()
                .filter(|c| c.complete)
                .max_by_key(|c| (c.live_since, c.name.clone()))
        })
        .or_else(|| all.first())
        .cloned()
        .unwrap_or_default();
    let tags = list
        .iter()
        .find(|(c, _)| c.name == main.name)
        .map(|(_, t)| t.clone())
        .unwrap_or_default();
    let mut attrs = Attrs::new();
    attrs.insert(
        "colors".into(),
        Value::Table(all.iter().map(|c| (c.name.clone(), c.to_value())).collect()),
    );
    let mut exports = Attrs::new();
    exports.insert(
        "live_color".into(),
        Value::Str(if is_live {
            main.name.clone()
        } else {
            String::new()
        }),
    );
    exports.insert(
        "target_group_arn".into(),
        Value::Str(main.target_group.clone()),
    );
    exports.insert(
        "ids".into(),
        Value::str_list(main.instances.iter().cloned()),
    );
    let id = if main.target_group.is_empty() {
        main.instances.first().cloned().unwrap_or_default()
    } else {
        main.target_group.clone()
    };
    ObservedResource {
        address,
        id,
        attrs,
        exports,
        tags,
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
