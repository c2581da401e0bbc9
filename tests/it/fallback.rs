//! When the run store's region is down: a rebuild says so in seconds,
//! naming bucket and region, and with `--state-fallback DIR --reason` runs
//! anyway on a local store, recorded as such; once the store is back,
//! `drctl state push DIR` merges that history into it, once, never
//! overwriting what the store holds. The cloud stays moto throughout: only
//! the store's requests (S3) are cut, by a proxy in front of moto.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::proxy::{Fault, FaultProxy, Faults};
use crate::support::{drctl_at, moto_endpoint, outcome, printed_after, Repo};

const REGION: &str = "us-west-2";

/// Every S3 request meets a closed connection; EC2 and ELBv2 still answer.
/// (`s3:*`: every S3 operation.)
fn store_down() -> Faults {
    Faults::none().chance(&["s3:*"], 1.0, Fault::Drop)
}

/// A teammate's machine: its own checkout (the team's bucket in its
/// drctl.toml) and working directory, reaching AWS through `endpoint`.
struct Machine {
    repo: Repo,
    state: tempfile::TempDir,
    endpoint: String,
}

impl Machine {
    fn new(bucket: &str, endpoint: &str) -> Machine {
        let vars = "cidr = \"10.97.0.0/16\"\nsubnet_a_cidr = \"10.97.1.0/24\"\nsubnet_b_cidr = \"10.97.2.0/24\"";
        let repo = Repo::fleet_rehearsal("fallback-dr", REGION, vars, "\"auto\"");
        let settings = format!("[state]\nurl = \"s3://{bucket}/drctl\"\nregion = \"{REGION}\"\n");
        std::fs::write(repo.root().join("drctl.toml"), settings).unwrap();
        Machine {
            repo,
            state: tempfile::tempdir().unwrap(),
            endpoint: endpoint.to_string(),
        }
    }

    fn run(&self, args: &[&str]) -> (Option<i32>, String) {
        let mut cmd = drctl_at(self.repo.root(), self.state.path(), &self.endpoint);
        cmd.current_dir(self.repo.root()).arg("-q").args(args);
        outcome(&mut cmd)
    }
}

fn text_of(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

#[tokio::test]
async fn a_rebuild_without_its_store_runs_on_a_local_one_and_a_push_shares_its_history_once() {
    let bucket = crate::team::new_bucket("fallback").await;
    let proxy = FaultProxy::moto(store_down());
    let a = Machine::new(&bucket, proxy.url());
    // The same endpoint on both: a run's recorded target must match.
    let b = Machine::new(&bucket, proxy.url());
    let local = tempfile::tempdir().unwrap();
    let dir = local.path().join("drctl-fallback");
    let dir = text_of(&dir);
    let url = format!("s3://{bucket}/drctl");

    // No fallback: an error in seconds (the store's requests give up after
    // a few quick attempts, 15 s at most), naming bucket and region, with
    // the way to go on; nothing is built.
    let started = Instant::now();
    let (code, text) = a.run(&["rebuild", "rb", "--auto-approve", "--reason", "INC-7"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(started.elapsed() < Duration::from_secs(30), "{text}");
    for expected in [
        format!("bucket {bucket}"),
        format!("region {REGION}"),
        "--state-fallback DIR --reason TEXT".to_string(),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in\n{text}");
    }
    assert!(!text.contains("Run "), "{text}");

    // With one: a warning naming the store and the error, and the rebuild
    // runs with its records in DIR (gates `auto`: no --auto-approve).
    let reason = "INC-7: the store's region is down";
    let (code, text) = a.run(&["rebuild", "rb", "--state-fallback", dir, "--reason", reason]);
    assert_eq!(code, Some(0), "{text}");
    for expected in [
        "warning: the run store is out of reach".to_string(),
        format!("bucket {bucket}, region {REGION}"),
        format!("drctl state push {dir}"),
        "Rebuilt in".to_string(),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in\n{text}");
    }
    let id = printed_after(&text, "Run ")
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert!(Path::new(dir).join("runs").join(&id).is_dir());

    // The local store lists it as a fallback run not pushed yet, and its
    // timeline says why it ran there.
    let (code, text) = a.run(&["--state", dir, "runs"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&id) && text.contains(&format!("(fallback store, not yet pushed to {url})")),
        "{text}"
    );
    let (code, text) = a.run(&["--state", dir, "runs", "show", &id]);
    assert_eq!(code, Some(0), "{text}");
    for expected in [
        format!("recorded on the fallback store {dir} (cannot open the run store {url} (bucket {bucket}, region {REGION})"),
        format!("reason: {reason})"),
        "status: succeeded".to_string(),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in\n{text}");
    }

    // The store is back: it has none of this until the push.
    proxy.set_faults(Faults::none());
    let (code, text) = b.run(&["runs"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains(&id), "{text}");
    let (code, text) = a.run(&["state", "push", dir]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(&format!("pushed run {id} (")), "{text}");
    assert!(
        text.contains(&format!("Pushed 1 run and 0 reports from {dir} to {url}.")),
        "{text}"
    );

    // Another machine reads the run from the store, fallback and all.
    let (code, text) = b.run(&["runs"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&id) && text.contains(&format!("(ran on the fallback store {dir})")),
        "{text}"
    );
    let (code, text) = b.run(&["runs", "show", &id]);
    assert_eq!(code, Some(0), "{text}");
    for expected in [
        format!("recorded on the fallback store {dir}"),
        format!("reason: {reason}"),
        "status: succeeded".to_string(),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in\n{text}");
    }
    let (code, text) = a.run(&["--state", dir, "runs"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!("(fallback store, pushed to {url})")),
        "{text}"
    );

    // Pushing again: nothing to push.
    let (code, text) = a.run(&["state", "push", dir]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!("Nothing to push from {dir}")) && !text.contains("pushed run"),
        "{text}"
    );

    // The same run id with other records here: a conflict, said, and the
    // store's records stay as they are.
    let journal = Path::new(dir).join("runs").join(&id).join("events.jsonl");
    let edited = std::fs::read_to_string(&journal).unwrap().replacen(
        "\"user\":\"tester\"",
        "\"user\":\"mallory\"",
        1,
    );
    assert!(edited.contains("mallory"));
    std::fs::write(&journal, edited).unwrap();
    let (code, text) = a.run(&["state", "push", dir]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "CONFLICT: run {id} is in {url} with other records"
        )) && text.contains("1 conflict left as it is"),
        "{text}"
    );
    let (code, text) = b.run(&["runs", "show", &id]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("by tester on") && !text.contains("mallory"),
        "{text}"
    );

    // With the store up, --state-fallback is not used at all.
    let unused = local.path().join("unused");
    let (code, text) = a.run(&[
        "rebuild",
        "rb",
        "--state-fallback",
        text_of(&unused),
        "--reason",
        "just in case",
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("Nothing to rebuild") && !text.contains("warning"),
        "{text}"
    );
    assert!(!unused.exists());

    let (code, text) = b.run(&["destroy", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
}

#[test]
fn a_push_needs_a_local_directory_and_a_fallback_only_a_rebuild_with_a_reason() {
    let repo = Repo::fleet_rehearsal("fallback-args", REGION, "", "\"auto\"");
    let state = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut cmd = drctl_at(repo.root(), state.path(), moto_endpoint());
        cmd.current_dir(repo.root()).args(args);
        outcome(&mut cmd)
    };
    let missing = state.path().join("nowhere");
    for (args, expected) in [
        (
            vec!["state", "push", text_of(&missing)],
            "no such directory".to_string(),
        ),
        (
            vec!["state", "push", "s3://team-dr/drctl"],
            "expected a local directory".to_string(),
        ),
        (
            vec!["state", "push", text_of(state.path())],
            "is the run store itself".to_string(),
        ),
        (
            vec!["rebuild", "rb", "--state-fallback", "x"],
            "--reason".to_string(),
        ),
        (
            vec!["rebuild", "rb", "--reason", "why"],
            "--auto-approve|--state-fallback".to_string(),
        ),
        (
            vec!["apply", "rb", "--state-fallback", "x"],
            "unexpected argument '--state-fallback'".to_string(),
        ),
        (
            vec![
                "rebuild",
                "rb",
                "--state-fallback",
                "s3://team-dr/x",
                "--reason",
                "r",
            ],
            "expected a local directory".to_string(),
        ),
    ] {
        let (code, text) = run(&args);
        assert_eq!(code, Some(2), "{args:?}: {text}");
        assert!(
            text.contains(&expected),
            "{args:?}: missing {expected:?} in\n{text}"
        );
    }
}
