//! systemd: `drctl-drill-<runbook>.service` runs the drill, and
//! `drctl-drill-<runbook>.timer` starts it on the schedule (`OnCalendar=`
//! with the time zone as its last word, `Persistent=true` so a drill missed
//! while the machine was off runs once when it is back).

use super::{command_words, header, stem, File, Format, Options};
use crate::schedule::fields::{runs, DayRule, DAYS, HOURS, MINUTES, MONTHS};
use crate::schedule::{CronFields, Job, Scheduled};

const WEEKDAY_NAMES: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

pub(super) fn render(
    s: &Scheduled,
    fields: &CronFields,
    options: &Options,
) -> Result<Vec<File>, String> {
    let unit = unit_name(s.job, &s.runbook);
    let calendar = on_calendar(fields, &s.timezone)?;
    let root = options.root.to_string_lossy();
    let drctl = options.drctl.to_string_lossy();
    let exec = [drctl.as_ref(), "--root", root.as_ref()]
        .into_iter()
        .chain(command_words(s))
        .map(exec_word)
        .collect::<Vec<_>>()
        .join(" ");
    let service = format!(
        "{header}\
         [Unit]\n\
         Description=drctl DR {job} of runbook {runbook}\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         WorkingDirectory={dir}\n\
         ExecStart={exec}\n\
         # A drill stopped with SIGTERM tears down what it built: give it the time,\n\
         # and signal drctl alone (it stops what it started itself).\n\
         KillMode=mixed\n\
         TimeoutStopSec=30min\n",
        header = header(Format::Systemd, s, "#"),
        job = s.job.command(),
        runbook = specifiers(&s.runbook),
        dir = specifiers(&root),
    );
    let timer = format!(
        "{header}\
         [Unit]\n\
         Description=Schedule of the drctl DR {job} of runbook {runbook}\n\
         \n\
         [Timer]\n\
         OnCalendar={calendar}\n\
         # A drill missed while the machine was off runs once when it is back.\n\
         Persistent=true\n\
         Unit={unit}.service\n\
         \n\
         [Install]\n\
         WantedBy=timers.target\n",
        header = header(Format::Systemd, s, "#"),
        job = s.job.command(),
        runbook = specifiers(&s.runbook),
    );
    Ok(vec![
        File {
            name: format!("{unit}.service"),
            content: service,
        },
        File {
            name: format!("{unit}.timer"),
            content: timer,
        },
    ])
}

/// `OnCalendar=`: `[weekdays ]*-months-days hours:minutes:00 zone`.
fn on_calendar(f: &CronFields, timezone: &str) -> Result<String, String> {
    let weekdays = match f.day_rule {
        DayRule::Every | DayRule::MonthDays => String::new(),
        DayRule::Weekdays | DayRule::Both => {
            let names: Vec<&str> = f
                .weekdays
                .iter()
                .map(|&d| WEEKDAY_NAMES[usize::from(d)])
                .collect();
            format!("{} ", names.join(","))
        }
        DayRule::Either => {
            return Err(
                "cron runs on a day matching its day of the month OR its day of the week, \
                        and OnCalendar= matches only days matching both; \
                        write it as two runbooks, one per day field"
                    .into(),
            )
        }
    };
    let days = match f.day_rule {
        DayRule::Every | DayRule::Weekdays => "*".to_string(),
        _ => list(&f.days, DAYS),
    };
    Ok(format!(
        "{weekdays}*-{}-{days} {}:{}:00 {timezone}",
        list(&f.months, MONTHS),
        list(&f.hours, HOURS),
        list(&f.minutes, MINUTES),
    ))
}

/// A calendar component: `*` when whole, else two-digit values and
/// `a..b` for runs of three or more.
fn list(values: &[u8], whole: std::ops::RangeInclusive<u8>) -> String {
    if values.len() == whole.len() {
        return "*".to_string();
    }
    runs(values)
        .into_iter()
        .map(|(a, b)| match b - a {
            0 => format!("{a:02}"),
            1 => format!("{a:02},{b:02}"),
            _ => format!("{a:02}..{b:02}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The unit's name: `drctl-drill-<runbook>`, with what a unit name may not
/// hold written `\xNN` as `systemd-escape` does.
fn unit_name(job: Job, runbook: &str) -> String {
    let mut out = String::new();
    for b in stem(job, runbook).bytes() {
        if b.is_ascii_alphanumeric() || b":_.-".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// `%` starts a specifier in unit files; `%%` is a percent sign.
fn specifiers(s: &str) -> String {
    s.replace('%', "%%")
}

/// One `ExecStart=` word: specifiers and `$` escaped, double-quoted when it
/// holds a space, a quote or a backslash.
fn exec_word(word: &str) -> String {
    let escaped = specifiers(word).replace('$', "$$");
    if escaped.is_empty() || escaped.contains([' ', '\t', '"', '\'', '\\', ';']) {
        format!("\"{}\"", escaped.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        escaped
    }
}

#[cfg(test)]
#[path = "systemd_tests.rs"]
mod tests;
