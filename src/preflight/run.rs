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
    Ok(PreflightReport::new(
        &runbook.name,
        &runbook.environment,
        &region,
        at,
        checks,
    ))
}
