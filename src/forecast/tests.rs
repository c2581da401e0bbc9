//! The forecast on synthetic plans whose durations are known, against
//! critical paths computed by hand.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::*;
use crate::plan::resolve::Resolved;
use crate::plan::{Action, Change, PhasePlan};
use crate::types::ResourceKind;
use crate::world::{Address, Value};

fn address(text: &str) -> Address {
    let [stack, kind, name] = text.split('.').collect::<Vec<_>>()[..] else {
        panic!("{text} is no address");
    };
    Address::new(stack, ResourceKind::from_name(kind).unwrap(), name)
}

/// A step of `action` on `at`, reading the resources at `deps`.
fn change(at: &str, action: Action, deps: &[&str]) -> Change {
    Change {
        address: address(at),
        action,
        attrs: Vec::new(),
        reasons: Vec::new(),
        current: None,
        depends_on: deps.iter().map(|d| address(d)).collect(),
        desired: BTreeMap::new(),
        tags: BTreeMap::new(),
        sensitive: BTreeSet::new(),
        headline: None,
        steps: Vec::new(),
        late: BTreeSet::new(),
    }
}

fn create(at: &str, deps: &[&str]) -> Change {
    change(at, Action::Create, deps)
}

fn plan(phases: Vec<(&str, Vec<Change>)>) -> Plan {
    Plan {
        format: crate::plan::PLAN_FORMAT,
        runbook: "rb".into(),
        environment: "env".into(),
        region: "us-west-2".into(),
        source_hash: String::new(),
        fingerprint: String::new(),
        observed_at: 0,
        phases: phases
            .into_iter()
            .map(|(name, changes)| PhasePlan {
                name: name.into(),
                gate: "auto".into(),
                changes,
                cutover: Vec::new(),
                canary_gates: Default::default(),
            })
            .collect(),
        cleanup: Vec::new(),
    }
}

/// The runbook's priors, in seconds, by step kind.
fn priors(seconds: &[(&str, u64)]) -> Priors {
    seconds
        .iter()
        .map(|(kind, s)| (StepKind::parse(kind).unwrap(), Duration::from_secs(*s)))
        .collect()
}

fn run(plan: &Plan, barriers: &[&str], priors: &Priors, measured: &Measured) -> Forecast {
    let barriers: BTreeSet<String> = barriers.iter().map(|b| b.to_string()).collect();
    forecast(&Inputs {
        plan,
        barriers: &barriers,
        priors,
        measured,
    })
}

/// The chain as `step seconds` words.
fn chain(forecast: &Forecast) -> Vec<String> {
    forecast
        .critical_path
        .iter()
        .map(|s| format!("{} {}", s.step, s.duration_ms / 1000))
        .collect()
}

/// foundation: vpc 10s; subnet 20s and security group 5s after it.
/// compute: load balancer 180s (subnet, group); target group 3s (vpc);
/// listener 4s (balancer, group); instances 60s (subnet, group).
fn web() -> Plan {
    plan(vec![
        (
            "foundation",
            vec![
                create("net.vpc.main", &[]),
                create("net.subnet.a", &["net.vpc.main"]),
                create("net.security_group.web", &["net.vpc.main"]),
            ],
        ),
        (
            "compute",
            vec![
                create(
                    "app.load_balancer.lb",
                    &["net.subnet.a", "net.security_group.web"],
                ),
                create("app.target_group.tg", &["net.vpc.main"]),
                create(
                    "app.listener.http",
                    &["app.load_balancer.lb", "app.target_group.tg"],
                ),
                create(
                    "app.instances.fleet",
                    &["net.subnet.a", "net.security_group.web"],
                ),
            ],
        ),
    ])
}

fn web_priors() -> Priors {
    priors(&[
        ("vpc", 10),
        ("subnet", 20),
        ("security_group", 5),
        ("load_balancer", 180),
        ("target_group", 3),
        ("listener", 4),
        ("instances", 60),
    ])
}

#[test]
fn the_forecast_is_the_hand_computed_critical_path() {
    let f = run(&web(), &[], &web_priors(), &Measured::default());
    // vpc 10 → subnet 20 → load balancer 180 → listener 4 = 214s; the
    // instances' chain (vpc, subnet, instances) is 90s.
    assert_eq!(
        chain(&f),
        [
            "net.vpc.main 10",
            "net.subnet.a 20",
            "app.load_balancer.lb 180",
            "app.listener.http 4"
        ]
    );
    assert_eq!(f.rto_ms, 214_000);
    assert_eq!(f.critical_path[2].phase, "compute");
    assert_eq!(f.critical_path[2].kind.to_string(), "load_balancer");
    assert!(f.critical_path.iter().all(|s| s.source == Source::Runbook));
}

#[test]
fn steps_pipeline_across_phases_but_not_across_a_barrier() {
    // a: vpc 10 → subnet 20, vpc → security group 5;
    // b: target group 3 (vpc); c: listener 4 (target group), instances 60 (group).
    let plan = plan(vec![
        (
            "a",
            vec![
                create("net.vpc.main", &[]),
                create("net.subnet.a", &["net.vpc.main"]),
                create("net.security_group.web", &["net.vpc.main"]),
            ],
        ),
        ("b", vec![create("app.target_group.tg", &["net.vpc.main"])]),
        (
            "c",
            vec![
                create("app.listener.http", &["app.target_group.tg"]),
                create("app.instances.fleet", &["net.security_group.web"]),
            ],
        ),
    ]);
    let priors = web_priors();
    let none = Measured::default();
    // Pipelined: the instances start once the group is done, at 15s.
    let pipelined = run(&plan, &[], &priors, &none);
    assert_eq!(pipelined.rto_ms, 75_000);
    assert_eq!(
        chain(&pipelined),
        [
            "net.vpc.main 10",
            "net.security_group.web 5",
            "app.instances.fleet 60"
        ]
    );
    // b is a barrier: the target group waits for all of a (30s), and all
    // of c for it (33s): 10 + 20 + 3 + 60.
    let fenced = run(&plan, &["b"], &priors, &none);
    assert_eq!(fenced.rto_ms, 93_000);
    assert_eq!(
        chain(&fenced),
        [
            "net.vpc.main 10",
            "net.subnet.a 20",
            "app.target_group.tg 3",
            "app.instances.fleet 60"
        ]
    );
    // A barrier phase with nothing to do still orders what follows it.
    let mut empty = plan.clone();
    empty.phases[1].changes[0].action = Action::NoOp;
    assert_eq!(run(&empty, &[], &priors, &none).rto_ms, 75_000);
    assert_eq!(run(&empty, &["b"], &priors, &none).rto_ms, 30_000 + 60_000);
}

#[test]
fn the_speedups_are_the_exact_rto_cuts_largest_first() {
    let f = run(&web(), &[], &web_priors(), &Measured::default());
    let cuts: Vec<(String, Millis)> = f
        .speedups
        .iter()
        .map(|s| (s.step.clone(), s.rto_cut_ms / 1000))
        .collect();
    // Without the load balancer: vpc, subnet, instances, 90s (cut 124s);
    // without the subnet: vpc, group, balancer, listener, 199s (cut 15s);
    // without the vpc: 204s (cut 10s); the listener's 4s comes fourth.
    assert_eq!(
        cuts,
        [
            ("app.load_balancer.lb".to_string(), 124),
            ("net.subnet.a".to_string(), 15),
            ("net.vpc.main".to_string(), 10),
        ]
    );
    // Equal cuts go to the step planned first; steps off every longest
    // chain cut nothing and are not named.
    let chain_of_two = plan(vec![(
        "one",
        vec![
            create("net.vpc.main", &[]),
            create("net.subnet.a", &["net.vpc.main"]),
            create("net.security_group.web", &[]),
        ],
    )]);
    let f = run(
        &chain_of_two,
        &[],
        &priors(&[("vpc", 10), ("subnet", 10), ("security_group", 1)]),
        &Measured::default(),
    );
    let named: Vec<&str> = f.speedups.iter().map(|s| s.step.as_str()).collect();
    assert_eq!(named, ["net.vpc.main", "net.subnet.a"]);
}

#[test]
fn a_measured_median_replaces_the_runbook_which_replaces_the_prior() {
    let plan = web();
    let mut measured = Measured::default();
    let kind = |k: &str| StepKind::parse(k).unwrap();
    // Two drills: the load balancer took 100s, then 140s and 150s (two of
    // them in one drill); the vpc 2s.
    measured.add_drill([(kind("load_balancer"), 100_000), (kind("vpc"), 2_000)]);
    measured.add_drill([
        (kind("load_balancer"), 140_000),
        (kind("load_balancer"), 150_000),
    ]);
    assert_eq!(measured.median(kind("load_balancer")), Some((140_000, 2)));
    let mut odd = Measured::default();
    odd.add_drill([(kind("vpc"), 1_000), (kind("vpc"), 4_000)]);
    assert_eq!(odd.median(kind("vpc")), Some((2_500, 1)));

    let runbook = priors(&[("subnet", 7)]);
    let f = run(&plan, &[], &runbook, &measured);
    let sources: BTreeMap<String, (Millis, String)> = f
        .critical_path
        .iter()
        .map(|s| (s.step.clone(), (s.duration_ms, s.source.to_string())))
        .collect();
    assert_eq!(
        sources["net.vpc.main"],
        (2_000, "median of 1 drill".to_string())
    );
    assert_eq!(
        sources["net.subnet.a"],
        (7_000, "runbook [forecast.priors]".to_string())
    );
    assert_eq!(
        sources["app.load_balancer.lb"],
        (140_000, "median of 2 drills".to_string())
    );
    assert_eq!(
        sources["app.listener.http"],
        (5_000, "prior: calls that take effect at once".to_string())
    );
    // A runbook's prior wins over drctl's, until a drill measures the kind.
    let overridden = run(&plan, &[], &priors(&[("vpc", 1)]), &Measured::default());
    assert_eq!(overridden.critical_path[0].source, Source::Runbook);
    assert_eq!(overridden.critical_path[0].duration_ms, 1_000);
}

#[test]
fn priors_follow_the_published_figures_and_the_declared_health_check() {
    let known = |v: Value| Resolved::Known(v);
    let mut colour = create("web.service.web", &["web.listener.http"]);
    colour
        .desired
        .insert("operation".into(), known(Value::Str("colour".into())));
    colour
        .desired
        .insert("color".into(), known(Value::Str("blue".into())));
    colour.desired.insert(
        "health_check".into(),
        known(Value::Table(BTreeMap::from([
            ("interval".into(), Value::Int(10)),
            ("healthy_threshold".into(), Value::Int(3)),
        ]))),
    );
    let mut cutover = change("web.service.web", Action::Update, &["web.service.web"]);
    cutover
        .desired
        .insert("operation".into(), known(Value::Str("cutover".into())));
    cutover
        .desired
        .insert("to".into(), known(Value::Str("blue".into())));
    let plan = plan(vec![
        (
            "compute",
            vec![
                create("web.load_balancer.public", &[]),
                create("web.listener.http", &["web.load_balancer.public"]),
                colour,
            ],
        ),
        ("cutover", vec![cutover]),
    ]);
    let f = run(&plan, &[], &Priors::new(), &Measured::default());
    let steps: Vec<String> = f
        .critical_path
        .iter()
        .map(|s| {
            format!(
                "{} {} {} ({})",
                s.step,
                s.kind,
                duration(s.duration_ms),
                s.source
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            "web.load_balancer.public load_balancer 3m00s (prior: ALB provisioning → active ~2–3m)",
            "web.listener.http listener 5.0s (prior: calls that take effect at once)",
            // 60s boot + 10s registration + 3 × 10s
            "web.service.web service:colour 1m40s (prior: EC2 boot ~1m, registration, health 3 × 10s)",
            "web.service.web service:cutover 3.0s (prior: ModifyListener takes effect at once)",
        ]
    );
    assert_eq!(f.rto_ms, 180_000 + 5_000 + 100_000 + 3_000);
}

#[test]
fn journaled_steps_are_told_apart_by_kind_and_action() {
    let of = |kind, action| step_kind_of(kind, action).map(|k| k.to_string());
    assert_eq!(
        of(ResourceKind::Image, Action::Create).as_deref(),
        Some("image:bake")
    );
    assert_eq!(
        of(ResourceKind::Image, Action::Update).as_deref(),
        Some("image:copy")
    );
    assert_eq!(
        of(ResourceKind::Service, Action::Replace).as_deref(),
        Some("service:colour")
    );
    assert_eq!(
        of(ResourceKind::Service, Action::Update).as_deref(),
        Some("service:cutover")
    );
    assert_eq!(
        of(ResourceKind::Vpc, Action::Create).as_deref(),
        Some("vpc")
    );
    assert_eq!(
        of(ResourceKind::Vpc, Action::Update).as_deref(),
        Some("vpc:update")
    );
    assert_eq!(of(ResourceKind::Vpc, Action::Delete), None);
    assert_eq!(of(ResourceKind::Vpc, Action::NoOp), None);
}

#[test]
fn the_text_names_the_chain_its_sources_and_the_speedups() {
    let f = run(&web(), &[], &web_priors(), &Measured::default());
    let text = render(&f);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "Forecast RTO 3m34s (the rebuild's critical path, every gate passing at once as in a drill)",
            "Critical path:",
            "    net.vpc.main          vpc              10s  runbook [forecast.priors]",
            "  → net.subnet.a          subnet           20s  runbook [forecast.priors]",
            "  → app.load_balancer.lb  load_balancer  3m00s  runbook [forecast.priors]",
            "  → app.listener.http     listener        4.0s  runbook [forecast.priors]",
            "Speeding these up would cut the RTO most:",
            "  1. app.load_balancer.lb (load_balancer, 3m00s): RTO 2m04s shorter if it took no time",
            "  2. net.subnet.a (subnet, 20s): RTO 15s shorter if it took no time",
            "  3. net.vpc.main (vpc, 10s): RTO 10s shorter if it took no time",
        ],
        "\n{text}"
    );
}
