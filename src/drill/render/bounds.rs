//! The report's bounds and forecast in Markdown: the phase-order bound
//! beside the critical path, and the forecast made at the drill's start
//! set against what was measured, step by step.

use std::fmt::{self, Write as _};

use super::{duration, table};
use crate::drill::report::DrillReport;

/// The bound of the phases one after another, each phase's own chain summed.
pub(super) fn phase_order_sentence(r: &DrillReport) -> String {
    let bound = &r.phase_order;
    if bound.phases.is_empty() {
        return "**Phase-order bound**: no steps were journaled.".into();
    }
    let sum: Vec<String> = (bound.phases.iter())
        .map(|p| format!("{} {}", p.name, duration(p.bound_ms)))
        .collect();
    let ratio = match bound.rto_ratio {
        Some(x) => format!(" RTO is {x:.2}× the bound."),
        None => String::new(),
    };
    let (total, sum) = (duration(bound.bound_ms), sum.join(" + "));
    format!("**Phase-order bound** {total}: {sum}, one phase after another.{ratio}")
}

/// The forecast made at the start against the measured RTO.
pub(super) fn forecast_sentence(r: &DrillReport) -> Option<String> {
    let f = r.forecast.as_ref()?;
    let forecast = duration(f.made.rto_ms);
    Some(match (r.rto.measured_ms, f.error_pct) {
        (Some(rto), Some(error)) => {
            let (rto, how) = (duration(rto), error_words(error));
            format!("**Forecast** at the start: {forecast}; the measured RTO {rto} makes it {how}.")
        }
        _ => {
            format!("**Forecast** at the start: {forecast}; no RTO was measured to set it against.")
        }
    })
}

/// A forecast's error as words: `12.5% short`, `3% long`, `exact`.
pub(crate) fn error_words(error_pct: f64) -> String {
    if error_pct == 0.0 {
        return "exact".into();
    }
    match error_pct {
        e if e < 0.0 => format!("{}% short", -e),
        e => format!("{e}% long"),
    }
}

/// The forecast's critical path, each step's expected duration and where it
/// came from, against what the step took in this drill.
pub(super) fn write_forecast(out: &mut String, r: &DrillReport) -> fmt::Result {
    let Some(f) = &r.forecast else {
        return Ok(());
    };
    writeln!(
        out,
        "## Forecast against measured
"
    )?;
    let measured = |step: &str, kind: &str, phase: &str| {
        (r.phases.iter())
            .filter(|p| p.name == phase)
            .flat_map(|p| &p.steps)
            .find(|s| s.address == step && s.kind.as_deref() == Some(kind))
            .map_or_else(|| "—".to_string(), |s| duration(s.duration_ms))
    };
    let rows = f.made.critical_path.iter().map(|s| {
        let kind = s.kind.to_string();
        let took = measured(&s.step, &kind, &s.phase);
        let (expected, source) = (duration(s.duration_ms), s.source.to_string());
        vec![
            s.step.clone(),
            kind,
            s.phase.clone(),
            expected,
            source,
            took,
        ]
    });
    let header = ["step", "kind", "phase", "forecast", "from", "measured"];
    table(out, &header, rows)?;
    let total = duration(f.made.rto_ms);
    match (r.rto.measured_ms, f.error_pct) {
        (Some(rto), Some(error)) => writeln!(
            out,
            "Forecast RTO {total}, measured {} ({}).\n",
            duration(rto),
            error_words(error)
        ),
        _ => writeln!(out, "Forecast RTO {total}; no RTO measured.\n"),
    }
}

/// Each phase's own longest chain: the phase-order bound's terms.
pub(super) fn write_bounds(out: &mut String, r: &DrillReport) -> fmt::Result {
    writeln!(
        out,
        "## Bounds
"
    )?;
    let dependency = duration(r.critical_path.bound_ms);
    let phase_order = duration(r.phase_order.bound_ms);
    let ratio = |x: Option<f64>| x.map_or_else(|| "—".to_string(), |x| format!("{x:.2}×"));
    let rows = [
        vec![
            "dependency graph".to_string(),
            dependency,
            ratio(r.critical_path.rto_ratio),
            chain(&r.critical_path.steps),
        ],
        vec![
            "phase order".to_string(),
            phase_order,
            ratio(r.phase_order.rto_ratio),
            String::new(),
        ],
    ];
    let rows = rows.into_iter().chain(r.phase_order.phases.iter().map(|p| {
        let name = format!("phase {}", p.name);
        vec![name, duration(p.bound_ms), String::new(), chain(&p.steps)]
    }));
    table(out, &["bound", "length", "RTO ÷ bound", "chain"], rows)
}

/// `a → b → c`
fn chain(steps: &[String]) -> String {
    steps.join(" → ")
}
