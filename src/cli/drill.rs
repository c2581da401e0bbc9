//! `drctl drill`, `drctl drills history` and `drctl rebuild`: the handlers
//! turn arguments into application requests and print the end with what to
//! type next.

use tokio_util::sync::CancellationToken;

use super::{DrillArgs, GlobalArgs, RebuildArgs};
use crate::app;
use crate::cli::commands::{context, print_end, sink, watch_ctrl_c};
use crate::drill::rehearse::{self, DrillOutcome, DrillRequest, DrillSettings};
use crate::drill::render::duration;
use crate::drill::{history, report::DrillReport};
use crate::error::{exit, Error};
use crate::journal::format_millis;
use crate::run::RunEnd;

use super::CliConnect;

pub async fn drill_command(global: &GlobalArgs, args: &DrillArgs) -> Result<u8, Error> {
    let sink = sink(global);
    let ctx = context(global, sink.as_ref())?;
    let run_id = match args.scheduled {
        true => match claim_fire(global, &ctx, args)? {
            Some(run_id) => Some(run_id),
            None => return Ok(exit::OK),
        },
        false => args.run_id.clone(),
    };
    let request = DrillRequest {
        root: global.root.clone(),
        runbook: args.runbook.clone(),
        environment: args.environment.clone(),
        region: global.region.clone(),
        interactive: args.interactive,
        junit: args.junit.clone(),
        rebake: args.rebake,
        parallelism: args.parallelism.into(),
        settings: DrillSettings::default(),
        run_id,
    };
    let cancel = CancellationToken::new();
    let watcher = tokio::spawn(watch_ctrl_c(cancel.clone(), global.store()?));
    let outcome = rehearse::drill(&ctx, &CliConnect::new(global), &request, &cancel).await;
    watcher.abort();
    ctx.sink.flush();
    Ok(print_drill_end(global, outcome?))
}

/// `drill --scheduled`: claims the runbook's latest scheduled fire for
/// this drill's run id; `None` (and says so) when another start of the same
/// fire claimed it first.
fn claim_fire(
    global: &GlobalArgs,
    ctx: &crate::app::Context<'_>,
    args: &DrillArgs,
) -> Result<Option<String>, Error> {
    let loaded = crate::app::load(global.root.as_deref(), &args.runbook)?;
    let runbook = loaded.runbook();
    let Some(scheduled) = crate::schedule::Scheduled::of(runbook) else {
        return Err(Error::usage(
            format!(
                "runbook {} has no schedule to claim a fire of",
                runbook.name
            ),
            Some("leave out --scheduled, or give the runbook a `schedule`".into()),
        ));
    };
    let now = jiff::Timestamp::from_millisecond(ctx.clock.now())
        .unwrap_or_else(|_| jiff::Timestamp::now());
    let Some(fire) = crate::schedule::latest_fire(&scheduled, now) else {
        return Err(Error::usage(
            format!(
                "runbook {}'s schedule has not fired in the last year",
                runbook.name
            ),
            None,
        ));
    };
    let run_id = args
        .run_id
        .clone()
        .unwrap_or_else(|| crate::app::new_run_id(ctx.clock));
    let fire_ms = fire.at.timestamp().as_millisecond();
    use crate::schedule::state::{claim_fire, FireClaim};
    let by = match claim_fire(ctx.store.as_ref(), &runbook.name, fire_ms, &run_id)? {
        FireClaim::Ours => return Ok(Some(run_id)),
        FireClaim::Taken(by) => by,
    };
    println!(
        "The fire of {}'s schedule at {} was claimed already ({by}): nothing to do.",
        runbook.name, fire.at
    );
    Ok(None)
}

/// `drctl resume` of a drill run.
pub async fn resume_drill(
    global: &GlobalArgs,
    run_id: &str,
    parallelism: usize,
) -> Result<u8, Error> {
    let sink = sink(global);
    let ctx = context(global, sink.as_ref())?;
    let cancel = CancellationToken::new();
    let watcher = tokio::spawn(watch_ctrl_c(cancel.clone(), global.store()?));
    let outcome =
        rehearse::resume(&ctx, &CliConnect::new(global), run_id, parallelism, &cancel).await;
    watcher.abort();
    ctx.sink.flush();
    Ok(print_drill_end(global, outcome?))
}

/// The verdict, the RTO against its target, and where the report is.
pub fn print_drill_end(global: &GlobalArgs, outcome: DrillOutcome) -> u8 {
    let finished = match outcome {
        DrillOutcome::Paused {
            run_id,
            phase,
            approvals,
            needed,
        } => {
            return print_end(
                global,
                app::RunResult {
                    run_id,
                    end: RunEnd::Paused {
                        phase,
                        approvals,
                        needed,
                    },
                    outputs: Vec::new(),
                    after_cutover: None,
                },
            )
        }
        DrillOutcome::Finished(finished) => finished,
    };
    let report = &finished.report;
    if matches!(global.log_format, super::LogFormat::Json) {
        let line = serde_json::json!({
            "event": "drill_ended",
            "run_id": report.run_id,
            "verdict": report.verdict,
            "failures": report.failures,
            "rto": report.rto,
            "report": finished.json,
            "markdown": finished.markdown,
            "junit": finished.junit,
        });
        println!("{line}");
        return if report.passed() {
            exit::OK
        } else {
            exit::FAILURE
        };
    }
    println!();
    println!("{}", verdict_line(report));
    for failure in &report.failures {
        println!("  - {failure}");
    }
    println!("{}", rto_line(report));
    println!("Report: {}", finished.json.display());
    println!("        {}", finished.markdown.display());
    if let Some(junit) = &finished.junit {
        println!("JUnit:  {}", junit.display());
    }
    if !report.leak_check.leaks.is_empty() {
        println!("Still tagged with the drill's environment after teardown:");
        for leak in &report.leak_check.leaks {
            println!("  {} ({})", leak.resource, leak.resource_type);
        }
        // The sandbox a drill started for itself is gone by now: nothing to ask.
        if !global.sandbox {
            let endpoint = global
                .endpoint_url
                .as_ref()
                .map(|u| format!(" --endpoint-url {u}"))
                .unwrap_or_default();
            println!(
                "List them again with: aws resourcegroupstaggingapi get-resources{endpoint} --region {} --tag-filters Key=drctl:env,Values={}",
                report.region, report.environment
            );
        }
    }
    if !report.teardown.performed || !report.teardown.ok {
        println!("Left built: {}.", report.teardown.note);
        println!(
            "Remove it with: drctl{} --root {} destroy {} --environment {} --auto-approve",
            target_flags(global, &report.region),
            finished.root.display(),
            report.runbook,
            report.environment
        );
    }
    if report.passed() {
        exit::OK
    } else {
        exit::FAILURE
    }
}

/// The options that point a printed command at where the drill ran.
fn target_flags(global: &GlobalArgs, region: &str) -> String {
    let mut flags = String::new();
    if global.sandbox {
        flags.push_str(" --sandbox");
    }
    if let Some(url) = &global.endpoint_url {
        flags.push_str(&format!(" --endpoint-url {url}"));
    }
    if let Some(profile) = &global.profile {
        flags.push_str(&format!(" --profile {profile}"));
    }
    if global.region.is_some() {
        flags.push_str(&format!(" --region {region}"));
    }
    flags
}

fn verdict_line(report: &DrillReport) -> String {
    format!(
        "Drill of {} {} ({} in {}, run {}).",
        report.runbook,
        if report.passed() { "PASSED" } else { "FAILED" },
        report.environment,
        report.region,
        report.run_id
    )
}

fn rto_line(report: &DrillReport) -> String {
    let rto = match report.rto.measured_ms {
        Some(ms) => format!("RTO {}", duration(ms)),
        None => "RTO not measured (the checks did not all pass)".to_string(),
    };
    let target = match (report.rto.target_ms, report.rto.met) {
        (Some(t), Some(true)) => format!(", target {}: met", duration(t)),
        (Some(t), Some(false)) => format!(", target {}: MISSED", duration(t)),
        (Some(t), None) => format!(", target {}", duration(t)),
        (None, _) => ", no rto_target set".to_string(),
    };
    let bound = match report.critical_path.rto_ratio {
        Some(ratio) => format!(
            "; critical-path bound {} (RTO is {ratio:.1}× it)",
            duration(report.critical_path.bound_ms)
        ),
        None => String::new(),
    };
    let phase_order = match report.phase_order.rto_ratio {
        Some(ratio) => format!(
            ", phase-order bound {} ({ratio:.1}×)",
            duration(report.phase_order.bound_ms)
        ),
        None => String::new(),
    };
    let forecast = match &report.forecast {
        Some(f) => match f.error_pct {
            Some(error) => format!(
                "; forecast {} ({})",
                duration(f.made.rto_ms),
                crate::drill::render::error_words(error)
            ),
            None => format!("; forecast {}", duration(f.made.rto_ms)),
        },
        None => String::new(),
    };
    format!("{rto}{target}{bound}{phase_order}{forecast}.")
}

pub fn history_command(global: &GlobalArgs, runbook: &str, json: bool) -> Result<u8, Error> {
    let loaded = app::load(global.root.as_deref(), runbook)?;
    let runbook = loaded.runbook();
    let reports = history::read_history(global.store()?.as_ref(), &runbook.name)?;
    if json {
        let entries = history::history_entries(&reports);
        println!(
            "{}",
            serde_json::to_string_pretty(&entries).expect("history serialises")
        );
        return Ok(exit::OK);
    }
    if reports.is_empty() {
        println!(
            "No drills of {} yet. Run one with: drctl drill {}",
            runbook.name, runbook.name
        );
        return Ok(exit::OK);
    }
    print!(
        "{}",
        history::render_history(&reports, runbook.rto_target.map(|d| d.as_millis() as i64))
    );
    Ok(exit::OK)
}

/// An emergency rebuild: apply from discovery, the runbook's gates (or
/// break-glass), and the RTO at the end.
pub async fn rebuild_command(global: &GlobalArgs, args: &RebuildArgs) -> Result<u8, Error> {
    let reason = args.reason.as_deref().unwrap_or_default();
    let global = &global.or_fallback(args.state_fallback.as_deref(), reason)?;
    let sink = sink(global);
    let ctx = context(global, sink.as_ref()).map_err(|e| match e {
        // The store, not the rebuild, is what is down: say how to go on.
        Error::Store(message) => Error::StoreDown {
            message,
            hint: "the rebuild can go on without it, keeping its records in a local directory until the store is back: add --state-fallback DIR --reason TEXT".into(),
        },
        other => other,
    })?;
    let loaded = app::load(global.root.as_deref(), &args.runbook)?;
    let runbook = loaded.runbook();
    let started = crate::clock::Clock::now(&crate::cli::commands::CLOCK);
    if matches!(global.log_format, super::LogFormat::Text) {
        println!(
            "Emergency rebuild of {} ({}) from what exists, started {}.",
            runbook.environment,
            runbook.region,
            format_millis(started)
        );
        if args.auto_approve {
            println!(
                "Break glass: every gate passes, recorded with your name and the reason \"{}\".",
                args.reason.as_deref().unwrap_or_default()
            );
        } else {
            println!("Each gate shows its phase's plan and asks (without a terminal the run pauses and prints what to type).");
        }
    }
    let request = app::ApplyRequest {
        root: global.root.clone(),
        target: args.runbook.clone(),
        auto_approve: args
            .auto_approve
            .then(|| args.reason.clone().unwrap_or_default()),
        parallelism: args.parallelism.into(),
    };
    let rto_target = runbook.rto_target;
    let cancel = CancellationToken::new();
    let watcher = tokio::spawn(watch_ctrl_c(cancel.clone(), global.store()?));
    let result = app::apply(&ctx, &CliConnect::new(global), &request, &cancel).await;
    watcher.abort();
    ctx.sink.flush();
    let elapsed = crate::clock::Clock::now(&crate::cli::commands::CLOCK) - started;
    let code = match result? {
        app::ApplyResult::NoChanges => {
            println!("Nothing to rebuild: every resource of the runbook exists as specified.");
            exit::OK
        }
        app::ApplyResult::Run(result) => print_end(global, result),
    };
    if code == exit::OK && matches!(global.log_format, super::LogFormat::Text) {
        let target = match rto_target {
            Some(t) if elapsed <= t.as_millis() as i64 => {
                format!(" (target {}: met)", duration(t.as_millis() as i64))
            }
            Some(t) => format!(" (target {}: MISSED)", duration(t.as_millis() as i64)),
            None => String::new(),
        };
        println!("Rebuilt in {}{target}.", duration(elapsed));
    }
    Ok(code)
}
