//! Drills that cannot leak: every object a drill creates carries its
//! lifetime (`drctl:drill`, `drctl:expires`); a drill killed with its
//! state directory is found by `sweep` once expired and removed, dependents
//! first, leaving nothing (checked through the SDK, not drctl); a dry run
//! makes no mutating call; nothing without a past `drctl:expires`, and no
//! runbook's environment, is ever touched; the next drill sweeps first.
//!
//! Each test has a region of its own: a sweep deletes every expired drill
//! it finds in its regions, and these tests move the clock days ahead.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use tokio_util::sync::CancellationToken;

use drctl::app::Context;
use drctl::clock::{Clock, ManualClock, SystemClock};
use drctl::cloud::AwsSettings;
use drctl::drill::rehearse::{drill, DrillOutcome, DrillRequest, DrillSettings};
use drctl::drill::report::Verdict;
use drctl::drill::sweep::{sweep, SweepReason, SweepRequest, SweepSummary};
use drctl::events::Collect;

use crate::proxy::{FaultProxy, Faults};
use crate::support::{drctl_at, killed_after, moto_endpoint, ConnectTo, Repo};

const DAY: i64 = 86_400_000;

/// The example fleet in `region`, drilled with `ttl`, no checks.
fn repo(env: &str, region: &str, octet: u8, ttl: &str) -> Repo {
    let vars = format!(
        "cidr = \"10.{octet}.0.0/16\"\nsubnet_a_cidr = \"10.{octet}.1.0/24\"\nsubnet_b_cidr = \"10.{octet}.2.0/24\""
    );
    let repo = Repo::fleet_rehearsal(env, region, &vars, "\"auto\"");
    repo.edit("runbooks/rb.toml", |text| {
        format!("rto_target = \"20m\"\n{text}\n[drill]\nteardown = \"always\"\nttl = \"{ttl}\"\n")
    });
    repo
}

/// A drill of `repo` through the binary, SIGKILLed after the journal's
/// `point`, its state directory then deleted (a lost CI runner).
fn drill_killed(repo: &Repo, point: &str) {
    let state = tempfile::tempdir().unwrap();
    let mut cmd = drctl_at(repo.root(), state.path(), moto_endpoint());
    cmd.args(["drill", "rb"]);
    killed_after(&mut cmd, point);
    drop(state);
}

pub(crate) async fn clients(
    region: &str,
) -> (aws_sdk_ec2::Client, aws_sdk_resourcegroupstagging::Client) {
    let config = AwsSettings::sandbox(moto_endpoint(), region).load().await;
    (
        aws_sdk_ec2::Client::new(&config),
        aws_sdk_resourcegroupstagging::Client::new(&config),
    )
}

/// Every live resource whose `drctl:env` starts with `prefix`, with its
/// tags, asked of the tagging API and EC2 directly (not through drctl).
pub(crate) async fn tagged(
    region: &str,
    prefix: &str,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let (ec2, tagging) = clients(region).await;
    let mut found = BTreeMap::new();
    let out = tagging
        .get_resources()
        .tag_filters(
            aws_sdk_resourcegroupstagging::types::TagFilter::builder()
                .key("drctl:env")
                .build(),
        )
        .send()
        .await
        .unwrap();
    for mapping in out.resource_tag_mapping_list() {
        let tags: BTreeMap<String, String> = mapping
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect();
        if tags.get("drctl:env").is_some_and(|e| e.starts_with(prefix)) {
            found.insert(mapping.resource_arn().unwrap().to_string(), tags);
        }
    }
    // moto's tagging index keeps terminated instances: ask EC2.
    let live = ec2
        .describe_instances()
        .filters(
            Filter::builder()
                .name("instance-state-name")
                .values("pending")
                .values("running")
                .values("stopping")
                .values("stopped")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let live: Vec<String> = live
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect();
    found.retain(|arn, _| {
        !arn.contains(":instance/") || live.iter().any(|id| arn.ends_with(&format!("/{id}")))
    });
    found
}

pub(crate) fn ctx<'a>(
    state: &std::path::Path,
    clock: &'a dyn Clock,
    sink: &'a Collect,
) -> Context<'a> {
    Context {
        store: drctl::store::local(state),
        clock,
        sink,
    }
}

pub(crate) fn request(repo: &Repo, dry_run: bool) -> SweepRequest {
    SweepRequest {
        root: Some(repo.root().to_path_buf()),
        dry_run,
        yes: true,
        settle: Vec::new(),
        ..SweepRequest::new(vec!["rb".into()])
    }
}

#[tokio::test]
async fn a_killed_drill_is_tagged_with_its_lifetime_and_swept_once_expired() {
    let region = "eu-north-1";
    let repo = repo("sweep-kill", region, 141, "1h");
    drill_killed(&repo, "20");
    let left = tagged(region, "sweep-kill-drill-").await;
    assert!(!left.is_empty(), "the killed drill left its environment");
    for (arn, tags) in &left {
        assert!(tags.contains_key("drctl:drill"), "{arn}: {tags:?}");
        let expires = tags.get("drctl:expires").expect("drctl:expires");
        let at: jiff::Timestamp = expires.parse().expect("an RFC 3339 time");
        let ahead = at.as_millisecond() - SystemClock.now();
        assert!(ahead > 0 && ahead <= 3_601_000, "{arn}: expires {expires}");
    }

    let state = tempfile::tempdir().unwrap();
    let sink = Collect::default();
    // Not yet expired: nothing to sweep.
    let now = ManualClock::at(SystemClock.now());
    let summary = sweep(
        &ctx(state.path(), &now, &sink),
        &ConnectTo::moto(),
        &request(&repo, false),
    )
    .await
    .unwrap();
    assert!(summary.drills.is_empty(), "{summary:?}");
    assert_eq!(tagged(region, "sweep-kill-drill-").await.len(), left.len());

    // Two hours on, through a proxy counting calls: a dry run lists and
    // changes nothing.
    let later = ManualClock::at(SystemClock.now() + 2 * 3_600_000);
    let proxy = FaultProxy::moto(Faults::none());
    let dry = sweep(
        &ctx(state.path(), &later, &sink),
        &ConnectTo(proxy.url().to_string()),
        &request(&repo, true),
    )
    .await
    .unwrap();
    assert_eq!(dry.drills.len(), 1, "{dry:?}");
    assert_eq!(dry.drills[0].reason, SweepReason::Expired);
    assert!(dry.drills[0].resources.len() >= 4, "{dry:?}");
    assert_eq!(dry.drills[0].run_id, None);
    let calls = proxy.by_action();
    // `service:Action`; the tagging API's JSON calls show as `other:POST /`
    // (drctl's tagging client has only GetResources).
    let mutating: Vec<&String> = calls
        .keys()
        .filter(|a| {
            let action = a.split_once(':').map_or(a.as_str(), |(_, action)| action);
            action != "POST /"
                && !["Describe", "Get", "List"]
                    .iter()
                    .any(|p| action.starts_with(p))
        })
        .collect();
    assert!(mutating.is_empty(), "a dry run called {mutating:?}");
    assert!(calls.contains_key("ec2:DescribeTags"), "{calls:?}");
    assert_eq!(tagged(region, "sweep-kill-drill-").await.len(), left.len());

    let swept: SweepSummary = sweep(
        &ctx(state.path(), &later, &sink),
        &ConnectTo::moto(),
        &request(&repo, false),
    )
    .await
    .unwrap();
    assert!(swept.ok(), "{swept:?}");
    assert_eq!(swept.drills.len(), 1);
    let run = swept.drills[0].run_id.clone().expect("a journaled run");
    let journal =
        std::fs::read_to_string(state.path().join("runs").join(&run).join("events.jsonl")).unwrap();
    assert!(journal.contains("\"event\":\"intent\"") && journal.contains("\"run_finished\""));
    let after = tagged(region, "sweep-kill-drill-").await;
    assert!(after.is_empty(), "left: {after:#?}");
}

/// A VPC in `region` with `tags` (through the SDK, as anyone could).
async fn vpc(region: &str, cidr: &str, tags: &[(&str, &str)]) -> String {
    let (ec2, _) = clients(region).await;
    let mut spec = TagSpecification::builder().resource_type(ResourceType::Vpc);
    for (k, v) in tags {
        spec = spec.tags(Tag::builder().key(*k).value(*v).build());
    }
    let out = ec2
        .create_vpc()
        .cidr_block(cidr)
        .tag_specifications(spec.build())
        .send()
        .await
        .unwrap();
    out.vpc().unwrap().vpc_id().unwrap().to_string()
}

async fn vpc_exists(region: &str, id: &str) -> bool {
    let (ec2, _) = clients(region).await;
    ec2.describe_vpcs()
        .filters(Filter::builder().name("vpc-id").values(id).build())
        .send()
        .await
        .unwrap()
        .vpcs()
        .iter()
        .any(|v| v.vpc_id() == Some(id))
}

#[tokio::test]
async fn only_a_drill_s_objects_past_their_expiry_are_ever_swept() {
    let region = "ap-south-1";
    let repo = repo("sweep-prod", region, 142, "1h");
    let past = "2020-01-01T00:00:00Z";
    let future = "2999-01-01T00:00:00Z";
    let ident = |env: &'static str| {
        [
            ("drctl:env", env),
            ("drctl:stack", "network"),
            ("drctl:resource", "vpc.main"),
        ]
    };
    let with = |env: &'static str, more: &[(&'static str, &'static str)]| {
        let mut tags = ident(env).to_vec();
        tags.extend_from_slice(more);
        tags
    };
    let no_expiry = vpc(
        region,
        "10.201.0.0/16",
        &with("sweep-prod-drill-a", &[("drctl:drill", "a")]),
    )
    .await;
    let not_yet = vpc(
        region,
        "10.202.0.0/16",
        &with(
            "sweep-prod-drill-b",
            &[("drctl:drill", "b"), ("drctl:expires", future)],
        ),
    )
    .await;
    // The runbook's own environment, tagged like an expired drill.
    let production = vpc(
        region,
        "10.203.0.0/16",
        &with(
            "sweep-prod",
            &[("drctl:drill", "c"), ("drctl:expires", past)],
        ),
    )
    .await;
    let not_a_drill = vpc(
        region,
        "10.204.0.0/16",
        &with("sweep-prod-other", &[("drctl:expires", past)]),
    )
    .await;
    let expired = vpc(
        region,
        "10.205.0.0/16",
        &with(
            "sweep-prod-drill-e",
            &[("drctl:drill", "e"), ("drctl:expires", past)],
        ),
    )
    .await;

    let state = tempfile::tempdir().unwrap();
    let sink = Collect::default();
    let now = ManualClock::at(SystemClock.now() + 30 * DAY);
    let summary = sweep(
        &ctx(state.path(), &now, &sink),
        &ConnectTo::moto(),
        &request(&repo, false),
    )
    .await
    .unwrap();
    assert!(summary.ok(), "{summary:?}");
    let envs: Vec<&str> = summary
        .drills
        .iter()
        .map(|d| d.environment.as_str())
        .collect();
    assert_eq!(envs, ["sweep-prod-drill-e"], "{summary:?}");
    assert!(summary
        .kept
        .iter()
        .any(|k| k.environment == "sweep-prod" && k.reason.contains("never swept")));
    for id in [&no_expiry, &not_yet, &production, &not_a_drill] {
        assert!(
            vpc_exists(region, id).await,
            "{id} was touched: {summary:?}"
        );
    }
    assert!(!vpc_exists(region, &expired).await);
}

/// A drill of `repo`'s runbook `rb` through the library.
fn drill_request(repo: &Repo) -> DrillRequest {
    DrillRequest {
        root: Some(repo.root().to_path_buf()),
        runbook: "rb".into(),
        environment: None,
        region: None,
        interactive: false,
        junit: None,
        rebake: false,
        parallelism: 8,
        settings: DrillSettings {
            leak_settle: Vec::new(),
            ..DrillSettings::default()
        },
        run_id: None,
    }
}

/// A drill of `repo`'s runbook `rb` with `ctx`, to its end (not paused).
async fn drill_to_its_end(ctx: &Context<'_>, repo: &Repo) -> Box<drctl::drill::rehearse::Finished> {
    let outcome = drill(
        ctx,
        &ConnectTo::moto(),
        &drill_request(repo),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let DrillOutcome::Finished(finished) = outcome else {
        panic!("the drill paused: {outcome:?}");
    };
    finished
}

#[tokio::test]
async fn the_next_drill_sweeps_first_and_its_report_lists_what_it_swept() {
    let region = "eu-west-3";
    let repo = repo("sweep-next", region, 143, "1h");
    drill_killed(&repo, "20");
    let killed: Vec<String> = tagged(region, "sweep-next-drill-")
        .await
        .into_values()
        .filter_map(|t| t.get("drctl:env").cloned())
        .collect();
    assert!(!killed.is_empty());

    // Three days on (a clock the test sets, no sleep), the next drill.
    let state = tempfile::tempdir().unwrap();
    let sink = Collect::default();
    let later = ManualClock::at(SystemClock.now() + 3 * DAY + 60_000);
    let finished = drill_to_its_end(&ctx(state.path(), &later, &sink), &repo).await;
    let report = &finished.report;
    assert_eq!(report.verdict, Verdict::Passed, "{report:#?}");
    assert_eq!(report.swept.len(), 1, "{:?}", report.swept);
    assert!(
        report.swept[0].contains("of drill ") && report.swept[0].contains("started 3 days ago"),
        "{:?}",
        report.swept
    );
    assert!(report.swept[0].contains(&killed[0]), "{:?}", report.swept);
    let markdown = std::fs::read_to_string(&finished.markdown).unwrap();
    assert!(markdown.contains("Swept before the rebuild"), "{markdown}");
    let after = tagged(region, "sweep-next-drill-").await;
    assert!(after.is_empty(), "left: {after:#?}");
}

#[tokio::test]
async fn a_drill_past_its_ttl_stops_tears_down_and_is_expired() {
    let region = "ap-northeast-2";
    let repo = repo("sweep-ttl", region, 144, "1ms");
    let state = tempfile::tempdir().unwrap();
    let mut cmd = drctl_at(repo.root(), state.path(), moto_endpoint());
    let out = cmd.args(["drill", "rb"]).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let (_, report) = crate::support::json_reports(state.path(), "rb")
        .pop()
        .expect("a report");
    assert_eq!(report["verdict"], "expired", "{report:#}");
    assert!(
        report["failures"][0]
            .as_str()
            .unwrap()
            .starts_with("expired"),
        "{report:#}"
    );
    assert_eq!(report["teardown"]["performed"], true, "{report:#}");
    let after = tagged(region, "sweep-ttl-drill-").await;
    assert!(after.is_empty(), "left: {after:#?}");
}

#[tokio::test]
async fn a_drill_whose_lease_lapsed_in_the_team_store_is_swept_before_its_ttl() {
    use drctl::store::RunStore as _;
    let region = "eu-west-2";
    let bucket = crate::team::new_bucket("sweep-lease").await;
    let repo = repo("sweep-lease", region, 146, "2h");
    repo.write(
        "drctl.toml",
        &format!(
            "[state]\nurl = \"s3://{bucket}/drctl\"\nregion = \"{}\"\nlease = \"3s\"\n",
            crate::team::REGION
        ),
    );
    drill_killed(&repo, "20");
    assert!(!tagged(region, "sweep-lease-drill-").await.is_empty());

    // Its lock stays in the store; its lease lapses by S3's clock.
    let store = crate::team::store(&bucket, moto_endpoint(), std::time::Duration::from_secs(3));
    let lapsed = |store: &drctl::store::S3Store| {
        store.environment_locks().unwrap().iter().any(|l| {
            l.name.starts_with("sweep-lease-drill-")
                && l.lease
                    .is_some_and(|a| a.renewed_ms_ago > a.lease_ms as i64 + 1000)
        })
    };
    for _ in 0..240 {
        if lapsed(&store) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(lapsed(&store), "{:?}", store.environment_locks());

    // Swept now, two hours before its ttl.
    let sink = Collect::default();
    let ctx = Context {
        store: std::sync::Arc::new(store),
        clock: &SystemClock,
        sink: &sink,
    };
    let summary = sweep(&ctx, &ConnectTo::moto(), &request(&repo, false))
        .await
        .expect("sweep");
    assert_eq!(summary.drills.len(), 1, "{summary:#?}");
    assert_eq!(summary.drills[0].reason, SweepReason::LeaseLapsed);
    let after = tagged(region, "sweep-lease-drill-").await;
    assert!(after.is_empty(), "left: {after:#?}");
}

#[tokio::test]
async fn a_teardown_that_fails_leaves_its_leftovers_expired_for_the_next_sweep() {
    let region = "us-west-1";
    let repo = repo("sweep-failed", region, 145, "2h");
    // The VPC cannot be deleted (and the error is not one to retry).
    let proxy = FaultProxy::moto(Faults::none().chance(
        &["ec2:DeleteVpc"],
        1.0,
        crate::proxy::Fault::Error("UnauthorizedOperation".into()),
    ));
    let state = tempfile::tempdir().unwrap();
    let mut cmd = drctl_at(repo.root(), state.path(), proxy.url());
    cmd.args(["drill", "rb"]);
    let (code, text) = crate::support::outcome(&mut cmd);
    assert_eq!(code, Some(1), "the teardown failed: {text}");
    assert!(
        text.contains("marked expired: the next sweep finishes them"),
        "{text}"
    );
    let left = tagged(region, "sweep-failed-drill-").await;
    let (arn, tags) = left
        .iter()
        .find(|(arn, _)| arn.contains(":vpc/"))
        .unwrap_or_else(|| panic!("the VPC is left: {left:#?}"));
    let expires: jiff::Timestamp = tags["drctl:expires"].parse().expect("a time");
    assert!(
        expires.as_millisecond() <= SystemClock.now(),
        "{arn} expires at once, not at the ttl: {expires}"
    );

    // The next sweep, a moment later (not at the ttl), finishes it, and
    // tells the repository's webhook.
    proxy.set_faults(Faults::none());
    let hook = crate::notify::Receiver::start(0);
    repo.write(
        "drctl.toml",
        &format!("[notify]\nwebhooks = [\"{}\"]\n", hook.url),
    );
    let clock = ManualClock::at(SystemClock.now() + 1000);
    let sink = Collect::default();
    let sweeper = tempfile::tempdir().unwrap();
    let summary = sweep(
        &ctx(sweeper.path(), &clock, &sink),
        &ConnectTo::moto(),
        &request(&repo, false),
    )
    .await
    .expect("sweep");
    assert_eq!(summary.drills.len(), 1, "{summary:#?}");
    let after = tagged(region, "sweep-failed-drill-").await;
    assert!(after.is_empty(), "left: {after:#?}");
    let posted = hook.events("sweep_finished");
    assert_eq!(posted.len(), 1, "{:?}", hook.events("run_finished"));
    let posted = &posted[0];
    assert!(
        posted["found"].as_u64().is_some_and(|n| n > 0)
            && posted["deleted"] == posted["found"]
            && posted["left"].as_array().is_some_and(Vec::is_empty)
            && posted["environment"]
                .as_str()
                .is_some_and(|e| e.starts_with("sweep-failed-drill-")),
        "{posted:#}"
    );
}

/// The wall clock, three hours on once `mark` exists (a check ran).
struct JumpsAfter {
    mark: std::path::PathBuf,
}

impl Clock for JumpsAfter {
    fn now(&self) -> i64 {
        let later = if self.mark.exists() { 3 * 3_600_000 } else { 0 };
        SystemClock.now() + later
    }
}

#[tokio::test]
async fn a_drill_whose_checks_run_past_its_ttl_is_expired_and_torn_down() {
    let region = "us-east-2";
    let repo = repo("sweep-late", region, 147, "2h");
    repo.edit("runbooks/rb.toml", |text| {
        format!("{text}checks = [{{ command = [\"sh\", \"-c\", \"touch checked\"] }}]\n")
    });
    let clock = JumpsAfter {
        mark: repo.root().join("checked"),
    };
    let state = tempfile::tempdir().unwrap();
    let sink = Collect::default();
    let finished = drill_to_its_end(&ctx(state.path(), &clock, &sink), &repo).await;
    let report = &finished.report;
    assert_eq!(report.verdict, Verdict::Expired, "{report:#?}");
    assert!(
        report.failures.iter().any(|f| f.starts_with("expired:")),
        "{:?}",
        report.failures
    );
    let left = tagged(region, "sweep-late-drill-").await;
    assert!(left.is_empty(), "torn down: {left:#?}");
}
