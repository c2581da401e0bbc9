//! The command line's handlers for the cloud-facing commands: each turns
//! parsed arguments into an application request (see [`crate::app`]), picks
//! the sinks (terminal, JSON), and prints the result with what to type next.
//! Part of the CLI layer; nothing below it prints or reads the terminal.

use tokio_util::sync::CancellationToken;

use crate::app::{self, Context};
use crate::cli::terminal::{JsonSink, TerminalSink};
use crate::cli::{
    for_run, with_target, ApplyArgs, ApproveArgs, CliConnect, DestroyArgs, GlobalArgs, LogFormat,
    OutputArgs, PlanArgs, RejectArgs,
};
use crate::clock::SystemClock;
use crate::error::{exit, Error};
use crate::events::{Event, Sink};
use crate::journal::{current_user, format_millis, run_state, Event as JournalEvent, Journal};

pub(crate) use crate::cli::run_end::{print_end, print_summary, watch_ctrl_c};

/// The sink `--log-format` asks for.
pub(crate) fn sink(global: &GlobalArgs) -> Box<dyn Sink> {
    match global.log_format {
        LogFormat::Text => Box::new(TerminalSink::new()),
        LogFormat::Json => Box::new(JsonSink),
    }
}

pub(crate) static CLOCK: SystemClock = SystemClock;

pub(crate) fn context<'a>(
    global: &'a GlobalArgs,
    sink: &'a dyn Sink,
) -> Result<Context<'a>, Error> {
    Ok(Context {
        store: global.store()?,
        clock: &CLOCK,
        sink,
    })
}

/// `plan --json`: the plan alone, as JSON (with its forecast, if asked),
/// printed once planning is done.
#[derive(Default)]
struct PlanJson(std::sync::Mutex<Option<Box<crate::plan::Plan>>>);

impl Sink for PlanJson {
    fn event(&self, event: &Event) {
        if let Event::Planned { plan } = event {
            *self.0.lock().expect("plan slot poisoned") = Some(plan.clone());
        }
    }
}

impl PlanJson {
    fn print(&self, forecast: Option<&crate::forecast::Forecast>) {
        let Some(plan) = self.0.lock().expect("plan slot poisoned").take() else {
            return;
        };
        /// The plan's own fields first, as without a forecast.
        #[derive(serde::Serialize)]
        struct WithForecast<'a> {
            #[serde(flatten)]
            plan: &'a crate::plan::Plan,
            #[serde(skip_serializing_if = "Option::is_none")]
            forecast: Option<crate::forecast::render::InSeconds<'a>>,
        }
        let json = WithForecast {
            plan: &plan,
            forecast: forecast.map(crate::forecast::render::in_seconds),
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&json).expect("plans serialise")
        );
    }
}

pub async fn plan_command(global: &GlobalArgs, args: &PlanArgs) -> Result<u8, Error> {
    let json = PlanJson::default();
    let text = sink(global);
    let sink: &dyn Sink = if args.json { &json } else { text.as_ref() };
    let ctx = context(global, sink)?;
    // The forecast times steps by this runbook's past drills.
    let forecast = match args.forecast {
        true => {
            let loaded = app::load(global.root.as_deref(), &args.runbook)?;
            let name = &loaded.runbook().name;
            Some(crate::drill::history::measured_in(
                ctx.store.as_ref(),
                name,
            )?)
        }
        false => None,
    };
    let request = app::PlanRequest {
        root: global.root.clone(),
        runbook: args.runbook.clone(),
        out: args.out.clone(),
        forecast,
    };
    let planned = app::plan(&ctx, &CliConnect::new(global), &request).await?;
    match (&planned.forecast, args.json, global.log_format) {
        (forecast, true, _) => json.print(forecast.as_ref()),
        (None, ..) => {}
        (Some(forecast), false, LogFormat::Text) => {
            print!("\n{}", crate::forecast::render(forecast));
        }
        (Some(forecast), false, LogFormat::Json) => println!(
            "{}",
            serde_json::json!({ "event": "forecast", "forecast": crate::forecast::render::in_seconds(forecast) })
        ),
    }
    Ok(if args.detailed_exitcode && planned.plan.has_changes() {
        exit::CHANGES
    } else {
        exit::OK
    })
}

pub async fn apply_command(global: &GlobalArgs, args: &ApplyArgs) -> Result<u8, Error> {
    // A saved plan goes where it was planned against.
    let saved_target = app::SavedPlan::read(&args.target)?.and_then(|s| s.target);
    let global = &match saved_target {
        Some(target) => with_target(
            global,
            global.clone(),
            &format!("the plan in {}", args.target),
            &format!("drctl apply {}", args.target),
            target,
        )?,
        None => global.clone(),
    };
    let sink = waiting_if(args.wait, sink(global));
    let ctx = context(global, sink.as_ref())?;
    let request = app::ApplyRequest {
        root: global.root.clone(),
        target: args.target.clone(),
        auto_approve: args.auto_approve.then(|| {
            args.reason
                .clone()
                .unwrap_or_else(|| "--auto-approve".to_string())
        }),
        parallelism: args.parallelism.into(),
    };
    let cancel = CancellationToken::new();
    let watcher = tokio::spawn(watch_ctrl_c(cancel.clone(), global.store()?));
    let result = app::apply(&ctx, &CliConnect::new(global), &request, &cancel).await;
    watcher.abort();
    ctx.sink.flush();
    match result? {
        app::ApplyResult::NoChanges => Ok(exit::OK),
        app::ApplyResult::Run(result) => Ok(print_end(global, result)),
    }
}

/// `sink`, waiting at gates for approvals given elsewhere with `--wait`.
fn waiting_if(wait: bool, sink: Box<dyn Sink>) -> Box<dyn Sink> {
    match wait {
        true => Box::new(crate::cli::terminal::WaitForApprovals(sink)),
        false => sink,
    }
}

pub async fn resume_command(
    global: &GlobalArgs,
    run_id: &str,
    parallelism: usize,
    wait: bool,
) -> Result<u8, Error> {
    let global = &for_run(global, run_id)?;
    if is_drill(global, run_id) {
        return Box::pin(crate::cli::resume_drill(global, run_id, parallelism)).await;
    }
    let sink = waiting_if(wait, sink(global));
    let ctx = context(global, sink.as_ref())?;
    let cancel = CancellationToken::new();
    let watcher = tokio::spawn(watch_ctrl_c(cancel.clone(), global.store()?));
    let result = app::resume(&ctx, &CliConnect::new(global), run_id, parallelism, &cancel).await;
    watcher.abort();
    ctx.sink.flush();
    Ok(print_end(global, result?))
}

/// Whether the run is a DR drill (its resume ends in checks and teardown).
fn is_drill(global: &GlobalArgs, run_id: &str) -> bool {
    let Ok(store) = global.store() else {
        return false;
    };
    Journal::open(store.as_ref(), run_id)
        .and_then(|j| j.events())
        .ok()
        .and_then(|events| events.into_iter().next())
        .is_some_and(|e| matches!(e, JournalEvent::RunStarted { drill: Some(_), .. }))
}

pub fn approve_command(global: &GlobalArgs, args: &ApproveArgs) -> Result<u8, Error> {
    let global = &for_run(global, &args.run_id)?;
    let sink = sink(global);
    let ctx = context(global, sink.as_ref())?;
    let approved = app::approve(
        &ctx,
        &app::ApproveRequest {
            run_id: args.run_id.clone(),
            gate: args.gate.clone(),
            by: args.as_name.clone().unwrap_or_else(current_user),
            reason: args.reason.clone(),
        },
    )?;
    let app::Approved { by, have, need } = approved;
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

pub async fn reject_command(global: &GlobalArgs, args: &RejectArgs) -> Result<u8, Error> {
    let global = &for_run(global, &args.run_id)?;
    let sink = sink(global);
    let ctx = context(global, sink.as_ref())?;
    let by = args.as_name.clone().unwrap_or_else(current_user);
    let rejected = app::reject(
        &ctx,
        &CliConnect::new(global),
        &app::RejectRequest {
            run_id: args.run_id.clone(),
            by: by.clone(),
            reason: args.reason.clone(),
        },
    )
    .await?;
    let phase = &rejected.gate;
    println!(
        "Run {} rejected by {by}{}.",
        args.run_id,
        if phase.is_empty() {
            String::new()
        } else {
            format!(" at the gate before `{phase}`")
        }
    );
    if let Some(back) = rejected.canary_back {
        println!("The canary under way goes back whole to the colour live before it:");
        return Ok(print_end(global, back));
    }
    if is_drill(global, &args.run_id) {
        // A rejected drill still tears down what it built and reports.
        let parallelism = crate::cli::DEFAULT_PARALLELISM.into();
        let code = Box::pin(crate::cli::resume_drill(global, &args.run_id, parallelism)).await?;
        return Ok(if code == exit::FAILURE {
            exit::OK
        } else {
            code
        });
    }
    Ok(exit::OK)
}

pub async fn output_command(global: &GlobalArgs, args: &OutputArgs) -> Result<u8, Error> {
    let sink = sink(global);
    let ctx = context(global, sink.as_ref())?;
    let request = app::OutputRequest {
        root: global.root.clone(),
        runbook: args.runbook.clone(),
    };
    let mut outputs = app::outputs(&ctx, &CliConnect::new(global), &request).await?;
    if let Some(name) = &args.name {
        let names: Vec<String> = outputs.iter().map(|o| o.name.clone()).collect();
        outputs.retain(|o| &o.name == name || format!("{}.{}", o.stack, o.name) == *name);
        if outputs.is_empty() {
            return Err(Error::usage(
                format!("runbook {} has no output `{name}`", args.runbook),
                crate::diag::suggest(name, names.iter().map(String::as_str))
                    .or_else(|| Some(format!("its outputs: {}", names.join(", ")))),
            ));
        }
    }
    if args.json {
        let map: serde_json::Map<String, serde_json::Value> = outputs
            .iter()
            .map(|o| {
                let value = match &o.value {
                    crate::plan::resolve::Resolved::Known(v) => {
                        serde_json::to_value(v).unwrap_or_default()
                    }
                    pending => serde_json::Value::String(pending.to_string()),
                };
                (o.name.clone(), value)
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&map).expect("outputs serialise")
        );
    } else if let ([one], Some(_)) = (outputs.as_slice(), &args.name) {
        // One value, raw, for scripts: `curl "$(drctl output web url)"`.
        match &one.value {
            crate::plan::resolve::Resolved::Known(crate::world::Value::Str(s)) => println!("{s}"),
            other => println!("{other}"),
        }
    } else {
        print!("{}", crate::cli::terminal::render_outputs(&outputs));
    }
    Ok(exit::OK)
}

pub async fn destroy_command(global: &GlobalArgs, args: &DestroyArgs) -> Result<u8, Error> {
    let sink = sink(global);
    let ctx = context(global, sink.as_ref())?;
    let request = app::DestroyRequest {
        root: global.root.clone(),
        runbook: args.runbook.clone(),
        auto_approve: args.auto_approve,
        force: args.force,
        confirm: args.confirm.clone(),
        environment: args.environment.clone(),
        parallelism: args.parallelism.into(),
    };
    let result = app::destroy(&ctx, &CliConnect::new(global), &request).await;
    ctx.sink.flush();
    let result = result?;
    let env = &result.environment;
    let Some(report) = result.report else {
        println!(
            "Nothing carries drctl:env={env} in {}; nothing to destroy.",
            result.region
        );
        return Ok(exit::OK);
    };
    print_summary("Destroy", &report);
    if !result.left.is_empty() {
        println!(
            "Still tagged drctl:env={env}: {}",
            result
                .left
                .iter()
                .map(|a| a.to_string())
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

/// Asks on the terminal; without one, refuses with `unasked`.
/// Asks through the terminal sink (the same prompt as everywhere); without
/// a terminal, `unasked`.
fn confirm(question: &str, expected: &str, unasked: Error) -> Result<(), Error> {
    let question = crate::events::Question::Confirm {
        prompt: question.to_string(),
        expected: expected.to_string(),
    };
    match TerminalSink::new().ask(&question) {
        Some(crate::events::Answer::Approve) => Ok(()),
        Some(_) => Err(Error::Declined),
        None => Err(unasked),
    }
}

pub fn runs_command(global: &GlobalArgs, show: Option<&str>) -> Result<u8, Error> {
    match show {
        None => {
            let store = global.store()?;
            let mut runs = crate::journal::list_runs(store.as_ref());
            for (id, events) in &mut runs {
                if let Some(fresh) = settle_overdue_gate(global, id, events) {
                    *events = fresh;
                }
            }
            if runs.is_empty() {
                println!(
                    "No runs under {}.",
                    store.location(&crate::store::Key::runs()).display()
                );
            }
            if !runs.is_empty() {
                println!(
                    "{:<20}  {:<20} {:<16} {:<23}  STATUS",
                    "RUN", "RUNBOOK", "ENVIRONMENT", "STARTED"
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
                let stored = app::push::fallback_note(store.as_ref(), &id, &events)
                    .map(|note| format!(" ({note})"))
                    .unwrap_or_default();
                println!(
                    "{id:<20}  {runbook:<20} {env:<16} {started:<23}  {}{extra}{stored}",
                    state.status
                );
            }
        }
        Some(id) => {
            let global = &for_run(global, id)?;
            let store = global.store()?;
            let mut events = Journal::open(store.as_ref(), id)?.events()?;
            if let Some(fresh) = settle_overdue_gate(global, id, &events) {
                events = fresh;
            }
            print!("{}", crate::journal::timeline(&events));
            if let Some(note) = app::push::fallback_note(store.as_ref(), id, &events) {
                println!("store: {note}");
            }
        }
    }
    Ok(exit::OK)
}

/// A run of `events` waiting at a gate past its deadline is rejected by
/// the first command that looks at it (`runs` too): its events then. A
/// journal this command cannot write to is shown as it is, with a warning.
fn settle_overdue_gate(
    global: &GlobalArgs,
    id: &str,
    events: &[JournalEvent],
) -> Option<Vec<JournalEvent>> {
    let state = run_state(events);
    if state.status.is_final() || state.waiting.is_none() {
        return None;
    }
    let sink = crate::events::NullSink;
    let settled =
        context(global, &sink).and_then(|ctx| Ok((app::reject_if_overdue(&ctx, id)?, ctx)));
    match settled {
        Ok((Some(_), ctx)) => Journal::open(ctx.store.as_ref(), id)
            .and_then(|j| j.events())
            .ok(),
        Ok((None, _)) => None,
        Err(e) => {
            tracing::warn!("cannot end run {id} at its overdue gate: {e}");
            None
        }
    }
}

/// `drctl lock status`: each lock, its holder, and its lease's age.
pub fn lock_status_command(global: &GlobalArgs) -> Result<u8, Error> {
    let store = global.store()?;
    let locks = store.environment_locks()?;
    if locks.is_empty() {
        println!("No environment is locked in {}.", store.root().display());
    }
    for lock in locks {
        let holder = lock.holder.map_or_else(
            || "a process that is taking it right now".to_string(),
            |h| h.to_string(),
        );
        let lease = match lock.lease {
            None => String::new(),
            Some(l) if l.renewed_ms_ago > l.lease_ms as i64 => format!(
                "; lease lapsed {}s ago (generation {}): the next run takes it over",
                (l.renewed_ms_ago - l.lease_ms as i64) / 1000,
                l.generation
            ),
            Some(l) => format!(
                "; lease renewed {}s ago, of {}s (generation {})",
                l.renewed_ms_ago.max(0) / 1000,
                l.lease_ms / 1000,
                l.generation
            ),
        };
        println!("{}: {holder}{lease}", lock.name);
    }
    Ok(exit::OK)
}

/// `drctl unlock`: a runbook names its environment and region (the lock a
/// run of it takes); otherwise the lock is named as ENV@REGION. A bare word
/// that is no runbook is refused rather than given a default region, which
/// would report some other region's lock as free.
pub fn unlock_command(
    global: &GlobalArgs,
    target: &crate::cli::LockTarget,
    yes: bool,
) -> Result<u8, Error> {
    let (env, region) = match target {
        crate::cli::LockTarget::EnvRegion { env, region } => (env.clone(), region.clone()),
        crate::cli::LockTarget::Runbook(runbook) => {
            let root = app::project_root(global.root.as_deref(), runbook);
            if let Err(Error::Usage { hint, .. }) = app::runbook_path(&root, runbook) {
                let forms = format!(
                    "name the lock by its runbook (`drctl unlock RUNBOOK`) or as ENV@REGION (`drctl unlock {runbook}@REGION`)"
                );
                return Err(Error::usage(
                    format!("`{runbook}` is neither a runbook nor ENV@REGION"),
                    Some(match hint {
                        Some(hint) => format!("{hint} Or {forms}"),
                        None => forms,
                    }),
                ));
            }
            let loaded = app::load(global.root.as_deref(), runbook)?;
            let runbook = loaded.runbook();
            (runbook.environment.clone(), runbook.region.clone())
        }
    };
    let store = global.store()?;
    let Some(holder) = crate::lock::holder(store.as_ref(), &env, &region) else {
        println!("{env}@{region} is not locked.");
        return Ok(exit::OK);
    };
    println!("{env}@{region} is locked by {holder}.");
    if !yes {
        confirm(
            "Remove the lock? A run still working on this environment would then race another.",
            "yes",
            Error::usage(
                "refusing to remove the lock unconfirmed: no terminal to ask on",
                Some(format!(
                    "make sure that run is gone, then pass --yes: drctl unlock {env}@{region} --yes"
                )),
            ),
        )?;
    }
    crate::lock::unlock(store.as_ref(), &env, &region)?;
    println!("Unlocked {env}@{region}.");
    Ok(exit::OK)
}
