//! Faults moto cannot produce — throttling, 5xx, dropped connections,
//! latency — injected by [`FaultProxy`] in front of it: first the proxy
//! itself through the real SDK, then drctl's retry settings, then whole runs
//! of the binary.
//!
//! Each test has a region of its own: moto keeps state per region, and
//! discovery lists every load balancer of a region.

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_ec2::config::retry::{RetryPartition, TokenBucket};
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::error::SdkError;
use drctl::cloud::aws::AwsProvider;
use drctl::cloud::provider::Provider;
use drctl::cloud::AwsSettings;

use crate::proxy::{Counts, Fault, FaultProxy, Faults};
use crate::support::{drctl, moto_endpoint, Repo};

/// SDK clients through `proxy` with `attempts` per call and back-offs of
/// milliseconds, so retries cost no test time.
async fn sdk(proxy: &FaultProxy, region: &str, attempts: u32) -> aws_config::SdkConfig {
    quick_retries(AwsSettings::sandbox(proxy.url(), region), attempts)
        .load()
        .await
}

fn quick_retries(settings: AwsSettings, attempts: u32) -> AwsSettings {
    AwsSettings {
        max_attempts: attempts,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(4),
        ..settings
    }
}

fn forwarded(n: u32) -> Counts {
    Counts {
        forwarded: n,
        ..Counts::default()
    }
}

#[tokio::test]
async fn the_proxy_counts_each_action_of_each_service() {
    let proxy = FaultProxy::moto(Faults::none());
    let config = sdk(&proxy, "ap-south-1", 1).await;
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let elbv2 = aws_sdk_elasticloadbalancingv2::Client::new(&config);
    for _ in 0..3 {
        ec2.describe_vpcs().send().await.expect("through the proxy");
    }
    ec2.describe_tags().send().await.unwrap();
    for _ in 0..2 {
        elbv2.describe_load_balancers().send().await.unwrap();
    }
    elbv2
        .describe_tags()
        .resource_arns("arn:none")
        .send()
        .await
        .ok();

    assert_eq!(proxy.counts("DescribeVpcs"), forwarded(3));
    assert_eq!(proxy.counts("ec2:DescribeVpcs"), forwarded(3));
    assert_eq!(proxy.counts("elbv2:DescribeVpcs"), Counts::default());
    assert_eq!(proxy.counts("elbv2:DescribeLoadBalancers"), forwarded(2));
    // The same action name in two services is told apart.
    assert_eq!(proxy.counts("DescribeTags"), forwarded(2));
    assert_eq!(proxy.counts("ec2:DescribeTags"), forwarded(1));
    assert_eq!(
        proxy.by_action().keys().collect::<Vec<_>>(),
        [
            "ec2:DescribeTags",
            "ec2:DescribeVpcs",
            "elbv2:DescribeLoadBalancers",
            "elbv2:DescribeTags"
        ]
    );
    assert_eq!(proxy.total(), forwarded(7));
    proxy.reset_counts();
    assert_eq!(proxy.total(), Counts::default());
}

#[tokio::test]
async fn the_second_describe_vpcs_fails_and_only_that_one() {
    let second = || Faults::none().nth("DescribeVpcs", 2, Fault::Throttle);
    let proxy = FaultProxy::moto(second());
    let once = aws_sdk_ec2::Client::new(&sdk(&proxy, "ap-south-1", 1).await);
    let mut failed = Vec::new();
    for _ in 0..4 {
        let outcome = once.describe_vpcs().send().await;
        failed.push(outcome.err().map(|e| e.code().unwrap_or("?").to_string()));
        // Other actions neither fail nor move the count.
        once.describe_subnets().send().await.unwrap();
    }
    let throttled = Some("RequestLimitExceeded".to_string());
    assert_eq!(failed, [None, throttled, None, None]);
    let vpcs = proxy.counts("DescribeVpcs");
    assert_eq!((vpcs.forwarded, vpcs.throttled), (3, 1));
    assert_eq!(proxy.counts("DescribeSubnets"), forwarded(4));

    // With retries, the caller sees no failure; the proxy saw both attempts.
    proxy.set_faults(second());
    proxy.reset_counts();
    let retrying = aws_sdk_ec2::Client::new(&sdk(&proxy, "ap-south-1", 3).await);
    for _ in 0..3 {
        retrying.describe_vpcs().send().await.expect("retried");
    }
    let vpcs = proxy.counts("DescribeVpcs");
    assert_eq!((vpcs.calls(), vpcs.throttled), (4, 1));
}

/// The SDK reads each injected answer as the service's own: the code and
/// status it would get from AWS, and a retry exactly where AWS's would be
/// retried (throttling codes and 5xx and lost connections are; a client
/// error is not).
#[tokio::test]
async fn each_fault_reads_as_the_service_would_send_it() {
    let region = "ap-south-1";
    let proxy = FaultProxy::moto(Faults::none());
    let once = sdk(&proxy, region, 1).await;
    let twice = sdk(&proxy, region, 2).await;
    let aws = |code: &str| Fault::Error(code.into());
    // service, fault, what the SDK sees without retries, whether it retries
    let cases = [
        ("ec2", Fault::Throttle, "RequestLimitExceeded 503", true),
        ("elbv2", Fault::Throttle, "Throttling 400", true),
        ("ec2", Fault::Status(500), "InternalError 500", true),
        ("elbv2", Fault::Status(503), "ServiceUnavailable 503", true),
        ("ec2", Fault::Drop, "no response", true),
        ("elbv2", Fault::Drop, "no response", true),
        (
            "ec2",
            aws("InvalidVpcID.NotFound"),
            "InvalidVpcID.NotFound 400",
            false,
        ),
        (
            "elbv2",
            aws("LoadBalancerNotFound"),
            "LoadBalancerNotFound 400",
            false,
        ),
    ];
    for (service, fault, seen, retried) in cases {
        let case = format!("{service} {fault:?}");
        let first =
            || Faults::none().nth(&format!("{service}:{}", action(service)), 1, fault.clone());
        proxy.set_faults(first());
        let err = call(service, &once).await.expect_err(&case);
        assert_eq!(err.summary(), seen, "{case}: {}", err.detail);

        proxy.set_faults(first());
        let second_try = call(service, &twice).await;
        assert_eq!(second_try.is_ok(), retried, "{case}: {second_try:?}");
    }
    assert_eq!(proxy.total().forwarded, 6, "{:?}", proxy.by_action());
}

fn action(service: &str) -> &'static str {
    match service {
        "ec2" => "DescribeVpcs",
        _ => "DescribeLoadBalancers",
    }
}

/// A failed call as the caller sees it.
#[derive(Debug)]
struct Failure {
    code: Option<String>,
    status: Option<u16>,
    detail: String,
}

impl Failure {
    fn new<E: ProvideErrorMetadata + std::error::Error + 'static>(
        e: SdkError<E, aws_smithy_runtime_api::http::Response>,
    ) -> Failure {
        Failure {
            code: e.code().map(str::to_string),
            status: e.raw_response().map(|r| r.status().as_u16()),
            detail: aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
        }
    }

    fn summary(&self) -> String {
        match (&self.code, self.status) {
            (Some(code), Some(status)) => format!("{code} {status}"),
            (None, None) => "no response".into(),
            (code, status) => format!("{code:?}, {status:?}"),
        }
    }
}

/// One call of [`action`].
async fn call(service: &str, config: &aws_config::SdkConfig) -> Result<(), Failure> {
    match service {
        "ec2" => aws_sdk_ec2::Client::new(config)
            .describe_vpcs()
            .send()
            .await
            .map(drop)
            .map_err(Failure::new),
        _ => aws_sdk_elasticloadbalancingv2::Client::new(config)
            .describe_load_balancers()
            .send()
            .await
            .map(drop)
            .map_err(Failure::new),
    }
}

#[tokio::test]
async fn random_faults_follow_the_seed_and_stay_on_their_actions() {
    let half = |seed| Faults::seeded(seed).chance(&["DescribeVpcs"], 0.5, Fault::Status(500));
    let proxy = FaultProxy::moto(half(7));
    let ec2 = aws_sdk_ec2::Client::new(&sdk(&proxy, "ap-south-1", 1).await);
    let first = pattern(&ec2).await;
    proxy.set_faults(half(7));
    let again = pattern(&ec2).await;
    proxy.set_faults(half(8));
    let other = pattern(&ec2).await;
    assert_eq!(first, again, "the same seed, the same faults");
    assert_ne!(first, other);
    let failed = first.matches('x').count();
    assert!((10..=30).contains(&failed), "about half: {first}");
    assert_eq!(proxy.counts("DescribeSubnets"), forwarded(120));
}

/// 40 DescribeVpcs, `.` for each that worked and `x` for each that failed,
/// with a DescribeSubnets (that must work) after each.
async fn pattern(ec2: &aws_sdk_ec2::Client) -> String {
    let mut seen = String::new();
    for _ in 0..40 {
        seen.push(if ec2.describe_vpcs().send().await.is_ok() {
            '.'
        } else {
            'x'
        });
        ec2.describe_subnets().send().await.expect("not faulted");
    }
    seen
}

#[tokio::test]
async fn latency_holds_every_request() {
    let proxy = FaultProxy::moto(
        Faults::none().latency(Duration::from_millis(150), Duration::from_millis(250)),
    );
    let ec2 = aws_sdk_ec2::Client::new(&sdk(&proxy, "ap-south-1", 1).await);
    for _ in 0..3 {
        let started = Instant::now();
        ec2.describe_vpcs().send().await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(150));
    }
    assert_eq!(proxy.counts("DescribeVpcs"), forwarded(3));
}

/// The SDK never sends chunked bodies to these APIs, but a client may; and
/// one connection carries many requests.
#[tokio::test]
async fn a_kept_alive_connection_may_send_chunked_bodies() {
    let proxy = FaultProxy::moto(Faults::none());
    let mut conn = TcpStream::connect(proxy.url().trim_start_matches("http://")).unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let auth = "AWS4-HMAC-SHA256 Credential=testing/20260101/ap-south-1/ec2/aws4_request, \
                SignedHeaders=host, Signature=0";
    let form = "Action=DescribeVpcs&Version=2016-11-15";
    let (a, b) = form.split_at(10);
    let chunked = format!(
        "POST / HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\n\
         content-type: application/x-www-form-urlencoded\r\ntransfer-encoding: chunked\r\n\r\n\
         {:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    );
    let plain = format!(
        "POST / HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\n\
         content-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{form}",
        form.len()
    );
    for request in [chunked, plain] {
        conn.write_all(request.as_bytes()).unwrap();
        let (status, body) = crate::proxy::read_answer(&mut reader).unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("DescribeVpcsResponse"), "{body}");
    }
    assert_eq!(proxy.counts("ec2:DescribeVpcs"), forwarded(2));
}

/// Sustained throttling drains the SDK's default retry quota (500 tokens; a
/// throttled retry takes 5, gone for good when it is throttled again) until
/// calls fail with attempts left; drctl's clients have a quota of their own
/// that does not run dry.
#[tokio::test]
async fn drctl_keeps_retrying_after_the_sdk_default_quota_runs_dry() {
    let region = "ap-south-1";
    let proxy = FaultProxy::moto(Faults::seeded(3).chance(&[], 0.5, Fault::Throttle));
    let settings = quick_retries(AwsSettings::sandbox(proxy.url(), region), 25);
    let config = settings.load().await;

    // The SDK's default quota, in a partition of its own so that other tests
    // of this process keep theirs.
    let default_quota = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(&config)
            .retry_partition(
                RetryPartition::custom("sdk-default")
                    .token_bucket(TokenBucket::default())
                    .build(),
            )
            .build(),
    );
    let mut calls = 0;
    let (refused, attempts) = loop {
        calls += 1;
        let before = proxy.total().calls();
        match default_quota.describe_vpcs().send().await {
            Ok(_) => assert!(calls < 2000, "the default quota never ran dry"),
            Err(e) => break (e, proxy.total().calls() - before),
        }
    };
    assert_eq!(refused.code(), Some("RequestLimitExceeded"));
    assert!(
        attempts < 25,
        "call {calls} gave up after {attempts} attempts"
    );
    let sent = proxy.total();
    eprintln!("the SDK's default quota ran dry at call {calls}, {sent:?}");

    // drctl's provider through the same throttling, for three times as many
    // requests as the default quota lasted.
    proxy.reset_counts();
    let provider = AwsProvider::new(&config);
    while proxy.total().calls() < 3 * sent.calls() {
        provider
            .discover("faults-nobody")
            .await
            .unwrap_or_else(|e| panic!("after {:?}: {e}", proxy.total()));
    }
}

// ---------------------------------------------------------------------------
// The binary through faults

/// A repository and state directory driven through the binary, every AWS
/// call through `endpoint`.
pub(crate) struct Drive {
    repo: Repo,
    state: tempfile::TempDir,
    env: String,
    region: String,
}

impl Drive {
    /// The example network and fleet stacks, on the 10.`octet` network.
    pub(crate) fn fleet(env: &str, region: &str, octet: u8) -> Drive {
        let vars = format!(
            "cidr = \"10.{octet}.0.0/16\"\nsubnet_a_cidr = \"10.{octet}.1.0/24\"\nsubnet_b_cidr = \"10.{octet}.2.0/24\""
        );
        Drive::new(
            Repo::fleet_rehearsal(env, region, &vars, "\"auto\""),
            env,
            region,
        )
    }

    fn new(repo: Repo, env: &str, region: &str) -> Drive {
        Drive {
            repo,
            state: tempfile::tempdir().unwrap(),
            env: env.into(),
            region: region.into(),
        }
    }

    fn command(&self, endpoint: &str, args: &[&str]) -> Command {
        let mut cmd = drctl();
        cmd.env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", &self.region)
            .args(["--root", path(self.repo.root())])
            .args(["--state-dir", path(self.state.path())])
            .args(["--endpoint-url", endpoint, "-q"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    pub(crate) fn run(&self, endpoint: &str, args: &[&str]) -> (Option<i32>, String) {
        outcome(self.command(endpoint, args).output().expect("run drctl"))
    }

    /// Each address found by tag (straight from moto), with how many
    /// resources claim it.
    pub(crate) fn env(&self) -> &str {
        &self.env
    }

    pub(crate) async fn addresses(&self) -> BTreeMap<String, usize> {
        let settings = AwsSettings::sandbox(moto_endpoint(), &self.region);
        let provider = AwsProvider::new(&settings.load().await);
        let mut found = BTreeMap::new();
        for o in provider.discover(&self.env).await.expect("discover") {
            *found.entry(o.address.to_string()).or_insert(0) += 1;
        }
        found
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn outcome(out: Output) -> (Option<i32>, String) {
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[tokio::test]
async fn apply_and_destroy_converge_with_half_of_all_calls_throttled() {
    let proxy = FaultProxy::moto(Faults::seeded(11).chance(&[], 0.5, Fault::Throttle));
    let d = Drive::fleet("faults-throttled", "eu-west-1", 141);

    let (apply_took, apply) = throttled(&d, &proxy, &["apply", "rb", "--auto-approve"]);
    let found = d.addresses().await;
    assert_eq!(found.len(), 11, "{found:?}");
    assert!(found.values().all(|n| *n == 1), "duplicates: {found:?}");
    // Exit 0, not 4: nothing left to change.
    let (_, plan) = throttled(&d, &proxy, &["plan", "rb", "--detailed-exitcode"]);
    let (destroy_took, destroy) = throttled(&d, &proxy, &["destroy", "rb", "--auto-approve"]);
    assert_eq!(d.addresses().await, BTreeMap::new());
    eprintln!(
        "throttled 50%: apply {apply_took:.1?} {apply:?}; re-plan {plan:?}; destroy {destroy_took:.1?} {destroy:?}"
    );
}

/// `drctl args` through `proxy`: it must succeed, and must have been
/// throttled on the way. How long it took, and the proxy's counts.
fn throttled(d: &Drive, proxy: &FaultProxy, args: &[&str]) -> (Duration, Counts) {
    proxy.reset_counts();
    let started = Instant::now();
    let (code, text) = d.run(proxy.url(), args);
    let took = started.elapsed();
    assert_eq!(code, Some(0), "{args:?}: {text}");
    let counts = proxy.total();
    assert!(counts.throttled > 0, "{args:?}: {:?}", proxy.by_action());
    (took, counts)
}

/// A runbook of one VPC: an apply that is cheap to make and undo.
const ONE_VPC: &str = "[resources.vpc.main]\ncidr_block = \"10.142.0.0/16\"\n";

#[tokio::test]
async fn of_two_applies_started_together_exactly_one_runs() {
    let (env, region) = ("faults-race", "eu-north-1");
    let runbook = format!(
        "environment = \"{env}\"\nregion = \"{region}\"\nstacks = [\"solo\"]\n\n\
         [[phases]]\nname = \"only\"\nstacks = [\"solo\"]\n"
    );
    let repo = Repo::with(&[
        ("stacks/solo.toml", ONE_VPC),
        ("runbooks/rb.toml", &runbook),
    ]);
    let d = Drive::new(repo, env, region);
    // Every call waits 100 ms: each apply takes several of them to plan and
    // more to run, so the two always overlap.
    let proxy = FaultProxy::moto(
        Faults::none().latency(Duration::from_millis(100), Duration::from_millis(100)),
    );

    let mut rounds = Vec::new();
    for round in 0..20 {
        let apply = || {
            d.command(proxy.url(), &["apply", "rb", "--auto-approve"])
                .spawn()
                .expect("start drctl")
        };
        let (a, b) = (apply(), apply());
        let outcomes = [a, b].map(|c| outcome(c.wait_with_output().expect("wait for drctl")));
        let ran = outcomes.iter().filter(|(code, _)| *code == Some(0)).count();
        let refused = outcomes
            .iter()
            .filter(|(code, text)| *code == Some(1) && text.contains("is locked by"))
            .count();
        let vpcs = d
            .addresses()
            .await
            .get("solo.vpc.main")
            .copied()
            .unwrap_or(0);
        if (ran, refused, vpcs) != (1, 1, 1) {
            rounds.push(format!(
                "round {round}: {ran} ran, {refused} refused, {vpcs} VPCs\n{}\n---\n{}",
                outcomes[0].1, outcomes[1].1
            ));
        }
        let (code, text) = d.run(moto_endpoint(), &["destroy", "rb", "--auto-approve"]);
        assert_eq!(code, Some(0), "{text}");
    }
    assert!(rounds.is_empty(), "{}", rounds.join("\n\n"));
    assert_eq!(d.addresses().await, BTreeMap::new());
}
