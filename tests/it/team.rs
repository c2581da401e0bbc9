//! The run store a team shares, in an S3 bucket (moto's, which enforces
//! conditional writes): two machines (separate checkouts and working
//! directories) see the same runs, approvals and locks; locks are leases
//! with one winner per race, taken over only once lapsed, and a holder that
//! lost its lease writes nothing more.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use drctl::cloud::AwsSettings;
use drctl::store::{
    BucketLocation, Key, LockHolder, LockRefusal, RunStore, S3Store, StoreLocation,
};

use crate::proxy::{Fault, FaultProxy, Faults};
use crate::support::{drctl_at, moto_endpoint, outcome, Repo};

/// The region of the tests' buckets.
pub(crate) const REGION: &str = "us-west-2";

/// An S3 client of moto's, to look into buckets.
async fn s3_client() -> aws_sdk_s3::Client {
    let config = AwsSettings::sandbox(moto_endpoint(), REGION).load().await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    )
}

/// The id of the run a command's output says it started.
fn started_run(text: &str) -> String {
    let line = crate::support::printed_after(text, "Run ");
    line.split_whitespace().next().unwrap().to_string()
}

/// A bucket of this test's own, created in moto.
pub(crate) async fn new_bucket(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "drctl-{test}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    s3_client()
        .await
        .create_bucket()
        .bucket(&name)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(REGION.into())
                .build(),
        )
        .send()
        .await
        .expect("create the test's bucket");
    name
}

/// A machine of the team: its own checkout and working directory, the
/// team's store named in the checkout's drctl.toml.
pub(crate) struct Machine {
    repo: Repo,
    state: tempfile::TempDir,
}

impl Machine {
    pub(crate) fn new(bucket: &str, octet: u8, gate: &str) -> Machine {
        let vars = format!(
            "cidr = \"10.{octet}.0.0/16\"\nsubnet_a_cidr = \"10.{octet}.1.0/24\"\nsubnet_b_cidr = \"10.{octet}.2.0/24\""
        );
        // An environment of the test's own (by its octet): tests run at once.
        let env = format!("team-gate-{octet}");
        let repo = Repo::fleet_rehearsal(&env, REGION, &vars, gate);
        let settings = format!("[state]\nurl = \"s3://{bucket}/drctl\"\nregion = \"{REGION}\"\n");
        std::fs::write(repo.root().join("drctl.toml"), settings).unwrap();
        Machine {
            repo,
            state: tempfile::tempdir().unwrap(),
        }
    }

    /// Adds `text` to the checkout's drctl.toml.
    pub(crate) fn add_settings(&self, text: &str) {
        self.repo
            .edit("drctl.toml", |settings| format!("{settings}{text}"));
    }

    pub(crate) fn run(&self, args: &[&str]) -> (Option<i32>, String) {
        let mut cmd = self.command(&["-q"]);
        cmd.args(args);
        outcome(&mut cmd)
    }

    /// `drctl ARGS` on this machine, not started.
    pub(crate) fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = drctl_at(self.repo.root(), self.state.path(), moto_endpoint());
        cmd.current_dir(self.repo.root()).args(args);
        cmd
    }
}

#[tokio::test]
async fn a_run_paused_on_one_machine_is_approved_and_resumed_on_another() {
    let bucket = new_bucket("team").await;
    let a = Machine::new(&bucket, 91, "\"manual\"");
    let b = Machine::new(&bucket, 91, "\"manual\"");

    let (code, text) = a.run(&["apply", "rb"]);
    assert_eq!(code, Some(3), "paused at the gate: {text}");
    let approve = crate::support::printed_after(&text, "drctl approve ");
    let id = approve.split_whitespace().next().unwrap().to_string();

    // B sees the run and its gate, and approves it.
    let (code, text) = b.run(&["runs"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&id) && text.contains("paused at a gate before `compute` (0/1)"),
        "{text}"
    );
    let (code, text) = b.run(&["approve", &id, "--as", "bob", "--reason", "from B"]);
    assert_eq!(code, Some(0), "{text}");
    // B resumes it, from its own checkout.
    let (code, text) = b.run(&["resume", &id]);
    assert_eq!(code, Some(0), "{text}");

    // A reads the whole story.
    let (code, text) = a.run(&["runs", "show", &id]);
    assert_eq!(code, Some(0), "{text}");
    for expected in [
        "gate before compute: approved by bob: \"from B\"",
        "resumed by tester",
        "status: succeeded",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    // Nothing of the run is on either machine's disk.
    for machine in [&a, &b] {
        assert!(!machine.state.path().join("runs").exists());
        assert!(!machine.state.path().join("locks").exists());
    }
    let (code, text) = a.run(&["destroy", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
}

#[tokio::test]
async fn a_drill_on_one_machine_is_in_the_others_history_and_no_object_holds_a_secret() {
    const SECRET: &str = "TOKEN=team-store-secret-31";
    let bucket = new_bucket("drill").await;
    let a = Machine::new(&bucket, 93, "\"auto\"");
    let b = Machine::new(&bucket, 93, "\"auto\"");
    a.repo.edit("stacks/fleet.toml", |text| {
        text.replace(
            "user_data = \"#!/bin/bash\\n",
            &format!("user_data = \"#!/bin/bash\\nexport {SECRET}\\n"),
        )
    });
    let (code, text) = a.run(&["drill", "rb"]);
    assert_eq!(code, Some(0), "{text}");
    let run_id = started_run(&text);
    let (code, text) = b.run(&["drills", "history", "rb"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(&run_id), "{text}");

    // The journal, the reports and the lock's traces: none holds the secret.
    let s3 = s3_client().await;
    let listed = s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
    let keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    assert!(
        keys.iter().any(|k| k.ends_with(".md")) && keys.iter().any(|k| k.contains("/events/")),
        "{keys:?}"
    );
    for key in &keys {
        let object = s3
            .get_object()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        let bytes = object.body.collect().await.unwrap().into_bytes();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(SECRET), "{key} holds the secret");
    }
}

#[tokio::test]
async fn a_missing_bucket_is_named_with_its_region_and_nothing_runs() {
    let bucket = format!("drctl-missing-{}", std::process::id());
    let m = Machine::new(&bucket, 92, "\"auto\"");
    let (code, text) = m.run(&["runs"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!("bucket {bucket}"))
            && text.contains(&format!("region {REGION}"))
            && text.contains("does not exist"),
        "{text}"
    );
}

#[tokio::test]
async fn an_unreachable_store_is_an_error_naming_bucket_and_region_not_a_hang() {
    let m = Machine::new("drctl-unreachable", 95, "\"auto\"");
    // Nothing listens on port 9 of loopback: every connection is refused.
    let mut cmd = crate::support::drctl_at(m.repo.root(), m.state.path(), "http://127.0.0.1:9");
    cmd.current_dir(m.repo.root()).args(["runs"]);
    let (code, text) = outcome(&mut cmd);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("bucket drctl-unreachable") && text.contains(&format!("region {REGION}")),
        "{text}"
    );
}

/// A store in `bucket` as a process opens it, reached through `endpoint`.
pub(crate) fn store(bucket: &str, endpoint: &str, lease: Duration) -> S3Store {
    let StoreLocation::Bucket(place) =
        StoreLocation::parse(&format!("s3://{bucket}/drctl")).unwrap()
    else {
        unreachable!("a bucket URL")
    };
    let place = BucketLocation {
        region: Some(REGION.into()),
        lease,
        ..place
    };
    let settings = AwsSettings::sandbox(endpoint, REGION);
    S3Store::open(place, async move { settings.load().await }).expect("the store opens")
}

fn holder(name: &str) -> LockHolder {
    LockHolder {
        pid: 1,
        host: name.into(),
        user: name.into(),
        run_id: format!("run-{name}"),
        since: 0,
    }
}

#[tokio::test]
async fn twenty_lock_races_between_two_stores_have_one_winner_each() {
    let bucket = new_bucket("race").await;
    // S3 applies conditional writes atomically; moto does only one at a time.
    let atomic = FaultProxy::moto_one_at_a_time();
    let stores: Vec<Arc<S3Store>> = (0..2)
        .map(|_| Arc::new(store(&bucket, atomic.url(), Duration::from_secs(30))))
        .collect();
    for round in 0..20 {
        let barrier = Arc::new(Barrier::new(2));
        let threads: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (s, barrier) = (s.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    s.lock_environment(&format!("race-{round}"), REGION, &holder(&format!("p{i}")))
                })
            })
            .collect();
        let tries: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let winners = tries.iter().filter(|t| t.is_ok()).count();
        let said: Vec<String> = tries
            .iter()
            .map(|t| match t {
                Ok(_) => "took it".to_string(),
                Err(e) => format!("{e:?}"),
            })
            .collect();
        assert_eq!(winners, 1, "round {round}: {said:?}");
        for refused in tries.iter().filter_map(|t| t.as_ref().err()) {
            assert!(
                matches!(refused, LockRefusal::Held(Some(h)) if h.host.starts_with('p')),
                "round {round}: {refused:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_lapsed_lease_is_taken_over_and_its_former_holder_writes_nothing_more() {
    let bucket = new_bucket("lease").await;
    let lease = Duration::from_secs(3);
    // A reaches S3 through a proxy the test can cut; B directly.
    let proxy = FaultProxy::moto(Faults::none());
    let a = store(&bucket, proxy.url(), lease);
    let b = store(&bucket, moto_endpoint(), lease);

    let a_lease = a.lock_environment("web", REGION, &holder("a")).unwrap();
    let journal = a.create_run("r-1").unwrap();
    journal.append(&[b"{\"by\":\"a\"}".to_vec()]).unwrap();
    assert!(
        matches!(b.lock_environment("web", REGION, &holder("b")), Err(LockRefusal::Held(Some(h))) if h.host == "a"),
        "a live holder keeps its lock"
    );

    // A is cut off: its renewals fail, and its lease lapses by S3's clock.
    proxy.set_faults(Faults::none().chance(&[], 1.0, Fault::Drop));
    let started = Instant::now();
    let b_lease = loop {
        match b.lock_environment("web", REGION, &holder("b")) {
            Ok(lease) => break lease,
            Err(LockRefusal::Held(_)) if started.elapsed() < Duration::from_secs(60) => {
                std::thread::sleep(Duration::from_millis(250));
            }
            Err(e) => panic!("B never took over: {e:?}"),
        }
    };
    let record: serde_json::Value = serde_json::from_slice(
        &b.get(&Key::environment_lock("web", REGION))
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(record["generation"], 2, "{record}");
    assert_eq!(record["holder"]["host"], "b", "{record}");
    // It names the holding it took over, which B's journal objects carry:
    // readers skip whatever A writes after them.
    assert!(
        record["took_over"]
            .as_str()
            .is_some_and(|a| a.contains("#1@a/")),
        "{record}"
    );

    // A, back on the network, is fenced: it may not append after B took over.
    proxy.set_faults(Faults::none());
    let refused = journal.append(&[b"{\"by\":\"a, late\"}".to_vec()]);
    assert!(refused.is_err(), "a fenced holder appended");
    let b_journal = b.open_run("r-1").unwrap().expect("the run is there");
    b_journal.append(&[b"{\"by\":\"b\"}".to_vec()]).unwrap();
    let records: Vec<String> = b
        .read_run("r-1")
        .unwrap()
        .into_iter()
        .map(|r| String::from_utf8(r).unwrap())
        .collect();
    assert_eq!(records, ["{\"by\":\"a\"}", "{\"by\":\"b\"}"]);

    // A letting go of what it lost leaves B's lock alone.
    drop(a_lease);
    assert_eq!(
        b.environment_holder("web", REGION).map(|h| h.host),
        Some("b".to_string())
    );
    drop(b_lease);
    assert_eq!(b.environment_holder("web", REGION), None);
}

#[tokio::test]
async fn a_lock_held_anywhere_shows_its_lease_and_an_unlock_breaks_it_on_record() {
    let bucket = new_bucket("status").await;
    let holder_store = store(&bucket, moto_endpoint(), Duration::from_secs(30));
    let lease = holder_store
        .lock_environment("shown", REGION, &holder("a"))
        .unwrap();
    let b = Machine::new(&bucket, 94, "\"auto\"");
    let (code, text) = b.run(&["lock", "status"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("shown@us-west-2: run run-a (pid 1 on a, user a")
            && text.contains("lease renewed")
            && text.contains("of 30s (generation 1)"),
        "{text}"
    );
    let (code, text) = b.run(&["unlock", "shown@us-west-2", "--yes"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("Unlocked shown@us-west-2"), "{text}");
    let (_, text) = b.run(&["lock", "status"]);
    assert!(text.contains("No environment is locked"), "{text}");
    // Who broke whose lease is on record.
    let s3 = s3_client().await;
    let listed = s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("drctl/locks/broken/")
        .send()
        .await
        .unwrap();
    let [note] = listed.contents() else {
        panic!("one note: {listed:?}")
    };
    let object = s3
        .get_object()
        .bucket(&bucket)
        .key(note.key().unwrap())
        .send()
        .await
        .unwrap();
    let note: serde_json::Value =
        serde_json::from_slice(&object.body.collect().await.unwrap().into_bytes()).unwrap();
    assert_eq!(note["holder"]["host"], "a", "{note}");
    assert!(
        note["broken_by"].as_str().unwrap().starts_with("tester@"),
        "{note}"
    );
    drop(lease);
}

#[tokio::test]
async fn a_scheduled_drill_started_twice_drills_once() {
    let bucket = new_bucket("fire").await;
    let a = Machine::new(&bucket, 96, "\"auto\"");
    let b = Machine::new(&bucket, 96, "\"auto\"");
    for machine in [&a, &b] {
        // Fires once a year: both starts are for the same fire.
        machine.repo.edit("runbooks/rb.toml", |text| {
            format!("schedule = \"0 0 1 1 *\"\n{text}")
        });
    }
    let (code, text) = a.run(&["drill", "rb", "--scheduled"]);
    assert_eq!(code, Some(0), "{text}");
    let run_id = started_run(&text);
    // The same fire, started again elsewhere (a CronJob fired twice).
    let (code, text) = b.run(&["drill", "rb", "--scheduled"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("was claimed already") && text.contains(&run_id),
        "{text}"
    );
    let runs = s3_client()
        .await
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("drctl/runs/")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    assert_eq!(runs.common_prefixes().len(), 1, "{runs:?}");
}

#[tokio::test]
async fn a_journal_read_again_fetches_only_what_it_has_not_seen() {
    let bucket = new_bucket("reads").await;
    let proxy = FaultProxy::moto(Faults::none());
    let a = store(&bucket, proxy.url(), Duration::from_secs(30));
    let b = store(&bucket, moto_endpoint(), Duration::from_secs(30));
    let journal = a.create_run("r-1").unwrap();
    for n in 0..5 {
        journal
            .append(&[format!("{{\"n\":{n}}}").into_bytes()])
            .unwrap();
    }
    // Only journal objects are read here (a listing is ListObjectsV2).
    let gets = |proxy: &FaultProxy| proxy.counts("s3:GetObject").calls();
    proxy.reset_counts();
    assert_eq!(journal.read().unwrap().len(), 5);
    assert_eq!(
        gets(&proxy),
        0,
        "what it wrote itself is not fetched: {:?}",
        proxy.by_action()
    );
    // An approval from elsewhere: one object more, fetched once.
    b.open_run("r-1")
        .unwrap()
        .unwrap()
        .append(&[b"{\"n\":5}".to_vec()])
        .unwrap();
    assert_eq!(journal.read().unwrap().len(), 6);
    assert_eq!(journal.read().unwrap().len(), 6);
    assert_eq!(gets(&proxy), 1, "{:?}", proxy.by_action());
}

#[tokio::test]
async fn a_lease_dropped_after_its_store_is_left_to_lapse() {
    let bucket = new_bucket("late").await;
    let first = store(&bucket, moto_endpoint(), Duration::from_secs(30));
    let lease = first
        .lock_environment("late", REGION, &holder("a"))
        .unwrap();
    drop(first); // its runtime goes: nothing can release the lease now
    drop(lease);
    let other = store(&bucket, moto_endpoint(), Duration::from_secs(30));
    assert_eq!(
        other.environment_holder("late", REGION).map(|h| h.host),
        Some("a".to_string()),
        "left in place, to lapse"
    );
}
