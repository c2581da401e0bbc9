//! plan → apply → plan → change → apply → destroy against moto, through the
//! engine and through the binary, with the example stacks.

use std::collections::BTreeMap;

use tokio_util::sync::CancellationToken;

use drctl::clock::SystemClock;
use drctl::cloud::aws::AwsProvider;
use drctl::cloud::provider::Provider;
use drctl::cloud::AwsSettings;
use drctl::execute::{self, ApplyOptions, OutcomeKind, Report};
use drctl::load::validate::load_project;
use drctl::plan::{render, Action, Plan};
use drctl::world::Value;

use crate::support::{drctl, moto_endpoint, Repo};

/// A copy of the example stacks with a runbook of its own environment.
struct Rehearsal {
    repo: Repo,
    env: String,
    provider: AwsProvider,
}

const REGION: &str = "us-west-2";

impl Rehearsal {
    async fn new(env: &str, vars: &str) -> Rehearsal {
        let repo = Repo::fleet_rehearsal(env, REGION, vars, "\"auto\"");
        let provider =
            AwsProvider::new(&AwsSettings::sandbox(moto_endpoint(), REGION).load().await);
        Rehearsal {
            repo,
            env: env.to_string(),
            provider,
        }
    }

    async fn plan(&self) -> Plan {
        let (project, diags) = load_project(self.repo.root(), &[]);
        assert!(diags.is_empty(), "{diags}");
        let runbook = project.runbook("rb").unwrap();
        let snapshot = drctl::run::observe(&self.provider, &self.env, &SystemClock)
            .await
            .expect("observe");
        drctl::planner::plan(&project, runbook, &snapshot, "test".into())
    }

    async fn apply(&self) -> Report {
        let plan = self.plan().await;
        // Every apply is a run of its own, as with the binary.
        let options = ApplyOptions {
            parallelism: 4,
            run_id: drctl::app::new_run_id(&SystemClock),
            lifetime: None,
        };
        apply_every_phase(&self.provider, &plan, &options).await
    }

    async fn destroy(&self) {
        let observed = self.provider.discover(&self.env).await.expect("discover");
        let report = execute::destroy(&self.provider, &observed, 4, &|_| true).await;
        assert!(
            report.succeeded(),
            "{:#?}",
            report.failures().collect::<Vec<_>>()
        );
        let left = self.provider.discover(&self.env).await.expect("discover");
        assert!(left.is_empty(), "left behind: {left:#?}");
    }

    fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.repo.path(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has no {from:?}");
        std::fs::write(path, text.replace(from, to)).unwrap();
    }
}

fn changed(plan: &Plan) -> BTreeMap<String, (Action, Vec<String>)> {
    plan.phases
        .iter()
        .flat_map(|p| &p.changes)
        .filter(|c| c.action != Action::NoOp)
        .map(|c| {
            (
                c.address.to_string(),
                (c.action, c.attrs.iter().map(|a| a.name.clone()).collect()),
            )
        })
        .collect()
}

/// Golden file of a rendered plan, with cloud ids (which differ per run) scrubbed.
fn assert_plan_snapshot(name: &str, rendered: &str) {
    insta::with_settings!({ filters => vec![
        (r"\b(vpc|subnet|igw|rtb|sg|i)-[0-9a-f]{8,}", "$1-…"),
        (r"arn:aws:[^\s)\x22]+", "arn:…"),
    ]}, {
        insta::assert_snapshot!(name, rendered);
    });
}

/// Every phase of `plan`, then its cleanup, with no journal or gates: the
/// executor alone (the binary's runs add both around the same calls).
async fn apply_every_phase(provider: &AwsProvider, plan: &Plan, options: &ApplyOptions) -> Report {
    let started = std::time::Instant::now();
    let never = CancellationToken::new();
    let mut applied = execute::Applied::default();
    let mut report = Report::default();
    for index in 0..plan.phases.len() {
        let phase = execute::apply_phase(
            provider,
            plan,
            index,
            &mut applied,
            options,
            &never,
            &|_| true,
        )
        .await;
        report.outcomes.extend(phase.outcomes);
    }
    if report.failures().next().is_none() {
        let cleanup =
            execute::cleanup(provider, &plan.cleanup, options.parallelism, &|_| true).await;
        report.outcomes.extend(cleanup.outcomes);
    }
    report.elapsed = started.elapsed();
    report
}

#[tokio::test]
async fn build_from_nothing_converge_change_and_destroy() {
    let r = Rehearsal::new("it-lifecycle", "cidr = \"10.71.0.0/16\"\nsubnet_a_cidr = \"10.71.1.0/24\"\nsubnet_b_cidr = \"10.71.2.0/24\"").await;

    let first = r.plan().await;
    let s = first.summary();
    assert_eq!((s.add, s.change, s.replace, s.destroy), (11, 0, 0, 0));
    assert_plan_snapshot("plan_from_nothing", &render::render(&first));

    let report = r.apply().await;
    assert!(
        report.succeeded(),
        "{:#?}",
        report.failures().collect::<Vec<_>>()
    );
    assert_eq!(report.count(Action::Create), 11);

    // Fixpoint: nothing to do, and doing it makes no mutating call.
    let again = r.plan().await;
    assert!(!again.has_changes(), "{}", render::render(&again));
    let before = r.provider.calls();
    let report = r.apply().await;
    assert!(report.succeeded());
    let calls = r.provider.calls().since(&before);
    assert_eq!(
        calls.mutating(),
        0,
        "second apply mutated: {:?}",
        calls.mutating_calls()
    );

    // Two changes, and the plan shows exactly those.
    r.edit("stacks/fleet.toml", "fleet_size = 2", "fleet_size = 3");
    r.edit(
        "stacks/network.toml",
        "ingress = [{ protocol = \"tcp\", port = 80, cidr = \"0.0.0.0/0\" }]",
        "ingress = [{ protocol = \"tcp\", port = 80, cidr = \"0.0.0.0/0\" }, { protocol = \"tcp\", port = 443, cidr = \"0.0.0.0/0\" }]",
    );
    let change = r.plan().await;
    assert_eq!(
        changed(&change),
        BTreeMap::from([
            (
                "fleet.instances.app".to_string(),
                (Action::Update, vec!["count".to_string()])
            ),
            (
                "network.security_group.lb".to_string(),
                (Action::Update, vec!["ingress".to_string()])
            ),
        ])
    );
    assert!(change.cleanup.is_empty());
    assert_plan_snapshot("plan_two_updates", &render::render(&change));
    let report = r.apply().await;
    assert!(
        report.succeeded(),
        "{:#?}",
        report.failures().collect::<Vec<_>>()
    );
    let observed = r.provider.discover(&r.env).await.unwrap();
    let fleet = observed
        .iter()
        .find(|o| o.address.to_string() == "fleet.instances.app")
        .unwrap();
    assert_eq!(fleet.attrs.get("count"), Some(&Value::Int(3)));
    assert!(!r.plan().await.has_changes());

    r.destroy().await;
}

#[tokio::test]
async fn a_failure_skips_only_its_dependents_and_a_fixed_input_converges() {
    // subnet b lies outside its VPC: CreateSubnet fails (InvalidSubnet.Range).
    let broken = "cidr = \"10.72.0.0/16\"\nsubnet_a_cidr = \"10.72.1.0/24\"\nsubnet_b_cidr = \"10.99.2.0/24\"";
    let r = Rehearsal::new("it-partial", broken).await;
    let report = r.apply().await;
    assert!(!report.succeeded());
    let result = |address: &str| {
        report
            .outcomes
            .iter()
            .find(|o| o.address.to_string() == address)
            .map(|o| o.result.clone())
            .unwrap_or_else(|| panic!("no outcome for {address}"))
    };
    match result("network.subnet.b") {
        OutcomeKind::Failed(e) => assert!(e.contains("CreateSubnet"), "{e}"),
        other => panic!("subnet b: {other:?}"),
    }
    for dependent in [
        "network.route_table.public",
        "fleet.instances.app",
        "fleet.load_balancer.public",
        "fleet.listener.http",
    ] {
        assert!(
            matches!(result(dependent), OutcomeKind::Skipped { .. }),
            "{dependent}: {:?}",
            result(dependent)
        );
    }
    for independent in [
        "network.vpc.main",
        "network.subnet.a",
        "network.security_group.web",
        "fleet.target_group.app",
    ] {
        assert!(
            matches!(result(independent), OutcomeKind::Done(_)),
            "{independent}: {:?}",
            result(independent)
        );
    }

    r.edit("runbooks/rb.toml", "10.99.2.0/24", "10.72.2.0/24");
    let report = r.apply().await;
    assert!(
        report.succeeded(),
        "{:#?}",
        report.failures().collect::<Vec<_>>()
    );
    assert_eq!(
        report.count(Action::Create),
        5,
        "only what was missing is created"
    );
    assert!(!r.plan().await.has_changes());
    r.destroy().await;
}

#[tokio::test]
async fn a_saved_plan_is_applied_as_saved_and_refused_once_the_world_changed() {
    let r = Rehearsal::new("it-saved", "cidr = \"10.73.0.0/16\"\nsubnet_a_cidr = \"10.73.1.0/24\"\nsubnet_b_cidr = \"10.73.2.0/24\"").await;
    let cli = |args: &[&str]| {
        let out = drctl()
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .args([
                "--root",
                r.repo.root().to_str().unwrap(),
                "--endpoint-url",
                moto_endpoint(),
                "-q",
            ])
            .args(args)
            .output()
            .expect("run drctl");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };
    let plan_file = r.repo.path("plan.json");
    let plan_file = plan_file.to_str().unwrap();

    let (code, text) = cli(&["plan", "rb", "--out", plan_file, "--detailed-exitcode"]);
    assert_eq!(code, Some(4), "{text}");
    let (code, text) = cli(&["apply", plan_file]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("Apply complete"), "{text}");
    let (code, text) = cli(&["plan", "rb", "--detailed-exitcode"]);
    assert_eq!(code, Some(0), "{text}");

    // Save a plan, then change the world under it.
    r.edit("runbooks/rb.toml", "[vars]\n", "[vars]\nfleet_size = 1\n");
    let (code, text) = cli(&["plan", "rb", "--out", plan_file]);
    assert_eq!(code, Some(0), "{text}");
    let observed = r.provider.discover(&r.env).await.unwrap();
    let listener = observed
        .iter()
        .find(|o| o.address.to_string() == "fleet.listener.http")
        .unwrap();
    r.provider.delete(listener).await.unwrap();
    let (code, text) = cli(&["apply", plan_file]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("is stale"), "{text}");
    assert!(text.contains("fleet.listener.http"), "{text}");

    // And a plan whose files changed since is refused too.
    let (code, text) = cli(&["plan", "rb", "--out", plan_file]);
    assert_eq!(code, Some(0), "{text}");
    r.edit("runbooks/rb.toml", "fleet_size = 1", "fleet_size = 2");
    let (code, text) = cli(&["apply", plan_file]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("files changed"), "{text}");

    let (code, text) = cli(&["destroy", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("Nothing carries drctl:env=it-saved any more."),
        "{text}"
    );
}

#[test]
fn a_protected_environment_needs_force_and_its_name() {
    let repo = Repo::with(&[(
        "runbooks/rb.toml",
        &crate::support::RUNBOOK.replace(
            "stacks = [\"app\"]\n\n",
            "stacks = [\"app\"]\nprotected = true\n\n",
        ),
    )]);
    let run = |extra: &[&str]| {
        let out = drctl()
            .args([
                "--root",
                repo.root().to_str().unwrap(),
                "--endpoint-url",
                "http://127.0.0.1:9",
                "destroy",
                "rb",
                "--auto-approve",
            ])
            .args(extra)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run drctl");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, text) = run(&[]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("is protected") && text.contains("--force"),
        "{text}"
    );
    let (code, text) = run(&["--force"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("pass --confirm test-env"), "{text}");
    let (code, text) = run(&["--force", "--confirm", "prod"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("does not match"), "{text}");
}

#[tokio::test]
async fn a_replacement_creates_the_new_copy_before_deleting_the_old() {
    let vars = "cidr = \"10.74.0.0/16\"\nsubnet_a_cidr = \"10.74.1.0/24\"\nsubnet_b_cidr = \"10.74.2.0/24\"";
    let r = Rehearsal::new("it-replace", vars).await;
    assert!(r.apply().await.succeeded());
    let before = r.provider.discover(&r.env).await.unwrap();
    let old_fleet = before
        .iter()
        .find(|o| o.address.to_string() == "fleet.instances.app")
        .unwrap()
        .clone();

    // A subnet's CIDR cannot change in place: the subnet is replaced, and so is
    // the fleet in it; the route table and load balancer are repointed.
    r.edit("runbooks/rb.toml", "10.74.1.0/24", "10.74.3.0/24");
    let plan = r.plan().await;
    let changes = changed(&plan);
    assert_eq!(changes["network.subnet.a"].0, Action::Replace);
    assert_eq!(changes["fleet.instances.app"].0, Action::Replace);
    assert_eq!(
        changes["network.route_table.public"],
        (Action::Update, vec!["subnets".to_string()])
    );
    assert_eq!(
        changes["fleet.load_balancer.public"],
        (Action::Update, vec!["subnets".to_string()])
    );
    let cleanup: Vec<String> = plan.cleanup.iter().map(|c| c.address.to_string()).collect();
    assert_eq!(
        cleanup,
        ["fleet.instances.app", "network.subnet.a"],
        "dependents first"
    );

    let report = r.apply().await;
    assert!(
        report.succeeded(),
        "{:#?}",
        report.failures().collect::<Vec<_>>()
    );
    let after = r.provider.discover(&r.env).await.unwrap();
    let fleets: Vec<_> = after
        .iter()
        .filter(|o| o.address.to_string() == "fleet.instances.app")
        .collect();
    assert_eq!(
        fleets.len(),
        1,
        "exactly the new fleet is left: {fleets:#?}"
    );
    assert_ne!(fleets[0].exports["ids"], old_fleet.exports["ids"]);
    assert_eq!(fleets[0].attrs["count"], Value::Int(2));
    assert!(!r.plan().await.has_changes());
    r.destroy().await;
}

#[tokio::test]
async fn a_step_whose_intent_could_not_be_recorded_makes_no_call() {
    let vars = "cidr = \"10.89.0.0/16\"\nsubnet_a_cidr = \"10.89.1.0/24\"\nsubnet_b_cidr = \"10.89.2.0/24\"";
    let r = Rehearsal::new("unrecorded", vars).await;
    let plan = r.plan().await;
    let options = ApplyOptions {
        parallelism: 4,
        run_id: drctl::app::new_run_id(&SystemClock),
        lifetime: None,
    };
    // The journal refuses every batch (its store is gone): nothing starts.
    let handed = std::sync::Mutex::new(0);
    let report = execute::apply_phase(
        &r.provider,
        &plan,
        0,
        &mut execute::Applied::default(),
        &options,
        &CancellationToken::new(),
        &|_| {
            *handed.lock().unwrap() += 1;
            false
        },
    )
    .await;
    assert!(*handed.lock().unwrap() > 0);
    assert!(!report.outcomes.is_empty());
    assert!(
        report
            .outcomes
            .iter()
            .all(|o| matches!(o.result, OutcomeKind::NotStarted)),
        "{:#?}",
        report.outcomes
    );
    let made = r.provider.discover("unrecorded").await.expect("discover");
    assert!(made.is_empty(), "made without a recorded intent: {made:#?}");
}
