//! The RTO forecast (pure: the plan, the expected durations and the phase
//! order are given; nothing is read or asked here).
//!
//! Each step of the plan is expected to take its step kind's duration (see
//! [`StepKind`]): the median of what this runbook's past drills measured
//! for the kind; else the runbook's `[forecast.priors]`; else drctl's prior
//! from AWS's published figures ([`priors`]). Steps run as the executor runs
//! them when nobody waits at a gate (a drill, `--auto-approve`): each as
//! soon as the steps it depends on are done, across phases, except that a
//! `barrier = true` phase keeps strict order (none of its steps starts
//! before every earlier step is done, and no later step before it is
//! done). The predicted RTO is then the longest chain of steps, and that
//! chain is the critical path.
//!
//! The forecast is of the rebuild's steps. A drill's measured RTO also
//! holds its planning and its checks; its report gives the difference.

pub mod path;
pub mod priors;
pub mod render;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::plan::{Change, Plan};

pub use crate::model::forecast::{Priors, StepKind, StepOp};
pub use priors::{step_kind, step_kind_of};
pub use render::{duration, render};

/// How many steps the forecast names as the ones to speed up.
pub const SPEEDUPS: usize = 3;

/// What this runbook's past drills measured, per step kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measured {
    kinds: BTreeMap<StepKind, Samples>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Samples {
    durations: Vec<Millis>,
    /// How many drills measured at least one.
    drills: usize,
}

impl Measured {
    /// One drill's measured steps (those that succeeded), by kind.
    pub fn add_drill(&mut self, steps: impl IntoIterator<Item = (StepKind, Millis)>) {
        let mut seen = BTreeSet::new();
        for (kind, ms) in steps {
            let samples = self.kinds.entry(kind).or_default();
            samples.durations.push(ms.max(0));
            if seen.insert(kind) {
                samples.drills += 1;
            }
        }
    }

    /// The median of the kind's measured durations (the mean of the middle
    /// two for an even count), and how many drills measured it.
    pub fn median(&self, kind: StepKind) -> Option<(Millis, usize)> {
        let samples = self.kinds.get(&kind)?;
        let mut sorted = samples.durations.clone();
        sorted.sort_unstable();
        let n = sorted.len();
        let median = match n {
            0 => return None,
            _ if n % 2 == 1 => sorted[n / 2],
            _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
        };
        Some((median, samples.drills))
    }
}

/// Where a step's expected duration came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum Source {
    /// drctl's prior from AWS's published figures, and on which.
    Prior { basis: String },
    /// The runbook's `[forecast.priors]`.
    Runbook,
    /// The median of the kind's measured durations in past drills.
    Median { drills: usize },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Prior { basis } => write!(f, "prior: {basis}"),
            Source::Runbook => f.write_str("runbook [forecast.priors]"),
            Source::Median { drills: 1 } => f.write_str("median of 1 drill"),
            Source::Median { drills } => write!(f, "median of {drills} drills"),
        }
    }
}

/// The forecast of a plan's RTO.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forecast {
    /// The predicted RTO: the critical path's length.
    pub rto_ms: Millis,
    /// The longest chain of steps, first step first.
    pub critical_path: Vec<ForecastStep>,
    /// The steps whose speed-up would cut the RTO most (at most
    /// [`SPEEDUPS`]), most first.
    pub speedups: Vec<Speedup>,
}

/// One step with its expected duration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForecastStep {
    /// `stack.kind.name`
    pub step: String,
    pub kind: StepKind,
    pub phase: String,
    pub duration_ms: Millis,
    pub source: Source,
}

/// What the RTO would be if one step took no time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Speedup {
    /// `stack.kind.name`
    pub step: String,
    pub kind: StepKind,
    pub duration_ms: Millis,
    /// The RTO minus the RTO with this step taking no time.
    pub rto_cut_ms: Millis,
}

/// What a forecast is made from.
pub struct Inputs<'a> {
    pub plan: &'a Plan,
    /// The phases (by name) that keep strict order: `barrier = true`.
    pub barriers: &'a BTreeSet<String>,
    /// The runbook's `[forecast.priors]`.
    pub priors: &'a Priors,
    /// What past drills measured.
    pub measured: &'a Measured,
}

/// A step of the plan, placed and timed.
struct Node<'p> {
    change: &'p Change,
    kind: StepKind,
    phase: usize,
    duration_ms: Millis,
    source: Source,
}

/// The forecast of `inputs.plan`: its RTO, its critical path, and the steps
/// to speed up.
pub fn forecast(inputs: &Inputs<'_>) -> Forecast {
    let nodes = nodes(inputs);
    let links = links(inputs, &nodes);
    let durations: Vec<Millis> = nodes.iter().map(|n| n.duration_ms).collect();
    // Ties go to the step planned first: the same plan, the same path.
    let path = path::longest(&durations, &links, |i| i);
    let critical_path = path
        .chain
        .iter()
        .map(|&i| {
            let n = &nodes[i];
            ForecastStep {
                step: n.change.address.to_string(),
                kind: n.kind,
                phase: inputs.plan.phases[n.phase].name.clone(),
                duration_ms: n.duration_ms,
                source: n.source.clone(),
            }
        })
        .collect();
    Forecast {
        rto_ms: path.total,
        critical_path,
        speedups: speedups(&nodes, &links, path.total),
    }
}

/// Every step that takes time, in plan order (phase by phase, each phase's
/// changes in dependency order), with its expected duration.
fn nodes<'p>(inputs: &Inputs<'p>) -> Vec<Node<'p>> {
    let mut nodes = Vec::new();
    for (phase, plan) in inputs.plan.phases.iter().enumerate() {
        for change in &plan.changes {
            let Some(kind) = step_kind(change) else {
                continue;
            };
            let (duration_ms, source) = match inputs.measured.median(kind) {
                Some((ms, drills)) => (ms, Source::Median { drills }),
                None => match inputs.priors.get(&kind) {
                    Some(d) => (d.as_millis() as Millis, Source::Runbook),
                    None => {
                        let (ms, basis) = priors::prior(kind, change);
                        (ms, Source::Prior { basis })
                    }
                },
            };
            nodes.push(Node {
                change,
                kind,
                phase,
                duration_ms,
                source,
            });
        }
    }
    nodes
}

/// What each step waits for: the latest earlier step of each address it
/// depends on, and of its own (a cutover follows its colour); and, around
/// a barrier phase, every step before it and every step of it.
fn links(inputs: &Inputs<'_>, nodes: &[Node<'_>]) -> Vec<Vec<usize>> {
    let mut links: Vec<Vec<usize>> = Vec::with_capacity(nodes.len());
    // The steps every later one waits for: the last barrier phase's.
    let mut fence: Vec<usize> = Vec::new();
    let mut start = 0;
    for (phase, plan) in inputs.plan.phases.iter().enumerate() {
        let end = start
            + nodes[start..]
                .iter()
                .take_while(|n| n.phase == phase)
                .count();
        let barrier = inputs.barriers.contains(&plan.name);
        for i in start..end {
            let mut waits: BTreeSet<usize> = match barrier {
                true => (0..start).collect(),
                false => fence.iter().copied().collect(),
            };
            let node = &nodes[i];
            let own = std::iter::once(&node.change.address);
            for address in node.change.depends_on.iter().chain(own) {
                if let Some(j) = (0..i).rev().find(|&j| &nodes[j].change.address == address) {
                    waits.insert(j);
                }
            }
            links.push(waits.into_iter().collect());
        }
        if barrier {
            // A barrier phase with no step to take is done once everything
            // before it is.
            fence = match start == end {
                true => (0..start).collect(),
                false => (start..end).collect(),
            };
        }
        start = end;
    }
    links
}

/// For each step that takes time, how much sooner the rebuild would end if
/// it took none; the [`SPEEDUPS`] largest cuts, ties to the step planned
/// first.
fn speedups(nodes: &[Node<'_>], links: &[Vec<usize>], rto_ms: Millis) -> Vec<Speedup> {
    let durations: Vec<Millis> = nodes.iter().map(|n| n.duration_ms).collect();
    let mut cuts: Vec<(Millis, usize)> = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        if node.duration_ms <= 0 {
            continue;
        }
        let mut without = durations.clone();
        without[i] = 0;
        let cut = rto_ms - path::longest(&without, links, |j| j).total;
        if cut > 0 {
            cuts.push((cut, i));
        }
    }
    cuts.sort_by_key(|&(cut, i)| (std::cmp::Reverse(cut), i));
    cuts.into_iter()
        .take(SPEEDUPS)
        .map(|(cut, i)| Speedup {
            step: nodes[i].change.address.to_string(),
            kind: nodes[i].kind,
            duration_ms: nodes[i].duration_ms,
            rto_cut_ms: cut,
        })
        .collect()
}

#[cfg(test)]
mod tests;
