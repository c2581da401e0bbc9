//! How a run ends on the terminal (a summary and what to type next, or one
//! JSON line), and how Ctrl-C and SIGTERM stop it.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{GlobalArgs, LogFormat};
use crate::app;
use crate::error::exit;
use crate::execute::{OutcomeKind, Report};
use crate::journal::{run_state, Event as JournalEvent, Journal};
use crate::plan::Action;
use crate::run::RunEnd;
use crate::store::RunStore;

/// What the end of a run means, and what to type next.
pub(crate) fn print_end(global: &GlobalArgs, result: app::RunResult) -> u8 {
    if matches!(global.log_format, LogFormat::Json) {
        return print_end_json(result);
    }
    let id = &result.run_id;
    match result.end {
        RunEnd::Succeeded(report) => {
            print_summary("Apply", &report);
            print!("{}", crate::cli::terminal::render_outputs(&result.outputs));
            match &result.after_cutover {
                Some(after) if after.failed() => {
                    println!("{}", checks_failed_sentence(after));
                    exit::FAILURE
                }
                _ => exit::OK,
            }
        }
        RunEnd::Failed(report) => {
            print_summary("Apply", &report);
            println!("Resume after fixing the cause with: drctl resume {id}");
            exit::FAILURE
        }
        RunEnd::Paused {
            phase,
            approvals,
            needed,
        } => {
            println!("\nPaused before phase `{phase}`: {approvals} of {needed} approval(s). The run is saved.");
            println!("Approve with:  drctl approve {id} --gate {phase}");
            println!("               (add --as NAME --reason TEXT to record who and why)");
            println!("then continue: drctl resume {id}");
            println!("or end it:     drctl reject {id}");
            exit::PAUSED
        }
        RunEnd::Rejected { phase, by } => {
            println!("\nRun {id} rejected at the gate before phase `{phase}` by {by}; nothing more is applied.");
            exit::FAILURE
        }
        RunEnd::Interrupted(report) => {
            print_summary("Apply", &report);
            println!("Interrupted; everything in flight finished and is journaled. Continue with: drctl resume {id}");
            exit::FAILURE
        }
    }
}

/// `--log-format json`: the end of a run as one JSON object, with the
/// command to type next, like every other line of that format.
fn print_end_json(result: app::RunResult) -> u8 {
    let id = &result.run_id;
    let counts = |report: &Report| {
        serde_json::json!({
            "added": report.count(Action::Create),
            "changed": report.count(Action::Update),
            "replaced": report.count(Action::Replace),
            "destroyed": report.count(Action::Delete),
            "elapsed_ms": report.elapsed.as_millis() as u64,
            "not_done": report.failures().map(|o| o.address.to_string()).collect::<Vec<_>>(),
        })
    };
    let checks_failed = result.after_cutover.as_ref().filter(|a| a.failed());
    let (status, detail, next, code) = match &result.end {
        RunEnd::Succeeded(report) if checks_failed.is_some() => {
            ("checks_failed", counts(report), None, exit::FAILURE)
        }
        RunEnd::Succeeded(report) => ("succeeded", counts(report), None, exit::OK),
        RunEnd::Failed(report) => (
            "failed",
            counts(report),
            Some(format!("drctl resume {id}")),
            exit::FAILURE,
        ),
        RunEnd::Interrupted(report) => (
            "interrupted",
            counts(report),
            Some(format!("drctl resume {id}")),
            exit::FAILURE,
        ),
        RunEnd::Paused {
            phase,
            approvals,
            needed,
        } => (
            "paused",
            serde_json::json!({"phase": phase, "approvals": approvals, "needed": needed}),
            Some(format!("drctl approve {id} --gate {phase}")),
            exit::PAUSED,
        ),
        RunEnd::Rejected { phase, by } => (
            "rejected",
            serde_json::json!({"phase": phase, "by": by}),
            None,
            exit::FAILURE,
        ),
    };
    let line = serde_json::json!({
        "event": "run_ended",
        "run_id": id,
        "status": status,
        "detail": detail,
        "next": next,
        "outputs": result.outputs,
        "checks": result.after_cutover.as_ref().map(|a| &a.checks),
        "rolled_back": result.after_cutover.as_ref().map(|a| &a.rolled_back),
    });
    println!("{line}");
    code
}

/// Every step was applied, but a check after the cutover failed.
fn checks_failed_sentence(after: &app::AfterCutover) -> String {
    let failed: Vec<&str> = after
        .checks
        .iter()
        .filter(|c| c.status == crate::drill::report::CheckStatus::Failed)
        .map(|c| c.name.as_str())
        .collect();
    let back: Vec<String> = after
        .rolled_back
        .iter()
        .map(|r| match (&r.to, r.ok) {
            (Some(to), true) if r.run_id.is_some() => format!("{} is back on {to}", r.service),
            _ => format!("{}: {}", r.service, r.note),
        })
        .collect();
    format!(
        "\nThe changes were applied, but {} check(s) failed after the cutover ({}). {}",
        failed.len(),
        failed.join("; "),
        if back.is_empty() {
            "Nothing was rolled back.".to_string()
        } else {
            format!("Rolled back automatically: {}.", back.join("; "))
        }
    )
}

/// First Ctrl-C: start nothing new. Second: record it and abort.
pub(crate) async fn watch_ctrl_c(cancel: CancellationToken, store: Arc<dyn RunStore>) {
    // SIGTERM (a scheduler or systemd stopping drctl) means what Ctrl-C means.
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        return;
    };
    let mut stop_signal = async || {
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => interrupted.is_ok(),
            terminated = term.recv() => terminated.is_some(),
        }
    };
    if !stop_signal().await {
        return;
    }
    cancel.cancel();
    eprintln!(
        "\nStopping: nothing new starts; waiting for calls in flight (a drill then tears down). Press Ctrl-C again to abort."
    );
    if stop_signal().await {
        // The run in flight is this process's: started or resumed by it,
        // and not finished (a drill is finished once it has reported).
        let pid = std::process::id();
        let ours = |events: &[JournalEvent]| {
            events.iter().any(|e| match e {
                JournalEvent::RunStarted { pid: p, .. } | JournalEvent::Resumed { pid: p, .. } => {
                    *p == pid
                }
                _ => false,
            })
        };
        let unfinished = |events: &[JournalEvent]| {
            let drill = matches!(
                events.first(),
                Some(JournalEvent::RunStarted { drill: Some(_), .. })
            );
            // `drctl rollback` and `retire` runs (an apply's automatic
            // rollback among them) are re-run, not resumed.
            let command_run = match events.first() {
                Some(JournalEvent::RunStarted { phases, .. }) => {
                    crate::app::traffic::refuse_resume(phases).is_err()
                }
                _ => false,
            };
            if drill {
                !events
                    .iter()
                    .any(|e| matches!(e, JournalEvent::DrillFinished { .. }))
            } else {
                !command_run && !run_state(events).status.is_final()
            }
        };
        let latest = crate::journal::list_runs(store.as_ref())
            .into_iter()
            .filter(|(_, events)| ours(events) && unfinished(events))
            .map(|(id, _)| id)
            .max();
        if let Some(run_id) = latest {
            if let Ok(journal) = Journal::open(store.as_ref(), &run_id) {
                let _ = journal.append(&JournalEvent::Interrupted {
                    at: crate::journal::now_millis(),
                });
            }
            eprintln!("Aborted. Resume with: drctl resume {run_id}");
        }
        std::process::exit(exit::FAILURE.into());
    }
}

pub(crate) fn print_summary(what: &str, report: &Report) {
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
