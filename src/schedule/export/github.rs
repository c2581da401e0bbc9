//! GitHub Actions: a workflow per runbook. GitHub reads cron in UTC only,
//! so a schedule in a zone with daylight saving cannot be one cron line.
//! The workflow lists the schedule's UTC times at every offset the zone
//! uses, and its first step asks `drctl schedule due` whether the trigger
//! that started it stands for a fire time in the zone:
//!
//! each fire time (by drctl's own rule for gaps and folds, see
//! [`crate::schedule`]) belongs to the first trigger at or after it, and a
//! trigger passes when a fire lies between the previous trigger of any line
//! and itself. Triggers at the other offset's times find no fire and skip;
//! a fire in a spring-forward gap is taken by the next trigger after it.
//! A zone with one offset needs no gate: its lines are the fire times.

use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};
use jiff::{Timestamp, ToSpan as _};

use super::{header, shell_word, stem, yaml_str, File, Format, Options};
use crate::schedule::fields::{cron_list, DayRule, DAYS, HOURS, MINUTES, MONTHS, WEEKDAYS};
use crate::schedule::{fires, CronFields, Job, ScheduleError, Scheduled};

/// GitHub runs a scheduled workflow at most every five minutes.
const MIN_INTERVAL_MINUTES: i32 = 5;

/// One `schedule:` line and the offsets whose wall-clock times it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UtcLine {
    pub cron: String,
    pub offsets: Vec<Offset>,
}

pub(super) fn render(
    s: &Scheduled,
    fields: &CronFields,
    options: &Options,
) -> Result<File, String> {
    let lines = utc_lines(fields, &s.tz, options.now)?;
    let gated = offsets_in_use(&s.tz, options.now).len() > 1;
    let runbook = shell_word(&s.runbook);
    let mut out = header(Format::GithubActions, s, "#");
    out.push_str("# Put it in .github/workflows/. The runner needs drctl on its PATH and AWS\n");
    out.push_str("# credentials (aws-actions/configure-aws-credentials, say, before the drill).\n");
    if gated {
        out.push_str(&format!(
            "# GitHub reads cron in UTC only: these are the schedule's times at each UTC\n\
             # offset {zone} uses, and the first step asks drctl whether the trigger\n\
             # stands for a fire time in {zone} (one trigger per fire, across\n\
             # daylight-saving changes too). GitHub may start a scheduled run late; one\n\
             # started after the next trigger of its line is skipped.\n",
            zone = s.timezone
        ));
    }
    let job = s.job.command();
    out.push_str(&format!(
        "name: {}\non:\n  schedule:\n",
        yaml_str(&format!("drctl {job} {}", s.runbook))
    ));
    for line in &lines {
        let at: Vec<String> = line.offsets.iter().map(|o| o.to_string()).collect();
        out.push_str(&format!(
            "    - cron: {}  # {} at UTC{}\n",
            yaml_str(&line.cron),
            s.timezone,
            at.join(" and UTC")
        ));
    }
    let run_if = if gated {
        "        if: github.event_name != 'schedule' || steps.due.outputs.due == 'true'\n"
    } else {
        ""
    };
    out.push_str(&format!(
        "  workflow_dispatch: {{}}\n\
         # Never two {job}s of one runbook at once: a second one waits.\n\
         concurrency:\n\
         \x20 group: {group}\n\
         \x20 cancel-in-progress: false\n\
         permissions:\n\
         \x20 contents: read\n\
         jobs:\n\
         \x20 {job}:\n\
         \x20   runs-on: ubuntu-latest\n\
         \x20   steps:\n\
         \x20     - uses: actions/checkout@v4\n",
        group = yaml_str(&stem(s.job, &s.runbook)),
    ));
    if gated {
        out.push_str(&format!(
            "      - name: {}\n\
             \x20       id: due\n\
             \x20       if: github.event_name == 'schedule'\n\
             \x20       env:\n\
             \x20         TRIGGER: ${{{{ github.event.schedule }}}}\n\
             \x20       run: {}\n",
            yaml_str(&format!("Is a {job} due in {}?", s.timezone)),
            yaml_str(&format!(
                "drctl schedule due {runbook}{} --trigger \"$TRIGGER\" >> \"$GITHUB_OUTPUT\"",
                match s.job {
                    Job::Drill => "",
                    Job::Preflight => " --preflight",
                }
            )),
        ));
    }
    if s.job == Job::Preflight {
        // A preflight creates nothing: started twice it only looks twice,
        // so it claims no fire; its verdict is the job's, its report the log.
        out.push_str(&format!(
            "      - name: {}\n{run_if}\
             \x20       run: {}\n",
            yaml_str(&format!("Preflight {}", s.runbook)),
            yaml_str(&format!("drctl preflight {runbook}")),
        ));
    } else {
        out.push_str(&format!(
            "      - name: {}\n{run_if}\
             \x20       run: {run}\n\
             \x20     - name: Keep the drill report\n\
             \x20       if: always(){also}\n\
             \x20       uses: actions/upload-artifact@v4\n\
             \x20       with:\n\
             \x20         name: {artifact}\n\
             \x20         path: {path}\n\
             \x20         if-no-files-found: ignore\n",
            yaml_str(&format!("Drill {}", s.runbook)),
            also = if gated {
                " && (github.event_name != 'schedule' || steps.due.outputs.due == 'true')"
            } else {
                ""
            },
            // A scheduled run claims its fire (GitHub may start one twice); a
            // run started by hand is a drill of its own.
            run = yaml_str(&format!(
                "drctl drill {runbook}${{{{ github.event_name == 'schedule' && ' --scheduled' || '' }}}}"
            )),
            artifact = yaml_str(&format!("drill-report-{}", s.runbook)),
            path = yaml_str(&format!(".drctl/reports/{}/", s.runbook)),
        ));
    }
    Ok(File {
        name: format!("{}.yml", stem(s.job, &s.runbook)),
        content: out,
    })
}

/// The UTC offsets `tz` uses from `now` for two years, lowest first.
fn offsets_in_use(tz: &TimeZone, now: Timestamp) -> Vec<Offset> {
    let until = now
        .checked_add((2 * 366 * 24).hours())
        .unwrap_or(Timestamp::MAX);
    let mut offsets: Vec<Offset> = std::iter::once(tz.to_offset(now))
        .chain(
            tz.following(now)
                .take_while(|t| t.timestamp() <= until)
                .map(|t| t.offset()),
        )
        .collect();
    offsets.sort();
    offsets.dedup();
    offsets
}

/// The schedule's wall-clock times as UTC cron lines, for every offset the
/// zone uses; lines that several offsets share are written once.
pub fn utc_lines(
    fields: &CronFields,
    tz: &TimeZone,
    now: Timestamp,
) -> Result<Vec<UtcLine>, String> {
    if matches!(fields.day_rule, DayRule::Either | DayRule::Both) {
        return Err(
            "GitHub does not document how it combines a restricted day of the month \
                    with a restricted day of the week"
                .into(),
        );
    }
    let mut lines: Vec<UtcLine> = Vec::new();
    for offset in offsets_in_use(tz, now) {
        for cron in lines_at(fields, offset)? {
            match lines.iter_mut().find(|l| l.cron == cron) {
                Some(line) => line.offsets.push(offset),
                None => lines.push(UtcLine {
                    cron,
                    offsets: vec![offset],
                }),
            }
        }
    }
    Ok(lines)
}

/// The lines for one offset: local times moved to UTC, grouped by the day
/// they land on (the weekdays move with them) and by their minutes.
fn lines_at(fields: &CronFields, offset: Offset) -> Result<Vec<String>, String> {
    if offset.seconds() % 60 != 0 {
        return Err(format!("the offset {offset} is not whole minutes"));
    }
    let shift = offset.seconds() / 60;
    // day moved by -1, 0 or +1 → UTC hour → UTC minutes
    let mut by_day: BTreeMap<i32, BTreeMap<u8, BTreeSet<u8>>> = BTreeMap::new();
    for &h in &fields.hours {
        for &m in &fields.minutes {
            let utc = i32::from(h) * 60 + i32::from(m) - shift;
            let (day, minute_of_day) = (utc.div_euclid(1440), utc.rem_euclid(1440));
            by_day
                .entry(day)
                .or_default()
                .entry((minute_of_day / 60) as u8)
                .or_default()
                .insert((minute_of_day % 60) as u8);
        }
    }
    let moves_day = by_day.keys().any(|&d| d != 0);
    if moves_day && (fields.day_rule == DayRule::MonthDays || fields.months.len() != MONTHS.len()) {
        return Err(format!(
            "at UTC{offset} some of its times fall on another day in UTC, \
             and a cron line cannot move a day of the month or a month by one day"
        ));
    }
    // (minutes, weekdays) → UTC hours: hours with the same minutes share a
    // line, across UTC days too when the weekdays do not move.
    let mut shared: Vec<(LineKey, BTreeSet<u8>)> = Vec::new();
    for (day, hours) in by_day {
        let mut day_minutes: Vec<i32> = hours
            .iter()
            .flat_map(|(h, ms)| ms.iter().map(move |m| i32::from(*h) * 60 + i32::from(*m)))
            .collect();
        day_minutes.sort_unstable();
        if day_minutes
            .windows(2)
            .any(|w| w[1] - w[0] < MIN_INTERVAL_MINUTES)
        {
            return Err(
                "it fires more often than every 5 minutes, GitHub's shortest interval".into(),
            );
        }
        let weekdays = match fields.day_rule {
            DayRule::Weekdays => {
                let mut moved: Vec<u8> = fields
                    .weekdays
                    .iter()
                    .map(|&w| (i32::from(w) + day).rem_euclid(7) as u8)
                    .collect();
                moved.sort_unstable();
                cron_list(&moved, WEEKDAYS, false)
            }
            _ => "*".to_string(),
        };
        for (hour, minutes) in hours {
            let key = (minutes.into_iter().collect(), weekdays.clone());
            match shared.iter_mut().find(|(k, _)| *k == key) {
                Some((_, hours)) => {
                    hours.insert(hour);
                }
                None => shared.push((key, BTreeSet::from([hour]))),
            }
        }
    }
    let days = cron_list(&fields.days, DAYS, fields.day_rule != DayRule::MonthDays);
    Ok(shared
        .into_iter()
        .map(|((minutes, weekdays), hours)| {
            let hours: Vec<u8> = hours.into_iter().collect();
            format!(
                "{} {} {days} {} {weekdays}",
                cron_list(&minutes, MINUTES, true),
                cron_list(&hours, HOURS, true),
                cron_list(&fields.months, MONTHS, true),
            )
        })
        .collect())
}

/// What hours of one UTC line share: their minutes and weekdays.
type LineKey = (Vec<u8>, String);

/// `drctl schedule due`: whether the workflow run started by `trigger` (one
/// of the exported lines, as `github.event.schedule` gives it) at or after
/// its time, and before its next one, is to run a drill at `now`.
pub fn due_at_trigger(s: &Scheduled, trigger: &str, now: Timestamp) -> Result<bool, ScheduleError> {
    let fields = CronFields::of(&s.cron).map_err(|why| refused(s, why))?;
    let lines = utc_lines(&fields, &s.tz, now).map_err(|why| refused(s, why))?;
    let wanted = trigger.split_whitespace().collect::<Vec<_>>().join(" ");
    let Some(index) = lines.iter().position(|l| l.cron == wanted) else {
        return Err(ScheduleError::UnknownTrigger {
            runbook: s.runbook.clone(),
            trigger: trigger.to_string(),
            known: lines.into_iter().map(|l| l.cron).collect(),
        });
    };
    let crons: Vec<croner::Cron> = lines
        .iter()
        .map(|l| l.cron.parse().expect("drctl writes valid cron lines"))
        .collect();
    let utc = |t: DateTime| TimeZone::UTC.to_timestamp(t).ok();
    let now_utc = TimeZone::UTC.to_datetime(now);
    // GitHub starts runs late, never early: the trigger's time is its line's
    // latest at or before now.
    let Some(at) = crons[index].find_previous_occurrence(&now_utc, true).ok() else {
        return Ok(false);
    };
    // Of lines sharing an instant, the first listed takes it.
    if crons
        .iter()
        .position(|c| c.is_time_matching(&at).unwrap_or(false))
        != Some(index)
    {
        return Ok(false);
    }
    let Some(at_ts) = utc(at) else {
        return Ok(false);
    };
    // Every line fires at least yearly; a year and a bit bounds the search.
    let floor = at_ts
        .checked_sub((400 * 24).hours())
        .unwrap_or(Timestamp::MIN);
    let previous = crons
        .iter()
        .filter_map(|c| c.find_previous_occurrence(&at, false).ok().and_then(utc))
        .max()
        .unwrap_or(floor)
        .max(floor);
    Ok(fires(&s.cron, &s.tz, previous)
        .next()
        .is_some_and(|f| f.at.timestamp() <= at_ts))
}

fn refused(s: &Scheduled, why: String) -> ScheduleError {
    super::refused(Format::GithubActions, s, why)
}

#[cfg(test)]
#[path = "github_tests.rs"]
mod tests;
