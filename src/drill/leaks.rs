//! The leak check: after teardown, what still carries the drill's
//! environment tag. It does not trust drctl's own discovery (which only
//! knows the kinds drctl manages): it asks the Resource Groups Tagging API
//! for every resource of any service, EC2's DescribeTags for every EC2
//! resource of any type, and ELBv2's describes for load balancers and target
//! groups. A resource the owning service's describe no longer shows (a
//! terminated instance, a deleted load balancer the tagging index still
//! lists) is gone, not leaked.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::cloud::aws::AwsProvider;
use crate::cloud::ec2::Ec2;
use crate::cloud::CloudError;
use crate::types::tags;

use super::report::{Leak, LeakCheck};

const TAGGING: &str = "tagging:GetResources";
const EC2_TAGS: &str = "ec2:DescribeTags";
const ELBV2: &str = "elasticloadbalancing:Describe*";

/// Looks for leaks; looks again after `settle` pauses while some remain,
/// since AWS's indexes lag deletions by a few seconds.
pub async fn leak_check(
    aws: &AwsProvider,
    environment: &str,
    settle: &[Duration],
) -> Result<LeakCheck, CloudError> {
    let mut leaks = find(aws, environment).await?;
    for pause in settle {
        if leaks.is_empty() {
            break;
        }
        tokio::time::sleep(*pause).await;
        leaks = find(aws, environment).await?;
    }
    Ok(LeakCheck {
        // Set by the caller, who knows the clock.
        started_at: 0,
        performed: true,
        sources: vec![TAGGING.into(), EC2_TAGS.into(), ELBV2.into()],
        leaks,
    })
}

/// One pass over every source.
async fn find(aws: &AwsProvider, environment: &str) -> Result<Vec<Leak>, CloudError> {
    // resource key → (type, drctl:resource, seen by)
    let mut found: BTreeMap<String, (String, Option<String>, BTreeSet<&str>)> = BTreeMap::new();
    let mut note = |key: String, kind: String, resource: Option<String>, source: &'static str| {
        let entry = found
            .entry(key)
            .or_insert_with(|| (kind, None, BTreeSet::new()));
        entry.1 = entry.1.take().or(resource);
        entry.2.insert(source);
    };

    for tagged in aws.tagging.tagged(tags::ENV, environment).await? {
        let (key, kind) = identify(&tagged.arn);
        note(key, kind, tagged.tags.get(tags::RESOURCE).cloned(), TAGGING);
    }
    for (id, kind) in aws.ec2.tagged_resources(tags::ENV, environment).await? {
        note(
            id,
            format!("ec2:{}", kind.replace('-', "_")),
            None,
            EC2_TAGS,
        );
    }
    // The same one read of load balancers, target groups and their tags
    // that discovery makes.
    let pass = crate::cloud::aws::Discovery::new(environment);
    let elbv2 = pass.elbv2(aws).await?;
    let arns = (elbv2.load_balancers.iter()).filter_map(|lb| lb.load_balancer_arn());
    let arns = arns.chain(
        elbv2
            .target_groups
            .iter()
            .filter_map(|g| g.target_group_arn()),
    );
    for arn in arns {
        if let Some(tags) = elbv2.ours(Some(arn), environment) {
            let (key, kind) = identify(arn);
            note(key, kind, tags.get(tags::RESOURCE).cloned(), ELBV2);
        }
    }

    // What the owning service's own describe no longer shows is gone,
    // whatever an index says (tags outlive their resources in some indexes).
    let mut by_kind: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, (kind, ..)) in &found {
        if kind.starts_with("ec2:") {
            by_kind.entry(kind.clone()).or_default().push(id.clone());
        }
    }
    let mut gone: BTreeSet<String> = BTreeSet::new();
    for (kind, ids) in &by_kind {
        if let Some(existing) = crate::cloud::kinds::existing(aws, kind, ids).await? {
            gone.extend(ids.iter().filter(|id| !existing.contains(*id)).cloned());
        }
    }
    Ok(found
        .into_iter()
        .filter(|(key, (kind, _, seen_by))| {
            if gone.contains(key) {
                return false;
            }
            // ELBv2 resources must be confirmed by ELBv2 itself; other
            // services' resources only the tagging API can see.
            !kind.starts_with("elasticloadbalancing:") || seen_by.contains(ELBV2)
        })
        .map(
            |(resource, (resource_type, drctl_resource, seen_by))| Leak {
                resource,
                resource_type,
                drctl_resource,
                found_by: seen_by.into_iter().map(str::to_string).collect(),
            },
        )
        .collect())
}

/// An ARN's key (EC2 resources by id, so they meet DescribeTags' ids; other
/// resources by ARN) and type (`ec2:instance`, `elasticloadbalancing:targetgroup`).
fn identify(arn: &str) -> (String, String) {
    // arn:partition:service:region:account:resource
    let mut parts = arn.splitn(6, ':');
    let (service, resource) = match (parts.nth(2), parts.nth(2)) {
        (Some(service), Some(resource)) => (service, resource),
        _ => return (arn.to_string(), "unknown".to_string()),
    };
    let kind_and_id = resource
        .split_once('/')
        .or_else(|| resource.split_once(':'));
    match kind_and_id {
        Some((kind, id)) if service == "ec2" => {
            (id.to_string(), format!("ec2:{}", kind.replace('-', "_")))
        }
        Some((kind, _)) => (arn.to_string(), format!("{service}:{kind}")),
        // e.g. an S3 bucket: `arn:aws:s3:::name`
        None => (arn.to_string(), service.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec2_arns_are_keyed_by_id_others_by_arn() {
        assert_eq!(
            identify("arn:aws:ec2:us-west-2:123456789012:instance/i-0abc"),
            ("i-0abc".into(), "ec2:instance".into())
        );
        assert_eq!(
            identify("arn:aws:ec2:us-west-2:123456789012:security-group/sg-1"),
            ("sg-1".into(), "ec2:security_group".into())
        );
        let tg = "arn:aws:elasticloadbalancing:us-west-2:123456789012:targetgroup/web-1/73e2d6bc24d8a067";
        assert_eq!(
            identify(tg),
            (tg.into(), "elasticloadbalancing:targetgroup".into())
        );
        let bucket = "arn:aws:s3:::drill-bucket";
        assert_eq!(identify(bucket), (bucket.into(), "s3".into()));
    }
}
