//! One stream of events, many consumers. The engine and the application
//! layer report what happens as typed [`Event`]s to a [`Sink`]; the terminal
//! renderer, JSON logs and the run journal are sinks, and so will be drills,
//! schedules and reports. A question only a person can answer (confirm a
//! plan, approve a gate) is asked through the sink too: a terminal sink
//! prompts, every other sink says "nobody to ask" and the run pauses.

use std::path::PathBuf;
use std::sync::Mutex;

use serde::Serialize;

use crate::execute;
use crate::journal::Decision;
use crate::plan::{Action, PhasePlan, Plan};
use crate::world::Address;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A whole plan, as `plan` and `apply` show it first.
    Planned {
        plan: Box<Plan>,
    },
    /// `plan --out`: where, and the command that applies exactly it.
    PlanSaved {
        path: PathBuf,
        apply_with: NextStep,
    },
    RunStarted {
        run_id: String,
        journal: PathBuf,
    },
    /// The run's files changed since it started (relative paths).
    SourcesChanged {
        files: Vec<String>,
    },
    /// A phase re-planned with the real values of the phases before it,
    /// shown before its gate; approvals are for exactly this plan.
    PhasePlanned {
        number: usize,
        total: usize,
        phase: Box<PhasePlan>,
        plan_hash: String,
    },
    /// The gate's plan is not the one approved (files edited, the world
    /// changed): the approvals given so far are set aside.
    PlanChangedAtGate {
        phase: String,
        set_aside: Vec<String>,
    },
    /// A gate decision as it is made.
    GateDecided {
        phase: String,
        decision: Decision,
        by: String,
        reason: Option<String>,
    },
    /// What the executor does, step by step.
    Step(execute::Event),
    /// A call that was in flight when the run stopped: looked up by tag on
    /// resume, not repeated blindly.
    InFlightAtStop {
        address: Address,
        action: Action,
    },
    /// A deletion found at cleanup that the approved plan did not contain:
    /// left alone.
    CleanupNotApproved {
        address: Address,
        id: String,
    },
    /// The root stacks' outputs, after an apply (or for `drctl output`).
    Outputs {
        outputs: Vec<crate::plan::OutputValue>,
    },
    /// A rejected run: what the phases before the gate left built.
    LeftBuilt {
        environment: String,
        resources: Vec<Address>,
        destroy_with: NextStep,
    },
    /// What `destroy` is about to delete.
    DestroyPlanned {
        environment: String,
        region: String,
        resources: Vec<(Address, String)>,
    },
    /// A drill moves to its next stage (building, checking, tearing down,
    /// the leak check); one sentence.
    DrillStage {
        message: String,
    },
    /// One drill check, done.
    DrillCheck {
        result: crate::outcome::CheckResult,
    },
    /// Post-cutover checks failed: what the automatic rollback did.
    RolledBack {
        services: Vec<crate::outcome::RolledBack>,
    },
    /// A run rejected between canary weights could not send the canary's
    /// traffic back: it still has its share.
    CanaryLeft {
        gate: String,
        why: String,
        /// `drctl rollback` of each service of the runbook.
        rollback_with: Vec<NextStep>,
    },
}

/// A command the user may type next. The CLI renders it as the `drctl …`
/// line to type, on the terminal and in JSON (`cli::next_step`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    /// Apply exactly the plan saved at `plan`.
    ApplySaved { plan: PathBuf },
    /// Destroy what a runbook's environment has built. `environment` names
    /// one other than the runbook's own.
    Destroy {
        root: PathBuf,
        runbook: String,
        environment: Option<String>,
    },
    /// Move a service of a runbook back to its previous colour.
    Rollback {
        root: PathBuf,
        runbook: String,
        service: String,
    },
}

/// A question for a person.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "question", rename_all = "snake_case")]
pub enum Question {
    /// Confirm by typing `expected` exactly (e.g. `yes`, or an environment's name).
    Confirm { prompt: String, expected: String },
    /// Approve the gate before `phase` as `user`; a user who may not
    /// (not an approver, or approved already) is asked only to wait.
    Gate {
        phase: String,
        approvals: usize,
        needed: u32,
        approved_by: Vec<String>,
        user: String,
        may_approve: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Yes / approve.
    Approve,
    /// No / reject.
    Reject,
    /// Leave the gate open; the run pauses.
    Defer,
    /// Nobody answered here, but the question was settled elsewhere (an
    /// approval or rejection from another machine, a deadline): it was
    /// withdrawn, and the asker looks at what changed.
    Overtaken,
}

pub trait Sink: Sync {
    fn event(&self, event: &Event);

    /// Asks a person; `None` when there is nobody to ask (no terminal).
    fn ask(&self, _question: &Question) -> Option<Answer> {
        None
    }

    /// [`Sink::ask`], withdrawn when `overtaken` says the question was
    /// settled elsewhere: the sink calls it every `every` while the person
    /// has not answered, and answers [`Answer::Overtaken`] once it is true.
    /// A sink that answers at once need not call it.
    fn ask_watching(
        &self,
        question: &Question,
        every: std::time::Duration,
        overtaken: &mut dyn FnMut() -> bool,
    ) -> Option<Answer> {
        let _ = (every, overtaken);
        self.ask(question)
    }

    /// Whether [`Sink::ask`] can reach a person, so a command that will need
    /// an answer can refuse before it touches anything.
    fn can_ask(&self) -> bool {
        false
    }

    /// Done for now: a live display (a progress line) is cleared so that
    /// what the caller prints next stands on its own.
    fn flush(&self) {}
}

/// Drops every event; asks nobody.
pub struct NullSink;

impl Sink for NullSink {
    fn event(&self, _event: &Event) {}
}

/// Keeps every event (tests, reports); asks nobody.
#[derive(Default)]
pub struct Collect(Mutex<Vec<Event>>);

impl Collect {
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Sink for Collect {
    fn event(&self, event: &Event) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.clone());
    }
}

/// Sends every event to two sinks; questions go to the first that answers.
pub struct Tee<'a>(pub &'a dyn Sink, pub &'a dyn Sink);

impl Sink for Tee<'_> {
    fn event(&self, event: &Event) {
        self.0.event(event);
        self.1.event(event);
    }

    fn ask(&self, question: &Question) -> Option<Answer> {
        self.0.ask(question).or_else(|| self.1.ask(question))
    }

    fn ask_watching(
        &self,
        question: &Question,
        every: std::time::Duration,
        overtaken: &mut dyn FnMut() -> bool,
    ) -> Option<Answer> {
        match self.0.ask_watching(question, every, overtaken) {
            Some(answer) => Some(answer),
            None => self.1.ask_watching(question, every, overtaken),
        }
    }

    fn can_ask(&self) -> bool {
        self.0.can_ask() || self.1.can_ask()
    }
}
