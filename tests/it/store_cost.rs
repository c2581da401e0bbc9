//! What the run store in a bucket costs a drill: the example fleet's drill
//! run once on the local store and once on an S3 store, every call (EC2,
//! ELBv2 and S3 alike) delayed by the same latency in the test proxy, and
//! AWS's waits (instances booting, the load balancer provisioning, health
//! checks) modelled ([`crate::aws_model`]).
//!
//! In CI this is a correctness check, at the tests' time scale: both drills
//! pass, the S3 journal holds the events the local one does, in fewer
//! objects (the records of one step together), and the S3 requests of a
//! drill stay under [`S3_CALLS_BOUND`] (and its lease renewals). It asserts
//! no timing.
//! It prints a table of figures (wall time and RTO of each drill, S3 calls
//! by action, the overhead), which at the tests' scale say little: AWS's
//! waits are shrunk a hundredfold, the store's calls are not.
//!
//! The benchmark is the same test at AWS's own pace (scale 1 takes about 3½
//! minutes per drill, one drill after the other; 0.5 about half):
//!
//! ```text
//! DRCTL_TEST_AWS_SCALE=1 cargo test --test it -- store_cost --nocapture
//! ```
//!
//! `DRCTL_BENCH_LATENCY_MS` sets the latency of every call (default 50).
//! The local drill runs first, then the S3 one, against the same moto. The
//! debug build is fine: a drill waits on AWS (and the proxy), not on its
//! own code.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use drctl::drill::report::{DrillReport, Verdict};
use drctl::store::{Key, LocalStore, ReportFormat, RunStore};
use serde_json::Value;

use crate::aws_model::AwsTimes;
use crate::drill::{assert_checks_pass_but_http, tagged, Drill};
use crate::proxy::{FaultProxy, Faults};
use crate::support::moto_endpoint;
use crate::team::{new_bucket, store, REGION as BUCKET_REGION};

/// S3 requests one drill of the example fleet may make besides renewing
/// its lock's lease: it makes 35 (50 with one journal object per event).
/// A request per event read, or a read of the whole journal per append,
/// goes far past it.
const S3_CALLS_BOUND: u32 = 40;

/// The S3 requests a drill that took `wall` may make: the bound, and a
/// renewal of its lease every third of the lease (60 s by default).
fn s3_calls_bound(wall: Duration) -> u32 {
    S3_CALLS_BOUND + (wall.as_secs() / 20) as u32 + 1
}

/// What one drill cost.
struct Figures {
    wall: Duration,
    rto_ms: Option<i64>,
    /// Calls through the proxy by `service:Action`.
    calls: BTreeMap<String, u32>,
    /// The run's journal: its events as JSON.
    events: Vec<Value>,
}

impl Figures {
    fn calls_of(&self, service: &str) -> u32 {
        self.calls
            .iter()
            .filter(|(action, _)| action.starts_with(&format!("{service}:")))
            .map(|(_, n)| n)
            .sum()
    }
}

/// Every call's latency in the benchmarks: `DRCTL_BENCH_LATENCY_MS` (50).
pub(crate) fn latency() -> Duration {
    let ms = std::env::var("DRCTL_BENCH_LATENCY_MS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(50);
    Duration::from_millis(ms)
}

/// Runs `drill` through `proxy`, timing it and counting its calls.
fn timed_drill(proxy: &FaultProxy, drill: &Drill) -> (Duration, BTreeMap<String, u32>) {
    proxy.reset_counts();
    let started = Instant::now();
    let (code, text) = drill.run(&["drill", "rb"]);
    let wall = started.elapsed();
    assert_eq!(code, Some(0), "{text}");
    let calls = proxy
        .by_action()
        .into_iter()
        .map(|(action, c)| (action, c.calls()))
        .collect();
    (wall, calls)
}

fn checked(report: &DrillReport, json: &Value) {
    assert_eq!(report.verdict, Verdict::Passed, "{json:#}");
    assert_checks_pass_but_http(report, json);
    assert!(report.teardown.performed && report.teardown.ok, "{json:#}");
}

/// The one run a store holds, its events as JSON.
fn only_run(store: &dyn RunStore) -> Vec<Value> {
    let runs = store.list_runs().unwrap();
    assert_eq!(runs.len(), 1, "one drill, one run: {runs:?}");
    store
        .read_run(&runs[0])
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(r).expect("a journal record is JSON"))
        .collect()
}

/// An event without what differs from run to run (times, ids, names):
/// its kind and what it is about.
fn shape(event: &Value) -> String {
    let field = |k: &str| match &event[k] {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    [
        "event", "phase", "address", "action", "ok", "decision", "status", "passed",
    ]
    .iter()
    .map(|k| field(k))
    .collect::<Vec<_>>()
    .join(" ")
    .trim_end()
    .to_string()
}

/// Steps run in parallel, so their intents and outcomes interleave as the
/// cloud answers: the same events, as a multiset, and the run's own
/// events (phases, gates, checks, ends) in the same order.
fn assert_same_events(local: &[Value], s3: &[Value]) {
    let step = |s: &String| s.starts_with("intent") || s.starts_with("outcome");
    let mut a: Vec<String> = local.iter().map(shape).collect();
    let mut b: Vec<String> = s3.iter().map(shape).collect();
    let (ra, rb): (Vec<&String>, Vec<&String>) = (
        a.iter().filter(|s| !step(s)).collect(),
        b.iter().filter(|s| !step(s)).collect(),
    );
    assert_eq!(ra, rb, "the run's own events, in order");
    a.sort();
    b.sort();
    assert_eq!(a, b, "the same events");
}

fn percent(s3: f64, local: f64) -> String {
    format!("{:+.1} %", (s3 / local - 1.0) * 100.0)
}

fn seconds(ms: Option<i64>) -> String {
    ms.map_or("-".into(), |ms| format!("{:.1} s", ms as f64 / 1000.0))
}

fn print_figures(
    times: &AwsTimes,
    latency: Duration,
    local: &Figures,
    s3: &Figures,
    objects: usize,
) {
    let row = |name: &str, f: &Figures| {
        format!(
            "{name:<6} {:>9.1} s {:>10} {:>10} {:>8} {:>7}",
            f.wall.as_secs_f64(),
            seconds(f.rto_ms),
            f.calls_of("ec2") + f.calls_of("elbv2"),
            f.calls_of("s3"),
            f.events.len(),
        )
    };
    let by_action: Vec<String> = s3
        .calls
        .iter()
        .filter_map(|(a, n)| Some(format!("{} {n}", a.strip_prefix("s3:")?)))
        .collect();
    let rto = match (s3.rto_ms, local.rto_ms) {
        (Some(s), Some(l)) => percent(s as f64, l as f64),
        _ => "-".into(),
    };
    println!(
        "\nstore cost: the example fleet's drill, AWS scale {}, {} ms per call\n\
         store       wall        RTO  EC2+ELBv2       S3  events\n{}\n{}\n\
         S3 over local: wall {}, RTO {rto}\n\
         S3 calls by action: {}\n\
         S3 journal: {} events in {objects} objects\n",
        times.scale,
        latency.as_millis(),
        row("local", local),
        row("s3", s3),
        percent(s3.wall.as_secs_f64(), local.wall.as_secs_f64()),
        by_action.join(", "),
        s3.events.len(),
    );
}

#[tokio::test]
async fn a_drill_on_the_s3_store_journals_what_a_local_one_does_in_few_requests() {
    let times = AwsTimes::for_tests();
    let latency = latency();
    let proxy = FaultProxy::moto_as_aws(times);
    proxy.set_faults(Faults::none().latency(latency, latency));

    let mut local_drill = Drill::new("cost-local", 161, None);
    local_drill.endpoint = proxy.url().to_string();
    let (wall, calls) = timed_drill(&proxy, &local_drill);
    let (report, json) = local_drill.report();
    checked(&report, &json);
    let local = Figures {
        wall,
        rto_ms: report.rto.measured_ms,
        calls,
        events: only_run(&LocalStore::new(local_drill.state.path())),
    };
    assert!(tagged(&report.environment).await.is_empty());

    let bucket = new_bucket("cost").await;
    let mut s3_drill = Drill::new("cost-s3", 162, None);
    s3_drill.endpoint = proxy.url().to_string();
    let settings =
        format!("[state]\nurl = \"s3://{bucket}/drctl\"\nregion = \"{BUCKET_REGION}\"\n");
    s3_drill.repo.write("drctl.toml", &settings);
    let (wall, calls) = timed_drill(&proxy, &s3_drill);
    // Read behind the proxy's back: these requests are not the drill's.
    let bucket_store = store(&bucket, moto_endpoint(), Duration::from_secs(60));
    let events = only_run(&bucket_store);
    let run_id = events[0]["run_id"].as_str().expect("a run id").to_string();
    let key = Key::report("rb", &run_id, ReportFormat::Json);
    let text = bucket_store
        .get(&key)
        .unwrap()
        .expect("the report in the bucket");
    let (report, json): (DrillReport, Value) = (
        serde_json::from_slice(&text).expect("the report parses"),
        serde_json::from_slice(&text).unwrap(),
    );
    checked(&report, &json);
    assert!(tagged(&report.environment).await.is_empty());
    assert!(
        LocalStore::new(s3_drill.state.path())
            .list_runs()
            .is_ok_and(|runs| runs.is_empty()),
        "the S3 drill journals nothing locally"
    );
    let objects = bucket_store
        .list(&Key::journal_parts(&run_id))
        .unwrap()
        .len();
    let s3 = Figures {
        wall,
        rto_ms: report.rto.measured_ms,
        calls,
        events,
    };

    print_figures(&times, latency, &local, &s3, objects);
    assert_same_events(&local.events, &s3.events);
    // One object per phase's start, per step's outcome with what it let
    // start, per run-level record, and the run's marker: far fewer than
    // one per event.
    assert!(
        objects <= s3.events.len() * 2 / 3,
        "{objects} objects for {} events",
        s3.events.len()
    );
    assert!(
        s3.calls_of("s3") <= s3_calls_bound(s3.wall),
        "{} S3 requests: {:?}",
        s3.calls_of("s3"),
        s3.calls
    );
    assert_eq!(local.calls_of("s3"), 0, "{:?}", local.calls);
}
