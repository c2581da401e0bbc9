//! Services and drills against AWS as it behaves, not as moto does: the
//! proxy's model ([`crate::aws_model`]) keeps instances `pending`, images
//! `pending`, load balancers `provisioning`, and a target group's targets
//! `unused / Target.NotInUse` until a listener or rule forwards to it, then
//! `initial` for interval × threshold, time-scaled (`DRCTL_TEST_AWS_SCALE`,
//! default 0.01; `DRCTL_TEST_AWS_SCALE=1 cargo test --test it aws_behaviour`
//! runs them at AWS's own pace).

use std::time::{Duration, Instant};

use drctl::cloud::elbv2::{forward_weights, DefaultAction, Elbv2, ListenerRules};

use crate::aws_model::{AwsTimes, TargetOverride};
use crate::proxy::{Fault, FaultProxy, Faults};
use crate::service::{colours, live, provider, repo, service, set_image, share};
use crate::support::{drctl_at, moto_endpoint, outcome, Repo};

/// One test's world: its repository, state directory, and a proxy that
/// answers as AWS would.
struct World {
    env: &'static str,
    repo: Repo,
    state: tempfile::TempDir,
    proxy: FaultProxy,
}

impl World {
    fn new(env: &'static str, octet: u8, strategy: &str) -> World {
        World {
            env,
            repo: repo(env, octet, "ami-1e749f67", strategy),
            state: tempfile::tempdir().unwrap(),
            proxy: FaultProxy::moto_as_aws(AwsTimes::for_tests()),
        }
    }

    fn drctl(&self) -> std::process::Command {
        drctl_at(self.repo.root(), self.state.path(), self.proxy.url())
    }

    fn run(&self, args: &[&str]) -> (Option<i32>, String) {
        outcome(self.drctl().args(args))
    }

    fn calls(&self, action: &str) -> u32 {
        self.proxy.counts(action).calls()
    }

    /// The listener's forward action, (target group, share) sorted, read
    /// from moto itself.
    async fn weights(&self) -> Vec<(String, i32)> {
        let mut weights = forward_weights(
            provider()
                .await
                .elbv2()
                .listener(&self.listener().await)
                .await
                .unwrap()
                .expect("the listener")
                .default_actions(),
        );
        weights.sort();
        weights
    }

    /// The service's listener: the colours name it once in use.
    async fn listener(&self) -> String {
        let s = service(self.env).await.expect("the service");
        let table = s.attrs["colors"].as_table().unwrap().clone();
        table
            .values()
            .filter_map(|c| c.as_table()?.get("listener")?.as_str().map(str::to_string))
            .find(|l| !l.is_empty())
            .expect("a colour on the listener")
    }

    /// The test-traffic rules left on the listener.
    async fn test_rules(&self) -> usize {
        let rules = provider()
            .await
            .elbv2()
            .rules(&self.listener().await)
            .await
            .unwrap();
        rules
            .iter()
            .filter(|r| r.matches_header("X-Drctl-Colour"))
            .count()
    }

    /// The health forced on every target of this test's `colour` groups.
    fn force(&self, colour: &str, health: TargetOverride) {
        self.proxy
            .aws()
            .set_group_health(&format!("{}-web-{colour}-", self.env), health);
    }
}

#[tokio::test]
async fn blue_from_nothing_and_green_replacing_it_cut_over_on_aws_as_it_behaves() {
    let w = World::new("aws-bg", 91, "\"blue_green\"");
    // Another service on the listener took the priority first: drctl reads
    // the rules again and takes the next.
    w.proxy
        .set_faults(Faults::none().nth("CreateRule", 1, Fault::Error("PriorityInUse".into())));
    let (code, text) = w.run(&["apply", "rb", "--auto-approve"]);
    w.proxy.set_faults(Faults::none());
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(
            "test traffic reaches blue on listener http with header X-Drctl-Colour: blue"
        ),
        "{text}"
    );
    // The load balancer was waited for while AWS provisioned it.
    assert!(
        text.contains("load balancer app.load_balancer.lb to become active (provisioning"),
        "{text}"
    );
    assert_eq!(live(w.env).await, "blue");
    // Blue was reached by a test rule until it took the default action.
    assert_eq!((w.calls("CreateRule"), w.calls("DeleteRule")), (2, 1));
    assert_eq!(w.test_rules().await, 0);
    assert_eq!(w.calls("ModifyListener"), 1, "the cutover");
    let blue_group = w.weights().await[0].0.clone();
    assert_eq!(w.weights().await, [(blue_group.clone(), 100)]);

    // A new image: green joins at weight 0, is checked, and takes it all in
    // one call; blue stays in the action at 0 for a one-call rollback.
    set_image(&w.repo, "ami-1e749f67", "ami-2e749f68");
    w.proxy.reset_counts();
    let (code, text) = w.run(&["apply", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("green joins listener http at weight 0 beside blue"),
        "{text}"
    );
    assert_eq!(live(w.env).await, "green");
    assert_eq!(
        w.calls("ModifyListener"),
        2,
        "joined at 0, then the cutover"
    );
    assert_eq!(w.calls("CreateRule"), 0);
    let weights = w.weights().await;
    assert!(weights.contains(&(blue_group.clone(), 0)), "{weights:?}");
    assert_eq!(
        weights.iter().map(|(_, s)| s).sum::<i32>(),
        100,
        "{weights:?}"
    );

    // Rollback is one call each way while blue is in the action.
    w.proxy.reset_counts();
    let (code, text) = w.run(&["rollback", "rb", "web"]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = w.run(&["rollback", "rb", "web"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(
        (live(w.env).await, w.calls("ModifyListener")),
        ("green".into(), 2)
    );

    // A listener in the single-target form (as an older drctl, or a person,
    // left it): adopted without drift; a rollback first puts the idle blue
    // in use, waits for its checks, then moves.
    let green_group = w
        .weights()
        .await
        .into_iter()
        .find(|(_, s)| *s == 100)
        .unwrap()
        .0;
    provider()
        .await
        .elbv2()
        .set_default_action(&w.listener().await, DefaultAction::Forward(&green_group))
        .await
        .unwrap();
    let (code, text) = w.run(&["plan", "rb", "--detailed-exitcode"]);
    assert_eq!(code, Some(0), "no drift: {text}");
    w.proxy.reset_counts();
    let (code, text) = w.run(&["rollback", "rb", "web"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(live(w.env).await, "blue");
    assert_eq!(
        w.calls("ModifyListener"),
        2,
        "blue put in use at 0, then moved"
    );
    assert!(w.weights().await.contains(&(green_group, 0)));

    let (code, text) = w.run(&["destroy", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(service(w.env).await.is_none());
}

#[tokio::test]
async fn a_colour_that_never_becomes_healthy_leaves_the_traffic_exactly_as_it_was() {
    let w = World::new("aws-sick", 92, "\"blue_green\"");
    let (code, text) = w.run(&["apply", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
    let before = w.weights().await;

    // Checks that keep failing: waited on until health_timeout, then gone.
    w.repo.edit("stacks/app.toml", |t| {
        t.replace("health_timeout = \"20s\"", "health_timeout = \"3s\"")
    });
    set_image(&w.repo, "ami-1e749f67", "ami-2e749f68");
    w.force(
        "green",
        TargetOverride::Unhealthy("Target.FailedHealthChecks"),
    );
    let (code, text) = w.run(&["apply", "rb", "--auto-approve"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("Target.FailedHealthChecks") && text.contains("torn down"),
        "{text}"
    );
    assert_eq!(
        w.weights().await,
        before,
        "the traffic is exactly as it was"
    );
    assert_eq!(colours(w.env).await, [("blue".to_string(), 100, 2)]);

    // A target that can never become healthy (its instance stopped) fails
    // the colour at once, long before its health_timeout.
    w.repo.edit("stacks/app.toml", |t| {
        t.replace("health_timeout = \"3s\"", "health_timeout = \"1h\"")
    });
    w.force(
        "green",
        TargetOverride::State("unused", "Target.InvalidState"),
    );
    let (code, text) = w.run(&["apply", "rb", "--auto-approve"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("is not running (stopped or terminated)") && !text.contains("timed out"),
        "{text}"
    );
    assert_eq!(w.weights().await, before);
    assert_eq!(colours(w.env).await, [("blue".to_string(), 100, 2)]);

    let (code, text) = w.run(&["destroy", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
}

#[tokio::test]
async fn a_canary_whose_health_drops_during_its_wait_goes_back_in_one_call() {
    let w = World::new("aws-canary", 93, "{ canary = [10, 100], wait = \"2m\" }");
    let (code, text) = w.run(&["apply", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");

    set_image(&w.repo, "ami-1e749f67", "ami-2e749f68");
    w.proxy.reset_counts();
    let apply = w
        .drctl()
        .args(["apply", "rb", "--auto-approve"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run drctl");
    // Green at 10%, watched for two minutes: its checks start failing.
    let deadline = Instant::now() + Duration::from_secs(120);
    while share(w.env, "green").await != 10 {
        assert!(Instant::now() < deadline, "green never took 10%");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    w.force("green", TargetOverride::Unhealthy("Target.Timeout"));
    let out = apply.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("canary at 10%") && text.contains("all traffic is back on blue"),
        "{text}"
    );
    assert_eq!(share(w.env, "blue").await, 100);
    assert_eq!(
        w.calls("ModifyListener"),
        3,
        "green joins at 0, takes 10%, and goes back in one call"
    );

    let (code, text) = w.run(&["destroy", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
}

/// `drctl drill` of the README's web runbook, through the model.
#[tokio::test]
async fn the_readmes_web_drill_passes_on_aws_as_it_behaves() {
    let repo = crate::bake::example_repo();
    let proxy = FaultProxy::moto_as_aws(AwsTimes::for_tests());
    let state = tempfile::tempdir().unwrap();
    let (code, text) = outcome(
        drctl_at(repo.path(), state.path(), proxy.url())
            .env("MOTO_ENDPOINT", moto_endpoint())
            .args(["drill", "web-dr-drill", "--rebake"]),
    );
    assert_eq!(code, Some(0), "{text}");
    let report = crate::support::json_reports(state.path(), "web-dr-drill")
        .pop()
        .map(|(_, r)| r)
        .expect("a report");
    assert_eq!(report["verdict"], "passed", "{report:#}");
    // For a run at DRCTL_TEST_AWS_SCALE=1 with --nocapture: how it went.
    println!(
        "README web drill on the model at scale {}: RTO {} ms, critical path {} ms\n{text}",
        AwsTimes::for_tests().scale,
        report["rto"]["measured_ms"],
        report["critical_path"]["bound_ms"]
    );
    assert_eq!(report["services"][0]["live"], "blue", "{report:#}");
    assert_eq!(report["images"][0]["how"], "baked", "{report:#}");
    assert!(
        report["leak_check"]["leaks"]
            .as_array()
            .is_some_and(|l| l.is_empty()),
        "{report:#}"
    );
    // Imaged only once the builder had stopped, as AWS shows it.
    assert_eq!(
        proxy.aws().images_of_unstopped_instances(),
        Vec::<String>::new()
    );
}

/// Without a cutover phase a colour takes the traffic as soon as it is
/// healthy, in the same step: reached first by its test rule, which goes.
#[tokio::test]
async fn without_a_cutover_phase_the_new_colour_takes_over_once_healthy() {
    let w = World::new("aws-inline", 94, "\"blue_green\"");
    w.repo.edit("runbooks/rb.toml", |text| {
        text.split("[[phases]]").next().unwrap().to_string()
    });
    let (code, text) = w.run(&["apply", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(
            "cutover listener http: 503 (no colour) → blue (once every target is healthy)"
        ),
        "{text}"
    );
    assert_eq!(live(w.env).await, "blue");
    assert_eq!((w.calls("CreateRule"), w.calls("DeleteRule")), (1, 1));
    assert_eq!(w.test_rules().await, 0);
    assert_eq!(w.calls("ModifyListener"), 1, "the cutover");

    let (code, text) = w.run(&["destroy", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
}

/// A new colour waits only for what it needs: its fleet launches while its
/// load balancer provisions, and it takes the listener once the fleet is
/// up (to be put in use and health-checked). Read from the journal's
/// order: the load balancer provisions for minutes here (scaled), the
/// colour's other inputs take moments.
#[tokio::test]
async fn a_new_colour_launches_its_fleet_while_the_load_balancer_provisions() {
    let mut w = World::new("aws-early", 93, "\"blue_green\"");
    w.proxy = FaultProxy::moto_as_aws(AwsTimes {
        load_balancer_provisioning: Duration::from_secs(600),
        ..AwsTimes::for_tests()
    });
    let (code, text) = w.run(&["apply", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(live(w.env).await, "blue");
    let runs = w.state.path().join("runs");
    let run = std::fs::read_dir(&runs).unwrap().next().unwrap().unwrap();
    let journal: Vec<serde_json::Value> = std::fs::read_to_string(run.path().join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let is = |e: &serde_json::Value, event: &str, kind: &str| {
        e["event"] == event && e["address"]["kind"] == kind
    };
    let colour = journal
        .iter()
        .position(|e| is(e, "intent", "service"))
        .expect("the colour's intent");
    let lb_done = journal
        .iter()
        .position(|e| is(e, "outcome", "load_balancer"))
        .expect("the load balancer's outcome");
    assert!(colour < lb_done, "{journal:#?}");
    let waited: Vec<&str> = journal[colour]["depends_on"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["kind"].as_str())
        .collect();
    assert!(!waited.contains(&"listener"), "{waited:?}");
}
