//! Sinks of the command line: the terminal renderer (prompts included) and
//! JSON lines for `--log-format json`. Part of the CLI layer: the only place
//! besides `cli`/`commands` that prints or reads the terminal.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::events::{Answer, Event, Question, Sink};
use crate::execute::{Event as Step, OutcomeKind};
use crate::plan::{render, Action};

/// Renders events as people read them; asks on a terminal. On a terminal,
/// long work shows a live progress line (phase, steps done of total, what
/// is being waited on and for how long); piped, one plain line per event.
pub struct TerminalSink {
    interactive: bool,
    live: Option<Live>,
    /// Piped: the last wait shown, so a poll that changed nothing is not
    /// printed again.
    last_wait: Mutex<Option<(String, String)>>,
}

/// The progress line of the phase (or cleanup) under way.
#[derive(Default)]
struct Live {
    bar: Mutex<Option<ProgressBar>>,
    /// Steps of the phase planned last (its bar's length).
    /// Steps planned since the last bar started: the next bar's length.
    next_total: Mutex<Option<u64>>,
}

impl Live {
    fn start(&self, prefix: String, total: u64) {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stdout());
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:24}] {pos}/{len} {wide_msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(prefix);
        bar.enable_steady_tick(std::time::Duration::from_millis(250));
        if let Some(old) = self
            .bar
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(bar)
        {
            old.finish_and_clear();
        }
    }

    /// Prints above the bar (or plainly when there is none).
    fn print(&self, text: &str) {
        if text.is_empty() {
            return;
        }
        match &*self.bar.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(bar) => bar.suspend(|| print!("{text}")),
            None => print!("{text}"),
        }
        let _ = std::io::stdout().flush();
    }

    fn with_bar(&self, f: impl FnOnce(&ProgressBar)) {
        if let Some(bar) = &*self.bar.lock().unwrap_or_else(|e| e.into_inner()) {
            f(bar);
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
            bar.finish_and_clear();
        }
    }

    fn event(&self, event: &Event) {
        match event {
            Event::PhasePlanned { phase, .. } => {
                // Phases planned together run together: one bar for all.
                let steps = phase.changes.iter().filter(|c| c.action != Action::NoOp);
                let mut next = self.next_total.lock().unwrap_or_else(|e| e.into_inner());
                *next = Some(next.unwrap_or(0) + steps.count() as u64);
                self.print(&render_event(event));
            }
            Event::Step(Step::PhaseStarted {
                name,
                number,
                total,
            }) => {
                self.print(&render_event(event));
                let prefix = format!("phase {number}/{total} {name}");
                let planned = self
                    .next_total
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
                match planned {
                    Some(steps) => self.start(prefix, steps),
                    // A phase pipelined with those planned before: same bar.
                    None => self.with_bar(|bar| bar.set_prefix(prefix)),
                }
            }
            Event::Step(Step::PhaseFinished { .. }) => {}
            Event::Step(Step::CleanupStarted { count }) if *count > 0 => {
                self.print(&render_event(event));
                self.start("cleanup".into(), *count as u64);
            }
            Event::Step(Step::Started {
                address, action, ..
            }) => {
                self.with_bar(|bar| bar.set_message(format!("{} {address}", verb(*action).0)));
            }
            Event::Step(Step::Waiting {
                address,
                on,
                state,
                deadline_in,
            }) => self.with_bar(|bar| {
                bar.set_message(format!(
                    "{address}: waiting for {on} ({state}; {}s left)",
                    deadline_in.as_secs()
                ))
            }),
            Event::Step(Step::Finished(_)) => {
                self.print(&render_event(event));
                self.with_bar(|bar| bar.inc(1));
            }
            _ => {
                self.finish();
                self.print(&render_event(event));
            }
        }
    }
}

impl TerminalSink {
    pub fn new() -> Self {
        TerminalSink {
            interactive: std::io::stdin().is_terminal(),
            live: std::io::stdout().is_terminal().then(Live::default),
            last_wait: Mutex::new(None),
        }
    }

    /// Clears the progress line before the command prints its summary.
    pub fn finish(&self) {
        if let Some(live) = &self.live {
            live.finish();
        }
    }
}

impl Drop for TerminalSink {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Default for TerminalSink {
    fn default() -> Self {
        Self::new()
    }
}

impl Sink for TerminalSink {
    fn event(&self, event: &Event) {
        if let Some(live) = &self.live {
            return live.event(event);
        }
        // Piped: a wait is printed when what it waits on or its state changes.
        if let Event::Step(Step::Waiting { on, state, .. }) = event {
            let now = Some((on.clone(), state.clone()));
            let mut last = self.last_wait.lock().unwrap_or_else(|e| e.into_inner());
            if *last == now {
                return;
            }
            *last = now;
        }
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "{}", render_event(event));
        let _ = out.flush();
    }

    fn can_ask(&self) -> bool {
        self.interactive
    }

    fn flush(&self) {
        self.finish();
    }

    fn ask(&self, question: &Question) -> Option<Answer> {
        self.ask_watching(question, std::time::Duration::MAX, &mut || false)
    }

    fn ask_watching(
        &self,
        question: &Question,
        every: std::time::Duration,
        overtaken: &mut dyn FnMut() -> bool,
    ) -> Option<Answer> {
        if !self.interactive {
            return None;
        }
        if let Question::Gate {
            may_approve: false, ..
        } = question
        {
            return Some(Answer::Defer); // nothing to ask: the run pauses
        }
        self.finish();
        let prompt = match question {
            Question::Confirm { prompt, expected } => {
                format!("\n{prompt} Type '{expected}' to proceed: ")
            }
            Question::Gate {
                phase,
                approvals,
                needed,
                approved_by,
                user,
                ..
            } => format!(
                "\nGate before phase `{phase}`: {approvals} of {needed} approval(s){}. As {user}, type approve, reject or later: ",
                if approved_by.is_empty() {
                    String::new()
                } else {
                    format!(" (by {})", approved_by.join(", "))
                }
            ),
        };
        print!("{prompt}");
        let _ = std::io::stdout().flush();
        let Some(answer) = typed_line(every, overtaken) else {
            println!("\n(settled elsewhere)");
            return Some(Answer::Overtaken);
        };
        let answer = answer.trim();
        Some(match question {
            Question::Confirm { expected, .. } if answer == expected => Answer::Approve,
            Question::Confirm { .. } => Answer::Reject,
            // The words the prompt offers; `yes`/`no` mean the same, as at
            // the plan confirmation. Anything else leaves the gate open.
            Question::Gate { .. } => match answer {
                "approve" | "yes" => Answer::Approve,
                "reject" | "no" => Answer::Reject,
                _ => Answer::Defer,
            },
        })
    }
}

/// The next line typed at the terminal (empty at its end), or `None` once
/// `overtaken`, asked every `every`, says nobody need answer any more.
///
/// One thread of the process reads the terminal for every prompt: a prompt
/// withdrawn while its read is blocked cannot take back that read, so the
/// line it would have had goes to the next prompt instead of being lost.
fn typed_line(every: std::time::Duration, overtaken: &mut dyn FnMut() -> bool) -> Option<String> {
    use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
    use std::sync::OnceLock;
    static TYPED: OnceLock<Mutex<Receiver<String>>> = OnceLock::new();
    let lines = TYPED.get_or_init(|| {
        let (send, receive) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Mutex::new(receive)
    });
    let lines = lines.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        match lines.recv_timeout(every) {
            Ok(line) => return Some(line),
            // The terminal's end (Ctrl-D): an empty answer, as before.
            Err(RecvTimeoutError::Disconnected) => return Some(String::new()),
            Err(RecvTimeoutError::Timeout) if overtaken() => return None,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

/// `--wait`: at a manual gate nobody here can answer (no terminal, or a
/// user who may not approve), waits for the approvals people give
/// elsewhere — `drctl approve` in another terminal, or on another machine
/// through the team's store — instead of pausing; the gate's deadline and
/// Ctrl-C end the wait. Everything else goes to the sink it wraps.
pub struct WaitForApprovals(pub Box<dyn Sink>);

impl Sink for WaitForApprovals {
    fn event(&self, event: &Event) {
        self.0.event(event);
    }

    fn can_ask(&self) -> bool {
        self.0.can_ask()
    }

    fn flush(&self) {
        self.0.flush();
    }

    fn ask(&self, question: &Question) -> Option<Answer> {
        self.0.ask(question)
    }

    fn ask_watching(
        &self,
        question: &Question,
        every: std::time::Duration,
        overtaken: &mut dyn FnMut() -> bool,
    ) -> Option<Answer> {
        let Question::Gate {
            phase,
            approvals,
            needed,
            may_approve,
            ..
        } = question
        else {
            return self.0.ask_watching(question, every, overtaken);
        };
        if *may_approve && self.0.can_ask() {
            return self.0.ask_watching(question, every, overtaken);
        }
        self.0.flush();
        eprintln!(
            "Waiting at the gate before phase `{phase}` for approvals from elsewhere ({approvals} of {needed}); Ctrl-C leaves the run paused."
        );
        loop {
            std::thread::sleep(every);
            if overtaken() {
                return Some(Answer::Overtaken);
            }
        }
    }
}

/// One JSON object per event on stdout, for machines (`--log-format json`).
pub struct JsonSink;

impl Sink for JsonSink {
    fn event(&self, event: &Event) {
        if let Ok(line) = serde_json::to_string(event) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
        }
    }
}

/// How the terminal shows one event.
pub fn render_event(event: &Event) -> String {
    match event {
        Event::Planned { plan } => render::render(plan),
        Event::PlanSaved { path, apply_with } => format!(
            "\nSaved the plan to {}. Apply exactly it with: {apply_with}\n",
            path.display()
        ),
        Event::RunStarted { run_id, journal } => {
            format!("\nRun {run_id} (journal: {})\n", journal.display())
        }
        Event::SourcesChanged { files } => format!(
            "\nThese files changed since the run started: {}. Each phase is planned from them again; a gate whose plan differs waits for new approvals.\n",
            files.join(", ")
        ),
        Event::PhasePlanned {
            number,
            total,
            phase,
            ..
        } => format!("\n{}", render::render_phase(phase, *number, *total)),
        Event::PlanChangedAtGate { phase, set_aside } => format!(
            "\nThe plan of phase `{phase}` is not the one shown before{}: it needs approving again.\n",
            if set_aside.is_empty() {
                String::new()
            } else {
                format!(" (approvals by {} were for the old plan)", set_aside.join(", "))
            }
        ),
        Event::GateDecided {
            phase,
            decision,
            by,
            reason,
        } => format!(
            "gate before {phase}: {}\n",
            crate::journal::decision_sentence(*decision, by, reason.as_deref())
        ),
        Event::Step(step) => render_step(step),
        Event::InFlightAtStop { address, action } => format!(
            "{address}: a {action:?} call was in flight when the run stopped; it is looked up by tag, not repeated\n"
        ),
        Event::CleanupNotApproved { address, id } => format!(
            "  · {address} ({id}): not deleted, its deletion was not in the approved plan; apply again to review it\n"
        ),
        Event::Outputs { outputs } => render_outputs(outputs),
        Event::DrillStage { message } => format!("{message}\n"),
        Event::CanaryLeft {
            gate,
            why,
            rollback_with,
        } => format!(
            "\nThe run was rejected at gate {gate}, but its canary could not be sent back: {why}.\n\
             It keeps its share of the traffic. Once that is fixed, send it back with:\n{}",
            rollback_with.iter().map(|c| format!("    {c}\n")).collect::<String>()
        ),
        Event::DrillCheck { result } => render_check(result),
        Event::RolledBack { services } => render_rolled_back(services),
        Event::LeftBuilt {
            environment,
            resources,
            destroy_with,
        } => {
            let mut out = format!(
                "\nThe phases before the gate left {} resource(s) of {environment} built:\n",
                resources.len()
            );
            for address in resources {
                out.push_str(&format!("    {address}\n"));
            }
            out.push_str(&format!("Remove them with: {destroy_with}\n"));
            out
        }
        Event::DestroyPlanned {
            environment,
            region,
            resources,
        } => {
            let mut out = format!(
                "Destroy environment {environment} in {region}: {} resources\n",
                resources.len()
            );
            for (address, id) in resources {
                out.push_str(&format!("    - {address} ({id})\n"));
            }
            out
        }
    }
}

fn render_check(result: &crate::outcome::CheckResult) -> String {
    use crate::outcome::CheckStatus;
    let mark = match result.status {
        CheckStatus::Passed => "✓ passed",
        CheckStatus::Failed => "✗ FAILED",
        CheckStatus::Skipped => "- skipped",
    };
    format!(
        "  check {}: {mark} in {:.1}s: {}\n",
        result.name,
        result.duration_ms as f64 / 1000.0,
        result.detail
    )
}

fn render_rolled_back(services: &[crate::outcome::RolledBack]) -> String {
    let mut out = String::from("Automatic rollback after failed checks:\n");
    for service in services {
        let run = service
            .run_id
            .as_ref()
            .map(|id| format!(" (run {id})"))
            .unwrap_or_default();
        let mark = if service.ok { "↩" } else { "✗" };
        out.push_str(&format!(
            "  {mark} {}: {}{run}\n",
            service.service, service.note
        ));
    }
    out
}

/// `Outputs:` and one `name = value` line each (`stack.name` when the
/// runbook has several root stacks).
pub fn render_outputs(outputs: &[crate::plan::OutputValue]) -> String {
    if outputs.is_empty() {
        return String::new();
    }
    let several = outputs.iter().any(|o| o.stack != outputs[0].stack);
    let name = |o: &crate::plan::OutputValue| {
        if several {
            format!("{}.{}", o.stack, o.name)
        } else {
            o.name.clone()
        }
    };
    let width = outputs.iter().map(|o| name(o).len()).max().unwrap_or(0);
    let mut out = String::from("\nOutputs:\n");
    for o in outputs {
        out.push_str(&format!("  {:width$} = {}\n", name(o), o.value));
    }
    out
}

fn render_step(step: &Step) -> String {
    match step {
        Step::PhaseStarted {
            name,
            number,
            total,
        } => format!("\nPhase {number}/{total} {name}\n"),
        // Its steps' outcomes said it all.
        Step::PhaseFinished { .. } => String::new(),
        Step::Started {
            address, action, ..
        } => {
            format!("  {} {address}: {}…\n", action.symbol(), verb(*action).0)
        }
        Step::Finished(outcome) => {
            let address = &outcome.address;
            let secs = outcome.elapsed.as_secs_f64();
            match &outcome.result {
                OutcomeKind::Done(id) => format!(
                    "  {} {address}: {} {id} ({secs:.1}s)\n",
                    outcome.action.symbol(),
                    verb(outcome.action).1
                ),
                OutcomeKind::Failed(e) => format!("  ! {address}: failed after {secs:.1}s: {e}\n"),
                OutcomeKind::Skipped { because } => {
                    format!("  · {address}: skipped ({because} failed)\n")
                }
                OutcomeKind::NotStarted => format!("  · {address}: not started (interrupted)\n"),
            }
        }
        Step::CleanupStarted { count } if *count > 0 => {
            format!("\nCleanup: deleting {count} resources, dependents first\n")
        }
        Step::CleanupStarted { .. } => String::new(),
        Step::Waiting {
            address,
            on,
            state,
            deadline_in,
        } => format!(
            "  … {address}: waiting for {on} ({state}; gives up in {})\n",
            humantime::format_duration(std::time::Duration::from_secs(deadline_in.as_secs()))
        ),
        Step::CleanupSkipped { failed } => format!(
            "\nCleanup skipped: {failed} change(s) failed, so nothing old is deleted yet; fix the cause and apply again\n"
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
