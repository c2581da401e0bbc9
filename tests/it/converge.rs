//! Half-finished creates converge: a create that takes several calls,
//! stopped between them (here: a call failing through the fault proxy), is
//! finished by the next apply, never planned as a no-op.

use std::collections::BTreeMap;

use drctl::cloud::aws::AwsProvider;
use drctl::cloud::provider::Provider;
use drctl::cloud::AwsSettings;
use drctl::world::{ObservedResource, Value};

use crate::faults::Drive;
use crate::proxy::{Fault, FaultProxy, Faults};
use crate::support::moto_endpoint;

const REGION: &str = "eu-central-1";

/// A failure no SDK retries.
fn refused() -> Fault {
    Fault::Error("InvalidParameterValue".into())
}

/// Applies through `faults` (which must fail it), then applies again
/// straight to moto: the second apply must finish the job and a third plan
/// must find nothing to do. Returns the second apply's output.
async fn stopped_then_finished(d: &Drive, faults: Faults) -> String {
    let proxy = FaultProxy::moto(faults);
    let (code, text) = d.run(proxy.url(), &["apply", "rb", "--auto-approve"]);
    assert_eq!(
        code,
        Some(1),
        "the injected fault fails the first apply: {text}"
    );
    let (code, second) = d.run(moto_endpoint(), &["apply", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{second}");
    let (code, text) = d.run(moto_endpoint(), &["plan", "rb", "--detailed-exitcode"]);
    assert_eq!(code, Some(0), "nothing left to change: {text}");
    let found = d.addresses().await;
    assert_eq!(found.len(), 11, "{found:?}");
    assert!(found.values().all(|n| *n == 1), "duplicates: {found:?}");
    second
}

async fn observed(d: &Drive, address: &str) -> ObservedResource {
    let provider = AwsProvider::new(&AwsSettings::sandbox(moto_endpoint(), REGION).load().await);
    provider
        .discover(d.env())
        .await
        .unwrap()
        .into_iter()
        .find(|o| o.address.to_string() == address)
        .unwrap_or_else(|| panic!("{address} not found"))
}

async fn destroy(d: &Drive) {
    let (code, text) = d.run(moto_endpoint(), &["destroy", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(d.addresses().await, BTreeMap::new());
}

#[tokio::test]
async fn a_vpc_stopped_before_its_dns_attribute_is_finished() {
    let d = Drive::fleet("converge-vpc", REGION, 151);
    let second =
        stopped_then_finished(&d, Faults::none().nth("ModifyVpcAttribute", 1, refused())).await;
    assert!(
        second.contains("its create did not finish"),
        "the VPC is finished, not left as it was: {second}"
    );
    let vpc = observed(&d, "network.vpc.main").await;
    let config = AwsSettings::sandbox(moto_endpoint(), REGION).load().await;
    let dns = aws_sdk_ec2::Client::new(&config)
        .describe_vpc_attribute()
        .vpc_id(&vpc.id)
        .attribute(aws_sdk_ec2::types::VpcAttributeName::EnableDnsHostnames)
        .send()
        .await
        .unwrap();
    assert_eq!(
        dns.enable_dns_hostnames().and_then(|a| a.value()),
        Some(true)
    );
    destroy(&d).await;
}

#[tokio::test]
async fn an_internet_gateway_stopped_before_attaching_is_attached() {
    let d = Drive::fleet("converge-igw", REGION, 152);
    // The attach fails, and so does the create's own clean-up of the gateway.
    let faults = Faults::none()
        .nth("AttachInternetGateway", 1, refused())
        .nth("DeleteInternetGateway", 1, refused());
    stopped_then_finished(&d, faults).await;
    let igw = observed(&d, "network.internet_gateway.main").await;
    let vpc = observed(&d, "network.vpc.main").await;
    assert_eq!(igw.attrs["vpc"], Value::Str(vpc.id.clone()));
    destroy(&d).await;
}

#[tokio::test]
async fn a_fleet_stopped_between_its_launches_is_completed() {
    let d = Drive::fleet("converge-fleet", REGION, 153);
    // Two subnets: one RunInstances each; the second fails.
    stopped_then_finished(&d, Faults::none().nth("RunInstances", 2, refused())).await;
    let fleet = observed(&d, "fleet.instances.app").await;
    assert_eq!(fleet.attrs["count"], Value::Int(2));
    destroy(&d).await;
}

#[tokio::test]
async fn a_listener_whose_create_failed_is_created() {
    let d = Drive::fleet("converge-listener", REGION, 154);
    stopped_then_finished(&d, Faults::none().nth("CreateListener", 1, refused())).await;
    observed(&d, "fleet.listener.http").await;
    destroy(&d).await;
}
