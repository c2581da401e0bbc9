//! One preflight: load the runbook, plan it against the region's current
//! state, ask the region what the plan needs, decide.

use std::path::PathBuf;

use super::needs::Needs;
use super::{observe, verdicts, PreflightReport};
use crate::app::{self, Connect, Context};
use crate::error::Error;

pub struct PreflightRequest {
    /// `--root`; otherwise found from the runbook's path.
    pub root: Option<PathBuf>,
    /// A runbook path or name.
    pub runbook: String,
    /// An unknown fails the preflight too (and so notifies).
    pub strict: bool,
}

/// Checks that a rebuild of the runbook would work in the region it is
/// reached in (`--region` wins over the file), creating nothing. Invalid
/// files are an error (nothing is called); a plan that cannot be made (the
/// region does not answer, no credentials) is a failed `plan` check.
pub async fn preflight<C: Connect>(
    ctx: &Context<'_>,
    connect: &C,
    request: &PreflightRequest,
) -> Result<PreflightReport, Error> {
    let mut loaded = app::load(request.root.as_deref(), &request.runbook)?;
    loaded.reached_through(connect, &ctx.store.root());
    let runbook = loaded.runbook();
    let region = runbook.region.clone();
    let provider = connect.connect(&region).await?;
    let at = jiff::Timestamp::from_millisecond(ctx.clock.now())
        .map(|t| t.to_string())
        .unwrap_or_default();
    let checks = match app::observe_and_plan(ctx, &provider, &loaded).await {
        Ok((snapshot, plan)) => {
            let needs = Needs::of(&plan, &snapshot);
            let seen = observe::observe(&provider, &needs).await;
            verdicts::checks(&needs, &seen, &region)
        }
        Err(e) => verdicts::without_plan(&format!("cannot plan in {region}: {e}")),
    };
    let report = PreflightReport::new(
        &app::new_run_id(ctx.clock),
        &runbook.name,
        &runbook.environment,
        &region,
        at,
        checks,
    );
    if report.failed(request.strict) {
        notify_failed(&loaded, &report)?;
    }
    Ok(report)
}

/// `preflight_failed` to the runbook's webhooks (and the repository's), as
/// a failed drill notifies: who is on call hears it from the hourly check,
/// not from the next weekly drill. Never fails the preflight; a bad
/// `drctl.toml` is bad input.
fn notify_failed(loaded: &app::Loaded, report: &PreflightReport) -> Result<(), Error> {
    let runbook = loaded.runbook();
    let hooks = crate::notify::webhooks(&loaded.project.root, &runbook.notify)?;
    let header = crate::notify::Header {
        runbook: report.runbook.clone(),
        environment: report.environment.clone(),
        run_id: report.id.clone(),
    };
    if let Some(notifier) = crate::notify::Notifier::new(header, hooks, false) {
        let notice = crate::notify::Notice::PreflightFailed {
            region: report.region.clone(),
            failed: report
                .findings(super::Verdict::Fail)
                .map(|(check, f)| format!("{} {}: {}", check.word(), f.subject, f.evidence))
                .collect(),
            unknown: report.findings(super::Verdict::Unknown).count(),
        };
        notifier.send(None, &notice);
    }
    Ok(())
}
