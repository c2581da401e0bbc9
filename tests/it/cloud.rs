//! The EC2 and ELBv2 adapters against a real AWS API emulator (moto server
//! over HTTP).

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_credential_types::credential_fn::provide_credentials_fn;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::SharedCredentialsProvider;
use drctl::cloud::ec2::{Ec2, Launch, SdkEc2};
use drctl::cloud::elbv2::{Elbv2, HealthCheck, SdkElbv2, TargetGroupSpec};
use drctl::cloud::{AwsSettings, CloudError};
use drctl::types::tags::{self, Identity};

use crate::proxy::{Fault, FaultProxy, Faults};
use crate::support::{drctl, moto_endpoint};

async fn config() -> SdkConfig {
    AwsSettings::sandbox(moto_endpoint(), "us-west-2")
        .load()
        .await
}

async fn ec2() -> SdkEc2 {
    SdkEc2::new(&config().await)
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A VPC with one subnet and `count` running instances in it:
/// (vpc, instance ids).
async fn instances(ec2: &SdkEc2, cidr: &str, count: i32) -> (String, Vec<String>) {
    let tags = labels(&[("drctl:env", cidr)]);
    let vpc = ec2
        .create_vpc(&format!("{cidr}/16"), &tags)
        .await
        .expect("vpc");
    let zone = &ec2.availability_zones().await.expect("zones")[0];
    let subnet = ec2
        .create_subnet(&vpc, &format!("{cidr}/24"), zone, &tags)
        .await
        .expect("subnet");
    let ids = ec2
        .run_instances(&Launch {
            image: "ami-1e749f67",
            instance_type: "t3.micro",
            subnet: &subnet,
            security_groups: &[],
            user_data: "",
            count,
            client_token: cidr,
            tags: &tags,
            stop_on_shutdown: false,
        })
        .await
        .expect("run instances");
    (vpc, ids)
}

#[tokio::test]
async fn a_tagged_vpc_is_discovered_back_by_tag() {
    let ec2 = ec2().await;
    let env = "smoke-discovery";
    let identity = Identity::new(env, "network", "vpc.main");
    let wanted = tags::tag_set(&identity, "spec-hash-1", "run-1", None, &BTreeMap::new());
    let id = ec2
        .create_vpc("10.77.0.0/16", &wanted)
        .await
        .expect("create vpc");

    // A VPC of another environment must not be discovered.
    let other = tags::tag_set(
        &Identity::new("someone-else", "network", "vpc.main"),
        "x",
        "run-2",
        None,
        &BTreeMap::new(),
    );
    let other_id = ec2
        .create_vpc("10.78.0.0/16", &other)
        .await
        .expect("create other vpc");

    let found = ec2.vpcs_in_env(env).await.expect("discover");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].id, id);
    assert_eq!(found[0].cidr_block, "10.77.0.0/16");
    assert_eq!(Identity::from_tags(&found[0].tags), Some(identity));
    assert_eq!(found[0].tags[tags::SPEC], "spec-hash-1");
    assert_eq!(found[0].tags[tags::RUN], "run-1");

    for vpc in [id, other_id] {
        ec2.delete_vpc(&vpc).await.expect("delete vpc");
    }
    assert!(ec2.vpcs_in_env(env).await.expect("discover").is_empty());
}

#[tokio::test]
async fn api_errors_name_the_operation_and_code() {
    let err = ec2()
        .await
        .delete_vpc("vpc-00000000")
        .await
        .expect_err("no such vpc");
    // AWS's code and message, one line; a call that was not retried does not
    // count its one attempt.
    assert_eq!(
        one_line(&err),
        "EC2 DeleteVpc failed (InvalidVpcID.NotFound): VpcID vpc-00000000 does not exist."
    );
    assert_eq!(err.code(), Some("InvalidVpcID.NotFound"));
}

/// `err` as the user sees it, checked to be one short line free of the
/// SDK's `Debug` output.
fn one_line(err: &CloudError) -> String {
    let text = err.to_string();
    assert!(!text.contains('\n'), "{text}");
    assert!(text.chars().count() < 200, "{} chars: {text}", text.len());
    for dump in [
        "DispatchFailure",
        "ConnectorError",
        "Response {",
        "Some(",
        "source:",
    ] {
        assert!(!text.contains(dump), "{dump} in {text}");
    }
    text
}

/// Client settings for `endpoint` that retry at once, `attempts` per call.
fn quick(endpoint: &str, attempts: u32) -> AwsSettings {
    AwsSettings {
        max_attempts: attempts,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(4),
        ..AwsSettings::sandbox(endpoint, "us-west-2")
    }
}

#[tokio::test]
async fn an_unreachable_endpoint_is_one_line_naming_it_and_the_attempts() {
    // Nothing listens on the discard port: every attempt is refused, and a
    // refused connection is retried.
    let ec2 = SdkEc2::new(&quick("http://127.0.0.1:9", 3).load().await);
    // A paginated read and a single request alike.
    let err = ec2.vpcs_in_env("nobody").await.expect_err("unreachable");
    assert_eq!(
        one_line(&err),
        "EC2 DescribeVpcs failed after 3 attempts: cannot connect to http://127.0.0.1:9 (connection refused)"
    );
    let err = ec2.delete_vpc("vpc-1").await.expect_err("unreachable");
    assert!(one_line(&err).starts_with("EC2 DeleteVpc failed after 3 attempts: cannot connect"));
    assert_eq!(err.code(), None);
}

#[tokio::test]
async fn missing_credentials_are_one_line() {
    let settings = quick(moto_endpoint(), 3);
    for (provider, expected) in [
        (
            SharedCredentialsProvider::new(provide_credentials_fn(|| async {
                Err(CredentialsError::not_loaded(
                    "no providers in chain provided credentials",
                ))
            })),
            "EC2 DeleteVpc failed: no AWS credentials found (profile/env/IMDS)",
        ),
        (
            SharedCredentialsProvider::new(provide_credentials_fn(|| async {
                Err(CredentialsError::provider_error(std::io::Error::other(
                    "failed to load IMDS session token",
                )))
            })),
            "EC2 DeleteVpc failed: cannot load AWS credentials: failed to load IMDS session token",
        ),
    ] {
        let config = settings
            .load()
            .await
            .into_builder()
            .credentials_provider(provider)
            .build();
        let err = SdkEc2::new(&config)
            .delete_vpc("vpc-1")
            .await
            .expect_err("no credentials");
        assert_eq!(one_line(&err), expected);
        assert!(matches!(err, CloudError::NoCredentials { .. }), "{err:?}");
        assert!(err.hint().is_some());
    }
}

#[tokio::test]
async fn a_call_throttled_to_the_end_counts_its_attempts() {
    let proxy = FaultProxy::moto(Faults::seeded(5).chance(&[], 1.0, Fault::Throttle));
    let ec2 = SdkEc2::new(&quick(proxy.url(), 4).load().await);
    let err = ec2.delete_vpc("vpc-1").await.expect_err("throttled");
    assert_eq!(
        one_line(&err),
        "EC2 DeleteVpc failed (RequestLimitExceeded) after 4 attempts: Request limit exceeded."
    );
    assert_eq!(proxy.total().throttled, 4);

    // A connection dropped unanswered on every attempt.
    proxy.set_faults(Faults::seeded(5).chance(&[], 1.0, Fault::Drop));
    let err = ec2.delete_vpc("vpc-1").await.expect_err("dropped");
    let text = one_line(&err);
    assert!(
        text.starts_with(&format!(
            "EC2 DeleteVpc failed after 4 attempts: no answer from {}: ",
            proxy.url()
        )),
        "{text}"
    );
}

#[test]
fn sandbox_status_with_sandbox_flag_shows_a_live_endpoint() {
    let state = crate::support::state_dir_sharing_venv();
    let out = drctl()
        .args([
            "--state-dir",
            state.path().to_str().unwrap(),
            "--sandbox",
            "sandbox",
            "status",
        ])
        .output()
        .expect("run drctl");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("sandbox endpoint http://127.0.0.1:"),
        "{stdout}"
    );
    assert!(stdout.contains("EC2 answers:"), "{stdout}");
}

#[tokio::test]
async fn images_are_found_by_owner_and_name_pattern() {
    let ec2 = ec2().await;
    let amazon = ["amazon".to_string()];
    let images = ec2
        .describe_images(&amazon, "amzn2-ami-hvm-*-x86_64-gp2")
        .await
        .expect("describe images");
    assert!(!images.is_empty());
    for image in &images {
        let name = image.name().unwrap_or_default();
        assert!(
            name.starts_with("amzn2-ami-hvm-") && name.ends_with("-x86_64-gp2"),
            "{name}"
        );
    }
    let none = ec2
        .describe_images(&amazon, "no-such-image-*")
        .await
        .expect("describe images");
    assert!(none.is_empty(), "{none:#?}");
}

#[tokio::test]
async fn images_are_found_by_tag() {
    let ec2 = ec2().await;
    let (_, ids) = instances(&ec2, "10.81.0.0", 1).await;
    let raw = aws_sdk_ec2::Client::new(&config().await);
    let image = raw
        .create_image()
        .instance_id(&ids[0])
        .name("it-images-by-tag")
        .send()
        .await
        .expect("create image")
        .image_id
        .expect("image id");
    let wanted = labels(&[("drctl:env", "it-images"), ("drctl:bake", "b1")]);
    ec2.create_tags(std::slice::from_ref(&image), &wanted)
        .await
        .expect("tag image");

    let found = ec2.images_tagged(&wanted).await.expect("images by tag");
    let found: Vec<_> = found.iter().filter_map(|i| i.image_id()).collect();
    assert_eq!(found, [image.as_str()]);
    let other = labels(&[("drctl:env", "it-images"), ("drctl:bake", "b2")]);
    assert!(ec2.images_tagged(&other).await.expect("by tag").is_empty());
    assert!(
        ec2.images_tagged(&BTreeMap::new())
            .await
            .expect("no tags")
            .is_empty(),
        "no tags select nothing"
    );
    ec2.terminate_instances(&ids).await.expect("terminate");
}

#[tokio::test]
async fn targets_register_report_their_health_and_deregister() {
    let config = config().await;
    let ec2 = SdkEc2::new(&config);
    let elbv2 = SdkElbv2::new(&config);
    let (vpc, ids) = instances(&ec2, "10.82.0.0", 2).await;
    let group = elbv2
        .create_target_group(
            &TargetGroupSpec {
                name: "it-target-health",
                protocol: "HTTP",
                port: 80,
                vpc: &vpc,
                health_check: &HealthCheck {
                    path: "/".into(),
                    interval: 10,
                    healthy_threshold: 2,
                },
            },
            &BTreeMap::new(),
        )
        .await
        .expect("target group");
    let arn = group.target_group_arn().expect("arn");
    assert!(elbv2.target_health(arn).await.expect("health").is_empty());

    let targets: Vec<(String, i32)> = ids.iter().map(|id| (id.clone(), 8080)).collect();
    elbv2
        .register_targets(arn, &targets)
        .await
        .expect("register");
    let mut health = elbv2.target_health(arn).await.expect("health");
    health.sort_by(|a, b| a.id.cmp(&b.id));
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(
        health.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
        expected
    );
    for target in &health {
        assert_eq!(target.port, Some(8080), "{target:?}");
        assert_eq!(target.state, "healthy", "{target:?}");
    }

    elbv2
        .deregister_targets(arn, &targets[..1])
        .await
        .expect("deregister");
    let left: Vec<_> = elbv2
        .target_health(arn)
        .await
        .expect("health")
        .into_iter()
        .filter(|t| t.state != "draining")
        .map(|t| t.id)
        .collect();
    assert_eq!(left, [ids[1].clone()]);

    let err = elbv2
        .target_health("arn:aws:elasticloadbalancing:us-west-2:123456789012:targetgroup/nope/0")
        .await
        .expect_err("no such group");
    assert!(
        err.to_string()
            .starts_with("ELBv2 DescribeTargetHealth failed"),
        "{err}"
    );
    ec2.terminate_instances(&ids).await.expect("terminate");
}
