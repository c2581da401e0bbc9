//! What the region says about a plan's needs: reads, and mutating calls
//! tried with `DryRun=true` (see [`crate::cloud::ec2::DryRun`]). Nothing
//! else: a preflight creates nothing. Each answer is kept, or the error
//! that stood in its way (which makes its finding unknown, not a pass).

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_elasticloadbalancingv2::types::LoadBalancerTypeEnum;

use super::needs::{ImageNeed, Needs};
use crate::cloud::aws::AwsProvider;
use crate::cloud::ec2::{DryRun, DryRunAnswer, Ec2};
use crate::cloud::elbv2::Elbv2;
use crate::cloud::CloudError;

/// The region's answers; `Err` holds why a question went unanswered.
#[derive(Debug, Clone, PartialEq)]
pub struct Observations {
    pub zones: Result<Vec<String>, String>,
    /// (instance type, zone) pairs offered.
    pub offerings: Result<BTreeSet<(String, String)>, String>,
    /// Image id → state, for the images the plan needs (absent: not found).
    pub images: Result<BTreeMap<String, String>, String>,
    pub max_instances: Result<Option<u64>, String>,
    pub live_instances: Result<usize, String>,
    /// ELBv2's limits by name (`application-load-balancers`, `target-groups`).
    pub elb_limits: Result<BTreeMap<String, u64>, String>,
    /// Application load balancers in the region.
    pub load_balancers: Result<usize, String>,
    pub target_groups: Result<usize, String>,
    pub dry_runs: BTreeMap<DryRun, Result<DryRunAnswer, String>>,
}

fn said<T>(result: Result<T, CloudError>) -> Result<T, String> {
    result.map_err(|e| e.to_string())
}

/// Asks the region what `needs` needs to know, and nothing more.
pub async fn observe(aws: &AwsProvider, needs: &Needs) -> Observations {
    let ec2 = aws.ec2();
    let elbv2 = aws.elbv2();
    let types: Vec<String> = needs
        .placements
        .iter()
        .map(|p| p.instance_type.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let zones: Vec<String> = needs.zones.iter().cloned().collect();
    let image_ids: Vec<String> = needs
        .images
        .iter()
        .filter_map(|n| match n {
            ImageNeed::Id { id, .. } => Some(id.clone()),
            _ => None,
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let adds = needs.adds;
    let elb_needed = adds.load_balancers + adds.target_groups > 0;
    let (zones_seen, offerings, images, max_instances, live_instances) = tokio::join!(
        async { said(ec2.availability_zones().await) },
        async {
            said(ec2.instance_type_offerings(&types, &zones).await)
                .map(|o| o.into_iter().collect::<BTreeSet<_>>())
        },
        async {
            said(ec2.launchable_images(&image_ids).await).map(|images| {
                images
                    .into_iter()
                    .filter_map(|i| {
                        let state = i.state().map(|s| s.as_str().to_string())?;
                        Some((i.image_id?, state))
                    })
                    .collect::<BTreeMap<_, _>>()
            })
        },
        async {
            if adds.instances == 0 {
                return Ok(None);
            }
            said(ec2.account_attributes().await).map(|a| {
                a.get("max-instances")
                    .and_then(|v| v.first())
                    .and_then(|v| v.parse().ok())
            })
        },
        async {
            match adds.instances {
                0 => Ok(0),
                _ => said(ec2.live_instance_count().await),
            }
        },
    );
    let (elb_limits, load_balancers, target_groups) = match elb_needed {
        false => (Ok(BTreeMap::new()), Ok(0), Ok(0)),
        true => tokio::join!(
            async { said(elbv2.account_limits().await) },
            async {
                said(elbv2.load_balancers().await).map(|lbs| {
                    lbs.iter()
                        .filter(|lb| {
                            matches!(lb.r#type(), None | Some(LoadBalancerTypeEnum::Application))
                        })
                        .count()
                })
            },
            async { said(elbv2.target_groups().await).map(|g| g.len()) },
        ),
    };
    // One at a time: a handful of calls, and a denied account may be
    // throttled hard.
    let mut dry_runs = BTreeMap::new();
    for call in needs.calls.values().flat_map(|c| c.dry_runs.iter()) {
        if !dry_runs.contains_key(call) {
            dry_runs.insert(call.clone(), said(ec2.dry_run(call).await));
        }
    }
    Observations {
        zones: zones_seen,
        offerings,
        images,
        max_instances,
        live_instances,
        elb_limits,
        load_balancers,
        target_groups,
        dry_runs,
    }
}
