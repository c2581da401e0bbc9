//! destroy: everything tagged with the environment, dependents first.

use std::path::PathBuf;

use super::{load, new_run_id, Connect, Context, Loaded};
use crate::error::Error;
use crate::events::{Answer, Event as Shown, Question};
use crate::execute::{self, Report};
use crate::lock::EnvLock;
use crate::planner::normalize::delete_rank;
use crate::run;
use crate::world::Address;

pub struct DestroyRequest {
    pub root: Option<PathBuf>,
    pub runbook: String,
    /// Do not ask (an unprotected environment).
    pub auto_approve: bool,
    /// Required for a protected environment.
    pub force: bool,
    /// The environment's name, typed, for a protected environment.
    pub confirm: Option<String>,
    /// Another environment built from the runbook (a drill's); default its own.
    pub environment: Option<String>,
    pub parallelism: usize,
}

#[derive(Debug)]
pub struct DestroyResult {
    pub environment: String,
    pub region: String,
    /// `None` when nothing carried the environment's tag.
    pub report: Option<Report>,
    /// What still carries the tag afterwards (must be nothing).
    pub left: Vec<Address>,
}

pub async fn destroy<C: Connect>(
    ctx: &Context<'_>,
    connect: &C,
    request: &DestroyRequest,
) -> Result<DestroyResult, Error> {
    let loaded = loaded_for(request)?;
    // `protected` guards the runbook's own environment, not its drills'.
    let protected = loaded.runbook().protected && loaded.other_environment().is_none();
    let runbook = loaded.runbook();
    let env = &runbook.environment;
    if protected {
        refuse_unless_forced(ctx, request, env, &runbook.name)?;
    }
    let provider = connect.connect(&runbook.region).await?;
    // Where the provider really goes (`--region` wins): that is what to lock.
    let region = connect.target(&runbook.region, &ctx.store.root()).region;
    // A destroy racing an apply of the same environment would fight it.
    let _lock = EnvLock::acquire(
        ctx.store.as_ref(),
        env,
        &region,
        &format!("destroy-{}", new_run_id(ctx.clock)),
    )?;
    let snapshot = run::observe(&provider, env, ctx.clock).await?;
    let mut result = DestroyResult {
        environment: env.clone(),
        region: region.clone(),
        report: None,
        left: Vec::new(),
    };
    if snapshot.is_empty() {
        return Ok(result);
    }
    let mut listed: Vec<_> = snapshot.objects().collect();
    listed.sort_by_key(|o| (delete_rank(o.address.kind), o.address.clone()));
    ctx.sink.event(&Shown::DestroyPlanned {
        environment: env.clone(),
        region: region.clone(),
        resources: listed
            .iter()
            .map(|o| (o.address.clone(), o.id.clone()))
            .collect(),
    });
    confirm(ctx, request, protected, env, snapshot.len())?;
    let observed: Vec<_> = snapshot.objects().cloned().collect();
    let report = execute::destroy(&provider, &observed, request.parallelism, &|events| {
        events
            .iter()
            .for_each(|e| ctx.sink.event(&Shown::Step(e.clone())));
        true // nothing to record: the tags are what a destroy goes by
    })
    .await;
    let left = run::observe(&provider, env, ctx.clock).await?;
    result.left = left.objects().map(|o| o.address.clone()).collect();
    result.report = Some(report);
    Ok(result)
}

/// The runbook, retargeted at `--environment` if one is named (and it is
/// no other runbook's).
fn loaded_for(request: &DestroyRequest) -> Result<Loaded, Error> {
    let mut loaded = load(request.root.as_deref(), &request.runbook)?;
    if let Some(environment) = &request.environment {
        if let Some(owner) = super::claimed_by(&loaded.project, environment) {
            if owner != loaded.name {
                return Err(Error::usage(
                    format!("environment {environment} is runbook {owner}'s"),
                    Some(format!(
                        "destroy it through its own runbook: drctl destroy {owner}"
                    )),
                ));
            }
        }
        let region = loaded.runbook().region.clone();
        loaded.retarget(environment, &region);
    }
    Ok(loaded)
}

/// A protected environment is destroyed only with `--force`, and its name
/// typed (or given as `--confirm` without a terminal).
fn refuse_unless_forced(
    ctx: &Context<'_>,
    request: &DestroyRequest,
    env: &str,
    runbook: &str,
) -> Result<(), Error> {
    if !request.force {
        return Err(Error::usage(
            format!("environment {env} is protected (runbook {runbook})"),
            Some(format!("destroying it needs --force, and typing `{env}` (or --confirm {env} without a terminal)")),
        ));
    }
    match &request.confirm {
        Some(typed) if typed != env => Err(Error::usage(
            format!("--confirm {typed} does not match the environment {env}"),
            None,
        )),
        None if !ctx.sink.can_ask() => Err(protected_without_terminal(env)),
        _ => Ok(()),
    }
}

/// Asks before deleting `count` resources, unless approved already.
fn confirm(
    ctx: &Context<'_>,
    request: &DestroyRequest,
    protected: bool,
    env: &str,
    count: usize,
) -> Result<(), Error> {
    let question = if protected && request.confirm.is_none() {
        Question::Confirm {
            prompt: format!("Environment {env} is protected. Type its name to destroy it:"),
            expected: env.to_string(),
        }
    } else if !request.auto_approve {
        Question::Confirm {
            prompt: format!("Destroy all {count} resources of {env}?"),
            expected: "yes".into(),
        }
    } else {
        return Ok(());
    };
    match ctx.sink.ask(&question) {
        Some(Answer::Approve) => Ok(()),
        Some(_) => Err(Error::Declined),
        None if protected => Err(protected_without_terminal(env)),
        None => Err(no_terminal()),
    }
}

fn protected_without_terminal(env: &str) -> Error {
    Error::usage(
        format!("environment {env} is protected and there is no terminal to type its name"),
        Some(format!("pass --confirm {env}")),
    )
}

/// Refusing to change the cloud when nobody can be asked.
pub fn no_terminal() -> Error {
    Error::usage(
        "refusing to change the cloud without approval: no terminal to ask on",
        Some("pass --auto-approve to destroy without asking".into()),
    )
}
