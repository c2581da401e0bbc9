//! Image baking against moto: bake once, reuse by recipe (counted at the
//! proxy), say why a bake happens, reuse another environment's image in a
//! drill and leave it, copy to a DR region that runs the copy, keep `keep`
//! images but never one in use, and leave no builder and no half-made image
//! behind (failures: bake_faults.rs). Each test's script is its own, so its
//! recipe is its own: tests share moto but never each other's images.

use std::collections::BTreeMap;
use std::path::Path;

use aws_sdk_ec2::types::Filter;

use crate::proxy::{FaultProxy, Faults};
use crate::support::{drctl_at, json_reports, moto_endpoint, outcome, Repo};
use drctl::cloud::AwsSettings;

pub(crate) const REGION: &str = "us-east-1";
const DR_REGION: &str = "us-west-2";

const NET: &str = r#"[resources.vpc.main]
cidr_block = "10.91.0.0/16"

[resources.subnet.a]
vpc = "${vpc.main.id}"
cidr_block = "10.91.1.0/24"
availability_zone = "${env.region}a"

[outputs]
subnet_a = "${subnet.a.id}"
"#;

const FLEET: &str = r#"[resources.instances.app]
image = "${stack.image.image_id}"
count = 1
instance_type = "t3.micro"
subnets = ["${stack.net.subnet_a}"]
"#;

/// One test's repository: a network, an image stack and the runbook `bake`
/// (environment `env`, us-east-1); `dr` runs a fleet of the image in us-west-2.
pub(crate) struct Bake {
    repo: Repo,
    pub(crate) state: tempfile::TempDir,
    env: String,
}

impl Bake {
    pub(crate) fn new(env: &str, image_extra: &str) -> Bake {
        let repo = Repo::with(&[]);
        for gone in ["stacks/net.toml", "stacks/app.toml", "runbooks/rb.toml"] {
            let _ = std::fs::remove_file(repo.path(gone));
        }
        repo.write("stacks/net.toml", NET);
        repo.write(
            "stacks/image.toml",
            &format!(
                "[resources.image.app]\n\
                 base_image = {{ owners = [\"amazon\"], name = \"amzn2-ami-hvm-*-x86_64-gp2\" }}\n\
                 instance_type = \"t3.micro\"\n\
                 subnet = \"${{stack.net.subnet_a}}\"\n\
                 provision = \"files/build.sh\"\n{image_extra}\n\n\
                 [outputs]\nimage_id = \"${{image.app.id}}\"\n"
            ),
        );
        repo.write("stacks/fleet.toml", FLEET);
        repo.write(
            "runbooks/bake.toml",
            &format!(
                "environment = \"{env}\"\nregion = \"{REGION}\"\nstacks = [\"image\"]\n\n\
                 [[phases]]\nname = \"network\"\nstacks = [\"net\"]\n\n\
                 [[phases]]\nname = \"bake\"\nstacks = [\"image\"]\n"
            ),
        );
        repo.write(
            "runbooks/dr.toml",
            &format!(
                "environment = \"{env}-dr\"\nregion = \"{DR_REGION}\"\nstacks = [\"fleet\"]\n"
            ),
        );
        let bake = Bake {
            repo,
            state: tempfile::tempdir().unwrap(),
            env: env.to_string(),
        };
        bake.script("echo building");
        bake
    }

    /// Rewrites the provisioning script (with this test's own first line).
    pub(crate) fn script(&self, body: &str) {
        self.repo.write(
            "stacks/files/build.sh",
            &format!("#!/bin/bash\n# bake test {}\n{body}\n", self.env),
        );
    }

    pub(crate) fn run(&self, endpoint: &str, args: &[&str]) -> (Option<i32>, String) {
        outcome(&mut self.command(endpoint, args))
    }

    pub(crate) fn command(&self, endpoint: &str, args: &[&str]) -> std::process::Command {
        let mut cmd = drctl_at(self.repo.root(), self.state.path(), endpoint);
        cmd.args(args);
        cmd
    }

    pub(crate) fn apply(&self, endpoint: &str) -> String {
        let (code, text) = self.run(endpoint, &["apply", "bake", "--auto-approve"]);
        assert_eq!(code, Some(0), "{text}");
        text
    }
}

async fn ec2(region: &str) -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::new(&AwsSettings::sandbox(moto_endpoint(), region).load().await)
}

fn filter(name: &str, values: &[&str]) -> Filter {
    let values = values.iter().map(|v| v.to_string()).collect();
    Filter::builder()
        .name(name)
        .set_values(Some(values))
        .build()
}

/// The environment's images in `region`: id → (state, tags, snapshot ids).
pub(crate) async fn images(
    env: &str,
    region: &str,
) -> BTreeMap<String, (String, BTreeMap<String, String>, Vec<String>)> {
    let out = ec2(region)
        .await
        .describe_images()
        .owners("self")
        .filters(filter("tag:drctl:env", &[env]))
        .send()
        .await
        .unwrap();
    out.images()
        .iter()
        .map(|i| {
            let tags = i
                .tags()
                .iter()
                .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
                .collect();
            let snapshots = i
                .block_device_mappings()
                .iter()
                .filter_map(|m| m.ebs()?.snapshot_id().map(str::to_string))
                .collect();
            let state = i.state().unwrap().as_str().to_string();
            (i.image_id().unwrap().to_string(), (state, tags, snapshots))
        })
        .collect()
}

/// The environment's builder instances that are not terminated.
pub(crate) async fn live_builders(env: &str) -> Vec<String> {
    let out = ec2(REGION)
        .await
        .describe_instances()
        .filters(filter("tag:drctl:env", &[env]))
        .filters(filter("tag:drctl:role", &["builder"]))
        .filters(filter(
            "instance-state-name",
            &["pending", "running", "stopping", "stopped", "shutting-down"],
        ))
        .send()
        .await
        .unwrap();
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect()
}

async fn snapshots_exist(region: &str, ids: &[String]) -> Vec<String> {
    let values: Vec<&str> = ids.iter().map(String::as_str).collect();
    let out = ec2(region)
        .await
        .describe_snapshots()
        .filters(filter("snapshot-id", &values))
        .send()
        .await
        .unwrap();
    out.snapshots()
        .iter()
        .filter_map(|s| s.snapshot_id().map(str::to_string))
        .collect()
}

pub(crate) fn calls(proxy: &FaultProxy, action: &str) -> u32 {
    proxy.counts(action).calls()
}

/// The one finished image of the environment (in us-east-1).
pub(crate) async fn only_image(env: &str) -> String {
    let found = images(env, REGION).await;
    assert_eq!(found.len(), 1, "{found:#?}");
    let (id, (state, tags, snapshots)) = found.into_iter().next().unwrap();
    assert_eq!(state, "available");
    assert!(
        tags.contains_key("drctl:spec") && tags.contains_key("drctl:recipe"),
        "{tags:?}"
    );
    assert!(!snapshots.is_empty());
    id
}

#[tokio::test]
async fn the_first_apply_bakes_the_next_reuses_and_a_changed_script_bakes_again_saying_why() {
    let bake = Bake::new("bake-reuse", "");
    let proxy = FaultProxy::moto(Faults::none());
    let text = bake.apply(proxy.url());
    assert!(
        text.contains("+ bake image app from ami-")
            && text.contains("no image of this recipe in the region yet"),
        "{text}"
    );
    assert_eq!(
        calls(&proxy, "ec2:RunInstances"),
        1,
        "{:?}",
        proxy.by_action()
    );
    assert_eq!(calls(&proxy, "ec2:CreateImage"), 1);
    let first = only_image("bake-reuse").await;
    assert!(
        live_builders("bake-reuse").await.is_empty(),
        "the builder is terminated"
    );
    // Its snapshots carry the image's tags.
    let (_, (_, _, snapshots)) = images("bake-reuse", REGION)
        .await
        .into_iter()
        .next()
        .unwrap();
    let tagged = ec2(REGION)
        .await
        .describe_snapshots()
        .filters(filter("tag:drctl:env", &["bake-reuse"]))
        .send()
        .await
        .unwrap();
    let tagged: Vec<&str> = tagged
        .snapshots()
        .iter()
        .filter_map(|s| s.snapshot_id())
        .collect();
    assert_eq!(
        tagged,
        snapshots.iter().map(String::as_str).collect::<Vec<_>>()
    );

    proxy.reset_counts();
    let text = bake.apply(proxy.url());
    assert!(text.contains("No changes."), "{text}");
    assert_eq!(
        calls(&proxy, "ec2:RunInstances"),
        0,
        "{:?}",
        proxy.by_action()
    );
    assert_eq!(calls(&proxy, "ec2:CreateImage"), 0);
    assert_eq!(only_image("bake-reuse").await, first);

    bake.script("echo building v2");
    let (code, text) = bake.run(proxy.url(), &["plan", "bake", "--detailed-exitcode"]);
    assert_eq!(code, Some(4), "changes pending: {text}");
    assert!(text.contains("script files/build.sh changed"), "{text}");
    assert!(
        !text.contains("echo building"),
        "the script never shows: {text}"
    );
    proxy.reset_counts();
    bake.apply(proxy.url());
    assert_eq!(calls(&proxy, "ec2:CreateImage"), 1);
    let now = images("bake-reuse", REGION).await;
    assert_eq!(now.len(), 2, "no keep: the first image stays: {now:#?}");
}

#[tokio::test]
async fn a_drill_reuses_another_environments_image_and_leaves_it_unless_it_rebakes() {
    let bake = Bake::new("bake-prod", "");
    bake.apply(moto_endpoint());
    let prod = only_image("bake-prod").await;

    let proxy = FaultProxy::moto(Faults::none());
    let (code, text) = bake.run(
        proxy.url(),
        &["drill", "bake", "--environment", "bake-prod-drill"],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!("= reuse {prod} (recipe "))
            && text.contains("baked by bake-prod on "),
        "{text}"
    );
    assert_eq!(
        calls(&proxy, "ec2:CreateImage"),
        0,
        "{:?}",
        proxy.by_action()
    );
    assert_eq!(
        only_image("bake-prod").await,
        prod,
        "the drill's teardown leaves it"
    );
    let report = read_report(bake.state.path(), "bake-prod-drill");
    let image = &report["images"][0];
    assert_eq!(image["how"], "reused", "{report:#}");
    assert_eq!(image["image_id"], prod.as_str());
    assert_eq!(image["baked_by"], "bake-prod");

    proxy.reset_counts();
    let (code, text) = bake.run(
        proxy.url(),
        &[
            "drill",
            "bake",
            "--environment",
            "bake-prod-rebake",
            "--rebake",
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("rebake requested: baking from scratch"),
        "{text}"
    );
    assert_eq!(calls(&proxy, "ec2:CreateImage"), 1);
    assert!(
        images("bake-prod-rebake", REGION).await.is_empty(),
        "torn down"
    );
    assert!(live_builders("bake-prod-rebake").await.is_empty());
    assert_eq!(only_image("bake-prod").await, prod);
    let report = read_report(bake.state.path(), "bake-prod-rebake");
    let image = &report["images"][0];
    assert_eq!(image["how"], "baked", "{report:#}");
    assert!(image["bake_ms"].as_i64().is_some(), "{report:#}");
    let md = std::fs::read_to_string(
        report_of(bake.state.path(), "bake-prod-rebake").with_extension("md"),
    )
    .unwrap();
    assert!(md.contains("| bake of image.image.app started |"), "{md}");
    assert!(md.contains("image image.image.app baked in "), "{md}");
}

/// The JSON report of the drill in environment `env`.
fn read_report(state: &Path, env: &str) -> serde_json::Value {
    drill_report(state, env).1
}

/// The JSON report file of the drill in environment `env` (run ids have
/// whole seconds: two drills may share one).
fn report_of(state: &Path, env: &str) -> std::path::PathBuf {
    drill_report(state, env).0
}

fn drill_report(state: &Path, env: &str) -> (std::path::PathBuf, serde_json::Value) {
    json_reports(state, "bake")
        .into_iter()
        .find(|(_, report)| report["environment"] == env)
        .expect("a report of the drill")
}

#[tokio::test]
async fn a_copy_in_the_dr_region_is_what_a_stack_there_runs() {
    let bake = Bake::new("bake-copy", "copy_to_regions = [\"us-west-2\"]");
    let text = bake.apply(moto_endpoint());
    assert!(text.contains("+ copy to us-west-2"), "{text}");
    let source = only_image("bake-copy").await;
    let copies = images("bake-copy", DR_REGION).await;
    assert_eq!(copies.len(), 1, "{copies:#?}");
    let (copy, (state, tags, _)) = copies.into_iter().next().unwrap();
    assert_eq!(state, "available");
    assert_eq!(tags["drctl:copy-of"], format!("{REGION}/{source}"));
    let (_, (_, source_tags, _)) = images("bake-copy", REGION)
        .await
        .into_iter()
        .next()
        .unwrap();
    assert_eq!(
        tags["drctl:recipe"], source_tags["drctl:recipe"],
        "the copy has the recipe"
    );

    let (code, text) = bake.run(moto_endpoint(), &["plan", "dr"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(&format!("= reuse {copy} (recipe ")), "{text}");
    let (code, text) = bake.run(moto_endpoint(), &["apply", "dr", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
    let running = ec2(DR_REGION)
        .await
        .describe_instances()
        .filters(filter("tag:drctl:env", &["bake-copy-dr"]))
        .filters(filter("instance-state-name", &["pending", "running"]))
        .send()
        .await
        .unwrap();
    let launched: Vec<&str> = running
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| i.image_id())
        .collect();
    assert_eq!(launched, [copy.as_str()], "the DR fleet runs the copy");

    // The copy exists: nothing to do; the DR fleet keeps its image from
    // being deregistered with its source.
    let text = bake.apply(moto_endpoint());
    assert!(text.contains("No changes."), "{text}");
    let (code, text) = bake.run(moto_endpoint(), &["destroy", "bake", "--auto-approve"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("in use") && text.contains(&copy), "{text}");
    let (code, text) = bake.run(moto_endpoint(), &["destroy", "dr", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = bake.run(moto_endpoint(), &["destroy", "bake", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(images("bake-copy", REGION).await.is_empty());
    assert!(
        images("bake-copy", DR_REGION).await.is_empty(),
        "the copy went with its source"
    );
}

#[tokio::test]
async fn retention_deletes_old_images_and_snapshots_but_never_one_in_use() {
    let bake = Bake::new("bake-keep", "keep = 1");
    bake.apply(moto_endpoint());
    let v1 = only_image("bake-keep").await;
    // Something outside drctl launches v1.
    let user = ec2(REGION)
        .await
        .run_instances()
        .image_id(&v1)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    let user = user.instances()[0].instance_id().unwrap().to_string();

    bake.script("echo v2");
    let text = bake.apply(moto_endpoint());
    assert!(
        text.contains(&format!(
            "{v1} is past retention (keep 1) but kept: in use by instance {user}"
        )),
        "{text}"
    );
    let now = images("bake-keep", REGION).await;
    assert_eq!(now.len(), 2, "{now:#?}");
    let v2 = now.keys().find(|id| **id != v1).unwrap().clone();
    let v2_snapshots = now[&v2].2.clone();

    bake.script("echo v3");
    let (_, plan) = bake.run(moto_endpoint(), &["plan", "bake"]);
    assert!(
        plan.contains(&format!(
            "- deregister {v2} of image.image.app (retention, keep 1)"
        )),
        "{plan}"
    );
    bake.apply(moto_endpoint());
    let now = images("bake-keep", REGION).await;
    assert!(now.contains_key(&v1), "in use: kept");
    assert!(!now.contains_key(&v2), "past retention: deregistered");
    assert_eq!(now.len(), 2, "{now:#?}");
    assert!(
        snapshots_exist(REGION, &v2_snapshots).await.is_empty(),
        "its snapshots went too"
    );

    ec2(REGION)
        .await
        .terminate_instances()
        .instance_ids(&user)
        .send()
        .await
        .unwrap();
    // A launch template's default version that launches v1 keeps it too.
    let data = aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
        .image_id(&v1)
        .build();
    ec2(REGION)
        .await
        .create_launch_template()
        .launch_template_name("bake-keep-lt")
        .launch_template_data(data)
        .send()
        .await
        .unwrap();
    let (_, plan) = bake.run(moto_endpoint(), &["plan", "bake"]);
    assert!(
        plan.contains(&format!(
            "{v1} is past retention (keep 1) but kept: in use by launch template lt-"
        )) && plan.contains("(bake-keep-lt) version 1"),
        "{plan}"
    );
    ec2(REGION)
        .await
        .delete_launch_template()
        .launch_template_name("bake-keep-lt")
        .send()
        .await
        .unwrap();
    let (_, plan) = bake.run(moto_endpoint(), &["plan", "bake"]);
    assert!(
        plan.contains(&format!(
            "- deregister {v1} of image.image.app (retention, keep 1)"
        )),
        "{plan}"
    );
}

/// Copies the repository's own stacks, runbooks and check scripts.
pub(crate) fn example_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = std::process::Command::new("cp")
        .arg("-a")
        .args(["stacks", "runbooks", "checks"].map(|d| here.join(d)))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

/// Makes the example image's recipe this repository's own: tests running
/// beside this one bake the same example (the README's drill copies it to
/// the DR region too), and a copy of theirs would be reused here.
fn own_recipe(repo: &Path) {
    let script = repo.join("stacks/files/app-provision.sh");
    let mut text = std::fs::read_to_string(&script).unwrap();
    text.push_str(&format!(
        "# recipe of the test repository {}\n",
        repo.display()
    ));
    std::fs::write(&script, text).unwrap();
}

#[tokio::test]
async fn the_example_bakes_in_one_region_and_its_dr_drill_runs_the_copy() {
    let repo = example_repo();
    own_recipe(repo.path());
    let state = tempfile::tempdir().unwrap();
    let run =
        |args: &[&str]| outcome(drctl_at(repo.path(), state.path(), moto_endpoint()).args(args));
    let (code, text) = run(&["apply", "images", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("+ copy to us-west-2"), "{text}");
    let copies = images("images", DR_REGION).await;
    assert_eq!(copies.len(), 1, "{copies:#?}");
    let copy = copies.keys().next().unwrap().clone();

    let (code, text) = run(&["drill", "fleet-rehearsal"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(&format!("= reuse {copy} (recipe ")), "{text}");
    assert!(text.contains("baked by images on "), "{text}");
    let (_, report) = json_reports(state.path(), "fleet-rehearsal").pop().unwrap();
    assert_eq!(report["verdict"], "passed", "{report:#}");
    assert_eq!(report["images"][0]["image_id"], copy.as_str(), "{report:#}");
    assert_eq!(report["images"][0]["how"], "reused");
    assert_eq!(
        images("images", DR_REGION).await.len(),
        1,
        "the drill leaves the copy"
    );
}
