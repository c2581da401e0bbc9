//! Image bakes that fail or are stopped against moto: a builder that
//! cannot launch, a script that never powers off, a CreateImage error, a
//! kill -9 mid-bake and a Ctrl-C. Each leaves no builder running and no
//! half-made image; a killed bake resumes on the same builder.

use std::time::{Duration, Instant};

use crate::bake::{calls, images, live_builders, only_image, Bake, REGION};
use crate::proxy::{Fault, FaultProxy, Faults};
use crate::support::{first_run_id, moto_endpoint};

/// After a failed bake: the run failed, no builder is left, no image at all.
async fn failed_cleanly(env: &str, code: Option<i32>, text: &str, why: &str) {
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains(why), "expected {why:?} in\n{text}");
    assert!(
        live_builders(env).await.is_empty(),
        "a builder was left: {text}"
    );
    let left = images(env, REGION).await;
    assert!(left.is_empty(), "an image was left: {left:#?}");
}

#[tokio::test]
async fn a_builder_that_cannot_launch_fails_the_bake_cleanly() {
    let bake = Bake::new("bake-nolaunch", "");
    bake.apply(moto_endpoint()); // the network, and a first image
    bake.script("echo v2");
    let first = only_image("bake-nolaunch").await;
    let faults = Faults::none().nth(
        "RunInstances",
        1,
        Fault::Error("InsufficientInstanceCapacity".into()),
    );
    let proxy = FaultProxy::moto(faults);
    let (code, text) = bake.run(proxy.url(), &["apply", "bake", "--auto-approve"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("InsufficientInstanceCapacity"), "{text}");
    assert!(live_builders("bake-nolaunch").await.is_empty());
    assert_eq!(
        only_image("bake-nolaunch").await,
        first,
        "nothing half-made"
    );
}

#[tokio::test]
async fn a_script_that_never_powers_off_times_out_and_its_builder_goes() {
    let bake = Bake::new("bake-timeout", "bake_timeout = \"3s\"");
    bake.script("# drctl-sandbox: never-finish\nsleep infinity");
    let (code, text) = bake.run(moto_endpoint(), &["apply", "bake", "--auto-approve"]);
    failed_cleanly(
        "bake-timeout",
        code,
        &text,
        "provisioning did not finish within bake_timeout",
    )
    .await;
}

#[tokio::test]
async fn a_create_image_error_terminates_the_builder_and_leaves_no_image() {
    let bake = Bake::new("bake-noimage", "");
    let faults = Faults::none().nth(
        "CreateImage",
        1,
        Fault::Error("InvalidParameterValue".into()),
    );
    let proxy = FaultProxy::moto(faults);
    let (code, text) = bake.run(proxy.url(), &["apply", "bake", "--auto-approve"]);
    failed_cleanly(
        "bake-noimage",
        code,
        &text,
        "CreateImage failed (InvalidParameterValue)",
    )
    .await;
    // The next apply bakes it properly.
    bake.apply(moto_endpoint());
    only_image("bake-noimage").await;
}

#[tokio::test]
async fn a_bake_killed_mid_way_resumes_on_the_same_builder() {
    let bake = Bake::new("bake-kill", "");
    let proxy = FaultProxy::moto(Faults::none());
    let mut child = bake
        .command(proxy.url(), &["apply", "bake", "--auto-approve"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let builder = first_builder("bake-kill").await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        images("bake-kill", REGION).await.is_empty(),
        "killed before imaging"
    );

    proxy.reset_counts();
    let run_id = first_run_id(bake.state.path());
    let (code, text) = bake.run(proxy.url(), &["resume", &run_id]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!(
            "continues the interrupted bake on builder {builder}"
        )),
        "{text}"
    );
    assert_eq!(
        calls(&proxy, "ec2:RunInstances"),
        0,
        "{:?}",
        proxy.by_action()
    );
    assert_eq!(calls(&proxy, "ec2:CreateImage"), 1);
    let image = only_image("bake-kill").await;
    let tags = &images("bake-kill", REGION).await[&image].1;
    assert_eq!(tags["drctl:builder"], builder);
    assert!(live_builders("bake-kill").await.is_empty());
}

#[tokio::test]
async fn ctrl_c_during_a_bake_terminates_its_builder() {
    let bake = Bake::new("bake-ctrl-c", "bake_timeout = \"10m\"");
    bake.script("# drctl-sandbox: never-finish\nsleep infinity");
    let child = bake
        .command(moto_endpoint(), &["apply", "bake", "--auto-approve"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    first_builder("bake-ctrl-c").await;
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("the bake is abandoned and its builder terminated"),
        "{text}"
    );
    assert!(live_builders("bake-ctrl-c").await.is_empty(), "{text}");
    assert!(images("bake-ctrl-c", REGION).await.is_empty());
}

/// The first builder instance of `env`'s bake, once one runs (60 s at most).
async fn first_builder(env: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(builder) = live_builders(env).await.pop() {
            return builder;
        }
        assert!(Instant::now() < deadline, "no builder appeared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
