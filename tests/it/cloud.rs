//! The EC2 adapter against a real AWS API emulator (moto server over HTTP).

use std::collections::BTreeMap;

use drctl::cloud::ec2::{Ec2, SdkEc2};
use drctl::cloud::tags::{self, Identity};
use drctl::cloud::AwsSettings;

use crate::support::{drctl, moto_endpoint};

async fn ec2() -> SdkEc2 {
    SdkEc2::new(
        &AwsSettings::sandbox(moto_endpoint(), "us-west-2")
            .load()
            .await,
    )
}

#[tokio::test]
async fn a_tagged_vpc_is_discovered_back_by_tag() {
    let ec2 = ec2().await;
    let env = "smoke-discovery";
    let identity = Identity::new(env, "network", "vpc.main");
    let wanted = tags::tag_set(&identity, "spec-hash-1", "run-1", &BTreeMap::new());
    let id = ec2
        .create_vpc("10.77.0.0/16", &wanted)
        .await
        .expect("create vpc");

    // A VPC of another environment must not be discovered.
    let other = tags::tag_set(
        &Identity::new("someone-else", "network", "vpc.main"),
        "x",
        "run-2",
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
    let text = err.to_string();
    assert!(
        text.starts_with("EC2 DeleteVpc failed (InvalidVpcID.NotFound)"),
        "{text}"
    );
    assert_eq!(err.code(), Some("InvalidVpcID.NotFound"));
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
