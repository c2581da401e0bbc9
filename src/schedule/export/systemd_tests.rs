//! The units are read back as systemd reads them (INI sections, `ExecStart=`
//! words, `OnCalendar=` components) and the calendar is checked against
//! croner minute by minute.

use jiff::civil::DateTime;

use super::super::test_support::{export, options, scheduled};
use super::super::{render, Format};
use crate::schedule::tests::assert_matches_croner;

/// `(section, key, value)` of a unit file; panics on a line systemd would reject.
fn ini(text: &str) -> Vec<(String, String, String)> {
    let mut section = None;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.to_string());
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not key=value: {line}"));
        let section = section
            .clone()
            .unwrap_or_else(|| panic!("{line} outside a section"));
        out.push((section, key.to_string(), value.to_string()));
    }
    out
}

fn value<'a>(unit: &'a [(String, String, String)], section: &str, key: &str) -> &'a str {
    unit.iter()
        .find(|(s, k, _)| s == section && k == key)
        .map(|(_, _, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key}= in [{section}]"))
}

/// `ExecStart=` words, unquoted and unescaped.
fn exec_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c == ' ' {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '"' {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => word.push(chars.next().expect("escaped char")),
                    c => word.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        words.push(word.replace("%%", "%").replace("$$", "$"));
    }
    words
}

/// An `OnCalendar=` expression, read into what it matches.
struct Calendar {
    weekdays: Option<Vec<u8>>,
    months: Vec<u8>,
    days: Vec<u8>,
    hours: Vec<u8>,
    minutes: Vec<u8>,
    zone: String,
}

fn component(text: &str, whole: std::ops::RangeInclusive<u8>) -> Vec<u8> {
    if text == "*" {
        return whole.collect();
    }
    let mut out = Vec::new();
    for part in text.split(',') {
        match part.split_once("..") {
            Some((a, b)) => out.extend(a.parse::<u8>().unwrap()..=b.parse().unwrap()),
            None => out.push(part.parse().unwrap_or_else(|_| panic!("bad value {part}"))),
        }
    }
    out
}

fn calendar(text: &str) -> Calendar {
    const NAMES: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    let mut words: Vec<&str> = text.split(' ').collect();
    let weekdays = (words.len() == 4).then(|| {
        words
            .remove(0)
            .split(',')
            .map(|n| NAMES.iter().position(|x| *x == n).expect("weekday name") as u8)
            .collect()
    });
    let [date, time, zone] = words[..] else {
        panic!("not `date time zone`: {text}")
    };
    let [year, months, days] = date.split('-').collect::<Vec<_>>()[..] else {
        panic!("{date}")
    };
    assert_eq!(year, "*");
    let [hours, minutes, seconds] = time.split(':').collect::<Vec<_>>()[..] else {
        panic!("{time}")
    };
    assert_eq!(seconds, "00");
    Calendar {
        weekdays,
        months: component(months, 1..=12),
        days: component(days, 1..=31),
        hours: component(hours, 0..=23),
        minutes: component(minutes, 0..=59),
        zone: zone.to_string(),
    }
}

impl Calendar {
    fn matches(&self, t: DateTime) -> bool {
        let has = |set: &[u8], v: i8| set.contains(&(v as u8));
        self.weekdays
            .as_ref()
            .is_none_or(|w| has(w, t.weekday().to_sunday_zero_offset()))
            && has(&self.months, t.month())
            && has(&self.days, t.day())
            && has(&self.hours, t.hour())
            && has(&self.minutes, t.minute())
    }
}

#[test]
fn on_calendar_matches_what_croner_matches() {
    for expression in [
        "0 4 * * SAT",
        "*/15 9-17 * * MON-FRI",
        "30 2 1,15 * *",
        "0 0 1 JAN,JUL *",
        "0 12 1 * +MON",
        "@weekly",
        "10-40/10 */6 */2 2-11/3 *",
    ] {
        let files = export(Format::Systemd, expression, "Europe/Berlin").expect(expression);
        let timer = ini(&files[1].content);
        let cal = calendar(value(&timer, "Timer", "OnCalendar"));
        assert_eq!(cal.zone, "Europe/Berlin");
        assert_matches_croner(expression, |t| cal.matches(t));
    }
}

#[test]
fn the_units_run_the_drill_in_the_repository_and_the_timer_catches_up() {
    let files = export(Format::Systemd, "0 4 * * SAT", "UTC").expect("export");
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        ["drctl-drill-web-dr.service", "drctl-drill-web-dr.timer"]
    );

    let service = ini(&files[0].content);
    assert_eq!(value(&service, "Service", "Type"), "oneshot");
    assert_eq!(
        value(&service, "Service", "WorkingDirectory"),
        "/srv/dr repo"
    );
    assert_eq!(
        exec_words(value(&service, "Service", "ExecStart")),
        [
            "/usr/local/bin/drctl",
            "--root",
            "/srv/dr repo",
            "drill",
            "web-dr",
            "--scheduled"
        ]
    );
    assert_eq!(value(&service, "Service", "KillMode"), "mixed");

    let timer = ini(&files[1].content);
    assert_eq!(
        value(&timer, "Timer", "OnCalendar"),
        "Sat *-*-* 04:00:00 UTC"
    );
    assert_eq!(value(&timer, "Timer", "Persistent"), "true");
    assert_eq!(value(&timer, "Timer", "Unit"), "drctl-drill-web-dr.service");
    assert_eq!(value(&timer, "Install", "WantedBy"), "timers.target");
}

#[test]
fn lists_ranges_and_steps_become_calendar_lists() {
    let on_calendar = |e: &str| {
        let files = export(Format::Systemd, e, "America/New_York").expect(e);
        value(&ini(&files[1].content), "Timer", "OnCalendar").to_string()
    };
    assert_eq!(
        on_calendar("*/15 9-17 * * MON-FRI"),
        "Mon,Tue,Wed,Thu,Fri *-*-* 09..17:00,15,30,45:00 America/New_York"
    );
    assert_eq!(
        on_calendar("30 2 1,15 */3 *"),
        "*-01,04,07,10-01,15 02:30:00 America/New_York"
    );
}

#[test]
fn either_day_field_is_refused() {
    let err = export(Format::Systemd, "0 4 13 * FRI", "UTC").expect_err("dom OR dow");
    assert!(err.to_string().contains("OR its day of the week"), "{err}");
}

#[test]
fn odd_names_and_paths_are_escaped() {
    let mut opts = options();
    opts.root = "/srv/100% \"dr\"".into();
    let files = render(
        Format::Systemd,
        &[scheduled("web dr", "0 4 * * *", "UTC")],
        &opts,
    )
    .unwrap();
    assert_eq!(files[0].name, "drctl-drill-web\\x20dr.service");
    let service = ini(&files[0].content);
    assert_eq!(
        exec_words(value(&service, "Service", "ExecStart")),
        [
            "/usr/local/bin/drctl",
            "--root",
            "/srv/100% \"dr\"",
            "drill",
            "web dr",
            "--scheduled"
        ]
    );
}
