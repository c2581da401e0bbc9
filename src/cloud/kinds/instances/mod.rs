//! The AWS half of [`crate::kinds::instances`]: reading its objects back, creating,
//! updating and deleting them.

use crate::cloud::kinds::common::{existing_by, identity_tags, sorted_strs, Seen};
use crate::kinds::common::Want;
use crate::types::ResourceKind;
use aws_sdk_ec2::types::{Instance, InstanceStateName};
use capacity::{launch, surplus};
use std::collections::BTreeMap;
use targets::TARGETS_TAG;
mod capacity;
mod targets;

use crate::cloud::aws::{AwsProvider, Discovery};
use crate::cloud::ec2::{self, Ec2, Select};
use crate::cloud::provider::CreateRequest;
use crate::cloud::{names, CloudError};
use crate::types::tags;
use crate::world::{Address, Attrs, ObservedResource, Tags, Value};
pub(crate) use capacity::{launch as launch_fleet, terminate, wait_terminated};

pub struct Instances;

impl super::AwsKind for Instances {
    aws_operations!();

    fn existing<'a>(
        &'a self,
        aws: &'a AwsProvider,
        resource_type: &str,
        ids: &'a [String],
    ) -> Option<super::Op<'a, std::collections::BTreeSet<String>>> {
        // A terminated instance is gone, though Describe still shows it.
        let live = |i: Instance| {
            let terminated = state_of(&i) == Some(&InstanceStateName::Terminated);
            i.instance_id.filter(|_| !terminated)
        };
        (resource_type == "ec2:instance")
            .then(|| existing_by(aws.ec2.describe_instances(Select::Ids(ids)), live))
    }
}

async fn observe(aws: &AwsProvider, pass: &Discovery) -> Result<Vec<ObservedResource>, CloudError> {
    let instances = pass.instances(aws).await?;
    let mut found = fleets(instances, ResourceKind::Instances);
    targets::read_registrations(aws, pass, &mut found).await?;
    Ok(found)
}

/// One fleet from its instances (all carrying the same address tags).
/// `count`, `ids` and `private_ips` cover pending and running instances;
/// image, type and groups come from the first of them (by id).
fn fleet_seen(instances: &[&Instance]) -> Seen {
    let mut all: Vec<&Instance> = instances.to_vec();
    all.sort_by_key(|i| i.instance_id());
    let live: Vec<&Instance> = all.iter().copied().filter(|i| is_live(i)).collect();
    let ids: Vec<&str> = live.iter().filter_map(|i| i.instance_id()).collect();
    let ips: Vec<&str> = live
        .iter()
        .map(|i| i.private_ip_address().unwrap_or_default())
        .collect();
    let mut tags = all
        .first()
        .map(|i| ec2::tag_map(i.tags()))
        .unwrap_or_default();
    // The fleet is registered only if every live member says so (a member
    // launched by a scale-out, or before a kill, is not yet).
    let registered: Vec<Option<String>> = live
        .iter()
        .map(|i| ec2::tag_map(i.tags()).remove(TARGETS_TAG))
        .collect();
    match registered.first() {
        Some(Some(first)) if registered.iter().all(|r| r.as_ref() == Some(first)) => {
            tags.insert(TARGETS_TAG.to_string(), first.clone());
        }
        _ => {
            tags.remove(TARGETS_TAG);
        }
    }
    let mut seen = Seen::new(ids.first().copied().unwrap_or_default(), tags)
        .attr("count", Value::Int(live.len() as i64))
        .export("ids", Value::str_list(ids.iter().copied()))
        .export("private_ips", Value::str_list(ips));
    if let Some(first) = live.first() {
        seen = seen
            .attr(
                "image",
                Value::Str(first.image_id().unwrap_or_default().into()),
            )
            .attr(
                "instance_type",
                Value::Str(
                    first
                        .instance_type()
                        .map(|t| t.as_str())
                        .unwrap_or_default()
                        .into(),
                ),
            )
            .attr(
                "security_groups",
                sorted_strs(first.security_groups().iter().filter_map(|g| g.group_id())),
            );
    }
    seen
}

/// Instances grouped into fleets by their address tags and the run that
/// created the fleet: while a replacement is under way, the old and the new
/// fleet share an address and are told apart by `drctl:run` (scaling and
/// retagging keep a fleet's creating run).
fn fleets(instances: &[Instance], kind: ResourceKind) -> Vec<ObservedResource> {
    let mut groups: BTreeMap<(Address, String), Vec<&Instance>> = BTreeMap::new();
    for instance in instances {
        let tags = ec2::tag_map(instance.tags());
        if let Some(address) = Address::from_tags(&tags) {
            if address.kind == kind {
                let run = tags.get(tags::RUN).cloned().unwrap_or_default();
                groups.entry((address, run)).or_default().push(instance);
            }
        }
    }
    groups
        .into_iter()
        .map(|((address, _), members)| fleet_seen(&members).at(&address))
        .collect()
}

// --- Create, update, delete ---------------------------------------------------

async fn create(
    aws: &AwsProvider,
    req: &CreateRequest<'_>,
) -> Result<ObservedResource, CloudError> {
    let want = Want::new(req.address, req.attrs);
    let count = usize::try_from(want.i32("count")?).map_err(|_| want.bad("count", "≥ 0"))?;
    let ids = launch(
        aws,
        &want,
        req.tags,
        &BTreeMap::new(),
        count,
        req.client_token,
    )
    .await?;
    targets::register(aws, &want, &ids, &[]).await?;
    targets::registered(read_fleet(aws, req.address, &ids, req.tags).await?, &want)
}

/// The fleet made of `ids` (those still pending or running). An empty
/// fleet has no instance to carry tags: it reports `tags`.
async fn read_fleet(
    aws: &AwsProvider,
    address: &Address,
    ids: &[String],
    tags: &Tags,
) -> Result<ObservedResource, CloudError> {
    let instances = aws.ec2.describe_instances(Select::Ids(ids)).await?;
    let members: Vec<&Instance> = instances.iter().filter(|i| is_live(i)).collect();
    let mut fleet = fleet_seen(&members);
    if members.is_empty() {
        fleet.tags = tags.clone();
    }
    Ok(fleet.at(address))
}

/// The fleet's instances now (any state but shutting-down/terminated).
async fn fleet_members(
    aws: &AwsProvider,
    current: &ObservedResource,
) -> Result<Vec<Instance>, CloudError> {
    // A fleet is its address *and* its creating run: during a replacement
    // the old and the new fleet share the address (see `fleets`).
    let identity = identity_tags(&current.tags).map(|mut identity| {
        if let Some(run) = current.tags.get(tags::RUN) {
            identity.insert(tags::RUN.to_string(), run.clone());
        }
        identity
    });
    match identity {
        Some(identity) => aws.ec2.describe_instances(Select::Tagged(&identity)).await,
        None => {
            let ids = current
                .exports
                .get("ids")
                .and_then(Value::as_str_list)
                .unwrap_or_default()
                .into_iter()
                .map(str::to_string)
                .collect::<Vec<_>>();
            Ok(aws
                .ec2
                .describe_instances(Select::Ids(&ids))
                .await?
                .into_iter()
                .filter(|i| {
                    !matches!(
                        state_of(i),
                        Some(InstanceStateName::Terminated | InstanceStateName::ShuttingDown)
                    )
                })
                .collect())
        }
    }
}

async fn update(
    aws: &AwsProvider,
    current: &ObservedResource,
    attrs: &Attrs,
    tags: &Tags,
) -> Result<ObservedResource, CloudError> {
    let want = Want::new(&current.address, attrs);
    let wanted = usize::try_from(want.i32("count")?).map_err(|_| want.bad("count", "≥ 0"))?;
    let members = fleet_members(aws, current).await?;
    let live: Vec<&Instance> = members.iter().filter(|i| is_live(i)).collect();
    let mut ids: Vec<String> = live
        .iter()
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect();

    // Every member (stopped ones too) carries the fleet's tags.
    let members_ids: Vec<String> = members
        .iter()
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect();
    // The registration record stays until `register` rewrites it: a kill in
    // between leaves the old record, and the next plan registers again.
    let mut keep = tags.clone();
    if let Some(record) = current.tags.get(TARGETS_TAG) {
        keep.insert(TARGETS_TAG.to_string(), record.clone());
    }
    aws.retag_ec2(&members_ids, &current.tags, &keep).await?;

    if wanted > live.len() {
        let mut used: BTreeMap<String, usize> = BTreeMap::new();
        for i in &live {
            if let Some(s) = i.subnet_id() {
                *used.entry(s.to_string()).or_default() += 1;
            }
        }
        let mut sorted = ids.clone();
        sorted.sort();
        // Deterministic for this exact step, so a retried call is
        // recognised by AWS (moto ignores it).
        let token = format!(
            "{}:{}>{}:{}",
            current.address,
            live.len(),
            wanted,
            sorted.join(",")
        );
        let token = names::client_token(&token, "scale");
        ids.extend(launch(aws, &want, tags, &used, wanted - live.len(), &token).await?);
    } else if wanted < live.len() {
        let doomed = surplus(&live, wanted);
        terminate(aws, &current.address.to_string(), &doomed).await?;
        ids.retain(|id| !doomed.contains(id));
    }
    let before: Vec<String> = current
        .attrs
        .get("target_groups")
        .and_then(|v| v.as_str_list())
        .map(|l| l.into_iter().map(str::to_string).collect())
        .unwrap_or_default();
    targets::register(aws, &want, &ids, &before).await?;
    targets::registered(read_fleet(aws, &current.address, &ids, tags).await?, &want)
}

async fn delete(aws: &AwsProvider, current: &ObservedResource) -> Result<(), CloudError> {
    let ids: Vec<String> = fleet_members(aws, current)
        .await?
        .iter()
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    terminate(aws, &current.address.to_string(), &ids).await
}

pub(super) fn state_of(instance: &Instance) -> Option<&InstanceStateName> {
    instance.state().and_then(|s| s.name())
}

pub(super) fn is_live(instance: &Instance) -> bool {
    matches!(
        state_of(instance),
        Some(InstanceStateName::Pending | InstanceStateName::Running)
    )
}

#[cfg(test)]
mod tests {
    use super::capacity::spread;
    use super::*;
    use aws_sdk_ec2::types::{InstanceState, Tag};
    use aws_smithy_types::DateTime;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn new_instances_go_round_robin_then_to_the_least_used_subnets() {
        let subnets = ids(&["s-b", "s-a", "s-c"]);
        assert_eq!(
            spread(&subnets, &BTreeMap::new(), 5),
            vec![("s-b".into(), 2), ("s-a".into(), 2), ("s-c".into(), 1)]
        );
        let used = BTreeMap::from([("s-b".to_string(), 2), ("s-a".to_string(), 1)]);
        assert_eq!(
            spread(&subnets, &used, 2),
            vec![("s-a".into(), 1), ("s-c".into(), 1)]
        );
        assert_eq!(spread(&subnets, &used, 0), vec![]);
        assert_eq!(
            spread(&ids(&["x", "x"]), &BTreeMap::new(), 2),
            vec![("x".into(), 2)]
        );
    }

    fn instance(id: &str, launched: i64, state: InstanceStateName) -> Instance {
        Instance::builder()
            .instance_id(id)
            .launch_time(DateTime::from_secs(launched))
            .state(InstanceState::builder().name(state).build())
            .image_id("ami-1")
            .private_ip_address(format!("10.0.0.{}", launched))
            .tags(Tag::builder().key(tags::STACK).value("app").build())
            .tags(
                Tag::builder()
                    .key(tags::RESOURCE)
                    .value("instances.web")
                    .build(),
            )
            .build()
    }

    #[test]
    fn scale_down_terminates_the_newest_first() {
        let a = instance("i-a", 100, InstanceStateName::Running);
        let b = instance("i-b", 300, InstanceStateName::Running);
        let c = instance("i-c", 200, InstanceStateName::Running);
        let d = instance("i-d", 300, InstanceStateName::Running);
        assert_eq!(surplus(&[&a, &b, &c, &d], 2), ids(&["i-d", "i-b"]));
        assert_eq!(surplus(&[&a, &b], 2), Vec::<String>::new());
    }

    #[test]
    fn a_fleet_counts_only_pending_and_running_instances() {
        let all = vec![
            instance("i-c", 3, InstanceStateName::Running),
            instance("i-a", 1, InstanceStateName::Pending),
            instance("i-b", 2, InstanceStateName::Stopped),
        ];
        let found = fleets(&all, ResourceKind::Instances);
        assert_eq!(found.len(), 1);
        let fleet = &found[0];
        assert_eq!(fleet.address.to_string(), "app.instances.web");
        assert_eq!(fleet.id, "i-a");
        assert_eq!(fleet.attrs["count"], Value::Int(2));
        assert_eq!(fleet.exports["ids"], Value::str_list(["i-a", "i-c"]));
        assert_eq!(
            fleet.exports["private_ips"],
            Value::str_list(["10.0.0.1", "10.0.0.3"])
        );
        assert_eq!(fleet.attrs["image"], Value::Str("ami-1".into()));

        let stopped = vec![instance("i-b", 2, InstanceStateName::Stopped)];
        let fleet = &fleets(&stopped, ResourceKind::Instances)[0];
        assert_eq!(fleet.id, "");
        assert_eq!(fleet.attrs.get("count"), Some(&Value::Int(0)));
        assert_eq!(fleet.attrs.get("image"), None);
        assert!(fleets(&stopped, ResourceKind::Service).is_empty());
    }
}
