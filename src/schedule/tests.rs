//! Fire times across the 2026 daylight-saving changes of New York and
//! Berlin, and the collapsing of missed fires.
//!
//! New York: 2026-03-08 02:00 EST → 03:00 EDT (07:00Z);
//!           2026-11-01 02:00 EDT → 01:00 EST (06:00Z), 01:00–02:00 twice.
//! Berlin:   2026-03-29 02:00 CET → 03:00 CEST (01:00Z);
//!           2026-10-25 03:00 CEST → 02:00 CET (01:00Z), 02:00–03:00 twice.

use super::*;

pub(crate) fn cron(expression: &str) -> croner::Cron {
    expression.parse().expect("valid cron")
}

pub(crate) fn zone(name: &str) -> TimeZone {
    TimeZone::get(name).expect("known zone")
}

pub(crate) fn ts(s: &str) -> Timestamp {
    s.parse().expect("RFC 3339 time")
}

pub(crate) fn scheduled(runbook: &str, expression: &str, tz: &str) -> Scheduled {
    Scheduled {
        job: super::Job::Drill,
        runbook: runbook.to_string(),
        expression: expression.to_string(),
        cron: cron(expression),
        timezone: tz.to_string(),
        tz: zone(tz),
    }
}

/// Checks `matches` against croner's own matching of `expression` at many
/// minutes of every day of 2026 (a translation that reads the expression
/// differently shows up here).
pub(crate) fn assert_matches_croner(expression: &str, matches: impl Fn(DateTime) -> bool) {
    let cron = cron(expression);
    let mut day = jiff::civil::date(2026, 1, 1);
    while day.year() == 2026 {
        for hour in 0..24 {
            for minute in [0, 5, 10, 15, 20, 30, 40, 45, 50] {
                let t = day.at(hour, minute, 0, 0);
                let expected = cron.is_time_matching(&t).expect("croner matches");
                assert_eq!(matches(t), expected, "{expression} at {t}");
            }
        }
        day = day.checked_add(1.day()).expect("next day");
    }
}

/// The fires after `after`, as `<zoned> <shift>` strings.
fn fires_after(expression: &str, tz: &str, after: &str, n: usize) -> Vec<String> {
    let (cron, tz) = (cron(expression), zone(tz));
    fires(&cron, &tz, ts(after))
        .take(n)
        .map(|f| format!("{} {:?}", f.at, f.shift))
        .collect()
}

#[test]
fn a_daily_time_in_the_spring_gap_fires_once_at_the_end_of_the_gap() {
    assert_eq!(
        fires_after("30 2 * * *", "America/New_York", "2026-03-07T00:00:00Z", 3),
        [
            "2026-03-07T02:30:00-05:00[America/New_York] None",
            "2026-03-08T03:00:00-04:00[America/New_York] Gap",
            "2026-03-09T02:30:00-04:00[America/New_York] None",
        ]
    );
}

#[test]
fn a_daily_time_in_the_fall_fold_fires_once_at_its_first_occurrence() {
    assert_eq!(
        fires_after("30 1 * * *", "America/New_York", "2026-10-31T00:00:00Z", 3),
        [
            "2026-10-31T01:30:00-04:00[America/New_York] None",
            "2026-11-01T01:30:00-04:00[America/New_York] Fold",
            "2026-11-02T01:30:00-05:00[America/New_York] None",
        ]
    );
}

#[test]
fn counting_from_inside_the_fold_never_fires_its_second_half() {
    // 06:15Z is 01:15 EST, the repeated hour's second pass; 05:45Z is its
    // first pass, after the fire. Neither may fire 01:30 EST.
    for inside in ["2026-11-01T06:15:00Z", "2026-11-01T05:45:00Z"] {
        assert_eq!(
            fires_after("30 1 * * *", "America/New_York", inside, 1),
            ["2026-11-02T01:30:00-05:00[America/New_York] None"],
            "from {inside}"
        );
    }
    // Just before the first pass's 01:30, that one is next.
    assert_eq!(
        fires_after("30 1 * * *", "America/New_York", "2026-11-01T05:29:59Z", 1),
        ["2026-11-01T01:30:00-04:00[America/New_York] Fold"],
    );
}

#[test]
fn a_weekly_drill_in_berlin_is_neither_skipped_nor_doubled() {
    assert_eq!(
        fires_after("30 2 * * SUN", "Europe/Berlin", "2026-03-20T00:00:00Z", 3),
        [
            "2026-03-22T02:30:00+01:00[Europe/Berlin] None",
            "2026-03-29T03:00:00+02:00[Europe/Berlin] Gap",
            "2026-04-05T02:30:00+02:00[Europe/Berlin] None",
        ]
    );
    assert_eq!(
        fires_after("30 2 * * SUN", "Europe/Berlin", "2026-10-20T00:00:00Z", 2),
        [
            "2026-10-25T02:30:00+02:00[Europe/Berlin] Fold",
            "2026-11-01T02:30:00+01:00[Europe/Berlin] None",
        ]
    );
}

#[test]
fn a_weekly_drill_fires_every_week_across_a_whole_year_of_changes() {
    for tz in ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe"] {
        // 02:00 falls in the spring gap of each (Lord Howe's is half an hour).
        let fires = next_fires(
            &cron("0 2 * * SUN"),
            &zone(tz),
            ts("2026-01-01T00:00:00Z"),
            60,
        );
        for pair in fires.windows(2) {
            let days = pair[0].date().until(pair[1].date()).expect("span");
            assert_eq!(days.get_days(), 7, "{tz}: {} then {}", pair[0], pair[1]);
        }
    }
}

#[test]
fn every_time_in_the_gap_collapses_into_one_fire() {
    // Every 30 minutes: 02:00 and 02:30 do not exist on 2026-03-08; both
    // fire as one at 03:00, and 03:00 itself is that same fire.
    assert_eq!(
        fires_after(
            "*/30 * * * *",
            "America/New_York",
            "2026-03-08T06:15:00Z",
            4
        ),
        [
            "2026-03-08T01:30:00-05:00[America/New_York] None",
            "2026-03-08T03:00:00-04:00[America/New_York] Gap",
            "2026-03-08T03:30:00-04:00[America/New_York] None",
            "2026-03-08T04:00:00-04:00[America/New_York] None",
        ]
    );
}

#[test]
fn an_interval_schedule_fires_each_wall_clock_time_of_the_fold_once() {
    assert_eq!(
        fires_after(
            "*/30 * * * *",
            "America/New_York",
            "2026-11-01T04:45:00Z",
            4
        ),
        [
            "2026-11-01T01:00:00-04:00[America/New_York] Fold",
            "2026-11-01T01:30:00-04:00[America/New_York] Fold",
            "2026-11-01T02:00:00-05:00[America/New_York] None",
            "2026-11-01T02:30:00-05:00[America/New_York] None",
        ]
    );
}

#[test]
fn croner_agrees_on_fixed_times_and_differs_on_intervals() {
    // What croner does with zoned times, checked rather than assumed: a
    // fixed-time job matches the rule above...
    let tz = zone("America/New_York");
    let start = ts("2026-03-08T00:00:00Z").to_zoned(tz.clone());
    let croner_next = cron("30 2 * * *")
        .find_next_occurrence(&start, false)
        .expect("a next time");
    assert_eq!(
        croner_next.to_string(),
        "2026-03-08T03:00:00-04:00[America/New_York]"
    );
    // ...but a job with several times ("interval" to croner) loses the
    // night: croner skips 02:00 and 02:30 in the gap, drctl fires at 03:00.
    let after = ts("2026-03-08T06:45:00Z");
    let croner_next = cron("0,30 2 * * *")
        .find_next_occurrence(&after.to_zoned(tz.clone()), false)
        .expect("a next time");
    assert_eq!(
        croner_next.to_string(),
        "2026-03-09T02:00:00-04:00[America/New_York]"
    );
    assert_eq!(
        next_fires(&cron("0,30 2 * * *"), &tz, after, 1)[0].to_string(),
        "2026-03-08T03:00:00-04:00[America/New_York]"
    );
}

#[test]
fn a_schedule_that_never_matches_has_no_fires() {
    assert!(next_fires(
        &cron("0 0 30 2 *"),
        &zone("UTC"),
        ts("2026-01-01T00:00:00Z"),
        3
    )
    .is_empty());
}

#[test]
fn missed_fires_collapse_into_one_run_for_the_newest() {
    let (cron, tz) = (cron("0 4 * * *"), zone("Europe/Berlin"));
    // Handled Monday's; the daemon was down until Thursday 12:00 UTC.
    let due = due(
        &cron,
        &tz,
        ts("2026-06-01T02:00:00Z"),
        ts("2026-06-04T12:00:00Z"),
    )
    .expect("due");
    assert_eq!(due.count, 3);
    assert_eq!(
        due.oldest.to_string(),
        "2026-06-02T04:00:00+02:00[Europe/Berlin]"
    );
    assert_eq!(
        due.newest.at.to_string(),
        "2026-06-04T04:00:00+02:00[Europe/Berlin]"
    );
}

#[test]
fn a_fire_is_due_at_its_instant_and_not_before() {
    let (cron, tz) = (cron("0 4 * * SAT"), zone("UTC"));
    let handled = ts("2026-03-01T00:00:00Z");
    assert_eq!(due(&cron, &tz, handled, ts("2026-03-07T03:59:59Z")), None);
    let due = due(&cron, &tz, handled, ts("2026-03-07T04:00:00Z")).expect("due");
    assert_eq!(
        (due.count, due.newest.at.timestamp()),
        (1, ts("2026-03-07T04:00:00Z"))
    );
}

#[test]
fn the_gap_fire_is_due_once_even_when_handled_inside_the_gap_day() {
    let (cron, tz) = (cron("30 2 * * *"), zone("America/New_York"));
    let due1 = due(
        &cron,
        &tz,
        ts("2026-03-07T12:00:00Z"),
        ts("2026-03-08T07:00:00Z"),
    )
    .expect("the gap's fire is due at 03:00 EDT");
    assert_eq!((due1.count, due1.newest.shift), (1, Shift::Gap));
    assert_eq!(
        due(
            &cron,
            &tz,
            ts("2026-03-08T07:00:00Z"),
            ts("2026-03-08T12:00:00Z")
        ),
        None
    );
}
