//! DR drills through the binary against moto: rebuild, checks, teardown, the
//! leak check (confirmed here independently, through the SDK), reports,
//! resume after kill -9, and history.

use std::path::PathBuf;
use std::process::Stdio;

use aws_sdk_ec2::types::Filter;
use drctl::cloud::AwsSettings;
use drctl::drill::report::{CheckStatus, DrillReport, Verdict};

use crate::aws_model::AwsTimes;
use crate::proxy::FaultProxy;
use crate::support::{drctl_at, moto_endpoint, moto_venv, outcome, Repo};

const REGION: &str = "eu-west-1";

const DRILL: &str = r#"
[drill]
teardown = "always"
auto_approve = true
checks = [
  { target_health = "fleet.target_group.app" },
  { listener_forwards_to = { listener = "fleet.listener.http", target = "fleet.target_group.app" } },
  { http = { url = "${stack.fleet.url}", status = 200, timeout = "5s" } },
  { command = ["./checks/fleet-smoke.sh"] },
]
"#;

/// The example fleet with a `[drill]` section whose last check is `command`.
pub(crate) struct Drill {
    pub(crate) repo: Repo,
    pub(crate) state: tempfile::TempDir,
    /// moto's, or a fault proxy's in front of it.
    pub(crate) endpoint: String,
}

impl Drill {
    pub(crate) fn new(env: &str, octet: u8, extra_check: Option<&str>) -> Drill {
        let vars = format!(
            "cidr = \"10.{octet}.0.0/16\"\nsubnet_a_cidr = \"10.{octet}.1.0/24\"\nsubnet_b_cidr = \"10.{octet}.2.0/24\""
        );
        let repo = Repo::fleet_rehearsal(env, REGION, &vars, "\"manual\"");
        let mut drill = DRILL.to_string();
        if let Some(check) = extra_check {
            drill = drill.replace("\n]\n", &format!("\n  {check},\n]\n"));
        }
        let runbook = std::fs::read_to_string(repo.path("runbooks/rb.toml")).unwrap();
        repo.write(
            "runbooks/rb.toml",
            &format!("rto_target = \"20m\"\n{runbook}{drill}"),
        );
        let smoke = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("checks/fleet-smoke.sh"),
        )
        .unwrap();
        write_script(&repo, "checks/fleet-smoke.sh", &smoke);
        Drill {
            repo,
            state: tempfile::tempdir().unwrap(),
            endpoint: moto_endpoint().to_string(),
        }
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = drctl_at(self.repo.root(), self.state.path(), &self.endpoint);
        cmd.env("MOTO_ENDPOINT", moto_endpoint())
            .env("MOTO_PYTHON", moto_venv().join("bin/python"))
            .args(args);
        cmd
    }

    /// `drctl drill rb`, killed (SIGKILL) right after the journal's `point`.
    fn drill_killed_after(&self, point: &str) {
        crate::support::killed_after(&mut self.command(&["drill", "rb"]), point);
    }

    pub(crate) fn run(&self, args: &[&str]) -> (Option<i32>, String) {
        outcome(&mut self.command(args))
    }

    /// The report files, newest last.
    fn reports(&self, ext: &str) -> Vec<PathBuf> {
        let dir = self.state.path().join("reports/rb");
        let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        found.retain(|p| p.extension().is_some_and(|e| e == ext));
        found.sort();
        found
    }

    pub(crate) fn report(&self) -> (DrillReport, serde_json::Value) {
        let path = self.reports("json").pop().expect("a JSON report");
        let text = std::fs::read_to_string(path).unwrap();
        (
            serde_json::from_str(&text).expect("the report parses as a DrillReport"),
            serde_json::from_str(&text).unwrap(),
        )
    }
}

/// The example fleet's checks: all pass but `http`, skipped on the sandbox
/// (its load balancers' names do not resolve).
pub(crate) fn assert_checks_pass_but_http(report: &DrillReport, json: &serde_json::Value) {
    let statuses: Vec<CheckStatus> = report.checks.iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        [
            CheckStatus::Passed,
            CheckStatus::Passed,
            CheckStatus::Skipped,
            CheckStatus::Passed
        ],
        "{json:#}"
    );
}

fn write_script(repo: &Repo, rel: &str, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    repo.write(rel, text);
    std::fs::set_permissions(repo.path(rel), std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Everything tagged with `env`, asked of EC2 and the tagging API directly
/// (not through drctl).
pub(crate) async fn tagged(env: &str) -> Vec<String> {
    let config = AwsSettings::sandbox(moto_endpoint(), REGION).load().await;
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let out = ec2
        .describe_tags()
        .filters(Filter::builder().name("key").values("drctl:env").build())
        .filters(Filter::builder().name("value").values(env).build())
        .send()
        .await
        .unwrap();
    // moto keeps the tags of deleted EC2 resources in DescribeTags: confirm
    // each id with its own Describe.
    let mut found: Vec<String> = Vec::new();
    for tag in out.tags() {
        let id = tag.resource_id().unwrap_or_default().to_string();
        if exists(&ec2, &id).await {
            found.push(id);
        }
    }
    let tagging = aws_sdk_resourcegroupstagging::Client::new(&config);
    let out = tagging
        .get_resources()
        .tag_filters(
            aws_sdk_resourcegroupstagging::types::TagFilter::builder()
                .key("drctl:env")
                .values(env)
                .build(),
        )
        .send()
        .await
        .unwrap();
    for mapping in out.resource_tag_mapping_list() {
        let arn = mapping.resource_arn().unwrap_or_default();
        if !arn.contains(":instance/") {
            found.push(arn.to_string());
        }
    }
    found
}

/// Whether the EC2 resource `id` still exists (an instance: not terminated).
async fn exists(ec2: &aws_sdk_ec2::Client, id: &str) -> bool {
    let prefix = id.split('-').next().unwrap_or_default();
    match prefix {
        "vpc" => ec2
            .describe_vpcs()
            .vpc_ids(id)
            .send()
            .await
            .is_ok_and(|o| !o.vpcs().is_empty()),
        "subnet" => ec2
            .describe_subnets()
            .subnet_ids(id)
            .send()
            .await
            .is_ok_and(|o| !o.subnets().is_empty()),
        "sg" => ec2
            .describe_security_groups()
            .group_ids(id)
            .send()
            .await
            .is_ok_and(|o| !o.security_groups().is_empty()),
        "igw" => ec2
            .describe_internet_gateways()
            .internet_gateway_ids(id)
            .send()
            .await
            .is_ok_and(|o| !o.internet_gateways().is_empty()),
        "rtb" => ec2
            .describe_route_tables()
            .route_table_ids(id)
            .send()
            .await
            .is_ok_and(|o| !o.route_tables().is_empty()),
        "i" => ec2
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .is_ok_and(|o| {
                o.reservations()
                    .iter()
                    .flat_map(|r| r.instances())
                    .any(|i| {
                        i.state()
                            .and_then(|s| s.name())
                            .is_some_and(|n| n.as_str() != "terminated")
                    })
            }),
        // Anything else tagged with a drill's environment is a leak.
        _ => true,
    }
}

#[tokio::test]
async fn a_drill_rebuilds_checks_tears_down_and_leaves_nothing_tagged() {
    let d = Drill::new("drill-pass", 131, None);
    let junit = d.state.path().join("drill.xml");
    let (code, text) = d.run(&["drill", "rb", "--junit", junit.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("Drill of rb PASSED"), "{text}");
    assert!(text.contains("RTO "), "{text}");
    assert!(text.contains("target 20m00s: met"), "{text}");
    assert!(text.contains("Report: "), "{text}");

    let (report, json) = d.report();
    assert_eq!(report.verdict, Verdict::Passed, "{json:#}");
    assert!(
        report.environment.starts_with("drill-pass-drill-"),
        "{}",
        report.environment
    );
    assert_eq!(report.source_environment, "drill-pass");
    assert_checks_pass_but_http(&report, &json);
    assert!(report.checks[0].detail.contains("2 of 2"), "{json:#}");
    assert!(report.checks[2].detail.contains("skipped"), "{json:#}");
    let rto = report.rto.measured_ms.expect("RTO measured");
    assert!(rto > 0 && rto >= report.critical_path.bound_ms, "{json:#}");
    assert_eq!(report.rto.met, Some(true));
    assert!(!report.critical_path.steps.is_empty(), "{json:#}");
    assert!(report.critical_path.rto_ratio.is_some_and(|r| r >= 1.0));
    assert_eq!(report.phases.len(), 2, "{json:#}");
    assert_eq!(report.gates.len(), 2, "{json:#}");
    assert!(
        report
            .gates
            .iter()
            .any(|g| g.decision == "auto"
                && g.reason.as_deref() == Some(drctl::journal::DRILL_POLICY)),
        "{json:#}"
    );
    assert!(report.resources_created.len() >= 10, "{json:#}");
    assert!(report.teardown.performed && report.teardown.ok, "{json:#}");
    assert!(report.leak_check.performed && report.leak_check.leaks.is_empty());
    assert_eq!(tagged(&report.environment).await, Vec::<String>::new());
    assert!(
        tagged("drill-pass").await.is_empty(),
        "the source environment is untouched"
    );

    // The documented shape: every field the doc names is in the JSON.
    let doc = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/drill-report.md"),
    )
    .unwrap();
    for key in json.as_object().unwrap().keys() {
        assert!(
            doc.contains(&format!("`{key}`")),
            "docs/drill-report.md does not document `{key}`"
        );
    }

    // The Markdown says the verdict first; the JUnit file parses back.
    let md = std::fs::read_to_string(d.reports("md").pop().unwrap()).unwrap();
    assert!(md.lines().next().unwrap().contains("PASSED"), "{md}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    let (cases, failures, skipped) = junit_counts(&xml);
    // phases, checks, leak check, teardown, RTO
    assert_eq!(cases, 2 + 4 + 3, "{xml}");
    assert_eq!(failures, 0, "{xml}");
    assert_eq!(skipped, 1, "{xml}");

    let (code, text) = d.run(&["drills", "history", "rb"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(&report.run_id), "{text}");
}

/// (testcases, failures, skipped) in a JUnit document, read back with an
/// XML parser.
fn junit_counts(xml: &str) -> (usize, usize, usize) {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let (mut cases, mut failures, mut skipped) = (0, 0, 0);
    loop {
        match reader.read_event().expect("well-formed JUnit XML") {
            Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                b"testcase" => cases += 1,
                b"failure" => failures += 1,
                b"skipped" => skipped += 1,
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    (cases, failures, skipped)
}

#[tokio::test]
async fn a_failing_check_fails_the_drill_and_still_tears_down() {
    let d = Drill::new(
        "drill-fail",
        132,
        Some("{ command = [\"./checks/fail.sh\"] }"),
    );
    write_script(
        &d.repo,
        "checks/fail.sh",
        "#!/bin/sh\necho \"smoke test: 3 of 5 pages missing\" >&2\nexit 3\n",
    );
    let (code, text) = d.run(&["drill", "rb"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("Drill of rb FAILED"), "{text}");
    assert!(text.contains("3 of 5 pages missing"), "{text}");
    assert!(text.contains("RTO not measured"), "{text}");
    let (report, json) = d.report();
    assert_eq!(report.verdict, Verdict::Failed);
    assert!(
        report
            .failures
            .iter()
            .any(|f| f.contains("./checks/fail.sh exited 3")),
        "{json:#}"
    );
    assert_eq!(report.rto.measured_ms, None);
    assert!(report.teardown.performed && report.teardown.ok, "{json:#}");
    assert!(report.leak_check.leaks.is_empty(), "{json:#}");
    assert!(tagged(&report.environment).await.is_empty());
}

#[tokio::test]
async fn a_drill_killed_mid_way_is_finished_by_resume() {
    let d = Drill::new("drill-crash", 133, None);
    d.drill_killed_after("8");
    let run_id = crate::support::first_run_id(d.state.path());
    let (code, text) = d.run(&["resume", &run_id]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("Drill of rb PASSED"), "{text}");
    let (report, json) = d.report();
    assert_eq!(report.run_id, run_id);
    assert!(report.teardown.performed, "{json:#}");
    assert!(tagged(&report.environment).await.is_empty());
    let (code, text) = d.run(&["resume", &run_id]);
    assert_eq!(
        code,
        Some(2),
        "a finished drill is not resumed again: {text}"
    );
}

#[tokio::test]
async fn a_drill_killed_after_its_checks_keeps_their_results_on_resume() {
    let d = Drill::new("drill-checked", 143, None);
    d.drill_killed_after("checked");
    // A check that would fail now: the resumed drill must not run it again
    // (on AWS its teardown may already have removed half the environment).
    write_script(&d.repo, "checks/fleet-smoke.sh", "#!/bin/sh\nexit 1\n");
    let run_id = crate::support::first_run_id(d.state.path());
    let (code, text) = d.run(&["resume", &run_id]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("The checks ran before the drill was stopped; their results stand."),
        "{text}"
    );
    assert!(text.contains("Drill of rb PASSED"), "{text}");
    let (report, json) = d.report();
    let rto = report.rto.measured_ms.expect("measured");
    assert!(
        report.started_at + rto <= report.teardown.started_at,
        "RTO ends where the checks passed, not after the resume: {json:#}"
    );
    assert!(tagged(&report.environment).await.is_empty());
}

#[tokio::test]
async fn a_resource_made_outside_drctl_with_the_drills_tag_is_a_leak() {
    // The check makes a VPC carrying the drill's environment tag behind
    // drctl's back (with moto's own boto3), as a forgotten script would.
    let d = Drill::new(
        "drill-leak",
        134,
        Some("{ command = [\"./checks/stray.sh\"] }"),
    );
    write_script(
        &d.repo,
        "checks/stray.sh",
        r#"#!/bin/sh
exec "$MOTO_PYTHON" -c '
import os, boto3
ec2 = boto3.client("ec2", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["DRCTL_REGION"],
                   aws_access_key_id="testing", aws_secret_access_key="testing")
ec2.create_vpc(CidrBlock="10.235.0.0/16", TagSpecifications=[{"ResourceType": "vpc",
    "Tags": [{"Key": "drctl:env", "Value": os.environ["DRCTL_ENV"]}]}])
'
"#,
    );
    let (code, text) = d.run(&["drill", "rb"]);
    assert_eq!(code, Some(1), "{text}");
    let (report, json) = d.report();
    assert_eq!(report.leak_check.leaks.len(), 1, "{json:#}");
    let leak = &report.leak_check.leaks[0];
    assert!(leak.resource.starts_with("vpc-"), "{json:#}");
    assert_eq!(leak.resource_type, "ec2:vpc");
    assert_eq!(leak.drctl_resource, None);
    assert!(
        leak.found_by.len() >= 2,
        "seen by the tagging API and EC2: {json:#}"
    );
    assert!(text.contains(&leak.resource), "{text}");
    assert!(
        report.failures.iter().any(|f| f.contains("leak check")),
        "{json:#}"
    );

    let config = AwsSettings::sandbox(moto_endpoint(), REGION).load().await;
    aws_sdk_ec2::Client::new(&config)
        .delete_vpc()
        .vpc_id(&leak.resource)
        .send()
        .await
        .unwrap();
}

mod stops;
