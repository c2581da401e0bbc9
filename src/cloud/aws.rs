//! [`Provider`] for AWS: EC2 and ELBv2 resources created, read back,
//! updated and deleted in the normalised attribute shapes the planner speaks
//! (see `world.rs` and each kind's `*_seen` function here).
//!
//! Discovery is batched (a fixed number of paginated, tag-filtered Describe
//! calls per kind, plus ELBv2's tag reads in batches of 20 and one
//! DescribeListeners per load balancer of the environment). Creates return
//! when the resource is usable; waits poll with a short back-off and a
//! deadline ([`wait`]), never with the SDK's 15-second waiters. Every API
//! call is counted per operation ([`AwsProvider::calls`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_ec2::types::{
    Instance, InstanceStateName, InternetGateway, RouteTable, SecurityGroup, Subnet, Vpc,
};
use aws_sdk_elasticloadbalancingv2::types::{
    Listener, LoadBalancer, LoadBalancerSchemeEnum, LoadBalancerStateEnum, TargetGroup,
};

use super::ec2::{self, Ec2, Launch, RuleSource, SdkEc2, Select, SgRule};
use super::elbv2::{
    self, DefaultAction, Elbv2, HealthCheck, LoadBalancerSpec, SdkElbv2, TargetGroupSpec,
};
use super::provider::{CreateRequest, Provider};
use super::wait::{self, Backoff, Probe};
use super::{names, tags, CloudError};
use crate::model::ResourceKind;
use crate::world::{Address, Attrs, ObservedResource, Tags, Value};

pub use super::calls::{CallCounter, CallStats};

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
pub struct AwsProvider<E = SdkEc2, L = SdkElbv2> {
    ec2: E,
    elbv2: L,
    calls: CallCounter,
    waits: Waits,
}

impl AwsProvider {
    /// Builds the EC2 and ELBv2 clients from `config`, both counting their
    /// calls into [`AwsProvider::calls`].
    pub fn new(config: &aws_config::SdkConfig) -> AwsProvider {
        let calls = CallCounter::default();
        let ec2 = aws_sdk_ec2::config::Builder::from(config)
            .interceptor(calls.clone())
            .build();
        let elbv2 = aws_sdk_elasticloadbalancingv2::config::Builder::from(config)
            .interceptor(calls.clone())
            .build();
        AwsProvider {
            ec2: SdkEc2::from_client(aws_sdk_ec2::Client::from_conf(ec2)),
            elbv2: SdkElbv2::from_client(aws_sdk_elasticloadbalancingv2::Client::from_conf(elbv2)),
            calls,
            waits: Waits::default(),
        }
    }
}

impl<E: Ec2, L: Elbv2> AwsProvider<E, L> {
    /// Over other adapters; `calls` counts only what they report into it.
    pub fn with_adapters(ec2: E, elbv2: L, calls: CallCounter) -> Self {
        AwsProvider {
            ec2,
            elbv2,
            calls,
            waits: Waits::default(),
        }
    }

    pub fn with_waits(mut self, waits: Waits) -> Self {
        self.waits = waits;
        self
    }

    /// Every API call made through this provider (and its clones) so far.
    pub fn calls(&self) -> CallStats {
        self.calls.stats()
    }

    pub fn ec2(&self) -> &E {
        &self.ec2
    }

    pub fn elbv2(&self) -> &L {
        &self.elbv2
    }
}

/// A resource as read from one Describe result, before its address is known
/// (discovery reads the address from the tags; create and update know it).
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    id: String,
    attrs: Attrs,
    exports: Attrs,
    tags: Tags,
}

impl Seen {
    fn new(id: &str, tags: Tags) -> Self {
        Seen {
            id: id.to_string(),
            attrs: Attrs::new(),
            exports: Attrs::new(),
            tags,
        }
    }

    /// For kinds whose only export is their `id`.
    fn with_id(id: &str, tags: Tags) -> Self {
        Seen::new(id, tags).export("id", Value::Str(id.to_string()))
    }

    fn attr(mut self, key: &str, value: Value) -> Self {
        self.attrs.insert(key.to_string(), value);
        self
    }

    fn export(mut self, key: &str, value: Value) -> Self {
        self.exports.insert(key.to_string(), value);
        self
    }

    fn at(self, address: &Address) -> ObservedResource {
        ObservedResource {
            address: address.clone(),
            id: self.id,
            attrs: self.attrs,
            exports: self.exports,
            tags: self.tags,
        }
    }

    /// As discovered: only if tagged with an address of `kind` (a resource of
    /// another kind wearing this tag, e.g. a service's target group, is not
    /// this kind's business).
    fn discovered(self, kind: ResourceKind) -> Option<ObservedResource> {
        let address = Address::from_tags(&self.tags)?;
        (address.kind == kind).then(|| self.at(&address))
    }
}

// --- Reading attributes handed in by the planner ---------------------------

struct Want<'a> {
    address: &'a Address,
    attrs: &'a Attrs,
}

impl<'a> Want<'a> {
    fn new(address: &'a Address, attrs: &'a Attrs) -> Self {
        Want { address, attrs }
    }

    fn bad(&self, key: &str, expected: &'static str) -> CloudError {
        CloudError::InvalidAttr {
            address: self.address.to_string(),
            key: key.to_string(),
            expected,
        }
    }

    fn str(&self, key: &str) -> Result<&'a str, CloudError> {
        self.attrs
            .get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| self.bad(key, "a string"))
    }

    fn opt_str(&self, key: &str) -> Result<Option<&'a str>, CloudError> {
        match self.attrs.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| self.bad(key, "a string")),
        }
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool, CloudError> {
        match self.attrs.get(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| self.bad(key, "a boolean")),
        }
    }

    fn i32(&self, key: &str) -> Result<i32, CloudError> {
        self.attrs
            .get(key)
            .and_then(Value::as_int)
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| self.bad(key, "a 32-bit integer"))
    }

    fn list(&self, key: &str) -> Result<&'a [Value], CloudError> {
        match self.attrs.get(key) {
            None => Ok(&[]),
            Some(v) => v.as_list().ok_or_else(|| self.bad(key, "a list")),
        }
    }

    /// A list of strings; absent is empty.
    fn strs(&self, key: &str) -> Result<Vec<String>, CloudError> {
        self.list(key)?
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| self.bad(key, "a list of strings"))
    }

    fn rules(&self, key: &str) -> Result<Vec<SgRule>, CloudError> {
        const SHAPE: &str =
            "a list of { protocol, from_port, to_port, and one of cidr or security_group }";
        let mut rules = Vec::new();
        for item in self.list(key)? {
            let rule = item.as_table().and_then(|t| {
                let source = match (
                    t.get("cidr").and_then(Value::as_str),
                    t.get("security_group").and_then(Value::as_str),
                ) {
                    (Some(cidr), None) => RuleSource::Cidr(cidr.to_string()),
                    (None, Some(group)) => RuleSource::Group(group.to_string()),
                    _ => return None,
                };
                Some(SgRule {
                    protocol: t.get("protocol")?.as_str()?.to_string(),
                    from_port: i32::try_from(t.get("from_port")?.as_int()?).ok()?,
                    to_port: i32::try_from(t.get("to_port")?.as_int()?).ok()?,
                    source,
                })
            });
            rules.push(rule.ok_or_else(|| self.bad(key, SHAPE))?);
        }
        rules.sort();
        rules.dedup();
        Ok(rules)
    }

    /// `routes`: destination → gateway.
    fn routes(&self) -> Result<BTreeMap<String, String>, CloudError> {
        self.list("routes")?
            .iter()
            .map(|item| {
                let t = item.as_table()?;
                Some((
                    t.get("destination")?.as_str()?.to_string(),
                    t.get("gateway")?.as_str()?.to_string(),
                ))
            })
            .collect::<Option<_>>()
            .ok_or_else(|| self.bad("routes", "a list of { destination, gateway }"))
    }

    fn health_check(&self) -> Result<HealthCheck, CloudError> {
        const SHAPE: &str = "a table { path, interval, healthy_threshold }";
        let t = self
            .attrs
            .get("health_check")
            .and_then(Value::as_table)
            .ok_or_else(|| self.bad("health_check", SHAPE))?;
        let int = |k: &str| {
            t.get(k)
                .and_then(Value::as_int)
                .and_then(|n| i32::try_from(n).ok())
        };
        let read = || {
            Some(HealthCheck {
                path: t.get("path").and_then(Value::as_str)?.to_string(),
                interval: int("interval")?,
                healthy_threshold: int("healthy_threshold")?,
            })
        };
        read().ok_or_else(|| self.bad("health_check", SHAPE))
    }
}

// --- Normalising what AWS reports -------------------------------------------

fn sorted_strs<'a>(items: impl IntoIterator<Item = &'a str>) -> Value {
    let mut items: Vec<&str> = items.into_iter().collect();
    items.sort_unstable();
    items.dedup();
    Value::str_list(items)
}

fn rules_value(rules: &[SgRule]) -> Value {
    let mut items: Vec<Value> = rules
        .iter()
        .map(|r| {
            let mut t = BTreeMap::from([
                ("protocol".to_string(), Value::Str(r.protocol.clone())),
                ("from_port".to_string(), Value::Int(r.from_port.into())),
                ("to_port".to_string(), Value::Int(r.to_port.into())),
            ]);
            match &r.source {
                RuleSource::Cidr(c) => t.insert("cidr".into(), Value::Str(c.clone())),
                RuleSource::Group(g) => t.insert("security_group".into(), Value::Str(g.clone())),
            };
            Value::Table(t)
        })
        .collect();
    items.sort();
    Value::List(items)
}

fn vpc_seen(vpc: &Vpc) -> Option<Seen> {
    // `enable_dns_hostnames` is not in DescribeVpcs (one DescribeVpcAttribute
    // per VPC would be needed): not observed, the spec hash covers it.
    Some(Seen::with_id(vpc.vpc_id()?, ec2::tag_map(vpc.tags())).attr(
        "cidr_block",
        Value::Str(vpc.cidr_block().unwrap_or_default().into()),
    ))
}

fn subnet_seen(subnet: &Subnet) -> Option<Seen> {
    let s = |v: Option<&str>| Value::Str(v.unwrap_or_default().to_string());
    Some(
        Seen::with_id(subnet.subnet_id()?, ec2::tag_map(subnet.tags()))
            .attr("vpc", s(subnet.vpc_id()))
            .attr("cidr_block", s(subnet.cidr_block()))
            .attr("availability_zone", s(subnet.availability_zone()))
            .attr(
                "map_public_ip",
                Value::Bool(subnet.map_public_ip_on_launch().unwrap_or(false)),
            ),
    )
}

fn igw_seen(igw: &InternetGateway) -> Option<Seen> {
    let mut seen = Seen::with_id(igw.internet_gateway_id()?, ec2::tag_map(igw.tags()));
    // Unattached (e.g. a create interrupted between create and attach): no
    // `vpc`, which the planner sees as a difference.
    if let Some(vpc) = igw.attachments().iter().find_map(|a| a.vpc_id()) {
        seen = seen.attr("vpc", Value::Str(vpc.to_string()));
    }
    Some(seen)
}

/// The routes drctl manages: every route but the implicit `local` one,
/// destination → target.
fn table_routes(table: &RouteTable) -> BTreeMap<String, String> {
    table
        .routes()
        .iter()
        .filter(|r| r.gateway_id() != Some("local"))
        .filter_map(|r| {
            let destination = r
                .destination_cidr_block()
                .or(r.destination_ipv6_cidr_block())
                .or(r.destination_prefix_list_id())?;
            let target = r
                .gateway_id()
                .or(r.nat_gateway_id())
                .or(r.transit_gateway_id())
                .or(r.vpc_peering_connection_id())
                .or(r.egress_only_internet_gateway_id())
                .or(r.network_interface_id())
                .or(r.instance_id())?;
            Some((destination.to_string(), target.to_string()))
        })
        .collect()
}

/// Explicit subnet associations: subnet → association id.
fn table_associations(table: &RouteTable) -> BTreeMap<String, String> {
    table
        .associations()
        .iter()
        .filter(|a| !a.main().unwrap_or(false))
        .filter_map(|a| {
            Some((
                a.subnet_id()?.to_string(),
                a.route_table_association_id()?.to_string(),
            ))
        })
        .collect()
}

fn route_table_seen(table: &RouteTable) -> Option<Seen> {
    let routes = table_routes(table)
        .into_iter()
        .map(|(destination, gateway)| {
            Value::Table(BTreeMap::from([
                ("destination".to_string(), Value::Str(destination)),
                ("gateway".to_string(), Value::Str(gateway)),
            ]))
        })
        .collect();
    let subnets = table_associations(table);
    Some(
        Seen::with_id(table.route_table_id()?, ec2::tag_map(table.tags()))
            .attr("vpc", Value::Str(table.vpc_id().unwrap_or_default().into()))
            .attr("routes", Value::List(routes))
            .attr("subnets", sorted_strs(subnets.keys().map(String::as_str))),
    )
}

fn security_group_seen(group: &SecurityGroup) -> Option<Seen> {
    Some(
        Seen::with_id(group.group_id()?, ec2::tag_map(group.tags()))
            .attr("vpc", Value::Str(group.vpc_id().unwrap_or_default().into()))
            .attr(
                "description",
                Value::Str(group.description().unwrap_or_default().into()),
            )
            .attr(
                "ingress",
                rules_value(&ec2::sg_rules(group.ip_permissions())),
            )
            .attr(
                "egress",
                rules_value(&ec2::sg_rules(group.ip_permissions_egress())),
            ),
    )
}

fn state_of(instance: &Instance) -> Option<&InstanceStateName> {
    instance.state().and_then(|s| s.name())
}

fn is_live(instance: &Instance) -> bool {
    matches!(
        state_of(instance),
        Some(InstanceStateName::Pending | InstanceStateName::Running)
    )
}

/// One fleet from its instances (all carrying the same address tags).
/// `count`, `ids` and `private_ips` cover pending and running instances;
/// image, type and groups come from the first of them (by id).
fn fleet_seen(instances: &[&Instance]) -> Seen {
    let mut all: Vec<&Instance> = instances.to_vec();
    all.sort_by_key(|i| i.instance_id());
    let live: Vec<&Instance> = all.iter().copied().filter(|i| is_live(i)).collect();
    let ids: Vec<&str> = live.iter().filter_map(|i| i.instance_id()).collect();
    let ips: Vec<&str> = live
        .iter()
        .map(|i| i.private_ip_address().unwrap_or_default())
        .collect();
    let tags = all
        .first()
        .map(|i| ec2::tag_map(i.tags()))
        .unwrap_or_default();
    let mut seen = Seen::new(ids.first().copied().unwrap_or_default(), tags)
        .attr("count", Value::Int(live.len() as i64))
        .export("ids", Value::str_list(ids.iter().copied()))
        .export("private_ips", Value::str_list(ips));
    if let Some(first) = live.first() {
        seen = seen
            .attr(
                "image",
                Value::Str(first.image_id().unwrap_or_default().into()),
            )
            .attr(
                "instance_type",
                Value::Str(
                    first
                        .instance_type()
                        .map(|t| t.as_str())
                        .unwrap_or_default()
                        .into(),
                ),
            )
            .attr(
                "security_groups",
                sorted_strs(first.security_groups().iter().filter_map(|g| g.group_id())),
            );
    }
    seen
}

/// Instances grouped into fleets by their address tags and the run that
/// created the fleet: while a replacement is under way, the old and the new
/// fleet share an address and are told apart by `drctl:run` (scaling and
/// retagging keep a fleet's creating run).
fn fleets(instances: &[Instance], kind: ResourceKind) -> Vec<ObservedResource> {
    let mut groups: BTreeMap<(Address, String), Vec<&Instance>> = BTreeMap::new();
    for instance in instances {
        let tags = ec2::tag_map(instance.tags());
        if let Some(address) = Address::from_tags(&tags) {
            if address.kind == kind {
                let run = tags.get(tags::RUN).cloned().unwrap_or_default();
                groups.entry((address, run)).or_default().push(instance);
            }
        }
    }
    groups
        .into_iter()
        .map(|((address, _), members)| fleet_seen(&members).at(&address))
        .collect()
}

fn target_group_seen(group: &TargetGroup, tags: Tags) -> Option<Seen> {
    let arn = group.target_group_arn()?;
    let health_check = BTreeMap::from([
        (
            "path".to_string(),
            Value::Str(group.health_check_path().unwrap_or("/").into()),
        ),
        (
            "interval".to_string(),
            Value::Int(group.health_check_interval_seconds().unwrap_or(30).into()),
        ),
        (
            "healthy_threshold".to_string(),
            Value::Int(group.healthy_threshold_count().unwrap_or(5).into()),
        ),
    ]);
    Some(
        Seen::new(arn, tags)
            .attr("vpc", Value::Str(group.vpc_id().unwrap_or_default().into()))
            .attr(
                "protocol",
                Value::Str(
                    group
                        .protocol()
                        .map(|p| p.as_str())
                        .unwrap_or_default()
                        .into(),
                ),
            )
            .attr("port", Value::Int(group.port().unwrap_or_default().into()))
            .attr("health_check", Value::Table(health_check))
            .export("arn", Value::Str(arn.into())),
    )
}

fn load_balancer_seen(lb: &LoadBalancer, tags: Tags) -> Option<Seen> {
    let arn = lb.load_balancer_arn()?;
    Some(
        Seen::new(arn, tags)
            .attr(
                "subnets",
                sorted_strs(lb.availability_zones().iter().filter_map(|z| z.subnet_id())),
            )
            .attr(
                "security_groups",
                sorted_strs(lb.security_groups().iter().map(String::as_str)),
            )
            .attr(
                "internal",
                Value::Bool(lb.scheme() == Some(&LoadBalancerSchemeEnum::Internal)),
            )
            .export("arn", Value::Str(arn.into()))
            .export(
                "dns_name",
                Value::Str(lb.dns_name().unwrap_or_default().into()),
            ),
    )
}

fn listener_seen(listener: &Listener, tags: Tags) -> Option<Seen> {
    let arn = listener.listener_arn()?;
    let mut seen = Seen::new(arn, tags)
        .attr(
            "load_balancer",
            Value::Str(listener.load_balancer_arn().unwrap_or_default().into()),
        )
        .attr(
            "protocol",
            Value::Str(
                listener
                    .protocol()
                    .map(|p| p.as_str())
                    .unwrap_or_default()
                    .into(),
            ),
        )
        .attr(
            "port",
            Value::Int(listener.port().unwrap_or_default().into()),
        )
        .export("arn", Value::Str(arn.into()));
    if let Some(group) = elbv2::forwarded_target_group(listener.default_actions()) {
        seen = seen.attr("default_target_group", Value::Str(group));
    }
    Some(seen)
}

/// Where `n` new instances go: each to the subnet with the fewest instances
/// so far (counting `used`), ties to the earlier subnet in `subnets`. With
/// nothing used, that is round-robin in the given order. Returns
/// (subnet, how many), in `subnets` order, without zeros.
fn spread(subnets: &[String], used: &BTreeMap<String, usize>, n: usize) -> Vec<(String, usize)> {
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
fn surplus(live: &[&Instance], keep: usize) -> Vec<String> {
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

/// The drctl identity tags (env, stack, resource) out of a full tag set.
fn identity_tags(tags: &Tags) -> Option<Tags> {
    [tags::ENV, tags::STACK, tags::RESOURCE]
        .iter()
        .map(|k| Some((k.to_string(), tags.get(*k)?.clone())))
        .collect()
}

/// Tags to add or overwrite, and keys to remove (never `aws:*`), to go from
/// `current` to exactly `desired`.
fn tag_changes(current: &Tags, desired: &Tags) -> (Tags, Vec<String>) {
    let set = desired
        .iter()
        .filter(|(k, v)| current.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let remove = current
        .keys()
        .filter(|k| !desired.contains_key(*k) && !k.starts_with("aws:"))
        .cloned()
        .collect();
    (set, remove)
}

fn is_not_found(e: &CloudError) -> bool {
    e.code()
        .is_some_and(|c| c.ends_with("NotFound") || c == "Gateway.NotAttached")
}

fn is_dependency(e: &CloudError) -> bool {
    matches!(e.code(), Some("DependencyViolation" | "ResourceInUse"))
}

/// Treats "already gone" as done.
fn gone_ok(result: Result<(), CloudError>) -> Result<(), CloudError> {
    match result {
        Err(e) if is_not_found(&e) => Ok(()),
        other => other,
    }
}

fn unsupported(kind: ResourceKind, operation: &'static str) -> CloudError {
    CloudError::Unsupported {
        kind: kind.name().to_string(),
        operation,
    }
}

fn instance_summary(states: &BTreeMap<String, usize>) -> String {
    states
        .iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------
// Discovery

impl<E: Ec2, L: Elbv2> AwsProvider<E, L> {
    async fn discover_ec2(&self, env: &str) -> Result<Vec<ObservedResource>, CloudError> {
        let select = Select::Env(env);
        let (vpcs, subnets, igws, tables, groups, instances) = tokio::try_join!(
            self.ec2.describe_vpcs(select),
            self.ec2.describe_subnets(select),
            self.ec2.describe_internet_gateways(select),
            self.ec2.describe_route_tables(select),
            self.ec2.describe_security_groups(select),
            self.ec2.describe_instances(select),
        )?;
        let mut found = Vec::new();
        let mut add = |seen: Option<Seen>, kind| {
            if let Some(r) = seen.and_then(|s| s.discovered(kind)) {
                found.push(r);
            }
        };
        vpcs.iter()
            .for_each(|v| add(vpc_seen(v), ResourceKind::Vpc));
        subnets
            .iter()
            .for_each(|s| add(subnet_seen(s), ResourceKind::Subnet));
        igws.iter()
            .for_each(|g| add(igw_seen(g), ResourceKind::InternetGateway));
        tables
            .iter()
            .for_each(|t| add(route_table_seen(t), ResourceKind::RouteTable));
        groups
            .iter()
            .for_each(|g| add(security_group_seen(g), ResourceKind::SecurityGroup));
        found.extend(fleets(&instances, ResourceKind::Instances));
        Ok(found)
    }

    async fn discover_elbv2(&self, env: &str) -> Result<Vec<ObservedResource>, CloudError> {
        let (lbs, groups) =
            tokio::try_join!(self.elbv2.load_balancers(), self.elbv2.target_groups())?;
        let arns: Vec<String> = lbs
            .iter()
            .filter_map(|lb| lb.load_balancer_arn())
            .chain(groups.iter().filter_map(|g| g.target_group_arn()))
            .map(str::to_string)
            .collect();
        let mut tags = self.elbv2.tags(&arns).await?;
        let mut ours = |arn: Option<&str>| -> Option<Tags> {
            let t = tags.remove(arn?)?;
            (t.get(tags::ENV).map(String::as_str) == Some(env)).then_some(t)
        };

        let mut found = Vec::new();
        let mut our_lbs = Vec::new();
        for lb in &lbs {
            if let Some(t) = ours(lb.load_balancer_arn()) {
                our_lbs.extend(lb.load_balancer_arn().map(str::to_string));
                found.extend(
                    load_balancer_seen(lb, t)
                        .and_then(|s| s.discovered(ResourceKind::LoadBalancer)),
                );
            }
        }
        for group in &groups {
            if let Some(t) = ours(group.target_group_arn()) {
                found.extend(
                    target_group_seen(group, t)
                        .and_then(|s| s.discovered(ResourceKind::TargetGroup)),
                );
            }
        }

        // Listeners live under load balancers: only ours can hold ours.
        let mut listeners = Vec::new();
        for lb in &our_lbs {
            listeners.extend(self.elbv2.listeners(lb).await?);
        }
        let arns: Vec<String> = listeners
            .iter()
            .filter_map(|l| l.listener_arn().map(str::to_string))
            .collect();
        let mut tags = self.elbv2.tags(&arns).await?;
        for listener in &listeners {
            let Some(t) = listener.listener_arn().and_then(|a| tags.remove(a)) else {
                continue;
            };
            if t.get(tags::ENV).map(String::as_str) == Some(env) {
                found.extend(
                    listener_seen(listener, t).and_then(|s| s.discovered(ResourceKind::Listener)),
                );
            }
        }
        Ok(found)
    }
}

// ---------------------------------------------------------------------------
// Reading one resource back

impl<E: Ec2, L: Elbv2> AwsProvider<E, L> {
    /// Polls `read` until the resource is visible (EC2 is eventually
    /// consistent right after a create).
    async fn read_back<F, Fut>(
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
    async fn settle<T, F, Fut>(&self, what: &str, op: F) -> Result<T, CloudError>
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
    async fn patiently<F, Fut>(&self, what: &str, op: F) -> Result<(), CloudError>
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

    async fn vpc(&self, id: &str) -> Result<Option<Seen>, CloudError> {
        let ids = [id.to_string()];
        Ok(self
            .ec2
            .describe_vpcs(Select::Ids(&ids))
            .await?
            .first()
            .and_then(vpc_seen))
    }

    async fn subnet(&self, id: &str) -> Result<Option<Seen>, CloudError> {
        let ids = [id.to_string()];
        Ok(self
            .ec2
            .describe_subnets(Select::Ids(&ids))
            .await?
            .first()
            .and_then(subnet_seen))
    }

    async fn internet_gateway(&self, id: &str) -> Result<Option<InternetGateway>, CloudError> {
        let ids = [id.to_string()];
        Ok(self
            .ec2
            .describe_internet_gateways(Select::Ids(&ids))
            .await?
            .into_iter()
            .next())
    }

    async fn route_table(&self, id: &str) -> Result<Option<RouteTable>, CloudError> {
        let ids = [id.to_string()];
        Ok(self
            .ec2
            .describe_route_tables(Select::Ids(&ids))
            .await?
            .into_iter()
            .next())
    }

    async fn security_group(&self, id: &str) -> Result<Option<SecurityGroup>, CloudError> {
        let ids = [id.to_string()];
        Ok(self
            .ec2
            .describe_security_groups(Select::Ids(&ids))
            .await?
            .into_iter()
            .next())
    }

    async fn elbv2_tags(&self, arn: &str) -> Result<Tags, CloudError> {
        Ok(self
            .elbv2
            .tags(&[arn.to_string()])
            .await?
            .remove(arn)
            .unwrap_or_default())
    }

    async fn retag_ec2(
        &self,
        ids: &[String],
        current: &Tags,
        desired: &Tags,
    ) -> Result<(), CloudError> {
        let (set, remove) = tag_changes(current, desired);
        self.ec2.create_tags(ids, &set).await?;
        self.ec2.delete_tags(ids, &remove).await
    }

    async fn retag_elbv2(
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
// Per-kind create / update / delete

impl<E: Ec2, L: Elbv2> AwsProvider<E, L> {
    // --- vpc ---

    async fn create_vpc(&self, req: &CreateRequest<'_>) -> Result<ObservedResource, CloudError> {
        let want = Want::new(req.address, req.attrs);
        let id = self
            .ec2
            .create_vpc(want.str("cidr_block")?, req.tags)
            .await?;
        // AWS's default is off; only a wanted `true` needs a call.
        if want.bool("enable_dns_hostnames", false)? {
            self.settle(&format!("VPC {id}"), || {
                self.ec2.set_vpc_dns_hostnames(&id, true)
            })
            .await?;
        }
        self.read_back(req.address, &id, || self.vpc(&id)).await
    }

    async fn update_vpc(
        &self,
        current: &ObservedResource,
        attrs: &Attrs,
    ) -> Result<(), CloudError> {
        let want = Want::new(&current.address, attrs);
        if let Some(wanted) = attrs.get("enable_dns_hostnames") {
            let wanted = wanted
                .as_bool()
                .ok_or_else(|| want.bad("enable_dns_hostnames", "a boolean"))?;
            if self.ec2.vpc_dns_hostnames(&current.id).await? != wanted {
                self.ec2.set_vpc_dns_hostnames(&current.id, wanted).await?;
            }
        }
        Ok(())
    }

    // --- subnet ---

    async fn create_subnet(&self, req: &CreateRequest<'_>) -> Result<ObservedResource, CloudError> {
        let want = Want::new(req.address, req.attrs);
        let id = self
            .ec2
            .create_subnet(
                want.str("vpc")?,
                want.str("cidr_block")?,
                want.str("availability_zone")?,
                req.tags,
            )
            .await?;
        if want.bool("map_public_ip", false)? {
            self.settle(&format!("subnet {id}"), || {
                self.ec2.set_subnet_map_public_ip(&id, true)
            })
            .await?;
        }
        self.read_back(req.address, &id, || self.subnet(&id)).await
    }

    async fn update_subnet(
        &self,
        current: &ObservedResource,
        attrs: &Attrs,
    ) -> Result<(), CloudError> {
        let want = Want::new(&current.address, attrs);
        let wanted = want.bool("map_public_ip", false)?;
        if current.attrs.get("map_public_ip") != Some(&Value::Bool(wanted)) {
            self.ec2
                .set_subnet_map_public_ip(&current.id, wanted)
                .await?;
        }
        Ok(())
    }

    // --- internet_gateway ---

    async fn create_internet_gateway(
        &self,
        req: &CreateRequest<'_>,
    ) -> Result<ObservedResource, CloudError> {
        let want = Want::new(req.address, req.attrs);
        let vpc = want.str("vpc")?;
        let id = self.ec2.create_internet_gateway(req.tags).await?;
        let attached = self
            .settle(&format!("internet gateway {id}"), || {
                self.ec2.attach_internet_gateway(&id, vpc)
            })
            .await;
        if let Err(e) = attached {
            // Do not leave a detached gateway behind; if this cleanup fails
            // too, discovery finds it (tagged) without a `vpc`.
            if let Err(cleanup) = self.ec2.delete_internet_gateway(&id).await {
                tracing::warn!(%id, error = %cleanup, "could not delete the unattached internet gateway");
            }
            return Err(e);
        }
        self.read_back(req.address, &id, || async {
            Ok(self
                .internet_gateway(&id)
                .await?
                .as_ref()
                .and_then(igw_seen))
        })
        .await
    }

    async fn delete_internet_gateway(&self, id: &str) -> Result<(), CloudError> {
        let Some(igw) = self.internet_gateway(id).await? else {
            return Ok(());
        };
        for vpc in igw.attachments().iter().filter_map(|a| a.vpc_id()) {
            // Fails while instances in the VPC hold public addresses.
            self.patiently(&format!("detach {id} from {vpc}"), || {
                self.ec2.detach_internet_gateway(id, vpc)
            })
            .await?;
        }
        self.patiently(&format!("delete {id}"), || {
            self.ec2.delete_internet_gateway(id)
        })
        .await
    }

    // --- route_table ---

    async fn create_route_table(
        &self,
        req: &CreateRequest<'_>,
    ) -> Result<ObservedResource, CloudError> {
        let want = Want::new(req.address, req.attrs);
        let id = self
            .ec2
            .create_route_table(want.str("vpc")?, req.tags)
            .await?;
        self.converge_route_table(&want, &id).await?;
        self.read_back(req.address, &id, || async {
            Ok(self
                .route_table(&id)
                .await?
                .as_ref()
                .and_then(route_table_seen))
        })
        .await
    }

    /// Makes the table's routes and subnet associations exactly the wanted ones.
    async fn converge_route_table(&self, want: &Want<'_>, id: &str) -> Result<(), CloudError> {
        let routes = want.routes()?;
        let subnets: BTreeSet<String> = want.strs("subnets")?.into_iter().collect();
        let table = wait::until(
            &format!("route table {id} to become visible"),
            self.waits.visibility,
            self.waits.backoff,
            || async {
                Ok(match self.route_table(id).await? {
                    Some(t) => Probe::Done(t),
                    None => Probe::Waiting("not found yet".into()),
                })
            },
        )
        .await?;
        let current_routes = table_routes(&table);
        let current_subnets = table_associations(&table);

        for (destination, gateway) in &routes {
            match current_routes.get(destination) {
                None => {
                    self.settle(&format!("route {destination} in {id}"), || {
                        self.ec2.create_route(id, destination, gateway)
                    })
                    .await?
                }
                Some(now) if now != gateway => {
                    self.settle(&format!("route {destination} in {id}"), || {
                        self.ec2.replace_route(id, destination, gateway)
                    })
                    .await?
                }
                Some(_) => {}
            }
        }
        for destination in current_routes.keys().filter(|d| !routes.contains_key(*d)) {
            gone_ok(self.ec2.delete_route(id, destination).await)?;
        }

        for subnet in subnets.iter().filter(|s| !current_subnets.contains_key(*s)) {
            self.associate(id, subnet).await?;
        }
        for (subnet, association) in &current_subnets {
            if !subnets.contains(subnet) {
                gone_ok(self.ec2.disassociate_route_table(association).await)?;
            }
        }
        Ok(())
    }

    /// Associates `subnet` with `table`, moving it over if another table
    /// (e.g. the copy this one replaces) holds it.
    async fn associate(&self, table: &str, subnet: &str) -> Result<(), CloudError> {
        let what = format!("associate {subnet} with {table}");
        match self
            .settle(&what, || self.ec2.associate_route_table(table, subnet))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("Resource.AlreadyAssociated") => {
                let holders = self.ec2.route_tables_of_subnet(subnet).await?;
                let association = holders
                    .iter()
                    .flat_map(|t| t.associations())
                    .find(|a| a.subnet_id() == Some(subnet))
                    .and_then(|a| a.route_table_association_id())
                    .ok_or(e)?;
                self.ec2
                    .replace_route_table_association(association, table)
                    .await
            }
            Err(e) => Err(e),
        }
    }

    async fn delete_route_table(&self, id: &str) -> Result<(), CloudError> {
        let Some(table) = self.route_table(id).await? else {
            return Ok(());
        };
        for association in table_associations(&table).values() {
            gone_ok(self.ec2.disassociate_route_table(association).await)?;
        }
        self.patiently(&format!("delete {id}"), || self.ec2.delete_route_table(id))
            .await
    }

    // --- security_group ---

    async fn create_security_group(
        &self,
        req: &CreateRequest<'_>,
    ) -> Result<ObservedResource, CloudError> {
        let want = Want::new(req.address, req.attrs);
        let vpc = want.str("vpc")?;
        let name = names::security_group_name(
            req.tags.get(tags::ENV).map_or("", String::as_str),
            &req.address.stack,
            &req.address.resource(),
            req.tags.get(tags::SPEC).map_or("", String::as_str),
        );
        let id = match self
            .ec2
            .create_security_group(&name, want.str("description")?, vpc, req.tags)
            .await
        {
            Ok(id) => id,
            // A retry of a create that got through: adopt it if it is ours.
            Err(e) if e.code() == Some("InvalidGroup.Duplicate") => {
                let existing = self.ec2.security_group_by_name(vpc, &name).await?;
                let ours = existing
                    .filter(|g| identity_tags(&ec2::tag_map(g.tags())) == identity_tags(req.tags));
                match ours.as_ref().and_then(|g| g.group_id()) {
                    Some(id) => id.to_string(),
                    None => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        self.converge_rules(&want, &id).await?;
        self.read_back(req.address, &id, || async {
            Ok(self
                .security_group(&id)
                .await?
                .as_ref()
                .and_then(security_group_seen))
        })
        .await
    }

    /// Makes the group's ingress and egress rules exactly the wanted ones
    /// (which drops AWS's default allow-all egress unless it is wanted).
    /// Authorizes before revoking, so a changed rule never leaves a gap.
    async fn converge_rules(&self, want: &Want<'_>, id: &str) -> Result<(), CloudError> {
        let group = wait::until(
            &format!("security group {id} to become visible"),
            self.waits.visibility,
            self.waits.backoff,
            || async {
                Ok(match self.security_group(id).await? {
                    Some(g) => Probe::Done(g),
                    None => Probe::Waiting("not found yet".into()),
                })
            },
        )
        .await?;
        for (egress, key, current) in [
            (false, "ingress", ec2::sg_rules(group.ip_permissions())),
            (true, "egress", ec2::sg_rules(group.ip_permissions_egress())),
        ] {
            let wanted = want.rules(key)?;
            let missing: Vec<SgRule> = wanted
                .iter()
                .filter(|r| !current.contains(r))
                .cloned()
                .collect();
            let extra: Vec<SgRule> = current
                .iter()
                .filter(|r| !wanted.contains(r))
                .cloned()
                .collect();
            // A referenced group created just before may not be visible yet.
            self.settle(&format!("{key} rules of {id}"), || {
                self.ec2.authorize(id, egress, &missing)
            })
            .await?;
            gone_ok(self.ec2.revoke(id, egress, &extra).await)?;
        }
        Ok(())
    }

    async fn delete_security_group(&self, id: &str) -> Result<(), CloudError> {
        let Some(group) = self.security_group(id).await? else {
            return Ok(());
        };
        // Its own rules may reference other groups, which then could not be
        // deleted: drop them first.
        gone_ok(
            self.ec2
                .revoke(id, false, &ec2::sg_rules(group.ip_permissions()))
                .await,
        )?;
        gone_ok(
            self.ec2
                .revoke(id, true, &ec2::sg_rules(group.ip_permissions_egress()))
                .await,
        )?;
        // Other groups' rules, instances or load balancers may still use it
        // until their own deletion completes.
        self.patiently(&format!("delete {id}"), || {
            self.ec2.delete_security_group(id)
        })
        .await
    }

    // --- instances ---

    async fn create_instances(
        &self,
        req: &CreateRequest<'_>,
    ) -> Result<ObservedResource, CloudError> {
        let want = Want::new(req.address, req.attrs);
        let count = usize::try_from(want.i32("count")?).map_err(|_| want.bad("count", "≥ 0"))?;
        let ids = self
            .launch(&want, req.tags, &BTreeMap::new(), count, req.client_token)
            .await?;
        self.read_fleet(req.address, &ids, req.tags).await
    }

    /// Launches `count` instances spread over the wanted subnets (fewest
    /// `used` first), waits until all run, returns their ids.
    async fn launch(
        &self,
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
            return Err(want.bad("subnets", "a non-empty list of subnet ids"));
        }
        let mut groups = want.strs("security_groups")?;
        groups.sort();
        let image = want.str("image")?;
        let instance_type = want.str("instance_type")?;
        let user_data = want.opt_str("user_data")?.unwrap_or_default();
        let mut ids = Vec::new();
        for (subnet, n) in spread(&subnets, used, count) {
            let launched = self
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
        self.wait_running(&want.address.to_string(), &ids).await?;
        Ok(ids)
    }

    async fn wait_running(&self, what: &str, ids: &[String]) -> Result<(), CloudError> {
        wait::until(
            &format!("{what}: {} instance(s) running", ids.len()),
            self.waits.instances,
            self.waits.backoff,
            || async {
                let instances = self.ec2.describe_instances(Select::Ids(ids)).await?;
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

    async fn wait_terminated(&self, what: &str, ids: &[String]) -> Result<(), CloudError> {
        wait::until(
            &format!("{what}: {} instance(s) terminated", ids.len()),
            self.waits.instances,
            self.waits.backoff,
            || async {
                let instances = self.ec2.describe_instances(Select::Ids(ids)).await?;
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

    /// The fleet made of `ids` (those still pending or running). An empty
    /// fleet has no instance to carry tags: it reports `tags`.
    async fn read_fleet(
        &self,
        address: &Address,
        ids: &[String],
        tags: &Tags,
    ) -> Result<ObservedResource, CloudError> {
        let instances = self.ec2.describe_instances(Select::Ids(ids)).await?;
        let members: Vec<&Instance> = instances.iter().filter(|i| is_live(i)).collect();
        let mut fleet = fleet_seen(&members);
        if members.is_empty() {
            fleet.tags = tags.clone();
        }
        Ok(fleet.at(address))
    }

    /// The fleet's instances now (any state but shutting-down/terminated).
    async fn fleet_members(&self, current: &ObservedResource) -> Result<Vec<Instance>, CloudError> {
        // A fleet is its address *and* its creating run: during a replacement
        // the old and the new fleet share the address (see `fleets`).
        let identity = identity_tags(&current.tags).map(|mut identity| {
            if let Some(run) = current.tags.get(tags::RUN) {
                identity.insert(tags::RUN.to_string(), run.clone());
            }
            identity
        });
        match identity {
            Some(identity) => self.ec2.describe_instances(Select::Tagged(&identity)).await,
            None => {
                let ids = current
                    .exports
                    .get("ids")
                    .and_then(Value::as_str_list)
                    .unwrap_or_default()
                    .into_iter()
                    .map(str::to_string)
                    .collect::<Vec<_>>();
                Ok(self
                    .ec2
                    .describe_instances(Select::Ids(&ids))
                    .await?
                    .into_iter()
                    .filter(|i| {
                        !matches!(
                            state_of(i),
                            Some(InstanceStateName::Terminated | InstanceStateName::ShuttingDown)
                        )
                    })
                    .collect())
            }
        }
    }

    async fn update_instances(
        &self,
        current: &ObservedResource,
        attrs: &Attrs,
        tags: &Tags,
    ) -> Result<ObservedResource, CloudError> {
        let want = Want::new(&current.address, attrs);
        let wanted = usize::try_from(want.i32("count")?).map_err(|_| want.bad("count", "≥ 0"))?;
        let members = self.fleet_members(current).await?;
        let live: Vec<&Instance> = members.iter().filter(|i| is_live(i)).collect();
        let mut ids: Vec<String> = live
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect();

        // Every member (stopped ones too) carries the fleet's tags.
        let members_ids: Vec<String> = members
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect();
        self.retag_ec2(&members_ids, &current.tags, tags).await?;

        if wanted > live.len() {
            let mut used: BTreeMap<String, usize> = BTreeMap::new();
            for i in &live {
                if let Some(s) = i.subnet_id() {
                    *used.entry(s.to_string()).or_default() += 1;
                }
            }
            let mut sorted = ids.clone();
            sorted.sort();
            // Deterministic for this exact step, so a retried call is
            // recognised by AWS (moto ignores it).
            let token = format!(
                "{}:{}>{}:{}",
                current.address,
                live.len(),
                wanted,
                sorted.join(",")
            );
            let token = names::client_token(&token, "scale");
            ids.extend(
                self.launch(&want, tags, &used, wanted - live.len(), &token)
                    .await?,
            );
        } else if wanted < live.len() {
            let doomed = surplus(&live, wanted);
            gone_ok(self.ec2.terminate_instances(&doomed).await)?;
            self.wait_terminated(&current.address.to_string(), &doomed)
                .await?;
            ids.retain(|id| !doomed.contains(id));
        }
        self.read_fleet(&current.address, &ids, tags).await
    }

    async fn delete_instances(&self, current: &ObservedResource) -> Result<(), CloudError> {
        let ids: Vec<String> = self
            .fleet_members(current)
            .await?
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        gone_ok(self.ec2.terminate_instances(&ids).await)?;
        self.wait_terminated(&current.address.to_string(), &ids)
            .await
    }

    // --- target_group ---

    async fn create_target_group(
        &self,
        req: &CreateRequest<'_>,
    ) -> Result<ObservedResource, CloudError> {
        let want = Want::new(req.address, req.attrs);
        let name = elbv2_name(req.address, req.tags);
        let health_check = want.health_check()?;
        let spec = TargetGroupSpec {
            name: &name,
            protocol: want.str("protocol")?,
            port: want.i32("port")?,
            vpc: want.str("vpc")?,
            health_check: &health_check,
        };
        let (group, tags) = match self.elbv2.create_target_group(&spec, req.tags).await {
            Ok(group) => (group, req.tags.clone()),
            // AWS returns the existing group for an identical create; moto
            // refuses. Either way: adopt it only if it is ours.
            Err(e) if e.code() == Some("DuplicateTargetGroupName") => {
                let Some(group) = self.elbv2.target_group_by_name(&name).await? else {
                    return Err(e);
                };
                let arn = group.target_group_arn().unwrap_or_default().to_string();
                let tags = self.elbv2_tags(&arn).await?;
                if identity_tags(&tags) != identity_tags(req.tags) {
                    return Err(e);
                }
                (group, tags)
            }
            Err(e) => return Err(e),
        };
        target_group_seen(&group, tags)
            .map(|s| s.at(req.address))
            .ok_or(CloudError::MissingField {
                service: "ELBv2",
                operation: "CreateTargetGroup",
                field: "TargetGroupArn",
            })
    }

    async fn update_target_group(
        &self,
        current: &ObservedResource,
        attrs: &Attrs,
    ) -> Result<(), CloudError> {
        let want = Want::new(&current.address, attrs);
        let health_check = want.health_check()?;
        if current.attrs.get("health_check") != attrs.get("health_check") {
            let protocol = want.str("protocol")?;
            self.elbv2
                .modify_health_check(&current.id, protocol, &health_check)
                .await?;
        }
        Ok(())
    }

    // --- load_balancer ---

    async fn create_load_balancer(
        &self,
        req: &CreateRequest<'_>,
    ) -> Result<ObservedResource, CloudError> {
        let want = Want::new(req.address, req.attrs);
        let name = elbv2_name(req.address, req.tags);
        let mut subnets = want.strs("subnets")?;
        subnets.sort();
        let mut groups = want.strs("security_groups")?;
        groups.sort();
        let spec = LoadBalancerSpec {
            name: &name,
            subnets: &subnets,
            security_groups: &groups,
            internal: want.bool("internal", false)?,
        };
        let created = self.elbv2.create_load_balancer(&spec, req.tags).await?;
        let arn = created.load_balancer_arn().unwrap_or_default().to_string();
        let lb = self.wait_active(req.address, &arn).await?;
        load_balancer_seen(&lb, req.tags.clone())
            .map(|s| s.at(req.address))
            .ok_or(CloudError::MissingField {
                service: "ELBv2",
                operation: "CreateLoadBalancer",
                field: "LoadBalancerArn",
            })
    }

    async fn wait_active(&self, address: &Address, arn: &str) -> Result<LoadBalancer, CloudError> {
        wait::until(
            &format!("load balancer {address} to become active"),
            self.waits.load_balancer,
            self.waits.backoff,
            || async {
                let Some(lb) = self.elbv2.load_balancer(arn).await? else {
                    return Ok(Probe::Waiting("not visible yet".into()));
                };
                let state = lb.state();
                match state.and_then(|s| s.code()) {
                    Some(LoadBalancerStateEnum::Active | LoadBalancerStateEnum::ActiveImpaired) => {
                        Ok(Probe::Done(lb))
                    }
                    Some(LoadBalancerStateEnum::Failed) => Err(CloudError::Failed {
                        what: format!("load balancer {address} ({arn})"),
                        state: "failed".into(),
                        reason: state
                            .and_then(|s| s.reason())
                            .unwrap_or("no reason given")
                            .to_string(),
                    }),
                    other => Ok(Probe::Waiting(
                        other.map_or("unknown", |c| c.as_str()).to_string(),
                    )),
                }
            },
        )
        .await
    }

    async fn update_load_balancer(
        &self,
        current: &ObservedResource,
        attrs: &Attrs,
    ) -> Result<(), CloudError> {
        let want = Want::new(&current.address, attrs);
        let mut subnets = want.strs("subnets")?;
        subnets.sort();
        if current.attrs.get("subnets")
            != Some(&Value::str_list(subnets.iter().map(String::as_str)))
        {
            self.elbv2.set_subnets(&current.id, &subnets).await?;
        }
        let mut groups = want.strs("security_groups")?;
        groups.sort();
        if current.attrs.get("security_groups")
            != Some(&Value::str_list(groups.iter().map(String::as_str)))
        {
            self.elbv2.set_security_groups(&current.id, &groups).await?;
        }
        Ok(())
    }

    async fn delete_load_balancer(&self, current: &ObservedResource) -> Result<(), CloudError> {
        let arn = current.id.as_str();
        gone_ok(self.elbv2.delete_load_balancer(arn).await)?;
        wait::until(
            &format!("load balancer {} to be deleted", current.address),
            self.waits.load_balancer,
            self.waits.backoff,
            || async {
                Ok(match self.elbv2.load_balancer(arn).await? {
                    None => Probe::Done(()),
                    Some(lb) => Probe::Waiting(
                        lb.state()
                            .and_then(|s| s.code())
                            .map_or("still listed", |c| c.as_str())
                            .to_string(),
                    ),
                })
            },
        )
        .await
    }

    // --- listener ---

    async fn create_listener(
        &self,
        req: &CreateRequest<'_>,
    ) -> Result<ObservedResource, CloudError> {
        let want = Want::new(req.address, req.attrs);
        let action = match want.opt_str("default_target_group")? {
            Some(group) => DefaultAction::Forward(group),
            None => DefaultAction::Unavailable,
        };
        let listener = self
            .elbv2
            .create_listener(
                want.str("load_balancer")?,
                want.str("protocol")?,
                want.i32("port")?,
                action,
                req.tags,
            )
            .await?;
        listener_seen(&listener, req.tags.clone())
            .map(|s| s.at(req.address))
            .ok_or(CloudError::MissingField {
                service: "ELBv2",
                operation: "CreateListener",
                field: "ListenerArn",
            })
    }

    async fn update_listener(
        &self,
        current: &ObservedResource,
        attrs: &Attrs,
    ) -> Result<(), CloudError> {
        let want = Want::new(&current.address, attrs);
        let changed = ["protocol", "port", "default_target_group"]
            .iter()
            .any(|k| current.attrs.get(*k) != attrs.get(*k));
        if changed {
            let action = match want.opt_str("default_target_group")? {
                Some(group) => DefaultAction::Forward(group),
                None => DefaultAction::Unavailable,
            };
            self.elbv2
                .modify_listener(
                    &current.id,
                    want.str("protocol")?,
                    want.i32("port")?,
                    action,
                )
                .await?;
        }
        Ok(())
    }
}

fn elbv2_name(address: &Address, tags: &Tags) -> String {
    names::elbv2_name(
        tags.get(tags::ENV).map_or("", String::as_str),
        &address.stack,
        &address.resource(),
        tags.get(tags::SPEC).map_or("", String::as_str),
    )
}

// ---------------------------------------------------------------------------

impl<E: Ec2, L: Elbv2> Provider for AwsProvider<E, L> {
    async fn discover(&self, env: &str) -> Result<Vec<ObservedResource>, CloudError> {
        let (mut found, elb) = tokio::try_join!(self.discover_ec2(env), self.discover_elbv2(env))?;
        found.extend(elb);
        found.sort_by(|a, b| (&a.address, &a.id).cmp(&(&b.address, &b.id)));
        Ok(found)
    }

    async fn create(&self, request: &CreateRequest<'_>) -> Result<ObservedResource, CloudError> {
        use ResourceKind as K;
        match request.address.kind {
            K::Vpc => self.create_vpc(request).await,
            K::Subnet => self.create_subnet(request).await,
            K::InternetGateway => self.create_internet_gateway(request).await,
            K::RouteTable => self.create_route_table(request).await,
            K::SecurityGroup => self.create_security_group(request).await,
            K::Instances => self.create_instances(request).await,
            K::TargetGroup => self.create_target_group(request).await,
            K::LoadBalancer => self.create_load_balancer(request).await,
            K::Listener => self.create_listener(request).await,
            kind @ (K::Image | K::Service) => Err(unsupported(kind, "create")),
        }
    }

    async fn update(
        &self,
        current: &ObservedResource,
        attrs: &Attrs,
        tags: &Tags,
    ) -> Result<ObservedResource, CloudError> {
        use ResourceKind as K;
        let address = &current.address;
        let id = current.id.as_str();
        let ids = [current.id.clone()];
        match address.kind {
            K::Vpc => {
                self.update_vpc(current, attrs).await?;
                self.retag_ec2(&ids, &current.tags, tags).await?;
                self.read_back(address, id, || self.vpc(id)).await
            }
            K::Subnet => {
                self.update_subnet(current, attrs).await?;
                self.retag_ec2(&ids, &current.tags, tags).await?;
                self.read_back(address, id, || self.subnet(id)).await
            }
            K::InternetGateway => {
                self.retag_ec2(&ids, &current.tags, tags).await?;
                self.read_back(address, id, || async {
                    Ok(self.internet_gateway(id).await?.as_ref().and_then(igw_seen))
                })
                .await
            }
            K::RouteTable => {
                self.converge_route_table(&Want { address, attrs }, id)
                    .await?;
                self.retag_ec2(&ids, &current.tags, tags).await?;
                self.read_back(address, id, || async {
                    Ok(self
                        .route_table(id)
                        .await?
                        .as_ref()
                        .and_then(route_table_seen))
                })
                .await
            }
            K::SecurityGroup => {
                self.converge_rules(&Want { address, attrs }, id).await?;
                self.retag_ec2(&ids, &current.tags, tags).await?;
                self.read_back(address, id, || async {
                    Ok(self
                        .security_group(id)
                        .await?
                        .as_ref()
                        .and_then(security_group_seen))
                })
                .await
            }
            K::Instances => self.update_instances(current, attrs, tags).await,
            K::TargetGroup => {
                self.update_target_group(current, attrs).await?;
                self.retag_elbv2(id, &current.tags, tags).await?;
                let group = self.elbv2.target_group(id).await?;
                let tags = self.elbv2_tags(id).await?;
                group
                    .as_ref()
                    .and_then(|g| target_group_seen(g, tags))
                    .map(|s| s.at(address))
                    .ok_or_else(|| vanished(address, id))
            }
            K::LoadBalancer => {
                self.update_load_balancer(current, attrs).await?;
                self.retag_elbv2(id, &current.tags, tags).await?;
                let lb = self.wait_active(address, id).await?;
                let tags = self.elbv2_tags(id).await?;
                load_balancer_seen(&lb, tags)
                    .map(|s| s.at(address))
                    .ok_or_else(|| vanished(address, id))
            }
            K::Listener => {
                self.update_listener(current, attrs).await?;
                self.retag_elbv2(id, &current.tags, tags).await?;
                let listener = self.elbv2.listener(id).await?;
                let tags = self.elbv2_tags(id).await?;
                listener
                    .as_ref()
                    .and_then(|l| listener_seen(l, tags))
                    .map(|s| s.at(address))
                    .ok_or_else(|| vanished(address, id))
            }
            kind @ (K::Image | K::Service) => Err(unsupported(kind, "update")),
        }
    }

    async fn delete(&self, current: &ObservedResource) -> Result<(), CloudError> {
        use ResourceKind as K;
        let id = current.id.as_str();
        match current.address.kind {
            K::Vpc => {
                self.patiently(&format!("delete {id}"), || self.ec2.delete_vpc(id))
                    .await
            }
            K::Subnet => {
                self.patiently(&format!("delete {id}"), || self.ec2.delete_subnet(id))
                    .await
            }
            K::InternetGateway => self.delete_internet_gateway(id).await,
            K::RouteTable => self.delete_route_table(id).await,
            K::SecurityGroup => self.delete_security_group(id).await,
            K::Instances => self.delete_instances(current).await,
            K::TargetGroup => {
                // In use until the listener forwarding to it is changed or gone.
                self.patiently(&format!("delete {id}"), || {
                    self.elbv2.delete_target_group(id)
                })
                .await
            }
            K::LoadBalancer => self.delete_load_balancer(current).await,
            K::Listener => gone_ok(self.elbv2.delete_listener(id).await),
            kind @ (K::Image | K::Service) => Err(unsupported(kind, "delete")),
        }
    }
}

/// Updated, then not found when read back: deleted behind drctl's back.
fn vanished(address: &Address, id: &str) -> CloudError {
    CloudError::Failed {
        what: format!("{address} ({id})"),
        state: "gone".into(),
        reason: "it was deleted while being updated".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::types::{InstanceState, Tag};
    use aws_smithy_types::DateTime;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn new_instances_go_round_robin_then_to_the_least_used_subnets() {
        let subnets = ids(&["s-b", "s-a", "s-c"]);
        assert_eq!(
            spread(&subnets, &BTreeMap::new(), 5),
            vec![("s-b".into(), 2), ("s-a".into(), 2), ("s-c".into(), 1)]
        );
        let used = BTreeMap::from([("s-b".to_string(), 2), ("s-a".to_string(), 1)]);
        assert_eq!(
            spread(&subnets, &used, 2),
            vec![("s-a".into(), 1), ("s-c".into(), 1)]
        );
        assert_eq!(spread(&subnets, &used, 0), vec![]);
        assert_eq!(
            spread(&ids(&["x", "x"]), &BTreeMap::new(), 2),
            vec![("x".into(), 2)]
        );
    }

    fn instance(id: &str, launched: i64, state: InstanceStateName) -> Instance {
        Instance::builder()
            .instance_id(id)
            .launch_time(DateTime::from_secs(launched))
            .state(InstanceState::builder().name(state).build())
            .image_id("ami-1")
            .private_ip_address(format!("10.0.0.{}", launched))
            .tags(Tag::builder().key(tags::STACK).value("app").build())
            .tags(
                Tag::builder()
                    .key(tags::RESOURCE)
                    .value("instances.web")
                    .build(),
            )
            .build()
    }

    #[test]
    fn scale_down_terminates_the_newest_first() {
        let a = instance("i-a", 100, InstanceStateName::Running);
        let b = instance("i-b", 300, InstanceStateName::Running);
        let c = instance("i-c", 200, InstanceStateName::Running);
        let d = instance("i-d", 300, InstanceStateName::Running);
        assert_eq!(surplus(&[&a, &b, &c, &d], 2), ids(&["i-d", "i-b"]));
        assert_eq!(surplus(&[&a, &b], 2), Vec::<String>::new());
    }

    #[test]
    fn a_fleet_counts_only_pending_and_running_instances() {
        let all = vec![
            instance("i-c", 3, InstanceStateName::Running),
            instance("i-a", 1, InstanceStateName::Pending),
            instance("i-b", 2, InstanceStateName::Stopped),
        ];
        let found = fleets(&all, ResourceKind::Instances);
        assert_eq!(found.len(), 1);
        let fleet = &found[0];
        assert_eq!(fleet.address.to_string(), "app.instances.web");
        assert_eq!(fleet.id, "i-a");
        assert_eq!(fleet.attrs["count"], Value::Int(2));
        assert_eq!(fleet.exports["ids"], Value::str_list(["i-a", "i-c"]));
        assert_eq!(
            fleet.exports["private_ips"],
            Value::str_list(["10.0.0.1", "10.0.0.3"])
        );
        assert_eq!(fleet.attrs["image"], Value::Str("ami-1".into()));

        let stopped = vec![instance("i-b", 2, InstanceStateName::Stopped)];
        let fleet = &fleets(&stopped, ResourceKind::Instances)[0];
        assert_eq!(fleet.id, "");
        assert_eq!(fleet.attrs.get("count"), Some(&Value::Int(0)));
        assert_eq!(fleet.attrs.get("image"), None);
        assert!(fleets(&stopped, ResourceKind::Service).is_empty());
    }

    #[test]
    fn tags_change_exactly_but_aws_tags_stay() {
        let current = Tags::from([
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string()),
            ("aws:cloudformation:stack".to_string(), "x".to_string()),
        ]);
        let desired = Tags::from([
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "3".to_string()),
            ("c".to_string(), "4".to_string()),
        ]);
        let (set, remove) = tag_changes(&current, &desired);
        assert_eq!(
            set,
            Tags::from([
                ("b".to_string(), "3".to_string()),
                ("c".to_string(), "4".to_string())
            ])
        );
        assert!(remove.is_empty());
        let (set, remove) = tag_changes(&desired, &Tags::new());
        assert!(set.is_empty());
        assert_eq!(remove, ids(&["a", "b", "c"]));
    }

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

    #[test]
    fn rules_read_from_attrs_in_the_normalised_shape() {
        let address = Address::new("net", ResourceKind::SecurityGroup, "web");
        let rule = |extra: (&str, Value)| {
            Value::Table(BTreeMap::from([
                ("protocol".to_string(), Value::Str("tcp".into())),
                ("from_port".to_string(), Value::Int(80)),
                ("to_port".to_string(), Value::Int(80)),
                (extra.0.to_string(), extra.1),
            ]))
        };
        let attrs = Attrs::from([(
            "ingress".to_string(),
            Value::List(vec![
                rule(("security_group", Value::Str("sg-1".into()))),
                rule(("cidr", Value::Str("0.0.0.0/0".into()))),
            ]),
        )]);
        let want = Want::new(&address, &attrs);
        let rules = want.rules("ingress").unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(want.rules("egress").unwrap(), vec![]);
        // And back: the same shape, sorted.
        let mut expected = attrs["ingress"].as_list().unwrap().to_vec();
        expected.sort();
        assert_eq!(rules_value(&rules), Value::List(expected));

        let bad = Attrs::from([(
            "ingress".to_string(),
            Value::List(vec![Value::Table(BTreeMap::from([(
                "protocol".to_string(),
                Value::Str("tcp".into()),
            )]))]),
        )]);
        let err = Want {
            address: &address,
            attrs: &bad,
        }
        .rules("ingress")
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("net.security_group.web: attribute `ingress` must be"),
            "{err}"
        );
    }
}
