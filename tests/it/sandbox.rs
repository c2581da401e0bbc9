//! The sandbox's lifecycle: a tethered server dies with its owner; the
//! background one starts once, reports itself, and stops leaving no process.
//! And its stand-in for a builder's guest OS, which powers off an instance
//! whose script ends in drctl's power-off.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{InstanceStateName, ShutdownBehavior};
use drctl::cloud::AwsSettings;
use drctl::sandbox::{endpoint_answers, pid_alive, Sandbox, TetheredMoto};

use crate::support::{drctl, moto_endpoint, moto_venv, state_dir_sharing_venv};

#[test]
fn a_tethered_server_answers_and_is_gone_after_drop() {
    let dir = tempfile::tempdir().expect("temp dir");
    let moto = TetheredMoto::start(&moto_venv(), &dir.path().join("moto.log")).expect("start");
    assert!(endpoint_answers(moto.endpoint()), "{}", moto.endpoint());
    let (pid, endpoint) = (moto.pid(), moto.endpoint().to_string());
    drop(moto);
    assert!(!pid_alive(pid), "moto pid {pid} outlived its owner");
    assert!(!endpoint_answers(&endpoint));
}

#[test]
fn background_sandbox_start_status_stop_through_the_cli() {
    let state = state_dir_sharing_venv();
    let run = |args: &[&str]| {
        let out = drctl()
            .arg("--state-dir")
            .arg(state.path())
            .args(args)
            .output()
            .expect("run drctl");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, text) = run(&["sandbox", "start"]);
    assert_eq!(code, Some(0), "{text}");
    let status = Sandbox::new(state.path().join("sandbox"))
        .status()
        .expect("status")
        .expect("a sandbox runs after start");
    assert!(text.contains(&status.endpoint), "{text}");

    let (code, text) = run(&["sandbox", "status"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("EC2 answers:"), "{text}");

    let (code, text) = run(&["sandbox", "stop"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("sandbox stopped"), "{text}");
    assert!(
        !pid_alive(status.pid),
        "moto pid {} still runs after stop",
        status.pid
    );
    assert!(!endpoint_answers(&status.endpoint));
    assert!(!Path::new(&state.path().join("sandbox/sandbox.json")).exists());

    let (code, text) = run(&["sandbox", "status"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("no sandbox running"), "{text}");
}

/// What drctl appends to a builder's script: the contract with the sandbox's
/// guest emulation in `moto_launcher.py`.
const POWER_OFF: &str = "\n# drctl: provisioning finished; power off so the image is taken from a stopped disk\nshutdown -h now\n";

async fn launch(
    ec2: &aws_sdk_ec2::Client,
    script: &str,
    on_shutdown: Option<ShutdownBehavior>,
) -> String {
    let out = ec2
        .run_instances()
        .image_id("ami-1e749f67")
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .user_data(aws_smithy_types::base64::encode(script))
        .set_instance_initiated_shutdown_behavior(on_shutdown)
        .send()
        .await
        .expect("run instances");
    out.instances()[0]
        .instance_id()
        .expect("instance id")
        .to_string()
}

/// Instance id -> (state, state reason code, state reason message).
async fn states(
    ec2: &aws_sdk_ec2::Client,
    ids: &[&str],
) -> BTreeMap<String, (InstanceStateName, String, String)> {
    let out = ec2
        .describe_instances()
        .set_instance_ids(Some(ids.iter().map(|id| id.to_string()).collect()))
        .send()
        .await
        .expect("describe instances");
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| {
            let reason = i.state_reason();
            (
                i.instance_id().expect("instance id").to_string(),
                (
                    i.state()
                        .and_then(|s| s.name())
                        .expect("instance state")
                        .clone(),
                    reason
                        .and_then(|r| r.code())
                        .unwrap_or_default()
                        .to_string(),
                    reason
                        .and_then(|r| r.message())
                        .unwrap_or_default()
                        .to_string(),
                ),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_sandbox_guest_powers_off_a_builder_once_its_script_has_run() {
    let config = AwsSettings::sandbox(moto_endpoint(), "sa-east-1")
        .load()
        .await;
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let launched = Instant::now();
    // Launched before the builders, so the scan that powers a builder off
    // has seen these too.
    let plain = launch(&ec2, "#!/bin/sh\necho serving\nshutdown -h now\n", None).await;
    let never = launch(
        &ec2,
        &format!("#!/bin/sh\n# drctl-sandbox: never-finish\n{POWER_OFF}"),
        None,
    )
    .await;
    let builder = launch(
        &ec2,
        &format!("#!/bin/sh\necho provisioned\n{POWER_OFF}"),
        None,
    )
    .await;
    let terminating = launch(
        &ec2,
        &format!("#!/bin/sh\n{POWER_OFF}"),
        Some(ShutdownBehavior::Terminate),
    )
    .await;
    let ids = [plain.as_str(), &never, &builder, &terminating];

    // The guest powers off after about a second; ten allow for a loaded
    // machine. Those that must stay running are watched for over 3 s.
    let deadline = launched + Duration::from_secs(10);
    let watch = Duration::from_millis(3500);
    let seen = loop {
        let seen = states(&ec2, &ids).await;
        for id in [&plain, &never] {
            assert_eq!(seen[id].0, InstanceStateName::Running, "{id}: {seen:?}");
        }
        if seen[&builder].0 == InstanceStateName::Stopped
            && seen[&terminating].0 == InstanceStateName::Terminated
            && launched.elapsed() > watch
        {
            break seen;
        }
        assert!(
            Instant::now() < deadline,
            "the builders did not power off within {deadline:?}: {seen:?}",
            deadline = deadline - launched
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for id in [&builder, &terminating] {
        assert_eq!(seen[id].1, "Client.InstanceInitiatedShutdown", "{seen:?}");
        assert_eq!(
            seen[id].2, "Client.InstanceInitiatedShutdown: Instance initiated shutdown",
            "{seen:?}"
        );
    }

    ec2.terminate_instances()
        .set_instance_ids(Some(ids.iter().map(|id| id.to_string()).collect()))
        .send()
        .await
        .expect("terminate");
}
