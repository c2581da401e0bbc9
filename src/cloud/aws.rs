//! [`Provider`] for AWS: EC2 and ELBv2 resources created, read back,
//! updated and deleted in the normalised attribute shapes the planner speaks
//! (see `world.rs`). What is specific to one kind — how its objects are read
//! from Describe results, its create, update and delete — lives in that
//! kind's module under `crate::kinds`; this file holds the provider, its
//! deadlines, the discovery pass and the helpers every kind uses.
//!
//! Discovery is batched (a fixed number of paginated, tag-filtered Describe
//! calls per kind, plus ELBv2's tag reads in batches of 20 and one
//! DescribeListeners per load balancer of the environment). Creates return
//! when the resource is usable; waits poll with a short back-off and a
//! deadline ([`wait`]), never with the SDK's 15-second waiters. Every API
//! call is counted per operation ([`AwsProvider::calls`]).

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_elasticloadbalancingv2::types::{LoadBalancer, TargetGroup};
use futures_util::future::try_join_all;
use tokio::sync::OnceCell;

use super::ec2::{Ec2, SdkEc2};
use super::elbv2::{Elbv2, SdkElbv2};
use super::provider::{CreateRequest, Provider};
use super::tagging::SdkTagging;
use super::wait::{self, Backoff, Probe};
use super::CloudError;
use crate::cloud::kinds::common::{gone_ok, is_dependency, is_not_found, tag_changes, Seen};
use crate::model::ResourceKind;
use crate::types::tags;
use crate::world::LookupRequest;
use crate::world::{Address, Attrs, Lookups, ObservedResource, Tags};

pub use super::calls::{CallCounter, CallStats};
use super::sdk::AttemptRecorder;

// ---------------------------------------------------------------------------
// Deadlines

/// How long the provider waits, and how it paces polls.
#[derive(Debug, Clone)]
pub struct Waits {
    pub backoff: Backoff,
    /// Instances reaching `running`, or `terminated`.
    pub instances: Duration,
    /// A load balancer becoming `active`, or gone after its deletion.
    pub load_balancer: Duration,
    /// A new image or an image copy becoming `available` (a builder's
    /// provisioning has its own deadline, the image's `bake_timeout`).
    pub images: Duration,
    /// Retrying a delete that fails because something still depends on the
    /// resource (`DependencyViolation`, `ResourceInUse`): on AWS the network
    /// interfaces of terminated instances and deleted load balancers linger
    /// for minutes.
    pub dependencies: Duration,
    /// A just-created resource becoming visible to other calls (EC2 is
    /// eventually consistent: `…NotFound` right after a create).
    pub visibility: Duration,
}

impl Default for Waits {
    fn default() -> Self {
        Waits {
            backoff: Backoff::default(),
            instances: Duration::from_secs(600),
            load_balancer: Duration::from_secs(600),
            images: Duration::from_secs(3600),
            dependencies: Duration::from_secs(600),
            visibility: Duration::from_secs(60),
        }
    }
}

// ---------------------------------------------------------------------------
// The provider

/// AWS through the official SDK. Cheap to clone (clients and the call
/// counter are shared).
#[derive(Debug, Clone)]
pub struct AwsProvider {
    pub(crate) ec2: SdkEc2,
    pub(crate) elbv2: SdkElbv2,
    pub(crate) tagging: SdkTagging,
    /// What the clients were built from: clients for other regions (image
    /// copies) are built from it too.
    config: aws_config::SdkConfig,
    /// The endpoint override, if any (`--endpoint-url`, the sandbox): what
    /// a drill's check command is pointed at too.
    endpoint_url: Option<String>,
    /// The named profile the credentials come from (`--profile`), passed on
    /// to a drill's check commands.
    profile: Option<String>,
    calls: CallCounter,
    pub(crate) waits: Waits,
    /// Terminations steps left to AWS, checked before the run ends.
    pub(crate) background: super::background::Background,
}

impl AwsProvider {
    /// Builds the EC2 and ELBv2 clients from `config`, both counting their
    /// calls into [`AwsProvider::calls`].
    pub fn new(config: &aws_config::SdkConfig) -> AwsProvider {
        let calls = CallCounter::default();
        let ec2 = aws_sdk_ec2::config::Builder::from(config)
            .retry_partition(super::retry_partition("drctl-ec2"))
            .interceptor(calls.clone())
            .interceptor(AttemptRecorder)
            .build();
        let elbv2 = aws_sdk_elasticloadbalancingv2::config::Builder::from(config)
            .retry_partition(super::retry_partition("drctl-elbv2"))
            .interceptor(calls.clone())
            .interceptor(AttemptRecorder)
            .build();
        let tagging = aws_sdk_resourcegroupstagging::config::Builder::from(config)
            .retry_partition(super::retry_partition("drctl-tagging"))
            .interceptor(calls.clone())
            .interceptor(AttemptRecorder)
            .build();
        AwsProvider {
            ec2: SdkEc2::from_client(aws_sdk_ec2::Client::from_conf(ec2)),
            elbv2: SdkElbv2::from_client(aws_sdk_elasticloadbalancingv2::Client::from_conf(elbv2)),
            tagging: SdkTagging::from_client(aws_sdk_resourcegroupstagging::Client::from_conf(
                tagging,
            )),
            endpoint_url: config.endpoint_url().map(str::to_string),
            config: config.clone(),
            profile: None,
            calls,
            waits: Waits::default(),
            background: Default::default(),
        }
    }
}

impl AwsProvider {
    /// The region the provider's clients call.
    pub fn region(&self) -> String {
        self.config
            .region()
            .map(|r| r.to_string())
            .unwrap_or_default()
    }

    /// An EC2 client for `region` (this provider's own for its region),
    /// counting its calls with the others.
    pub fn ec2_in(&self, region: &str) -> SdkEc2 {
        if region == self.region() {
            return self.ec2.clone();
        }
        let config = aws_sdk_ec2::config::Builder::from(&self.config)
            .region(aws_config::Region::new(region.to_string()))
            .retry_partition(super::retry_partition("drctl-ec2"))
            .interceptor(self.calls.clone())
            .interceptor(AttemptRecorder)
            .build();
        SdkEc2::from_client(aws_sdk_ec2::Client::from_conf(config))
    }

    pub fn endpoint_url(&self) -> Option<&str> {
        self.endpoint_url.as_deref()
    }

    pub fn with_profile(mut self, profile: Option<String>) -> Self {
        self.profile = profile;
        self
    }

    /// `--profile`, if one was given.
    pub fn profile(&self) -> Option<&str> {
        self.profile.as_deref()
    }

    pub fn with_waits(mut self, waits: Waits) -> Self {
        self.waits = waits;
        self
    }

    /// Every API call made through this provider (and its clones) so far.
    pub fn calls(&self) -> CallStats {
        self.calls.stats()
    }
    pub fn ec2(&self) -> &SdkEc2 {
        &self.ec2
    }

    pub fn elbv2(&self) -> &SdkElbv2 {
        &self.elbv2
    }
}

// ---------------------------------------------------------------------------
// Discovery

/// One discovery pass over an environment: each kind observes its own
/// objects; reads several kinds need are made once per pass and shared.
pub struct Discovery {
    env: String,
    elbv2: OnceCell<Elbv2Snapshot>,
    /// The environment's instances (fleets and image builders).
    instances: OnceCell<Vec<aws_sdk_ec2::types::Instance>>,
    /// The listeners of the environment's load balancers.
    listeners: OnceCell<Vec<aws_sdk_elasticloadbalancingv2::types::Listener>>,
}

/// Every load balancer and target group of the region with their tags,
/// read in one batch (tags of both together, 20 ARNs per call).
pub(crate) struct Elbv2Snapshot {
    pub(crate) load_balancers: Vec<LoadBalancer>,
    pub(crate) target_groups: Vec<TargetGroup>,
    tags: BTreeMap<String, Tags>,
}

impl Discovery {
    pub(crate) fn new(env: &str) -> Self {
        Discovery {
            env: env.to_string(),
            elbv2: OnceCell::new(),
            instances: OnceCell::new(),
            listeners: OnceCell::new(),
        }
    }

    /// The listeners of the environment's load balancers (one call per
    /// load balancer), read once: listeners and services both need them.
    pub(crate) async fn listeners(
        &self,
        aws: &AwsProvider,
    ) -> Result<&[aws_sdk_elasticloadbalancingv2::types::Listener], CloudError> {
        self.listeners
            .get_or_try_init(|| async {
                let mut listeners = Vec::new();
                for lb in &self.elbv2(aws).await?.our_load_balancers(&self.env) {
                    listeners.extend(aws.elbv2.listeners(lb).await?);
                }
                Ok(listeners)
            })
            .await
            .map(Vec::as_slice)
    }

    /// The environment's instances that are not terminated, read once.
    pub(crate) async fn instances(
        &self,
        aws: &AwsProvider,
    ) -> Result<&[aws_sdk_ec2::types::Instance], CloudError> {
        self.instances
            .get_or_try_init(|| {
                aws.ec2
                    .describe_instances(super::ec2::Select::Env(&self.env))
            })
            .await
            .map(Vec::as_slice)
    }

    /// The environment discovered: the `drctl:env` tag value.
    pub(crate) fn env(&self) -> &str {
        &self.env
    }

    pub(crate) async fn elbv2(&self, aws: &AwsProvider) -> Result<&Elbv2Snapshot, CloudError> {
        self.elbv2
            .get_or_try_init(|| async {
                let (lbs, groups) =
                    tokio::try_join!(aws.elbv2.load_balancers(), aws.elbv2.target_groups())?;
                let arns: Vec<String> = lbs
                    .iter()
                    .filter_map(|lb| lb.load_balancer_arn())
                    .chain(groups.iter().filter_map(|g| g.target_group_arn()))
                    .map(str::to_string)
                    .collect();
                let tags = aws.elbv2.tags(&arns).await?;
                Ok(Elbv2Snapshot {
                    load_balancers: lbs,
                    target_groups: groups,
                    tags,
                })
            })
            .await
    }
}

impl Elbv2Snapshot {
    /// The tags of `arn` if it belongs to environment `env`.
    pub(crate) fn ours(&self, arn: Option<&str>, env: &str) -> Option<Tags> {
        let t = self.tags.get(arn?)?;
        (t.get(tags::ENV).map(String::as_str) == Some(env)).then(|| t.clone())
    }

    /// The ARNs of the environment's load balancers.
    pub(crate) fn our_load_balancers(&self, env: &str) -> Vec<String> {
        self.load_balancers
            .iter()
            .filter(|lb| self.ours(lb.load_balancer_arn(), env).is_some())
            .filter_map(|lb| lb.load_balancer_arn().map(str::to_string))
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Helpers for every kind

impl AwsProvider {
    /// Polls `read` until the resource is visible (EC2 is eventually
    /// consistent right after a create).
    pub(crate) async fn read_back<F, Fut>(
        &self,
        address: &Address,
        id: &str,
        read: F,
    ) -> Result<ObservedResource, CloudError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Option<Seen>, CloudError>>,
    {
        wait::until(
            &format!("{address} ({id}) to become visible"),
            self.waits.visibility,
            self.waits.backoff,
            || async {
                Ok(match read().await? {
                    Some(seen) => Probe::Done(seen.at(address)),
                    None => Probe::Waiting("not found yet".into()),
                })
            },
        )
        .await
    }

    /// Retries `op` while what it names is not visible yet.
    pub(crate) async fn settle<T, F, Fut>(&self, what: &str, op: F) -> Result<T, CloudError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, CloudError>>,
    {
        wait::retry_while(
            what,
            self.waits.visibility,
            self.waits.backoff,
            is_not_found,
            op,
        )
        .await
    }

    /// Retries a delete while something still depends on the resource.
    pub(crate) async fn patiently<F, Fut>(&self, what: &str, op: F) -> Result<(), CloudError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), CloudError>>,
    {
        gone_ok(
            wait::retry_while(
                what,
                self.waits.dependencies,
                self.waits.backoff,
                is_dependency,
                op,
            )
            .await,
        )
    }

    pub(crate) async fn elbv2_tags(&self, arn: &str) -> Result<Tags, CloudError> {
        Ok(self
            .elbv2
            .tags(&[arn.to_string()])
            .await?
            .remove(arn)
            .unwrap_or_default())
    }

    pub(crate) async fn retag_ec2(
        &self,
        ids: &[String],
        current: &Tags,
        desired: &Tags,
    ) -> Result<(), CloudError> {
        let (set, remove) = tag_changes(current, desired);
        self.ec2.create_tags(ids, &set).await?;
        self.ec2.delete_tags(ids, &remove).await
    }

    /// Sets an EC2 resource's tags to exactly `desired` after an in-place
    /// change, then reads the resource back: the last steps of every EC2
    /// kind's update.
    pub(crate) async fn retag_and_read_ec2<F, Fut>(
        &self,
        current: &ObservedResource,
        desired: &Tags,
        read: F,
    ) -> Result<ObservedResource, CloudError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Option<Seen>, CloudError>>,
    {
        self.retag_ec2(std::slice::from_ref(&current.id), &current.tags, desired)
            .await?;
        self.read_back(&current.address, &current.id, read).await
    }

    /// Sets `drctl:expires` to `expires` on what a failed drill teardown
    /// left, so that the next sweep removes it without waiting for the
    /// drill's ttl. Best effort: returns what could not be marked.
    pub async fn mark_expired(&self, objects: &[ObservedResource], expires: &str) -> Vec<String> {
        let tag = Tags::from([(crate::types::tags::EXPIRES.to_string(), expires.to_string())]);
        let mut failed = Vec::new();
        let (arns, ids): (Vec<_>, Vec<_>) = objects.iter().partition(|o| o.id.starts_with("arn:"));
        for o in arns {
            if let Err(e) = self.elbv2.add_tags(&o.id, &tag).await {
                failed.push(format!("{}: {e}", o.address));
            }
        }
        let ids: Vec<String> = ids.iter().map(|o| o.id.clone()).collect();
        if !ids.is_empty() {
            if let Err(e) = self.ec2.create_tags(&ids, &tag).await {
                failed.push(format!("{}: {e}", ids.join(", ")));
            }
        }
        failed
    }

    pub(crate) async fn retag_elbv2(
        &self,
        arn: &str,
        current: &Tags,
        desired: &Tags,
    ) -> Result<(), CloudError> {
        let (set, remove) = tag_changes(current, desired);
        self.elbv2.add_tags(arn, &set).await?;
        self.elbv2.remove_tags(arn, &remove).await
    }
}

// ---------------------------------------------------------------------------

impl Provider for AwsProvider {
    async fn discover(&self, env: &str) -> Result<Vec<ObservedResource>, CloudError> {
        let pass = Discovery::new(env);
        let found = try_join_all(
            ResourceKind::ALL
                .iter()
                .map(|kind| super::kinds::ops(*kind).observe(self, &pass)),
        )
        .await?;
        let mut found: Vec<ObservedResource> = found.into_iter().flatten().collect();
        found.sort_by(|a, b| (&a.address, &a.id).cmp(&(&b.address, &b.id)));
        Ok(found)
    }

    async fn look_up(&self, request: &LookupRequest) -> Result<Lookups, CloudError> {
        super::lookups::look_up(self, request).await
    }

    async fn create(&self, request: &CreateRequest<'_>) -> Result<ObservedResource, CloudError> {
        super::kinds::ops(request.address.kind)
            .create(self, request)
            .await
    }

    async fn update(
        &self,
        current: &ObservedResource,
        attrs: &Attrs,
        tags: &Tags,
    ) -> Result<ObservedResource, CloudError> {
        super::kinds::ops(current.address.kind)
            .update(self, current, attrs, tags)
            .await
    }

    async fn delete(&self, current: &ObservedResource) -> Result<(), CloudError> {
        super::kinds::ops(current.address.kind)
            .delete(self, current)
            .await
    }

    async fn settle_background(&self) -> Vec<(Address, CloudError)> {
        let pending = self.background.take();
        let checks = pending.iter().map(|t| async move {
            let waited = super::kinds::instances::wait_terminated(self, &t.what, &t.instances);
            waited.await.err().map(|e| (t.address.clone(), e))
        });
        futures_util::future::join_all(checks)
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The executor may run provider calls on spawned tasks.
    #[allow(dead_code)]
    fn provider_futures_are_send(
        p: &AwsProvider,
        request: &CreateRequest<'_>,
        current: &ObservedResource,
        attrs: &Attrs,
        tags: &Tags,
    ) {
        fn send<T: Send>(_: T) {}
        send(p.discover("env"));
        send(p.create(request));
        send(p.update(current, attrs, tags));
        send(p.delete(current));
    }
}
