//! The drill report for people and for CI, as pure functions of a
//! [`DrillReport`]: Markdown that opens with the verdict and why (what a
//! reader opens the report for), then when things happened, then the
//! details. JUnit XML is in [`super::junit`].

mod bounds;

use std::fmt::{self, Write as _};

use bounds::{forecast_sentence, phase_order_sentence, write_bounds, write_forecast};

use super::report::{DrillReport, Leak, PhaseTiming, ServiceUse, Verdict};
use super::timing::word;
use crate::clock::Millis;
use crate::journal::{decision_sentence, format_millis, Decision};

/// The report as Markdown: verdict, RTO, both bounds and the forecast
/// first, then the timeline, the forecast step by step and the bounds'
/// chains, then phases, checks, gates, images, resources, teardown and the
/// leak check.
pub fn markdown(report: &DrillReport) -> String {
    let mut out = String::new();
    write_markdown(&mut out, report).expect("writing to a String does not fail");
    out
}

pub(crate) use crate::forecast::duration;
pub(crate) use bounds::error_words;

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
pub(crate) mod tests;
