//! Drills that bake cannot leak either: a builder, an image and its
//! snapshots carry the drill's lifetime, and a sweep removes them once it
//! has passed. Each test has a region of its own (see `sweep`).

use std::collections::BTreeMap;

use aws_sdk_ec2::types::Filter;

use drctl::clock::{Clock, ManualClock, SystemClock};
use drctl::drill::sweep::sweep;
use drctl::events::Collect;

use crate::support::{drctl_at, moto_endpoint, ConnectTo, Repo};
use crate::sweep::{clients, ctx, request, tagged};

/// A network and an image baked by `script`, drilled in `region` with
/// `teardown`: the runbook `bake` of environment `env`.
fn bake_repo(env: &str, region: &str, script: &str, teardown: &str) -> Repo {
    let repo = Repo::with(&[]);
    for gone in ["stacks/net.toml", "stacks/app.toml", "runbooks/rb.toml"] {
        let _ = std::fs::remove_file(repo.path(gone));
    }
    repo.write(
        "stacks/net.toml",
        "[resources.vpc.main]\ncidr_block = \"10.61.0.0/16\"\n\n\
         [resources.subnet.a]\nvpc = \"${vpc.main.id}\"\ncidr_block = \"10.61.1.0/24\"\n\
         availability_zone = \"${env.region}a\"\n\n[outputs]\nsubnet_a = \"${subnet.a.id}\"\n",
    );
    repo.write(
        "stacks/image.toml",
        "[resources.image.app]\n\
         base_image = { owners = [\"amazon\"], name = \"amzn2-ami-hvm-*-x86_64-gp2\" }\n\
         instance_type = \"t3.micro\"\nsubnet = \"${stack.net.subnet_a}\"\n\
         provision = \"files/build.sh\"\n\n[outputs]\nimage_id = \"${image.app.id}\"\n",
    );
    repo.write(
        "stacks/files/build.sh",
        &format!("#!/bin/bash\n{script}\necho building\n"),
    );
    repo.write(
        "runbooks/bake.toml",
        &format!(
            "environment = \"{env}\"\nregion = \"{region}\"\nstacks = [\"image\"]\n\
             rto_target = \"20m\"\n\n[drill]\nteardown = \"{teardown}\"\nttl = \"2h\"\n"
        ),
    );
    repo
}

#[tokio::test]
async fn a_builder_left_by_a_killed_bake_carries_the_drills_lifetime_and_is_swept() {
    let region = "ap-northeast-1";
    let env = "sweep-bake";
    // The sandbox's guest never powers this builder off: the bake waits.
    let repo = bake_repo(env, region, "# drctl-sandbox: never-finish", "always");
    let state = tempfile::tempdir().unwrap();
    let mut cmd = drctl_at(repo.root(), state.path(), moto_endpoint());
    let mut drill = cmd
        .args(["drill", "bake"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the drill");
    // Killed with its machine once its builder runs.
    let builder = loop {
        let found = tagged(region, &format!("{env}-drill-")).await;
        let builder = found
            .into_iter()
            .find(|(arn, _)| arn.contains(":instance/"));
        if let Some(builder) = builder {
            break builder;
        }
        assert!(
            drill.try_wait().unwrap().is_none(),
            "the drill ended before its builder ran"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    drill.kill().unwrap();
    drill.wait().unwrap();
    drop(state);
    let (arn, tags) = builder;
    let run_id = tags.get("drctl:drill").expect("the drill's run id");
    let expires = tags.get("drctl:expires").expect("its expiry");
    assert!(
        expires.parse::<jiff::Timestamp>().is_ok(),
        "{arn}: {expires}"
    );

    // Three hours later, a sweep finds the builder and removes it.
    let now = SystemClock.now() + 3 * 3_600_000;
    let clock = ManualClock::at(now);
    let sink = Collect::default();
    let mut sweeping = request(&repo, false);
    sweeping.runbooks = vec!["bake".into()];
    let sweeper = tempfile::tempdir().unwrap();
    let summary = sweep(
        &ctx(sweeper.path(), &clock, &sink),
        &ConnectTo::moto(),
        &sweeping,
    )
    .await
    .expect("sweep");
    let swept = summary
        .drills
        .iter()
        .find(|d| d.drill.as_deref() == Some(run_id.as_str()))
        .unwrap_or_else(|| panic!("the killed drill was swept: {summary:#?}"));
    assert!(
        swept.left.is_empty() && swept.failed.is_empty(),
        "{swept:#?}"
    );
    let left = tagged(region, &format!("{env}-drill-")).await;
    assert!(left.is_empty(), "left behind: {left:#?}");
}

#[tokio::test]
async fn a_drills_baked_image_and_its_snapshots_carry_its_lifetime_and_are_swept() {
    let region = "ap-southeast-1";
    let env = "sweep-image";
    let repo = bake_repo(env, region, "# an image of its own", "never");
    let state = tempfile::tempdir().unwrap();
    let mut cmd = drctl_at(repo.root(), state.path(), moto_endpoint());
    let (code, text) = crate::support::outcome(cmd.args(["drill", "bake", "--rebake"]));
    assert_eq!(code, Some(0), "{text}");
    let (ec2, _) = clients(region).await;
    let images = ec2
        .describe_images()
        .owners("self")
        .filters(
            Filter::builder()
                .name("tag:drctl:env")
                .values(format!("{env}-drill-*"))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let image = images.images().first().expect("the drill's image is left");
    let image_tags: BTreeMap<&str, &str> = image
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    let drill_id = image_tags.get("drctl:drill").copied().expect("drctl:drill");
    assert!(image_tags.contains_key("drctl:expires"), "{image_tags:?}");
    let snapshots: Vec<&str> = image
        .block_device_mappings()
        .iter()
        .filter_map(|m| m.ebs()?.snapshot_id())
        .collect();
    assert!(!snapshots.is_empty());
    for snapshot in &snapshots {
        let found = ec2
            .describe_snapshots()
            .snapshot_ids(*snapshot)
            .send()
            .await
            .unwrap();
        let tags: BTreeMap<&str, &str> = found.snapshots()[0]
            .tags()
            .iter()
            .map(|t| (t.key().unwrap(), t.value().unwrap()))
            .collect();
        assert_eq!(
            tags.get("drctl:drill"),
            Some(&drill_id),
            "{snapshot}: {tags:?}"
        );
        assert!(tags.contains_key("drctl:expires"), "{snapshot}: {tags:?}");
    }

    // Three hours on, a sweep deregisters the image and deletes its snapshots.
    let clock = ManualClock::at(SystemClock.now() + 3 * 3_600_000);
    let sink = Collect::default();
    let sweeper = tempfile::tempdir().unwrap();
    let mut sweeping = request(&repo, false);
    sweeping.runbooks = vec!["bake".into()];
    let summary = sweep(
        &ctx(sweeper.path(), &clock, &sink),
        &ConnectTo::moto(),
        &sweeping,
    )
    .await
    .expect("sweep");
    assert_eq!(summary.drills.len(), 1, "{summary:#?}");
    let left = ec2
        .describe_images()
        .image_ids(image.image_id().unwrap())
        .send()
        .await
        .map(|o| o.images().len())
        .unwrap_or(0);
    assert_eq!(left, 0, "the image is deregistered");
    let snapshots_left = ec2
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap()
        .snapshots()
        .iter()
        .filter(|s| snapshots.contains(&s.snapshot_id().unwrap_or_default()))
        .count();
    assert_eq!(snapshots_left, 0, "its snapshots are deleted");
    let after = tagged(region, &format!("{env}-drill-")).await;
    assert!(after.is_empty(), "left: {after:#?}");
}
