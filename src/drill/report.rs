//! The drill report: what a drill did, how long each part took, whether it
//! passed, and what it left behind. One value, written as JSON (its shape is
//! documented in `docs/drill-report.md`), Markdown and JUnit XML, and read
//! back by `drctl drills history`.

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
pub use crate::outcome::{CheckResult, CheckStatus};

/// Bumped when a field changes meaning or goes away (adding one does not).
pub const REPORT_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillReport {
    pub format: u32,
    pub runbook: String,
    /// The isolated environment the drill built (`<environment>-drill-…`).
    pub environment: String,
    /// The runbook's own environment, which the drill never touches.
    pub source_environment: String,
    pub region: String,
    pub run_id: String,
    /// Who started it, and where.
    pub user: String,
    pub host: String,
    /// Milliseconds since the Unix epoch, UTC.
    pub started_at: Millis,
    pub ended_at: Millis,
    pub verdict: Verdict,
    /// Why it failed, one sentence each (empty when it passed).
    pub failures: Vec<String>,
    pub rto: Rto,
    /// The dependency-graph bound: the longest chain of dependent steps.
    pub critical_path: CriticalPath,
    /// The phase-order bound: each phase's longest chain, one phase after
    /// another (reports before it have it empty).
    #[serde(default)]
    pub phase_order: PhaseOrderBound,
    /// The RTO forecast made at the drill's start, against the measured
    /// RTO (`None`: a drill that made none).
    #[serde(default)]
    pub forecast: Option<ForecastAgainst>,
    pub phases: Vec<PhaseTiming>,
    pub gates: Vec<GateRecord>,
    pub checks: Vec<CheckResult>,
    /// Machine images used: reused by recipe or baked (filled by image kinds).
    pub images: Vec<ImageUse>,
    /// Services: the colours made, the cutover, any automatic rollback.
    #[serde(default)]
    pub services: Vec<ServiceUse>,
    pub resources_created: Vec<CreatedResource>,
    pub teardown: Teardown,
    pub leak_check: LeakCheck,
    /// What the sweep before the rebuild removed: expired drills' leftovers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub swept: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Passed,
    Failed,
    /// Still running at its ttl: stopped, torn down, failed.
    Expired,
}

/// Recovery time: from the drill's start until every check has passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rto {
    /// `None` when the checks never all passed (there is no recovery to time).
    pub measured_ms: Option<Millis>,
    pub target_ms: Option<Millis>,
    /// `None` when either side is missing.
    pub met: Option<bool>,
}

/// The longest chain of dependent steps in the journal, summed: the fastest
/// this rebuild could have been with unlimited parallelism.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriticalPath {
    pub bound_ms: Millis,
    /// The chain, first step first (`stack.kind.name`).
    pub steps: Vec<String>,
    /// RTO divided by the bound: 1.0 means all of the RTO was AWS work on
    /// the chain; the rest is orchestration, gates and checks.
    pub rto_ratio: Option<f64>,
}

/// The rebuild's phases one after another, each as fast as its own steps
/// allow: the fastest it could have been had each phase waited for the one
/// before it, as the runbook's order reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseOrderBound {
    /// The sum of the phases' bounds.
    pub bound_ms: Millis,
    /// Each phase in the order it first started (the cleanup after them
    /// last, when it had steps).
    pub phases: Vec<PhaseBound>,
    /// RTO divided by the bound.
    pub rto_ratio: Option<f64>,
}

/// One phase's longest chain of dependent steps, within the phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseBound {
    pub name: String,
    pub bound_ms: Millis,
    /// The chain, first step first (`stack.kind.name`).
    pub steps: Vec<String>,
}

/// The forecast made when the drill started (from its plan, and the drills
/// before it), and how far the measured RTO was from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastAgainst {
    #[serde(flatten)]
    pub made: crate::forecast::Forecast,
    /// `(forecast − measured) / measured` in percent, one decimal:
    /// negative when the drill took longer than forecast; `None` without a
    /// measured RTO.
    pub error_pct: Option<f64>,
}

impl ForecastAgainst {
    pub fn new(made: crate::forecast::Forecast, measured_ms: Option<Millis>) -> Self {
        let error_pct = measured_ms.filter(|&m| m > 0).map(|m| {
            let pct = (made.rto_ms - m) as f64 * 100.0 / m as f64;
            (pct * 10.0).round() / 10.0
        });
        ForecastAgainst { made, error_pct }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseTiming {
    pub name: String,
    pub started_at: Millis,
    /// When its last attempt ended. After a resume this is not
    /// `started_at + duration_ms`: the time between attempts is in neither.
    pub ended_at: Millis,
    /// From the phase's start to its end; its gate's wait is not included.
    pub duration_ms: Millis,
    pub failed: usize,
    pub stacks: Vec<StackTiming>,
    pub steps: Vec<StepTiming>,
}

/// A stack's span within a phase: from its first step's start to its last
/// step's end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackTiming {
    pub name: String,
    pub duration_ms: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepTiming {
    /// `stack.kind.name`
    pub address: String,
    /// `create`, `update`, `replace`, `delete`
    pub action: String,
    /// Its step kind, as the RTO forecast knows it (`vpc`, `image:bake`,
    /// `service:colour`); `None` for a deletion, or in reports before it.
    #[serde(default)]
    pub kind: Option<String>,
    pub started_at: Millis,
    pub duration_ms: Millis,
    pub ok: bool,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateRecord {
    /// The phase the gate stands before.
    pub phase: String,
    /// `approve`, `reject`, `auto`, `timeout`
    pub decision: String,
    pub by: String,
    pub reason: Option<String>,
    pub at: Millis,
    pub waited_ms: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageUse {
    pub address: String,
    pub image_id: String,
    /// `reused` or `baked`
    pub how: String,
    pub bake_ms: Option<Millis>,
    /// When the bake began (`None` when reused).
    #[serde(default)]
    pub bake_started_at: Option<Millis>,
    /// The recipe hash it was found or baked by.
    #[serde(default)]
    pub recipe: String,
    /// The environment that baked a reused image.
    #[serde(default)]
    pub baked_by: Option<String>,
}

/// A service as the drill left it before its checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceUse {
    /// `stack.service.name`
    pub address: String,
    pub colours: Vec<ColourUse>,
    /// The colour taking the traffic when checked (`None`: none did).
    pub live: Option<String>,
    /// The step that moved the listener to it, in the runbook's cutover
    /// phase (`None`: the runbook has none for this service, or it never ran).
    pub cutover: Option<CutoverStep>,
    /// What the automatic rollback did after failed checks.
    pub rollback: Option<crate::app::RolledBack>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColourUse {
    pub name: String,
    pub target_group: String,
    pub instances: usize,
    pub image: String,
    pub instance_type: String,
    /// Its share of the listener's traffic, in percent.
    pub traffic: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CutoverStep {
    pub phase: String,
    pub started_at: Millis,
    pub duration_ms: Millis,
    pub ok: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedResource {
    pub address: String,
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Teardown {
    /// `always`, `on_success`, `never`
    pub policy: String,
    /// When it began, or was decided against (the report's timeline places it).
    pub started_at: Millis,
    pub performed: bool,
    /// Why it was or was not performed, e.g. `teardown = "never"`.
    pub note: String,
    pub ok: bool,
    pub duration_ms: Millis,
    pub errors: Vec<String>,
}

/// What still carries the drill's environment tag after teardown, found
/// through the tagging API and the services' own describes, not drctl's
/// discovery. Anything here fails the drill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeakCheck {
    /// When it began, or was decided against (the report's timeline places it).
    pub started_at: Millis,
    pub performed: bool,
    /// The sources asked, e.g. `tagging:GetResources`, `ec2:DescribeTags`.
    pub sources: Vec<String>,
    pub leaks: Vec<Leak>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Leak {
    /// An ARN where one exists, else the resource id.
    pub resource: String,
    /// e.g. `ec2:instance`, `elasticloadbalancing:targetgroup`
    pub resource_type: String,
    /// Its `drctl:resource` tag, when it has one (none: made outside drctl).
    pub drctl_resource: Option<String>,
    /// Which sources saw it.
    pub found_by: Vec<String>,
}

impl DrillReport {
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Passed
    }
}
