//! `drctl schedule list`: its arguments, and the printing of fire times.

use std::io::Write as _;

use clap::{Args, Subcommand};
use jiff::{Timestamp, Zoned};

use super::GlobalArgs;
use crate::error::{exit, Error};
use crate::model::Project;
use crate::schedule::{fires, Scheduled, Shift};

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Each runbook with a schedule: its cron, its time zone, and its next
    /// three fire times there and in UTC.
    #[command(
        after_help = "Examples:\n  drctl schedule list\n  drctl schedule list --now 2026-03-07T12:00:00Z"
    )]
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Count from this time instead of the clock (RFC 3339, e.g. 2026-03-07T12:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub now: Option<Timestamp>,
}

fn parse_time(arg: &str) -> Result<Timestamp, String> {
    arg.parse()
        .map_err(|e| format!("expected an RFC 3339 time such as 2026-03-07T12:00:00Z: {e}"))
}

pub(super) async fn schedule(global: &GlobalArgs, command: &ScheduleCommand) -> Result<u8, Error> {
    match command {
        ScheduleCommand::List(args) => list(global, args),
    }
}

/// Every runbook of the project, validated.
fn load_all(global: &GlobalArgs) -> Result<Project, Error> {
    let root = crate::app::project_root(global.root.as_deref(), "");
    let (project, diags) = crate::model::validate::load_project(&root, &[]);
    if !diags.is_empty() {
        return Err(Error::Invalid(diags));
    }
    Ok(project)
}

fn list(global: &GlobalArgs, args: &ListArgs) -> Result<u8, Error> {
    let project = load_all(global)?;
    let now = args.now.unwrap_or_else(Timestamp::now);
    let mut out = std::io::stdout().lock();
    let with: Vec<Scheduled> = project.runbooks.iter().filter_map(Scheduled::of).collect();
    let without: Vec<&str> = project
        .runbooks
        .iter()
        .filter(|r| r.schedule.is_none())
        .map(|r| r.name.as_str())
        .collect();
    if with.is_empty() {
        let _ = writeln!(out, "No runbook has a schedule.");
    } else {
        let _ = writeln!(
            out,
            "Next fire times after {}, in each runbook's time zone and in UTC:",
            utc(now)
        );
    }
    for s in &with {
        let _ = writeln!(
            out,
            "\n{}: \"{}\" in {}",
            s.runbook, s.expression, s.timezone
        );
        let next: Vec<_> = fires(&s.cron, &s.tz, now).take(3).collect();
        if next.is_empty() {
            let _ = writeln!(out, "  never fires");
        }
        for fire in next {
            let note = match fire.shift {
                Shift::None => String::new(),
                Shift::Gap => format!(
                    "  ({} does not exist that day, clocks go forward: runs after the gap)",
                    fire.wall.strftime("%H:%M")
                ),
                Shift::Fold => format!(
                    "  ({} happens twice that day, clocks go back: runs the first time only)",
                    fire.wall.strftime("%H:%M")
                ),
            };
            let _ = writeln!(
                out,
                "  {}   {}{note}",
                local(&fire.at),
                utc(fire.at.timestamp())
            );
        }
    }
    if !without.is_empty() {
        let _ = writeln!(out, "\nWithout a schedule: {}", without.join(", "));
    }
    Ok(exit::OK)
}

/// `2026-03-07T12:00:00Z`: whole seconds, UTC.
fn utc(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `Sun 2026-03-08 03:00 EDT (-04:00)`
fn local(z: &Zoned) -> String {
    z.strftime("%a %Y-%m-%d %H:%M %Z (%:z)").to_string()
}
