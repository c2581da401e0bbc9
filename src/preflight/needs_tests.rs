//! What plans of small projects need, read off real plans of hand-made
//! snapshots.

use std::collections::BTreeMap;

use super::*;
use crate::model::Project;
use crate::world::BaseImage;

const NET: &str = r#"[resources.vpc.main]
cidr_block = "10.0.0.0/16"

[resources.subnet.a]
vpc = "${vpc.main.id}"
cidr_block = "10.0.1.0/24"
availability_zone = "${env.region}a"

[resources.subnet.b]
vpc = "${vpc.main.id}"
cidr_block = "10.0.2.0/24"
availability_zone = "${env.region}b"

[resources.internet_gateway.gw]
vpc = "${vpc.main.id}"

[outputs]
subnet_ids = ["${subnet.a.id}", "${subnet.b.id}"]
subnet_a = "${subnet.a.id}"
vpc_id = "${vpc.main.id}"
"#;

const APP: &str = r#"[resources.image.app]
base_image = { owners = ["amazon"], name = "amzn2-*" }
instance_type = "t3.small"
subnet = "${stack.net.subnet_a}"

[resources.instances.fleet]
image = "${image.app.id}"
count = 3
instance_type = "t3.micro"
subnets = "${stack.net.subnet_ids}"

[resources.instances.tools]
image = "ami-tools"
count = 1
instance_type = "t3.micro"
subnets = "${stack.net.subnet_ids}"

[resources.target_group.web]
vpc = "${stack.net.vpc_id}"
protocol = "HTTP"
port = 80
"#;

fn project(dir: &tempfile::TempDir) -> Project {
    let write = |rel: &str, text: &str| {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("stacks/net.toml", NET);
    write("stacks/app.toml", APP);
    write(
        "runbooks/rb.toml",
        "environment = \"dr\"\nregion = \"us-west-2\"\nstacks = [\"app\"]\n",
    );
    let (project, diags) = crate::load::validate::load_project(dir.path(), &[]);
    assert!(diags.is_empty(), "{:?}", diags.sorted());
    project
}

fn plan_of(project: &Project, snapshot: &Snapshot) -> Plan {
    let runbook = project.runbook("rb").unwrap();
    crate::planner::plan(project, runbook, snapshot, String::new())
}

fn with_base() -> Snapshot {
    let lookups = crate::world::Lookups {
        base_images: BTreeMap::from([(
            base_filter_key(&["amazon"], "amzn2-*"),
            BaseImage {
                id: "ami-base".into(),
                name: "amzn2-2026".into(),
                owner: "137112412989".into(),
                created: "2026-01-01T00:00:00.000Z".into(),
            },
        )]),
        ..Default::default()
    };
    Snapshot::default().with_lookups(lookups)
}

#[test]
fn a_fresh_region_needs_images_zones_types_and_calls() {
    let dir = tempfile::tempdir().unwrap();
    let project = project(&dir);
    let snapshot = with_base();
    let needs = Needs::of(&plan_of(&project, &snapshot), &snapshot);
    assert!(
        needs.shape.problems.is_empty(),
        "{:?}",
        needs.shape.problems
    );
    assert_eq!(needs.shape.steps, 8);
    let ids: Vec<&str> = needs
        .images
        .iter()
        .filter_map(|n| match n {
            ImageNeed::Id { id, .. } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(ids, ["ami-base", "ami-tools"]);
    assert!(needs.images.iter().any(|n| matches!(n,
        ImageNeed::FromRun { address, from } if address.name == "fleet" && from.name == "app")));
    assert_eq!(
        needs.zones.iter().map(String::as_str).collect::<Vec<_>>(),
        ["us-west-2a", "us-west-2b"]
    );
    let placed: Vec<String> = needs
        .placements
        .iter()
        .map(|p| {
            format!(
                "{} {} {}",
                p.address.name,
                p.instance_type,
                p.zone.as_deref().unwrap_or("?")
            )
        })
        .collect();
    assert_eq!(
        placed,
        [
            "app t3.small us-west-2a",
            "fleet t3.micro us-west-2a",
            "fleet t3.micro us-west-2b",
            "tools t3.micro us-west-2a",
            "tools t3.micro us-west-2b",
        ]
    );
    // 3 + 1 instances and the bake's builder; one target group.
    assert_eq!(
        needs.adds,
        Adds {
            instances: 5,
            load_balancers: 0,
            target_groups: 1
        }
    );
    let run = &needs.calls[&(Service::Ec2, "RunInstances")];
    assert!(run.dry_runs.contains(&DryRun::RunInstances {
        image: "ami-base".into(),
        instance_type: "t3.small".into(),
        subnet: None,
    }));
    assert!(run.dry_runs.contains(&DryRun::RunInstances {
        image: "ami-tools".into(),
        instance_type: "t3.micro".into(),
        subnet: None,
    }));
    // The fleet's image is baked by this run: its launch cannot be tried.
    assert!(
        run.untried
            .iter()
            .any(|w| w.contains("the image this run makes")),
        "{run:?}"
    );
    let vpc = &needs.calls[&(Service::Ec2, "CreateVpc")];
    assert!(vpc.dry_runs.is_empty() && vpc.untried.iter().any(|w| w.contains("not tried")));
    let tg = &needs.calls[&(Service::Elbv2, "CreateTargetGroup")];
    assert_eq!(
        tg.untried.iter().collect::<Vec<_>>(),
        ["ELBv2 has no dry run: unchecked"]
    );
    assert!(needs.calls[&(Service::Ec2, "CreateInternetGateway")]
        .dry_runs
        .contains(&DryRun::CreateInternetGateway));
}

#[test]
fn a_base_image_the_region_lacks_is_named_by_its_filter() {
    let dir = tempfile::tempdir().unwrap();
    let project = project(&dir);
    let snapshot = Snapshot::default();
    let needs = Needs::of(&plan_of(&project, &snapshot), &snapshot);
    assert!(needs.images.contains(&ImageNeed::NoMatch {
        address: Address::new("app", ResourceKind::Image, "app"),
        filter: base_filter_key(&["amazon"], "amzn2-*"),
    }));
}

#[test]
fn a_step_reading_what_is_neither_planned_nor_found_and_a_circle_make_a_plan_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let project = project(&dir);
    let snapshot = with_base();
    let mut plan = plan_of(&project, &snapshot);
    // Drop the VPC's step: its subnets read a VPC nobody makes.
    for phase in &mut plan.phases {
        phase
            .changes
            .retain(|c| c.address.kind != ResourceKind::Vpc);
    }
    let needs = Needs::of(&plan, &snapshot);
    assert!(
        needs
            .shape
            .problems
            .iter()
            .any(|p| p == "net.subnet.a reads net.vpc.main, which is neither planned nor found"),
        "{:?}",
        needs.shape.problems
    );
    let mut plan = plan_of(&project, &snapshot);
    let gw = Address::new("net", ResourceKind::InternetGateway, "gw");
    let a = Address::new("net", ResourceKind::Subnet, "a");
    for change in plan.phases.iter_mut().flat_map(|p| p.changes.iter_mut()) {
        if change.address == a {
            change.depends_on.insert(gw.clone());
        }
        if change.address == gw {
            change.depends_on.insert(a.clone());
        }
    }
    let problems = Needs::of(&plan, &snapshot).shape.problems;
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("steps wait on each other: ")
                && p.contains("net.subnet.a")
                && p.contains("net.internet_gateway.gw")),
        "{problems:?}"
    );
}

#[test]
fn a_step_reading_its_own_resource_reads_its_earlier_step_not_a_circle() {
    // A service's cutover reads the colour made by its step before.
    let dir = tempfile::tempdir().unwrap();
    let project = project(&dir);
    let snapshot = with_base();
    let mut plan = plan_of(&project, &snapshot);
    let a = Address::new("net", ResourceKind::Subnet, "a");
    for change in plan.phases.iter_mut().flat_map(|p| p.changes.iter_mut()) {
        if change.address == a {
            change.depends_on.insert(a.clone());
        }
    }
    let problems = Needs::of(&plan, &snapshot).shape.problems;
    assert!(problems.is_empty(), "{problems:?}");
}
