//! The workflow is parsed as YAML, its cron lines read back, and GitHub's
//! triggers replayed through the gate across a year: every fire time in
//! the zone runs exactly once, at the first trigger at or after it.

use yaml_rust2::{Yaml, YamlLoader};

use super::super::test_support::{export, options, scheduled};
use super::super::Format;
use super::*;
use crate::schedule::tests::ts;

fn workflow(expression: &str, tz: &str) -> Yaml {
    let files = export(Format::GithubActions, expression, tz).expect(expression);
    assert_eq!(files[0].name, "drctl-drill-web-dr.yml");
    let mut docs = YamlLoader::load_from_str(&files[0].content).expect("valid YAML");
    docs.remove(0)
}

fn crons(doc: &Yaml) -> Vec<String> {
    doc["on"]["schedule"]
        .as_vec()
        .expect("a schedule list")
        .iter()
        .map(|e| e["cron"].as_str().expect("a cron line").to_string())
        .collect()
}

fn step_names(doc: &Yaml) -> Vec<String> {
    doc["jobs"]["drill"]["steps"]
        .as_vec()
        .expect("steps")
        .iter()
        .map(|s| {
            s["name"]
                .as_str()
                .or(s["uses"].as_str())
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

fn lines(expression: &str, tz: &str) -> Result<Vec<String>, String> {
    let s = scheduled("web-dr", expression, tz);
    let fields = CronFields::of(&s.cron)?;
    Ok(utc_lines(&fields, &s.tz, options().now)?
        .into_iter()
        .map(|l| l.cron)
        .collect())
}

#[test]
fn a_zone_with_daylight_saving_gets_both_offsets_and_a_gate() {
    let doc = workflow("0 4 * * SAT", "Europe/Berlin");
    assert_eq!(doc["name"].as_str(), Some("drctl drill web-dr"));
    assert_eq!(crons(&doc), ["0 3 * * 6", "0 2 * * 6"]);
    assert!(
        !doc["on"]["workflow_dispatch"].is_badvalue(),
        "manual runs too"
    );
    assert_eq!(
        doc["concurrency"]["group"].as_str(),
        Some("drctl-drill-web-dr")
    );
    assert_eq!(
        doc["concurrency"]["cancel-in-progress"].as_bool(),
        Some(false)
    );
    assert_eq!(
        step_names(&doc),
        [
            "actions/checkout@v4",
            "Is a drill due in Europe/Berlin?",
            "Drill web-dr",
            "Keep the drill report"
        ]
    );
    let steps = doc["jobs"]["drill"]["steps"].as_vec().unwrap();
    assert_eq!(
        steps[1]["env"]["TRIGGER"].as_str(),
        Some("${{ github.event.schedule }}")
    );
    assert_eq!(
        steps[1]["run"].as_str(),
        Some("drctl schedule due web-dr --trigger \"$TRIGGER\" >> \"$GITHUB_OUTPUT\"")
    );
    assert_eq!(
        steps[2]["if"].as_str(),
        Some("github.event_name != 'schedule' || steps.due.outputs.due == 'true'")
    );
    assert_eq!(
        steps[2]["run"].as_str(),
        Some("drctl drill web-dr${{ github.event_name == 'schedule' && ' --scheduled' || '' }}")
    );
}

#[test]
fn a_zone_with_one_offset_needs_no_gate() {
    let doc = workflow("0 4 * * SAT", "UTC");
    assert_eq!(crons(&doc), ["0 4 * * 6"]);
    assert_eq!(
        step_names(&doc),
        [
            "actions/checkout@v4",
            "Drill web-dr",
            "Keep the drill report"
        ]
    );
    assert!(doc["jobs"]["drill"]["steps"][1]["if"].is_badvalue());
}

#[test]
fn times_that_cross_midnight_in_utc_move_their_weekdays() {
    // 00:30 on Monday in Berlin is Sunday evening in UTC.
    assert_eq!(
        lines("30 0 * * MON", "Europe/Berlin").unwrap(),
        ["30 23 * * 0", "30 22 * * 0"]
    );
    // Half-hour offsets split the minutes: 04:00 in Kolkata is 22:30 UTC the day before.
    assert_eq!(
        lines("0 4 * * MON", "Asia/Kolkata").unwrap(),
        ["30 22 * * 0"]
    );
    // A day spanning midnight UTC splits into a line per UTC day.
    assert_eq!(
        lines("0 0,12 * * SAT", "Asia/Tokyo").unwrap(),
        ["0 15 * * 5", "0 3 * * 6"]
    );
}

#[test]
fn what_a_utc_line_cannot_say_is_refused() {
    for (expression, tz, why) in [
        ("0 4 1 * *", "Australia/Sydney", "another day in UTC"),
        ("0 1 * JAN *", "Europe/Berlin", "another day in UTC"),
        ("*/2 * * * *", "UTC", "every 5 minutes"),
        ("0 4 13 * FRI", "UTC", "does not document"),
    ] {
        let err = lines(expression, tz).expect_err(expression);
        assert!(err.contains(why), "{expression} in {tz}: {err}");
    }
}

#[test]
fn an_unknown_trigger_is_an_error_listing_the_lines() {
    let s = scheduled("web-dr", "0 4 * * SAT", "Europe/Berlin");
    let err = due_at_trigger(&s, "0 5 * * 6", ts("2026-03-07T05:00:00Z")).expect_err("unknown");
    assert!(err.to_string().contains("0 3 * * 6, 0 2 * * 6"), "{err}");
}

/// Replays every trigger GitHub would start between `from` and `to`, each
/// `late` after its time, and returns the UTC instants whose run drilled.
fn replay(expression: &str, tz: &str, from: &str, to: &str, late: jiff::Span) -> Vec<Timestamp> {
    let s = scheduled("web-dr", expression, tz);
    let lines = lines(expression, tz).unwrap();
    let (from, to) = (
        TimeZone::UTC.to_datetime(ts(from)),
        TimeZone::UTC.to_datetime(ts(to)),
    );
    let mut triggers: Vec<(DateTime, &String)> = Vec::new();
    for line in &lines {
        let cron: croner::Cron = line.parse().unwrap();
        triggers.extend(
            cron.iter_after(from)
                .take_while(|t| *t <= to)
                .map(|t| (t, line)),
        );
    }
    triggers.sort();
    triggers
        .into_iter()
        .filter_map(|(at, line)| {
            let at = TimeZone::UTC.to_timestamp(at).unwrap();
            let now = at.checked_add(late).unwrap();
            due_at_trigger(&s, line, now).unwrap().then_some(at)
        })
        .collect()
}

/// Each fire between `from` and `to` runs once, at the first trigger at or
/// after it (the same instant, except in a gap).
fn assert_every_fire_runs_once(expression: &str, tz: &str, from: &str, to: &str) {
    let s = scheduled("web-dr", expression, tz);
    let expected: Vec<Timestamp> = fires(&s.cron, &s.tz, ts(from))
        .map(|f| f.at.timestamp())
        .take_while(|t| *t <= ts(to))
        .collect();
    assert!(!expected.is_empty());
    for late in [0.minutes(), 7.minutes()] {
        let ran = replay(expression, tz, from, to, late);
        assert_eq!(
            ran.len(),
            expected.len(),
            "{expression} in {tz}, {late} late: {ran:?}"
        );
        for (run, fire) in ran.iter().zip(&expected) {
            let behind = run.as_second() - fire.as_second();
            assert!(
                (0..3600).contains(&behind),
                "{expression} in {tz}: fire {fire}, run {run}"
            );
        }
    }
}

#[test]
fn replayed_triggers_run_each_fire_once_across_a_year_of_changes() {
    let year = ("2026-01-01T00:00:00Z", "2026-12-31T23:59:00Z");
    assert_every_fire_runs_once("30 2 * * *", "America/New_York", year.0, year.1);
    assert_every_fire_runs_once("30 1 * * *", "America/New_York", year.0, year.1);
    assert_every_fire_runs_once("0 2 * * SUN", "Europe/Berlin", year.0, year.1);
    assert_every_fire_runs_once("30 2 * * SUN", "Europe/Berlin", year.0, year.1);
    assert_every_fire_runs_once("0 4 * * SAT", "Australia/Lord_Howe", year.0, year.1);
}

#[test]
fn replayed_triggers_of_an_interval_schedule_follow_the_fold_rule() {
    assert_every_fire_runs_once(
        "*/30 * * * *",
        "America/New_York",
        "2026-03-07T00:00:00Z",
        "2026-03-09T00:00:00Z",
    );
    assert_every_fire_runs_once(
        "*/30 * * * *",
        "America/New_York",
        "2026-10-31T00:00:00Z",
        "2026-11-02T00:00:00Z",
    );
}
