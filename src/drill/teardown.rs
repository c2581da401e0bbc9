//! A drill's teardown: everything tagged with the drill's environment,
//! deleted dependents first, through the same executor as `destroy`; then
//! the leak check ([`super::leaks`]).

use super::leaks;
use super::rehearse::DrillRequest;
use super::report::{LeakCheck, Teardown};
use crate::app::Context;
use crate::cloud::aws::AwsProvider;
use crate::error::Error;
use crate::events::Event as Shown;
use crate::execute;
use crate::model::Teardown as Policy;
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
    let report = execute::destroy(provider, &observed, parallelism, &|events| {
        events
            .iter()
            .for_each(|e| ctx.sink.event(&Shown::Step(e.clone())));
        true // nothing to record: the tags are what a destroy goes by
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

/// Marks what a failed teardown left as expired now, so that the next
/// sweep (`drctl sweep`, or the runbook's next drill) finishes it; says so.
async fn leave_expired(ctx: &Context<'_>, provider: &AwsProvider, env: &str) -> String {
    let left = match run::observe(provider, env, ctx.clock).await {
        Ok(snapshot) => snapshot.objects().cloned().collect::<Vec<_>>(),
        Err(e) => {
            return format!("what is left could not be read ({e}); it expires at the drill's ttl")
        }
    };
    let now = crate::types::tags::format_expires(ctx.clock.now());
    let unmarked = provider.mark_expired(&left, &now).await;
    if unmarked.is_empty() {
        format!(
            "its {} leftover(s) are marked expired: the next sweep finishes them",
            left.len()
        )
    } else {
        format!(
            "its leftovers are marked expired for the next sweep, but for {} (they expire at the drill's ttl)",
            unmarked.join("; ")
        )
    }
}

/// The teardown the runbook's policy asks for, then (if it ran) the leak
/// check; what went wrong is added to `failures`.
pub(crate) async fn per_policy(
    ctx: &Context<'_>,
    provider: &AwsProvider,
    env: &str,
    policy: Policy,
    request: &DrillRequest,
    failures: &mut Vec<String>,
) -> (Teardown, LeakCheck) {
    let policy_name = policy.name();
    let teardown = match policy {
        Policy::Never => skipped(
            policy_name,
            "teardown = \"never\": left built",
            ctx.clock.now(),
        ),
        Policy::OnSuccess if !failures.is_empty() => skipped(
            policy_name,
            "teardown = \"on_success\" and the drill failed: left built for inspection",
            ctx.clock.now(),
        ),
        _ => {
            let began = ctx.clock.now();
            tear_down(ctx, provider, env, policy_name, request.parallelism)
                .await
                .unwrap_or_else(|e| Teardown {
                    policy: policy_name.to_string(),
                    started_at: began,
                    performed: true,
                    note: "stopped by an error".into(),
                    ok: false,
                    duration_ms: ctx.clock.now() - began,
                    errors: vec![e.to_string()],
                })
        }
    };
    if !teardown.ok {
        failures.push(format!(
            "teardown failed: {}; {}",
            teardown.errors.join("; "),
            leave_expired(ctx, provider, env).await
        ));
    }
    let leak_check = if teardown.performed {
        ctx.sink.event(&Shown::DrillStage {
            message: format!("Leak check: everything tagged drctl:env={env}, through the tagging API and the services' describes …"),
        });
        let began = ctx.clock.now();
        let mut found = leaks::leak_check(provider, env, &request.settings.leak_settle)
            .await
            .unwrap_or_else(|e| {
                failures.push(format!("the leak check could not run: {e}"));
                LeakCheck {
                    started_at: began,
                    performed: false,
                    sources: Vec::new(),
                    leaks: Vec::new(),
                }
            });
        found.started_at = began;
        if !found.leaks.is_empty() {
            failures.push(format!(
                "leak check: {} resource(s) still carry drctl:env={env}: {}",
                found.leaks.len(),
                found
                    .leaks
                    .iter()
                    .map(|l| format!("{} ({})", l.resource, l.resource_type))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        found
    } else {
        LeakCheck {
            started_at: ctx.clock.now(),
            performed: false,
            sources: Vec::new(),
            leaks: Vec::new(),
        }
    };
    (teardown, leak_check)
}
