//! Drills that do not go straight through: rebuilding a wreck, the
//! scheduler's missed drill, SIGTERM, a drill left built, an API error, a
//! fleet not yet registered, a rejected gate, and AWS's own pace.

use super::*;

#[tokio::test]
async fn rebuild_restores_a_partial_wreck_with_break_glass_recorded() {
    let d = Drill::new("rebuild-wreck", 135, None);
    let (code, text) = d.run(&["rebuild", "rb", "--auto-approve"]);
    assert_eq!(code, Some(2), "break glass needs a reason: {text}");

    let (code, text) = d.run(&[
        "rebuild",
        "rb",
        "--auto-approve",
        "--reason",
        "INC-4521: region down",
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("Emergency rebuild of rebuild-wreck"),
        "{text}"
    );
    assert!(text.contains("11 added"), "{text}");
    assert!(text.contains("Rebuilt in "), "{text}");
    assert!(text.contains("target 20m00s: met"), "{text}");

    // A wreck: the load balancer (and with it its listener) is gone.
    let config = AwsSettings::sandbox(moto_endpoint(), REGION).load().await;
    let elbv2 = aws_sdk_elasticloadbalancingv2::Client::new(&config);
    let lbs = elbv2.describe_load_balancers().send().await.unwrap();
    let mut deleted = 0;
    for lb in lbs.load_balancers() {
        let arn = lb.load_balancer_arn().unwrap();
        if in_env(&elbv2, arn, "rebuild-wreck").await {
            elbv2
                .delete_load_balancer()
                .load_balancer_arn(arn)
                .send()
                .await
                .unwrap();
            deleted += 1;
        }
    }
    assert_eq!(deleted, 1);
    let (code, text) = d.run(&[
        "rebuild",
        "rb",
        "--auto-approve",
        "--reason",
        "INC-4522: LB deleted",
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("2 added, 0 changed"),
        "only what is missing is rebuilt: {text}"
    );
    let runs = crate::support::runs_by_start(d.state.path());
    assert_eq!(runs.len(), 2, "{runs:?}");
    let (code, text) = d.run(&["runs", "show", runs.last().unwrap()]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("passed by --auto-approve (tester, reason: INC-4522: LB deleted)"),
        "who and why are recorded: {text}"
    );
    let (code, text) = d.run(&["destroy", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
}

#[tokio::test]
async fn the_schedule_daemon_runs_a_missed_drill_once_and_logs_its_verdict() {
    let d = Drill::new("drill-sched", 136, None);
    let runbook = std::fs::read_to_string(d.repo.path("runbooks/rb.toml")).unwrap();
    d.repo.write(
        "runbooks/rb.toml",
        &format!("schedule = \"0 4 * * SAT\"\ntimezone = \"Europe/Berlin\"\n{runbook}"),
    );
    // The daemon first runs on a Friday: nothing is due, and nothing counts
    // as missed from before it ever ran.
    let (code, text) = d.run(&["schedule", "run", "--once", "--now", "2026-11-20T12:00:00Z"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(d.reports("json").is_empty(), "{text}");
    // Down for two Saturdays: the missed fires run once, as one drill.
    let (code, text) = d.run(&["schedule", "run", "--once", "--now", "2026-12-02T09:00:00Z"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(d.reports("json").len(), 1, "{text}");
    assert!(text.contains("passed"), "{text}");
    let (report, _) = d.report();
    assert_eq!(report.verdict, Verdict::Passed);
    assert!(
        text.contains(&report.run_id) || text.contains("reports/rb/"),
        "{text}"
    );
    assert!(tagged(&report.environment).await.is_empty());
    // Nothing more is due.
    let (code, text) = d.run(&["schedule", "run", "--once", "--now", "2026-12-02T09:05:00Z"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(d.reports("json").len(), 1, "{text}");
}

#[tokio::test]
async fn sigterm_stops_a_drill_which_still_tears_down_and_reports() {
    let d = Drill::new("drill-term", 137, None);
    let mut child = d
        .command(&["drill", "rb"])
        .env("DRCTL_TERMINATE_AFTER_EVENT", "6")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = child.wait().unwrap();
    let mut text = String::new();
    use std::io::Read;
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(text.contains("Drill of rb FAILED"), "{text}");
    let (report, json) = d.report();
    assert!(
        report.failures.iter().any(|f| f.contains("interrupted")),
        "{json:#}"
    );
    assert!(report.teardown.performed && report.teardown.ok, "{json:#}");
    assert!(tagged(&report.environment).await.is_empty());
}

#[tokio::test]
async fn a_drill_left_built_prints_a_destroy_that_works_verbatim() {
    let d = Drill::new("drill-kept", 138, None);
    let runbook = std::fs::read_to_string(d.repo.path("runbooks/rb.toml")).unwrap();
    d.repo.write(
        "runbooks/rb.toml",
        &runbook.replace("teardown = \"always\"", "teardown = \"never\""),
    );
    let (code, text) = d.run(&["drill", "rb"]);
    assert_eq!(code, Some(0), "{text}");
    let (report, json) = d.report();
    assert!(
        !report.teardown.performed && !report.leak_check.performed,
        "{json:#}"
    );
    assert!(!tagged(&report.environment).await.is_empty());
    let printed = text
        .split("Remove it with: ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .unwrap_or_else(|| panic!("no destroy hint in {text}"));
    let elsewhere = tempfile::tempdir().unwrap();
    let (code, text) = crate::support::verbatim(elsewhere.path(), printed);
    assert_eq!(code, Some(0), "{printed}: {text}");
    assert!(tagged(&report.environment).await.is_empty(), "{text}");
}

#[tokio::test]
async fn a_drill_stopped_by_an_api_error_still_tears_down_and_reports_why() {
    use crate::proxy::{Fault, FaultProxy, Faults};
    // The 3rd DescribeLoadBalancers is the discovery before the compute
    // phase (after the drill's first look and the foundation's re-plan),
    // which keeps its order behind a barrier: the network is built by then.
    let proxy = FaultProxy::moto(Faults::none().nth(
        "DescribeLoadBalancers",
        3,
        Fault::Error("AccessDenied".into()),
    ));
    let mut d = Drill::new("drill-error", 139, None);
    d.repo.edit("runbooks/rb.toml", |text| {
        text.replace("gate = \"manual\"", "gate = \"manual\"\nbarrier = true")
    });
    d.endpoint = proxy.url().to_string();
    let out = d.command(&["drill", "rb"]).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let (report, json) = d.report();
    assert!(
        report
            .failures
            .iter()
            .any(|f| f.contains("the rebuild stopped") && f.contains("AccessDenied")),
        "{json:#}"
    );
    assert!(report.teardown.performed && report.teardown.ok, "{json:#}");
    assert!(
        report.leak_check.performed && report.leak_check.leaks.is_empty(),
        "{json:#}"
    );
    assert!(tagged(&report.environment).await.is_empty());
}

/// Whether the ELBv2 resource `arn` carries the environment's tag.
async fn in_env(elbv2: &aws_sdk_elasticloadbalancingv2::Client, arn: &str, env: &str) -> bool {
    let tags = elbv2
        .describe_tags()
        .resource_arns(arn)
        .send()
        .await
        .unwrap();
    tags.tag_descriptions()
        .iter()
        .flat_map(|d| d.tags())
        .any(|t| t.key() == Some("drctl:env") && t.value() == Some(env))
}

/// Every target registered with the environment's target groups.
async fn registered_targets(env: &str) -> usize {
    let config = AwsSettings::sandbox(moto_endpoint(), REGION).load().await;
    let elbv2 = aws_sdk_elasticloadbalancingv2::Client::new(&config);
    let groups = elbv2.describe_target_groups().send().await.unwrap();
    let mut targets = 0;
    for group in groups.target_groups() {
        let arn = group.target_group_arn().unwrap();
        if in_env(&elbv2, arn, env).await {
            let health = elbv2
                .describe_target_health()
                .target_group_arn(arn)
                .send()
                .await
                .unwrap();
            targets += health.target_health_descriptions().len();
        }
    }
    targets
}

#[tokio::test]
async fn a_fleet_launched_but_not_registered_is_registered_by_the_next_run() {
    use crate::proxy::{Fault, FaultProxy, Faults};
    let proxy = FaultProxy::moto(Faults::none().nth(
        "RegisterTargets",
        1,
        Fault::Error("ValidationError".into()),
    ));
    let mut d = Drill::new("fleet-unregistered", 140, None);
    d.endpoint = proxy.url().to_string();
    let (code, text) = d.run(&["apply", "rb", "--auto-approve"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("RegisterTargets"), "{text}");
    assert_eq!(registered_targets("fleet-unregistered").await, 0);

    proxy.set_faults(Faults::none());
    let (code, text) = d.run(&["plan", "rb"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("~ instances.app"),
        "the fleet is to be registered: {text}"
    );
    let (code, text) = d.run(&["apply", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(registered_targets("fleet-unregistered").await, 2);
    let (code, text) = d.run(&["plan", "rb", "--detailed-exitcode"]);
    assert_eq!(code, Some(0), "converged: {text}");
    let (code, text) = d.run(&["destroy", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
}

#[tokio::test]
async fn rejecting_a_paused_interactive_drill_tears_it_down() {
    let d = Drill::new("drill-reject", 141, None);
    let (code, text) = d.run(&["drill", "rb", "--interactive"]);
    assert_eq!(code, Some(3), "paused at the compute gate: {text}");
    let reject = text
        .split("or end it:     ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .unwrap_or_else(|| panic!("no reject hint in {text}"))
        .to_string();
    let run_id = reject.split_whitespace().last().unwrap().to_string();
    let (code, text) = d.run(&["reject", &run_id, "--reason", "not today"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("Drill of rb FAILED"), "{text}");
    assert!(
        !text.contains("destroy rb\n"),
        "never a destroy of the real environment: {text}"
    );
    let (report, json) = d.report();
    assert!(
        report.failures.iter().any(|f| f.contains("rejected")),
        "{json:#}"
    );
    assert!(report.teardown.performed && report.teardown.ok, "{json:#}");
    assert!(tagged(&report.environment).await.is_empty());
}

/// The example fleet's drill against AWS as it behaves (instances pending,
/// the load balancer provisioning, targets `initial` before `healthy`).
#[tokio::test]
async fn a_drill_of_the_example_fleet_passes_on_aws_as_it_behaves() {
    let proxy = FaultProxy::moto_as_aws(AwsTimes::for_tests());
    let mut d = Drill::new("drill-aws", 145, None);
    d.endpoint = proxy.url().to_string();
    let (code, text) = d.run(&["drill", "rb"]);
    assert_eq!(code, Some(0), "{text}");
    let (report, json) = d.report();
    assert_eq!(report.verdict, Verdict::Passed, "{json:#}");
    assert_checks_pass_but_http(&report, &json);
    assert!(
        json["leak_check"]["leaks"]
            .as_array()
            .is_some_and(|l| l.is_empty()),
        "{json:#}"
    );
}
