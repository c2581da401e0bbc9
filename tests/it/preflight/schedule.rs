//! A runbook's `[preflight] schedule`: listed, run by `schedule run` at its
//! fire as `drctl preflight RUNBOOK` (its verdict logged, a failing one told
//! to the webhooks), beside the drill's schedule and kept apart from it.

use serde_json::Value;

use super::{assert_nothing_created, fleet, inventory, notifying, STOCK_IMAGE};
use crate::notify::Receiver;
use crate::proxy::{FaultProxy, Faults};
use crate::support::drctl_at;

/// An image id no region has.
const MISSING_IMAGE: &str = "ami-0badc0ffee0000000";

#[tokio::test]
async fn a_scheduled_preflight_runs_at_its_fire_and_a_failing_one_is_told() {
    let region = "ap-southeast-7";
    let repo = fleet("pf-sched", region, "t3.micro");
    repo.edit("stacks/fleet.toml", |text| {
        text.replace(STOCK_IMAGE, MISSING_IMAGE)
    });
    repo.edit("runbooks/rb.toml", |text| {
        format!("schedule = \"0 4 * * SAT\"\n{text}\n[preflight]\nschedule = \"0 * * * *\"\n")
    });
    let receiver = Receiver::start(0);
    notifying(&repo, &receiver);
    let proxy = FaultProxy::moto(Faults::none());
    let before = inventory(region).await;
    let state = tempfile::tempdir().unwrap();
    let drctl = |args: &[&str]| {
        let out = drctl_at(repo.root(), state.path(), proxy.url())
            .args(args)
            .output()
            .expect("run drctl");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };

    let (code, listed, stderr) = drctl(&["schedule", "list", "--now", "2026-03-07T12:00:00Z"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        listed.contains("\nrb: \"0 4 * * SAT\" in UTC\n"),
        "{listed}"
    );
    assert!(
        listed.contains(
            "\nrb (preflight): \"0 * * * *\" in UTC\n  Sat 2026-03-07 13:00 UTC (+00:00)   2026-03-07T13:00:00Z\n"
        ),
        "{listed}"
    );
    let (code, due, stderr) = drctl(&[
        "schedule",
        "due",
        "rb",
        "--preflight",
        "--trigger",
        "0 * * * *",
        "--now",
        "2026-03-07T13:02:00Z",
    ]);
    assert_eq!((code, due.as_str()), (Some(0), "due=true\n"), "{stderr}");

    // First seen at 12:00: earlier fires are not made up for.
    let daemon = ["--log-format", "json", "schedule", "run", "--once", "--now"];
    let (code, log, stderr) = drctl(&[&daemon[..], &["2026-03-07T12:00:00Z"]].concat());
    assert_eq!(code, Some(0), "{log}{stderr}");
    assert!(!log.contains("preflight_started"), "{log}");
    // At 13:30 the 13:00 preflight is due (and no drill): it runs, fails.
    let (code, log, stderr) = drctl(&[&daemon[..], &["2026-03-07T13:30:00Z"]].concat());
    assert_eq!(code, Some(1), "{log}{stderr}");
    let events: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(
        names,
        [
            "watching",
            "preflight_started",
            "preflight_report",
            "preflight_finished",
            "stopped"
        ],
        "{log}"
    );
    let watched = &events[0]["runbooks"];
    assert_eq!(
        (watched[0]["job"].as_str(), watched[1]["job"].as_str()),
        (Some("drill"), Some("preflight"))
    );
    assert_eq!(events[1]["fire"], "2026-03-07T13:00:00+00:00[UTC]");
    let report = &events[2]["report"];
    assert_eq!(
        (report["region"].as_str(), report["verdict"].as_str()),
        (Some(region), Some("fail"))
    );
    assert_eq!(
        (
            events[3]["verdict"].as_str(),
            events[3]["exit_code"].as_i64()
        ),
        (Some("failed"), Some(1))
    );
    let told = receiver.events("preflight_failed");
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0]["run_id"], report["id"]);
    let failed: Vec<&str> = told[0]["failed"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        failed
            .iter()
            .any(|f| f.starts_with(&format!("images {MISSING_IMAGE}: "))),
        "{failed:?}"
    );
    let state: Value = serde_json::from_slice(
        &std::fs::read(state.path().join("schedule/state.json")).expect("state written"),
    )
    .unwrap();
    let last = &state["runbooks"]["rb+preflight"]["last_run"];
    assert_eq!(last["verdict"], "failed", "{state:#}");
    assert!(state["runbooks"]["rb"]["last_run"].is_null(), "{state:#}");
    assert_nothing_created(&proxy, region, &before).await;
}
