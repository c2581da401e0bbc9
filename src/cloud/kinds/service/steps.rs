//! A service's steps against AWS, each an idempotent ensure starting from the
//! service as it is now ([`colours::read`]):
//!
//! - `colour`: remove stale idle colours, create the new colour (target
//!   group, fleet, registration), wait until every target is healthy or tear
//!   it down, and cut over at once when the runbook has no cutover phase;
//! - `cutover`: move the listener ([`traffic::cutover`]);
//! - `maintain` / `retire`: health checks in place; old colours deregistered,
//!   drained for the target group's deregistration delay, and deleted.

use crate::cloud::kinds::service::health;
use crate::cloud::kinds::service::in_use;
use crate::cloud::kinds::service::traffic;
use std::collections::BTreeMap;
use std::time::Duration;

use super::colours;
use crate::kinds::service::colours::{colours_of, live, Colour};

use super::in_use::InUse;
use crate::kinds::service::op::ServiceOp;
use crate::kinds::service::{duration_of, fleet_hash, FLEET_TAG, HEALTH_TIMEOUT_DEFAULT};

use crate::cloud::aws::AwsProvider;
use crate::cloud::ec2::{Ec2, Select};
use crate::cloud::elbv2::{DefaultAction, Elbv2, TargetGroupSpec};
use crate::cloud::kinds::common::gone_ok;
use crate::cloud::kinds::{instances, target_group};
use crate::cloud::provider::LateInputs;
use crate::cloud::wait::{self, Probe};
use crate::cloud::{names, CloudError};
use crate::kinds::common::Want;
use crate::types::tags;
use crate::world::{Address, Attrs, ObservedResource, Tags};

/// Runs the step the plan put in `attrs` (`operation`). A new colour may
/// start before its listener exists (`late`): it takes it once its fleet
/// is up.
pub(super) async fn run(
    aws: &AwsProvider,
    address: &Address,
    attrs: &Attrs,
    tags: &Tags,
    (token, late): (&str, Option<&LateInputs<'_>>),
) -> Result<ObservedResource, CloudError> {
    let want = Want::new(address, attrs);
    let env = tags
        .get(tags::ENV)
        .cloned()
        .ok_or_else(|| want.bad("drctl:env", "the environment's tag"))?;
    let operation = ServiceOp::read(&want)?;
    // The service's listener; steps of their own (retire) carry none, and
    // find it on the colours.
    let listener = want.opt_str("listener")?.unwrap_or("");
    // The service as it is now, read once: each operation starts from it.
    let mut colours = current(aws, address, &env).await?;
    let maintain = matches!(operation, ServiceOp::Maintain { .. });
    match operation {
        ServiceOp::Colour {
            colour,
            replace: replaced,
            then,
        } => {
            for stale in colours.iter().filter(|c| replaced.contains(&c.name)) {
                let sent_back = traffic::canary_sent_back(aws, &colours, stale).await?;
                refuse_live(address, &sent_back, "remove")?;
                // A canary served requests a moment ago: drained first.
                remove(aws, address, &sent_back, stale.traffic > 0, listener).await?;
            }
            colours.retain(|c| c.name != colour && !replaced.contains(&c.name));
            let live = live(&colours).cloned();
            let new = NewColour {
                address,
                attrs,
                tags,
                token,
                name: &colour,
                late: late.filter(|_| listener.is_empty()),
            };
            let (made, completed) = new.create(aws, listener, live.as_ref()).await?;
            colours.push(made);
            if let Some(moved) = then {
                let attrs = completed.as_ref().map_or(attrs, |(attrs, _)| attrs);
                traffic::cutover(aws, address, attrs, &colours, &moved).await?;
            }
        }
        ServiceOp::Cutover(moved) => {
            traffic::cutover(aws, address, attrs, &colours, &moved).await?
        }
        ServiceOp::Maintain { retire } | ServiceOp::Retire { retire } => {
            if maintain {
                update_health_checks(aws, &want, &colours).await?;
            }
            for name in retire {
                if let Some(old) = colours.iter().find(|c| c.name == name) {
                    let old = traffic::canary_sent_back(aws, &colours, old).await?;
                    refuse_live(address, &old, "retire")?;
                    remove(aws, address, &old, true, listener).await?;
                }
            }
        }
    }
    colours::read(aws, address, &env)
        .await?
        .ok_or_else(|| CloudError::Failed {
            what: address.to_string(),
            state: "gone".into(),
            reason: "no colour of the service is left".into(),
        })
}

async fn current(
    aws: &AwsProvider,
    address: &Address,
    env: &str,
) -> Result<Vec<Colour>, CloudError> {
    Ok(colours::read(aws, address, env)
        .await?
        .map(|s| colours_of(&s))
        .unwrap_or_default())
}

/// Traffic never goes to nowhere: a colour taking any is not removed.
fn refuse_live(address: &Address, colour: &Colour, doing: &str) -> Result<(), CloudError> {
    if colour.traffic > 0 {
        return Err(CloudError::Failed {
            what: format!("{address} colour {}", colour.name),
            state: format!("taking {}% of the traffic", colour.traffic),
            reason: format!("a colour that takes traffic is not {doing}d; re-plan"),
        });
    }
    Ok(())
}

/// A colour to make, as the step declares it.
struct NewColour<'a> {
    address: &'a Address,
    attrs: &'a Attrs,
    tags: &'a Tags,
    token: &'a str,
    name: &'a str,
    /// The listener and final tags, when the step started without them.
    late: Option<&'a LateInputs<'a>>,
}

impl NewColour<'_> {
    /// Its target group, its fleet registered with it, the group put in use
    /// on `listener` (at weight 0 beside `live`, or behind a test rule) so
    /// AWS health-checks it, and every target awaited healthy. A colour that
    /// does not become healthy is taken out of use and torn down: the
    /// listener's traffic is exactly as it was.
    async fn create(
        &self,
        aws: &AwsProvider,
        listener: &str,
        live: Option<&Colour>,
    ) -> Result<(Colour, Option<(Attrs, Tags)>), CloudError> {
        let (address, attrs, tags, colour) = (self.address, self.attrs, self.tags, self.name);
        let want = Want::new(address, attrs);
        let fleet = fleet_hash(attrs).ok_or_else(|| want.bad("image", "known fleet attributes"))?;
        let env = tags.get(tags::ENV).map_or("", String::as_str);
        let mut base: Tags = tags.clone();
        base.remove(tags::SPEC);
        base.insert(tags::COLOR.into(), colour.into());
        if let Some(name) = base.get_mut(tags::NAME) {
            name.push_str(&format!("/{colour}"));
        }
        let mut group_tags = base.clone();
        group_tags.insert(FLEET_TAG.into(), fleet.clone());

        let subnets = want.strs("subnets")?;
        let first = subnets
            .first()
            .ok_or_else(|| want.bad("subnets", "a non-empty list"))?;
        let vpc = aws
            .ec2
            .describe_subnets(Select::Ids(std::slice::from_ref(first)))
            .await?
            .first()
            .and_then(|s| s.vpc_id().map(str::to_string))
            .ok_or_else(|| want.bad("subnets", "existing subnet ids"))?;
        let name = names::colour_name(env, &address.stack, &address.resource(), colour, &fleet);
        let health_check = want.health_check()?;
        let port = want.i32("port")?;
        let spec = TargetGroupSpec {
            name: &name,
            protocol: "HTTP",
            port,
            vpc: &vpc,
            health_check: &health_check,
        };
        // A resumed create adopts its group, if it is this colour's.
        let (group, _) = target_group::create_or_adopt(aws, &spec, &group_tags).await?;
        let arn = group.target_group_arn().unwrap_or_default().to_string();
        let mut made = Colour {
            name: colour.into(),
            target_group: arn.clone(),
            fleet: fleet.clone(),
            port: port.into(),
            ..Colour::default()
        };
        let mut completed: Option<(Attrs, Tags)> = None;
        let mut listener = listener.to_string();
        let result = async {
            let count =
                usize::try_from(want.i32("count")?).map_err(|_| want.bad("count", "≥ 0"))?;
            let ids =
                instances::launch_fleet(aws, &want, &base, &BTreeMap::new(), count, self.token)
                    .await?;
            made.instances = ids.clone();
            let targets: Vec<(String, i32)> = ids.iter().map(|id| (id.clone(), port)).collect();
            aws.elbv2.register_targets(&arn, &targets).await?;
            if let Some(late) = self.late {
                // The fleet is up; now the listener is needed.
                let (attrs, tags) = late.wait(&format!("{address} {colour}")).await?;
                listener = Want::new(address, &attrs).str("listener")?.to_string();
                completed = Some((attrs, tags));
            }
            match in_use::put_in_use(aws, &listener, &made, live, &base).await? {
                InUse::Member => made.listener = listener.clone(),
                InUse::Rule(rule) => made.test_rule = rule,
            }
            let deadline = duration_of(attrs, "health_timeout", HEALTH_TIMEOUT_DEFAULT);
            health::wait_healthy(aws, &format!("{address} {colour}"), &arn, &ids, deadline).await
        }
        .await;
        if let Err(e) = result {
            // Never healthy (or never made): out of use and torn down,
            // nothing else touched.
            let torn = remove(aws, address, &made, false, &listener).await;
            let outcome = match torn {
                Ok(()) => "it was torn down".to_string(),
                Err(t) => format!("tearing it down failed too ({t}); the next plan removes it"),
            };
            return Err(CloudError::Failed {
                what: format!("{address} {colour} colour"),
                state: "not healthy".into(),
                reason: format!("{e}; {outcome} and the listener's traffic was not moved"),
            });
        }
        // Finished: the spec tag goes last, so a colour cut short reads
        // unfinished. Its listener is part of it.
        let tags = completed.as_ref().map_or(tags, |(_, tags)| tags);
        let spec = tags.get(tags::SPEC).cloned().unwrap_or_default();
        aws.elbv2
            .add_tags(&arn, &BTreeMap::from([(tags::SPEC.to_string(), spec)]))
            .await?;
        made.complete = true;
        made.running = made.instances.len() as i64;
        Ok((made, completed))
    }
}

/// Health checks of finished colours, in place.
async fn update_health_checks(
    aws: &AwsProvider,
    want: &Want<'_>,
    colours: &[Colour],
) -> Result<(), CloudError> {
    let check = want.health_check()?;
    let wanted = want.attrs.get("health_check");
    for colour in colours.iter().filter(|c| !c.target_group.is_empty()) {
        if colour.health_check.as_ref() != wanted {
            aws.elbv2
                .modify_health_check(&colour.target_group, "HTTP", &check)
                .await?;
        }
    }
    Ok(())
}

/// Removes a colour: targets deregistered (and drained, if `drain`: the
/// group's deregistration delay, so connections in flight finish), the
/// group taken out of use (out of the forward action of `listener` or of
/// the colour's own listener, its test rule deleted), instances
/// terminated, target group deleted.
pub(super) async fn remove(
    aws: &AwsProvider,
    address: &Address,
    colour: &Colour,
    drain: bool,
    listener: &str,
) -> Result<(), CloudError> {
    let what = format!("{address} {}", colour.name);
    let arn = colour.target_group.as_str();
    if !arn.is_empty() && drain {
        let registered = aws.elbv2.target_health(arn).await?;
        let targets: Vec<(String, i32)> = registered
            .iter()
            .map(|t| (t.id.clone(), t.port.unwrap_or(colour.port as i32)))
            .collect();
        gone_ok(aws.elbv2.deregister_targets(arn, &targets).await)?;
        let delay = aws.elbv2.deregistration_delay(arn).await?;
        wait_drained(aws, &what, arn, delay).await?;
    }
    in_use::take_out_of_use(aws, listener, colour).await?;
    if !colour.instances.is_empty() {
        instances::terminate(aws, &what, &colour.instances).await?;
    }
    if !arn.is_empty() {
        aws.patiently(&format!("delete {arn}"), || {
            aws.elbv2.delete_target_group(arn)
        })
        .await?;
    }
    Ok(())
}

/// Until no target of the group is `draining`, for at most the group's
/// deregistration delay (and a margin for AWS's bookkeeping).
async fn wait_drained(
    aws: &AwsProvider,
    what: &str,
    arn: &str,
    delay: Duration,
) -> Result<(), CloudError> {
    wait::until(
        &format!("{what}: deregistered targets drained"),
        delay + Duration::from_secs(30),
        aws.waits.backoff,
        || async {
            let draining = aws
                .elbv2
                .target_health(arn)
                .await?
                .into_iter()
                .filter(|t| t.state == "draining")
                .count();
            Ok(if draining == 0 {
                Probe::Done(())
            } else {
                Probe::Waiting(format!("{draining} target(s) draining"))
            })
        },
    )
    .await
}

/// Deletes the whole service (destroy, a drill's teardown): the listener
/// is first pointed away from it (a fixed 503), as its target groups cannot
/// be deleted while it forwards to them.
pub(super) async fn delete(
    aws: &AwsProvider,
    current: &ObservedResource,
) -> Result<(), CloudError> {
    let env = current.tags.get(tags::ENV).cloned().unwrap_or_default();
    let colours = match colours::read(aws, &current.address, &env).await? {
        Some(service) => colours_of(&service),
        None => colours_of(current),
    };
    let mut listeners: Vec<&str> = colours
        .iter()
        .filter(|c| c.traffic > 0 && !c.listener.is_empty())
        .map(|c| c.listener.as_str())
        .collect();
    listeners.dedup();
    for listener in listeners {
        // The listener may be gone already. Once it answers 503 it is no
        // longer the service's: its own default action counts again.
        gone_ok(
            aws.elbv2
                .set_default_action(listener, DefaultAction::Unavailable)
                .await,
        )?;
        gone_ok(
            aws.elbv2
                .remove_tags(listener, &[tags::TRAFFIC.to_string()])
                .await,
        )?;
    }
    for colour in &colours {
        remove(aws, &current.address, colour, false, "").await?;
    }
    Ok(())
}
