//! The command line: argument types (clap) and a dispatcher that turns them
//! into calls on the library. Values are parsed into domain types here, at
//! the edge; nothing below this module knows about clap.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, CommandFactory as _, Parser, Subcommand, ValueEnum};

use crate::store::RunStore;

mod args;
pub(crate) mod commands;
mod drill;
mod next_step;
mod preflight;
pub(crate) mod run_end;
mod sandbox;
mod schedule;
mod state;
mod sweep;
mod target;
pub mod terminal;
mod traffic;

pub use args::*;
pub use drill::resume_drill;
pub use target::{cloud_target, CliConnect, CloudTarget};
pub(crate) use target::{for_run, with_target};

use crate::error::{exit, Error};
use crate::graph;
use crate::load::validate::load_project;
use crate::model::Project;

/// Disaster-recovery orchestrator for AWS infrastructure: plans and applies
/// stacks in phases with approval gates, and rehearses rebuilds as DR drills.
#[derive(Debug, Parser)]
#[command(name = "drctl", version, propagate_version = true, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level help's epilogue: what scripts and CI jobs need to know.
const AFTER_HELP: &str = "\
Exit codes:
  0  success (plan --detailed-exitcode: nothing to change)
  1  a failure during a run, or the command's own failure
  2  invalid input or usage; nothing was touched
  3  paused at a gate (see `drctl approve` and `drctl resume`)
  4  plan --detailed-exitcode: there are changes

Environment:
  AWS_PROFILE            AWS profile when --profile is not given
  AWS_REGION             not used to pick a region: a runbook names its own, --region overrides it
  AWS_ENDPOINT_URL       send every AWS call to this endpoint, like --endpoint-url
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
                         credentials (any source of the AWS config chain works)
  DRCTL_STATE            like --state: the team's run store, s3://BUCKET/PREFIX
  DRCTL_STATE_DIR        like --state-dir
  NO_COLOR               no colour in help, errors and log lines
  RUST_LOG               log filter, overriding -v/-q (e.g. RUST_LOG=drctl=debug)";

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// AWS region (default: the runbook's region, then the AWS config chain).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// Send every AWS call to this endpoint (AWS_ENDPOINT_URL works too).
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// AWS profile from ~/.aws/config.
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// Use the local sandbox (moto server): the running one, or one started
    /// for this command's lifetime.
    #[arg(long, global = true)]
    pub sandbox: bool,
    /// Acting on a run made on the sandbox: if the sandbox is down, start it
    /// again (to stay up), rather than one for this command's lifetime.
    #[arg(skip)]
    pub keep_sandbox_up: bool,
    /// Repository root holding stacks/ and runbooks/ (default: found from the
    /// runbook's path, else upward from the current directory, as git does).
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Where runs, journals, reports, locks and the sandbox live (the
    /// default `.drctl` is the project root's, wherever drctl runs in it).
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "DRCTL_STATE_DIR",
        hide_env_values = true,
        default_value = ".drctl"
    )]
    pub state_dir: PathBuf,
    /// The run store a team shares: `s3://BUCKET/PREFIX` (or a directory).
    /// Default: `[state] url` in the repository's drctl.toml, else
    /// --state-dir.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "DRCTL_STATE",
        hide_env_values = true
    )]
    pub state: Option<String>,
    /// The store, once a command has opened it.
    #[arg(skip)]
    pub opened: Arc<std::sync::OnceLock<Arc<dyn RunStore>>>,
    /// Set when a rebuild's records go to its `--state-fallback` directory
    /// (the store then) because the configured store was out of reach.
    #[arg(skip)]
    pub fallback: Option<crate::journal::StoreFallback>,
    /// More logging (-v, -vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less output (-q: warnings only).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    pub quiet: u8,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl GlobalArgs {
    /// The local sandbox's directory, beside the records.
    pub fn sandbox_dir(&self) -> PathBuf {
        crate::store::sandbox_dir(&self.state_dir)
    }

    /// These options, with the run store at `location` (a directory or an
    /// `s3://` URL, as a run recorded it). A directory is the state
    /// directory too: the run's sandbox is beside its records.
    pub fn at_store(mut self, location: &std::path::Path) -> GlobalArgs {
        let text = location.display().to_string();
        if let Ok(crate::store::StoreLocation::Local(dir)) =
            crate::store::StoreLocation::parse(&text)
        {
            self.state_dir = dir;
        }
        self.state = Some(text);
        self.opened = Default::default();
        self
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (events and logs).
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse and check stacks and runbooks; makes no cloud call.
    #[command(after_help = "Examples:\n  drctl validate\n  drctl validate web-dr-drill")]
    Validate(ValidateArgs),
    /// Show a runbook's stack graph and phases.
    #[command(after_help = "Example:\n  drctl graph web-dr-drill --format mermaid")]
    Graph(GraphArgs),
    /// Discover the environment by tag and show what apply would change, per phase.
    #[command(after_help = "Example:\n  drctl plan fleet-rehearsal --out p.json")]
    Plan(PlanArgs),
    /// Apply a runbook (planning first) or a saved plan, phase by phase.
    #[command(
        after_help = "Examples:\n  drctl apply p.json\n  drctl apply fleet-rehearsal --auto-approve --reason \"DR drill\""
    )]
    Apply(ApplyArgs),
    /// Delete everything carrying the environment's tags, dependents first.
    #[command(after_help = "Example:\n  drctl destroy fleet-rehearsal --auto-approve")]
    Destroy(DestroyArgs),
    /// Delete what expired drills left (drctl:expires in the past), dependents first.
    #[command(
        after_help = "Looks in the runbooks' regions and image copy regions, or in --region\n(several: --region us-east-1,us-west-2).\n\nExamples:\n  drctl sweep --dry-run\n  drctl sweep fleet-rehearsal --yes"
    )]
    Sweep(args::SweepArgs),
    /// Point a service's listener back at its previous colour (one API call).
    #[command(after_help = "Example:\n  drctl rollback web-dr-drill web.service.web")]
    Rollback(traffic::RollbackArgs),
    /// Remove old colours whose retire_after has passed, after draining.
    #[command(
        after_help = "Examples:\n  drctl retire web-dr-drill\n  drctl retire web-dr-drill web.service.web"
    )]
    Retire(traffic::RetireArgs),
    /// Show the runbook's root stacks' outputs, read from what exists (no state file).
    #[command(
        after_help = "Examples:\n  drctl output fleet-rehearsal\n  curl \"$(drctl output fleet-rehearsal url)\""
    )]
    Output(OutputArgs),
    /// Record an approval of the gate a paused run waits at.
    #[command(
        after_help = "Example:\n  drctl approve RUN_ID --as alice --reason \"network checked\""
    )]
    Approve(ApproveArgs),
    /// End a paused run at its gate.
    #[command(after_help = "Example:\n  drctl reject RUN_ID --reason \"wrong AMI\"")]
    Reject(RejectArgs),
    /// Continue a paused, interrupted or failed run where it stopped.
    #[command(after_help = "Example:\n  drctl resume RUN_ID")]
    Resume(ResumeArgs),
    /// List runs, or show one run's timeline.
    #[command(after_help = "Examples:\n  drctl runs\n  drctl runs show RUN_ID")]
    Runs {
        #[command(subcommand)]
        show: Option<RunsCommand>,
    },
    /// Rehearse a rebuild: build the runbook's stacks from nothing in an
    /// isolated environment, check them, time them, tear them down, prove
    /// nothing is left, and write a report.
    #[command(
        after_help = "Examples:\n  drctl --sandbox drill fleet-rehearsal\n  drctl drill web-dr-drill --junit drill.xml\n\nExit codes: 0 the drill passed, 1 it failed (the report says why), 2 invalid input, 3 paused at a gate (--interactive)."
    )]
    Drill(DrillArgs),
    /// Check, creating nothing, that a rebuild would work in the runbook's
    /// region (or --region): the plan, images, instance types per zone,
    /// quotas, and permissions (EC2 calls tried with DryRun).
    #[command(
        after_help = "Examples:\n  drctl preflight web-dr-drill --region us-west-2\n  drctl preflight web-dr-drill --json\n\nEach check passes, fails, or is unknown (drctl cannot prove it either way:\nvCPU quotas live in Service Quotas, ELBv2 has no dry run). An unknown is\nnever a pass: it is listed, and fails the preflight with --strict.\n\nExit codes: 0 nothing failed, 1 a check failed (or --strict and one is unknown), 2 invalid input."
    )]
    Preflight(preflight::PreflightArgs),
    /// Past drills of a runbook.
    #[command(
        subcommand,
        after_help = "Example:\n  drctl drills history fleet-rehearsal"
    )]
    Drills(DrillsCommand),
    /// Emergency rebuild of the runbook's real environment from whatever
    /// exists (nothing, or a partial wreck), phase by phase, with the RTO at the end.
    #[command(
        after_help = "Examples:\n  drctl rebuild fleet-rehearsal\n  drctl rebuild fleet-rehearsal --auto-approve --reason \"INC-4521: us-east-1 down\""
    )]
    Rebuild(RebuildArgs),
    /// Remove an environment's lock (after making sure no run holds it).
    #[command(
        after_help = "Examples:\n  drctl unlock fleet-rehearsal\n  drctl unlock fleet-dr@us-west-2 --yes"
    )]
    Unlock(UnlockArgs),
    /// Environment locks: who holds them, and their leases.
    #[command(subcommand, after_help = "Example:\n  drctl lock status")]
    Lock(LockCommand),
    /// Scheduled drills: next fire times, a foreground scheduler, exports for other schedulers.
    #[command(
        subcommand,
        after_help = "Examples:\n  drctl schedule list\n  drctl schedule run\n  drctl schedule export --systemd --out ~/.config/systemd/user"
    )]
    Schedule(schedule::ScheduleCommand),
    /// The run store: merge a rebuild's fallback store into it.
    #[command(
        subcommand,
        after_help = "Example:\n  drctl state push /var/tmp/drctl-fallback"
    )]
    State(StateCommand),
    /// Manage the local AWS endpoint (moto server).
    #[command(subcommand, after_help = "Example:\n  drctl sandbox start")]
    Sandbox(SandboxCommand),
    /// Print shell completions for drctl.
    #[command(
        after_help = "Example:\n  drctl completions bash > ~/.local/share/bash-completion/completions/drctl"
    )]
    Completions(CompletionsArgs),
}

/// Sets up tracing on stderr: `-q` warnings, default info, `-v` debug, `-vv` trace.
/// `RUST_LOG` overrides.
pub fn init_logging(global: &GlobalArgs) {
    let level = match (global.quiet, global.verbose) {
        (q, _) if q > 0 => "warn",
        (_, 0) => "info",
        (_, 1) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("drctl={level},warn")));
    // Colour only on a terminal, and never with NO_COLOR (https://no-color.org).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(false);
    let _ = match global.log_format {
        LogFormat::Text => builder.without_time().try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

impl Cli {
    /// Parses the command line; the default state directory is the project
    /// root's `.drctl` (found upward from the working directory), so every
    /// run of a project shares its locks and journals wherever it starts.
    pub fn parse_args() -> Cli {
        use clap::{CommandFactory as _, FromArgMatches as _};
        let matches = Cli::command().get_matches();
        let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        if matches.value_source("state_dir") == Some(clap::parser::ValueSource::DefaultValue) {
            let root = cli.global.root.clone().or_else(|| {
                std::env::current_dir()
                    .ok()
                    .and_then(|cwd| crate::app::find_root(&cwd))
            });
            if let Some(root) = root {
                cli.global.state_dir = root.join(&cli.global.state_dir);
            }
        }
        cli
    }
}

/// Runs a command; returns the exit code on success.
pub async fn run(cli: Cli) -> Result<u8, Error> {
    let global = &cli.global;
    match &cli.command {
        Command::Validate(args) => validate(global, args),
        Command::Graph(args) => {
            let (project, runbook) = load_runbook(global, &args.runbook)?;
            let runbook = project
                .runbook(&runbook)
                .expect("load_runbook returns a loaded runbook");
            print!("{}", graph::render(&project, runbook, args.format.into()));
            Ok(exit::OK)
        }
        Command::Plan(args) => crate::cli::commands::plan_command(global, args).await,
        Command::Apply(args) => crate::cli::commands::apply_command(global, args).await,
        Command::Destroy(args) => crate::cli::commands::destroy_command(global, args).await,
        Command::Sweep(args) => Box::pin(crate::cli::sweep::sweep_command(global, args)).await,
        Command::Rollback(args) => traffic::rollback_command(global, args).await,
        Command::Retire(args) => traffic::retire_command(global, args).await,
        Command::Output(args) => crate::cli::commands::output_command(global, args).await,
        Command::Approve(args) => crate::cli::commands::approve_command(global, args),
        Command::Reject(args) => crate::cli::commands::reject_command(global, args).await,
        Command::Resume(args) => {
            Box::pin(crate::cli::commands::resume_command(
                global,
                &args.run_id,
                args.parallelism.into(),
                args.wait,
            ))
            .await
        }
        Command::Runs { show } => crate::cli::commands::runs_command(
            global,
            show.as_ref()
                .map(|RunsCommand::Show { run_id }| run_id.as_str()),
        ),
        // Boxed: these futures are deep, and the match would hold them all inline.
        Command::Drill(args) => Box::pin(drill::drill_command(global, args)).await,
        Command::Preflight(args) => Box::pin(preflight::preflight_command(global, args)).await,
        Command::Drills(DrillsCommand::History { runbook, json }) => {
            drill::history_command(global, runbook, *json)
        }
        Command::Rebuild(args) => Box::pin(drill::rebuild_command(global, args)).await,
        Command::Unlock(args) => {
            crate::cli::commands::unlock_command(global, &args.target, args.yes)
        }
        Command::Lock(LockCommand::Status) => crate::cli::commands::lock_status_command(global),
        Command::Schedule(command) => schedule::schedule(global, command).await,
        Command::State(StateCommand::Push { dir }) => state::push_command(global, dir),
        Command::Sandbox(command) => sandbox::sandbox(global, command).await,
        Command::Completions(args) => {
            clap_complete::generate(
                args.shell,
                &mut Cli::command(),
                "drctl",
                &mut std::io::stdout(),
            );
            Ok(exit::OK)
        }
    }
}

fn validate(global: &GlobalArgs, args: &ValidateArgs) -> Result<u8, Error> {
    let root = match args.runbooks.first() {
        Some(first) => project_root(global, first),
        None => global.root.clone().unwrap_or_else(|| PathBuf::from(".")),
    };
    let paths = args
        .runbooks
        .iter()
        .map(|r| crate::app::runbook_path(&root, r))
        .collect::<Result<Vec<_>, _>>()?;
    let (project, diags) = load_project(&root, &paths);
    if !diags.is_empty() {
        return Err(Error::Invalid(diags));
    }
    for runbook in &project.runbooks {
        let phases = graph::runbook_phases(&project, runbook);
        println!(
            "ok: runbook {} ({} phase{}, environment {}, region {})",
            runbook.name,
            phases.len(),
            if phases.len() == 1 { "" } else { "s" },
            runbook.environment,
            runbook.region
        );
    }
    println!(
        "ok: {} stack{}, {} runbook{} valid",
        project.stacks.len(),
        if project.stacks.len() == 1 { "" } else { "s" },
        project.runbooks.len(),
        if project.runbooks.len() == 1 { "" } else { "s" }
    );
    Ok(exit::OK)
}

fn project_root(global: &GlobalArgs, runbook: &str) -> PathBuf {
    crate::app::project_root(global.root.as_deref(), runbook)
}

/// Loads and validates the project around one runbook; returns the runbook's name.
pub(crate) fn load_runbook(global: &GlobalArgs, runbook: &str) -> Result<(Project, String), Error> {
    let loaded = crate::app::load(global.root.as_deref(), runbook)?;
    Ok((loaded.project, loaded.name))
}
