//! Plans as people read them: Terraform-like symbols per resource, changed
//! attributes as old → new, pending values as `(known after phase X)`.

use std::fmt::Write as _;

use super::{Action, Change, PhasePlan, Plan};

/// The whole plan, phase by phase, then cleanup and the summary line.
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Runbook {} — environment {} in {}",
        plan.runbook, plan.environment, plan.region
    );
    let total = plan.phases.len();
    for (i, phase) in plan.phases.iter().enumerate() {
        out.push('\n');
        out.push_str(&render_phase(phase, i + 1, total));
    }
    if !plan.cleanup.is_empty() {
        let _ = writeln!(out, "\nCleanup, after the last phase (dependents first):");
        for change in &plan.cleanup {
            render_change(&mut out, change, true);
        }
    }
    out.push('\n');
    out.push_str(&summary_line(plan));
    out.push('\n');
    out
}

/// One phase: its gate, then each stack's changes.
pub fn render_phase(phase: &PhasePlan, number: usize, total: usize) -> String {
    let mut out = format!(
        "Phase {number}/{total} {}  (gate before it: {})\n",
        phase.name, phase.gate
    );
    let mut any = false;
    let mut stack = "";
    // A no-op is shown only when its kind says something about it (an
    // image reused from another environment).
    let shown = |c: &&Change| c.action != Action::NoOp || c.headline.is_some();
    for change in phase.changes.iter().filter(shown) {
        if change.address.stack != stack {
            stack = &change.address.stack;
            let _ = writeln!(out, "  {stack}");
        }
        render_change(&mut out, change, false);
        any = true;
    }
    for service in &phase.cutover {
        let _ = writeln!(out, "  cutover {service}");
        any = true;
    }
    if !any {
        out.push_str("  (no changes)\n");
    }
    out
}

fn render_change(out: &mut String, change: &Change, full_address: bool) {
    let name = if full_address {
        change.address.to_string()
    } else {
        change.address.resource()
    };
    if let Some(headline) = &change.headline {
        let symbol = match change.action {
            Action::NoOp => "=",
            other => other.symbol(),
        };
        let _ = writeln!(out, "    {symbol} {headline}");
        for step in &change.steps {
            let _ = writeln!(out, "        {step}");
        }
    } else {
        let mut headline = format!("    {} {name}", change.action.symbol());
        if let Some(current) = &change.current {
            if !current.id.is_empty() {
                let _ = write!(headline, " ({})", current.id);
            }
        }
        let forcing: Vec<&str> = change
            .attrs
            .iter()
            .filter(|a| a.forces_replacement)
            .map(|a| a.name.as_str())
            .collect();
        if change.action == Action::Replace && !forcing.is_empty() {
            let _ = write!(headline, "  # forces replacement: {}", forcing.join(", "));
        }
        let _ = writeln!(out, "{headline}");
    }
    for reason in &change.reasons {
        let _ = writeln!(out, "        # {reason}");
    }
    let width = change.attrs.iter().map(|a| a.name.len()).max().unwrap_or(0);
    for attr in &change.attrs {
        let after = attr
            .after
            .as_ref()
            .map_or("(unset)".to_string(), |v| v.to_string());
        match (&change.action, &attr.before) {
            (Action::Create, _) => {
                let _ = writeln!(out, "        {:width$} = {after}", attr.name);
            }
            (_, Some(before)) => {
                let _ = writeln!(out, "        {:width$} : {before} → {after}", attr.name);
            }
            (_, None) => {
                let _ = writeln!(out, "        {:width$} : → {after}", attr.name);
            }
        }
    }
}

pub fn summary_line(plan: &Plan) -> String {
    if !plan.has_changes() {
        return format!(
            "No changes. Environment {} matches the runbook.",
            plan.environment
        );
    }
    let s = plan.summary();
    format!(
        "Plan: {} to add, {} to change, {} to replace, {} to destroy.",
        s.add, s.change, s.replace, s.destroy
    )
}
