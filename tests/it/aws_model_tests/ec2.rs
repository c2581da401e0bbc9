//! Instances and images: `pending`, `stopping`, `shutting-down`, and the
//! filters and waiters that read them.

use std::time::Duration;

use aws_sdk_ec2::client::Waiters as _;
use aws_sdk_ec2::types::Filter;

use super::{eventually, exceeded, of_states, pair, patience, Aws, SHORT_WAIT};
use crate::aws_model::AwsTimes;

#[tokio::test]
async fn new_instances_are_pending_then_running_and_state_filters_agree() {
    let aws = Aws::new("ap-northeast-3", AwsTimes::realistic()).await;
    let (_, subnets) = aws.network().await;
    let mut ids = Aws::launch(&aws.ec2, &subnets[0], 2).await;
    ids.sort();

    assert_eq!(
        of_states(aws.states(&ids).await),
        [pair("pending", 0), pair("pending", 0)]
    );
    assert_eq!(aws.in_state("pending").await, ids);
    assert_eq!(aws.in_state("running").await, Vec::<String>::new());
    let waited = aws
        .ec2
        .wait_until_instance_running()
        .set_instance_ids(Some(ids.clone()))
        .wait(SHORT_WAIT)
        .await;
    assert!(exceeded(waited), "the waiter must see them pending");

    aws.speed_up();
    let running = |s: &Vec<(String, String, i32)>| s.iter().all(|(_, n, _)| n == "running");
    let states = eventually(
        "booted",
        patience(Duration::from_secs(20)),
        || aws.states(&ids),
        running,
    )
    .await;
    assert_eq!(
        of_states(states),
        [pair("running", 16), pair("running", 16)]
    );
    assert_eq!(aws.in_state("running").await, ids);
    assert_eq!(aws.in_state("pending").await, Vec::<String>::new());
    aws.ec2
        .wait_until_instance_running()
        .set_instance_ids(Some(ids.clone()))
        .wait(Duration::from_secs(5))
        .await
        .expect("the waiter sees them running");
}

#[tokio::test]
async fn stopping_and_shutting_down_come_before_stopped_and_terminated() {
    let aws = Aws::new("me-central-1", AwsTimes::realistic()).await;
    let (_, subnets) = aws.network().await;
    // Launched before the proxy saw them: running all along.
    let ids = Aws::launch(&aws.moto_ec2, &subnets[0], 3).await;
    let (stop, end, guest) = (&ids[0], &ids[1], &ids[2]);
    assert_eq!(
        of_states(aws.states(&ids).await),
        vec![pair("running", 16); 3]
    );

    aws.ec2
        .stop_instances()
        .instance_ids(stop)
        .send()
        .await
        .unwrap();
    aws.ec2
        .terminate_instances()
        .instance_ids(end)
        .send()
        .await
        .unwrap();
    // The builder guest's way: stopped inside moto, out of the proxy's sight.
    aws.moto_ec2
        .stop_instances()
        .instance_ids(guest)
        .send()
        .await
        .unwrap();

    let shown = of_states(aws.states(&ids).await);
    assert_eq!(
        shown,
        [
            pair("stopping", 64),
            pair("shutting-down", 32),
            pair("stopping", 64)
        ]
    );
    let mut stopping = vec![stop.clone(), guest.clone()];
    stopping.sort();
    assert_eq!(aws.in_state("stopping").await, stopping);
    assert_eq!(aws.in_state("shutting-down").await, vec![end.to_string()]);
    assert_eq!(aws.in_state("stopped").await, Vec::<String>::new());
    assert_eq!(aws.in_state("terminated").await, Vec::<String>::new());

    aws.speed_up();
    let settled = |s: &Vec<(String, String, i32)>| {
        s.iter()
            .all(|(_, n, _)| n == "stopped" || n == "terminated")
    };
    let states = eventually(
        "stopped",
        patience(Duration::from_secs(15)),
        || aws.states(&ids),
        settled,
    )
    .await;
    assert_eq!(
        of_states(states),
        [
            pair("stopped", 80),
            pair("terminated", 48),
            pair("stopped", 80)
        ]
    );
    assert_eq!(aws.in_state("stopped").await, stopping);
    aws.ec2
        .wait_until_instance_terminated()
        .instance_ids(end)
        .wait(Duration::from_secs(5))
        .await
        .expect("the waiter sees it terminated");
}

#[tokio::test]
async fn new_images_are_pending_then_available_and_the_state_filter_agrees() {
    let aws = Aws::new("il-central-1", AwsTimes::realistic()).await;
    let (_, subnets) = aws.network().await;
    let instance = Aws::launch(&aws.moto_ec2, &subnets[0], 1).await.remove(0);
    let created = aws
        .ec2
        .create_image()
        .instance_id(&instance)
        .name("model-created")
        .send()
        .await
        .unwrap();
    let copied = aws
        .ec2
        .copy_image()
        .source_image_id("ami-1e749f67")
        .source_region(aws.region)
        .name("model-copied")
        .send()
        .await
        .unwrap();
    let ids = vec![created.image_id.unwrap(), copied.image_id.unwrap()];
    let images = |state: Option<&'static str>| {
        let mut request = aws.ec2.describe_images().set_image_ids(Some(ids.clone()));
        if let Some(state) = state {
            request = request.filters(Filter::builder().name("state").values(state).build());
        }
        async move {
            let out = request.send().await.expect("DescribeImages");
            let mut found: Vec<(String, String)> = out
                .images()
                .iter()
                .map(|i| {
                    (
                        i.image_id().unwrap().to_string(),
                        i.state().unwrap().as_str().to_string(),
                    )
                })
                .collect();
            found.sort();
            found
        }
    };
    let mut pending: Vec<(String, String)> =
        ids.iter().map(|i| (i.clone(), "pending".into())).collect();
    pending.sort();
    assert_eq!(images(None).await, pending);
    assert_eq!(images(Some("pending")).await, pending);
    assert_eq!(images(Some("available")).await, []);
    let waited = aws
        .ec2
        .wait_until_image_available()
        .set_image_ids(Some(ids.clone()))
        .wait(SHORT_WAIT)
        .await;
    assert!(exceeded(waited), "the waiter must see them pending");

    aws.speed_up();
    let available =
        |s: &Vec<(String, String)>| s.len() == 2 && s.iter().all(|(_, st)| st == "available");
    eventually(
        "available",
        patience(Duration::from_secs(240)),
        || images(None),
        available,
    )
    .await;
    assert_eq!(images(Some("pending")).await, []);
    assert_eq!(images(Some("available")).await.len(), 2);
    aws.ec2
        .wait_until_image_available()
        .set_image_ids(Some(ids.clone()))
        .wait(Duration::from_secs(5))
        .await
        .expect("the waiter sees them available");
}

#[tokio::test]
async fn images_of_instances_aws_does_not_yet_show_stopped_are_recorded() {
    let aws = Aws::new("ap-northeast-2", AwsTimes::realistic()).await;
    let (_, subnets) = aws.network().await;
    let ids = Aws::launch(&aws.moto_ec2, &subnets[0], 3).await;
    let (running, stopped, stopping) = (&ids[0], &ids[1], &ids[2]);
    // Stopped before the proxy saw it: stopped all along.
    aws.moto_ec2
        .stop_instances()
        .instance_ids(stopped)
        .send()
        .await
        .unwrap();
    assert_eq!(
        aws.states(std::slice::from_ref(stopping)).await[0].1,
        "running"
    );
    // Stopped by its guest, inside moto: AWS would still show it stopping.
    aws.moto_ec2
        .stop_instances()
        .instance_ids(stopping)
        .send()
        .await
        .unwrap();

    let mut made = Vec::new();
    for (instance, name) in [
        (running, "of-running"),
        (stopped, "of-stopped"),
        (stopping, "of-stopping"),
    ] {
        let image = aws
            .ec2
            .create_image()
            .instance_id(instance)
            .name(name)
            .send()
            .await
            .unwrap();
        made.push(image.image_id.unwrap());
    }
    assert_eq!(
        aws.proxy.aws().images_of_unstopped_instances(),
        [made[0].clone(), made[2].clone()]
    );
}
