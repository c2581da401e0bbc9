//! The image planner on hand-made snapshots: reuse, bake reasons, builders
//! left by an interrupted bake, retention and images in use.

use std::collections::BTreeMap;

use super::{BAKED_TAG, BASE_TAG, RECIPE_TAG, ROLE_TAG, SCRIPT_TAG, TYPE_TAG};
use crate::model::{Project, ResourceKind};
use crate::plan::{Action, Change, Plan};
use crate::planner::plan;
use crate::types::tags;
use crate::world::{
    base_filter_key, Address, BaseImage, KnownImage, ObservedResource, Snapshot, Value,
};

const STACK: &str = r#"[resources.image.app]
base_image = { owners = ["amazon"], name = "amzn2-*" }
instance_type = "t3.micro"
subnet = "subnet-1"
provision = "files/app.sh"
keep = 2
"#;

const RUNBOOK: &str = "environment = \"prod\"\nregion = \"us-east-1\"\nstacks = [\"img\"]\n";

fn project(dir: &tempfile::TempDir) -> Project {
    let write = |rel: &str, text: &str| {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("stacks/img.toml", STACK);
    write("stacks/files/app.sh", "#!/bin/sh\necho hi\n");
    write("runbooks/rb.toml", RUNBOOK);
    let (project, diags) = crate::load::validate::load_project(dir.path(), &[]);
    assert!(diags.is_empty(), "{:?}", diags.sorted());
    project
}

fn address() -> Address {
    Address::new("img", ResourceKind::Image, "app")
}

fn base() -> BTreeMap<String, BaseImage> {
    BTreeMap::from([(
        base_filter_key(&["amazon"], "amzn2-*"),
        BaseImage {
            id: "ami-base".into(),
            name: "amzn2-2026".into(),
            owner: "137112412989".into(),
            created: "2026-01-01T00:00:00.000Z".into(),
        },
    )])
}

/// The recipe the stack above plans (read off a plan of nothing).
fn recipe(project: &Project) -> String {
    let plan = run(project, Snapshot::default());
    let change = image_change(&plan);
    match change.desired.get("recipe").and_then(|r| r.known()) {
        Some(Value::Str(r)) => r.clone(),
        other => panic!("no recipe: {other:?}"),
    }
}

fn run(project: &Project, mut snapshot: Snapshot) -> Plan {
    snapshot.lookups.base_images = base();
    plan(project, &project.runbooks[0], &snapshot, String::new())
}

fn image_change(plan: &Plan) -> &Change {
    plan.phases
        .iter()
        .flat_map(|p| &p.changes)
        .find(|c| c.address.kind == ResourceKind::Image)
        .expect("an image step")
}

fn tags_of(env: &str, recipe: &str, baked: &str, finished: bool) -> BTreeMap<String, String> {
    let mut t = BTreeMap::from([
        (tags::ENV.to_string(), env.to_string()),
        (tags::STACK.to_string(), "img".to_string()),
        (tags::RESOURCE.to_string(), "image.app".to_string()),
        (RECIPE_TAG.to_string(), recipe.to_string()),
        (BAKED_TAG.to_string(), baked.to_string()),
        (BASE_TAG.to_string(), "ami-base".to_string()),
        (SCRIPT_TAG.to_string(), "0123456789ab".to_string()),
        (TYPE_TAG.to_string(), "t3.micro".to_string()),
    ]);
    if finished {
        t.insert(tags::SPEC.to_string(), "s".to_string());
    }
    t
}

fn own_image(id: &str, recipe: &str, baked: &str) -> ObservedResource {
    ObservedResource {
        address: address(),
        id: id.to_string(),
        attrs: BTreeMap::from([("state".to_string(), Value::Str("available".into()))]),
        exports: BTreeMap::from([("id".to_string(), Value::Str(id.into()))]),
        tags: tags_of("prod", recipe, baked, true),
    }
}

#[test]
fn another_environments_image_of_the_recipe_is_reused_and_says_whose() {
    let dir = tempfile::tempdir().unwrap();
    let project = project(&dir);
    let recipe = recipe(&project);
    let mut snapshot = Snapshot::default();
    snapshot.lookups.images.push(KnownImage {
        region: "us-east-1".into(),
        id: "ami-staging".into(),
        name: "n".into(),
        state: "available".into(),
        created: "2026-11-20T03:00:00.000Z".into(),
        tags: tags_of("staging", &recipe, "2026-11-20T03:00:00.000Z", true),
        snapshots: vec![],
    });
    let plan = run(&project, snapshot);
    let change = image_change(&plan);
    assert_eq!(change.action, Action::NoOp);
    assert_eq!(
        change.headline.as_deref(),
        Some(
            format!("reuse ami-staging (recipe {recipe}, baked by staging on 2026-11-20)").as_str()
        )
    );
    assert!(!plan.has_changes());
}

#[test]
fn a_new_script_bakes_and_says_why_and_old_images_past_keep_go_unless_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let project = project(&dir);
    let mut snapshot = Snapshot::new(
        0,
        vec![
            own_image("ami-1", "old1", "2026-11-01T00:00:00.000Z"),
            own_image("ami-2", "old2", "2026-11-02T00:00:00.000Z"),
            own_image("ami-3", "old3", "2026-11-03T00:00:00.000Z"),
        ],
    );
    snapshot
        .lookups
        .image_users
        .insert("ami-1".into(), vec!["instance i-9".into()]);
    let plan = run(&project, snapshot);
    let change = image_change(&plan);
    assert_eq!(change.action, Action::Create);
    let headline = change.headline.clone().unwrap();
    assert!(
        headline.starts_with("bake image app from ami-base (recipe "),
        "{headline}"
    );
    assert!(
        headline.ends_with(", script files/app.sh changed)"),
        "{headline}"
    );
    // keep = 2: the new one and ami-3 stay; ami-2 goes; ami-1 is in use.
    let gone: Vec<&str> = plan
        .cleanup
        .iter()
        .map(|c| c.current.as_ref().unwrap().id.as_str())
        .collect();
    assert_eq!(gone, ["ami-2"]);
    assert_eq!(
        plan.cleanup[0].headline.as_deref(),
        Some("deregister ami-2 of img.image.app (retention, keep 2)")
    );
    assert!(
        change.reasons.contains(
            &"ami-1 is past retention (keep 2) but kept: in use by instance i-9".to_string()
        ),
        "{:?}",
        change.reasons
    );
}

#[test]
fn a_builder_of_the_recipe_is_continued_and_one_of_another_is_terminated() {
    let dir = tempfile::tempdir().unwrap();
    let project = project(&dir);
    let recipe = recipe(&project);
    let builder = |id: &str, recipe: &str| {
        let mut tags = tags_of("prod", recipe, "", false);
        tags.insert(ROLE_TAG.into(), "builder".into());
        ObservedResource {
            address: address(),
            id: id.to_string(),
            attrs: BTreeMap::from([("role".to_string(), Value::Str("builder".into()))]),
            exports: BTreeMap::new(),
            tags,
        }
    };
    let snapshot = Snapshot::new(
        0,
        vec![builder("i-same", &recipe), builder("i-other", "zzz")],
    );
    let plan = run(&project, snapshot);
    let change = image_change(&plan);
    assert_eq!(change.action, Action::Create);
    assert!(change
        .reasons
        .contains(&"continues the interrupted bake on builder i-same".to_string()));
    let cleaned: Vec<&str> = plan
        .cleanup
        .iter()
        .map(|c| c.current.as_ref().unwrap().id.as_str())
        .collect();
    assert_eq!(cleaned, ["i-other"]);
}
