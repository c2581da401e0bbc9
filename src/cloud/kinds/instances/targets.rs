//! An `instances` fleet's registration with its `target_groups`: done after
//! the launch, recorded on the members (`drctl:targets`), and read back from
//! that record against the environment's target groups, so discovery makes
//! no call per group.

use std::collections::BTreeMap;

use crate::cloud::aws::{AwsProvider, Discovery};
use crate::cloud::ec2::Ec2;
use crate::cloud::elbv2::Elbv2;
use crate::cloud::kinds::common::{gone_ok, sorted_strs};
use crate::cloud::CloudError;
use crate::kinds::common::Want;
use crate::world::{ObservedResource, Value};

/// On every member: the names of the target groups drctl registered the
/// fleet with, written after the registration succeeded. Read back against
/// the environment's target groups, it is the fleet's `target_groups` with
/// no DescribeTargetHealth per group at discovery.
pub(super) const TARGETS_TAG: &str = "drctl:targets";

/// Each fleet's `target_groups`, from the registration record on its
/// members.
pub(super) async fn read_registrations(
    aws: &AwsProvider,
    pass: &Discovery,
    found: &mut [ObservedResource],
) -> Result<(), CloudError> {
    for fleet in found
        .iter_mut()
        .filter(|f| f.attrs.get("count") != Some(&Value::Int(0)))
    {
        // Registered nowhere until the tag says otherwise: a fleet cut short
        // between launch and registration reads `[]` and is registered again.
        // (An empty fleet has nothing to register: the attribute is unknown.)
        fleet
            .attrs
            .insert("target_groups".into(), Value::List(Vec::new()));
    }
    if found.iter().any(|f| f.tags.contains_key(TARGETS_TAG)) {
        // Names to ARNs through the pass's one ELBv2 read (shared with the
        // ELBv2 kinds): a group deleted since drops out, and is re-registered.
        let groups = &pass.elbv2(aws).await?.target_groups;
        for fleet in found
            .iter_mut()
            .filter(|f| f.tags.contains_key(TARGETS_TAG))
        {
            let names = fleet.tags.get(TARGETS_TAG).cloned().unwrap_or_default();
            let arns = names
                .split(',')
                .filter(|n| !n.is_empty())
                .filter_map(|name| {
                    groups
                        .iter()
                        .find(|g| g.target_group_name() == Some(name))
                        .and_then(|g| g.target_group_arn())
                });
            fleet
                .attrs
                .insert("target_groups".into(), sorted_strs(arns));
        }
    }
    Ok(())
}

/// A fleet just registered: its `target_groups` are the wanted ones (as
/// discovery reads them back from the record on its members).
pub(super) fn registered(
    mut fleet: ObservedResource,
    want: &Want<'_>,
) -> Result<ObservedResource, CloudError> {
    if fleet.attrs.get("count") != Some(&Value::Int(0)) {
        let wanted = want.strs("target_groups").unwrap_or_default();
        fleet.attrs.insert(
            "target_groups".into(),
            sorted_strs(wanted.iter().map(String::as_str)),
        );
    }
    Ok(fleet)
}

/// Registers `ids` with every wanted target group (idempotent), deregisters
/// them from the groups `before` that are no longer wanted, then records
/// the wanted groups' names on the instances.
pub(super) async fn register(
    aws: &AwsProvider,
    want: &Want<'_>,
    ids: &[String],
    before: &[String],
) -> Result<(), CloudError> {
    let wanted = want.strs("target_groups").unwrap_or_default();
    if ids.is_empty() || (wanted.is_empty() && before.is_empty()) {
        return Ok(());
    }
    let mut names = Vec::new();
    for arn in &wanted {
        let group = aws
            .elbv2
            .target_group(arn)
            .await?
            .ok_or_else(|| CloudError::Failed {
                what: format!("target group {arn}"),
                state: "missing".into(),
                reason: format!("{} is to register with it", want.address),
            })?;
        aws.elbv2
            .register_targets(arn, &on_port(ids, &group))
            .await?;
        names.extend(group.target_group_name().map(str::to_string));
    }
    for arn in before.iter().filter(|a| !wanted.contains(a)) {
        if let Some(group) = aws.elbv2.target_group(arn).await? {
            gone_ok(
                aws.elbv2
                    .deregister_targets(arn, &on_port(ids, &group))
                    .await,
            )?;
        }
    }
    names.sort();
    let tag = BTreeMap::from([(TARGETS_TAG.to_string(), names.join(","))]);
    aws.ec2.create_tags(ids, &tag).await
}

/// The instances as targets on the group's port.
fn on_port(
    ids: &[String],
    group: &aws_sdk_elasticloadbalancingv2::types::TargetGroup,
) -> Vec<(String, i32)> {
    let port = group.port().unwrap_or(80);
    ids.iter().map(|id| (id.clone(), port)).collect()
}
