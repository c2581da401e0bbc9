//! The cloud-facing commands: plan, apply, destroy. Each loads and validates
//! the repository, discovers the environment by tag, and hands the engine's
//! results to the terminal. Prompts live here, never in the engine.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cli::{cloud_target, load_runbook, ApplyArgs, DestroyArgs, GlobalArgs, PlanArgs};
use crate::cloud::aws::AwsProvider;
use crate::cloud::provider::Provider;
use crate::error::{exit, Error};
use crate::execute::{self, ApplyOptions, Event, OutcomeKind, Report};
use crate::model::validate::load_project;
use crate::model::{Project, Runbook};
use crate::plan::{self, render, Action, Plan};

/// A plan saved with `plan --out`, with what is needed to apply it later.
#[derive(Debug, Serialize, Deserialize)]
struct SavedPlan {
    /// Marks the file as a drctl plan.
    drctl_plan: u32,
    root: PathBuf,
    runbook_file: PathBuf,
    plan: Plan,
}

pub async fn plan_command(global: &GlobalArgs, args: &PlanArgs) -> Result<u8, Error> {
    let (project, name) = load_runbook(global, &args.runbook)?;
    let runbook = project.runbook(&name).expect("loaded");
    let target = cloud_target(global, &runbook.region).await?;
    let provider = AwsProvider::new(&target.settings.load().await);
    let plan = make_plan(&provider, &project, runbook).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&plan).expect("plans serialise")
        );
    } else {
        print!("{}", render::render(&plan));
    }
    if let Some(out) = &args.out {
        let saved = SavedPlan {
            drctl_plan: plan::PLAN_FORMAT,
            root: absolute(&project.root),
            runbook_file: absolute(&runbook.file),
            plan: plan.clone(),
        };
        let text = serde_json::to_string_pretty(&saved).expect("plans serialise");
        std::fs::write(out, text).map_err(|source| Error::Io {
            action: "write plan to",
            path: out.clone(),
            source,
        })?;
        if !args.json {
            println!(
                "\nSaved the plan to {}. Apply exactly it with: drctl apply {}",
                out.display(),
                out.display()
            );
        }
    }
    Ok(if args.detailed_exitcode && plan.has_changes() {
        exit::CHANGES
    } else {
        exit::OK
    })
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

async fn make_plan<P: Provider>(
    provider: &P,
    project: &Project,
    runbook: &Runbook,
) -> Result<Plan, Error> {
    let observed = provider.discover(&runbook.environment).await?;
    Ok(plan::plan(
        project,
        runbook,
        &observed,
        source_hash(project, runbook)?,
    ))
}

/// A hash of the files a plan is made from: a saved plan is refused if they changed.
fn source_hash(project: &Project, runbook: &Runbook) -> Result<String, Error> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let files = project
        .stacks
        .values()
        .map(|s| &s.file)
        .chain(std::iter::once(&runbook.file));
    for file in files {
        let bytes = std::fs::read(file).map_err(|source| Error::Io {
            action: "read",
            path: file.clone(),
            source,
        })?;
        hasher.update(file.to_string_lossy().as_bytes());
        hasher.update(&bytes);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

pub async fn apply_command(global: &GlobalArgs, args: &ApplyArgs) -> Result<u8, Error> {
    let saved = read_saved_plan(&args.target)?;
    let (project, runbook_name) = match &saved {
        Some(saved) => {
            let (project, diags) =
                load_project(&saved.root, std::slice::from_ref(&saved.runbook_file));
            if !diags.is_empty() {
                return Err(Error::Invalid(diags));
            }
            (project, saved.plan.runbook.clone())
        }
        None => load_runbook(global, &args.target)?,
    };
    let runbook = project.runbook(&runbook_name).expect("loaded");
    let target = cloud_target(global, &runbook.region).await?;
    let provider = AwsProvider::new(&target.settings.load().await);

    let plan = match saved {
        Some(saved) => {
            if source_hash(&project, runbook)? != saved.plan.source_hash {
                return Err(Error::StalePlan {
                    file: args.target.clone(),
                    why: vec!["the stack or runbook files changed since the plan was made".into()],
                });
            }
            let observed = provider.discover(&runbook.environment).await?;
            if plan::fingerprint(&observed) != saved.plan.fingerprint {
                return Err(Error::StalePlan {
                    file: args.target.clone(),
                    why: plan::world_changes(&saved.plan, &observed),
                });
            }
            print!("{}", render::render(&saved.plan));
            saved.plan
        }
        None => {
            let plan = make_plan(&provider, &project, runbook).await?;
            print!("{}", render::render(&plan));
            if !plan.has_changes() {
                return Ok(exit::OK);
            }
            if !args.auto_approve {
                confirm(
                    &format!(
                        "Apply these changes to environment {}?",
                        runbook.environment
                    ),
                    "yes",
                )?;
            }
            plan
        }
    };
    if !plan.has_changes() {
        return Ok(exit::OK);
    }
    let options = ApplyOptions {
        parallelism: args.parallelism.into(),
        run_id: new_run_id(),
    };
    println!("\nApplying as run {}", options.run_id);
    let report = execute::apply(&provider, &project, runbook, &plan, &options, &print_event).await;
    print_summary("Apply", &report);
    Ok(if report.succeeded() {
        exit::OK
    } else {
        exit::FAILURE
    })
}

fn read_saved_plan(target: &str) -> Result<Option<SavedPlan>, Error> {
    let path = Path::new(target);
    if !path.is_file() || path.extension().is_some_and(|e| e == "toml") {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        action: "read plan",
        path: path.to_path_buf(),
        source,
    })?;
    let saved: SavedPlan = serde_json::from_str(&text).map_err(|e| {
        Error::usage(
            format!("{target} is not a drctl plan file: {e}"),
            Some("make one with `drctl plan RUNBOOK --out FILE`, or pass a runbook".into()),
        )
    })?;
    if saved.drctl_plan != plan::PLAN_FORMAT || saved.plan.format != plan::PLAN_FORMAT {
        return Err(Error::usage(
            format!(
                "{target} was saved by another drctl version (plan format {})",
                saved.drctl_plan
            ),
            Some("plan again with this drctl".into()),
        ));
    }
    Ok(Some(saved))
}

pub async fn destroy_command(global: &GlobalArgs, args: &DestroyArgs) -> Result<u8, Error> {
    let (project, name) = load_runbook(global, &args.runbook)?;
    let runbook = project.runbook(&name).expect("loaded");
    let env = &runbook.environment;
    let interactive = std::io::stdin().is_terminal();
    if runbook.protected {
        if !args.force {
            return Err(Error::usage(
                format!("environment {env} is protected (runbook {})", runbook.name),
                Some(format!("destroying it needs --force, and typing `{env}` (or --confirm {env} without a terminal)")),
            ));
        }
        match (&args.confirm, interactive) {
            (Some(typed), _) if typed == env => {}
            (Some(typed), _) => {
                return Err(Error::usage(
                    format!("--confirm {typed} does not match the environment {env}"),
                    None,
                ));
            }
            (None, true) => {}
            (None, false) => {
                return Err(Error::usage(
                    format!(
                        "environment {env} is protected and there is no terminal to type its name"
                    ),
                    Some(format!("pass --confirm {env}")),
                ));
            }
        }
    }
    let target = cloud_target(global, &runbook.region).await?;
    let provider = AwsProvider::new(&target.settings.load().await);
    let observed = provider.discover(env).await?;
    if observed.is_empty() {
        println!(
            "Nothing carries drctl:env={env} in {}; nothing to destroy.",
            runbook.region
        );
        return Ok(exit::OK);
    }
    println!(
        "Destroy environment {env} in {}: {} resources",
        runbook.region,
        observed.len()
    );
    let mut listed: Vec<_> = observed.iter().collect();
    listed.sort_by_key(|o| {
        (
            crate::plan::normalize::delete_rank(o.address.kind),
            o.address.clone(),
        )
    });
    for o in &listed {
        println!("    - {} ({})", o.address, o.id);
    }
    if runbook.protected && args.confirm.is_none() {
        confirm(
            &format!("Environment {env} is protected. Type its name to destroy it:"),
            env,
        )?;
    } else if !args.auto_approve {
        confirm(
            &format!("Destroy all {} resources of {env}?", observed.len()),
            "yes",
        )?;
    }
    let report =
        execute::destroy(&provider, &observed, args.parallelism.into(), &print_event).await;
    let left = provider.discover(env).await?;
    print_summary("Destroy", &report);
    if !left.is_empty() {
        println!(
            "Still tagged drctl:env={env}: {}",
            left.iter()
                .map(|o| o.address.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(exit::FAILURE);
    }
    println!("Nothing carries drctl:env={env} any more.");
    Ok(if report.succeeded() {
        exit::OK
    } else {
        exit::FAILURE
    })
}

/// Asks on the terminal; without one, refuses (the caller should have passed --auto-approve).
fn confirm(question: &str, expected: &str) -> Result<(), Error> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::usage(
            "refusing to change the cloud without approval: no terminal to ask on",
            Some(
                "pass --auto-approve, or save a plan with `drctl plan --out FILE` and apply that"
                    .into(),
            ),
        ));
    }
    print!("\n{question} Only '{expected}' is accepted: ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if answer.trim() == expected {
        Ok(())
    } else {
        Err(Error::Declined)
    }
}

/// `20261121T221503-4f2a`: sortable, unique enough for one environment's runs.
pub fn new_run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let now = jiff::Timestamp::now();
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(now.as_nanosecond() as u128);
    hasher.write_u32(std::process::id());
    format!(
        "{}-{:04x}",
        now.strftime("%Y%m%dT%H%M%S"),
        hasher.finish() & 0xffff
    )
}

fn print_event(event: Event<'_>) {
    match event {
        Event::PhaseStarted { name, number, total } => println!("\nPhase {number}/{total} {name}"),
        Event::Started { address, action } => {
            println!("  {} {address}: {}…", action.symbol(), verb(action).0);
        }
        Event::Finished(outcome) => {
            let address = &outcome.address;
            let secs = outcome.elapsed.as_secs_f64();
            match &outcome.result {
                OutcomeKind::Done(id) => println!(
                    "  {} {address}: {} {id} ({secs:.1}s)",
                    outcome.action.symbol(),
                    verb(outcome.action).1
                ),
                OutcomeKind::Failed(e) => println!("  ! {address}: failed after {secs:.1}s: {e}"),
                OutcomeKind::Skipped { because } => println!("  · {address}: skipped ({because} failed)"),
            }
        }
        Event::CleanupStarted { count } if count > 0 => println!("\nCleanup: deleting {count} resources, dependents first"),
        Event::CleanupStarted { .. } => {}
        Event::CleanupSkipped { failed } => println!(
            "\nCleanup skipped: {failed} change(s) failed, so nothing old is deleted yet; fix the cause and apply again"
        ),
    }
}

fn verb(action: Action) -> (&'static str, &'static str) {
    match action {
        Action::Create | Action::Replace => ("creating", "created"),
        Action::Update => ("updating", "updated"),
        Action::Delete => ("deleting", "deleted"),
        Action::NoOp => ("checking", "unchanged"),
    }
}

fn print_summary(what: &str, report: &Report) {
    let secs = report.elapsed.as_secs_f64();
    let counts = format!(
        "{} added, {} changed, {} replaced, {} destroyed",
        report.count(Action::Create),
        report.count(Action::Update),
        report.count(Action::Replace),
        report.count(Action::Delete)
    );
    if report.succeeded() {
        println!("\n{what} complete in {secs:.1}s: {counts}.");
        return;
    }
    let failures: Vec<_> = report.failures().collect();
    println!(
        "\n{what} failed after {secs:.1}s: {counts}; {} not done:",
        failures.len()
    );
    for outcome in failures {
        match &outcome.result {
            OutcomeKind::Failed(e) => println!("  ! {}: {e}", outcome.address),
            OutcomeKind::Skipped { because } => {
                println!("  · {}: skipped because {because} failed", outcome.address)
            }
            OutcomeKind::Done(_) => {}
        }
    }
    println!("Fix the cause and run the same command again: what is done is not redone.");
}
