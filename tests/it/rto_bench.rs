//! The RTO benchmark (issue 22): the example web drill
//! (`runbooks/web-dr-drill.toml`: network → bake of app-image → load
//! balancer, listener and a blue/green service, gates passed by drill
//! policy) drilled three times in a row through the AWS model
//! ([`crate::aws_model`]), every call delayed by the same latency. For each
//! drill it prints:
//!
//! - **RTO**, from the drill report (`rto.measured_ms`);
//! - **bound**: the critical path of the plan's dependency chain, each step
//!   given the model's duration of what it waits for (rules below);
//! - **ratio** RTO / bound (issue 22's goal: ≤ 1.05 when no person waits);
//! - **lag**: the observe lag summed along that critical path: for each
//!   wait of a step on it, when the first answer to drctl showed the wait
//!   ended minus when the model ended it (the model's ledger,
//!   [`crate::aws_model::AwsModel::waits`]);
//! - **forecast**: the RTO the report says was forecast at the drill's
//!   start, and its error against the measured RTO ("n/a" while reports
//!   carry no forecast).
//!
//! The dependency chain is the journal's: each non-delete intent of the
//! drill's run before its checks, linked to the latest earlier step of each
//! address in its `depends_on` and of its own address (the rule of the
//! report's own critical path). A step lasts one call's latency plus the
//! model's duration of what it waits for, at the model's scale:
//!
//! - `load_balancer` create: provisioning (150 s);
//! - `image` create (a bake): the sandbox guest's script
//!   (`DRCTL_SANDBOX_GUEST_SECONDS`, default 1 s, not scaled) + stopping
//!   (15 s) + the CreateImage image pending (240 s), + a copy pending
//!   (240 s) if the bake made one. The builder's boot counts nothing: the
//!   guest powers off as soon as moto shows the builder running, and the
//!   model starts `stopping` from the first answer that shows moto's stop,
//!   the builder `pending` until then;
//! - `service` create (a colour): the target group's interval × healthy
//!   threshold (as the model read it from the group: 30 s × 2 for the
//!   example) from the later of instance boot (20 s after the step's
//!   start) and its listener's step ending. The model starts the checks
//!   after the latest of boot, registration, the group coming into use and
//!   its load balancer turning active: registration and use come a few
//!   calls after the launch or the listener, and the listener follows the
//!   load balancer's step (which waits until it is active). So the
//!   listener is a late input: the colour's other dependencies start it, a
//!   fleet may boot while its load balancer provisions;
//! - everything else: the call alone.
//!
//! The lag of a step on the path is that of the waits its rule names and
//! drctl watched (saw under way, then ended): a bake's builder stop, image
//! and copy; a load balancer's provisioning; a colour's instances booting
//! and its targets' checks. Each kind's lag is the last end an answer
//! showed minus the last end the model made.
//!
//! In CI this is a correctness check at the tests' time scale: every drill
//! passes, the bound is computed and positive and runs through the bake and
//! the colour, and the ledger saw drctl wait on the builder, the image, the
//! load balancer and the targets. It asserts no timing. The benchmark is the
//! same test at AWS's own pace (BENCHMARKS.md has the figures):
//!
//! ```text
//! DRCTL_TEST_AWS_SCALE=1 cargo test --test it -- rto_bench --nocapture
//! ```
//!
//! `DRCTL_BENCH_LATENCY_MS` sets every call's latency (default 50).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::aws_model::{AwsTimes, Wait, WaitKind};
use crate::proxy::{FaultProxy, Faults};
use crate::support::{drctl_at, json_reports, moto_endpoint, outcome};

/// A region and environment no other test uses.
const REGION: &str = "eu-south-1";
const ENVIRONMENT: &str = "rto-bench";
const RUNBOOK: &str = "web-dr-drill";
/// Drills in a row: a forecast learns from the ones before.
const DRILLS: usize = 3;

use crate::store_cost::latency;

/// How long the sandbox's builder guest runs its script before powering
/// off (its own setting, not scaled).
fn guest_seconds() -> Duration {
    let seconds = std::env::var("DRCTL_SANDBOX_GUEST_SECONDS")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(1.0);
    Duration::from_secs_f64(seconds)
}

/// The example repository with the web drill moved to this test's
/// environment and region (its image copied to that region, as the
/// example's is to its own).
fn repo() -> tempfile::TempDir {
    let repo = crate::bake::example_repo();
    let edit = |rel: &str, from: &str, to: &str| {
        let path = repo.path().join(rel);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{rel} has no {from:?}");
        std::fs::write(&path, text.replace(from, to)).unwrap();
    };
    let runbook = format!("runbooks/{RUNBOOK}.toml");
    edit(
        &runbook,
        "environment = \"web-dr\"",
        &format!("environment = \"{ENVIRONMENT}\""),
    );
    edit(
        &runbook,
        "region = \"us-west-2\"",
        &format!("region = \"{REGION}\""),
    );
    edit(
        "stacks/app-image.toml",
        "copy_to_regions = [\"us-west-2\"]",
        &format!("copy_to_regions = [\"{REGION}\"]"),
    );
    repo
}

/// One step of the drill's rebuild, from its journal.
#[derive(Debug)]
struct Step {
    address: String,
    action: String,
    depends_on: Vec<String>,
}

impl Step {
    fn kind(&self) -> &str {
        self.address.split('.').nth(1).unwrap_or_default()
    }

    fn creates(&self) -> bool {
        matches!(self.action.as_str(), "create" | "replace")
    }

    /// The kinds of wait this step's rule gives it (the ledger must have
    /// seen drctl watch each of them but a copy, which a bake makes only
    /// for another region, and a colour's boot, which drctl need not poll).
    fn waits_on(&self) -> &'static [WaitKind] {
        match (self.kind(), self.creates()) {
            ("image", true) => &[WaitKind::Stop, WaitKind::Image, WaitKind::Copy],
            ("load_balancer", true) => &[WaitKind::LoadBalancer],
            ("service", true) => &[WaitKind::Boot, WaitKind::TargetHealth],
            _ => &[],
        }
    }
}

/// The rebuild's steps, in journal order: every intent but the deletions,
/// up to the drill's checks (the teardown comes after).
fn rebuild_steps(journal: &str) -> Vec<Step> {
    let events = journal
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a journal record is JSON"));
    let mut steps = Vec::new();
    for event in events {
        match event["event"].as_str() {
            Some("drill_checked") => break,
            Some("intent") if event["action"] != "delete" => steps.push(Step {
                address: address(&event["address"]),
                action: event["action"].as_str().unwrap_or_default().to_string(),
                depends_on: event["depends_on"]
                    .as_array()
                    .map(|deps| deps.iter().map(address).collect())
                    .unwrap_or_default(),
            }),
            _ => {}
        }
    }
    steps
}

/// `stack.kind.name` of a journaled address (`{stack, kind, name}`).
fn address(value: &Value) -> String {
    if let Some(text) = value.as_str() {
        return text.to_string();
    }
    let part = |k: &str| value[k].as_str().unwrap_or_default().to_string();
    let address = [part("stack"), part("kind"), part("name")].join(".");
    assert_ne!(address, "..", "an address in the journal: {value}");
    address
}

/// A step's modelled duration: `lead` from its start; then, for a colour,
/// it waits for the later of that and its late inputs (its listener, hence
/// its load balancer turning active) and lasts `tail` more.
#[derive(Debug, Clone, Copy)]
struct Timing {
    lead: Duration,
    tail: Duration,
}

/// The model's durations a step's rule adds up.
struct Model {
    times: AwsTimes,
    latency: Duration,
    guest: Duration,
}

impl Model {
    /// What `step` waits for, per the rules in the module's comment, given
    /// the waits the drill's ledger holds.
    fn timing(&self, step: &Step, waits: &[&Wait]) -> Timing {
        let t = &self.times;
        let waited = match (step.kind(), step.creates()) {
            ("load_balancer", true) => t.of(t.load_balancer_provisioning),
            ("image", true) => {
                let copies = waits
                    .iter()
                    .filter(|w| w.kind == WaitKind::Copy && owned(w, &step.address))
                    .count() as u32;
                self.guest
                    + t.of(t.instance_stopping)
                    + t.of(t.image_pending)
                    + t.of(t.image_pending) * copies.min(1)
            }
            ("service", true) => {
                let checks = waits
                    .iter()
                    .filter(|w| w.kind == WaitKind::TargetHealth && owned(w, &step.address))
                    .map(|w| w.length)
                    .max()
                    .unwrap_or_else(|| {
                        panic!("no target checks of {} in the ledger", step.address)
                    });
                return Timing {
                    lead: self.latency + t.of(t.instance_pending),
                    tail: checks,
                };
            }
            _ => Duration::ZERO,
        };
        Timing {
            lead: self.latency + waited,
            tail: Duration::ZERO,
        }
    }
}

fn owned(wait: &Wait, address: &str) -> bool {
    wait.owner.as_deref() == Some(address)
}

/// The longest chain of `steps` by modelled timing: its length, and its
/// steps, first first, each with what it adds to the chain.
fn critical_path(steps: &[Step], timings: &[Timing]) -> (Duration, Vec<(usize, Duration)>) {
    let mut chains: Vec<(Duration, Option<usize>)> = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        let before = |dep: &String| (0..i).rev().find(|&j| &steps[j].address == dep);
        let latest = |links: Vec<usize>| links.into_iter().max_by_key(|&j| chains[j].0);
        // A colour's listener is a late input: the fleet boots meanwhile.
        let late = |dep: &&String| {
            step.kind() == "service" && step.creates() && dep.split('.').nth(1) == Some("listener")
        };
        let deps = step.depends_on.iter().chain(std::iter::once(&step.address));
        let early = latest(
            deps.clone()
                .filter(|d| !late(d))
                .filter_map(before)
                .collect(),
        );
        let listener = latest(deps.filter(late).filter_map(before).collect());
        let led = early.map_or(Duration::ZERO, |j| chains[j].0) + timings[i].lead;
        let (ready, previous) = match listener {
            Some(j) if chains[j].0 > led => (chains[j].0, Some(j)),
            _ => (led, early),
        };
        chains.push((ready + timings[i].tail, previous));
    }
    let mut at = (0..steps.len()).max_by_key(|&i| chains[i].0);
    let bound = at.map_or(Duration::ZERO, |i| chains[i].0);
    let mut chain = Vec::new();
    while let Some(i) = at {
        let from = chains[i].1.map_or(Duration::ZERO, |j| chains[j].0);
        chain.push((i, chains[i].0 - from));
        at = chains[i].1;
    }
    chain.reverse();
    (bound, chain)
}

/// The observe lag of one step on the path: per kind of wait its rule
/// names, the last end shown minus the last end made, over the waits
/// drctl watched; with the kinds it found.
fn step_lag(step: &Step, waits: &[&Wait]) -> (Duration, Vec<WaitKind>) {
    let mut total = Duration::ZERO;
    let mut found = Vec::new();
    for kind in step.waits_on() {
        let watched: Vec<&&Wait> = waits
            .iter()
            .filter(|w| w.kind == *kind && owned(w, &step.address) && w.lag().is_some())
            .collect();
        let shown = watched.iter().filter_map(|w| w.seen_ready).max();
        let made = watched.iter().filter_map(|w| w.ready).max();
        if let (Some(shown), Some(made)) = (shown, made) {
            total += shown.saturating_duration_since(made);
            found.push(*kind);
        }
    }
    (total, found)
}

/// The RTO forecast at the drill's start, in seconds, wherever the report
/// keeps it: a `forecast` object (top level or under `rto`) with
/// `rto_seconds` or `rto_ms`, or a number `forecast_seconds` /
/// `forecast_ms` under `rto`. The field's name is not settled yet.
fn forecast_seconds(report: &Value) -> Option<f64> {
    let in_object = |f: &Value| {
        f.get("rto_seconds").and_then(Value::as_f64).or_else(|| {
            f.get("rto_ms")
                .and_then(Value::as_f64)
                .map(|ms| ms / 1000.0)
        })
    };
    let rto = &report["rto"];
    in_object(&report["forecast"])
        .or_else(|| in_object(&rto["forecast"]))
        .or_else(|| rto["forecast_seconds"].as_f64())
        .or_else(|| rto["forecast_ms"].as_f64().map(|ms| ms / 1000.0))
}

/// One drill's figures.
struct Figures {
    run_id: String,
    wall: Duration,
    rto: Duration,
    bound: Duration,
    lag: Duration,
    forecast: Option<Duration>,
    /// The report's own critical path (the journal's measured steps).
    report_bound: Duration,
}

impl Figures {
    fn ratio(&self) -> f64 {
        self.rto.as_secs_f64() / self.bound.as_secs_f64()
    }

    /// (forecast − RTO) / RTO, in percent.
    fn error(&self) -> Option<f64> {
        self.forecast
            .map(|f| (f.as_secs_f64() / self.rto.as_secs_f64() - 1.0) * 100.0)
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Drills once in `repo` with state in `state`; checks the drill passed and
/// reads its figures, printing its critical path and waits.
fn drill(proxy: &FaultProxy, model: &Model, repo: &Path, state: &Path, n: usize) -> Figures {
    let started = Instant::now();
    let (code, text) = outcome(
        drctl_at(repo, state, proxy.url())
            .env("MOTO_ENDPOINT", moto_endpoint())
            .args(["drill", RUNBOOK, "--rebake"]),
    );
    let wall = started.elapsed();
    assert_eq!(code, Some(0), "drill {n}: {text}");
    let report = json_reports(state, RUNBOOK)
        .pop()
        .map(|(_, r)| r)
        .unwrap_or_else(|| panic!("drill {n}: no report: {text}"));
    assert_eq!(report["verdict"], "passed", "{report:#}");
    assert_eq!(report["images"][0]["how"], "baked", "{report:#}");
    assert!(
        report["leak_check"]["leaks"]
            .as_array()
            .is_some_and(|l| l.is_empty()),
        "{report:#}"
    );
    let run_id = report["run_id"].as_str().expect("a run id").to_string();
    let journal = std::fs::read_to_string(state.join("runs").join(&run_id).join("events.jsonl"))
        .expect("the drill's journal");
    let rto = report["rto"]["measured_ms"]
        .as_u64()
        .map(Duration::from_millis)
        .unwrap_or_else(|| panic!("drill {n}: no RTO: {report:#}"));

    let all = proxy.aws().waits();
    let waits: Vec<&Wait> = all
        .iter()
        .filter(|w| {
            w.seen_waiting
                .or(w.seen_ready)
                .is_some_and(|at| at >= started)
        })
        .collect();
    let steps = rebuild_steps(&journal);
    let timings: Vec<Timing> = steps.iter().map(|s| model.timing(s, &waits)).collect();
    let (bound, chain) = critical_path(&steps, &timings);
    assert!(!bound.is_zero(), "drill {n}: no bound from {steps:#?}");
    let on_path = |kind: &str| {
        chain
            .iter()
            .any(|&(i, _)| steps[i].kind() == kind && steps[i].creates())
    };
    assert!(
        on_path("image") && on_path("service"),
        "drill {n}: the bake and the colour are on the path: {chain:?} of {steps:#?}"
    );

    let mut lag = Duration::ZERO;
    let mut path = Vec::new();
    for &(i, added) in &chain {
        let (step_lag, found) = step_lag(&steps[i], &waits);
        let needed = |k: &&WaitKind| !matches!(k, WaitKind::Copy | WaitKind::Boot);
        assert_eq!(
            found.iter().filter(needed).count(),
            steps[i].waits_on().iter().filter(needed).count(),
            "drill {n}: the ledger saw drctl wait on {}'s {:?}: {waits:#?}",
            steps[i].address,
            steps[i].waits_on()
        );
        lag += step_lag;
        path.push(format!(
            "{} {} (+{}, lag {})",
            steps[i].action,
            steps[i].address,
            secs(added),
            secs(step_lag)
        ));
    }
    let watched = |kind: WaitKind| waits.iter().any(|w| w.kind == kind && w.lag().is_some());
    assert!(
        watched(WaitKind::LoadBalancer),
        "drill {n}: the ledger saw drctl wait on the load balancer: {waits:#?}"
    );

    println!("\ndrill {n} (run {run_id}): critical path by the model");
    for line in &path {
        println!("  {line}");
    }
    println!("  waits drctl watched (kind, owner, modelled length, observe lag):");
    let mut by_owner: BTreeMap<(Option<&str>, WaitKind), Vec<&Wait>> = BTreeMap::new();
    for w in waits.iter().filter(|w| w.lag().is_some()) {
        by_owner
            .entry((w.owner.as_deref(), w.kind))
            .or_default()
            .push(w);
    }
    for ((owner, kind), waits) in &by_owner {
        let lags: Vec<String> = waits
            .iter()
            .map(|w| secs(w.lag().unwrap_or_default()))
            .collect();
        println!(
            "    {kind:?} of {}: {} × {}, lag {}",
            owner.unwrap_or("(untagged)"),
            waits.len(),
            secs(waits[0].length),
            lags.join(", ")
        );
    }

    Figures {
        run_id,
        wall,
        rto,
        bound,
        lag,
        forecast: forecast_seconds(&report).map(Duration::from_secs_f64),
        report_bound: report["critical_path"]["bound_ms"]
            .as_u64()
            .map(Duration::from_millis)
            .unwrap_or_default(),
    }
}

fn print_figures(times: &AwsTimes, latency: Duration, figures: &[Figures]) {
    println!(
        "\nrto bench: the example web drill ({RUNBOOK}), AWS scale {}, {} ms per call\n\
         drill        RTO      bound  RTO/bound  lag on path   forecast   error  (report's bound, wall, run)",
        times.scale,
        latency.as_millis()
    );
    for (n, f) in figures.iter().enumerate() {
        println!(
            "{:<5} {:>10} {:>10} {:>10.2} {:>12} {:>10} {:>7}  ({}, {}, {})",
            n + 1,
            secs(f.rto),
            secs(f.bound),
            f.ratio(),
            secs(f.lag),
            f.forecast.map_or("n/a".into(), secs),
            f.error().map_or("n/a".into(), |e| format!("{e:+.1} %")),
            secs(f.report_bound),
            secs(f.wall),
            f.run_id,
        );
    }
    println!();
}

#[tokio::test]
async fn three_web_drills_give_rto_bound_observe_lag_and_forecast_error() {
    let times = AwsTimes::for_tests();
    let latency = latency();
    let proxy = FaultProxy::moto_as_aws(times);
    proxy.set_faults(Faults::none().latency(latency, latency));
    let model = Model {
        times,
        latency,
        guest: guest_seconds(),
    };
    let repo = repo();
    // One state directory: each drill finds the reports of those before.
    let state = tempfile::tempdir().unwrap();
    let figures: Vec<Figures> = (1..=DRILLS)
        .map(|n| drill(&proxy, &model, repo.path(), state.path(), n))
        .collect();
    print_figures(&times, latency, &figures);
    assert_eq!(
        json_reports(state.path(), RUNBOOK).len(),
        DRILLS,
        "a report per drill"
    );
    // Imaged only once the builder had stopped, as AWS shows it.
    assert_eq!(
        proxy.aws().images_of_unstopped_instances(),
        Vec::<String>::new()
    );
}

#[test]
fn a_colour_boots_while_its_load_balancer_provisions_and_waits_for_the_later() {
    let step = |address: &str, deps: &[&str]| Step {
        address: address.into(),
        action: "create".into(),
        depends_on: deps.iter().map(|d| d.to_string()).collect(),
    };
    let steps = [
        step("web.load_balancer.public", &[]),
        step("web.listener.http", &["web.load_balancer.public"]),
        step("app-image.image.app", &[]),
        step(
            "web.service.web",
            &["app-image.image.app", "web.listener.http"],
        ),
    ];
    let s = Duration::from_secs;
    let timing = |lead: u64, tail: u64| Timing {
        lead: s(lead),
        tail: s(tail),
    };
    let chain = |bake: u64| {
        let timings = [
            timing(150, 0),
            timing(1, 0),
            timing(bake, 0),
            timing(20, 60),
        ];
        let (bound, chain) = critical_path(&steps, &timings);
        let chain: Vec<(&str, u64)> = chain
            .into_iter()
            .map(|(i, added)| (steps[i].address.as_str(), added.as_secs()))
            .collect();
        (bound.as_secs(), chain)
    };
    // The bake is the longer way: the fleet boots after it.
    assert_eq!(
        chain(256),
        (
            336,
            vec![("app-image.image.app", 256), ("web.service.web", 80)]
        )
    );
    // The load balancer is: the fleet has booted by the time it is active.
    assert_eq!(
        chain(10),
        (
            211,
            vec![
                ("web.load_balancer.public", 150),
                ("web.listener.http", 1),
                ("web.service.web", 60)
            ]
        )
    );
}
