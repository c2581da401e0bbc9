//! `drctl schedule`: fire times shown, through the built binary. No test waits on a clock: the
//! time comes from `--now`.

use std::process::{Output, Stdio};

use crate::support::{drctl, Repo, RUNBOOK};

/// The fixture repository with its runbook scheduled as given.
fn scheduled_repo(schedule: &str, timezone: &str) -> Repo {
    Repo::with(&[(
        "runbooks/rb.toml",
        &format!("schedule = \"{schedule}\"\ntimezone = \"{timezone}\"\n{RUNBOOK}"),
    )])
}

fn run(repo: &Repo, args: &[&str]) -> (Option<i32>, String, String) {
    let out: Output = drctl()
        .current_dir(repo.root())
        .env_remove("DRCTL_STATE_DIR")
        .args(["--state-dir", repo.path(".drctl").to_str().unwrap()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run drctl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
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
