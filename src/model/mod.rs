//! The user's files as typed values: stacks (`stacks/*.toml`) and runbooks
//! (`runbooks/*.toml`), parsed strictly and validated as a whole.
//!
//! Pure: this layer reads the files it is given and nothing else (no cloud,
//! no clock), so `drctl validate` can never touch AWS.

pub mod expr;
pub mod forecast;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::types::ResourceKind;
pub use expr::{EnvField, Expr, ExprKind, Part, RefTarget, Reference, Template};

use crate::diag::Pos;

/// A name as written, with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub name: String,
    pub pos: Pos,
}

/// One `stacks/<name>.toml`.
#[derive(Debug, Clone)]
pub struct Stack {
    /// The file stem.
    pub name: String,
    pub file: PathBuf,
    pub description: Option<String>,
    /// Extra dependency edges; `${stack.X.…}` references add their own.
    pub depends_on: Vec<Named>,
    pub vars: BTreeMap<String, Var>,
    /// In file order.
    pub resources: Vec<Resource>,
    pub outputs: Vec<Output>,
}

/// A variable's default value (stack) or override (runbook). Literal only.
/// Declared `name = { value = …, sensitive = true }`, it is a secret: every
/// attribute that reads it shows as `(sensitive, sha256 …)`.
#[derive(Debug, Clone)]
pub struct Var {
    pub value: Expr,
    pub pos: Pos,
    pub sensitive: bool,
}

#[derive(Debug, Clone)]
pub struct Output {
    pub name: String,
    pub value: Expr,
    pub pos: Pos,
}

/// `[resources.<kind>.<name>]`
#[derive(Debug, Clone)]
pub struct Resource {
    pub kind: ResourceKind,
    pub name: String,
    /// The attributes set, in file order, each checked against the kind's schema.
    pub attrs: Vec<(String, Expr)>,
    pub tags: Vec<(String, Expr)>,
    pub pos: Pos,
}

impl Resource {
    /// `<kind>.<name>`, as in the `drctl:resource` tag.
    pub fn address(&self) -> String {
        format!("{}.{}", self.kind, self.name)
    }

    pub fn attr(&self, name: &str) -> Option<&Expr> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// Every reference in the resource's attributes and tags, with the key it sits under.
    pub fn references(&self) -> impl Iterator<Item = &Reference> {
        self.attrs
            .iter()
            .chain(self.tags.iter())
            .flat_map(|(_, v)| v.references())
    }
}

impl Stack {
    pub fn resource(&self, kind: ResourceKind, name: &str) -> Option<&Resource> {
        self.resources
            .iter()
            .find(|r| r.kind == kind && r.name == name)
    }

    pub fn output(&self, name: &str) -> Option<&Output> {
        self.outputs.iter().find(|o| o.name == name)
    }

    /// Every reference anywhere in the stack (resources and outputs).
    pub fn references(&self) -> impl Iterator<Item = &Reference> {
        self.resources
            .iter()
            .flat_map(Resource::references)
            .chain(self.outputs.iter().flat_map(|o| o.value.references()))
    }

    /// The stacks this one depends on: `depends_on` plus `${stack.X.…}` references.
    pub fn dependencies(&self) -> Vec<Named> {
        let mut deps: Vec<Named> = self.depends_on.clone();
        for r in self.references() {
            if let RefTarget::StackOutput { stack, .. } = &r.target {
                if !deps.iter().any(|d| &d.name == stack) {
                    deps.push(Named {
                        name: stack.clone(),
                        pos: r.pos,
                    });
                }
            }
        }
        deps
    }
}

/// One `runbooks/<name>.toml`: an environment, its phases and gates.
#[derive(Debug, Clone)]
pub struct Runbook {
    /// The file stem.
    pub name: String,
    pub file: PathBuf,
    pub description: Option<String>,
    /// The `drctl:env` tag value.
    pub environment: String,
    /// Where `environment` is written.
    pub environment_pos: Pos,
    pub region: String,
    /// Root stacks; their dependencies are pulled in.
    pub stacks: Vec<Named>,
    pub schedule: Option<Schedule>,
    /// IANA time zone name the schedule is read in.
    pub timezone: String,
    pub rto_target: Option<Duration>,
    pub protected: bool,
    pub vars: BTreeMap<String, Var>,
    /// As written; empty means "the dependency graph's layers, no gates".
    pub phases: Vec<Phase>,
    pub drill: Drill,
    /// `[notify]`: webhooks told of this runbook's runs, besides those of
    /// the repository's `drctl.toml`.
    pub notify: Vec<Webhook>,
    /// `[forecast.priors]`: expected durations of step kinds, instead of
    /// the published figures the RTO forecast starts from.
    pub forecast_priors: forecast::Priors,
    /// `[preflight]`: when `drctl preflight` runs on a schedule.
    pub preflight: Preflight,
    /// Set for a run, not read from the file (a drill with `[drill] rebake`
    /// or `--rebake`): plan image bakes even where an image of the same
    /// recipe exists.
    pub rebake_images: bool,
    /// Set for a drill's run, not read from the file: the drill's id and
    /// deadline, tagged on everything it creates.
    pub lifetime: Option<crate::types::tags::Lifetime>,
}

/// A runbook's `[preflight]` table.
#[derive(Debug, Clone, Default)]
pub struct Preflight {
    /// Cron, read in the runbook's `timezone`, like its drill's `schedule`.
    pub schedule: Option<Schedule>,
}

/// A drill's ttl without `[drill] ttl`: four times `rto_target`, and at
/// least this.
pub const MIN_DEFAULT_TTL: Duration = Duration::from_secs(2 * 3600);

impl Runbook {
    /// How long a drill of this runbook lives: `[drill] ttl`, or four times
    /// `rto_target` and at least two hours.
    pub fn drill_ttl(&self) -> Duration {
        self.drill.ttl.unwrap_or_else(|| {
            self.rto_target
                .map(|rto| rto.saturating_mul(4))
                .unwrap_or_default()
                .max(MIN_DEFAULT_TTL)
        })
    }
}

/// One webhook of a `[notify]` section (in `drctl.toml` or a runbook).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// `http://` or `https://`.
    pub url: String,
    pub format: NotifyFormat,
    /// The environment variable holding the signing secret (never the
    /// secret itself); without it, requests go unsigned.
    pub secret_env: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NotifyFormat {
    /// drctl's own JSON payload (`event`, `runbook`, `environment`, …).
    #[default]
    Json,
    /// Slack's incoming-webhook shape (`text` and `blocks`).
    Slack,
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub expression: String,
    pub cron: croner::Cron,
}

#[derive(Debug, Clone)]
pub struct Phase {
    pub name: String,
    pub stacks: Vec<Named>,
    /// Services whose traffic switch happens in this phase.
    pub cutover: Vec<ServiceRef>,
    /// The gate passed before this phase starts.
    pub gate: Gate,
    /// Keeps strict order where phases would otherwise pipeline: nothing of
    /// this phase starts before every earlier phase is done, and nothing
    /// later starts before it is done.
    pub barrier: bool,
    pub pos: Pos,
}

/// `<stack>.service.<name>`, as in `cutover` and drill checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRef {
    pub stack: String,
    pub name: String,
    pub pos: Pos,
}

impl ServiceRef {
    /// The service's address.
    pub fn address(&self) -> crate::world::Address {
        crate::world::Address::new(&self.stack, ResourceKind::Service, &self.name)
    }
}

impl std::fmt::Display for ServiceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.service.{}", self.stack, self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Gate {
    #[default]
    Auto,
    Manual(ManualGate),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualGate {
    /// Distinct approvers needed.
    pub approvals: u32,
    /// When not empty, only these people count.
    pub approvers: Vec<String>,
    pub timeout: Option<Duration>,
    pub on_timeout: OnTimeout,
}

impl Default for ManualGate {
    fn default() -> Self {
        ManualGate {
            approvals: 1,
            approvers: Vec::new(),
            timeout: None,
            on_timeout: OnTimeout::Wait,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnTimeout {
    /// Keep waiting (the default).
    #[default]
    Wait,
    Reject,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Drill {
    pub teardown: Teardown,
    pub auto_approve: bool,
    /// Bake images from scratch (timed in the RTO) instead of reusing an
    /// image of the same recipe.
    pub rebake: bool,
    /// `ttl`: how long a drill's resources live before `drctl sweep` may
    /// remove them (and before a drill still running stops itself).
    pub ttl: Option<Duration>,
    pub checks: Vec<Check>,
    /// Where each of `checks` stands in the file's list (a check that did not
    /// decode leaves a gap), so that later messages name the right
    /// `drill.checks[N]`.
    pub check_indices: Vec<usize>,
}

impl Drill {
    /// Each check with its key path, `drill.checks[N]`.
    pub fn keyed_checks(&self) -> impl Iterator<Item = (String, &Check)> {
        self.checks.iter().enumerate().map(|(n, check)| {
            let i = self.check_indices.get(n).copied().unwrap_or(n);
            (format!("drill.checks[{i}]"), check)
        })
    }
}

impl Default for Drill {
    fn default() -> Self {
        Drill {
            teardown: Teardown::Always,
            auto_approve: true,
            rebake: false,
            ttl: None,
            checks: Vec::new(),
            check_indices: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Teardown {
    Always,
    OnSuccess,
    Never,
}

impl Teardown {
    /// As written in `[drill] teardown`.
    pub fn name(self) -> &'static str {
        match self {
            Teardown::Always => "always",
            Teardown::OnSuccess => "on_success",
            Teardown::Never => "never",
        }
    }
}

/// A drill check, run after the last phase; RTO ends when all have passed.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// Every target of a target group (or of a service's live colour) is
    /// healthy, waited for until a deadline. No registered target fails.
    TargetHealth { target: ResourceRef },
    /// The listener's default action forwards to the target group (or to the
    /// service's live colour).
    ListenerForwardsTo {
        listener: ResourceRef,
        target: ResourceRef,
    },
    /// A GET of `url` (a template over `${stack.<stack>.<output>}`,
    /// `${env.name}`, `${env.region}`) answers `status` within `timeout`.
    Http {
        url: Template,
        status: u16,
        timeout: Duration,
        /// Where the URL is written.
        pos: Pos,
    },
    /// An external command, run from the project root with the drill's
    /// outputs in its environment; exit code 0 passes.
    Command {
        argv: Vec<String>,
        timeout: Duration,
        /// Where the program (`argv[0]`) is written.
        pos: Pos,
    },
}

impl Check {
    /// `target_health`, `listener_forwards_to`, `http` or `command`.
    pub fn kind(&self) -> &'static str {
        match self {
            Check::TargetHealth { .. } => "target_health",
            Check::ListenerForwardsTo { .. } => "listener_forwards_to",
            Check::Http { .. } => "http",
            Check::Command { .. } => "command",
        }
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Check::TargetHealth { target } => write!(f, "target_health {target}"),
            Check::ListenerForwardsTo { listener, target } => {
                write!(f, "listener_forwards_to {listener} → {target}")
            }
            Check::Http { url, status, .. } => write!(f, "http {url} → {status}"),
            Check::Command { argv, .. } => write!(f, "command {}", argv.join(" ")),
        }
    }
}

/// `<stack>.<kind>.<name>` naming one resource, as in drill checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRef {
    pub stack: String,
    pub kind: ResourceKind,
    pub name: String,
    pub pos: Pos,
}

impl From<&ServiceRef> for ResourceRef {
    fn from(service: &ServiceRef) -> Self {
        ResourceRef {
            stack: service.stack.clone(),
            kind: ResourceKind::Service,
            name: service.name.clone(),
            pos: service.pos,
        }
    }
}

impl std::fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.stack, self.kind, self.name)
    }
}

/// Every stack and runbook of a repository.
#[derive(Debug, Clone, Default)]
pub struct Project {
    pub root: PathBuf,
    pub stacks: BTreeMap<String, Stack>,
    pub runbooks: Vec<Runbook>,
    /// Stacks whose files are not TOML at all; already reported, so references
    /// to them are not reported again.
    pub unreadable_stacks: std::collections::BTreeSet<String>,
    /// The repository's other runbooks, when only some were asked for: read
    /// so that a runbook claiming an environment another one claims is still
    /// caught, and otherwise neither validated nor reported on.
    pub other_runbooks: Vec<Runbook>,
    /// The sha256 of each file a stack names (`provision` scripts), by the
    /// path it is read from: read when loading, so planning stays pure.
    pub files: BTreeMap<PathBuf, FileDigest>,
}

/// A file a stack names, as read when the project was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    /// Hex sha256 of the bytes.
    pub sha256: String,
    pub bytes: u64,
}

impl Project {
    /// Where a stack's file-valued attribute `text` is read from.
    pub fn stack_file(&self, stack: &Stack, text: &str) -> PathBuf {
        stack.file.parent().unwrap_or(Path::new(".")).join(text)
    }
}

impl Project {
    pub fn stacks_dir(&self) -> PathBuf {
        self.root.join("stacks")
    }

    pub fn runbook(&self, name_or_path: &str) -> Option<&Runbook> {
        let stem = Path::new(name_or_path)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(name_or_path);
        self.runbooks.iter().find(|r| r.name == stem)
    }
}
/// `us-west-2`, `eu-central-1`, `us-gov-west-1`, …
pub fn is_region_name(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_names() {
        for ok in [
            "us-west-2",
            "eu-central-1",
            "us-gov-west-1",
            "ap-southeast-4",
        ] {
            // The runbook's region, and an image's copy regions, both.
            assert!(is_region_name(ok), "{ok}");
        }
        for bad in [
            "us-west",
            "uswest2",
            "US-WEST-2",
            "us-west-",
            "west-2",
            "us-west-2a",
            "-1",
            "",
        ] {
            assert!(!is_region_name(bad), "{bad}");
        }
    }
}
