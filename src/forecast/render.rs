//! The forecast for people (`drctl plan --forecast`), and durations as
//! people read them (the drill reports write them the same way).

use std::fmt::Write as _;

use serde::Serialize;

use super::{Forecast, Source, StepKind};
use crate::clock::Millis;

/// A duration as people read it: `340ms`, `4.2s`, `42s`, `12m04s`, `1h02m03s`.
pub fn duration(ms: Millis) -> String {
    if ms < 0 {
        return format!("-{}", duration(ms.saturating_neg()));
    }
    let s = ms / 1000;
    match ms {
        0 => "0s".into(),
        1..1_000 => format!("{ms}ms"),
        1_000..10_000 => format!("{s}.{}s", ms % 1000 / 100),
        10_000..60_000 => format!("{s}s"),
        60_000..3_600_000 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60),
    }
}

/// The predicted RTO, the critical path as a chain (each step's expected
/// duration and where it came from), and the steps to speed up.
pub fn render(forecast: &Forecast) -> String {
    let mut out = format!(
        "Forecast RTO {} (the rebuild's critical path, every gate passing at once as in a drill)\n",
        duration(forecast.rto_ms)
    );
    if forecast.critical_path.is_empty() {
        out.push_str("Nothing to rebuild: no step takes time.\n");
        return out;
    }
    out.push_str("Critical path:\n");
    let rows: Vec<[String; 4]> = forecast
        .critical_path
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let arrow = if i == 0 { "  " } else { "→ " };
            [
                format!("{arrow}{}", s.step),
                s.kind.to_string(),
                duration(s.duration_ms),
                s.source.to_string(),
            ]
        })
        .collect();
    let width = |c: usize| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0);
    let (w0, w1, w2) = (width(0), width(1), width(2));
    for [step, kind, took, source] in &rows {
        let _ = writeln!(out, "  {step:<w0$}  {kind:<w1$}  {took:>w2$}  {source}");
    }
    if forecast.speedups.is_empty() {
        return out;
    }
    out.push_str("Speeding these up would cut the RTO most:\n");
    for (i, s) in forecast.speedups.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {}. {} ({}, {}): RTO {} shorter if it took no time",
            i + 1,
            s.step,
            s.kind,
            duration(s.duration_ms),
            duration(s.rto_cut_ms)
        );
    }
    out
}

/// The forecast as `plan --json` carries it: `{ rto_seconds, critical_path:
/// [{ step, kind, phase, seconds, source }], speedups: [{ step, kind,
/// seconds, rto_cut_seconds }] }`, in seconds (to the millisecond).
#[derive(Debug, Serialize)]
pub struct InSeconds<'a> {
    pub rto_seconds: f64,
    pub critical_path: Vec<StepInSeconds<'a>>,
    pub speedups: Vec<SpeedupInSeconds<'a>>,
}

#[derive(Debug, Serialize)]
pub struct StepInSeconds<'a> {
    pub step: &'a str,
    pub kind: StepKind,
    pub phase: &'a str,
    pub seconds: f64,
    pub source: &'a Source,
}

#[derive(Debug, Serialize)]
pub struct SpeedupInSeconds<'a> {
    pub step: &'a str,
    pub kind: StepKind,
    pub seconds: f64,
    pub rto_cut_seconds: f64,
}

pub fn in_seconds(forecast: &Forecast) -> InSeconds<'_> {
    let seconds = |ms: Millis| ms as f64 / 1000.0;
    InSeconds {
        rto_seconds: seconds(forecast.rto_ms),
        critical_path: (forecast.critical_path.iter())
            .map(|s| StepInSeconds {
                step: &s.step,
                kind: s.kind,
                phase: &s.phase,
                seconds: seconds(s.duration_ms),
                source: &s.source,
            })
            .collect(),
        speedups: (forecast.speedups.iter())
            .map(|s| SpeedupInSeconds {
                step: &s.step,
                kind: s.kind,
                seconds: seconds(s.duration_ms),
                rto_cut_seconds: seconds(s.rto_cut_ms),
            })
            .collect(),
    }
}
