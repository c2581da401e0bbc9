//! The AWS provider against moto server: every kind is created, discovered
//! back in exactly the shape it was requested in (the contract between
//! planner and adapter), updated, and deleted.
//!
//! All tests share one moto server and run in parallel: each uses its own
//! environment name, and tests that count calls or create many instances use
//! a region of their own (moto keeps state per region).

use std::collections::BTreeMap;
use std::time::Duration;

use drctl::cloud::aws::{AwsProvider, Waits};
use drctl::cloud::ec2::Ec2;
use drctl::cloud::provider::{CreateRequest, Provider};
use drctl::cloud::wait::Backoff;
use drctl::cloud::AwsSettings;
use drctl::model::ResourceKind;
use drctl::types::tags::{self, Identity};
use drctl::world::{Address, Attrs, ObservedResource, Tags, Value};

use crate::support::moto_endpoint;

async fn provider(region: &str) -> AwsProvider {
    let config = AwsSettings::sandbox(moto_endpoint(), region).load().await;
    AwsProvider::new(&config).with_waits(Waits {
        backoff: Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(200),
        },
        instances: Duration::from_secs(20),
        load_balancer: Duration::from_secs(20),
        images: Duration::from_secs(20),
        dependencies: Duration::from_secs(5),
        visibility: Duration::from_secs(5),
    })
}

/// One test's environment: addresses and tag sets for it.
struct Env {
    name: &'static str,
    stack: &'static str,
}

impl Env {
    fn address(&self, kind: ResourceKind, name: &str) -> Address {
        Address::new(self.stack, kind, name)
    }

    fn tags(&self, address: &Address, spec: &str) -> Tags {
        tags::tag_set(
            &Identity::new(self.name, &address.stack, &address.resource()),
            spec,
            "run-test",
            None,
            &BTreeMap::from([("team".to_string(), "sre".to_string())]),
        )
    }
}

async fn create(p: &AwsProvider, env: &Env, address: &Address, attrs: &Attrs) -> ObservedResource {
    let tags = env.tags(address, "spec-1");
    let created = p
        .create(&CreateRequest {
            address,
            attrs,
            tags: &tags,
            client_token: &format!("{}-{address}", env.name),
            late: None,
        })
        .await
        .unwrap_or_else(|e| panic!("create {address}: {e}"));
    assert_eq!(&created.address, address);
    assert_eq!(
        created.tags, tags,
        "{address} carries its tags from creation"
    );
    created
}

async fn discover(p: &AwsProvider, env: &Env) -> Vec<ObservedResource> {
    p.discover(env.name).await.expect("discover")
}

fn find<'a>(found: &'a [ObservedResource], address: &Address) -> &'a ObservedResource {
    let matching: Vec<_> = found.iter().filter(|r| &r.address == address).collect();
    assert_eq!(
        matching.len(),
        1,
        "{address} discovered once; found: {:#?}",
        found
            .iter()
            .map(|r| r.address.to_string())
            .collect::<Vec<_>>()
    );
    matching[0]
}

/// The contract: what is observed is what was requested, key for key,
/// except the keys the kind cannot observe cheaply.
fn assert_same(observed: &ObservedResource, requested: &Attrs, unobservable: &[&str]) {
    let mut expected = requested.clone();
    for key in unobservable {
        expected.remove(*key);
    }
    assert_eq!(
        observed.attrs, expected,
        "{} as observed vs as requested",
        observed.address
    );
}

fn s(v: &str) -> Value {
    Value::Str(v.to_string())
}

fn attrs<const N: usize>(pairs: [(&str, Value); N]) -> Attrs {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn table<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Table(attrs(pairs))
}

fn strs(items: &[&str]) -> Value {
    Value::str_list(items.iter().copied())
}

fn sorted(mut items: Vec<Value>) -> Value {
    items.sort();
    Value::List(items)
}

fn id_of(r: &ObservedResource) -> &str {
    r.exports["id"].as_str().expect("id export")
}

async fn delete_twice(p: &AwsProvider, r: &ObservedResource) {
    p.delete(r)
        .await
        .unwrap_or_else(|e| panic!("delete {}: {e}", r.address));
    p.delete(r)
        .await
        .unwrap_or_else(|e| panic!("deleting {} again must succeed: {e}", r.address));
}

/// A VPC and two subnets in two zones, for tests about something else.
async fn network(
    p: &AwsProvider,
    env: &Env,
    cidr: &str,
    region: &str,
) -> (ObservedResource, Vec<ObservedResource>) {
    let vpc = create(
        p,
        env,
        &env.address(ResourceKind::Vpc, "main"),
        &attrs([("cidr_block", s(&format!("{cidr}.0.0/16")))]),
    )
    .await;
    let mut subnets = Vec::new();
    for (i, zone) in ["a", "b"].iter().enumerate() {
        subnets.push(
            create(
                p,
                env,
                &env.address(ResourceKind::Subnet, zone),
                &attrs([
                    ("vpc", s(id_of(&vpc))),
                    ("cidr_block", s(&format!("{cidr}.{}.0/24", i + 1))),
                    ("availability_zone", s(&format!("{region}{zone}"))),
                    ("map_public_ip", Value::Bool(false)),
                ]),
            )
            .await,
        );
    }
    (vpc, subnets)
}

#[tokio::test]
async fn network_kinds_round_trip_through_discovery() {
    let p = provider("us-west-2").await;
    let env = Env {
        name: "it-provider-network",
        stack: "network",
    };

    let vpc_attrs = attrs([
        ("cidr_block", s("10.81.0.0/16")),
        ("enable_dns_hostnames", Value::Bool(true)),
    ]);
    let vpc = create(
        &p,
        &env,
        &env.address(ResourceKind::Vpc, "main"),
        &vpc_attrs,
    )
    .await;
    let vpc_id = id_of(&vpc).to_string();
    assert!(vpc_id.starts_with("vpc-"));
    let calls = p.calls();
    assert_eq!(calls.get("CreateVpc"), 1, "{calls}");
    assert_eq!(calls.get("ModifyVpcAttribute"), 1, "{calls}");
    // The spec tag comes last, once the attribute is set.
    assert_eq!(calls.get("CreateTags"), 1, "{calls}");
    assert_eq!(calls.mutating(), 3, "{calls}");

    let subnet_attrs = |cidr: &str, zone: &str, public: bool| {
        attrs([
            ("vpc", s(&vpc_id)),
            ("cidr_block", s(cidr)),
            ("availability_zone", s(zone)),
            ("map_public_ip", Value::Bool(public)),
        ])
    };
    let a_attrs = subnet_attrs("10.81.1.0/24", "us-west-2a", false);
    let b_attrs = subnet_attrs("10.81.2.0/24", "us-west-2b", true);
    let a = create(&p, &env, &env.address(ResourceKind::Subnet, "a"), &a_attrs).await;
    let b = create(&p, &env, &env.address(ResourceKind::Subnet, "b"), &b_attrs).await;

    let igw_attrs = attrs([("vpc", s(&vpc_id))]);
    let igw = create(
        &p,
        &env,
        &env.address(ResourceKind::InternetGateway, "gw"),
        &igw_attrs,
    )
    .await;
    let igw_id = id_of(&igw).to_string();

    let route =
        |destination: &str| table([("destination", s(destination)), ("gateway", s(&igw_id))]);
    let rt_attrs = attrs([
        ("vpc", s(&vpc_id)),
        ("routes", sorted(vec![route("0.0.0.0/0")])),
        ("subnets", strs(&[id_of(&a)])),
    ]);
    let rt = create(
        &p,
        &env,
        &env.address(ResourceKind::RouteTable, "public"),
        &rt_attrs,
    )
    .await;

    // Discovery finds each one, in the shape requested, with its tags.
    let found = discover(&p, &env).await;
    assert_eq!(found.len(), 5, "{found:#?}");
    for (created, requested, unobservable) in [
        (&vpc, &vpc_attrs, &["enable_dns_hostnames"][..]),
        (&a, &a_attrs, &[]),
        (&b, &b_attrs, &[]),
        (&igw, &igw_attrs, &[]),
        (&rt, &rt_attrs, &[]),
    ] {
        let seen = find(&found, &created.address);
        assert_same(seen, requested, unobservable);
        assert_eq!(seen, created, "create returns what discovery sees");
        assert_eq!(seen.tags[tags::ENV], env.name);
        assert_eq!(seen.spec_hash(), Some("spec-1"));
        assert_eq!(seen.run_id(), Some("run-test"));
    }

    // Updates: subnet a goes public; the route table gains a route and moves
    // from subnet a to b; tags change (one changed, one added, one removed).
    let mut new_tags = env.tags(&a.address, "spec-2");
    new_tags.remove("team");
    new_tags.insert("owner".into(), "dr".into());
    let a_public = subnet_attrs("10.81.1.0/24", "us-west-2a", true);
    let updated = p
        .update(&a, &a_public, &new_tags)
        .await
        .expect("update subnet");
    assert_same(&updated, &a_public, &[]);
    assert_eq!(updated.tags, new_tags);

    let rt_new = attrs([
        ("vpc", s(&vpc_id)),
        (
            "routes",
            sorted(vec![route("0.0.0.0/0"), route("192.168.0.0/16")]),
        ),
        ("subnets", strs(&[id_of(&b)])),
    ]);
    let rt_tags = env.tags(&rt.address, "spec-2");
    let updated_rt = p
        .update(&rt, &rt_new, &rt_tags)
        .await
        .expect("update route table");
    assert_same(&updated_rt, &rt_new, &[]);

    // DNS hostnames are not in DescribeVpcs; the attribute API shows them.
    assert!(p.ec2().vpc_dns_hostnames(&vpc_id).await.unwrap());
    p.update(
        &vpc,
        &attrs([
            ("cidr_block", s("10.81.0.0/16")),
            ("enable_dns_hostnames", Value::Bool(false)),
        ]),
        &vpc.tags,
    )
    .await
    .expect("update vpc");
    assert!(!p.ec2().vpc_dns_hostnames(&vpc_id).await.unwrap());

    let found = discover(&p, &env).await;
    let seen_a = find(&found, &a.address);
    assert_same(seen_a, &a_public, &[]);
    assert_eq!(seen_a.tags, new_tags);
    let seen_rt = find(&found, &rt.address);
    assert_same(seen_rt, &rt_new, &[]);
    assert_eq!(seen_rt.spec_hash(), Some("spec-2"));

    // Back to a single route: the extra one is deleted.
    let rt_back = attrs([
        ("vpc", s(&vpc_id)),
        ("routes", sorted(vec![route("0.0.0.0/0")])),
        ("subnets", sorted(vec![s(id_of(&a)), s(id_of(&b))])),
    ]);
    let again = p
        .update(seen_rt, &rt_back, &rt_tags)
        .await
        .expect("update route table");
    assert_same(&again, &rt_back, &[]);

    // An update that changes nothing makes no mutating call.
    let before = p.calls();
    p.update(&again, &rt_back, &rt_tags)
        .await
        .expect("no-op update");
    let made = p.calls().since(&before);
    assert_eq!(made.mutating(), 0, "{made}");
    assert!(
        made.get("DescribeRouteTables") > 0,
        "reads are counted: {made}"
    );

    // Deleted in reverse order, twice each; then nothing is left.
    for r in [&again, &igw, &a, &b, &vpc] {
        delete_twice(&p, r).await;
    }
    assert_eq!(discover(&p, &env).await, vec![]);
}

fn rule(protocol: &str, from: i64, to: i64, source: (&str, &str)) -> Value {
    table([
        ("protocol", s(protocol)),
        ("from_port", Value::Int(from)),
        ("to_port", Value::Int(to)),
        (source.0, s(source.1)),
    ])
}

#[tokio::test]
async fn security_group_rules_are_kept_exactly() {
    let region = "us-east-2";
    let p = provider(region).await;
    let env = Env {
        name: "it-provider-sg",
        stack: "net",
    };
    let (vpc, subnets) = network(&p, &env, "10.82", region).await;
    let vpc_id = id_of(&vpc).to_string();

    // `lb` allows the world on 80 and talks only to port 8080 in the VPC
    // (AWS's default allow-all egress must go).
    let lb_attrs = attrs([
        ("vpc", s(&vpc_id)),
        ("description", s("load balancer")),
        (
            "ingress",
            sorted(vec![rule("tcp", 80, 80, ("cidr", "0.0.0.0/0"))]),
        ),
        (
            "egress",
            sorted(vec![rule("tcp", 8080, 8080, ("cidr", "10.82.0.0/16"))]),
        ),
    ]);
    let lb = create(
        &p,
        &env,
        &env.address(ResourceKind::SecurityGroup, "lb"),
        &lb_attrs,
    )
    .await;
    let lb_id = id_of(&lb).to_string();
    assert!(lb_id.starts_with("sg-"));

    // `app` allows 8080 from `lb` (a rule referencing another group), and
    // all traffic out.
    let app_attrs = attrs([
        ("vpc", s(&vpc_id)),
        ("description", s("app servers")),
        (
            "ingress",
            sorted(vec![
                rule("tcp", 8080, 8080, ("security_group", &lb_id)),
                rule("tcp", 22, 22, ("cidr", "10.0.0.0/8")),
                rule("tcp", 22, 22, ("cidr", "192.168.0.0/16")),
            ]),
        ),
        (
            "egress",
            sorted(vec![rule("-1", -1, -1, ("cidr", "0.0.0.0/0"))]),
        ),
    ]);
    let app = create(
        &p,
        &env,
        &env.address(ResourceKind::SecurityGroup, "app"),
        &app_attrs,
    )
    .await;
    let app_id = id_of(&app).to_string();

    let found = discover(&p, &env).await;
    assert_same(find(&found, &lb.address), &lb_attrs, &[]);
    assert_same(find(&found, &app.address), &app_attrs, &[]);

    // Rules added and removed: ssh narrowed to one range, dns added, the
    // group reference now points the other way too.
    let app_new = attrs([
        ("vpc", s(&vpc_id)),
        ("description", s("app servers")),
        (
            "ingress",
            sorted(vec![
                rule("tcp", 8080, 8080, ("security_group", &lb_id)),
                rule("tcp", 22, 22, ("cidr", "10.0.0.0/8")),
                rule("udp", 53, 53, ("cidr", "10.82.0.0/16")),
                rule("icmp", -1, -1, ("cidr", "10.82.0.0/16")),
            ]),
        ),
        (
            "egress",
            sorted(vec![rule("tcp", 443, 443, ("cidr", "0.0.0.0/0"))]),
        ),
    ]);
    let lb_new = attrs([
        ("vpc", s(&vpc_id)),
        ("description", s("load balancer")),
        (
            "ingress",
            sorted(vec![rule("tcp", 80, 80, ("cidr", "0.0.0.0/0"))]),
        ),
        (
            "egress",
            sorted(vec![rule("tcp", 8080, 8080, ("security_group", &app_id))]),
        ),
    ]);
    let app_updated = p
        .update(find(&found, &app.address), &app_new, &app.tags)
        .await
        .expect("update app");
    assert_same(&app_updated, &app_new, &[]);
    let lb_updated = p
        .update(find(&found, &lb.address), &lb_new, &lb.tags)
        .await
        .expect("update lb");
    assert_same(&lb_updated, &lb_new, &[]);

    let found = discover(&p, &env).await;
    assert_same(find(&found, &app.address), &app_new, &[]);
    assert_same(find(&found, &lb.address), &lb_new, &[]);

    // The groups reference each other: deleting revokes their own rules
    // first. (moto deletes a referenced group anyway; AWS refuses, and the
    // provider retries while DependencyViolation lasts.)
    delete_twice(&p, &app_updated).await;
    delete_twice(&p, &lb_updated).await;
    for subnet in &subnets {
        delete_twice(&p, subnet).await;
    }
    delete_twice(&p, &vpc).await;
    assert_eq!(discover(&p, &env).await, vec![]);
}

mod fleets;
