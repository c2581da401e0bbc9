//! Each subcommand's arguments (clap), parsed into domain values at the
//! edge where that is a type of its own (a graph format, a lock target).

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::graph::GraphFormat;

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The runbook (path or name).
    pub runbook: String,
    /// Save the plan, with a fingerprint of what was observed, for `drctl apply FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 0 when there is nothing to change, 4 when there is.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also forecast the RTO: the critical path with each step's expected
    /// duration (past drills' median, else the runbook's [forecast.priors],
    /// else AWS's published figures), and the steps to speed up.
    #[arg(long)]
    pub forecast: bool,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A runbook (path or name), or a plan file saved with `plan --out`.
    #[arg(value_name = "RUNBOOK|PLANFILE")]
    pub target: String,
    /// Do not ask; pass every gate (recorded in the journal as such).
    #[arg(long)]
    pub auto_approve: bool,
    /// Why the gates are passed automatically (recorded with --auto-approve).
    #[arg(long, requires = "auto_approve")]
    pub reason: Option<String>,
    /// Most resource operations in flight at once.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    pub parallelism: u16,
    /// At a manual gate nobody here can approve, wait for approvals given elsewhere (drctl approve) until the gate's deadline, instead of pausing.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    /// The runbook (path or name).
    pub runbook: String,
    /// The drill's environment (default: `<environment>-drill-<UTC time>`).
    #[arg(long, value_name = "NAME")]
    pub environment: Option<String>,
    /// Gates ask (or pause) as in an apply, instead of passing by `[drill] auto_approve`.
    #[arg(long)]
    pub interactive: bool,
    /// Also write the report as JUnit XML (a testcase per phase and per check).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Bake images from scratch (timed in the RTO) instead of reusing an
    /// image of the same recipe, as `[drill] rebake = true` does.
    #[arg(long)]
    pub rebake: bool,
    /// Most resource operations in flight at once.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    pub parallelism: u16,
    /// The drill's run id (default: a new one); its report is
    /// `reports/<runbook>/<run id>.json`, so a scheduler that names its
    /// drills knows which report is theirs.
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
    /// Started by a scheduler (a CronJob, a workflow, a timer): claims the
    /// runbook's latest scheduled fire in the run store first, so a fire
    /// started twice (a job fired twice) drills once.
    #[arg(long)]
    pub scheduled: bool,
}

#[derive(Debug, Subcommand)]
pub enum DrillsCommand {
    /// Past drills with verdict, RTO and the forecast's error, and the RTO
    /// trend against the target.
    #[command(after_help = "Example:\n  drctl drills history fleet-rehearsal")]
    History {
        /// The runbook (path or name).
        runbook: String,
        /// Print the drills as JSON, oldest first (RTO, target, the forecast
        /// and its error, both bounds).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("reasoned")
        .args(["auto_approve", "state_fallback"])
        .multiple(true)
))]
pub struct RebuildArgs {
    /// The runbook (path or name).
    pub runbook: String,
    /// Break glass: pass every gate without asking (needs --reason; who and why are recorded).
    #[arg(long, requires = "reason")]
    pub auto_approve: bool,
    /// Why the gates are passed, or the run store is left (recorded in the
    /// journal with who did it).
    #[arg(long, requires = "reasoned")]
    pub reason: Option<String>,
    /// When the run store (a bucket) cannot be reached, keep the run's
    /// records in this local directory instead, recorded as such (needs
    /// --reason); `drctl state push DIR` merges them in later. Unused while
    /// the store answers.
    #[arg(long, value_name = "DIR", requires = "reason")]
    pub state_fallback: Option<PathBuf>,
    /// Most resource operations in flight at once.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    pub parallelism: u16,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Merge the runs and drill reports of a local store (a rebuild's
    /// --state-fallback DIR) into the run store; adds, never overwrites.
    #[command(after_help = "Example:\n  drctl state push /var/tmp/drctl-fallback")]
    Push {
        /// The local store to push from.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// The runbook (path or name).
    pub runbook: String,
    /// One output (`url`, or `stack.url`), printed raw for scripts.
    pub name: Option<String>,
    /// Print the outputs as a JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// One run's timeline: phases, changes, gate decisions, durations.
    #[command(after_help = "Example:\n  drctl runs show RUN_ID")]
    Show {
        /// The run (as `drctl runs` lists it).
        run_id: String,
    },
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The run to continue (as `drctl runs` lists it).
    pub run_id: String,
    /// Most resource operations in flight at once.
    #[arg(long, default_value_t = DEFAULT_PARALLELISM, value_parser = clap::value_parser!(u16).range(1..))]
    pub parallelism: u16,
    /// At a manual gate nobody here can approve, wait for approvals given elsewhere (drctl approve) until the gate's deadline, instead of pausing.
    #[arg(long)]
    pub wait: bool,
}

/// `--parallelism` when not given (also for a drill resumed to tear down
/// after a rejection).
pub const DEFAULT_PARALLELISM: u16 = 10;

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The paused run (as `drctl runs` lists it).
    pub run_id: String,
    /// The phase whose gate to approve (default: the one the run waits at).
    #[arg(long)]
    pub gate: Option<String>,
    /// Who approves (default: the OS user).
    #[arg(long = "as", value_name = "NAME")]
    pub as_name: Option<String>,
    /// Why, recorded in the journal with the approval.
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct RejectArgs {
    /// The paused run (as `drctl runs` lists it).
    pub run_id: String,
    /// Who rejects (default: the OS user).
    #[arg(long = "as", value_name = "NAME")]
    pub as_name: Option<String>,
    /// Why, recorded in the journal with the rejection.
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// The runbook whose environment to destroy (path or name).
    pub runbook: String,
    /// Do not ask (an unprotected environment).
    #[arg(long)]
    pub auto_approve: bool,
    /// Required to destroy a protected environment.
    #[arg(long)]
    pub force: bool,
    /// The environment's name, typed, for a protected environment without a terminal.
    #[arg(long, value_name = "ENV")]
    pub confirm: Option<String>,
    /// Another environment built from this runbook, e.g. a drill's left built
    /// (`<environment>-drill-…`); default: the runbook's own.
    #[arg(long, value_name = "NAME")]
    pub environment: Option<String>,
    /// Most deletions in flight at once.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    pub parallelism: u16,
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Runbooks whose regions (and image copy regions) to sweep, paths or
    /// names; default: every runbooks/*.toml. Their own environments are
    /// never swept.
    pub runbooks: Vec<String>,
    /// List what would be deleted; make no mutating call.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask before deleting.
    #[arg(long)]
    pub yes: bool,
    /// Most deletions in flight at once.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    pub parallelism: u16,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Runbooks to check (paths or names); default: every runbooks/*.toml.
    /// Every stack under stacks/ is checked either way.
    pub runbooks: Vec<String>,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The runbook (path or name).
    pub runbook: String,
    /// How to draw it.
    #[arg(long, value_enum, default_value_t = GraphFormatArg::Text)]
    pub format: GraphFormatArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GraphFormatArg {
    /// Phases and their stacks, as indented text.
    Text,
    /// Graphviz.
    Dot,
    /// A Mermaid flowchart (renders in GitHub Markdown).
    Mermaid,
}

impl From<GraphFormatArg> for GraphFormat {
    fn from(f: GraphFormatArg) -> Self {
        match f {
            GraphFormatArg::Text => GraphFormat::Text,
            GraphFormatArg::Dot => GraphFormat::Dot,
            GraphFormatArg::Mermaid => GraphFormat::Mermaid,
        }
    }
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// The lock to remove: a runbook (path or name; its environment and
    /// region), or ENV@REGION.
    #[arg(value_name = "RUNBOOK|ENV@REGION", value_parser = parse_lock_target)]
    pub target: LockTarget,
    /// Do not ask.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Every environment lock in the run store: who holds it, and in a
    /// shared store how long ago its lease was renewed.
    Status,
}

/// Which environment lock `drctl unlock` means. Locks are per environment and
/// region, so a bare environment name is not enough: it must be a runbook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockTarget {
    /// A runbook, path or name, resolved when the command runs.
    Runbook(String),
    EnvRegion {
        env: String,
        region: String,
    },
}

fn parse_lock_target(arg: &str) -> Result<LockTarget, String> {
    // A runbook path may hold an `@` (a home directory, say).
    if std::path::Path::new(arg).is_file() {
        return Ok(LockTarget::Runbook(arg.to_string()));
    }
    match arg.split_once('@') {
        None => Ok(LockTarget::Runbook(arg.to_string())),
        Some((env, region)) if !env.is_empty() && !region.is_empty() && !region.contains('@') => {
            Ok(LockTarget::EnvRegion {
                env: env.to_string(),
                region: region.to_string(),
            })
        }
        Some(_) => Err("expected a runbook or ENV@REGION, e.g. fleet-dr@us-west-2".into()),
    }
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Install moto server (first time) and start it in the background.
    Start,
    /// Stop the background sandbox.
    Stop,
    /// Show whether a sandbox runs, where, and that EC2 answers there.
    Status,
}
