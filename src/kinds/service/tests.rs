//! The service planner on hand-made snapshots: the first colour, a new
//! colour and its cutover in the cutover phase, an idle colour reused after
//! an interrupted run, and retirement against the injected clock.

use crate::types::GateId;
use std::collections::BTreeMap;

use super::colours::Colour;
use super::fleet_hash;
use crate::model::{Project, ResourceKind};
use crate::plan::{Action, Change, Plan};
use crate::planner::plan;
use crate::world::{Address, Attrs, ObservedResource, Snapshot, Value};

const STACK: &str = r#"[resources.service.web]
image = "ami-new"
count = 2
instance_type = "t3.micro"
subnets = ["subnet-1"]
port = 80
listener = "arn:listener/1"
retire_after = "1h"
"#;

const RUNBOOK: &str = r#"environment = "prod"
region = "us-east-1"
stacks = ["app"]

[[phases]]
name = "build"
stacks = ["app"]

[[phases]]
name = "cutover"
cutover = ["app.service.web"]
gate = "manual"
"#;

const HOUR: i64 = 3_600_000;

fn project(dir: &tempfile::TempDir) -> Project {
    project_of(dir, STACK)
}

fn project_of(dir: &tempfile::TempDir, stack: &str) -> Project {
    for (rel, text) in [("stacks/app.toml", stack), ("runbooks/rb.toml", RUNBOOK)] {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let (project, diags) = crate::load::validate::load_project(dir.path(), &[]);
    assert!(diags.is_empty(), "{:?}", diags.sorted());
    project
}

fn run(project: &Project, snapshot: Snapshot) -> Plan {
    plan(project, &project.runbooks[0], &snapshot, String::new())
}

fn address() -> Address {
    Address::new("app", ResourceKind::Service, "web")
}

/// The fleet hash of what the stack declares (read off a plan of nothing).
fn declared_fleet(project: &Project) -> String {
    let plan = run(project, Snapshot::default());
    let attrs: Attrs = plan.phases[0].changes[0]
        .desired
        .iter()
        .map(|(k, v)| (k.clone(), v.known().unwrap().clone()))
        .collect();
    fleet_hash(&attrs).unwrap()
}

fn colour(name: &str, fleet: &str, traffic: i64, replaced_at: Option<i64>) -> Colour {
    Colour {
        name: name.into(),
        target_group: format!("arn:tg/{name}"),
        fleet: fleet.into(),
        complete: true,
        traffic,
        listener: "arn:listener/1".into(),
        instances: vec![format!("i-{name}1"), format!("i-{name}2")],
        running: 2,
        image: "ami-old".into(),
        instance_type: "t3.micro".into(),
        health_check: Some(crate::kinds::common::normal_health_check(Value::Table(
            BTreeMap::new(),
        ))),
        port: 80,
        replaced_at,
        ..Colour::default()
    }
}

fn world(at: i64, colours: &[Colour]) -> Snapshot {
    let service = ObservedResource {
        address: address(),
        id: colours[0].target_group.clone(),
        attrs: Attrs::from([(
            "colors".to_string(),
            Value::Table(
                colours
                    .iter()
                    .map(|c| (c.name.clone(), c.to_value()))
                    .collect(),
            ),
        )]),
        exports: Attrs::new(),
        tags: BTreeMap::from([(crate::types::tags::ENV.to_string(), "prod".to_string())]),
    };
    Snapshot::new(at, vec![service])
}

fn steps(plan: &Plan) -> (&Change, Option<&Change>) {
    (&plan.phases[0].changes[0], plan.phases[1].changes.first())
}

#[test]
fn nothing_yet_makes_blue_and_cuts_over_in_the_cutover_phase() {
    let dir = tempfile::tempdir().unwrap();
    let project = project(&dir);
    let plan = run(&project, Snapshot::default());
    let (make, cutover) = steps(&plan);
    assert_eq!(make.action, Action::Create);
    assert_eq!(
        make.headline.as_deref(),
        Some("create blue colour of app.service.web (2 × t3.micro, ami-new)")
    );
    let cutover = cutover.expect("a cutover step");
    assert_eq!(cutover.action, Action::Update);
    assert_eq!(
        cutover.headline.as_deref(),
        Some("cutover listener of the service: 503 (no colour) → blue (after gate \"cutover\")")
    );
}

#[test]
fn a_new_image_makes_the_other_colour_and_an_idle_finished_one_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    let project = project(&dir);
    let fleet = declared_fleet(&project);
    let plan = run(
        &project,
        world(10 * HOUR, &[colour("blue", "old", 100, None)]),
    );
    let (make, cutover) = steps(&plan);
    assert_eq!(make.action, Action::Create);
    assert!(make
        .headline
        .as_deref()
        .unwrap()
        .starts_with("create green colour"));
    assert!(
        make.attrs.iter().any(|a| a.name == "image"),
        "{:?}",
        make.attrs
    );
    assert!(cutover
        .unwrap()
        .headline
        .as_deref()
        .unwrap()
        .contains("blue → green"));

    // Killed between making green and the cutover: green is reused, not remade.
    let plan = run(
        &project,
        world(
            10 * HOUR,
            &[
                colour("blue", "old", 100, None),
                colour("green", &fleet, 0, None),
            ],
        ),
    );
    let (make, cutover) = steps(&plan);
    assert_eq!(make.action, Action::NoOp);
    assert!(make
        .headline
        .as_deref()
        .unwrap()
        .contains("green colour of app.service.web is ready"));
    assert!(cutover
        .unwrap()
        .headline
        .as_deref()
        .unwrap()
        .contains("blue → green"));
}

#[test]
fn the_old_colour_is_retired_only_once_retire_after_has_passed() {
    let dir = tempfile::tempdir().unwrap();
    let project = project(&dir);
    let fleet = declared_fleet(&project);
    let colours = [
        colour("green", &fleet, 100, None),
        colour("blue", "old", 0, Some(10 * HOUR)),
    ];
    let plan = run(&project, world(10 * HOUR + HOUR / 2, &colours));
    let (keep, cutover) = steps(&plan);
    assert_eq!(keep.action, Action::NoOp);
    assert!(cutover.is_none(), "green is live: nothing to cut over");
    assert!(
        keep.steps
            .iter()
            .any(|s| s.contains("blue kept for rollback: retire due")),
        "{:?}",
        keep.steps
    );
    assert!(super::retirement_step(keep).is_none());

    let plan = run(&project, world(11 * HOUR, &colours));
    let (retire, _) = steps(&plan);
    assert_eq!(retire.action, Action::Update);
    assert!(
        retire
            .steps
            .iter()
            .any(|s| s.starts_with("- retire blue (due")),
        "{:?}",
        retire.steps
    );
    assert!(super::retirement_step(retire).is_some());
}

#[test]
fn a_gated_canary_stops_at_each_weight_behind_a_gate_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let stack = format!("{STACK}strategy = {{ canary = [10, 50, 100], gate = \"manual\" }}\n");
    let project = project_of(&dir, &stack);
    let fleet = declared_fleet(&project);
    let blue = |traffic| Colour {
        live_since: Some(HOUR),
        ..colour("blue", "old", traffic, None)
    };
    let at = |share: i64| {
        let plan = run(
            &project,
            world(
                10 * HOUR,
                &[blue(100 - share), colour("green", &fleet, share, None)],
            ),
        );
        let make = plan.phases[0].changes[0].clone();
        let cutover = plan.phases[1].changes[0].clone();
        (make, cutover, plan.phases[1].canary_gates.clone())
    };
    let (make, cutover, gates) = at(0);
    assert!(make
        .headline
        .unwrap()
        .contains("green colour of app.service.web is ready"));
    assert_eq!(
        cutover.headline.as_deref(),
        Some(
            "cutover listener of the service: blue → green in steps 10% → 50% → 100%, \
             a gate before each: now 0% → 10% (after gate \"cutover\")"
        )
    );
    assert_eq!(
        (gates.before, gates.after),
        (None, Some(GateId::canary("cutover", 50)))
    );

    // Stopped at 10%: blue is still the live colour, green the canary.
    let (make, cutover, gates) = at(10);
    assert!(make
        .headline
        .unwrap()
        .contains("green colour of app.service.web takes 10% of the traffic"),);
    assert!(cutover
        .headline
        .unwrap()
        .ends_with("now 10% → 50% (after gate \"cutover@50%\")"),);
    assert_eq!(gates.before, Some(GateId::canary("cutover", 50)));
    assert_eq!(gates.after, Some(GateId::canary("cutover", 100)));

    let (_, cutover, gates) = at(50);
    assert!(cutover
        .headline
        .unwrap()
        .ends_with("now 50% → 100% (after gate \"cutover@100%\")"));
    assert_eq!(
        (gates.before, gates.after),
        (Some(GateId::canary("cutover", 100)), None)
    );

    // Rolled back from 10%: all of it to blue, the colour it came from.
    let plan = run(
        &project,
        world(10 * HOUR, &[blue(90), colour("green", &fleet, 10, None)]),
    );
    let service = plan.phases[0].changes[0].current.clone().unwrap();
    let back = super::rollback_step(&service, &plan.phases[0].changes[0]).unwrap();
    let known = |k: &str| {
        back.desired[k]
            .known()
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        (known("to"), known("from")),
        ("blue".into(), "green".into())
    );
    assert!(back
        .headline
        .unwrap()
        .contains("the canary of green stops at 10%, all traffic back to blue"));
}

#[test]
fn a_canary_of_a_fleet_no_longer_declared_goes_back_before_its_colour_goes() {
    let dir = tempfile::tempdir().unwrap();
    let stack = format!("{STACK}strategy = {{ canary = [10, 50, 100], gate = \"manual\" }}\n");
    let project = project_of(&dir, &stack);
    let fleet = declared_fleet(&project);
    let blue = |fleet: &str| Colour {
        live_since: Some(HOUR),
        ..colour("blue", fleet, 90, None)
    };
    // A new image while green had 10%: green goes (its share back to blue
    // first), and a new green is made.
    let plan = run(
        &project,
        world(
            10 * HOUR,
            &[blue("old"), colour("green", "older", 10, None)],
        ),
    );
    let (make, _) = steps(&plan);
    assert_eq!(make.action, Action::Create);
    assert!(
        make.steps.iter().any(|s| s.contains(
            "remove idle green first (a canary of another fleet with 10% of the traffic, which goes back to blue first)"
        )),
        "{:?}",
        make.steps
    );
    // The declaration went back to blue's fleet: green is retired at once.
    let plan = run(
        &project,
        world(
            10 * HOUR,
            &[blue(&fleet), colour("green", "older", 10, None)],
        ),
    );
    let (keep, cutover) = steps(&plan);
    assert_eq!(keep.action, Action::Update);
    assert!(cutover.is_none());
    assert!(
        keep.steps.iter().any(|s| s
            == "- retire green: a canary with 10% of the traffic, which goes back to blue first"),
        "{:?}",
        keep.steps
    );
}
