//! A drill's teardown: everything tagged with the drill's environment,
//! deleted dependents first, through the same executor as `destroy`.

use super::report::Teardown;
use crate::app::Context;
use crate::cloud::aws::AwsProvider;
use crate::error::Error;
use crate::events::Event as Shown;
use crate::execute;
use crate::run;

/// A teardown the policy decided against, and why.
pub(crate) fn skipped(policy: &str, note: &str, at: i64) -> Teardown {
    Teardown {
        policy: policy.to_string(),
        started_at: at,
        performed: false,
        note: note.to_string(),
        ok: true,
        duration_ms: 0,
        errors: Vec::new(),
    }
}

/// Deletes everything tagged with the drill's environment, dependents first.
pub(crate) async fn tear_down(
    ctx: &Context<'_>,
    provider: &AwsProvider,
    env: &str,
    policy: &str,
    parallelism: usize,
) -> Result<Teardown, Error> {
    let begun = ctx.clock.now();
    let snapshot = run::observe(provider, env, ctx.clock).await?;
    ctx.sink.event(&Shown::DrillStage {
        message: format!("Tearing down {env}: {} resource(s) …", snapshot.len()),
    });
    let observed: Vec<_> = snapshot.objects().cloned().collect();
    let report = execute::destroy(provider, &observed, parallelism, &|e| {
        ctx.sink.event(&Shown::Step(e.clone()))
    })
    .await;
    let errors: Vec<String> = report
        .failures()
        .map(|o| match &o.result {
            execute::OutcomeKind::Failed(e) => format!("{}: {e}", o.address),
            _ => format!("{}: not deleted", o.address),
        })
        .collect();
    Ok(Teardown {
        policy: policy.to_string(),
        started_at: begun,
        performed: true,
        note: format!("deleted {} resource(s)", observed.len() - errors.len()),
        ok: errors.is_empty(),
        duration_ms: ctx.clock.now() - begun,
        errors,
    })
}
