//! Phases pipeline when nobody waits at a gate: a step starts once the
//! steps it reads are done, whatever phase they are in. A phase with
//! `barrier = true`, or behind a gate that waits on a person, keeps its
//! order. Read from the journal's order of events, never from timing: a
//! step with nothing to wait for is announced in the run's first batch,
//! before any step (and so any phase) can have finished.

use serde_json::Value;

use crate::support::{drctl_at, moto_endpoint, outcome, Repo};

const REGION: &str = "ap-south-1";

/// Two stacks that share nothing: `base` (a VPC, then a security group in
/// it) in phase `first`, `side` (a VPC) in phase `second`, behind `gate`.
struct Setup {
    repo: Repo,
    state: tempfile::TempDir,
}

impl Setup {
    fn new(env: &str, octet: u8, second: &str) -> Setup {
        let repo = Repo::with(&[]);
        repo.write(
            "stacks/base.toml",
            &format!(
                "[resources.vpc.main]\ncidr_block = \"10.{octet}.0.0/16\"\n\n\
                 [resources.security_group.web]\nvpc = \"${{vpc.main.id}}\"\n\
                 description = \"web\"\n"
            ),
        );
        repo.write(
            "stacks/side.toml",
            &format!(
                "[resources.vpc.main]\ncidr_block = \"10.{}.0.0/16\"\n",
                octet + 1
            ),
        );
        repo.write(
            "runbooks/rb.toml",
            &format!(
                "environment = \"{env}\"\nregion = \"{REGION}\"\nstacks = [\"base\", \"side\"]\n\n\
                 [[phases]]\nname = \"first\"\nstacks = [\"base\"]\n\n\
                 [[phases]]\nname = \"second\"\nstacks = [\"side\"]\n{second}\n"
            ),
        );
        Setup {
            repo,
            state: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, args: &[&str]) -> (Option<i32>, String) {
        let mut cmd = drctl_at(self.repo.root(), self.state.path(), moto_endpoint());
        outcome(cmd.arg("-q").args(args))
    }

    fn run_id(&self) -> String {
        let runs: Vec<_> = std::fs::read_dir(self.state.path().join("runs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(runs.len(), 1, "{runs:?}");
        runs[0].clone()
    }

    /// The run's journal, one JSON value per event.
    fn journal(&self) -> Vec<Value> {
        let path = self
            .state
            .path()
            .join("runs")
            .join(self.run_id())
            .join("events.jsonl");
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn destroy(&self) {
        let (code, text) = self.run(&["destroy", "rb", "--auto-approve"]);
        assert_eq!(code, Some(0), "{text}");
    }
}

/// Where in `journal` phase `first` finished, and where the first step of
/// phase `second` was begun (its intent names the phase).
fn first_finished_and_second_begun(journal: &[Value]) -> (usize, usize) {
    let at = |pred: &dyn Fn(&Value) -> bool| {
        journal
            .iter()
            .position(pred)
            .unwrap_or_else(|| panic!("{journal:#?}"))
    };
    let finished = at(&|e| e["event"] == "phase_finished" && e["phase"] == "first");
    let begun = at(&|e| e["event"] == "intent" && e["phase"] == "second");
    assert_eq!(journal[begun]["address"]["stack"], "side", "{journal:#?}");
    (finished, begun)
}

#[test]
fn phases_pipeline_when_every_gate_passes_by_itself() {
    let s = Setup::new("pipe-auto", 160, "gate = \"manual\"");
    let (code, text) = s.run(&["apply", "rb", "--auto-approve", "--reason", "pipelining"]);
    assert_eq!(code, Some(0), "{text}");
    let journal = s.journal();
    let (finished, begun) = first_finished_and_second_begun(&journal);
    assert!(
        begun < finished,
        "side's VPC reads nothing of phase first: it starts with the run, not after the phase\n{journal:#?}"
    );
    // Each phase is journaled as started and finished once, whole.
    for phase in ["first", "second"] {
        for event in ["phase_started", "phase_finished"] {
            let n = journal
                .iter()
                .filter(|e| e["event"] == event && e["phase"] == phase)
                .count();
            assert_eq!(n, 1, "{event} {phase}: {journal:#?}");
        }
    }
    let (code, text) = s.run(&["plan", "rb", "--detailed-exitcode"]);
    assert_eq!(code, Some(0), "{text}");
    s.destroy();
}

#[test]
fn a_phase_with_a_barrier_keeps_its_order() {
    let s = Setup::new("pipe-barrier", 162, "gate = \"manual\"\nbarrier = true");
    let (code, text) = s.run(&["apply", "rb", "--auto-approve", "--reason", "barrier"]);
    assert_eq!(code, Some(0), "{text}");
    let journal = s.journal();
    let (finished, begun) = first_finished_and_second_begun(&journal);
    assert!(begun > finished, "{journal:#?}");
    s.destroy();
}

#[test]
fn a_gate_that_waits_on_a_person_keeps_its_phase_order() {
    let s = Setup::new("pipe-person", 164, "gate = \"manual\"");
    let (code, text) = s.run(&["apply", "rb"]);
    assert_eq!(code, Some(3), "paused at the gate: {text}");
    let id = s.run_id();
    let paused = s.journal();
    assert!(
        !paused
            .iter()
            .any(|e| e["event"] == "intent" && e["phase"] == "second"),
        "nothing of the gated phase starts before its approval: {paused:#?}"
    );
    let (code, text) = s.run(&["approve", &id, "--as", "alice"]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = s.run(&["resume", &id]);
    assert_eq!(code, Some(0), "{text}");
    let (finished, begun) = first_finished_and_second_begun(&s.journal());
    assert!(begun > finished);
    s.destroy();
}
