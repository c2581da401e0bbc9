//! The daemon's choices (what is due, in which order) and its life with a
//! stand-in drill: `sh -c SCRIPT sh drill RUNBOOK`, which exits as told.

use std::sync::Mutex;

use super::*;
use crate::clock::ManualClock;
use crate::schedule::state::RunbookState;
use crate::schedule::tests::{scheduled, ts};
use std::path::Path;

fn handled(state: &mut State, runbook: &str, through: &str) {
    state.runbooks.insert(
        runbook.to_string(),
        RunbookState {
            handled_through: ts(through),
            last_run: None,
        },
    );
}

/// A config whose drill is `sh -c script`.
fn config(state_dir: &Path, scheduled: Vec<Scheduled>, script: &str, once: bool) -> Config {
    Config {
        scheduled,
        store: crate::store::local(state_dir),
        drill: DrillCommand {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into(), "sh".into()],
        },
        once,
        standby_retry: Duration::from_millis(20),
    }
}

/// A config of runbook `rb`, drilled daily at 04:00 UTC by `sh -c script`.
fn daily_rb(state_dir: &Path, script: &str, once: bool) -> Config {
    config(
        state_dir,
        vec![scheduled("rb", "0 4 * * *", "UTC")],
        script,
        once,
    )
}

/// Runs the daemon to its end, with the clock at `now`; returns its events.
async fn run_at(
    config: &Config,
    now: &str,
    stop: &mut mpsc::UnboundedReceiver<StopSignal>,
) -> (Summary, Vec<Event>) {
    let events = Mutex::new(Vec::new());
    let clock = ManualClock::at(ts(now).as_millisecond());
    let summary = run(config, &clock, stop, &|_, e: &Event| {
        events.lock().unwrap().push(e.clone())
    })
    .await
    .expect("the daemon runs");
    (summary, events.into_inner().unwrap())
}

fn names(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(
            |e| match serde_json::to_value(e).unwrap()["event"].as_str() {
                Some(name) => name.to_string(),
                None => unreachable!("every event is tagged"),
            },
        )
        .collect()
}

#[test]
fn due_runs_come_oldest_fire_first_and_one_per_runbook() {
    let all = [
        scheduled("daily", "0 4 * * *", "UTC"),
        scheduled("weekly", "0 3 * * MON", "Europe/Berlin"),
        scheduled("later", "0 23 * * *", "UTC"),
    ];
    let mut state = State::default();
    handled(&mut state, "daily", "2026-06-01T05:00:00Z");
    handled(&mut state, "weekly", "2026-05-31T00:00:00Z");
    handled(&mut state, "later", "2026-06-03T23:00:00Z");
    let due = due_runs(&all, &state, ts("2026-06-04T12:00:00Z"));
    let summary: Vec<_> = due
        .iter()
        .map(|(s, d)| (s.runbook.as_str(), d.count, d.newest.at.to_string()))
        .collect();
    assert_eq!(
        summary,
        [
            // Monday 2026-06-01 03:00 in Berlin is 01:00Z: the oldest.
            (
                "weekly",
                1,
                "2026-06-01T03:00:00+02:00[Europe/Berlin]".to_string()
            ),
            // Three missed daily fires, one run.
            ("daily", 3, "2026-06-04T04:00:00+00:00[UTC]".to_string()),
        ]
    );
    let (next, at) = next_fire(&all, ts("2026-06-04T12:00:00Z")).expect("a next fire");
    assert_eq!(
        (next.runbook.as_str(), at.to_string().as_str()),
        ("later", "2026-06-04T23:00:00+00:00[UTC]")
    );
}

#[tokio::test]
async fn a_first_start_misses_nothing_and_writes_its_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        vec![scheduled("rb", "0 4 * * *", "UTC")],
        "exit 0",
        true,
    );
    let (_tx, mut stop) = mpsc::unbounded_channel();
    let (summary, events) = run_at(&config, "2026-06-04T12:00:00Z", &mut stop).await;
    assert_eq!(summary, Summary::default());
    assert_eq!(names(&events), ["watching", "stopped"]);
    let state = state::load(&crate::store::LocalStore::new(dir.path())).unwrap();
    assert_eq!(
        state.runbooks["rb"].handled_through,
        ts("2026-06-04T12:00:00Z")
    );
}

#[tokio::test]
async fn missed_fires_run_once_and_the_verdict_is_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports/rb");
    std::fs::create_dir_all(&reports).unwrap();
    // The stand-in drill writes its report, named by the run id it was
    // given, and fails. Another report beside it is not the drill's.
    std::fs::write(reports.join("99991231T235959-ffff.json"), "{}").unwrap();
    let script = format!(
        "test \"$1 $2 $3\" = 'drill rb --run-id' || exit 9; echo '{{}}' > '{}/'\"$4\".json; exit 1",
        reports.display()
    );
    let config = config(
        dir.path(),
        vec![scheduled("rb", "0 4 * * *", "UTC")],
        &script,
        true,
    );
    let mut state = State::default();
    handled(&mut state, "rb", "2026-06-01T05:00:00Z");
    state::save(&crate::store::LocalStore::new(dir.path()), &state).unwrap();

    let (_tx, mut stop) = mpsc::unbounded_channel();
    let (summary, events) = run_at(&config, "2026-06-04T12:00:00Z", &mut stop).await;
    assert_eq!(
        names(&events),
        ["watching", "drill_started", "drill_finished", "stopped"]
    );
    assert_eq!(
        summary,
        Summary {
            ran: 1,
            not_passed: 1,
            stopped: false
        }
    );
    let Event::DrillStarted {
        fires,
        fire,
        run_id,
        ..
    } = &events[1]
    else {
        unreachable!()
    };
    assert_eq!(
        (*fires, fire.as_str()),
        (3, "2026-06-04T04:00:00+00:00[UTC]")
    );
    let Event::DrillFinished {
        verdict,
        exit_code,
        report,
        ..
    } = &events[2]
    else {
        unreachable!()
    };
    assert_eq!((*verdict, *exit_code), (Verdict::Failed, Some(1)));
    assert!(run_id.starts_with("20260604T120000-"), "{run_id}");
    assert_eq!(
        report.as_deref(),
        Some(reports.join(format!("{run_id}.json")).as_path())
    );

    let state = state::load(&crate::store::LocalStore::new(dir.path())).unwrap();
    let rb = &state.runbooks["rb"];
    assert_eq!(rb.handled_through, ts("2026-06-04T04:00:00Z"));
    let last = rb.last_run.as_ref().expect("a last run");
    assert_eq!(
        (last.fires, last.verdict, last.exit_code),
        (3, Some(Verdict::Failed), Some(1))
    );

    // Started again at the same time: nothing is due any more.
    let (summary, events) = run_at(&config, "2026-06-04T12:00:00Z", &mut stop).await;
    assert_eq!((summary.ran, names(&events).len()), (0, 2));
}

#[tokio::test]
async fn a_stop_during_a_drill_tears_it_down_and_ends_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let started = dir.path().join("started");
    let torn_down = dir.path().join("torn-down");
    let script = format!(
        "trap 'touch {}; exit 1' TERM; touch {}; while :; do sleep 0.05; done",
        torn_down.display(),
        started.display()
    );
    let config = config(
        dir.path(),
        vec![scheduled("rb", "0 4 * * *", "UTC")],
        &script,
        false,
    );
    let mut state = State::default();
    handled(&mut state, "rb", "2026-06-03T05:00:00Z");
    state::save(&crate::store::LocalStore::new(dir.path()), &state).unwrap();

    let (tx, mut stop) = mpsc::unbounded_channel();
    let signaller = tokio::spawn(async move {
        while !started.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tx.send(StopSignal::Term).unwrap();
        tx
    });
    let (summary, events) = run_at(&config, "2026-06-04T12:00:00Z", &mut stop).await;
    drop(signaller.await);
    assert!(torn_down.exists(), "the drill got SIGTERM and tore down");
    assert_eq!(
        names(&events),
        [
            "watching",
            "drill_started",
            "stopping",
            "drill_finished",
            "stopped"
        ]
    );
    assert!(summary.stopped);
    let Event::Stopping { in_flight, signal } = &events[2] else {
        unreachable!()
    };
    assert_eq!(
        (in_flight.as_deref(), *signal),
        (Some("rb"), StopSignal::Term)
    );
}

#[tokio::test]
async fn a_stop_while_waiting_ends_the_daemon_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        vec![scheduled("rb", "0 4 * * *", "UTC")],
        "exit 0",
        false,
    );
    let (tx, mut stop) = mpsc::unbounded_channel();
    tx.send(StopSignal::Interrupt).unwrap();
    let (summary, events) = run_at(&config, "2026-06-04T12:00:00Z", &mut stop).await;
    assert_eq!(
        names(&events),
        ["watching", "waiting", "stopping", "stopped"]
    );
    assert_eq!(summary.ran, 0);
    let Event::Waiting { fire, .. } = &events[1] else {
        unreachable!()
    };
    assert_eq!(fire, "2026-06-05T04:00:00+00:00[UTC]");
}

#[test]
fn a_second_daemon_on_one_state_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::LocalStore::new(dir.path());
    let _held = lock(&store).expect("the first takes the lock");
    let err = lock(&store).expect_err("the second is refused");
    assert!(matches!(err, ScheduleError::Busy { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
}

#[tokio::test]
async fn a_fire_claimed_elsewhere_is_not_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let ran = dir.path().join("ran");
    let script = format!("touch '{}'", ran.display());
    let config = daily_rb(dir.path(), &script, true);
    let store = crate::store::LocalStore::new(dir.path());
    let mut state = State::default();
    handled(&mut state, "rb", "2026-06-03T05:00:00Z");
    state::save(&store, &state).unwrap();
    // A CronJob's `drill --scheduled` took this fire first.
    let fire = ts("2026-06-04T04:00:00Z").as_millisecond();
    let claimed = state::claim_fire(&store, "rb", fire, "20260604T040001-cron").unwrap();
    assert_eq!(claimed, state::FireClaim::Ours);

    let (_tx, mut stop) = mpsc::unbounded_channel();
    let (summary, events) = run_at(&config, "2026-06-04T12:00:00Z", &mut stop).await;
    assert_eq!(names(&events), ["watching", "fire_taken", "stopped"]);
    let Event::FireTaken { by, .. } = &events[1] else {
        unreachable!()
    };
    assert!(by.starts_with("run 20260604T040001-cron by "), "{by}");
    assert_eq!(summary.ran, 0);
    assert!(!ran.exists(), "the drill did not run");
    let state = state::load(&store).unwrap();
    assert_eq!(
        state.runbooks["rb"].handled_through,
        ts("2026-06-04T04:00:00Z")
    );
}

#[tokio::test]
async fn a_second_daemon_stands_by_and_takes_over_when_the_first_ends() {
    let dir = tempfile::tempdir().unwrap();
    let config = daily_rb(dir.path(), "exit 0", false);
    let store = crate::store::LocalStore::new(dir.path());
    let first = lock(&store).expect("the first daemon's lock");
    let events = Mutex::new(Vec::new());
    let (tx, mut stop) = mpsc::unbounded_channel();
    let clock = ManualClock::at(ts("2026-06-04T12:00:00Z").as_millisecond());
    let log = |_, e: &Event| events.lock().unwrap().push(e.clone());
    let second = run(&config, &clock, &mut stop, &log);
    let logged = |name: &str| names(&events.lock().unwrap()).contains(&name.to_string());
    // The first daemon ends once the second stands by; the test stops the
    // second once it has taken over.
    let first_ends = async {
        while !logged("standby") {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(!logged("watching"), "it runs nothing while the first does");
        drop(first);
        while !logged("waiting") {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tx.send(StopSignal::Term).unwrap();
    };
    let (summary, ()) = tokio::join!(second, first_ends);
    assert!(summary.expect("the daemon runs").stopped);
    assert_eq!(
        names(&events.lock().unwrap()),
        ["standby", "watching", "waiting", "stopping", "stopped"]
    );
}

#[tokio::test]
async fn a_daemon_standing_by_stops_when_told() {
    let dir = tempfile::tempdir().unwrap();
    let config = daily_rb(dir.path(), "exit 0", false);
    let _first = lock(&crate::store::LocalStore::new(dir.path())).unwrap();
    let (tx, mut stop) = mpsc::unbounded_channel();
    tx.send(StopSignal::Interrupt).unwrap();
    let (summary, events) = run_at(&config, "2026-06-04T12:00:00Z", &mut stop).await;
    assert_eq!(names(&events), ["standby", "stopping", "stopped"]);
    assert!(summary.stopped);
}
