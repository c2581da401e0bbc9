//! `drctl schedule run`'s log: each daemon event as a text line or a JSON
//! line.

use jiff::{Timestamp, Zoned};

use super::{local, named, utc};
use crate::schedule::daemon::Event;

/// A fire as the daemon reports it (RFC 9557), shown as [`local`].
fn fire(text: &str) -> String {
    text.parse::<Zoned>()
        .map_or_else(|_| text.to_string(), |z| local(&z))
}

pub(super) fn json_line(at: Timestamp, event: &Event) -> String {
    #[derive(serde::Serialize)]
    struct Line<'a> {
        at: String,
        #[serde(flatten)]
        event: &'a Event,
    }
    serde_json::to_string(&Line { at: utc(at), event }).expect("events serialize")
}

/// One daemon event as a log line.
pub(super) fn text(at: Timestamp, event: &Event) -> String {
    match event {
        Event::Watching {
            state_file,
            runbooks,
        } => {
            let mut out = format!(
                "schedule: watching {} runbook{} (state {})",
                runbooks.len(),
                if runbooks.len() == 1 { "" } else { "s" },
                state_file.display()
            );
            for w in runbooks {
                let next = match w.next.as_deref() {
                    None => "never fires".to_string(),
                    Some(next) if next.parse::<Zoned>().is_ok_and(|z| z.timestamp() <= at) => {
                        format!("due: missed {}", fire(next))
                    }
                    Some(next) => format!("next {}", fire(next)),
                };
                out.push_str(&format!(
                    "\n  {}: \"{}\" in {}, {next}{}",
                    named(w.job, &w.runbook),
                    w.schedule,
                    w.timezone,
                    if w.new {
                        " (first seen: earlier fire times are not made up for)"
                    } else {
                        ""
                    }
                ));
            }
            out
        }
        Event::Standby { lock, holder } => format!(
            "schedule: standing by: another daemon ({holder}) holds {}; taking over when it ends or its lease lapses",
            lock.display()
        ),
        Event::FireTaken {
            job,
            runbook,
            fire: at,
            by,
        } => format!(
            "{} {runbook} for {} claimed already ({by}): not run here",
            job.command(),
            fire(at)
        ),
        Event::Waiting {
            job,
            runbook,
            fire: at,
        } => format!("next: {} {runbook} at {}", job.command(), fire(at)),
        Event::PreflightStarted {
            runbook,
            fire: at,
            fires,
            pid,
            ..
        } => format!(
            "preflight {runbook} started for {} (pid {pid}){}",
            fire(at),
            standing_for(*fires)
        ),
        Event::PreflightFinished {
            runbook,
            verdict,
            exit_code,
            signal,
            duration_ms,
            error,
            ..
        } => {
            let mut out = format!(
                "preflight {runbook} {} ({}) after {}",
                verdict_word(*verdict),
                how(*exit_code, *signal),
                took(*duration_ms)
            );
            if let Some(error) = error {
                out.push_str(&format!(": {error}"));
            }
            out
        }
        Event::DrillStarted {
            runbook,
            fire: at,
            fires,
            pid,
            ..
        } => format!(
            "drill {runbook} started for {} (pid {pid}){}",
            fire(at),
            standing_for(*fires)
        ),
        Event::DrillFinished {
            runbook,
            verdict,
            exit_code,
            signal,
            duration_ms,
            report,
            error,
            ..
        } => {
            let mut out = format!(
                "drill {runbook} {} ({}) after {}",
                verdict_word(*verdict),
                how(*exit_code, *signal),
                took(*duration_ms)
            );
            if let Some(report) = report {
                out.push_str(&format!("; report {}", report.display()));
            }
            if let Some(error) = error {
                out.push_str(&format!(": {error}"));
            }
            out
        }
        Event::Stopping {
            signal,
            in_flight: Some(runbook),
        } => {
            format!("{signal}: stopping once drill {runbook} has torn down")
        }
        Event::Stopping {
            signal,
            in_flight: None,
        } => format!("{signal}: stopping"),
        Event::Stopped => "schedule: stopped".to_string(),
    }
}

fn standing_for(fires: usize) -> String {
    match fires {
        1 => String::new(),
        n => format!(", standing for {n} fire times (missed ones run once)"),
    }
}

fn how(exit_code: Option<i32>, signal: Option<i32>) -> String {
    match (exit_code, signal) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "did not run".to_string(),
    }
}

fn verdict_word(verdict: crate::schedule::state::Verdict) -> &'static str {
    match verdict {
        crate::schedule::state::Verdict::Passed => "passed",
        crate::schedule::state::Verdict::Failed => "failed",
        crate::schedule::state::Verdict::Error => "errored",
    }
}

fn took(duration_ms: crate::clock::Millis) -> String {
    humantime::format_duration(std::time::Duration::from_secs(
        u64::try_from(duration_ms / 1000).unwrap_or(0),
    ))
    .to_string()
}
