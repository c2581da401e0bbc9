//! Blue/green and canary services against moto: the first apply makes blue
//! and points the listener at it; a new image makes green, and the cutover
//! is one ModifyListener call (also across a kill -9 and resume); rollback
//! is one call; retirement waits for `retire_after` (clock injected) and
//! drains; a colour that never turns healthy never takes traffic.

use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use drctl::app::{self, Context, TrafficRequest, TrafficResult};
use drctl::clock::ManualClock;
use drctl::cloud::aws::AwsProvider;
use drctl::cloud::provider::Provider;
use drctl::cloud::AwsSettings;
use drctl::events::Collect;
use drctl::run::RunEnd;
use drctl::world::ObservedResource;

use crate::proxy::{Fault, FaultProxy, Faults};
use crate::support::{
    drctl_at, journals, json_reports, killed_after, moto_endpoint, outcome, printed_after,
    runs_by_start, verbatim, ConnectTo, Repo,
};

const REGION: &str = "us-east-1";

/// A network, a load balancer and listener, and a service of `image`,
/// with `strategy`; the cutover in its own gated phase.
pub(crate) fn repo(env: &str, octet: u8, image: &str, strategy: &str) -> Repo {
    let stack = format!(
        r#"[resources.vpc.main]
cidr_block = "10.{octet}.0.0/16"

[resources.subnet.a]
vpc = "${{vpc.main.id}}"
cidr_block = "10.{octet}.1.0/24"
availability_zone = "${{env.region}}a"

[resources.subnet.b]
vpc = "${{vpc.main.id}}"
cidr_block = "10.{octet}.2.0/24"
availability_zone = "${{env.region}}b"

[resources.load_balancer.lb]
subnets = ["${{subnet.a.id}}", "${{subnet.b.id}}"]

[resources.listener.http]
load_balancer = "${{load_balancer.lb.arn}}"
protocol = "HTTP"
port = 80

[resources.service.web]
image = "{image}"
count = 2
instance_type = "t3.micro"
subnets = ["${{subnet.a.id}}", "${{subnet.b.id}}"]
port = 80
health_check = {{ path = "/health", healthy_threshold = 2 }}
listener = "${{listener.http.arn}}"
strategy = {strategy}
retire_after = "1h"
health_timeout = "20s"
"#
    );
    let runbook = format!(
        r#"environment = "{env}"
region = "{REGION}"
stacks = ["app"]

[[phases]]
name = "build"
stacks = ["app"]

[[phases]]
name = "cutover"
cutover = ["app.service.web"]
gate = "manual"
"#
    );
    Repo::with(&[
        ("stacks/app.toml", &stack),
        ("stacks/net.toml", ""),
        ("runbooks/rb.toml", &runbook),
    ])
}

pub(crate) fn set_image(repo: &Repo, from: &str, to: &str) {
    repo.edit("stacks/app.toml", |text| text.replace(from, to));
}

/// Adds `[drill] checks` (a TOML array) to the runbook: they also run after
/// each cutover.
fn with_checks(repo: &Repo, checks: &str) {
    repo.edit("runbooks/rb.toml", |text| {
        format!("{text}\n[drill]\nchecks = {checks}\n")
    });
}

/// One service test's world: its repository, state directory, and a
/// counting proxy in front of moto.
struct Svc {
    repo: Repo,
    state: tempfile::TempDir,
    proxy: FaultProxy,
}

impl Svc {
    fn new(repo: Repo) -> Svc {
        Svc {
            repo,
            state: tempfile::tempdir().unwrap(),
            proxy: FaultProxy::moto(Faults::none()),
        }
    }

    fn drctl(&self) -> std::process::Command {
        drctl_at(self.repo.root(), self.state.path(), self.proxy.url())
    }

    fn run(&self, args: &[&str]) -> (Option<i32>, String) {
        outcome(self.drctl().args(args))
    }

    fn modify_listener(&self) -> u32 {
        self.proxy.counts("elbv2:ModifyListener").calls()
    }
}

pub(crate) async fn provider() -> AwsProvider {
    AwsProvider::new(&AwsSettings::sandbox(moto_endpoint(), REGION).load().await)
}

/// The service object and its colours' (name, traffic, instance count).
pub(crate) async fn service(env: &str) -> Option<ObservedResource> {
    provider()
        .await
        .discover(env)
        .await
        .unwrap()
        .into_iter()
        .find(|o| o.address.to_string() == "app.service.web")
}

pub(crate) async fn colours(env: &str) -> Vec<(String, i64, usize)> {
    let Some(s) = service(env).await else {
        return Vec::new();
    };
    let table = s.attrs["colors"].as_table().unwrap().clone();
    table
        .into_iter()
        .map(|(name, c)| {
            let t = c.as_table().unwrap();
            (
                name,
                t["traffic"].as_int().unwrap(),
                t["instances"].as_list().unwrap().len(),
            )
        })
        .collect()
}

/// The percent of the traffic colour `name` takes.
pub(crate) async fn share(env: &str, name: &str) -> i64 {
    let colours = colours(env).await;
    colours.iter().find(|c| c.0 == name).map_or(0, |c| c.1)
}

pub(crate) async fn live(env: &str) -> String {
    match service(env).await {
        Some(s) => s.exports["live_color"].as_str().unwrap().to_string(),
        None => String::new(),
    }
}

async fn retire_at(repo: &Repo, state: &Path, proxy: &FaultProxy, at: i64) -> TrafficResult {
    let clock = ManualClock::at(at);
    let sink = Collect::default();
    let ctx = Context {
        store: drctl::store::local(state),
        clock: &clock,
        sink: &sink,
    };
    let request = TrafficRequest {
        root: Some(repo.root().to_path_buf()),
        runbook: "rb".into(),
        service: None,
        parallelism: 4,
    };
    app::retire(
        &ctx,
        &ConnectTo(proxy.url().to_string()),
        &request,
        &CancellationToken::new(),
    )
    .await
    .expect("retire")
}

#[tokio::test]
async fn blue_green_cutover_resume_rollback_retirement_and_an_unhealthy_colour() {
    let env = "svc-bg";
    let s = Svc::new(repo(env, 71, "ami-1e749f67", "\"blue_green\""));
    let (repo, state, proxy) = (&s.repo, &s.state, &s.proxy);
    let run = |args: &[&str]| s.run(args);
    let modify_listener = || s.modify_listener();

    // The first apply makes blue and points the listener at it.
    let (code, text) = run(&["apply", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("create blue colour of app.service.web (2 × t3.micro, ami-1e749f67)"),
        "{text}"
    );
    assert!(
        text.contains("cutover listener http: 503 (no colour) → blue (after gate \"cutover\")"),
        "{text}"
    );
    assert_eq!(live(env).await, "blue");
    assert_eq!(modify_listener(), 1);
    // Converged: the listener the service owns is not drift.
    let (code, text) = run(&["plan", "rb", "--detailed-exitcode"]);
    assert_eq!(code, Some(0), "{text}");

    // A new image: green, killed after it is built and before the cutover.
    set_image(repo, "ami-1e749f67", "ami-2e749f68");
    proxy.reset_counts();
    let text = killed_after(
        s.drctl().args(["apply", "rb", "--auto-approve"]),
        "phase_finished",
    );
    assert!(
        text.contains("create green colour of app.service.web"),
        "{text}"
    );
    assert_eq!(live(env).await, "blue", "no cutover before the kill");
    // Green is in use (so AWS health-checks it) at weight 0: no traffic.
    assert_eq!(
        modify_listener(),
        1,
        "green joined the listener at weight 0"
    );
    assert_eq!(share(env, "green").await, 0);
    proxy.reset_counts();
    // Resumed: the green made before the kill is cut over; no third colour.
    // The newest run is the one killed.
    let killed = runs_by_start(state.path()).pop().expect("a run");
    let (code, text) = run(&["resume", &killed]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(live(env).await, "green");
    assert_eq!(
        modify_listener(),
        1,
        "exactly one ModifyListener for the cutover"
    );
    let now = colours(env).await;
    assert_eq!(now.len(), 2, "{now:?}");

    // Rollback is one call each way while the other colour exists.
    proxy.reset_counts();
    let (code, text) = run(&["rollback", "rb", "web"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(
        (live(env).await, modify_listener()),
        ("blue".to_string(), 1)
    );
    let (code, text) = run(&["rollback", "rb", "app.service.web"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(
        (live(env).await, modify_listener()),
        ("green".to_string(), 2)
    );

    // Retirement: not before retire_after (1h) has passed since the cutover.
    let wall = jiff::Timestamp::now().as_millisecond();
    match retire_at(repo, state.path(), proxy, wall).await {
        TrafficResult::Nothing(why) => {
            assert!(why.contains("blue kept for rollback: retire due"), "{why}")
        }
        TrafficResult::Run(r) => panic!("retired early: {:?}", r.end),
    }
    proxy.reset_counts();
    let later = wall + Duration::from_secs(61 * 60).as_millis() as i64;
    match retire_at(repo, state.path(), proxy, later).await {
        TrafficResult::Run(r) => assert!(matches!(r.end, RunEnd::Succeeded(_)), "{:?}", r.end),
        TrafficResult::Nothing(why) => panic!("nothing retired: {why}"),
    }
    assert_eq!(colours(env).await, [("green".to_string(), 100, 2)]);
    // Drained: deregistered, the group's delay read, waited until none drains.
    assert_eq!(proxy.counts("elbv2:DeregisterTargets").calls(), 1);
    assert_eq!(
        proxy.counts("elbv2:DescribeTargetGroupAttributes").calls(),
        1
    );
    assert_eq!(modify_listener(), 1, "blue left the listener's action");
    assert_eq!(
        share(env, "green").await,
        100,
        "retiring never moves traffic"
    );
    let (code, text) = run(&["rollback", "rb", "web"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("nothing to roll back to"), "{text}");

    // A colour that never turns healthy is torn down; traffic stays.
    set_image(repo, "ami-2e749f68", "ami-3e749f69");
    proxy.set_faults(Faults::none().chance(
        &["DescribeTargetHealth"],
        1.0,
        Fault::Error("InvalidTarget".into()),
    ));
    proxy.reset_counts();
    let (code, text) = run(&["apply", "rb", "--auto-approve"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("torn down") && text.contains("traffic was not moved"),
        "{text}"
    );
    assert_eq!(modify_listener(), 2, "in use at weight 0, then out again");
    assert_eq!(colours(env).await, [("green".to_string(), 100, 2)]);
    proxy.set_faults(Faults::none());

    let (code, text) = run(&["destroy", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(service(env).await.is_none());
}

#[tokio::test]
async fn a_canary_steps_through_its_weights_and_failed_checks_roll_it_back() {
    let env = "svc-canary";
    let s = Svc::new(repo(env, 72, "ami-1e749f67", "{ canary = [10, 50, 100] }"));
    let (repo, state, proxy) = (&s.repo, &s.state, &s.proxy);
    // The runbook's checks run after each cutover; this one fails once the
    // file `checks-fail` exists in the project.
    with_checks(
        repo,
        "[{ command = [\"test\", \"!\", \"-e\", \"checks-fail\"] }]",
    );
    let run = |args: &[&str]| s.run(args);
    let modify_listener = || s.modify_listener();
    let (code, text) = run(&["apply", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("check command test ! -e checks-fail: ✓ passed"),
        "{text}"
    );
    set_image(repo, "ami-1e749f67", "ami-2e749f68");
    proxy.reset_counts();
    let (code, text) = run(&["apply", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("blue → green in steps 10% → 50% → 100%"),
        "{text}"
    );
    assert_eq!(
        modify_listener(),
        1 + 3,
        "green joins at 0, then 10/90, 50/50, 100/0"
    );
    assert_eq!(live(env).await, "green");

    // A third image replaces the idle blue; its checks fail after the
    // canary reaches 100%: traffic goes back to green in one call, and the
    // run says so and fails.
    repo.write("checks-fail", "");
    set_image(repo, "ami-2e749f68", "ami-3e749f69");
    proxy.reset_counts();
    let (code, text) = run(&["apply", "rb", "--auto-approve"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("rolled back: traffic moved from blue to green in one call"),
        "{text}"
    );
    assert!(
        text.contains("check(s) failed after the cutover")
            && text.contains("app.service.web is back on green"),
        "{text}"
    );
    assert_eq!(
        modify_listener(),
        1 + 1 + 3 + 1,
        "the idle blue leaves the action, the new one joins at 0, the canary's three steps, one rollback"
    );
    assert_eq!(live(env).await, "green");
    // Journaled twice over: the apply records what it rolled back, and the
    // rollback is a run of its own, approved by the failed checks.
    let journals: Vec<String> = journals(state.path())
        .into_iter()
        .map(|(_, journal)| journal)
        .collect();
    assert!(
        journals
            .iter()
            .any(|j| j.contains("\"event\":\"rolled_back\"")),
        "{journals:#?}"
    );
    assert!(
        journals
            .iter()
            .any(|j| j.contains("automatic: post-cutover checks failed")),
        "{journals:#?}"
    );
    // The apply (the run before its rollback's) ended failed, as it exited.
    let runs = runs_by_start(state.path());
    let (_, shown) = run(&["runs", "show", &runs[runs.len() - 2]]);
    assert!(shown.contains("status: failed"), "{shown}");

    let (code, text) = run(&["destroy", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
}

#[tokio::test]
async fn the_readmes_web_drill_bakes_cuts_over_checks_and_tears_down() {
    let repo = crate::bake::example_repo();
    let (code, text, report) = web_drill(&repo);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("create blue colour of web.service.web (2 × t3.micro"),
        "{text}"
    );
    assert!(
        text.contains("cutover listener http: 503 (no colour) → blue (after gate \"cutover\")"),
        "{text}"
    );
    assert_eq!(report["verdict"], "passed", "{report:#}");
    // Baked, or reused if another test's bake of the same recipe is in the region.
    let how = report["images"][0]["how"].as_str().unwrap_or_default();
    assert!(how == "baked" || how == "reused", "{report:#}");
    let checks = report["checks"].as_array().unwrap();
    let status = |kind: &str| {
        checks
            .iter()
            .find(|c| c["kind"] == kind)
            .map(|c| c["status"].as_str().unwrap().to_string())
    };
    assert_eq!(
        status("target_health").as_deref(),
        Some("passed"),
        "{report:#}"
    );
    assert_eq!(
        status("listener_forwards_to").as_deref(),
        Some("passed"),
        "{report:#}"
    );
    assert_eq!(status("http").as_deref(), Some("skipped"), "{report:#}");
    // The colour made and the cutover to it; checks passed, so no rollback.
    let service = &report["services"][0];
    assert_eq!(service["address"], "web.service.web", "{report:#}");
    assert_eq!(service["live"], "blue", "{report:#}");
    assert_eq!(service["colours"][0]["name"], "blue", "{report:#}");
    assert_eq!(service["colours"][0]["instances"], 2, "{report:#}");
    assert_eq!(service["cutover"]["phase"], "cutover", "{report:#}");
    assert_eq!(service["cutover"]["ok"], true, "{report:#}");
    assert!(service["rollback"].is_null(), "{report:#}");
    assert!(
        report["leak_check"]["leaks"]
            .as_array()
            .is_some_and(|l| l.is_empty()),
        "{report:#}"
    );
    a_drill_whose_checks_fail_after_its_cutover_says_what_it_rolled_back(&repo);
}

/// The same drill with a check that fails: its report says what the
/// automatic rollback did. Run after the README drill, not beside it: a
/// drill running at the same time would reuse (and so pin) an image baked
/// here, and this drill's teardown could not deregister it.
fn a_drill_whose_checks_fail_after_its_cutover_says_what_it_rolled_back(repo: &tempfile::TempDir) {
    let runbook = repo.path().join("runbooks/web-dr-drill.toml");
    let text = std::fs::read_to_string(&runbook).unwrap();
    let failing = text.replace("checks = [\n", "checks = [\n  { command = [\"false\"] },\n");
    assert_ne!(failing, text);
    std::fs::write(&runbook, failing).unwrap();
    let (code, text, report) = web_drill(repo);
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(report["verdict"], "failed", "{report:#}");
    // A fresh drill's first colour has nothing before it: said, not hidden,
    // and not a failure of its own (the failed check is the failure).
    let rollback = &report["services"][0]["rollback"];
    assert_eq!(rollback["from"], "blue", "{report:#}");
    assert!(
        rollback["note"]
            .as_str()
            .is_some_and(|n| n.contains("nothing to roll back to")),
        "{report:#}"
    );
    assert!(rollback["run_id"].is_null(), "{report:#}");
    let failures = report["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{report:#}");
    assert!(
        text.contains("Automatic rollback after failed checks"),
        "{text}"
    );
    assert_eq!(report["teardown"]["performed"], true, "{report:#}");
}

/// `drctl drill web-dr-drill` in `repo` with a state directory of its own:
/// (exit code, output, the JSON report).
fn web_drill(repo: &tempfile::TempDir) -> (Option<i32>, String, serde_json::Value) {
    let state = tempfile::tempdir().unwrap();
    let (code, text) = outcome(
        drctl_at(repo.path(), state.path(), moto_endpoint()).args(["drill", "web-dr-drill"]),
    );
    let report = json_reports(state.path(), "web-dr-drill")
        .pop()
        .map(|(_, report)| report)
        .unwrap_or_else(|| panic!("no report: {text}"));
    (code, text, report)
}

mod gated;
