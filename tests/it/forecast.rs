//! The RTO forecast through the binary: `plan --forecast` on the example
//! runbooks, a runbook's bad `[forecast.priors]`, and a drill's report
//! setting the forecast and both bounds against what it measured, after
//! which the next forecast times steps by the drill.

use std::path::{Path, PathBuf};

use drctl::drill::report::{DrillReport, StepTiming, Verdict};
use serde_json::Value;

use crate::drill::Drill;
use crate::support::{drctl_at, moto_endpoint, outcome, Repo};

/// `drctl ARGS` in the project's own checkout (its example stacks and
/// runbooks) against moto, with a state directory of its own.
fn in_examples(state: &Path, args: &[&str]) -> (Option<i32>, String) {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    outcome(drctl_at(&examples, state, moto_endpoint()).args(args))
}

/// The plan JSON's forecast, after checking its shape: a positive RTO that
/// is the sum of its chain, each step with its duration and source.
fn forecast_of(text: &str) -> Value {
    let plan: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let forecast = plan["forecast"].clone();
    let rto = forecast["rto_seconds"].as_f64().expect("rto_seconds");
    let chain = forecast["critical_path"].as_array().expect("critical_path");
    assert!(rto > 0.0 && !chain.is_empty(), "{forecast:#}");
    let sum: f64 = chain.iter().map(|s| s["seconds"].as_f64().unwrap()).sum();
    assert!(
        (sum - rto).abs() < 0.01,
        "the chain sums to the RTO: {forecast:#}"
    );
    for step in chain {
        assert!(step["step"]
            .as_str()
            .is_some_and(|s| s.split('.').count() == 3));
        assert!(step["source"]["from"].is_string(), "{step:#}");
    }
    assert!(forecast["speedups"].as_array().unwrap().len() <= 3);
    forecast
}

#[test]
fn plan_forecast_works_on_every_example_runbook_in_text_and_json() {
    let state = tempfile::tempdir().unwrap();
    for runbook in ["web-dr-drill", "fleet-rehearsal", "images"] {
        let (code, text) = in_examples(state.path(), &["plan", runbook, "--forecast"]);
        assert_eq!(code, Some(0), "{runbook}: {text}");
        let forecast = text
            .split("\nForecast RTO ")
            .nth(1)
            .unwrap_or_else(|| panic!("{runbook}: no forecast after the plan in {text}"));
        assert!(forecast.contains("Critical path:\n"), "{text}");
        assert!(forecast.contains("prior: "), "no drill yet: {text}");
        assert!(
            forecast.contains("Speeding these up would cut the RTO most:\n  1. "),
            "{text}"
        );

        let (code, json) = in_examples(state.path(), &["plan", runbook, "--forecast", "--json"]);
        assert_eq!(code, Some(0), "{runbook}: {json}");
        let forecast = forecast_of(&json);
        // Every example bakes (or reuses) the app image before its fleet:
        // with nothing in the sandbox, the bake is on the critical path.
        let kinds: Vec<&str> = forecast["critical_path"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["kind"].as_str().unwrap())
            .collect();
        assert!(kinds.contains(&"image:bake"), "{runbook}: {forecast:#}");
    }
    // The web runbook's service: a colour, then its cutover a phase later.
    let (_, json) = in_examples(
        state.path(),
        &["plan", "web-dr-drill", "--forecast", "--json"],
    );
    let forecast = forecast_of(&json);
    let tail: Vec<(&str, &str)> = forecast["critical_path"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .take(2)
        .map(|s| (s["kind"].as_str().unwrap(), s["phase"].as_str().unwrap()))
        .collect();
    assert_eq!(
        tail,
        [
            ("service:cutover", "cutover"),
            ("service:colour", "compute")
        ]
    );
    // Without --forecast, the plan JSON is as before.
    let (_, json) = in_examples(state.path(), &["plan", "fleet-rehearsal", "--json"]);
    let plan: Value = serde_json::from_str(&json).unwrap();
    assert!(plan.get("forecast").is_none(), "{json}");
}

#[test]
fn a_bad_forecast_prior_is_exit_2_with_file_line_and_key_and_no_call() {
    let repo = Repo::with(&[]);
    repo.edit("runbooks/rb.toml", |text| {
        format!("{text}\n[forecast.priors]\n\"image:bakes\" = \"8m\"\nvpc = \"soon\"\n")
    });
    let state = tempfile::tempdir().unwrap();
    // Nothing listens there: a call would fail differently.
    let mut plan = drctl_at(repo.root(), state.path(), "http://127.0.0.1:9");
    let (code, text) = outcome(plan.args(["plan", "rb", "--forecast"]));
    assert_eq!(code, Some(2), "{text}");
    let line = |n: usize| format!("runbooks/rb.toml:{n}:");
    let lines = crate::support::RUNBOOK.lines().count();
    assert!(text.contains(&line(lines + 3)), "{text}");
    assert!(
        text.contains("forecast.priors.image:bakes: unknown step kind `image:bakes`"),
        "{text}"
    );
    assert!(text.contains("did you mean `image:bake`?"), "{text}");
    assert!(text.contains(&line(lines + 4)), "{text}");
    assert!(
        text.contains("forecast.priors.vpc: invalid duration `soon`"),
        "{text}"
    );
    let (code, text) =
        outcome(drctl_at(repo.root(), state.path(), "http://127.0.0.1:9").args(["validate", "rb"]));
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("forecast.priors.image:bakes"), "{text}");
}

/// The median of the successful steps of `kind` in `report`, in seconds.
fn measured_median(report: &DrillReport, kind: &str) -> Option<f64> {
    let mut ms: Vec<i64> = report
        .phases
        .iter()
        .flat_map(|p| &p.steps)
        .filter(|s: &&StepTiming| s.ok && s.kind.as_deref() == Some(kind))
        .map(|s| s.duration_ms)
        .collect();
    ms.sort_unstable();
    let n = ms.len();
    let median = match n {
        0 => return None,
        _ if n % 2 == 1 => ms[n / 2],
        _ => (ms[n / 2 - 1] + ms[n / 2]) / 2,
    };
    Some(median as f64 / 1000.0)
}

#[tokio::test]
async fn a_drill_reports_its_forecast_and_both_bounds_and_the_next_forecast_uses_it() {
    let d = Drill::new("forecast-drill", 181, None);
    let (code, text) = d.run(&["drill", "rb"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("Forecast RTO "), "said at the start: {text}");
    let (report, json) = d.report();
    assert_eq!(report.verdict, Verdict::Passed, "{json:#}");
    let rto = report.rto.measured_ms.expect("measured");

    // The forecast made at the start, from priors alone (no drill before).
    let forecast = report.forecast.as_ref().expect("a forecast");
    assert!(forecast.made.rto_ms > 0, "{json:#}");
    assert!(!forecast.made.critical_path.is_empty(), "{json:#}");
    let chain_sum: i64 = forecast
        .made
        .critical_path
        .iter()
        .map(|s| s.duration_ms)
        .sum();
    assert_eq!(chain_sum, forecast.made.rto_ms);
    assert!(
        json["forecast"]["critical_path"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["source"]["from"] == "prior"),
        "{json:#}"
    );
    let pct = (forecast.made.rto_ms - rto) as f64 * 100.0 / rto as f64;
    let expected = (pct * 10.0).round() / 10.0;
    assert_eq!(forecast.error_pct, Some(expected), "{json:#}");

    // Both bounds, from the measured steps, and the RTO against each.
    let dependency = &report.critical_path;
    let phase_order = &report.phase_order;
    let names: Vec<&str> = phase_order.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["foundation", "compute"], "{json:#}");
    assert_eq!(
        phase_order.bound_ms,
        phase_order.phases.iter().map(|p| p.bound_ms).sum::<i64>()
    );
    assert!(phase_order.bound_ms >= dependency.bound_ms, "{json:#}");
    assert!(dependency.rto_ratio.is_some() && phase_order.rto_ratio.is_some());
    assert!(
        report
            .phases
            .iter()
            .flat_map(|p| &p.steps)
            .all(|s| s.kind.is_some()),
        "every step of a rebuild has a kind: {json:#}"
    );
    let md_path = std::fs::read_dir(d.state.path().join("reports/rb"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "md"))
        .unwrap();
    let md = std::fs::read_to_string(md_path).unwrap();
    for part in [
        "**Phase-order bound** ",
        "**Forecast** at the start: ",
        "## Forecast against measured",
        "| dependency graph | ",
        "| phase foundation | ",
    ] {
        assert!(md.contains(part), "no {part:?} in\n{md}");
    }

    // The next forecast times each step kind the drill measured by its
    // median there.
    let (code, plan) = d.run(&["plan", "rb", "--forecast", "--json"]);
    assert_eq!(code, Some(0), "{plan}");
    let next = forecast_of(&plan);
    let mut from_drill = 0;
    for step in next["critical_path"].as_array().unwrap() {
        let kind = step["kind"].as_str().unwrap();
        let Some(median) = measured_median(&report, kind) else {
            assert_eq!(step["source"]["from"], "prior", "{step:#}");
            continue;
        };
        assert_eq!(
            step["source"],
            serde_json::json!({"from": "median", "drills": 1})
        );
        assert!(
            (step["seconds"].as_f64().unwrap() - median).abs() < 0.0005,
            "{step:#}"
        );
        from_drill += 1;
    }
    assert!(from_drill > 0, "{next:#}");
    let (_, text) = d.run(&["plan", "rb", "--forecast"]);
    assert!(text.contains("median of 1 drill"), "{text}");

    // History: the forecast and its error per drill, in text and JSON.
    let (code, text) = d.run(&["drills", "history", "rb"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("forecast  error"), "{text}");
    assert!(text.contains("The forecast's error"), "{text}");
    let (code, text) = d.run(&["drills", "history", "rb", "--json"]);
    assert_eq!(code, Some(0), "{text}");
    let history: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(history[0]["run_id"], report.run_id.as_str());
    assert_eq!(history[0]["forecast_rto_ms"], forecast.made.rto_ms);
    assert_eq!(history[0]["forecast_error_pct"], expected);
    assert_eq!(history[0]["phase_order_bound_ms"], phase_order.bound_ms);
}
