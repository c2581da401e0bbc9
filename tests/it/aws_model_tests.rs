//! The AWS model in the test proxy ([`crate::aws_model`]), through the real
//! SDK: each state AWS passes through, asserted right after the change at
//! AWS's own pace (scale 1, so it certainly still holds), then the end state
//! polled for after [`AwsModel::set_times`](crate::aws_model::AwsModel::set_times)
//! speeds the model up to [`AwsTimes::for_tests`].
//!
//! Each test has a region of its own. What a test sets up directly on moto,
//! before its proxy sees it, the model takes as long settled (running,
//! active, healthy) — how the tests get a healthy fleet without waiting.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{Filter, InstanceType};
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, ForwardActionConfig, ProtocolEnum, TargetDescription, TargetGroupTuple,
};
use aws_smithy_runtime_api::client::waiters::error::WaiterError;
use drctl::cloud::AwsSettings;

use crate::aws_model::AwsTimes;
use crate::proxy::FaultProxy;
use crate::support::moto_endpoint;

mod ec2;
mod elbv2;

type Ec2 = aws_sdk_ec2::Client;
type Elbv2 = aws_sdk_elasticloadbalancingv2::Client;

/// Clients through a modelling proxy, and straight to moto for set-up the
/// model should not time.
struct Aws {
    proxy: FaultProxy,
    ec2: Ec2,
    elbv2: Elbv2,
    moto_ec2: Ec2,
    moto_elbv2: Elbv2,
    region: &'static str,
}

impl Aws {
    async fn new(region: &'static str, times: AwsTimes) -> Aws {
        let proxy = FaultProxy::moto_as_aws(times);
        let quick = |endpoint: &str| AwsSettings {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(4),
            ..AwsSettings::sandbox(endpoint, region)
        };
        let through = quick(proxy.url()).load().await;
        let direct = quick(moto_endpoint()).load().await;
        Aws {
            ec2: Ec2::new(&through),
            elbv2: Elbv2::new(&through),
            moto_ec2: Ec2::new(&direct),
            moto_elbv2: Elbv2::new(&direct),
            proxy,
            region,
        }
    }

    /// The model at the tests' pace from now on, states under way included.
    fn speed_up(&self) {
        self.proxy.aws().set_times(AwsTimes::for_tests());
    }

    /// A VPC and two subnets in two zones, on moto: (vpc, subnets).
    async fn network(&self) -> (String, Vec<String>) {
        let vpc = self
            .moto_ec2
            .create_vpc()
            .cidr_block("10.0.0.0/16")
            .send()
            .await
            .unwrap()
            .vpc
            .unwrap()
            .vpc_id
            .unwrap();
        let mut subnets = Vec::new();
        for (n, zone) in ["a", "b"].iter().enumerate() {
            let subnet = self
                .moto_ec2
                .create_subnet()
                .vpc_id(&vpc)
                .cidr_block(format!("10.0.{n}.0/24"))
                .availability_zone(format!("{}{zone}", self.region))
                .send()
                .await
                .unwrap();
            subnets.push(subnet.subnet.unwrap().subnet_id.unwrap());
        }
        (vpc, subnets)
    }

    /// `count` instances launched through `ec2`.
    async fn launch(ec2: &Ec2, subnet: &str, count: i32) -> Vec<String> {
        let run = ec2
            .run_instances()
            .image_id("ami-1e749f67")
            .instance_type(InstanceType::T3Micro)
            .subnet_id(subnet)
            .min_count(count)
            .max_count(count)
            .send()
            .await
            .expect("RunInstances");
        run.instances()
            .iter()
            .map(|i| i.instance_id().unwrap().to_string())
            .collect()
    }

    /// (id, state name, state code) of `ids`, asked by instance id as the
    /// SDK's waiters do.
    async fn states(&self, ids: &[String]) -> Vec<(String, String, i32)> {
        let out = self
            .ec2
            .describe_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send()
            .await
            .expect("DescribeInstances");
        out.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .map(|i| {
                let state = i.state().unwrap();
                let name = state.name().unwrap().as_str().to_string();
                (
                    i.instance_id().unwrap().to_string(),
                    name,
                    state.code().unwrap(),
                )
            })
            .collect()
    }

    /// The instances an `instance-state-name` filter finds, after checking
    /// that no reservation came back empty.
    async fn in_state(&self, state: &str) -> Vec<String> {
        let filter = Filter::builder()
            .name("instance-state-name")
            .values(state)
            .build();
        let out = self
            .ec2
            .describe_instances()
            .filters(filter)
            .send()
            .await
            .unwrap();
        assert!(
            out.reservations().iter().all(|r| !r.instances().is_empty()),
            "an empty reservation under {state}: {out:?}"
        );
        let mut ids: Vec<String> = out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .map(|i| i.instance_id().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    }

    /// id → (state, reason, description) of `group`'s targets (only `ids`,
    /// if any are given).
    async fn health(
        &self,
        group: &str,
        ids: &[&str],
    ) -> BTreeMap<String, (String, String, String)> {
        let mut request = self.elbv2.describe_target_health().target_group_arn(group);
        for id in ids {
            request = request.targets(TargetDescription::builder().id(*id).build());
        }
        let out = request.send().await.expect("DescribeTargetHealth");
        out.target_health_descriptions()
            .iter()
            .map(|d| {
                let h = d.target_health().unwrap();
                let text = |s: Option<&str>| s.unwrap_or("").to_string();
                (
                    d.target().unwrap().id().unwrap().to_string(),
                    (
                        text(h.state().map(|s| s.as_str())),
                        text(h.reason().map(|r| r.as_str())),
                        text(h.description()),
                    ),
                )
            })
            .collect()
    }

    /// The states alone of [`Aws::health`].
    async fn health_states(&self, group: &str) -> BTreeMap<String, String> {
        self.health(group, &[])
            .await
            .into_iter()
            .map(|(id, (state, _, _))| (id, state))
            .collect()
    }

    async fn load_balancer(elbv2: &Elbv2, name: &str, subnets: &[String]) -> String {
        let out = elbv2
            .create_load_balancer()
            .name(name)
            .set_subnets(Some(subnets.to_vec()))
            .send()
            .await
            .expect("CreateLoadBalancer");
        out.load_balancers()[0]
            .load_balancer_arn()
            .unwrap()
            .to_string()
    }

    async fn target_group(elbv2: &Elbv2, name: &str, vpc: &str) -> String {
        let out = elbv2
            .create_target_group()
            .name(name)
            .protocol(ProtocolEnum::Http)
            .port(80)
            .vpc_id(vpc)
            .send()
            .await
            .expect("CreateTargetGroup");
        out.target_groups()[0]
            .target_group_arn()
            .unwrap()
            .to_string()
    }

    async fn register(elbv2: &Elbv2, group: &str, ids: &[String]) {
        let mut request = elbv2.register_targets().target_group_arn(group);
        for id in ids {
            request = request.targets(TargetDescription::builder().id(id).build());
        }
        request.send().await.expect("RegisterTargets");
    }

    async fn listener(elbv2: &Elbv2, lb: &str, action: Action) -> String {
        let out = elbv2
            .create_listener()
            .load_balancer_arn(lb)
            .protocol(ProtocolEnum::Http)
            .port(80)
            .default_actions(action)
            .send()
            .await
            .expect("CreateListener");
        out.listeners()[0].listener_arn().unwrap().to_string()
    }

    /// Two running instances registered in a group a listener forwards to,
    /// all made on moto before the proxy's first look: healthy at once.
    async fn settled_fleet(&self) -> Fleet {
        let (vpc, subnets) = self.network().await;
        let ids = Aws::launch(&self.moto_ec2, &subnets[0], 2).await;
        let lb = Aws::load_balancer(&self.moto_elbv2, "fleet", &subnets).await;
        let group = Aws::target_group(&self.moto_elbv2, "fleet", &vpc).await;
        Aws::register(&self.moto_elbv2, &group, &ids).await;
        Aws::listener(&self.moto_elbv2, &lb, forward(&group)).await;
        Fleet { vpc, ids, group }
    }
}

struct Fleet {
    vpc: String,
    ids: Vec<String>,
    group: String,
}

fn forward(group: &str) -> Action {
    Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .target_group_arn(group)
        .build()
}

/// A forward split between groups by weight.
fn weighted(groups: &[(&str, i32)]) -> Action {
    let mut config = ForwardActionConfig::builder();
    for (group, weight) in groups {
        config = config.target_groups(
            TargetGroupTuple::builder()
                .target_group_arn(*group)
                .weight(*weight)
                .build(),
        );
    }
    Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .forward_config(config.build())
        .build()
}

/// Long enough for a state lasting `aws` at AWS's pace to end at the tests'
/// pace, with room for a loaded machine.
fn patience(aws: Duration) -> Duration {
    AwsTimes::for_tests().of(aws) * 2 + Duration::from_secs(30)
}

/// Polls until `done` holds of what `poll` returns; fails with the last
/// value after `within`.
async fn eventually<T: Debug, F: Future<Output = T>>(
    what: &str,
    within: Duration,
    mut poll: impl FnMut() -> F,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + within;
    // Quick at the tests' scale; light on the shared moto at scale 1, where
    // each DescribeTargetHealth costs the model half a dozen calls.
    let mut pause = Duration::from_millis(20);
    loop {
        let seen = poll().await;
        if done(&seen) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still {seen:?} after {within:?}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 3 / 2).min(Duration::from_secs(1));
    }
}

fn exceeded<T, O, E>(waited: Result<T, WaiterError<O, E>>) -> bool {
    matches!(waited, Err(WaiterError::ExceededMaxWait(_)))
}

const SHORT_WAIT: Duration = Duration::from_millis(300);

fn pair(state: &str, code: i32) -> (String, i32) {
    (state.to_string(), code)
}

fn of_states(states: Vec<(String, String, i32)>) -> Vec<(String, i32)> {
    states.into_iter().map(|(_, s, c)| (s, c)).collect()
}
