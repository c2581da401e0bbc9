//! `drctl runs show`: a journal read as sentences.

use super::{format_millis, run_state, Decision, Event, Millis};

/// `drctl runs show`: the run as a readable timeline with durations and gate waits.
pub fn timeline(events: &[Event]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let start = events.first().map(Event::at).unwrap_or(0);
    let offset = |at: Millis| format!("+{:>7.1}s", (at - start) as f64 / 1000.0);
    let mut phase_start: std::collections::BTreeMap<&str, Millis> = Default::default();
    for event in events {
        let at = event.at();
        let line = match event {
            Event::RunStarted { run_id, runbook, environment, region, user, host, auto_approve, target, .. } => format!(
                "run {run_id}: runbook {runbook}, environment {environment} in {region}, by {user} on {host}, started {}{}{}",
                format_millis(at),
                auto_approve.as_ref().map(|r| format!(", auto-approve ({r})")).unwrap_or_default(),
                target
                    .as_ref()
                    .and_then(|t| Some((t, t.fallback.as_ref()?)))
                    .map(|(t, f)| format!(
                        "; recorded on the fallback store {} ({}; reason: {})",
                        t.state_dir.display(),
                        f.error,
                        f.reason
                    ))
                    .unwrap_or_default()
            ),
            Event::PhasePlanned { phase, summary, .. } => format!("phase {phase} planned: {summary}"),
            Event::PhaseStarted { phase, .. } => {
                phase_start.insert(phase, at);
                format!("phase {phase} started")
            }
            Event::PhaseFinished { phase, failed, hold, .. } => {
                let took = phase_start.get(phase.as_str()).map(|s| (at - s) as f64 / 1000.0).unwrap_or(0.0);
                let after = match (failed, hold) {
                    (0, Some(gate)) => format!(", goes on behind gate {gate}"),
                    (0, None) => String::new(),
                    (n, _) => format!(", {n} failed"),
                };
                let verb = if hold.is_some() && *failed == 0 { "stopped" } else { "finished" };
                format!("phase {phase} {verb} in {took:.1}s{after}")
            }
            Event::Intent { address, action, .. } => format!("  {} {address} …", action.symbol()),
            Event::Outcome { address, action, ok: true, id, .. } => format!("  {} {address} done {id}", action.symbol()),
            Event::Outcome { address, error, .. } => format!("  ! {address} failed: {}", error.as_deref().unwrap_or("")),
            Event::GateWaiting { phase, gate, .. } => format!(
                "gate before {phase}: waiting for {} approval(s){}",
                gate.approvals,
                if gate.approvers.is_empty() { String::new() } else { format!(" from {}", gate.approvers.join("/")) }
            ),
            Event::GateDecision { phase, decision, by, reason, waited_ms, .. } => format!(
                "gate before {phase}: {} after waiting {:.1}s",
                decision_sentence(*decision, by, reason.as_deref()),
                *waited_ms as f64 / 1000.0,
            ),
            Event::Paused { phase, .. } => format!("paused at the gate before {phase}"),
            Event::Interrupted { .. } => "interrupted".to_string(),
            Event::Resumed { by, pid, .. } => format!("resumed by {by} (pid {pid})"),
            Event::RunFinished { status, .. } => format!("run {status}"),
            Event::Checked { failed, .. } if failed.is_empty() => "checks passed".to_string(),
            Event::Checked { failed, .. } => format!("checks failed: {}", failed.join(", ")),
            Event::RolledBack { services, .. } => format!(
                "post-cutover checks failed; rolled back: {}",
                services
                    .iter()
                    .map(|s| format!("{}: {}", s.service, s.note))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Event::DrillFinished { passed, report, .. } => format!(
                "drill {}; report {}",
                if *passed { "passed" } else { "failed" },
                report.display()
            ),
            Event::LeakFound { environment, resources, .. } => format!(
                "leak check: {} object(s) of {environment} left: {}",
                resources.len(),
                resources.join(", ")
            ),
            Event::Notified { notice, webhook, attempts, status, .. } => format!(
                "notified {webhook} of {notice} (HTTP {status}, {})",
                attempts_said(*attempts)
            ),
            Event::NotifyFailed { notice, webhook, attempts, error, .. } => format!(
                "notification {notice} to {webhook} failed after {}: {error} (the run went on)",
                attempts_said(*attempts)
            ),
        };
        let _ = writeln!(out, "{} {line}", offset(at));
    }
    let state = run_state(events);
    let _ = writeln!(out, "status: {}", state.status);
    out
}

fn attempts_said(attempts: u32) -> String {
    match attempts {
        1 => "1 attempt".to_string(),
        n => format!("{n} attempts"),
    }
}

/// A gate decision as a sentence: `approved by alice: "checked the plan"`,
/// `passed by --auto-approve (root, reason: drill)`, `passed (auto gate)`.
pub fn decision_sentence(decision: Decision, by: &str, reason: Option<&str>) -> String {
    let quoted = reason.map(|r| format!(": \"{r}\"")).unwrap_or_default();
    match decision {
        Decision::Approve => format!("approved by {by}{quoted}"),
        Decision::Reject => format!("rejected by {by}{quoted}"),
        Decision::Auto if reason == Some(super::DRILL_POLICY) => {
            format!(
                "passed by drill policy ({}, drill started by {by})",
                super::DRILL_POLICY
            )
        }
        Decision::Auto if by == "policy" => {
            format!("passed ({})", reason.unwrap_or("auto gate"))
        }
        Decision::Auto => match reason {
            Some(r) if r != "--auto-approve" => {
                format!("passed by --auto-approve ({by}, reason: {r})")
            }
            _ => format!("passed by --auto-approve ({by})"),
        },
        Decision::Timeout => format!(
            "rejected by its timeout ({})",
            reason.unwrap_or("no approval in time")
        ),
    }
}
