//! What a sweep did (or, with `--dry-run`, would do): a value the CLI
//! prints, a drill's report lists, and a notification can carry.

use serde::{Deserialize, Serialize};

use crate::clock::Millis;

/// A sweep's result across its regions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SweepSummary {
    pub dry_run: bool,
    /// Where it looked.
    pub regions: Vec<String>,
    /// The expired drills found, each with what was (or would be) deleted.
    pub drills: Vec<SweptDrill>,
    /// Drill environments seen but left alone, and why.
    #[serde(default)]
    pub kept: Vec<Kept>,
}

/// Why a drill's resources may be swept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepReason {
    /// Its `drctl:expires` has passed.
    Expired,
    /// Not yet expired, but the lease of its lock in the shared store lapsed:
    /// the drill's process is gone.
    LeaseLapsed,
}

/// One dead drill's environment in one region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweptDrill {
    pub environment: String,
    pub region: String,
    /// Its `drctl:drill` (the drill's run id).
    pub drill: Option<String>,
    /// When the drill started, read from its run id or environment name.
    pub started_at: Option<Millis>,
    /// Its `drctl:expires`.
    pub expired_at: Option<Millis>,
    pub reason: SweepReason,
    /// `(kind.name or resource type, id)`, deletion order.
    pub resources: Vec<(String, String)>,
    /// The sweep's journaled run (none in a dry run).
    pub run_id: Option<String>,
    /// Deletions that failed, `resource: error`.
    #[serde(default)]
    pub failed: Vec<String>,
    /// What still carries the environment's tag afterwards (must be nothing).
    #[serde(default)]
    pub left: Vec<String>,
}

/// A drill environment a sweep did not touch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    pub environment: String,
    pub region: String,
    pub reason: String,
}

impl SweepSummary {
    /// Resources swept (or to sweep) in all.
    pub fn resources(&self) -> usize {
        self.drills.iter().map(|d| d.resources.len()).sum()
    }

    /// Every deletion done and nothing left behind.
    pub fn ok(&self) -> bool {
        self.drills
            .iter()
            .all(|d| d.failed.is_empty() && d.left.is_empty())
    }
}

impl SweptDrill {
    /// `12 resources of drill 20261122T051500-ab12 (web-dr-drill-…, us-west-2) started 3 days ago`
    pub fn line(&self, now: Millis) -> String {
        let drill = self.drill.as_deref().unwrap_or("(unknown run)");
        let started = match self.started_at {
            Some(at) => format!(" started {}", ago(now - at)),
            None => String::new(),
        };
        let why = match self.reason {
            SweepReason::Expired => "",
            SweepReason::LeaseLapsed => ", its lease lapsed",
        };
        format!(
            "{} resource{} of drill {drill} ({}, {}){started}{why}",
            self.resources.len(),
            if self.resources.len() == 1 { "" } else { "s" },
            self.environment,
            self.region,
        )
    }
}

/// `3 days ago`, `5 hours ago`, `2 minutes ago`, `just now`.
pub fn ago(ms: Millis) -> String {
    let units = [(86_400_000, "day"), (3_600_000, "hour"), (60_000, "minute")];
    for (size, unit) in units {
        let n = ms / size;
        if n >= 1 {
            return format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" });
        }
    }
    "just now".into()
}

/// When a drill started, from its run id (`20261122T051500-ab12`) or its
/// environment's name (`web-dr-drill-20261122t051500z`).
pub fn started_at(drill: Option<&str>, environment: &str) -> Option<Millis> {
    let parse = |text: &str| {
        jiff::civil::DateTime::strptime("%Y%m%dT%H%M%S", text)
            .ok()
            .and_then(|t| t.to_zoned(jiff::tz::TimeZone::UTC).ok())
            .map(|z| z.timestamp().as_millisecond())
    };
    let from_id = drill.and_then(|id| parse(id.get(..15)?));
    from_id.or_else(|| {
        let stamp = environment.rsplit_once("-drill-")?.1;
        parse(&stamp.trim_end_matches('z').to_uppercase())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_swept_drill_says_what_and_since_when() {
        // 2026-11-22T05:15:00Z
        let start = 1_795_324_500_000;
        assert_eq!(started_at(Some("20261122T051500-ab12"), "x"), Some(start));
        assert_eq!(
            started_at(None, "web-dr-drill-20261122t051500z"),
            Some(start)
        );
        assert_eq!(started_at(Some("mine"), "custom"), None);
        let drill = SweptDrill {
            environment: "web-dr-drill-20261122t051500z".into(),
            region: "us-west-2".into(),
            drill: Some("20261122T051500-ab12".into()),
            started_at: Some(start),
            expired_at: None,
            reason: SweepReason::Expired,
            resources: vec![("vpc.main".into(), "vpc-1".into()); 12],
            run_id: None,
            failed: Vec::new(),
            left: Vec::new(),
        };
        assert_eq!(
            drill.line(start + 3 * 86_400_000 + 5),
            "12 resources of drill 20261122T051500-ab12 (web-dr-drill-20261122t051500z, us-west-2) started 3 days ago"
        );
    }
}
