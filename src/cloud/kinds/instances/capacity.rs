//! How a fleet grows and shrinks: where new instances go (spread over the
//! subnets), which go first when it shrinks, launching and waiting until
//! they run, and waiting until they are gone (image builders use that too).

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Instance, InstanceStateName};

use super::state_of;
use crate::cloud::aws::AwsProvider;
use crate::cloud::ec2::{Ec2, Launch, Select};
use crate::cloud::kinds::common::gone_ok;
use crate::cloud::wait::{self, Probe};
use crate::cloud::{names, CloudError};
use crate::kinds::common::Want;
use crate::world::Tags;

/// Where `n` new instances go: each to the subnet with the fewest instances
/// so far (counting `used`), ties to the earlier subnet in `subnets`. With
/// nothing used, that is round-robin in the given order. Returns
/// (subnet, how many), in `subnets` order, without zeros.
pub(super) fn spread(
    subnets: &[String],
    used: &BTreeMap<String, usize>,
    n: usize,
) -> Vec<(String, usize)> {
    let mut unique: Vec<&String> = Vec::new();
    for s in subnets {
        if !unique.contains(&s) {
            unique.push(s);
        }
    }
    let mut load: Vec<usize> = unique
        .iter()
        .map(|s| used.get(*s).copied().unwrap_or(0))
        .collect();
    let mut added = vec![0usize; unique.len()];
    if unique.is_empty() {
        return Vec::new();
    }
    for _ in 0..n {
        let (i, _) = load
            .iter()
            .enumerate()
            .min_by_key(|(i, l)| (**l, *i))
            .expect("at least one subnet");
        load[i] += 1;
        added[i] += 1;
    }
    unique
        .into_iter()
        .zip(added)
        .filter(|(_, k)| *k > 0)
        .map(|(s, k)| (s.clone(), k))
        .collect()
}

/// Which running instances to terminate to keep `keep`: the most recently
/// launched first (ties: the higher id).
pub(super) fn surplus(live: &[&Instance], keep: usize) -> Vec<String> {
    let mut newest_first: Vec<&&Instance> = live.iter().collect();
    newest_first.sort_by(|a, b| {
        let key = |i: &Instance| {
            (
                i.launch_time().map(|t| (t.secs(), t.subsec_nanos())),
                i.instance_id().map(str::to_string),
            )
        };
        key(b).cmp(&key(a))
    });
    let doomed = live.len().saturating_sub(keep);
    newest_first
        .into_iter()
        .take(doomed)
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect()
}

fn instance_summary(states: &BTreeMap<String, usize>) -> String {
    states
        .iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Launches `count` instances spread over the wanted subnets (fewest
/// `used` first), waits until all run, returns their ids.
pub(crate) async fn launch(
    aws: &AwsProvider,
    want: &Want<'_>,
    tags: &Tags,
    used: &BTreeMap<String, usize>,
    count: usize,
    token: &str,
) -> Result<Vec<String>, CloudError> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let subnets = want.strs("subnets")?;
    if subnets.is_empty() {
        return Err(want.bad("subnets", "a non-empty list of subnet ids").into());
    }
    let mut groups = want.strs("security_groups")?;
    groups.sort();
    let image = want.str("image")?;
    let instance_type = want.str("instance_type")?;
    let user_data = want.opt_str("user_data")?.unwrap_or_default();
    let mut ids = Vec::new();
    for (subnet, n) in spread(&subnets, used, count) {
        let launched = aws
            .ec2
            .run_instances(&Launch {
                image,
                instance_type,
                subnet: &subnet,
                security_groups: &groups,
                user_data,
                count: i32::try_from(n).map_err(|_| want.bad("count", "a 32-bit integer"))?,
                client_token: &names::client_token(token, &subnet),
                tags,
                stop_on_shutdown: false,
            })
            .await;
        match launched {
            Ok(new) => ids.extend(new),
            Err(e) => {
                // Those already launched are tagged: the next discovery
                // counts them, and a retry only adds the missing ones.
                if !ids.is_empty() {
                    tracing::warn!(address = %want.address, launched = ids.len(), "a launch failed part-way");
                }
                return Err(e);
            }
        }
    }
    wait_running(aws, &want.address.to_string(), &ids).await?;
    Ok(ids)
}

async fn wait_running(aws: &AwsProvider, what: &str, ids: &[String]) -> Result<(), CloudError> {
    wait::until(
        &format!("{what}: {} instance(s) running", ids.len()),
        aws.waits.instances,
        aws.waits.backoff,
        || async {
            let instances = aws.ec2.describe_instances(Select::Ids(ids)).await?;
            let mut states: BTreeMap<String, usize> = BTreeMap::new();
            for instance in &instances {
                let state = state_of(instance).cloned();
                if let Some(
                    s @ (InstanceStateName::ShuttingDown
                    | InstanceStateName::Terminated
                    | InstanceStateName::Stopping
                    | InstanceStateName::Stopped),
                ) = &state
                {
                    return Err(CloudError::Failed {
                        what: format!(
                            "instance {} of {what}",
                            instance.instance_id().unwrap_or("?")
                        ),
                        state: s.as_str().to_string(),
                        reason: instance
                            .state_reason()
                            .and_then(|r| r.message())
                            .unwrap_or("it stopped while starting")
                            .to_string(),
                    });
                }
                let name = state.as_ref().map_or("unknown", |s| s.as_str());
                *states.entry(name.to_string()).or_default() += 1;
            }
            let invisible = ids.len().saturating_sub(instances.len());
            if invisible > 0 {
                states.insert("not visible yet".into(), invisible);
            }
            Ok(if states.get("running") == Some(&ids.len()) {
                Probe::Done(())
            } else {
                Probe::Waiting(instance_summary(&states))
            })
        },
    )
    .await
}

/// Terminates `ids` (those already gone count as done) and waits until
/// they are: the end of a fleet's surplus, a fleet, an image builder.
pub(crate) async fn terminate(
    aws: &AwsProvider,
    what: &str,
    ids: &[String],
) -> Result<(), CloudError> {
    gone_ok(aws.ec2.terminate_instances(ids).await)?;
    wait_terminated(aws, what, ids).await
}

pub(crate) async fn wait_terminated(
    aws: &AwsProvider,
    what: &str,
    ids: &[String],
) -> Result<(), CloudError> {
    wait::until(
        &format!("{what}: {} instance(s) terminated", ids.len()),
        aws.waits.instances,
        aws.waits.backoff,
        || async {
            let instances = aws.ec2.describe_instances(Select::Ids(ids)).await?;
            let mut states: BTreeMap<String, usize> = BTreeMap::new();
            for instance in &instances {
                match state_of(instance) {
                    Some(InstanceStateName::Terminated) => {}
                    other => {
                        let name = other.map_or("unknown", |s| s.as_str());
                        *states.entry(name.to_string()).or_default() += 1;
                    }
                }
            }
            Ok(if states.is_empty() {
                Probe::Done(())
            } else {
                Probe::Waiting(instance_summary(&states))
            })
        },
    )
    .await
}
