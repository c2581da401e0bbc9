//! `drctl schedule list|run|export|due`: arguments, and the printing of
//! fire times, daemon events and exported files.

use crate::app::absolute;
use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::{ArgGroup, Args, Subcommand};
use jiff::{Timestamp, Zoned};

use super::{GlobalArgs, LogFormat};
use crate::clock::{Clock, SystemClock};
use crate::error::{exit, Error};
use crate::model::Project;
use crate::schedule::daemon::{self, Config, DrillCommand, OffsetClock};
use crate::schedule::export::{self, Format, Options};
use crate::schedule::{fires, Job, ScheduleError, Scheduled, Shift};

/// The daemon's events as log lines.
mod log;
use log::{json_line, text};

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Each runbook with a schedule: its cron, its time zone, and its next
    /// three fire times there and in UTC.
    #[command(
        after_help = "Examples:\n  drctl schedule list\n  drctl schedule list --now 2026-03-07T12:00:00Z"
    )]
    List(ListArgs),
    /// Run due drills in the foreground, one at a time, until SIGTERM or Ctrl-C.
    ///
    /// Each drill is `drctl drill RUNBOOK` in a child process, with this
    /// command's global options; its exit code is the verdict. A drill
    /// missed while this was not running runs once when it starts again
    /// (several missed fire times of one runbook make one drill). SIGTERM
    /// or Ctrl-C starts no more drills, lets the one in flight tear down,
    /// and exits 0. Under systemd, use KillMode=mixed so the signal reaches
    /// drctl alone, which forwards it to the drill once.
    #[command(
        after_help = "Examples:\n  drctl schedule run\n  drctl schedule run --once --now 2026-03-07T12:00:00Z"
    )]
    Run(RunArgs),
    /// Write the schedules for systemd, cron, Kubernetes or GitHub Actions.
    #[command(
        after_help = "Examples:\n  drctl schedule export --systemd --out ~/.config/systemd/user\n  drctl schedule export --cron > drills.crontab\n  drctl schedule export --kubernetes --image registry.example.com/drctl:1 web-dr-drill\n  drctl schedule export --github-actions --out .github/workflows"
    )]
    Export(ExportArgs),
    /// The gate of an exported GitHub Actions workflow: prints due=true or due=false.
    ///
    /// GitHub reads cron in UTC only, so the workflow is triggered at the
    /// schedule's times for each UTC offset of the runbook's time zone;
    /// this says whether the trigger that started the run stands for a
    /// fire time in that zone (exactly one trigger per fire does).
    #[command(
        after_help = "Example:\n  drctl schedule due web-dr-drill --trigger \"$TRIGGER\" >> \"$GITHUB_OUTPUT\""
    )]
    Due(DueArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Count from this time instead of the clock (RFC 3339, e.g. 2026-03-07T12:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub now: Option<Timestamp>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Start the clock at this time (RFC 3339); it then runs at the real pace.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub now: Option<Timestamp>,
    /// Run what is due now, then exit (1 if a drill did not pass): for cron
    /// and tests.
    #[arg(long)]
    pub once: bool,
}

#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("format")
        .required(true)
        .args(["systemd", "cron", "kubernetes", "github_actions"])
))]
pub struct ExportArgs {
    /// Only this runbook (path or name); default: every runbook with a schedule.
    pub runbook: Option<String>,
    /// A systemd .service and .timer per runbook.
    #[arg(long)]
    pub systemd: bool,
    /// One crontab, with CRON_TZ before each runbook's line.
    #[arg(long)]
    pub cron: bool,
    /// A Kubernetes CronJob per runbook (needs --image).
    #[arg(long, requires = "image")]
    pub kubernetes: bool,
    /// A GitHub Actions workflow per runbook.
    #[arg(long)]
    pub github_actions: bool,
    /// Write the files into this directory instead of printing them.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Kubernetes: the container image holding drctl and this repository.
    #[arg(long)]
    pub image: Option<String>,
    /// systemd and cron: the drctl binary they run (default: this one).
    #[arg(long, value_name = "PATH")]
    pub drctl: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DueArgs {
    /// The runbook (path or name).
    pub runbook: String,
    /// The schedule line that started the run (`github.event.schedule`).
    #[arg(long, value_name = "CRON")]
    pub trigger: String,
    /// Of the runbook's `[preflight] schedule` rather than its drill's.
    #[arg(long)]
    pub preflight: bool,
    /// Decide as of this time instead of the clock (RFC 3339).
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
        ScheduleCommand::Run(args) => run(global, args).await,
        ScheduleCommand::Export(args) => export(global, args),
        ScheduleCommand::Due(args) => due(global, args),
    }
}

/// Every runbook of the project, validated.
fn load_all(global: &GlobalArgs) -> Result<Project, Error> {
    let root = crate::app::project_root(global.root.as_deref(), "");
    let (project, diags) = crate::load::validate::load_project(&root, &[]);
    if !diags.is_empty() {
        return Err(Error::Invalid(diags));
    }
    Ok(project)
}

fn scheduled(project: &Project) -> Result<Vec<Scheduled>, Error> {
    let scheduled: Vec<Scheduled> = project.runbooks.iter().flat_map(Scheduled::all).collect();
    if scheduled.is_empty() {
        return Err(Error::usage(
            format!(
                "no runbook under {} has a schedule",
                project.root.join("runbooks").display()
            ),
            Some(
                "add one to a runbook: schedule = \"0 4 * * SAT\" and timezone = \"Europe/Berlin\" (a drill), or [preflight] schedule = \"0 * * * *\""
                    .into(),
            ),
        ));
    }
    Ok(scheduled)
}

fn list(global: &GlobalArgs, args: &ListArgs) -> Result<u8, Error> {
    let project = load_all(global)?;
    let now = args.now.unwrap_or_else(Timestamp::now);
    let mut out = std::io::stdout().lock();
    let with: Vec<Scheduled> = project.runbooks.iter().flat_map(Scheduled::all).collect();
    let without: Vec<&str> = project
        .runbooks
        .iter()
        .filter(|r| r.schedule.is_none() && r.preflight.schedule.is_none())
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
            named(s.job, &s.runbook),
            s.expression,
            s.timezone
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

/// How often a daemon standing by looks whether the one running stopped:
/// a shared store's lease lapses after a minute by default, so a takeover
/// comes within about a minute and a quarter.
const STANDBY_RETRY: std::time::Duration = std::time::Duration::from_secs(15);

async fn run(global: &GlobalArgs, args: &RunArgs) -> Result<u8, Error> {
    let project = load_all(global)?;
    // The daemon names its records by absolute paths in its log.
    let state_dir = absolute(&global.state_dir);
    let config = Config {
        scheduled: scheduled(&project)?,
        store: GlobalArgs {
            state_dir: state_dir.clone(),
            opened: Default::default(),
            ..global.clone()
        }
        .store()?,
        drill: drill_command(global, &project.root)?,
        once: args.once,
        standby_retry: STANDBY_RETRY,
    };
    let clock: Box<dyn Clock> = match args.now {
        Some(at) => Box::new(OffsetClock::starting_at(at)),
        None => Box::new(SystemClock),
    };
    let mut stop = daemon::os_signals().map_err(|e| schedule_error(e, &state_dir))?;
    let json = matches!(global.log_format, LogFormat::Json);
    let summary = daemon::run(&config, clock.as_ref(), &mut stop, &|at, event| {
        let line = if json {
            json_line(at, event)
        } else {
            format!("{} {}", utc(at), text(at, event))
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    })
    .await
    .map_err(|e| schedule_error(e, &state_dir))?;
    Ok(if args.once && summary.not_passed > 0 {
        exit::FAILURE
    } else {
        exit::OK
    })
}

/// `drill RUNBOOK` is started as this very drctl with the daemon's global
/// options, the root and state directory made absolute.
fn drill_command(global: &GlobalArgs, root: &Path) -> Result<DrillCommand, Error> {
    let program = std::env::current_exe().map_err(|source| Error::Io {
        action: "find the path of",
        path: PathBuf::from("the running drctl"),
        source,
    })?;
    let mut args: Vec<OsString> = vec![
        "--root".into(),
        absolute(root).into(),
        "--state-dir".into(),
        absolute(&global.state_dir).into(),
    ];
    if global.sandbox {
        args.push("--sandbox".into());
    }
    for (flag, value) in [
        ("--endpoint-url", &global.endpoint_url),
        ("--region", &global.region),
        ("--profile", &global.profile),
    ] {
        if let Some(value) = value {
            args.extend([flag.into(), value.into()]);
        }
    }
    args.push("--log-format".into());
    args.push(match global.log_format {
        LogFormat::Text => "text".into(),
        LogFormat::Json => "json".into(),
    });
    args.extend((0..global.verbose).map(|_| "-v".into()));
    args.extend((0..global.quiet).map(|_| "-q".into()));
    Ok(DrillCommand { program, args })
}

fn export(global: &GlobalArgs, args: &ExportArgs) -> Result<u8, Error> {
    let format = match (args.systemd, args.cron, args.kubernetes) {
        (true, _, _) => Format::Systemd,
        (_, true, _) => Format::Cron,
        (_, _, true) => Format::Kubernetes,
        _ => Format::GithubActions,
    };
    let scheduled = match &args.runbook {
        Some(runbook) => {
            let loaded = crate::app::load(global.root.as_deref(), runbook)?;
            let all = Scheduled::all(loaded.runbook());
            if all.is_empty() {
                return Err(Error::usage(
                    format!("runbook {} has no schedule", loaded.name),
                    None,
                ));
            }
            (all, loaded.project.root)
        }
        None => {
            let project = load_all(global)?;
            (scheduled(&project)?, project.root)
        }
    };
    let (scheduled, root) = scheduled;
    let drctl = match &args.drctl {
        Some(path) => absolute(path),
        None => drill_command(global, &root)?.program,
    };
    let options = Options {
        root: root
            .canonicalize()
            .or_else(|_| std::path::absolute(&root))
            .unwrap_or(root),
        drctl,
        image: args.image.clone(),
        now: Timestamp::now(),
    };
    let files = export::render(format, &scheduled, &options)
        .map_err(|e| schedule_error(e, &global.state_dir))?;
    let mut out = std::io::stdout().lock();
    match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                action: "create",
                path: dir.clone(),
                source,
            })?;
            for file in &files {
                let path = dir.join(&file.name);
                std::fs::write(&path, &file.content).map_err(|source| Error::Io {
                    action: "write",
                    path: path.clone(),
                    source,
                })?;
                let _ = writeln!(out, "wrote {}", path.display());
            }
        }
        None => {
            for (i, file) in files.iter().enumerate() {
                let gap = if i == 0 { "" } else { "\n" };
                let _ = write!(out, "{gap}# file: {}\n{}", file.name, file.content);
            }
        }
    }
    Ok(exit::OK)
}

fn due(global: &GlobalArgs, args: &DueArgs) -> Result<u8, Error> {
    let loaded = crate::app::load(global.root.as_deref(), &args.runbook)?;
    let runbook = loaded.runbook();
    let (s, what) = match args.preflight {
        false => (Scheduled::of(runbook), "schedule"),
        true => (Scheduled::preflight_of(runbook), "[preflight] schedule"),
    };
    let s =
        s.ok_or_else(|| Error::usage(format!("runbook {} has no {what}", loaded.name), None))?;
    let now = args.now.unwrap_or_else(Timestamp::now);
    let due = export::due_at_trigger(&s, &args.trigger, now)
        .map_err(|e| schedule_error(e, &global.state_dir))?;
    println!("due={due}");
    Ok(exit::OK)
}

/// The crate's error for a schedule error: what cannot be exported or is
/// asked for wrongly is usage (exit 2), the rest a failure (exit 1).
fn schedule_error(e: ScheduleError, state_dir: &Path) -> Error {
    match e {
        ScheduleError::Untranslatable { .. } => Error::usage(e.to_string(), None),
        ScheduleError::UnknownTrigger { ref runbook, .. } => Error::usage(
            e.to_string(),
            Some(format!(
                "the workflow is older than the runbook's schedule: drctl schedule export --github-actions {runbook}"
            )),
        ),
        ScheduleError::Busy { .. } => Error::usage(
            e.to_string(),
            Some("one daemon runs what is due; without --once a second one stands by to take over".into()),
        ),
        ScheduleError::CorruptState { path, source } => Error::Io {
            action: "read the schedule state",
            path,
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, source),
        },
        ScheduleError::Io { action, path, source } => Error::Io { action, path, source },
        ScheduleError::Signals(source) => Error::Io {
            action: "listen for SIGTERM and SIGINT while using",
            path: state_dir.to_path_buf(),
            source,
        },
    }
}

/// `2026-03-07T12:00:00Z`: whole seconds, UTC.
fn utc(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `Sun 2026-03-08 03:00 EDT (-04:00)`
fn local(z: &Zoned) -> String {
    z.strftime("%a %Y-%m-%d %H:%M %Z (%:z)").to_string()
}

/// A schedule's name in listings: the runbook for its drill (as always),
/// `RUNBOOK (preflight)` for its preflight.
fn named(job: Job, runbook: &str) -> String {
    match job {
        Job::Drill => runbook.to_string(),
        Job::Preflight => format!("{runbook} (preflight)"),
    }
}
