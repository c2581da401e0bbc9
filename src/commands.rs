//! The cloud-facing commands: plan, apply, destroy. Each loads and validates
//! the repository, discovers the environment by tag, and hands the engine's
//! results to the terminal. Prompts live here, never in the engine.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::cli::{
    cloud_target, load_runbook, ApplyArgs, ApproveArgs, DestroyArgs, GlobalArgs, PlanArgs,
    RejectArgs,
};
use crate::cloud::aws::AwsProvider;
use crate::cloud::provider::Provider;
use crate::error::{exit, Error};
use crate::execute::{self, ApplyOptions, Event, OutcomeKind, Report};
use crate::journal::{
    current_user, format_millis, host_name, now_millis, run_state, Event as JournalEvent, GateSpec,
    Journal,
};
use crate::lock::EnvLock;
use crate::model::validate::load_project;
use crate::model::{Project, Runbook};
use crate::plan::{self, render, Action, Plan};
use crate::run::{self, Answer, RunContext, RunEnd};

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
            // On a terminal, the whole plan is confirmed once; without one,
            // the runbook's gates are the approval (manual gates pause).
            if !args.auto_approve && std::io::stdin().is_terminal() {
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
    let run_id = new_run_id();
    let journal = Journal::create(&global.state_dir, &run_id)?;
    let auto_approve = args.auto_approve.then(|| {
        args.reason
            .clone()
            .unwrap_or_else(|| "--auto-approve".to_string())
    });
    journal.append(&JournalEvent::RunStarted {
        at: now_millis(),
        run_id: run_id.clone(),
        runbook: runbook.name.clone(),
        root: absolute(&project.root),
        runbook_file: absolute(&runbook.file),
        environment: runbook.environment.clone(),
        region: runbook.region.clone(),
        phases: plan.phases.iter().map(|p| p.name.clone()).collect(),
        user: current_user(),
        host: host_name(),
        auto_approve,
    })?;
    println!("\nRun {run_id} (journal: {})", journal.dir.display());
    drive_run(
        global,
        &provider,
        &project,
        runbook,
        &journal,
        args.parallelism.into(),
    )
    .await
}

/// Takes the environment lock and drives the run to its end or next pause,
/// with Ctrl-C handled: the first stops new work, the second aborts.
async fn drive_run<P: Provider>(
    global: &GlobalArgs,
    provider: &P,
    project: &Project,
    runbook: &Runbook,
    journal: &Journal,
    parallelism: usize,
) -> Result<u8, Error> {
    let _lock = EnvLock::acquire(
        &global.state_dir,
        &runbook.environment,
        &runbook.region,
        &journal.run_id,
    )?;
    let cancel = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(watch_ctrl_c(
        cancel.clone(),
        global.state_dir.clone(),
        journal.run_id.clone(),
    ));
    let interactive = std::io::stdin().is_terminal();
    let ask =
        |phase: &str, gate: &GateSpec, approved: &[String]| ask_at_gate(phase, gate, approved);
    let ctx = RunContext {
        project,
        runbook,
        journal,
        options: ApplyOptions {
            parallelism,
            run_id: journal.run_id.clone(),
        },
        cancel: &cancel,
        ask: if interactive { Some(&ask) } else { None },
        show: &|text| print!("\n{text}"),
        progress: &print_event,
    };
    let end = run::drive(provider, &ctx).await;
    watcher.abort();
    let id = &journal.run_id;
    match end? {
        RunEnd::Succeeded(report) => {
            print_summary("Apply", &report);
            Ok(exit::OK)
        }
        RunEnd::Failed(report) => {
            print_summary("Apply", &report);
            println!("Resume after fixing the cause with: drctl resume {id}");
            Ok(exit::FAILURE)
        }
        RunEnd::Paused {
            phase,
            approvals,
            needed,
        } => {
            println!("\nPaused before phase `{phase}`: {approvals} of {needed} approval(s). The run is saved.");
            println!(
                "Approve with:  drctl approve {id} --gate {phase} [--as NAME] [--reason TEXT]"
            );
            println!("then continue: drctl resume {id}      (or end it: drctl reject {id})");
            Ok(exit::PAUSED)
        }
        RunEnd::Rejected { phase, by } => {
            println!("\nRun {id} rejected at the gate before phase `{phase}` by {by}; nothing more is applied.");
            Ok(exit::FAILURE)
        }
        RunEnd::Interrupted(report) => {
            print_summary("Apply", &report);
            println!("Interrupted; everything in flight finished and is journaled. Continue with: drctl resume {id}");
            Ok(exit::FAILURE)
        }
    }
}

/// First Ctrl-C: start nothing new. Second: record it and abort.
async fn watch_ctrl_c(cancel: Arc<AtomicBool>, state_dir: PathBuf, run_id: String) {
    if tokio::signal::ctrl_c().await.is_err() {
        return;
    }
    cancel.store(true, Ordering::SeqCst);
    eprintln!(
        "\nStopping: nothing new starts; waiting for calls in flight. Press Ctrl-C again to abort."
    );
    if tokio::signal::ctrl_c().await.is_ok() {
        if let Ok(journal) = Journal::open(&state_dir, &run_id) {
            let _ = journal.append(&JournalEvent::Interrupted { at: now_millis() });
        }
        eprintln!("Aborted. Resume with: drctl resume {run_id}");
        std::process::exit(exit::FAILURE.into());
    }
}

fn ask_at_gate(phase: &str, gate: &GateSpec, approved: &[String]) -> Answer {
    let user = current_user();
    print!(
        "\nGate before phase `{phase}`: {} of {} approval(s){}. Approve as {user}? [yes/no/later]: ",
        approved.len(),
        gate.approvals,
        if approved.is_empty() { String::new() } else { format!(" (by {})", approved.join(", ")) }
    );
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    match answer.trim() {
        "yes" | "y" => Answer::Approve,
        "no" | "n" | "reject" => Answer::Reject,
        _ => Answer::Defer,
    }
}

pub async fn resume_command(global: &GlobalArgs, run_id: &str) -> Result<u8, Error> {
    let journal = Journal::open(&global.state_dir, run_id)?;
    let events = journal.events()?;
    let state = run_state(&events);
    if state.status.is_final() {
        return Err(Error::usage(
            format!("run {run_id} is {}; nothing to resume", state.status),
            None,
        ));
    }
    let Some(JournalEvent::RunStarted {
        root, runbook_file, ..
    }) = events.first()
    else {
        return Err(Error::usage(
            format!("run {run_id} has no start record"),
            None,
        ));
    };
    let (project, diags) = load_project(root, std::slice::from_ref(runbook_file));
    if !diags.is_empty() {
        return Err(Error::Invalid(diags));
    }
    let runbook = project.runbooks.first().expect("loaded");
    let target = cloud_target(global, &runbook.region).await?;
    let provider = AwsProvider::new(&target.settings.load().await);
    // Take the lock before writing: a live run of this id refuses the resume.
    let lock = EnvLock::acquire(
        &global.state_dir,
        &runbook.environment,
        &runbook.region,
        run_id,
    )?;
    journal.append(&JournalEvent::Resumed {
        at: now_millis(),
        by: current_user(),
        pid: std::process::id(),
    })?;
    for (address, action) in &state.in_flight {
        println!("{address}: a {action:?} call was in flight when the run stopped; it is looked up by tag, not repeated");
    }
    drop(lock);
    drive_run(global, &provider, &project, runbook, &journal, 10).await
}

pub fn approve_command(global: &GlobalArgs, args: &ApproveArgs) -> Result<u8, Error> {
    let journal = Journal::open(&global.state_dir, &args.run_id)?;
    let by = args.as_name.clone().unwrap_or_else(current_user);
    let (have, need) = run::approve(&journal, args.gate.as_deref(), &by, args.reason.clone())?;
    println!("Approved by {by} ({have} of {need}).");
    if have as u32 >= need {
        println!(
            "The gate is open. Continue with: drctl resume {}",
            args.run_id
        );
    } else {
        println!(
            "{} more approval(s) from other people needed.",
            need - have as u32
        );
    }
    Ok(exit::OK)
}

pub fn reject_command(global: &GlobalArgs, args: &RejectArgs) -> Result<u8, Error> {
    let journal = Journal::open(&global.state_dir, &args.run_id)?;
    let by = args.as_name.clone().unwrap_or_else(current_user);
    let phase = run::reject(&journal, &by, args.reason.clone())?;
    println!(
        "Run {} rejected by {by}{}.",
        args.run_id,
        if phase.is_empty() {
            String::new()
        } else {
            format!(" at the gate before `{phase}`")
        }
    );
    Ok(exit::OK)
}

pub fn runs_command(global: &GlobalArgs, show: Option<&str>) -> Result<u8, Error> {
    match show {
        None => {
            let runs = crate::journal::list_runs(&global.state_dir);
            if runs.is_empty() {
                println!(
                    "No runs under {}.",
                    crate::journal::runs_dir(&global.state_dir).display()
                );
            }
            for (id, events) in runs {
                let state = run_state(&events);
                let (runbook, env) = match events.first() {
                    Some(JournalEvent::RunStarted {
                        runbook,
                        environment,
                        ..
                    }) => (runbook.clone(), environment.clone()),
                    _ => (String::from("?"), String::from("?")),
                };
                let started = events
                    .first()
                    .map(|e| format_millis(e.at()))
                    .unwrap_or_default();
                let extra = match (&state.waiting, state.status) {
                    (Some(w), crate::journal::RunStatus::Paused) => format!(
                        " before `{}` ({}/{})",
                        w.phase,
                        w.approved_by.len(),
                        w.gate.approvals
                    ),
                    _ => String::new(),
                };
                println!(
                    "{id}  {runbook:<20} {env:<16} {started}  {}{extra}",
                    state.status
                );
            }
        }
        Some(id) => {
            let journal = Journal::open(&global.state_dir, id)?;
            print!("{}", crate::journal::timeline(&journal.events()?));
        }
    }
    Ok(exit::OK)
}

pub fn unlock_command(
    global: &GlobalArgs,
    env: &str,
    region: &str,
    yes: bool,
) -> Result<u8, Error> {
    let path = crate::lock::lock_path(&global.state_dir, env, region);
    let Some(holder) = crate::lock::read_holder(&path) else {
        println!("{env}@{region} is not locked.");
        return Ok(exit::OK);
    };
    println!("{env}@{region} is locked by {holder}.");
    if !yes {
        confirm(
            "Remove the lock? A run still working on this environment would then race another.",
            "yes",
        )?;
    }
    std::fs::remove_file(&path).map_err(|source| Error::Io {
        action: "remove lock",
        path: path.clone(),
        source,
    })?;
    println!("Unlocked {env}@{region}.");
    Ok(exit::OK)
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
    // A destroy racing an apply of the same environment would fight it.
    let _lock = EnvLock::acquire(
        &global.state_dir,
        env,
        &runbook.region,
        &format!("destroy-{}", new_run_id()),
    )?;
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
                OutcomeKind::NotStarted => println!("  · {address}: not started (interrupted)"),
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
            OutcomeKind::NotStarted => {
                println!("  · {}: not started (interrupted)", outcome.address)
            }
            OutcomeKind::Done(_) => {}
        }
    }
    println!("What is done is not redone when the run is resumed or the command repeated.");
}
