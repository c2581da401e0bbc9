//! Schedules: when a runbook's drill fires, and what is due.
//!
//! A cron expression names wall-clock times in the runbook's time zone. Most
//! of them are one instant each; around a daylight-saving change some are
//! not, and drctl resolves them by one rule, so a weekly drill is never
//! silently skipped or doubled:
//!
//! - a wall-clock time the clock skips (spring forward, a *gap*) fires at the
//!   first instant after the gap: a 02:30 drill on the night New York jumps
//!   from 02:00 to 03:00 fires at 03:00;
//! - a wall-clock time the clock shows twice (fall back, a *fold*) fires
//!   once, at the first of the two;
//! - wall-clock times that land on the same instant (the gap's times all do)
//!   fire once.
//!
//! croner matches the expression against wall-clock times (its own
//! time-zone handling treats "interval" expressions differently: it skips
//! their times in a gap and fires both halves of a fold), and jiff resolves
//! each matching wall-clock time to an instant here, by the rule above.
//!
//! Pure: no clock, no files. The daemon ([`daemon`]) and the exports
//! ([`export`]) build on it.

pub mod daemon;
pub mod export;
mod fields;
pub mod state;

use std::path::PathBuf;

use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, ToSpan as _, Zoned};

pub use fields::CronFields;

/// What a schedule runs: the runbook's drill (`schedule`, weekly say), or
/// its preflight (`[preflight] schedule`, hourly say).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Job {
    Drill,
    Preflight,
}

impl Job {
    /// The drctl command it runs: `drctl <command> RUNBOOK`.
    pub fn command(self) -> &'static str {
        match self {
            Job::Drill => "drill",
            Job::Preflight => "preflight",
        }
    }

    /// What a scheduled start adds: a drill claims its fire in the run
    /// store (a job fired twice drills once); a preflight creates nothing,
    /// so one started twice is only a second look and claims nothing.
    pub fn scheduled_flag(self) -> Option<&'static str> {
        match self {
            Job::Drill => Some("--scheduled"),
            Job::Preflight => None,
        }
    }
}

/// One runbook's schedule (of its drill or of its preflight), as the
/// daemon and the exports take it.
#[derive(Debug, Clone)]
pub struct Scheduled {
    pub job: Job,
    pub runbook: String,
    /// The cron expression as written.
    pub expression: String,
    pub cron: croner::Cron,
    /// The IANA name, as written.
    pub timezone: String,
    pub tz: TimeZone,
}

impl Scheduled {
    /// The runbook's schedule, if it has one. Its time zone was checked
    /// when the runbook was validated; an unknown one reads as UTC.
    pub fn of(runbook: &crate::model::Runbook) -> Option<Scheduled> {
        Scheduled::job(Job::Drill, runbook, runbook.schedule.as_ref()?)
    }

    /// The runbook's `[preflight] schedule`, if it has one, read in the
    /// runbook's `timezone` like its drill's.
    pub fn preflight_of(runbook: &crate::model::Runbook) -> Option<Scheduled> {
        Scheduled::job(
            Job::Preflight,
            runbook,
            runbook.preflight.schedule.as_ref()?,
        )
    }

    /// The runbook's schedules: its drill's, then its preflight's.
    pub fn all(runbook: &crate::model::Runbook) -> Vec<Scheduled> {
        Scheduled::of(runbook)
            .into_iter()
            .chain(Scheduled::preflight_of(runbook))
            .collect()
    }

    /// What the scheduler's state and fire claims keep this schedule under:
    /// the runbook's name for its drill (as before preflights had
    /// schedules), `<runbook>+preflight` for its preflight.
    pub fn key(&self) -> String {
        match self.job {
            Job::Drill => self.runbook.clone(),
            Job::Preflight => format!("{}+preflight", self.runbook),
        }
    }

    /// `drill web-dr` or `preflight web-dr`, as logs and listings name it.
    pub fn title(&self) -> String {
        format!("{} {}", self.job.command(), self.runbook)
    }

    fn job(
        job: Job,
        runbook: &crate::model::Runbook,
        schedule: &crate::model::Schedule,
    ) -> Option<Scheduled> {
        Some(Scheduled {
            job,
            runbook: runbook.name.clone(),
            expression: schedule.expression.clone(),
            cron: schedule.cron.clone(),
            timezone: runbook.timezone.clone(),
            tz: TimeZone::get(&runbook.timezone).unwrap_or(TimeZone::UTC),
        })
    }
}

/// How a fire time relates to the wall-clock time the expression names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shift {
    /// The wall-clock time happens once; the fire is at it.
    None,
    /// The clock skipped the wall-clock time; the fire is the first instant
    /// after the gap.
    Gap,
    /// The clock showed the wall-clock time twice; the fire is the first.
    Fold,
}

/// One fire time of a schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fire {
    /// When it fires, in the schedule's time zone.
    pub at: Zoned,
    /// The wall-clock time the expression names (differs from `at`'s in a gap).
    pub wall: DateTime,
    pub shift: Shift,
}

/// The fire times of `cron` in `tz` strictly after `after`, earliest first.
/// Ends only if the expression never matches again (`0 0 30 2 *`).
pub fn fires<'a>(cron: &'a croner::Cron, tz: &'a TimeZone, after: Timestamp) -> Fires<'a> {
    // Start a day and a bit before `after`'s wall-clock time: a matching
    // wall-clock time whose instant lies after `after` can sit that far
    // back (no clock change has ever jumped more than a day: Samoa skipped
    // 2011-12-30), and everything before `after` is filtered out below.
    let cursor = tz
        .to_datetime(after)
        .checked_sub(26.hours())
        .unwrap_or(DateTime::MIN);
    Fires {
        cron,
        tz,
        cursor,
        after,
    }
}

/// The next `n` fire times after `after`, in the schedule's time zone.
pub fn next_fires(cron: &croner::Cron, tz: &TimeZone, after: Timestamp, n: usize) -> Vec<Zoned> {
    fires(cron, tz, after).take(n).map(|f| f.at).collect()
}

/// An iterator over fire times; see [`fires`].
pub struct Fires<'a> {
    cron: &'a croner::Cron,
    tz: &'a TimeZone,
    /// The last wall-clock time matched.
    cursor: DateTime,
    /// Fires at or before this instant are not yielded (the bound, then the
    /// last fire yielded, which collapses wall-clock times sharing an instant).
    after: Timestamp,
}

impl Iterator for Fires<'_> {
    type Item = Fire;

    fn next(&mut self) -> Option<Fire> {
        loop {
            let wall = self.cron.find_next_occurrence(&self.cursor, false).ok()?;
            self.cursor = wall;
            let (at, shift) = resolve(self.tz, wall)?;
            if at > self.after {
                self.after = at;
                return Some(Fire {
                    at: at.to_zoned(self.tz.clone()),
                    wall,
                    shift,
                });
            }
        }
    }
}

/// The instant a matching wall-clock time fires at (see the module's rule).
/// Resolution is monotonic in the wall-clock time, which [`Fires`] relies on.
fn resolve(tz: &TimeZone, wall: DateTime) -> Option<(Timestamp, Shift)> {
    match tz.to_ambiguous_timestamp(wall).offset() {
        AmbiguousOffset::Unambiguous { offset } => {
            Some((offset.to_timestamp(wall).ok()?, Shift::None))
        }
        AmbiguousOffset::Gap { after, .. } => {
            // Read with the offset after the gap, the wall-clock time is an
            // instant just before the transition; the transition is the
            // first instant after the gap.
            let before_transition = after.to_timestamp(wall).ok()?;
            let transition = tz.following(before_transition).next()?;
            Some((transition.timestamp(), Shift::Gap))
        }
        AmbiguousOffset::Fold { before, .. } => {
            Some((before.to_timestamp(wall).ok()?, Shift::Fold))
        }
    }
}

/// What is due for one runbook: every fire after the last one handled, up to
/// now, collapsed into one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The newest fire at or before now: the one the run is for.
    pub newest: Fire,
    /// The oldest fire not yet handled (the order drills run in).
    pub oldest: Zoned,
    /// How many fires the run stands for (more than one: fires were missed).
    pub count: usize,
}

/// The fires of `cron` in `tz` after `handled_through` and at or before
/// `now`, as one run; `None` when nothing is due.
pub fn due(
    cron: &croner::Cron,
    tz: &TimeZone,
    handled_through: Timestamp,
    now: Timestamp,
) -> Option<Due> {
    let mut pending = fires(cron, tz, handled_through).take_while(|f| f.at.timestamp() <= now);
    let first = pending.next()?;
    let oldest = first.at.clone();
    let (newest, count) = pending.fold((first, 1), |(_, n), f| (f, n + 1));
    Some(Due {
        newest,
        oldest,
        count,
    })
}

/// The newest fire of `scheduled` at or before `now` (within a year): the
/// one a scheduler that started a drill just now started it for.
pub fn latest_fire(scheduled: &Scheduled, now: Timestamp) -> Option<Fire> {
    // Looked for in growing windows: a schedule of every minute has half a
    // million fires in a year.
    [1i64, 26, 8 * 24, 32 * 24, 367 * 24]
        .into_iter()
        .find_map(|hours| {
            let since = now.checked_sub(hours.hours()).ok()?;
            due(&scheduled.cron, &scheduled.tz, since, now).map(|d| d.newest)
        })
}

/// What went wrong in scheduling, exporting, or the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// A schedule that the chosen scheduler cannot express exactly.
    #[error(
        "cannot export the schedule of runbook {runbook} (`{expression}`) for {format}: {why}"
    )]
    Untranslatable {
        runbook: String,
        expression: String,
        format: &'static str,
        why: String,
    },
    /// `schedule due --trigger` names a line the exported workflow does not have.
    #[error("`{trigger}` is not one of the GitHub Actions schedule lines of runbook {runbook} ({})", known.join(", "))]
    UnknownTrigger {
        runbook: String,
        trigger: String,
        known: Vec<String>,
    },
    /// Another `drctl schedule run` uses this state directory.
    #[error("another `drctl schedule run` uses {} ({holder})", path.display())]
    Busy { path: PathBuf, holder: String },
    #[error("the schedule state {} does not parse", path.display())]
    CorruptState {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The daemon cannot listen for SIGTERM and SIGINT.
    #[error("cannot listen for signals")]
    Signals(#[source] std::io::Error),
}

impl From<crate::store::StoreError> for ScheduleError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::Io {
                action,
                path,
                source,
            } => ScheduleError::Io {
                action,
                path,
                source,
            },
            StoreError::Busy { path, holder } => ScheduleError::Busy { path, holder },
            StoreError::RunExists { path, .. } => ScheduleError::Io {
                action: "create",
                path,
                source: std::io::ErrorKind::AlreadyExists.into(),
            },
            StoreError::Remote {
                action,
                url,
                message,
            } => ScheduleError::Io {
                action,
                path: url.into(),
                source: std::io::Error::other(message),
            },
        }
    }
}

#[cfg(test)]
mod tests;
