//! EC2 calls that `drctl preflight` makes: what the region offers (zones,
//! instance types per zone, images by id, the account's attributes) and
//! mutating calls tried with `DryRun=true`, which AWS answers with
//! `DryRunOperation` (allowed) or `UnauthorizedOperation` (denied) and
//! never carries out.
//!
//! moto 5.2.5 (checked in its source, `moto/ec2/responses/*.py`) honours
//! `DryRun` only where a handler calls `error_on_dryrun()`: RunInstances,
//! CreateInternetGateway, AttachInternetGateway, CreateSecurityGroup,
//! AuthorizeSecurityGroupIngress/Egress, CreateTags, TerminateInstances,
//! CreateImage, CopyImage, DeregisterImage, DeleteSnapshot, among others.
//! CreateVpc, CreateSubnet, ModifyVpcAttribute, ModifySubnetAttribute,
//! CreateRouteTable, CreateRoute, AssociateRouteTable ignore it and *create*
//! (a CreateVpc with DryRun=true makes a VPC). So [`DryRun`] holds only calls
//! whose dry run the tests prove against moto (`tests/it/preflight.rs`):
//! nothing else is ever sent with the flag.
//!
//! Also checked in moto 5.2.5: DescribeInstanceTypeOfferings by
//! availability zone answers from a copy of AWS's offerings per zone (e.g.
//! t3.micro not in us-east-1e, trn1.32xlarge only in ap-southeast-4a); for
//! regions it has no copy of (ap-east-2, ap-southeast-6/7, mx-central-1)
//! nothing is offered. DescribeAccountAttributes answers fixed values
//! (`max-instances` 20, `default-vpc` none). A denied call is only ever
//! seen through the tests' proxy: moto authorizes everything.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Image, LocationType};

use super::each_filter_set;
use super::wire::{filter, live_instances};
use super::SdkEc2;
use crate::cloud::sdk::EC2;
use crate::cloud::CloudError;

/// A mutating call as tried with `DryRun=true`: only the values it needs
/// that exist now (AWS checks the permission for these).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum DryRun {
    RunInstances {
        image: String,
        instance_type: String,
        /// Omitted while the subnet does not exist yet.
        subnet: Option<String>,
    },
    CreateInternetGateway,
    /// Omitted VPC: while it does not exist yet.
    CreateSecurityGroup {
        vpc: Option<String>,
    },
    AuthorizeSecurityGroupIngress {
        group: String,
    },
    CreateTags {
        resources: Vec<String>,
    },
    TerminateInstances {
        ids: Vec<String>,
    },
}

impl DryRun {
    /// The API action, as IAM names it after `ec2:`.
    pub fn action(&self) -> &'static str {
        match self {
            DryRun::RunInstances { .. } => "RunInstances",
            DryRun::CreateInternetGateway => "CreateInternetGateway",
            DryRun::CreateSecurityGroup { .. } => "CreateSecurityGroup",
            DryRun::AuthorizeSecurityGroupIngress { .. } => "AuthorizeSecurityGroupIngress",
            DryRun::CreateTags { .. } => "CreateTags",
            DryRun::TerminateInstances { .. } => "TerminateInstances",
        }
    }

    /// The actions [`DryRun`] can try: those whose dry run is verified.
    pub const ACTIONS: &'static [&'static str] = &[
        "RunInstances",
        "CreateInternetGateway",
        "CreateSecurityGroup",
        "AuthorizeSecurityGroupIngress",
        "CreateTags",
        "TerminateInstances",
    ];
}

/// How EC2 answered a dry run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DryRunAnswer {
    /// `DryRunOperation`: the call would have been allowed.
    Allowed,
    /// `UnauthorizedOperation`: denied; AWS's message (it may carry an
    /// encoded authorization message).
    Denied(String),
    /// Another error before the permission was decided (a parameter check):
    /// its code and message. Neither allowed nor denied.
    Refused { code: String, message: String },
    /// The endpoint carried the call out: it ignores `DryRun` for it.
    TookEffect,
}

impl SdkEc2 {
    /// Tries `call` with `DryRun=true`. Errors that are no answer to the
    /// dry run (network, credentials) are errors.
    pub async fn dry_run(&self, call: &DryRun) -> Result<DryRunAnswer, CloudError> {
        let c = &self.client;
        let result = match call {
            DryRun::RunInstances {
                image,
                instance_type,
                subnet,
            } => {
                let request = c
                    .run_instances()
                    .dry_run(true)
                    .image_id(image)
                    .instance_type(instance_type.as_str().into())
                    .set_subnet_id(subnet.clone())
                    .min_count(1)
                    .max_count(1);
                EC2.call(request.send()).await.map(|_| ())
            }
            DryRun::CreateInternetGateway => EC2
                .call(c.create_internet_gateway().dry_run(true).send())
                .await
                .map(|_| ()),
            DryRun::CreateSecurityGroup { vpc } => {
                let request = c
                    .create_security_group()
                    .dry_run(true)
                    .group_name("drctl-preflight")
                    .description("drctl preflight dry run")
                    .set_vpc_id(vpc.clone());
                EC2.call(request.send()).await.map(|_| ())
            }
            DryRun::AuthorizeSecurityGroupIngress { group } => {
                let request = c
                    .authorize_security_group_ingress()
                    .dry_run(true)
                    .group_id(group)
                    .ip_protocol("tcp")
                    .from_port(443)
                    .to_port(443)
                    .cidr_ip("10.255.255.255/32");
                EC2.call(request.send()).await.map(|_| ())
            }
            DryRun::CreateTags { resources } => {
                let request = c
                    .create_tags()
                    .dry_run(true)
                    .set_resources(Some(resources.clone()))
                    .tags(
                        aws_sdk_ec2::types::Tag::builder()
                            .key("drctl:preflight")
                            .value("dry-run")
                            .build(),
                    );
                EC2.call(request.send()).await.map(|_| ())
            }
            DryRun::TerminateInstances { ids } => EC2
                .call(
                    c.terminate_instances()
                        .dry_run(true)
                        .set_instance_ids(Some(ids.clone()))
                        .send(),
                )
                .await
                .map(|_| ()),
        };
        match result {
            Ok(()) => Ok(DryRunAnswer::TookEffect),
            Err(CloudError::Call { code, message, .. }) => Ok(match code.as_deref() {
                Some("DryRunOperation") => DryRunAnswer::Allowed,
                Some("UnauthorizedOperation") => DryRunAnswer::Denied(message),
                Some(code) => DryRunAnswer::Refused {
                    code: code.to_string(),
                    message,
                },
                None => {
                    return Err(CloudError::Call {
                        service: "EC2",
                        operation: call.action(),
                        code,
                        message,
                        attempts: 0,
                        detail: String::new(),
                    })
                }
            }),
            Err(other) => Err(other),
        }
    }

    /// Which of `types` are offered in which of `zones`: (type, zone) pairs
    /// (DescribeInstanceTypeOfferings by availability zone).
    pub async fn instance_type_offerings(
        &self,
        types: &[String],
        zones: &[String],
    ) -> Result<Vec<(String, String)>, CloudError> {
        if types.is_empty() || zones.is_empty() {
            return Ok(Vec::new());
        }
        let sets = vec![vec![
            filter("instance-type", types),
            filter("location", zones),
        ]];
        let offerings = describe_by_filters!(
            sets,
            self.client
                .describe_instance_type_offerings()
                .location_type(LocationType::AvailabilityZone)
        )
        .await?;
        Ok(offerings
            .into_iter()
            .filter_map(|o| {
                Some((
                    o.instance_type()?.as_str().to_string(),
                    o.location()?.to_string(),
                ))
            })
            .collect())
    }

    /// Images by id, whoever owns them (public, shared, own): those this
    /// account may launch. Ids that do not exist are absent.
    pub async fn launchable_images(&self, ids: &[String]) -> Result<Vec<Image>, CloudError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        describe_by_filters!(
            vec![vec![filter("image-id", ids)]],
            self.client.describe_images()
        )
        .await
    }

    /// The account's attributes in this region (DescribeAccountAttributes):
    /// `max-instances`, `default-vpc`, … with their values.
    pub async fn account_attributes(&self) -> Result<BTreeMap<String, Vec<String>>, CloudError> {
        let out = EC2
            .call(self.client.describe_account_attributes().send())
            .await?;
        Ok(out
            .account_attributes()
            .iter()
            .filter_map(|a| {
                let values = a
                    .attribute_values()
                    .iter()
                    .filter_map(|v| v.attribute_value().map(str::to_string))
                    .collect();
                Some((a.attribute_name()?.to_string(), values))
            })
            .collect())
    }

    /// How many instances of the region are pending, running, stopping or
    /// stopped (whoever launched them).
    pub async fn live_instance_count(&self) -> Result<usize, CloudError> {
        let reservations = describe_by_filters!(
            vec![vec![live_instances()]],
            self.client.describe_instances()
        )
        .await?;
        Ok(reservations.iter().map(|r| r.instances().len()).sum())
    }
}
