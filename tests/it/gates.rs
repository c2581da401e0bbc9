//! Gates, the journal, resume after a crash, and the environment lock —
//! through the binary, without a terminal, against moto.

use std::collections::BTreeMap;
use std::path::PathBuf;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use drctl::app::{self, ApplyRequest, ApplyResult, Context};
use drctl::clock::ManualClock;
use drctl::cloud::aws::AwsProvider;
use drctl::cloud::provider::Provider;
use drctl::cloud::AwsSettings;
use drctl::events::Collect;
use drctl::run::RunEnd;

use crate::support::{drctl_at, moto_endpoint, outcome, ConnectTo, Repo};

const REGION: &str = "us-west-2";

/// The example network + fleet stacks with a two-phase runbook whose second
/// phase has `gate`.
struct Setup {
    repo: Repo,
    state: tempfile::TempDir,
    env: String,
}

impl Setup {
    fn new(env: &str, octet: u8, gate: &str) -> Setup {
        let vars = format!(
            "cidr = \"10.{octet}.0.0/16\"\nsubnet_a_cidr = \"10.{octet}.1.0/24\"\nsubnet_b_cidr = \"10.{octet}.2.0/24\""
        );
        let repo = Repo::fleet_rehearsal(env, REGION, &vars, gate);
        Setup {
            repo,
            state: tempfile::tempdir().unwrap(),
            env: env.to_string(),
        }
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = drctl_at(self.repo.root(), self.state.path(), moto_endpoint());
        cmd.arg("-q").args(args);
        cmd
    }

    fn run(&self, args: &[&str]) -> (Option<i32>, String) {
        outcome(&mut self.command(args))
    }

    /// The only run's id.
    fn run_id(&self) -> String {
        let runs: Vec<PathBuf> = std::fs::read_dir(self.state.path().join("runs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(runs.len(), 1, "{runs:?}");
        runs[0].file_name().unwrap().to_str().unwrap().to_string()
    }

    fn events(&self, id: &str) -> usize {
        std::fs::read_to_string(self.state.path().join("runs").join(id).join("events.jsonl"))
            .unwrap()
            .lines()
            .count()
    }

    /// The application layer on this setup's state, with `clock`.
    fn context<'a>(&self, clock: &'a ManualClock, sink: &'a Collect) -> Context<'a> {
        Context {
            store: drctl::store::local(self.state.path()),
            clock,
            sink,
        }
    }

    /// Applies the runbook through the application layer, which pauses at
    /// its manual gate: the run's id.
    async fn apply_paused(&self, ctx: &Context<'_>) -> String {
        let request = ApplyRequest {
            root: Some(self.repo.root().to_path_buf()),
            target: "rb".into(),
            auto_approve: None,
            parallelism: 4,
        };
        let ApplyResult::Run(app::RunResult { run_id, end, .. }) =
            app::apply(ctx, &ConnectTo::moto(), &request, &CancellationToken::new())
                .await
                .expect("apply")
        else {
            panic!("expected a run");
        };
        assert!(matches!(end, RunEnd::Paused { .. }), "{end:?}");
        run_id
    }

    async fn provider(&self) -> AwsProvider {
        AwsProvider::new(&AwsSettings::sandbox(moto_endpoint(), REGION).load().await)
    }

    /// Each address found by tag, with how many resources claim it.
    async fn addresses(&self) -> BTreeMap<String, usize> {
        let mut found = BTreeMap::new();
        for o in self.provider().await.discover(&self.env).await.unwrap() {
            *found.entry(o.address.to_string()).or_insert(0) += 1;
        }
        found
    }

    fn destroy(&self) {
        let (code, text) = self.run(&["destroy", "rb", "--auto-approve"]);
        assert_eq!(code, Some(0), "{text}");
    }
}

const DESIRED: [&str; 11] = [
    "fleet.instances.app",
    "fleet.listener.http",
    "fleet.load_balancer.public",
    "fleet.target_group.app",
    "network.internet_gateway.main",
    "network.route_table.public",
    "network.security_group.lb",
    "network.security_group.web",
    "network.subnet.a",
    "network.subnet.b",
    "network.vpc.main",
];

fn exactly_desired() -> BTreeMap<String, usize> {
    DESIRED.iter().map(|a| (a.to_string(), 1)).collect()
}

#[tokio::test]
async fn pause_at_a_gate_approve_resume_and_read_the_timeline() {
    let s = Setup::new("gate-pause", 81, "\"manual\"");
    let (code, text) = s.run(&["apply", "rb"]);
    assert_eq!(code, Some(3), "{text}");
    let id = s.run_id();
    assert!(
        text.contains(&format!("drctl approve {id} --gate compute")),
        "{text}"
    );
    // The phase before the gate ran; the one after did not.
    let found = s.addresses().await;
    assert!(
        found.contains_key("network.vpc.main") && !found.contains_key("fleet.instances.app"),
        "{found:?}"
    );
    // The plan shown at the gate has real ids, not `(known after …)` guesses.
    let at_gate = &text[text.find("Phase 2/2 compute").expect("phase 2 shown")..];
    assert!(at_gate.contains("vpc          = \"vpc-"), "{at_gate}");

    let (code, text) = s.run(&["runs"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("paused at a gate before `compute` (0/1)"),
        "{text}"
    );

    let (code, text) = s.run(&[
        "approve",
        &id,
        "--as",
        "alice",
        "--reason",
        "checked the plan",
    ]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = s.run(&["resume", &id]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(s.addresses().await, exactly_desired());

    let (code, text) = s.run(&["runs", "show", &id]);
    assert_eq!(code, Some(0), "{text}");
    for expected in [
        "gate before foundation: passed (auto gate)",
        "paused at the gate before compute",
        "gate before compute: approved by alice: \"checked the plan\" after waiting",
        "phase compute finished in",
        "status: succeeded",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    let (code, text) = s.run(&["resume", &id]);
    assert_eq!(code, Some(2), "a finished run does not resume: {text}");
    s.destroy();
}

#[tokio::test]
async fn two_distinct_approvers_from_the_allowlist() {
    let s = Setup::new(
        "gate-two",
        82,
        "{ manual = { approvals = 2, approvers = [\"alice\", \"bob\"] } }",
    );
    let (code, text) = s.run(&["apply", "rb"]);
    assert_eq!(code, Some(3), "{text}");
    let id = s.run_id();

    let (code, text) = s.run(&["approve", &id, "--as", "mallory"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("`mallory` may not approve") && text.contains("alice, bob"),
        "{text}"
    );
    let (code, text) = s.run(&["approve", &id, "--as", "alice", "--gate", "foundation"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("waits at the gate before phase `compute`"),
        "{text}"
    );
    let (code, text) = s.run(&["approve", &id, "--as", "alice"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("1 of 2"), "{text}");
    let (code, text) = s.run(&["approve", &id, "--as", "alice"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("already approved"), "{text}");

    let (code, text) = s.run(&["resume", &id]);
    assert_eq!(code, Some(3), "one approval of two still pauses: {text}");
    let (code, text) = s.run(&["approve", &id, "--as", "bob"]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = s.run(&["resume", &id]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(s.addresses().await, exactly_desired());
    s.destroy();
}

#[tokio::test]
async fn a_gate_that_times_out_rejects_the_run() {
    let s = Setup::new(
        "gate-timeout",
        83,
        "{ manual = { timeout = \"1h\", on_timeout = \"reject\" } }",
    );
    // Through the application layer with a clock the test moves: no sleep.
    let clock = ManualClock::at(1_800_000_000_000);
    let sink = Collect::default();
    let ctx = s.context(&clock, &sink);
    let connect = ConnectTo::moto();
    let cancel = CancellationToken::new();
    let id = s.apply_paused(&ctx).await;
    // Not yet: 59 minutes later the gate still waits.
    clock.advance(Duration::from_secs(59 * 60));
    let end = app::resume(&ctx, &connect, &id, 4, &cancel)
        .await
        .unwrap()
        .end;
    assert!(matches!(end, RunEnd::Paused { .. }), "{end:?}");
    clock.advance(Duration::from_secs(61));
    let end = app::resume(&ctx, &connect, &id, 4, &cancel)
        .await
        .unwrap()
        .end;
    assert!(
        matches!(&end, RunEnd::Rejected { phase, by } if phase == "compute" && by == "timeout"),
        "{end:?}"
    );
    assert!(!s.addresses().await.contains_key("fleet.instances.app"));
    let (_, text) = s.run(&["runs", "show", &id]);
    assert!(
        text.contains("gate before compute: rejected by its timeout (no approval within 3600s) after waiting 3601.0s")
            && text.contains("status: rejected"),
        "{text}"
    );
    let (code, text) = s.run(&["approve", &id, "--as", "alice"]);
    assert_eq!(code, Some(2), "{text}");
    s.destroy();
}

/// A person who confirms the plan, then sits at the gate's prompt and never
/// answers, while the clock runs on ten minutes at each look the prompt takes.
struct SilentPerson<'a> {
    clock: &'a ManualClock,
    events: Collect,
}

impl drctl::events::Sink for SilentPerson<'_> {
    fn event(&self, event: &drctl::events::Event) {
        self.events.event(event);
    }

    fn can_ask(&self) -> bool {
        true
    }

    /// The plan's confirmation: yes.
    fn ask(&self, _question: &drctl::events::Question) -> Option<drctl::events::Answer> {
        Some(drctl::events::Answer::Approve)
    }

    fn ask_watching(
        &self,
        _question: &drctl::events::Question,
        _every: Duration,
        overtaken: &mut dyn FnMut() -> bool,
    ) -> Option<drctl::events::Answer> {
        for _ in 0..100 {
            if overtaken() {
                return Some(drctl::events::Answer::Overtaken);
            }
            self.clock.advance(Duration::from_secs(600));
        }
        Some(drctl::events::Answer::Defer)
    }
}

#[tokio::test]
async fn a_prompt_nobody_answers_rejects_at_the_gates_deadline() {
    let s = Setup::new(
        "gate-prompt-timeout",
        86,
        "{ manual = { timeout = \"1h\", on_timeout = \"reject\" } }",
    );
    let clock = ManualClock::at(1_800_000_000_000);
    let person = SilentPerson {
        clock: &clock,
        events: Collect::default(),
    };
    let ctx = Context {
        store: drctl::store::local(s.state.path()),
        clock: &clock,
        sink: &person,
    };
    let request = ApplyRequest {
        root: Some(s.repo.root().to_path_buf()),
        target: "rb".into(),
        auto_approve: None,
        parallelism: 4,
    };
    let ApplyResult::Run(app::RunResult { end, .. }) = app::apply(
        &ctx,
        &ConnectTo::moto(),
        &request,
        &CancellationToken::new(),
    )
    .await
    .expect("apply") else {
        panic!("expected a run");
    };
    assert!(
        matches!(&end, RunEnd::Rejected { phase, by } if phase == "compute" && by == "timeout"),
        "the prompt ended at the deadline: {end:?}"
    );
    assert!(!s.addresses().await.contains_key("fleet.instances.app"));
    s.destroy();
}

#[tokio::test]
async fn an_approval_given_before_the_deadline_counts_however_late_the_resume() {
    let s = Setup::new(
        "gate-approved-in-time",
        87,
        "{ manual = { timeout = \"1h\", on_timeout = \"reject\" } }",
    );
    let clock = ManualClock::at(1_800_000_000_000);
    let sink = Collect::default();
    let ctx = s.context(&clock, &sink);
    let id = s.apply_paused(&ctx).await;
    clock.advance(Duration::from_secs(30 * 60));
    app::approve(
        &ctx,
        &app::ApproveRequest {
            run_id: id.clone(),
            gate: None,
            by: "alice".into(),
            reason: None,
        },
    )
    .expect("approved in time");
    // Resumed the next day: the gate was passed in time.
    clock.advance(Duration::from_secs(24 * 3600));
    let cancel = CancellationToken::new();
    let end = app::resume(&ctx, &ConnectTo::moto(), &id, 4, &cancel)
        .await
        .unwrap()
        .end;
    assert!(matches!(end, RunEnd::Succeeded(_)), "{end:?}");
    assert_eq!(s.addresses().await, exactly_desired());
    s.destroy();
}

#[tokio::test]
async fn a_paused_run_past_its_deadline_is_rejected_by_the_first_look() {
    let s = Setup::new(
        "gate-overdue",
        88,
        "{ manual = { timeout = \"1h\", on_timeout = \"reject\" } }",
    );
    // Paused a year ago by the clock the binary reads: long overdue.
    let clock =
        ManualClock::at(drctl::clock::Clock::now(&drctl::clock::SystemClock) - 365 * 86_400_000);
    let sink = Collect::default();
    let id = s.apply_paused(&s.context(&clock, &sink)).await;
    let (code, text) = s.run(&["runs"]);
    assert_eq!(code, Some(0), "{text}");
    let line = text.lines().find(|l| l.contains(&id)).expect("listed");
    assert!(line.contains("rejected"), "{text}");
    let (_, text) = s.run(&["runs", "show", &id]);
    assert!(
        text.contains("gate before compute: rejected by its timeout (no approval within 3600s)")
            && text.contains("status: rejected"),
        "{text}"
    );
    // Looked at again: ended once.
    let events = s.events(&id);
    let _ = s.run(&["runs"]);
    assert_eq!(s.events(&id), events);
    s.destroy();
}

#[tokio::test]
async fn a_rejected_run_applies_nothing_more() {
    let s = Setup::new("gate-reject", 84, "\"manual\"");
    let (code, _) = s.run(&["apply", "rb"]);
    assert_eq!(code, Some(3));
    let id = s.run_id();
    let (code, text) = s.run(&["reject", &id, "--as", "carol", "--reason", "wrong window"]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = s.run(&["resume", &id]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("is rejected"), "{text}");
    let (_, text) = s.run(&["runs", "show", &id]);
    assert!(
        text.contains("rejected by carol: \"wrong window\""),
        "{text}"
    );
    assert!(!s.addresses().await.contains_key("fleet.instances.app"));
    s.destroy();
}

#[tokio::test]
async fn a_run_killed_at_any_point_is_finished_by_resume_without_duplicates() {
    // A reference run tells how many events a whole apply writes.
    let reference = Setup::new("crash-reference", 85, "\"manual\"");
    let (code, text) = reference.run(&["apply", "rb", "--auto-approve", "--reason", "crash test"]);
    assert_eq!(code, Some(0), "{text}");
    let total = reference.events(&reference.run_id());
    reference.destroy();

    for (i, kill_after) in [1, 5, total - 1, total].into_iter().enumerate() {
        let s = Setup::new(&format!("crash-{kill_after}"), 86 + i as u8, "\"manual\"");
        crate::support::killed_after(
            &mut s.command(&["apply", "rb", "--auto-approve"]),
            &kill_after.to_string(),
        );
        let id = s.run_id();
        // Event `kill_after` is durable, with the rest of its append.
        assert!(s.events(&id) >= kill_after);
        // The lock of the dead process is stale: resume takes it over. After
        // the last event the run had finished: there is nothing to resume.
        let (code, text) = s.run(&["resume", &id]);
        let expected = if kill_after == total { 2 } else { 0 };
        assert_eq!(
            code,
            Some(expected),
            "resume after event {kill_after}: {text}"
        );
        assert_eq!(
            s.addresses().await,
            exactly_desired(),
            "after a kill after event {kill_after}"
        );
        let (code, text) = s.run(&["plan", "rb", "--detailed-exitcode"]);
        assert_eq!(code, Some(0), "{text}");
        s.destroy();
    }
}

#[tokio::test]
async fn ctrl_c_lets_calls_in_flight_finish_and_resume_completes_the_run() {
    let s = Setup::new("interrupt", 91, "\"auto\"");
    // SIGINT right after the first resource's intent is journaled.
    let out = s
        .command(&["apply", "rb", "--auto-approve"])
        .env("DRCTL_INTERRUPT_AFTER_EVENT", "intent")
        .output()
        .expect("run drctl");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("Stopping: nothing new starts"), "{text}");
    let id = s.run_id();
    assert!(text.contains(&format!("drctl resume {id}")), "{text}");
    // The call in flight (the VPC) finished; nothing after it started.
    let found = s.addresses().await;
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        ["network.vpc.main"],
        "{text}"
    );
    let (_, timeline) = s.run(&["runs", "show", &id]);
    assert!(
        timeline.contains("interrupted") && timeline.contains("network.vpc.main done"),
        "{timeline}"
    );

    // The printed hint, run as printed from another directory.
    let printed = text
        .split("Continue with: ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .unwrap_or_else(|| panic!("no `Continue with:` in {text}"));
    assert_eq!(printed, format!("drctl resume {id}"));
    let elsewhere = tempfile::tempdir().unwrap();
    let (code, text) = crate::support::verbatim(elsewhere.path(), printed);
    assert_eq!(code, Some(0), "{text}");
    // The summary counts the whole run, the VPC made before the interrupt too.
    assert!(text.contains("11 added"), "{text}");
    assert_eq!(s.addresses().await, exactly_desired());
    s.destroy();
}

#[tokio::test]
async fn a_second_ctrl_c_aborts_marking_this_process_run_and_resume_finishes_it() {
    let s = Setup::new("interrupt-twice", 92, "\"auto\"");
    let out = s
        .command(&["apply", "rb", "--auto-approve"])
        // The first Ctrl-C after the first intent, the second after the
        // first outcome (while nothing new starts).
        .env("DRCTL_INTERRUPT_AFTER_EVENT", "intent,outcome")
        .output()
        .expect("run drctl");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let id = s.run_id();
    assert!(
        text.contains(&format!("Aborted. Resume with: drctl resume {id}")),
        "{text}"
    );
    let (_, timeline) = s.run(&["runs", "show", &id]);
    assert!(timeline.contains("interrupted"), "{timeline}");
    let (code, text) = s.run(&["resume", &id]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(s.addresses().await, exactly_desired());
    s.destroy();
}
