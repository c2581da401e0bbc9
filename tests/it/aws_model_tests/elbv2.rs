//! Load balancers and target health: `provisioning`, in use or not (weight
//! 0 and rules included), `initial`, `draining`, forced health, and faults
//! in front of the model.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_elasticloadbalancingv2::client::Waiters as _;
use aws_sdk_elasticloadbalancingv2::types::{RuleCondition, TargetDescription};

use super::{eventually, exceeded, forward, patience, weighted, Aws, SHORT_WAIT};
use crate::aws_model::{AwsTimes, TargetOverride};
use crate::proxy::{Fault, Faults};

#[tokio::test]
async fn a_new_load_balancer_provisions_then_turns_active() {
    let aws = Aws::new("af-south-1", AwsTimes::realistic()).await;
    let (_, subnets) = aws.network().await;
    let lb = Aws::load_balancer(&aws.elbv2, "provisioned", &subnets).await;
    let state = || async {
        let out = aws
            .elbv2
            .describe_load_balancers()
            .load_balancer_arns(&lb)
            .send()
            .await
            .unwrap();
        out.load_balancers()[0]
            .state()
            .unwrap()
            .code()
            .unwrap()
            .as_str()
            .to_string()
    };
    assert_eq!(state().await, "provisioning");
    let waited = aws
        .elbv2
        .wait_until_load_balancer_available()
        .load_balancer_arns(&lb)
        .wait(SHORT_WAIT)
        .await;
    assert!(exceeded(waited), "the waiter must see it provisioning");

    aws.speed_up();
    eventually("active", patience(Duration::from_secs(150)), state, |s| {
        s == "active"
    })
    .await;
    aws.elbv2
        .wait_until_load_balancer_available()
        .load_balancer_arns(&lb)
        .wait(Duration::from_secs(5))
        .await
        .expect("the waiter sees it active");
}

const NOT_IN_USE: &str = "Target group is not configured to receive traffic from the load balancer";

/// Every target of a group no listener or rule forwards to.
fn not_in_use(ids: &[String]) -> BTreeMap<String, (String, String, String)> {
    each(ids, "unused", "Target.NotInUse", NOT_IN_USE)
}

fn each(
    ids: &[String],
    state: &str,
    reason: &str,
    description: &str,
) -> BTreeMap<String, (String, String, String)> {
    ids.iter()
        .map(|id| {
            (
                id.clone(),
                (state.into(), reason.into(), description.into()),
            )
        })
        .collect()
}

fn all_healthy(ids: &[String]) -> impl Fn(&BTreeMap<String, String>) -> bool + '_ {
    move |seen| {
        seen.len() == ids.len()
            && ids
                .iter()
                .all(|id| seen.get(id).map(String::as_str) == Some("healthy"))
    }
}

/// The longest a new target takes to pass at AWS's default settings: load
/// balancer provisioning, then 30 s × 5 checks.
const TO_HEALTHY: Duration = Duration::from_secs(150 + 150);

#[tokio::test]
async fn a_group_forwarded_to_at_weight_zero_is_in_use_and_checked() {
    let aws = Aws::new("ap-southeast-3", AwsTimes::realistic()).await;
    let (vpc, subnets) = aws.network().await;
    let ids = Aws::launch(&aws.moto_ec2, &subnets[0], 2).await;
    let lb = Aws::load_balancer(&aws.moto_elbv2, "weights", &subnets).await;
    let blue = Aws::target_group(&aws.elbv2, "blue", &vpc).await;
    let green = Aws::target_group(&aws.elbv2, "green", &vpc).await;
    Aws::register(&aws.elbv2, &green, &ids).await;
    assert_eq!(aws.health(&green, &[]).await, not_in_use(&ids));

    let listener = Aws::listener(&aws.elbv2, &lb, weighted(&[(&blue, 100), (&green, 0)])).await;
    let registering = each(
        &ids,
        "initial",
        "Elb.RegistrationInProgress",
        "Target registration is in progress",
    );
    assert_eq!(aws.health(&green, &[]).await, registering);
    let waited = aws
        .elbv2
        .wait_until_target_in_service()
        .target_group_arn(&green)
        .wait(SHORT_WAIT)
        .await;
    assert!(exceeded(waited), "the waiter must see them initial");

    aws.speed_up();
    eventually(
        "healthy",
        patience(TO_HEALTHY),
        || aws.health_states(&green),
        all_healthy(&ids),
    )
    .await;
    aws.elbv2
        .wait_until_target_in_service()
        .target_group_arn(&green)
        .wait(Duration::from_secs(5))
        .await
        .expect("the waiter sees them healthy");

    // Out of every forward: unused again at once.
    aws.elbv2
        .modify_listener()
        .listener_arn(&listener)
        .default_actions(forward(&blue))
        .send()
        .await
        .unwrap();
    assert_eq!(aws.health(&green, &[]).await, not_in_use(&ids));
}

#[tokio::test]
async fn a_group_a_listener_rule_forwards_to_is_in_use_until_the_rule_goes() {
    let aws = Aws::new("eu-central-2", AwsTimes::realistic()).await;
    let (vpc, subnets) = aws.network().await;
    let ids = Aws::launch(&aws.moto_ec2, &subnets[0], 1).await;
    // Made through the proxy: provisioning, so checks wait for it too.
    let lb = Aws::load_balancer(&aws.elbv2, "rules", &subnets).await;
    let blue = Aws::target_group(&aws.elbv2, "blue", &vpc).await;
    let green = Aws::target_group(&aws.elbv2, "green", &vpc).await;
    let listener = Aws::listener(&aws.elbv2, &lb, forward(&blue)).await;
    Aws::register(&aws.elbv2, &green, &ids).await;
    assert_eq!(aws.health(&green, &[]).await, not_in_use(&ids));

    let rule = aws
        .elbv2
        .create_rule()
        .listener_arn(&listener)
        .priority(10)
        .conditions(
            RuleCondition::builder()
                .field("path-pattern")
                .values("/green/*")
                .build(),
        )
        .actions(forward(&green))
        .send()
        .await
        .expect("CreateRule");
    let rule = rule.rules()[0].rule_arn().unwrap().to_string();
    let registering = each(
        &ids,
        "initial",
        "Elb.RegistrationInProgress",
        "Target registration is in progress",
    );
    assert_eq!(aws.health(&green, &[]).await, registering);

    aws.speed_up();
    eventually(
        "healthy",
        patience(TO_HEALTHY),
        || aws.health_states(&green),
        all_healthy(&ids),
    )
    .await;

    aws.elbv2
        .delete_rule()
        .rule_arn(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(aws.health(&green, &[]).await, not_in_use(&ids));
}

#[tokio::test]
async fn a_deregistered_target_drains_then_is_gone() {
    let aws = Aws::new("eu-south-2", AwsTimes::realistic()).await;
    let fleet = aws.settled_fleet().await;
    let (gone, kept) = (fleet.ids[0].as_str(), fleet.ids[1].as_str());
    assert_eq!(
        aws.health(&fleet.group, &[]).await,
        each(&fleet.ids, "healthy", "", "")
    );

    aws.elbv2
        .deregister_targets()
        .target_group_arn(&fleet.group)
        .targets(TargetDescription::builder().id(gone).build())
        .send()
        .await
        .unwrap();
    let draining = (
        "draining".to_string(),
        "Target.DeregistrationInProgress".to_string(),
        "Target deregistration is in progress".to_string(),
    );
    let healthy = ("healthy".to_string(), String::new(), String::new());
    let seen = aws.health(&fleet.group, &[]).await;
    assert_eq!(
        seen,
        BTreeMap::from([
            (gone.to_string(), draining.clone()),
            (kept.to_string(), healthy)
        ])
    );
    assert_eq!(
        aws.health(&fleet.group, &[gone]).await,
        BTreeMap::from([(gone.to_string(), draining)])
    );

    aws.speed_up();
    let without = |s: &BTreeMap<String, String>| !s.contains_key(gone);
    let left = eventually(
        "gone",
        patience(Duration::from_secs(300)),
        || aws.health_states(&fleet.group),
        without,
    )
    .await;
    assert_eq!(left.keys().collect::<Vec<_>>(), [kept]);
    let asked = aws.health(&fleet.group, &[gone]).await;
    assert_eq!(asked[gone].1, "Target.NotRegistered", "{asked:?}");
}

#[tokio::test]
async fn forced_health_shows_once_a_target_is_checked_and_clears() {
    let aws = Aws::new("ap-south-2", AwsTimes::realistic()).await;
    let fleet = aws.settled_fleet().await;
    let (sick, fine) = (fleet.ids[0].as_str(), fleet.ids[1].as_str());
    // The same instance in a group nothing forwards to.
    let idle = Aws::target_group(&aws.elbv2, "idle", &fleet.vpc).await;
    Aws::register(&aws.elbv2, &idle, &fleet.ids[..1]).await;

    aws.proxy
        .aws()
        .set_target_health(sick, TargetOverride::Unhealthy("Target.Timeout"));
    let seen = aws.health(&fleet.group, &[]).await;
    assert_eq!(
        seen[sick],
        (
            "unhealthy".into(),
            "Target.Timeout".into(),
            "Request timed out".into()
        )
    );
    assert_eq!(seen[fine].0, "healthy");
    assert_eq!(
        aws.health(&idle, &[]).await[sick].1,
        "Target.NotInUse",
        "an unused target is not checked"
    );

    aws.proxy.aws().clear_target_health(sick);
    assert_eq!(aws.health_states(&fleet.group).await[sick], "healthy");

    aws.proxy.aws().set_target_health(
        sick,
        TargetOverride::Flapping {
            period: Duration::from_millis(40),
        },
    );
    // Both faces, sooner or later; which one a given call meets is timing.
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 2 {
        assert!(Instant::now() < deadline, "only {seen:?} while flapping");
        seen.insert(
            aws.health(&fleet.group, &[sick])
                .await
                .remove(sick)
                .unwrap(),
        );
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let states: Vec<&str> = seen.iter().map(|h| h.0.as_str()).collect();
    assert_eq!(states, ["healthy", "unhealthy"], "{seen:?}");
    aws.proxy.aws().clear_target_health(sick);

    // Every target of the groups named `fle…`; a target's own comes first.
    let stuck = TargetOverride::State("unused", "Target.InvalidState");
    aws.proxy.aws().set_group_health("fle", stuck);
    let invalid = (
        "unused".to_string(),
        "Target.InvalidState".to_string(),
        "Target is in an invalid state".to_string(),
    );
    let seen = aws.health(&fleet.group, &[]).await;
    assert_eq!((&seen[sick], &seen[fine]), (&invalid, &invalid));
    aws.proxy
        .aws()
        .set_target_health(sick, TargetOverride::Unhealthy("Target.Timeout"));
    let seen = aws.health_states(&fleet.group).await;
    assert_eq!(
        (seen[sick].as_str(), seen[fine].as_str()),
        ("unhealthy", "unused")
    );
    assert_eq!(aws.health(&idle, &[]).await[sick].1, "Target.NotInUse");
    aws.proxy.aws().clear_group_health("fle");
    aws.proxy.aws().clear_target_health(sick);
    let seen = aws.health_states(&fleet.group).await;
    assert_eq!(
        (seen[sick].as_str(), seen[fine].as_str()),
        ("healthy", "healthy")
    );
}

#[tokio::test]
async fn faults_meet_requests_before_the_model_and_its_own_calls_are_not_counted() {
    let aws = Aws::new("me-south-1", AwsTimes::realistic()).await;
    let fleet = aws.settled_fleet().await;
    let gone = fleet.ids[0].as_str();
    aws.proxy.set_faults(
        Faults::none()
            .nth("DeregisterTargets", 1, Fault::Status(503))
            .nth("DescribeTargetHealth", 1, Fault::Throttle),
    );
    aws.proxy.reset_counts();

    aws.elbv2
        .deregister_targets()
        .target_group_arn(&fleet.group)
        .targets(TargetDescription::builder().id(gone).build())
        .send()
        .await
        .expect("retried past the 503");
    assert_eq!(aws.health_states(&fleet.group).await[gone], "draining");

    let by_action = aws.proxy.by_action();
    let deregister = aws.proxy.counts("DeregisterTargets");
    assert_eq!(
        (deregister.errors, deregister.forwarded),
        (1, 1),
        "{by_action:?}"
    );
    let describe = aws.proxy.counts("DescribeTargetHealth");
    assert_eq!(
        (describe.throttled, describe.forwarded),
        (1, 1),
        "{by_action:?}"
    );
    assert_eq!(
        aws.proxy.total().calls(),
        4,
        "the model's calls to moto are its own: {by_action:?}"
    );
}
