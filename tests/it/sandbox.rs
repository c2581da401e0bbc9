//! The sandbox's lifecycle: a tethered server dies with its owner; the
//! background one starts once, reports itself, and stops leaving no process.

use std::path::Path;

use drctl::sandbox::{endpoint_answers, pid_alive, Sandbox, TetheredMoto};

use crate::support::{drctl, moto_venv, state_dir_sharing_venv};

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
