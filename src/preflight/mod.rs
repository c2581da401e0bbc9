//! DR preflight: would `drctl rebuild` work in this region now? Answered
//! without building anything, from the plan against the region's current
//! state, the images it launches, what the region offers, its limits and
//! the caller's permissions (mutating calls tried with `DryRun=true`).
//!
//! The shape is observe → decide, as everywhere: [`needs`] reads what a
//! plan needs (pure), [`observe`] asks AWS about exactly that (reads and dry
//! runs only), [`verdicts`] turns needs and observations into checks (pure),
//! [`render`] shows them (table, JSON, JUnit).
//!
//! Every check is pass, fail or **unknown**: unknown is what drctl cannot
//! prove either way (a vCPU quota only Service Quotas knows, an ELBv2 call
//! with no dry run). It is never counted as a pass: it is listed with its
//! reason, and `--strict` makes it fail the preflight.

pub mod calls;
pub mod needs;
pub mod observe;
pub mod render;
mod run;
pub mod verdicts;

pub use run::{preflight, PreflightRequest};

use serde::{Deserialize, Serialize};

/// One check's or one finding's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    /// Cannot be proved either way; the evidence says why.
    Unknown,
    Fail,
}

impl Verdict {
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Unknown => "unknown",
            Verdict::Fail => "fail",
        }
    }
}

/// The checks, in the order they are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckName {
    Plan,
    Images,
    Capacity,
    Quotas,
    Permissions,
}

impl CheckName {
    pub const ALL: [CheckName; 5] = [
        CheckName::Plan,
        CheckName::Images,
        CheckName::Capacity,
        CheckName::Quotas,
        CheckName::Permissions,
    ];

    pub fn word(self) -> &'static str {
        match self {
            CheckName::Plan => "plan",
            CheckName::Images => "images",
            CheckName::Capacity => "capacity",
            CheckName::Quotas => "quotas",
            CheckName::Permissions => "permissions",
        }
    }
}

/// One thing a check looked at, and what it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub verdict: Verdict,
    /// What was checked: `ami-…`, `t3.micro in us-west-2b`, `ec2:RunInstances`.
    pub subject: String,
    /// Why it passed, failed or is unknown, in words.
    pub evidence: String,
}

impl Finding {
    pub fn new(verdict: Verdict, subject: impl Into<String>, evidence: impl Into<String>) -> Self {
        Finding {
            verdict,
            subject: subject.into(),
            evidence: evidence.into(),
        }
    }
}

/// One check: its verdict is its worst finding's; with nothing to look
/// at it passes (the plan needs nothing of that kind) and says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: CheckName,
    pub verdict: Verdict,
    /// One line: the count by verdict, or why there is nothing to check.
    pub summary: String,
    pub findings: Vec<Finding>,
}

impl Check {
    /// A check of `findings`; `nothing` is its summary when there are none.
    pub fn of(name: CheckName, findings: Vec<Finding>, nothing: &str) -> Check {
        let verdict = findings
            .iter()
            .map(|f| f.verdict)
            .max()
            .unwrap_or(Verdict::Pass);
        let summary = if findings.is_empty() {
            nothing.to_string()
        } else {
            counts(&findings)
        };
        Check {
            name,
            verdict,
            summary,
            findings,
        }
    }
}

/// `3 pass, 1 fail, 2 unknown` (only the verdicts present).
fn counts(findings: &[Finding]) -> String {
    [Verdict::Pass, Verdict::Fail, Verdict::Unknown]
        .iter()
        .filter_map(|v| {
            let n = findings.iter().filter(|f| f.verdict == *v).count();
            (n > 0).then(|| format!("{n} {}", v.word()))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A preflight's result: what `--json` prints and the run store keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreflightReport {
    /// This preflight's id (a run id's shape; the `run_id` of its
    /// notification).
    pub id: String,
    pub runbook: String,
    pub environment: String,
    pub region: String,
    /// When the region was observed (RFC 3339, UTC).
    pub at: String,
    /// The worst check's verdict.
    pub verdict: Verdict,
    pub checks: Vec<Check>,
}

impl PreflightReport {
    pub fn new(
        id: &str,
        runbook: &str,
        environment: &str,
        region: &str,
        at: String,
        checks: Vec<Check>,
    ) -> Self {
        let verdict = checks
            .iter()
            .map(|c| c.verdict)
            .max()
            .unwrap_or(Verdict::Pass);
        PreflightReport {
            id: id.to_string(),
            runbook: runbook.to_string(),
            environment: environment.to_string(),
            region: region.to_string(),
            at,
            verdict,
            checks,
        }
    }

    /// Findings of `verdict`, with their check.
    pub fn findings(&self, verdict: Verdict) -> impl Iterator<Item = (CheckName, &Finding)> {
        self.checks.iter().flat_map(move |c| {
            c.findings
                .iter()
                .filter(move |f| f.verdict == verdict)
                .map(move |f| (c.name, f))
        })
    }

    /// Whether the preflight failed: a check failed or, `strict`, one is
    /// unknown. Unknowns alone do not fail it by default: on AWS some
    /// questions (vCPU quotas, ELBv2 permissions) have no answer drctl can
    /// get, and an hourly check that always fails is soon ignored.
    pub fn failed(&self, strict: bool) -> bool {
        match self.verdict {
            Verdict::Fail => true,
            Verdict::Unknown => strict,
            Verdict::Pass => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_is_its_worst_finding_and_unknown_fails_only_when_strict() {
        let pass = Finding::new(Verdict::Pass, "a", "ok");
        let unknown = Finding::new(Verdict::Unknown, "b", "cannot tell");
        let fail = Finding::new(Verdict::Fail, "c", "missing");
        let check = Check::of(CheckName::Images, vec![pass.clone(), unknown.clone()], "");
        assert_eq!(check.verdict, Verdict::Unknown);
        assert_eq!(check.summary, "1 pass, 1 unknown");
        let empty = Check::of(CheckName::Images, vec![], "the plan launches no image");
        assert_eq!(
            (empty.verdict, empty.summary.as_str()),
            (Verdict::Pass, "the plan launches no image")
        );
        let report =
            PreflightReport::new("p-1", "rb", "env", "r", String::new(), vec![check.clone()]);
        assert!(!report.failed(false));
        assert!(report.failed(true));
        let failing = Check::of(CheckName::Quotas, vec![pass, fail, unknown], "");
        assert_eq!(failing.summary, "1 pass, 1 fail, 1 unknown");
        let report =
            PreflightReport::new("p-1", "rb", "env", "r", String::new(), vec![check, failing]);
        assert_eq!(report.verdict, Verdict::Fail);
        assert!(report.failed(false));
        assert_eq!(report.findings(Verdict::Fail).count(), 1);
    }
}
