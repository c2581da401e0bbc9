//! Instance fleets, load balancers, target groups and listeners against
//! moto, and attributes refused before any call.

use super::*;

fn fleet_attrs(subnets: &[&str], count: i64) -> Attrs {
    attrs([
        ("image", s("ami-1e749f67")),
        ("instance_type", s("t3.micro")),
        ("subnets", strs(subnets)),
        ("security_groups", strs(&[])),
        ("user_data", s("#!/bin/sh\necho hello\n")),
        ("count", Value::Int(count)),
        // The planner's default: registered with no target group.
        ("target_groups", strs(&[])),
    ])
}

fn ids(r: &ObservedResource) -> Vec<String> {
    r.exports["ids"]
        .as_str_list()
        .expect("ids export")
        .into_iter()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn an_instance_fleet_scales_2_3_1_and_goes() {
    let region = "eu-central-1";
    let p = provider(region).await;
    let env = Env {
        name: "it-provider-fleet",
        stack: "app",
    };
    let (vpc, subnets) = network(&p, &env, "10.83", region).await;
    let subnet_ids: Vec<&str> = subnets.iter().map(id_of).collect();
    let address = env.address(ResourceKind::Instances, "web");

    let two = fleet_attrs(&subnet_ids, 2);
    let fleet = create(&p, &env, &address, &two).await;
    let first_ids = ids(&fleet);
    assert_eq!(first_ids.len(), 2);
    assert_eq!(fleet.id, first_ids[0]);
    assert_eq!(
        fleet.exports["private_ips"].as_list().map(<[Value]>::len),
        Some(2)
    );

    let found = discover(&p, &env).await;
    let seen = find(&found, &address);
    assert_same(seen, &two, &["subnets", "user_data"]);
    assert_eq!(seen, &fleet);

    let three = fleet_attrs(&subnet_ids, 3);
    let grown = p
        .update(seen, &three, &seen.tags)
        .await
        .expect("scale to 3");
    assert_same(&grown, &three, &["subnets", "user_data"]);
    let grown_ids = ids(&grown);
    assert!(first_ids.iter().all(|id| grown_ids.contains(id)));

    let found = discover(&p, &env).await;
    assert_eq!(find(&found, &address), &grown);

    let mut one_tags = grown.tags.clone();
    one_tags.insert(tags::SPEC.into(), "spec-2".into());
    let one = fleet_attrs(&subnet_ids, 1);
    let shrunk = p.update(&grown, &one, &one_tags).await.expect("scale to 1");
    assert_same(&shrunk, &one, &["subnets", "user_data"]);
    assert_eq!(shrunk.tags, one_tags, "the kept instance is retagged");
    let found = discover(&p, &env).await;
    assert_eq!(find(&found, &address), &shrunk);

    delete_twice(&p, &shrunk).await;
    let found = discover(&p, &env).await;
    assert!(found.iter().all(|r| r.address != address), "{found:#?}");
    for subnet in &subnets {
        delete_twice(&p, subnet).await;
    }
    delete_twice(&p, &vpc).await;
}

#[tokio::test]
async fn discovery_makes_the_same_calls_for_3_and_30_instances() {
    // A region of its own: ELBv2 tags are read for every load balancer and
    // target group in the region, which other tests would change.
    let region = "ca-central-1";
    let p = provider(region).await;
    let mut per_env = Vec::new();
    for (name, count) in [("it-provider-count-3", 3), ("it-provider-count-30", 30)] {
        let env = Env { name, stack: "app" };
        let (vpc, subnets) =
            network(&p, &env, if count == 3 { "10.84" } else { "10.85" }, region).await;
        let subnet_ids: Vec<&str> = subnets.iter().map(id_of).collect();
        let fleet = create(
            &p,
            &env,
            &env.address(ResourceKind::Instances, "web"),
            &fleet_attrs(&subnet_ids, count),
        )
        .await;
        assert_eq!(ids(&fleet).len() as i64, count);

        let before = p.calls();
        let found = discover(&p, &env).await;
        let calls = p.calls().since(&before);
        assert_eq!(found.len(), 4, "vpc, 2 subnets, the fleet: {found:#?}");
        per_env.push(calls);

        for r in [&fleet, &subnets[0], &subnets[1], &vpc] {
            p.delete(r).await.expect("clean up");
        }
    }
    assert_eq!(per_env[0], per_env[1], "3 instances vs 30");
    // One paginated Describe per EC2 kind (fleets and image builders share
    // DescribeInstances; images add DescribeImages), two ELBv2 lists, and no
    // tag or listener reads when the region holds no load balancer or
    // target group.
    assert_eq!(per_env[0].total(), 9, "{}", per_env[0]);
    assert_eq!(per_env[0].get("DescribeInstances"), 1);
    assert_eq!(per_env[0].get("DescribeImages"), 1);
    assert_eq!(per_env[0].mutating(), 0);
}

#[tokio::test]
async fn load_balancer_target_groups_and_listener_round_trip() {
    let region = "eu-west-2";
    let p = provider(region).await;
    let env = Env {
        name: "it-provider-lb",
        stack: "web",
    };
    let (vpc, subnets) = network(&p, &env, "10.86", region).await;
    let vpc_id = id_of(&vpc).to_string();
    let sg = create(
        &p,
        &env,
        &env.address(ResourceKind::SecurityGroup, "lb"),
        &attrs([
            ("vpc", s(&vpc_id)),
            ("description", s("lb")),
            ("ingress", sorted(vec![])),
            ("egress", sorted(vec![])),
        ]),
    )
    .await;

    let health = |path: &str, interval: i64, healthy: i64| {
        table([
            ("path", s(path)),
            ("interval", Value::Int(interval)),
            ("healthy_threshold", Value::Int(healthy)),
        ])
    };
    let tg_attrs = |port: i64, protocol: &str| {
        attrs([
            ("vpc", s(&vpc_id)),
            ("protocol", s(protocol)),
            ("port", Value::Int(port)),
            ("health_check", health("/", 30, 5)),
        ])
    };
    let blue_attrs = tg_attrs(80, "HTTP");
    let green_attrs = tg_attrs(8080, "TCP");
    let blue = create(
        &p,
        &env,
        &env.address(ResourceKind::TargetGroup, "blue"),
        &blue_attrs,
    )
    .await;
    let green = create(
        &p,
        &env,
        &env.address(ResourceKind::TargetGroup, "green"),
        &green_attrs,
    )
    .await;
    assert!(
        blue.id.starts_with("arn:aws:elasticloadbalancing:"),
        "{}",
        blue.id
    );
    assert_eq!(blue.exports["arn"], s(&blue.id));

    let lb_attrs = attrs([
        ("subnets", sorted(vec![s(id_of(&subnets[0]))])),
        ("security_groups", strs(&[])),
        ("internal", Value::Bool(true)),
    ]);
    let lb = create(
        &p,
        &env,
        &env.address(ResourceKind::LoadBalancer, "front"),
        &lb_attrs,
    )
    .await;
    let lb_arn = lb.id.clone();
    assert!(lb.exports["dns_name"]
        .as_str()
        .is_some_and(|d| !d.is_empty()));

    // No target group: a fixed 503 until a service cuts over.
    let unavailable = attrs([
        ("load_balancer", s(&lb_arn)),
        ("protocol", s("HTTP")),
        ("port", Value::Int(80)),
    ]);
    let listener = create(
        &p,
        &env,
        &env.address(ResourceKind::Listener, "http"),
        &unavailable,
    )
    .await;

    let found = discover(&p, &env).await;
    for (created, requested) in [
        (&blue, &blue_attrs),
        (&green, &green_attrs),
        (&lb, &lb_attrs),
        (&listener, &unavailable),
    ] {
        let seen = find(&found, &created.address);
        assert_same(seen, requested, &[]);
        assert_eq!(seen, created, "create returns what discovery sees");
    }

    // Listener: 503 → blue → green (port changed too) → 503.
    let forward = |group: &ObservedResource, port: i64| {
        attrs([
            ("load_balancer", s(&lb_arn)),
            ("protocol", s("HTTP")),
            ("port", Value::Int(port)),
            ("default_target_group", s(&group.id)),
        ])
    };
    let mut current = listener.clone();
    for wanted in [
        forward(&blue, 80),
        forward(&green, 8080),
        unavailable.clone(),
    ] {
        current = p
            .update(&current, &wanted, &current.tags.clone())
            .await
            .expect("update listener");
        assert_same(&current, &wanted, &[]);
        let found = discover(&p, &env).await;
        assert_eq!(find(&found, &listener.address), &current);
    }

    // Listener tags (moto supports tagging listeners).
    let mut listener_tags = current.tags.clone();
    listener_tags.insert("owner".into(), "dr".into());
    listener_tags.remove("team");
    current = p
        .update(&current, &unavailable, &listener_tags)
        .await
        .expect("retag listener");
    assert_eq!(current.tags, listener_tags);

    // Target group health check; load balancer subnets and groups.
    let blue_new = attrs([
        ("vpc", s(&vpc_id)),
        ("protocol", s("HTTP")),
        ("port", Value::Int(80)),
        ("health_check", health("/health", 10, 2)),
    ]);
    let blue_updated = p
        .update(&blue, &blue_new, &blue.tags)
        .await
        .expect("update tg");
    assert_same(&blue_updated, &blue_new, &[]);
    let lb_new = attrs([
        (
            "subnets",
            sorted(subnets.iter().map(|sn| s(id_of(sn))).collect()),
        ),
        ("security_groups", strs(&[id_of(&sg)])),
        ("internal", Value::Bool(true)),
    ]);
    let lb_updated = p.update(&lb, &lb_new, &lb.tags).await.expect("update lb");
    assert_same(&lb_updated, &lb_new, &[]);

    let found = discover(&p, &env).await;
    assert_eq!(find(&found, &blue.address), &blue_updated);
    assert_eq!(find(&found, &lb.address), &lb_updated);
    assert_eq!(find(&found, &listener.address), &current);

    let before = p.calls();
    p.update(&lb_updated, &lb_new, &lb_updated.tags)
        .await
        .expect("no-op");
    p.update(&current, &unavailable, &current.tags)
        .await
        .expect("no-op");
    p.update(&blue_updated, &blue_new, &blue_updated.tags)
        .await
        .expect("no-op");
    let made = p.calls().since(&before);
    assert_eq!(made.mutating(), 0, "{made}");
    assert!(made.get("DescribeTags") > 0, "reads are counted: {made}");

    for r in [&current, &lb_updated, &blue_updated, &green, &sg] {
        delete_twice(&p, r).await;
    }
    for subnet in &subnets {
        delete_twice(&p, subnet).await;
    }
    delete_twice(&p, &vpc).await;
    assert_eq!(discover(&p, &env).await, vec![]);
}

#[tokio::test]
async fn a_replacement_target_group_gets_its_own_name() {
    // Created before the old copy is deleted: a changed spec, a new name.
    let region = "eu-west-2";
    let p = provider(region).await;
    let env = Env {
        name: "it-provider-tg-replace",
        stack: "web",
    };
    let vpc = create(
        &p,
        &env,
        &env.address(ResourceKind::Vpc, "main"),
        &attrs([("cidr_block", s("10.87.0.0/16"))]),
    )
    .await;
    let address = env.address(ResourceKind::TargetGroup, "blue");
    let tg_attrs = attrs([
        ("vpc", s(id_of(&vpc))),
        ("protocol", s("HTTP")),
        ("port", Value::Int(80)),
        (
            "health_check",
            table([
                ("path", s("/")),
                ("interval", Value::Int(30)),
                ("healthy_threshold", Value::Int(5)),
            ]),
        ),
    ]);
    let old = create(&p, &env, &address, &tg_attrs).await;
    let new_tags = env.tags(&address, "spec-2");
    let new = p
        .create(&CreateRequest {
            address: &address,
            attrs: &tg_attrs,
            tags: &new_tags,
            client_token: "t",
            late: None,
        })
        .await
        .expect("the replacement is created while the old copy exists");
    assert_ne!(old.id, new.id);

    // A retried create of the same spec adopts the group it made before.
    let again = create(&p, &env, &address, &tg_attrs).await;
    assert_eq!(again.id, old.id);

    for r in [&old, &new, &vpc] {
        delete_twice(&p, r).await;
    }
}

#[tokio::test]
async fn malformed_attributes_are_refused_before_any_call() {
    let p = provider("us-west-2").await;
    let env = Env {
        name: "it-provider-malformed",
        stack: "net",
    };
    let address = env.address(ResourceKind::Vpc, "main");
    let err = p
        .create(&CreateRequest {
            address: &address,
            attrs: &attrs([("cidr_block", Value::Int(16))]),
            tags: &env.tags(&address, "s"),
            client_token: "t",
            late: None,
        })
        .await
        .expect_err("cidr_block is no string");
    assert_eq!(
        err.to_string(),
        "net.vpc.main: attribute `cidr_block` must be a string"
    );
    assert_eq!(p.calls().total(), 0);
}
