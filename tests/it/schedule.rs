//! `drctl schedule`: fire times shown, files exported, the daemon's state
//! and its stop, through the built binary. No test waits on a clock: the
//! time comes from `--now`.

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;

use crate::support::{drctl, Repo, RUNBOOK};

/// The fixture repository with its runbook scheduled as given.
fn scheduled_repo(schedule: &str, timezone: &str) -> Repo {
    Repo::with(&[(
        "runbooks/rb.toml",
        &format!("schedule = \"{schedule}\"\ntimezone = \"{timezone}\"\n{RUNBOOK}"),
    )])
}

fn run(repo: &Repo, args: &[&str]) -> (Option<i32>, String, String) {
    crate::support::run_in_repo(repo, args)
}

#[test]
fn list_shows_the_next_fires_in_the_zone_and_in_utc_across_the_spring_gap() {
    let repo = scheduled_repo("30 2 * * *", "America/New_York");
    let (code, stdout, stderr) = run(
        &repo,
        &["schedule", "list", "--now", "2026-03-07T12:00:00Z"],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "Next fire times after 2026-03-07T12:00:00Z, in each runbook's time zone and in UTC:\n\
         \n\
         rb: \"30 2 * * *\" in America/New_York\n\
         \x20 Sun 2026-03-08 03:00 EDT (-04:00)   2026-03-08T07:00:00Z  \
         (02:30 does not exist that day, clocks go forward: runs after the gap)\n\
         \x20 Mon 2026-03-09 02:30 EDT (-04:00)   2026-03-09T06:30:00Z\n\
         \x20 Tue 2026-03-10 02:30 EDT (-04:00)   2026-03-10T06:30:00Z\n"
    );
}

#[test]
fn list_marks_the_fold_and_names_runbooks_without_a_schedule() {
    let repo = scheduled_repo("30 1 * * SUN", "America/New_York");
    repo.write(
        "runbooks/other.toml",
        "environment = \"other\"\nregion = \"us-east-1\"\nstacks = [\"net\"]\n",
    );
    let (code, stdout, stderr) = run(
        &repo,
        &["schedule", "list", "--now", "2026-10-30T00:00:00Z"],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains(
            "  Sun 2026-11-01 01:30 EDT (-04:00)   2026-11-01T05:30:00Z  \
             (01:30 happens twice that day, clocks go back: runs the first time only)\n\
             \x20 Sun 2026-11-08 01:30 EST (-05:00)   2026-11-08T06:30:00Z\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("\nWithout a schedule: other\n"),
        "{stdout}"
    );
}

#[test]
fn a_bad_now_is_a_usage_error() {
    let repo = scheduled_repo("0 4 * * SAT", "UTC");
    let (code, _, stderr) = run(&repo, &["schedule", "list", "--now", "next saturday"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("expected an RFC 3339 time"), "{stderr}");
}

#[test]
fn export_writes_systemd_units_that_read_back() {
    let repo = scheduled_repo("0 4 * * SAT", "Europe/Berlin");
    let out = repo.path("units");
    let (code, stdout, stderr) = run(
        &repo,
        &[
            "schedule",
            "export",
            "--systemd",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("drctl-drill-rb.timer"), "{stdout}");
    let timer = std::fs::read_to_string(out.join("drctl-drill-rb.timer")).expect("timer written");
    let keys: Vec<&str> = timer
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .collect();
    assert!(
        keys.contains(&"OnCalendar=Sat *-*-* 04:00:00 Europe/Berlin"),
        "{timer}"
    );
    assert!(keys.contains(&"Persistent=true"), "{timer}");
    let service =
        std::fs::read_to_string(out.join("drctl-drill-rb.service")).expect("service written");
    let root = repo.root().canonicalize().unwrap();
    let exec = format!(
        "ExecStart={} --root {} drill rb --scheduled",
        env!("CARGO_BIN_EXE_drctl"),
        root.display()
    );
    assert!(service.lines().any(|l| l == exec), "{exec}\n{service}");
}

#[test]
fn export_prints_each_format_with_file_headers() {
    let repo = scheduled_repo("0 4 * * SAT", "Europe/Berlin");
    let (code, stdout, stderr) = run(&repo, &["schedule", "export", "--cron"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.starts_with("# file: drctl-drills.crontab\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\nCRON_TZ=Europe/Berlin\n0 4 * * 6 cd "),
        "{stdout}"
    );
    assert!(
        stdout.trim_end().ends_with(" drill rb --scheduled"),
        "{stdout}"
    );

    let (code, stdout, stderr) = run(
        &repo,
        &[
            "schedule",
            "export",
            "--kubernetes",
            "--image",
            "example/drctl:1",
            "rb",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.starts_with("# file: drctl-drill-rb.yaml\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  timeZone: \"Europe/Berlin\"\n"),
        "{stdout}"
    );

    let (code, stdout, stderr) = run(&repo, &["schedule", "export", "--github-actions"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.starts_with("# file: drctl-drill-rb.yml\n"),
        "{stdout}"
    );
    assert!(stdout.contains("    - cron: \"0 3 * * 6\""), "{stdout}");
    assert!(stdout.contains("    - cron: \"0 2 * * 6\""), "{stdout}");
}

#[test]
fn export_refuses_what_the_scheduler_cannot_express_and_needs_a_format() {
    let repo = scheduled_repo("0 4 13 * FRI", "UTC");
    let (code, _, stderr) = run(&repo, &["schedule", "export", "--systemd"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot export the schedule of runbook rb (`0 4 13 * FRI`) for systemd"),
        "{stderr}"
    );
    let (code, _, stderr) = run(&repo, &["schedule", "export"]);
    assert_eq!(code, Some(2), "{stderr}");
    let (code, _, stderr) = run(&repo, &["schedule", "export", "--kubernetes"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--image"), "{stderr}");
}

#[test]
fn the_github_gate_passes_one_trigger_per_fire() {
    let repo = scheduled_repo("0 4 * * SAT", "Europe/Berlin");
    // 2026-03-07 is a Saturday in winter (+01:00): 03:00Z is the fire.
    for (trigger, expected) in [("0 3 * * 6", "due=true\n"), ("0 2 * * 6", "due=false\n")] {
        let (code, stdout, stderr) = run(
            &repo,
            &[
                "schedule",
                "due",
                "rb",
                "--trigger",
                trigger,
                "--now",
                "2026-03-07T03:09:00Z",
            ],
        );
        assert_eq!(code, Some(0), "{stderr}");
        assert_eq!(stdout, expected, "{trigger}");
    }
}

#[test]
fn run_once_with_nothing_due_runs_nothing_and_records_its_start() {
    let repo = scheduled_repo("0 4 * * SAT", "UTC");
    let (code, stdout, stderr) = run(
        &repo,
        &["schedule", "run", "--once", "--now", "2026-03-07T12:00:00Z"],
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "rb: \"0 4 * * SAT\" in UTC, next Sat 2026-03-14 04:00 UTC (+00:00) (first seen"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("drill rb started"), "{stdout}");
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo.path(".drctl/schedule/state.json")).expect("state written"),
    )
    .unwrap();
    // The clock started at --now and ran on for as long as the start took.
    let baseline: jiff::Timestamp = state["runbooks"]["rb"]["handled_through"]
        .as_str()
        .expect("a time")
        .parse()
        .expect("RFC 3339");
    let now: jiff::Timestamp = "2026-03-07T12:00:00Z".parse().unwrap();
    let since_now = baseline.as_second() - now.as_second();
    assert!((0..60).contains(&since_now), "{baseline}");
}

#[test]
fn run_without_any_schedule_is_a_usage_error() {
    let repo = Repo::with(&[]);
    let (code, _, stderr) = run(&repo, &["schedule", "run", "--once"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("has a schedule"), "{stderr}");
}

#[test]
fn the_daemon_stops_cleanly_on_sigterm_while_it_waits() {
    let repo = scheduled_repo("0 4 * * SAT", "UTC");
    let mut child = drctl()
        .current_dir(repo.root())
        .env_remove("DRCTL_STATE_DIR")
        .args(["--state-dir", repo.path(".drctl").to_str().unwrap()])
        .args([
            "--log-format",
            "json",
            "schedule",
            "run",
            "--now",
            "2026-03-07T12:00:00Z",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the daemon");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("a line");
        let event: serde_json::Value = serde_json::from_str(&line).expect("JSON lines");
        seen.push(event["event"].as_str().unwrap_or_default().to_string());
        if event["event"] == "waiting" {
            assert_eq!(event["fire"], "2026-03-14T04:00:00+00:00[UTC]");
            break;
        }
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("a pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    seen.extend(lines.map(|l| {
        let event: serde_json::Value = serde_json::from_str(&l.unwrap()).unwrap();
        event["event"].as_str().unwrap_or_default().to_string()
    }));
    let status = child.wait().expect("the daemon ends");
    assert_eq!(status.code(), Some(0));
    assert_eq!(seen, ["watching", "waiting", "stopping", "stopped"]);
}
