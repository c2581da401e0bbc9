//! `drctl drills history RUNBOOK`: a runbook's drill reports kept in the
//! run store, read back and shown as a table and an
//! RTO trend drawn in plain text (no colour codes: the output may be piped
//! into a file or a chat message).

use super::rehearse::Finished;
use super::render;
use crate::app::Context;
use crate::store::{Key, ReportFormat, RunStore};
use std::path::{Path, PathBuf};

use super::render::{duration, verdict_word};
use super::report::{DrillReport, REPORT_FORMAT};
use crate::clock::Millis;
use crate::error::Error;
use crate::forecast::{Measured, StepKind};

/// How many columns the longest bar of the RTO trend takes.
const CHART_WIDTH: i64 = 40;

/// Every drill report of the runbook (its `*.json` objects), oldest
/// first; none when no drill has run yet. A report that does not parse is
/// an error naming it: a history that skipped it could hide a failed drill.
pub fn read_history(store: &dyn RunStore, runbook: &str) -> Result<Vec<DrillReport>, Error> {
    let keys = store
        .list(&Key::reports(runbook))
        .map_err(|e| e.doing("list the drill reports in"))?;
    let mut reports = Vec::new();
    for key in keys.iter().filter(|k| k.name().ends_with(".json")) {
        reports.push(read_report(store, key)?);
    }
    reports.sort_by(|a, b| (a.started_at, &a.run_id).cmp(&(b.started_at, &b.run_id)));
    Ok(reports)
}

/// What the runbook's past drills measured, per step kind: each step that
/// succeeded, in every drill report (steps of reports written before step
/// kinds were recorded count for nothing).
pub fn measured(reports: &[DrillReport]) -> Measured {
    let mut measured = Measured::default();
    for report in reports {
        let steps = report.phases.iter().flat_map(|p| &p.steps).filter(|s| s.ok);
        measured.add_drill(steps.filter_map(|s| {
            let kind = StepKind::parse(s.kind.as_deref()?)?;
            Some((kind, s.duration_ms))
        }));
    }
    measured
}

/// [`measured`] of the runbook's drill reports in the store.
pub fn measured_in(store: &dyn RunStore, runbook: &str) -> Result<Measured, Error> {
    Ok(measured(&read_history(store, runbook)?))
}

fn read_report(store: &dyn RunStore, key: &Key) -> Result<DrillReport, Error> {
    let failed = |action, source| Error::Io {
        action,
        path: store.location(key),
        source,
    };
    let bytes = store
        .get(key)
        .map_err(|e| e.doing("read the drill report"))?
        .ok_or_else(|| failed("read the drill report", std::io::ErrorKind::NotFound.into()))?;
    let report: DrillReport =
        serde_json::from_slice(&bytes).map_err(|e| failed("parse the drill report", e.into()))?;
    // A newer format changed what a field means: reading it as this one
    // would show wrong numbers rather than none.
    if report.format > REPORT_FORMAT {
        let newer = format!(
            "it has format {}; this drctl reads format {REPORT_FORMAT} and older",
            report.format
        );
        let source = std::io::Error::new(std::io::ErrorKind::InvalidData, newer);
        return Err(failed("read the drill report", source));
    }
    Ok(report)
}

/// Past drills as a table (start in UTC, verdict, RTO, target, whether it
/// was met, the RTO forecast at its start and the forecast's error, run
/// id), then the RTO trend: one bar per drill scaled to the longest RTO (or
/// the target, if longer), the target `target_ms` marked with a `│` in the
/// same column on every line, a sentence comparing the latest RTO with the
/// median of the earlier ones, and one with the forecast's error over time.
pub fn render_history(reports: &[DrillReport], target_ms: Option<Millis>) -> String {
    if reports.is_empty() {
        return "No drills recorded yet.\n".into();
    }
    let dash = || "—".to_string();
    let mut rows = vec![[
        "started (UTC)",
        "verdict",
        "RTO",
        "target",
        "met",
        "forecast",
        "error",
        "run",
    ]
    .map(String::from)];
    for r in reports {
        let met = r
            .rto
            .met
            .map_or_else(dash, |met| if met { "yes" } else { "no" }.into());
        let forecast = r.forecast.as_ref();
        rows.push([
            utc_minute(r.started_at),
            verdict_word(r.verdict).into(),
            r.rto.measured_ms.map_or_else(dash, duration),
            r.rto.target_ms.map_or_else(dash, duration),
            met,
            forecast.map_or_else(dash, |f| duration(f.made.rto_ms)),
            forecast
                .and_then(|f| f.error_pct)
                .map_or_else(dash, percent),
            r.run_id.clone(),
        ]);
    }
    let mut out = columns(&rows);
    out.push_str(&format!("\nRTO trend\n{}", chart(reports, target_ms)));
    out.push_str(&trend(reports));
    out.push('\n');
    if let Some(line) = forecast_trend(reports) {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// `+12.5%`, `-3%`: a forecast's error, signed.
fn percent(pct: f64) -> String {
    format!("{pct:+}%")
}

/// The forecast's error drill by drill, oldest first; `None` when no drill
/// made a forecast (reports before forecasts, or no RTO measured).
fn forecast_trend(reports: &[DrillReport]) -> Option<String> {
    let errors: Vec<String> = reports
        .iter()
        .filter_map(|r| r.forecast.as_ref()?.error_pct)
        .map(percent)
        .collect();
    if errors.is_empty() {
        return None;
    }
    Some(format!(
        "The forecast's error (forecast against measured RTO), oldest first: {}.",
        errors.join(" → ")
    ))
}

/// One past drill, as `drctl drills history --json` lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HistoryEntry {
    pub run_id: String,
    pub started_at: Millis,
    pub verdict: super::report::Verdict,
    pub rto_ms: Option<Millis>,
    pub target_ms: Option<Millis>,
    pub met: Option<bool>,
    /// The RTO forecast at the drill's start.
    pub forecast_rto_ms: Option<Millis>,
    /// `(forecast − measured) / measured`, in percent.
    pub forecast_error_pct: Option<f64>,
    /// The dependency-graph bound and the phase-order bound.
    pub critical_path_bound_ms: Millis,
    pub phase_order_bound_ms: Millis,
}

/// Past drills, oldest first, for `drctl drills history --json`.
pub fn history_entries(reports: &[DrillReport]) -> Vec<HistoryEntry> {
    reports
        .iter()
        .map(|r| HistoryEntry {
            run_id: r.run_id.clone(),
            started_at: r.started_at,
            verdict: r.verdict,
            rto_ms: r.rto.measured_ms,
            target_ms: r.rto.target_ms,
            met: r.rto.met,
            forecast_rto_ms: r.forecast.as_ref().map(|f| f.made.rto_ms),
            forecast_error_pct: r.forecast.as_ref().and_then(|f| f.error_pct),
            critical_path_bound_ms: r.critical_path.bound_ms,
            phase_order_bound_ms: r.phase_order.bound_ms,
        })
        .collect()
}

/// The rows as left-aligned columns two spaces apart.
fn columns<const N: usize>(rows: &[[String; N]]) -> String {
    let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..N).map(width).collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// One line per drill: its date, a bar as long as its RTO, the target's
/// `│` inserted at its column (so every bar keeps its length), the RTO.
fn chart(reports: &[DrillReport], target_ms: Option<Millis>) -> String {
    let longest = reports.iter().filter_map(|r| r.rto.measured_ms).max();
    let scale = longest.max(target_ms).unwrap_or(0).max(1);
    let columns = |ms: Millis| (ms.max(0) * CHART_WIDTH + scale / 2) / scale;
    let marker = target_ms.map(|t| columns(t).min(CHART_WIDTH) as usize);
    let mut out = match target_ms {
        Some(t) => format!(
            "(a full bar is {}; │ marks the {} target)\n",
            duration(scale),
            duration(t)
        ),
        None => format!("(a full bar is {}; no target)\n", duration(scale)),
    };
    for r in reports {
        let (length, label) = match r.rto.measured_ms {
            // Any RTO at all shows as at least one block.
            Some(rto) => (columns(rto).max(1), duration(rto)),
            None => (0, "— (the checks never all passed)".into()),
        };
        let mut bar: Vec<char> = (0..CHART_WIDTH)
            .map(|i| if i < length { '█' } else { ' ' })
            .collect();
        if let Some(column) = marker {
            bar.insert(column, '│');
        }
        let bar: String = bar.into_iter().collect();
        let failed = if r.passed() { "" } else { ", failed" };
        out.push_str(&format!(
            "{}  {bar}  {label}{failed}\n",
            utc_minute(r.started_at)
        ));
    }
    out
}

/// The latest drill's RTO against the median of the earlier measured ones.
fn trend(reports: &[DrillReport]) -> String {
    let Some((latest, earlier)) = reports.split_last() else {
        return String::new();
    };
    let Some(rto) = latest.rto.measured_ms else {
        return "The latest drill measured no RTO: its checks never all passed.".into();
    };
    let mut before: Vec<Millis> = earlier.iter().filter_map(|r| r.rto.measured_ms).collect();
    if before.is_empty() {
        return format!(
            "The latest RTO is {}; no earlier drill measured one to compare.",
            duration(rto)
        );
    }
    before.sort_unstable();
    let n = before.len();
    let median = if n % 2 == 1 {
        before[n / 2]
    } else {
        (before[n / 2 - 1] + before[n / 2]) / 2
    };
    let change = (rto - median) as f64 * 100.0 / median.max(1) as f64;
    let how = match change.round() as i64 {
        0 => "about the same as".to_string(),
        p if p > 0 => format!("{p}% slower than"),
        p => format!("{}% faster than", -p),
    };
    let drills = if n == 1 { "drill" } else { "drills" };
    format!(
        "The latest RTO, {}, is {how} the median of the {n} earlier {drills} ({}).",
        duration(rto),
        duration(median)
    )
}

/// `2026-11-22 04:00` in UTC.
fn utc_minute(ms: Millis) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// The drill's reports in the store (JSON and Markdown), and the JUnit file.
pub(crate) fn write_reports(
    ctx: &Context<'_>,
    report: DrillReport,
    junit: Option<PathBuf>,
) -> Result<Finished, Error> {
    let store = ctx.store.as_ref();
    let key = |format| Key::report(&report.runbook, &report.run_id, format);
    let (json, markdown) = (key(ReportFormat::Json), key(ReportFormat::Markdown));
    let text = serde_json::to_string_pretty(&report).expect("reports serialise") + "\n";
    store.put(&json, text.as_bytes())?;
    store.put(&markdown, render::markdown(&report).as_bytes())?;
    if let Some(junit) = &junit {
        write_file(junit, &super::junit::junit(&report))?;
    }
    Ok(Finished {
        json: store.location(&json),
        markdown: store.location(&markdown),
        report,
        junit,
        root: PathBuf::new(),
    })
}

/// The JUnit file where `--junit` asks for it (outside the store: CI reads it).
fn write_file(path: &Path, text: &str) -> Result<(), Error> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| Error::Io {
            action: "create",
            path: parent.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(path, text).map_err(|source| Error::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::render::tests::{sample, T};
    use crate::drill::report::{ForecastAgainst, Verdict};
    use crate::store::LocalStore;

    const DAY: Millis = 86_400_000;

    /// A drill `days` after the sample's, with this RTO (minutes).
    fn drill(days: i64, rto_minutes: Option<i64>, passed: bool) -> DrillReport {
        let mut report = sample();
        report.run_id = format!("r-{days}");
        report.started_at = T + days * DAY;
        report.verdict = if passed {
            Verdict::Passed
        } else {
            Verdict::Failed
        };
        report.rto.measured_ms = rto_minutes.map(|m| m * 60_000);
        report.rto.met = report.rto.measured_ms.map(|rto| rto <= 1_800_000);
        // The sample's forecast (8m00s) against this RTO.
        let made = report.forecast.take().expect("the sample forecasts").made;
        report.forecast = Some(ForecastAgainst::new(made, report.rto.measured_ms));
        report
    }

    #[test]
    fn history_is_every_json_report_of_the_runbook_oldest_first() {
        let state = tempfile::tempdir().unwrap();
        let store = LocalStore::new(state.path());
        let dir = store.location(&Key::reports("fleet"));
        assert_eq!(dir, state.path().join("reports/fleet"));
        assert!(
            read_history(&store, "fleet").unwrap().is_empty(),
            "no drill yet"
        );
        std::fs::create_dir_all(&dir).unwrap();
        for (name, days) in [("b.json", 7), ("a.json", 14), ("c.json", 0)] {
            let json = serde_json::to_string(&drill(days, Some(10), true)).unwrap();
            std::fs::write(dir.join(name), json).unwrap();
        }
        std::fs::write(dir.join("c.md"), "# Drill of fleet: PASSED").unwrap();
        let runs: Vec<String> = read_history(&store, "fleet")
            .unwrap()
            .into_iter()
            .map(|r| r.run_id)
            .collect();
        assert_eq!(runs, ["r-0", "r-7", "r-14"]);
    }

    /// A store where the runbook `fleet` has one report file, `name`,
    /// holding `text`; the store's directory lives as long as this value.
    struct OneReport {
        _state: tempfile::TempDir,
        store: LocalStore,
        file: PathBuf,
    }

    fn one_report(name: &str, text: &str) -> OneReport {
        let state = tempfile::tempdir().unwrap();
        let store = LocalStore::new(state.path());
        let dir = store.location(&Key::reports("fleet"));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(name);
        std::fs::write(&file, text).unwrap();
        OneReport {
            _state: state,
            store,
            file,
        }
    }

    #[test]
    fn a_report_that_does_not_parse_is_an_error_naming_its_file() {
        let broken = one_report("broken.json", "{\"format\": 1,");
        let err = read_history(&broken.store, "fleet").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot parse the drill report {}", broken.file.display())
        );
        assert!(
            err.render().contains("caused by: EOF while parsing"),
            "{}",
            err.render()
        );
    }

    /// A newer format may mean something else by a field: reading it as
    /// this one would show wrong numbers, so it is refused.
    #[test]
    fn a_report_of_a_newer_format_is_an_error_not_a_misreading() {
        let mut report = drill(0, Some(10), true);
        report.format = REPORT_FORMAT + 1;
        let newer = one_report("newer.json", &serde_json::to_string(&report).unwrap());
        let err = read_history(&newer.store, "fleet").unwrap_err().render();
        assert!(err.contains("this drctl reads format 1 and older"), "{err}");
    }

    #[test]
    fn the_documented_example_is_a_report_with_every_field() {
        let doc = include_str!("../../docs/drill-report.md");
        let example = doc
            .split("```json\n")
            .nth(1)
            .and_then(|r| r.split("```").next());
        let example: serde_json::Value = serde_json::from_str(example.unwrap()).unwrap();
        let report: DrillReport = serde_json::from_value(example.clone()).unwrap();
        assert_eq!(serde_json::to_value(report).unwrap(), example);
    }

    #[test]
    fn history_is_a_table_then_a_bar_per_drill_with_the_target_marked() {
        let reports = [
            drill(0, Some(10), true),
            drill(7, Some(20), true),
            drill(14, None, false),
            drill(21, Some(40), false),
        ];
        let out = render_history(&reports, Some(1_800_000));
        let bar = |blocks: usize, marker: usize| {
            let mut bar: Vec<char> = "█".repeat(blocks).chars().collect();
            bar.resize(40, ' ');
            bar.insert(marker, '│');
            bar.into_iter().collect::<String>()
        };
        let expected = [
            "started (UTC)     verdict  RTO     target  met  forecast  error  run",
            "2026-11-22 04:00  passed   10m00s  30m00s  yes  8m00s     -20%   r-0",
            "2026-11-29 04:00  passed   20m00s  30m00s  yes  8m00s     -60%   r-7",
            "2026-12-06 04:00  failed   —       30m00s  —    8m00s     —      r-14",
            "2026-12-13 04:00  failed   40m00s  30m00s  no   8m00s     -80%   r-21",
            "",
            "RTO trend",
            "(a full bar is 40m00s; │ marks the 30m00s target)",
            &format!("2026-11-22 04:00  {}  10m00s", bar(10, 30)),
            &format!("2026-11-29 04:00  {}  20m00s", bar(20, 30)),
            &format!("2026-12-06 04:00  {}  — (the checks never all passed), failed", bar(0, 30)),
            &format!("2026-12-13 04:00  {}  40m00s, failed", bar(40, 30)),
            "The latest RTO, 40m00s, is 167% slower than the median of the 2 earlier drills (15m00s).",
            "The forecast's error (forecast against measured RTO), oldest first: -20% → -60% → -80%.",
        ];
        assert_eq!(out.lines().collect::<Vec<_>>(), expected, "\n{out}");
        assert!(!out.contains('\u{1b}'), "no colour codes");
    }

    #[test]
    fn the_history_json_has_a_drills_rto_its_forecast_and_its_bounds() {
        let entries = history_entries(&[drill(0, Some(10), true), drill(7, None, false)]);
        let json = serde_json::to_value(&entries).unwrap();
        assert_eq!(
            json[0],
            serde_json::json!({
                "run_id": "r-0", "started_at": T, "verdict": "passed",
                "rto_ms": 600_000, "target_ms": 1_800_000, "met": true,
                "forecast_rto_ms": 480_000, "forecast_error_pct": -20.0,
                "critical_path_bound_ms": 570_000, "phase_order_bound_ms": 540_000,
            })
        );
        assert_eq!(json[1]["forecast_error_pct"], serde_json::Value::Null);
        assert_eq!(json[1]["rto_ms"], serde_json::Value::Null);
    }

    #[test]
    fn past_drills_measure_each_step_kind_that_succeeded() {
        let kind = |k: &str| StepKind::parse(k).unwrap();
        let mut older = drill(0, Some(10), true);
        // Reports before step kinds were recorded count for nothing.
        older.phases[0].steps[0].kind = None;
        let measured = measured(&[older, drill(7, Some(10), false)]);
        // The sample's vpc took 1m10s; its instances failed (not counted).
        assert_eq!(measured.median(kind("vpc")), Some((70_000, 1)));
        assert_eq!(measured.median(kind("instances")), None);
    }

    #[test]
    fn the_trend_sentence_compares_the_latest_rto_with_the_earlier_median() {
        let last_line = |reports: &[DrillReport]| {
            let mut reports = reports.to_vec();
            for r in &mut reports {
                r.forecast = None;
            }
            let out = render_history(&reports, None);
            out.lines().last().unwrap().to_string()
        };
        let faster = [
            drill(0, Some(12), true),
            drill(7, Some(14), true),
            drill(14, Some(20), true),
            drill(21, Some(13), true),
        ];
        assert_eq!(
            last_line(&faster),
            "The latest RTO, 13m00s, is 7% faster than the median of the 3 earlier drills (14m00s)."
        );
        assert_eq!(
            last_line(&[drill(0, Some(12), true), drill(7, Some(12), true)]),
            "The latest RTO, 12m00s, is about the same as the median of the 1 earlier drill (12m00s)."
        );
        assert_eq!(
            last_line(&[drill(0, None, false), drill(7, Some(9), true)]),
            "The latest RTO is 9m00s; no earlier drill measured one to compare."
        );
        assert_eq!(
            last_line(&[drill(0, Some(9), true), drill(7, None, false)]),
            "The latest drill measured no RTO: its checks never all passed."
        );
        let out = render_history(&[drill(0, Some(9), true)], None);
        assert!(out.contains("(a full bar is 9m00s; no target)\n"), "{out}");
        assert_eq!(render_history(&[], Some(1)), "No drills recorded yet.\n");
    }
}
