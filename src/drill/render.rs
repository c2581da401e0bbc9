//! The drill report for people and for CI, as pure functions of a
//! [`DrillReport`]: Markdown that opens with the verdict and why (what a
//! reader opens the report for), then when things happened, then the
//! details. JUnit XML is in [`super::junit`].

use std::fmt::{self, Write as _};

use super::report::{DrillReport, Leak, PhaseTiming, ServiceUse, Verdict};
use super::timing::word;
use crate::clock::Millis;
use crate::journal::{decision_sentence, format_millis, Decision};

/// The report as Markdown: verdict, RTO and critical path first, then the
/// timeline, then phases, checks, gates, images, resources, teardown and
/// the leak check.
pub fn markdown(report: &DrillReport) -> String {
    let mut out = String::new();
    write_markdown(&mut out, report).expect("writing to a String does not fail");
    out
}

pub(crate) use crate::forecast::duration;

/// A time of day in UTC, `HH:MM:SS` (the raw number if it is no time).
fn utc_time(ms: Millis) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%H:%M:%S").to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// The sections in reading order: what a reader opens the report for (the
/// verdict, why, the RTO) before when things happened, then the details.
fn write_markdown(out: &mut String, r: &DrillReport) -> fmt::Result {
    write_headline(out, r)?;
    write_timeline(out, r)?;
    write_forecast(out, r)?;
    write_bounds(out, r)?;
    write_phases(out, r)?;
    write_checks(out, r)?;
    write_gates(out, r)?;
    write_images(out, r)?;
    write_services(out, r)?;
    write_resources_created(out, r)?;
    write_teardown(out, r)?;
    write_leak_check(out, r)?;
    write_swept(out, r)
}

/// The verdict, the reasons for a failure, the RTO and critical path, and
/// one line saying which drill this was.
fn write_headline(out: &mut String, r: &DrillReport) -> fmt::Result {
    let verdict = verdict_word(r.verdict).to_uppercase();
    writeln!(out, "# Drill of {}: {verdict}\n", r.runbook)?;
    if r.verdict != Verdict::Passed {
        for failure in &r.failures {
            writeln!(out, "- {failure}")?;
        }
        // A failed verdict with no reason still says so, rather than an
        // empty list a reader might take for a rendering bug.
        if r.failures.is_empty() {
            writeln!(out, "- (no reason was recorded)")?;
        }
        writeln!(out)?;
    }
    // One paragraph, a line each (Markdown's two-space line breaks).
    let mut lines = vec![
        rto_sentence(r),
        critical_path_sentence(r),
        phase_order_sentence(r),
    ];
    lines.extend(forecast_sentence(r));
    writeln!(out, "{}\n", lines.join("  \n"))?;
    let (env, source, region) = (&r.environment, &r.source_environment, &r.region);
    let (run_id, user, host) = (&r.run_id, &r.user, &r.host);
    let (start, end) = (format_millis(r.started_at), format_millis(r.ended_at));
    let took = duration(r.ended_at - r.started_at);
    writeln!(out, "Environment `{env}` (rehearsing `{source}`) in {region}; run `{run_id}` by {user} on {host}; {start} to {end} ({took}).\n")
}

fn write_timeline(out: &mut String, r: &DrillReport) -> fmt::Result {
    writeln!(out, "## Timeline\n")?;
    let rows = timeline(r).into_iter();
    let rows = rows.map(|(at, what)| vec![utc_time(at), offset(r, at), what]);
    table(out, &["time (UTC)", "since start", "event"], rows)
}

/// One row per phase, then the steps of each phase that journaled any.
fn write_phases(out: &mut String, r: &DrillReport) -> fmt::Result {
    writeln!(out, "## Phases\n")?;
    let rows = r.phases.iter().map(|p| {
        let (started, took, stacks) = (when(r, p.started_at), duration(p.duration_ms), spans(p));
        let (steps, failed) = (p.steps.len().to_string(), p.failed.to_string());
        vec![p.name.clone(), started, took, stacks, steps, failed]
    });
    let header = ["phase", "started", "duration", "stacks", "steps", "failed"];
    table(out, &header, rows)?;
    for phase in r.phases.iter().filter(|p| !p.steps.is_empty()) {
        write_steps(out, r, phase)?;
    }
    Ok(())
}

fn write_steps(out: &mut String, r: &DrillReport, phase: &PhaseTiming) -> fmt::Result {
    writeln!(out, "### Steps of {}\n", phase.name)?;
    let rows = phase.steps.iter().map(|s| {
        let error = s.error.as_deref().unwrap_or("no error given");
        let result = if s.ok {
            "ok".to_string()
        } else {
            format!("failed: {error}")
        };
        let (started, took) = (when(r, s.started_at), duration(s.duration_ms));
        vec![s.address.clone(), s.action.clone(), started, took, result]
    });
    let header = ["step", "action", "started", "duration", "result"];
    table(out, &header, rows)
}

fn write_checks(out: &mut String, r: &DrillReport) -> fmt::Result {
    writeln!(out, "## Checks\n")?;
    let rows = r.checks.iter().map(|c| {
        let (status, took, detail) = (word(&c.status), duration(c.duration_ms), c.detail.clone());
        vec![c.name.clone(), c.kind.clone(), status, took, detail]
    });
    table(out, &["check", "kind", "status", "took", "detail"], rows)
}

fn write_gates(out: &mut String, r: &DrillReport) -> fmt::Result {
    writeln!(out, "## Gates\n")?;
    let rows = r.gates.iter().map(|g| {
        let (at, waited) = (when(r, g.at), duration(g.waited_ms));
        let (who, reason) = (g.by.clone(), g.reason.clone().unwrap_or_default());
        vec![g.phase.clone(), g.decision.clone(), who, at, waited, reason]
    });
    let header = ["before phase", "decision", "by", "at", "waited", "reason"];
    table(out, &header, rows)
}

fn write_images(out: &mut String, r: &DrillReport) -> fmt::Result {
    writeln!(out, "## Images\n")?;
    let rows = r.images.iter().map(|i| {
        let bake = i.bake_ms.map(duration).unwrap_or_default();
        let how = match &i.baked_by {
            Some(env) => format!("{} (baked by {env})", i.how),
            None => i.how.clone(),
        };
        vec![
            i.address.clone(),
            i.image_id.clone(),
            how,
            i.recipe.clone(),
            bake,
        ]
    });
    table(out, &["image", "id", "how", "recipe", "bake time"], rows)
}

fn write_services(out: &mut String, r: &DrillReport) -> fmt::Result {
    writeln!(out, "## Services\n")?;
    let rows = r.services.iter().map(|s| {
        let rollback = s
            .rollback
            .as_ref()
            .map(|b| b.note.clone())
            .unwrap_or_else(|| "not needed".into());
        vec![s.address.clone(), colours(s), cutover(r, s), rollback]
    });
    table(out, &["service", "colours", "cutover", "rollback"], rows)
}

/// A service's colours, `blue (2 × t3.small, ami-1, 100%); green (…)`.
fn colours(service: &ServiceUse) -> String {
    service
        .colours
        .iter()
        .map(|c| {
            format!(
                "{} ({} × {}, {}, {}%)",
                c.name, c.instances, c.instance_type, c.image, c.traffic
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Where a service's cutover moved its traffic, and when, or that it failed.
fn cutover(r: &DrillReport, service: &ServiceUse) -> String {
    match &service.cutover {
        Some(c) if c.ok => format!(
            "to {} in phase {} at {}, took {}",
            service.live.clone().unwrap_or_default(),
            c.phase,
            when(r, c.started_at),
            duration(c.duration_ms)
        ),
        Some(c) => format!("failed in phase {}", c.phase),
        None => "none".into(),
    }
}

fn write_resources_created(out: &mut String, r: &DrillReport) -> fmt::Result {
    writeln!(out, "## Resources created\n")?;
    let created = r.resources_created.iter();
    let rows = created.map(|c| vec![c.address.clone(), c.id.clone()]);
    table(out, &["resource", "id"], rows)
}

/// The teardown policy and what came of it, then each error it met.
fn write_teardown(out: &mut String, r: &DrillReport) -> fmt::Result {
    let t = &r.teardown;
    let how = match (t.performed, t.ok) {
        (false, _) => "not performed".to_string(),
        (true, true) => format!("performed in {}, ok", duration(t.duration_ms)),
        (true, false) => format!("performed in {}, with errors", duration(t.duration_ms)),
    };
    let (policy, note) = (&t.policy, &t.note);
    writeln!(out, "## Teardown\n\nPolicy `{policy}`: {how}. {note}\n")?;
    for error in &t.errors {
        writeln!(out, "- {error}")?;
    }
    if !t.errors.is_empty() {
        writeln!(out)?;
    }
    Ok(())
}

/// What the leak check asked, and every resource still carrying the drill's
/// tags (each one is why a drill failed, so each gets a row).
fn write_swept(out: &mut String, r: &DrillReport) -> fmt::Result {
    if r.swept.is_empty() {
        return Ok(());
    }
    writeln!(out, "## Swept before the rebuild\n")?;
    for line in &r.swept {
        writeln!(out, "- {line}")?;
    }
    writeln!(out)
}

fn write_leak_check(out: &mut String, r: &DrillReport) -> fmt::Result {
    let l = &r.leak_check;
    let asked = l.sources.join(", ");
    writeln!(out, "## Leak check\n")?;
    match (l.performed, l.leaks.len()) {
        (false, _) => writeln!(out, "Not performed.\n"),
        (true, 0) => writeln!(out, "Nothing carries the drill's tags (asked {asked}).\n"),
        (true, n) => {
            let headline = format!("**{n} resource(s) still carry the drill's tags**");
            writeln!(out, "{headline} (asked {asked}):\n")?;
            let rows = l.leaks.iter().map(|leak| {
                let tag = leak.drctl_resource.clone().unwrap_or_default();
                let (what, by) = (leak.resource_type.clone(), leak.found_by.join(", "));
                vec![leak.resource.clone(), what, tag, by]
            });
            let header = ["resource", "type", "drctl resource", "found by"];
            table(out, &header, rows)
        }
    }
}

/// Every dated thing in the report, in time order (ties keep this order).
fn timeline(r: &DrillReport) -> Vec<(Millis, String)> {
    let (user, host, run_id) = (&r.user, &r.host, &r.run_id);
    let mut lines = vec![(
        r.started_at,
        format!("drill started by {user} on {host} (run {run_id})"),
    )];
    for g in &r.gates {
        let decision = serde_json::from_value::<Decision>(g.decision.clone().into())
            .map(|d| decision_sentence(d, &g.by, g.reason.as_deref()))
            .unwrap_or_else(|_| format!("{} by {}", g.decision, g.by));
        let (phase, waited) = (&g.phase, duration(g.waited_ms));
        let text = format!("gate before {phase}: {decision}, after waiting {waited}");
        lines.push((g.at, text));
    }
    for p in &r.phases {
        let (name, took) = (&p.name, duration(p.duration_ms));
        let failed = match p.failed {
            0 => String::new(),
            n => format!(", {n} step(s) failed"),
        };
        lines.push((p.started_at, format!("phase {name} started")));
        lines.push((
            p.ended_at,
            format!("phase {name} finished in {took}{failed}"),
        ));
    }
    for i in &r.images {
        let (address, id) = (&i.address, &i.image_id);
        match (i.bake_started_at, i.bake_ms) {
            (Some(at), Some(ms)) => {
                lines.push((at, format!("bake of {address} started")));
                let took = duration(ms);
                lines.push((at + ms, format!("image {address} baked in {took}: {id}")));
            }
            _ => {
                let by = i.baked_by.as_deref().unwrap_or("another environment");
                let text = format!(
                    "image {address} reused: {id} (recipe {}, baked by {by})",
                    i.recipe
                );
                lines.push((r.started_at, text));
            }
        }
    }
    for c in &r.checks {
        let (name, status) = (&c.name, word(&c.status));
        lines.push((
            c.started_at + c.duration_ms,
            format!("check {name} {status}"),
        ));
    }
    if let Some(rto) = r.rto.measured_ms {
        let text = format!("recovered: every check passed (RTO {})", duration(rto));
        lines.push((r.started_at + rto, text));
    }
    let t = &r.teardown;
    let (policy, note) = (&t.policy, &t.note);
    if t.performed {
        let errors = match t.errors.len() {
            0 => String::new(),
            n => format!(" with {n} error(s)"),
        };
        lines.push((t.started_at, format!("teardown started (policy {policy})")));
        lines.push((
            t.started_at + t.duration_ms,
            format!("teardown finished{errors}"),
        ));
    } else {
        lines.push((t.started_at, format!("no teardown: {note}")));
    }
    let l = &r.leak_check;
    let leak_check = match (l.performed, l.leaks.len()) {
        (false, _) => "no leak check".to_string(),
        (true, 0) => "leak check: nothing left".to_string(),
        (true, n) => format!("leak check: {n} resource(s) left"),
    };
    lines.push((l.started_at, leak_check));
    let verdict = verdict_word(r.verdict).to_uppercase();
    lines.push((r.ended_at, format!("drill ended: {verdict}")));
    lines.sort_by_key(|(at, _)| *at);
    lines
}

fn rto_sentence(r: &DrillReport) -> String {
    let target = r.rto.target_ms.map(duration);
    let Some(rto) = r.rto.measured_ms else {
        let target = target.map(|t| format!("; target {t}")).unwrap_or_default();
        return format!("**RTO** not measured (the checks never all passed){target}.");
    };
    let judged = match (target, r.rto.met) {
        (None, _) => " (no target set)".to_string(),
        (Some(t), Some(true)) => format!(" against a target of {t}: met"),
        (Some(t), Some(false)) => format!(" against a target of {t}: **not met**"),
        (Some(t), None) => format!(", target {t}"),
    };
    format!("**RTO** {}{judged}.", duration(rto))
}

fn critical_path_sentence(r: &DrillReport) -> String {
    let path = &r.critical_path;
    if path.steps.is_empty() {
        return "**Critical path**: no steps were journaled.".into();
    }
    let chain: Vec<String> = path.steps.iter().map(|s| format!("`{s}`")).collect();
    let (bound, chain) = (duration(path.bound_ms), chain.join(" → "));
    let ratio = match path.rto_ratio {
        Some(x) => format!(" RTO is {x:.2}× the bound."),
        None => String::new(),
    };
    format!("**Critical path** {bound}: {chain}.{ratio}")
}

/// The bound of the phases one after another, each phase's own chain summed.
fn phase_order_sentence(r: &DrillReport) -> String {
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
fn forecast_sentence(r: &DrillReport) -> Option<String> {
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
fn write_forecast(out: &mut String, r: &DrillReport) -> fmt::Result {
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
fn write_bounds(out: &mut String, r: &DrillReport) -> fmt::Result {
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

/// A Markdown table, or a line saying there is nothing to list.
fn table(
    out: &mut String,
    header: &[&str],
    rows: impl Iterator<Item = Vec<String>>,
) -> fmt::Result {
    let mut rows = rows.peekable();
    if rows.peek().is_none() {
        return writeln!(out, "None.\n");
    }
    writeln!(out, "| {} |", header.join(" | "))?;
    writeln!(out, "|{}", " --- |".repeat(header.len()))?;
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
        writeln!(out, "| {} |", cells.join(" | "))?;
    }
    writeln!(out)
}

/// A table cell's text: a `|` would end the cell, a line break the row, and
/// a `<` could start an HTML tag that hides what follows (`<html>` in a
/// check's detail).
fn cell(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines.join(" ").replace('|', "\\|").replace('<', "&lt;")
}

/// A phase's stacks and how long each took, `net 1m10s, app 7m50s`.
fn spans(phase: &PhaseTiming) -> String {
    let spans: Vec<String> = phase
        .stacks
        .iter()
        .map(|s| format!("{} {}", s.name, duration(s.duration_ms)))
        .collect();
    spans.join(", ")
}

/// `04:01:12 (+1m12s)`.
fn when(r: &DrillReport, at: Millis) -> String {
    format!("{} ({})", utc_time(at), offset(r, at))
}

/// Time since the drill started, `+1m12s`.
fn offset(r: &DrillReport, at: Millis) -> String {
    match at - r.started_at {
        ms if ms < 0 => duration(ms),
        ms => format!("+{}", duration(ms)),
    }
}

pub(crate) fn verdict_word(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Passed => "passed",
        Verdict::Failed => "failed",
        Verdict::Expired => "expired",
    }
}

pub(crate) fn leak_line(leak: &Leak) -> String {
    let (resource, kind, by) = (
        &leak.resource,
        &leak.resource_type,
        leak.found_by.join(", "),
    );
    match &leak.drctl_resource {
        Some(tag) => format!("{resource} ({kind}, drctl:resource {tag}), found by {by}"),
        None => format!("{resource} ({kind}), found by {by}"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;

    /// 2026-11-22 04:00:00 UTC.
    pub(crate) const T: Millis = 1_795_320_000_000;

    /// A failed drill with something in every part, written as its JSON.
    pub(crate) fn sample() -> DrillReport {
        let step = |address: &str, start: Millis, ms: Millis, error: Option<&str>| {
            let kind = address.split('.').nth(1);
            json!({"address": address, "action": "create", "kind": kind, "started_at": T + start, "duration_ms": ms, "ok": error.is_none(), "error": error})
        };
        serde_json::from_value(json!({
            "format": 1, "runbook": "fleet-rehearsal", "environment": "fleet-drill-7f3a", "source_environment": "fleet",
            "region": "us-west-2", "run_id": "r-0400", "user": "alice", "host": "ci-7",
            "started_at": T, "ended_at": T + 1_200_000, "verdict": "failed",
            "failures": ["check http failed: status 503", "1 resource still carries the drill's tags"],
            "rto": {"measured_ms": null, "target_ms": 1_800_000, "met": null},
            "critical_path": {"bound_ms": 570_000, "steps": ["net.vpc.main", "app.instances.web"], "rto_ratio": null},
            "phase_order": {"bound_ms": 540_000, "rto_ratio": null, "phases": [
                {"name": "foundation", "bound_ms": 70_000, "steps": ["net.vpc.main"]},
                {"name": "compute", "bound_ms": 470_000, "steps": ["app.instances.web"]}]},
            "forecast": {"rto_ms": 480_000, "error_pct": null,
                "critical_path": [
                    {"step": "net.vpc.main", "kind": "vpc", "phase": "foundation", "duration_ms": 5_000, "source": {"from": "prior", "basis": "calls that take effect at once"}},
                    {"step": "app.instances.web", "kind": "instances", "phase": "compute", "duration_ms": 475_000, "source": {"from": "median", "drills": 3}}],
                "speedups": [{"step": "app.instances.web", "kind": "instances", "duration_ms": 475_000, "rto_cut_ms": 475_000}]},
            "phases": [
                {"name": "foundation", "started_at": T + 5_000, "ended_at": T + 77_000, "duration_ms": 72_000, "failed": 0,
                 "stacks": [{"name": "net", "duration_ms": 70_000}], "steps": [step("net.vpc.main", 6_000, 70_000, None)]},
                {"name": "compute", "started_at": T + 120_000, "ended_at": T + 600_000, "duration_ms": 480_000, "failed": 1,
                 "stacks": [{"name": "app", "duration_ms": 470_000}], "steps": [step("app.instances.web", 125_000, 470_000, Some("quota | exceeded"))]}
            ],
            "gates": [{"phase": "compute", "decision": "approve", "by": "bob", "reason": "ok | go", "at": T + 110_000, "waited_ms": 30_000}],
            "checks": [
                {"name": "target_health app.service.web", "kind": "target_health", "status": "passed", "detail": "2 of 2 healthy", "started_at": T + 600_000, "duration_ms": 4_000},
                {"name": "http http://web/health", "kind": "http", "status": "failed", "detail": "status 503 <html> & \"oops\"", "started_at": T + 604_000, "duration_ms": 30_000},
                {"name": "command ./smoke.sh", "kind": "command", "status": "skipped", "detail": "needs a resolvable name", "started_at": T + 634_000, "duration_ms": 0}
            ],
            "images": [{"address": "app.image.app", "image_id": "ami-1", "how": "reused", "bake_ms": null,
                        "bake_started_at": null, "recipe": "3f2a9c1d0b7e4a66", "baked_by": "prod"}],
            "resources_created": [{"address": "net.vpc.main", "id": "vpc-1"}],
            "teardown": {"policy": "always", "started_at": T + 900_000, "performed": true, "note": "teardown = \"always\"", "ok": false,
                         "duration_ms": 240_000, "errors": ["sg-1: DependencyViolation"]},
            "leak_check": {"started_at": T + 1_150_000, "performed": true, "sources": ["tagging:GetResources", "ec2:DescribeTags"],
                           "leaks": [{"resource": "sg-1", "resource_type": "ec2:security-group", "drctl_resource": "security_group.web|x", "found_by": ["ec2:DescribeTags"]}]}
        }))
        .expect("the sample is a report")
    }

    #[test]
    fn markdown_opens_with_the_verdict_and_why_then_rto_and_critical_path() {
        let md = markdown(&sample());
        let head: Vec<&str> = md.lines().take(10).collect();
        assert_eq!(
            head,
            [
                "# Drill of fleet-rehearsal: FAILED",
                "",
                "- check http failed: status 503",
                "- 1 resource still carries the drill's tags",
                "",
                "**RTO** not measured (the checks never all passed); target 30m00s.  ",
                "**Critical path** 9m30s: `net.vpc.main` → `app.instances.web`.  ",
                "**Phase-order bound** 9m00s: foundation 1m10s + compute 7m50s, one phase after another.  ",
                "**Forecast** at the start: 8m00s; no RTO was measured to set it against.",
                "",
            ]
        );
        let mut passed = sample();
        passed.verdict = Verdict::Passed;
        passed.failures.clear();
        passed.rto.measured_ms = Some(724_000);
        passed.rto.met = Some(true);
        passed.critical_path.rto_ratio = Some(1.27);
        passed.phase_order.rto_ratio = Some(1.34);
        passed.forecast.as_mut().unwrap().error_pct = Some(-33.7);
        let md = markdown(&passed);
        assert!(md.starts_with("# Drill of fleet-rehearsal: PASSED\n\n**RTO** 12m04s against a target of 30m00s: met.  \n"), "{md}");
        assert!(md.contains("`app.instances.web`. RTO is 1.27× the bound.  \n"));
        assert!(md.contains("one phase after another. RTO is 1.34× the bound.  \n"));
        assert!(md.contains("**Forecast** at the start: 8m00s; the measured RTO 12m04s makes it 33.7% short.\n\n"), "{md}");
        assert!(md.contains("| 04:12:04 | +12m04s | recovered: every check passed (RTO 12m04s) |"));
    }

    #[test]
    fn the_timeline_is_in_time_order_in_utc_with_offsets() {
        let md = markdown(&sample());
        let section = md.split("## Timeline\n\n").nth(1).unwrap();
        let rows: Vec<&str> = section.split("\n\n").next().unwrap().lines().collect();
        assert_eq!(
            rows,
            [
                "| time (UTC) | since start | event |",
                "| --- | --- | --- |",
                "| 04:00:00 | +0s | drill started by alice on ci-7 (run r-0400) |",
                "| 04:00:00 | +0s | image app.image.app reused: ami-1 (recipe 3f2a9c1d0b7e4a66, baked by prod) |",
                "| 04:00:05 | +5.0s | phase foundation started |",
                "| 04:01:17 | +1m17s | phase foundation finished in 1m12s |",
                "| 04:01:50 | +1m50s | gate before compute: approved by bob: \"ok \\| go\", after waiting 30s |",
                "| 04:02:00 | +2m00s | phase compute started |",
                "| 04:10:00 | +10m00s | phase compute finished in 8m00s, 1 step(s) failed |",
                "| 04:10:04 | +10m04s | check target_health app.service.web passed |",
                "| 04:10:34 | +10m34s | check http http://web/health failed |",
                "| 04:10:34 | +10m34s | check command ./smoke.sh skipped |",
                "| 04:15:00 | +15m00s | teardown started (policy always) |",
                "| 04:19:00 | +19m00s | teardown finished with 1 error(s) |",
                "| 04:19:10 | +19m10s | leak check: 1 resource(s) left |",
                "| 04:20:00 | +20m00s | drill ended: FAILED |",
            ]
        );
    }

    #[test]
    fn the_details_escape_pipes_and_list_every_leak() {
        let md = markdown(&sample());
        for row in [
            "| phase | started | duration | stacks | steps | failed |",
            "| compute | 04:02:00 (+2m00s) | 8m00s | app 7m50s | 1 | 1 |",
            "| app.instances.web | create | 04:02:05 (+2m05s) | 7m50s | failed: quota \\| exceeded |",
            "| http http://web/health | http | failed | 30s | status 503 &lt;html> & \"oops\" |",
            "| compute | approve | bob | 04:01:50 (+1m50s) | 30s | ok \\| go |",
            "| app.image.app | ami-1 | reused (baked by prod) | 3f2a9c1d0b7e4a66 |  |",
            "| net.vpc.main | vpc-1 |",
            "Policy `always`: performed in 4m00s, with errors. teardown = \"always\"",
            "- sg-1: DependencyViolation",
            "**1 resource(s) still carry the drill's tags** (asked tagging:GetResources, ec2:DescribeTags):",
            "| sg-1 | ec2:security-group | security_group.web\\|x | ec2:DescribeTags |",
        ] {
            assert!(md.lines().any(|l| l == row), "no line {row:?} in\n{md}");
        }
        let mut clean = sample();
        clean.leak_check.leaks.clear();
        clean.images.clear();
        let md = markdown(&clean);
        assert!(md.contains("## Images\n\nNone.\n"), "{md}");
        assert!(md.contains(
            "Nothing carries the drill's tags (asked tagging:GetResources, ec2:DescribeTags)."
        ));
    }

    #[test]
    fn the_forecast_is_set_against_each_steps_measured_time_and_the_bounds_listed() {
        let md = markdown(&sample());
        for row in [
            "## Forecast against measured",
            "| step | kind | phase | forecast | from | measured |",
            "| net.vpc.main | vpc | foundation | 5.0s | prior: calls that take effect at once | 1m10s |",
            "| app.instances.web | instances | compute | 7m55s | median of 3 drills | 7m50s |",
            "Forecast RTO 8m00s; no RTO measured.",
            "| bound | length | RTO ÷ bound | chain |",
            "| dependency graph | 9m30s | — | net.vpc.main → app.instances.web |",
            "| phase order | 9m00s | — |  |",
            "| phase foundation | 1m10s |  | net.vpc.main |",
            "| phase compute | 7m50s |  | app.instances.web |",
        ] {
            assert!(md.lines().any(|l| l == row), "no line {row:?} in\n{md}");
        }
        let mut none = sample();
        none.forecast = None;
        let md = markdown(&none);
        assert!(!md.contains("Forecast"), "{md}");
        assert_eq!(error_words(-12.5), "12.5% short");
        assert_eq!(error_words(3.0), "3% long");
        assert_eq!(error_words(0.0), "exact");
    }

    #[test]
    fn durations_read_as_people_say_them() {
        let shown = [0, 340, 4_250, 42_000, 724_000, 3_723_000, -3_000].map(duration);
        assert_eq!(shown.join(" "), "0s 340ms 4.2s 42s 12m04s 1h02m03s -3.0s");
    }
}
