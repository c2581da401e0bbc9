use serde_json::json;

use super::*;

/// 2026-11-22 04:00:00 UTC.
pub(crate) const T: Millis = 1_795_320_000_000;

/// A failed drill with something in every part, written as its JSON.
pub(crate) fn sample() -> DrillReport {
    let step = |address: &str, start: Millis, ms: Millis, error: Option<&str>| {
        let kind = address.split('.').nth(1);
        json!({"address": address, "action": "create", "kind": kind, "started_at": T + start, "duration_ms": ms, "ok": error.is_none(), "error": error})
    };
    serde_json::from_value(json!({
        "format": 1, "runbook": "fleet-rehearsal", "environment": "fleet-drill-7f3a", "source_environment": "fleet",
        "region": "us-west-2", "run_id": "r-0400", "user": "alice", "host": "ci-7",
        "started_at": T, "ended_at": T + 1_200_000, "verdict": "failed",
        "failures": ["check http failed: status 503", "1 resource still carries the drill's tags"],
        "rto": {"measured_ms": null, "target_ms": 1_800_000, "met": null},
        "critical_path": {"bound_ms": 570_000, "steps": ["net.vpc.main", "app.instances.web"], "rto_ratio": null},
        "phase_order": {"bound_ms": 540_000, "rto_ratio": null, "phases": [
            {"name": "foundation", "bound_ms": 70_000, "steps": ["net.vpc.main"]},
            {"name": "compute", "bound_ms": 470_000, "steps": ["app.instances.web"]}]},
        "forecast": {"rto_ms": 480_000, "error_pct": null,
            "critical_path": [
                {"step": "net.vpc.main", "kind": "vpc", "phase": "foundation", "duration_ms": 5_000, "source": {"from": "prior", "basis": "calls that take effect at once"}},
                {"step": "app.instances.web", "kind": "instances", "phase": "compute", "duration_ms": 475_000, "source": {"from": "median", "drills": 3}}],
            "speedups": [{"step": "app.instances.web", "kind": "instances", "duration_ms": 475_000, "rto_cut_ms": 475_000}]},
        "phases": [
            {"name": "foundation", "started_at": T + 5_000, "ended_at": T + 77_000, "duration_ms": 72_000, "failed": 0,
             "stacks": [{"name": "net", "duration_ms": 70_000}], "steps": [step("net.vpc.main", 6_000, 70_000, None)]},
            {"name": "compute", "started_at": T + 120_000, "ended_at": T + 600_000, "duration_ms": 480_000, "failed": 1,
             "stacks": [{"name": "app", "duration_ms": 470_000}], "steps": [step("app.instances.web", 125_000, 470_000, Some("quota | exceeded"))]}
        ],
        "gates": [{"phase": "compute", "decision": "approve", "by": "bob", "reason": "ok | go", "at": T + 110_000, "waited_ms": 30_000}],
        "checks": [
            {"name": "target_health app.service.web", "kind": "target_health", "status": "passed", "detail": "2 of 2 healthy", "started_at": T + 600_000, "duration_ms": 4_000},
            {"name": "http http://web/health", "kind": "http", "status": "failed", "detail": "status 503 <html> & \"oops\"", "started_at": T + 604_000, "duration_ms": 30_000},
            {"name": "command ./smoke.sh", "kind": "command", "status": "skipped", "detail": "needs a resolvable name", "started_at": T + 634_000, "duration_ms": 0}
        ],
        "images": [{"address": "app.image.app", "image_id": "ami-1", "how": "reused", "bake_ms": null,
                    "bake_started_at": null, "recipe": "3f2a9c1d0b7e4a66", "baked_by": "prod"}],
        "resources_created": [{"address": "net.vpc.main", "id": "vpc-1"}],
        "teardown": {"policy": "always", "started_at": T + 900_000, "performed": true, "note": "teardown = \"always\"", "ok": false,
                     "duration_ms": 240_000, "errors": ["sg-1: DependencyViolation"]},
        "leak_check": {"started_at": T + 1_150_000, "performed": true, "sources": ["tagging:GetResources", "ec2:DescribeTags"],
                       "leaks": [{"resource": "sg-1", "resource_type": "ec2:security-group", "drctl_resource": "security_group.web|x", "found_by": ["ec2:DescribeTags"]}]}
    }))
    .expect("the sample is a report")
}

#[test]
fn markdown_opens_with_the_verdict_and_why_then_rto_and_critical_path() {
    let md = markdown(&sample());
    let head: Vec<&str> = md.lines().take(10).collect();
    assert_eq!(
        head,
        [
            "# Drill of fleet-rehearsal: FAILED",
            "",
            "- check http failed: status 503",
            "- 1 resource still carries the drill's tags",
            "",
            "**RTO** not measured (the checks never all passed); target 30m00s.  ",
            "**Critical path** 9m30s: `net.vpc.main` → `app.instances.web`.  ",
            "**Phase-order bound** 9m00s: foundation 1m10s + compute 7m50s, one phase after another.  ",
            "**Forecast** at the start: 8m00s; no RTO was measured to set it against.",
            "",
        ]
    );
    let mut passed = sample();
    passed.verdict = Verdict::Passed;
    passed.failures.clear();
    passed.rto.measured_ms = Some(724_000);
    passed.rto.met = Some(true);
    passed.critical_path.rto_ratio = Some(1.27);
    passed.phase_order.rto_ratio = Some(1.34);
    passed.forecast.as_mut().unwrap().error_pct = Some(-33.7);
    let md = markdown(&passed);
    assert!(md.starts_with("# Drill of fleet-rehearsal: PASSED\n\n**RTO** 12m04s against a target of 30m00s: met.  \n"), "{md}");
    assert!(md.contains("`app.instances.web`. RTO is 1.27× the bound.  \n"));
    assert!(md.contains("one phase after another. RTO is 1.34× the bound.  \n"));
    assert!(
        md.contains(
            "**Forecast** at the start: 8m00s; the measured RTO 12m04s makes it 33.7% short.\n\n"
        ),
        "{md}"
    );
    assert!(md.contains("| 04:12:04 | +12m04s | recovered: every check passed (RTO 12m04s) |"));
}

#[test]
fn the_timeline_is_in_time_order_in_utc_with_offsets() {
    let md = markdown(&sample());
    let section = md.split("## Timeline\n\n").nth(1).unwrap();
    let rows: Vec<&str> = section.split("\n\n").next().unwrap().lines().collect();
    assert_eq!(
        rows,
        [
            "| time (UTC) | since start | event |",
            "| --- | --- | --- |",
            "| 04:00:00 | +0s | drill started by alice on ci-7 (run r-0400) |",
            "| 04:00:00 | +0s | image app.image.app reused: ami-1 (recipe 3f2a9c1d0b7e4a66, baked by prod) |",
            "| 04:00:05 | +5.0s | phase foundation started |",
            "| 04:01:17 | +1m17s | phase foundation finished in 1m12s |",
            "| 04:01:50 | +1m50s | gate before compute: approved by bob: \"ok \\| go\", after waiting 30s |",
            "| 04:02:00 | +2m00s | phase compute started |",
            "| 04:10:00 | +10m00s | phase compute finished in 8m00s, 1 step(s) failed |",
            "| 04:10:04 | +10m04s | check target_health app.service.web passed |",
            "| 04:10:34 | +10m34s | check http http://web/health failed |",
            "| 04:10:34 | +10m34s | check command ./smoke.sh skipped |",
            "| 04:15:00 | +15m00s | teardown started (policy always) |",
            "| 04:19:00 | +19m00s | teardown finished with 1 error(s) |",
            "| 04:19:10 | +19m10s | leak check: 1 resource(s) left |",
            "| 04:20:00 | +20m00s | drill ended: FAILED |",
        ]
    );
}

#[test]
fn the_details_escape_pipes_and_list_every_leak() {
    let md = markdown(&sample());
    for row in [
        "| phase | started | duration | stacks | steps | failed |",
        "| compute | 04:02:00 (+2m00s) | 8m00s | app 7m50s | 1 | 1 |",
        "| app.instances.web | create | 04:02:05 (+2m05s) | 7m50s | failed: quota \\| exceeded |",
        "| http http://web/health | http | failed | 30s | status 503 &lt;html> & \"oops\" |",
        "| compute | approve | bob | 04:01:50 (+1m50s) | 30s | ok \\| go |",
        "| app.image.app | ami-1 | reused (baked by prod) | 3f2a9c1d0b7e4a66 |  |",
        "| net.vpc.main | vpc-1 |",
        "Policy `always`: performed in 4m00s, with errors. teardown = \"always\"",
        "- sg-1: DependencyViolation",
        "**1 resource(s) still carry the drill's tags** (asked tagging:GetResources, ec2:DescribeTags):",
        "| sg-1 | ec2:security-group | security_group.web\\|x | ec2:DescribeTags |",
    ] {
        assert!(md.lines().any(|l| l == row), "no line {row:?} in\n{md}");
    }
    let mut clean = sample();
    clean.leak_check.leaks.clear();
    clean.images.clear();
    let md = markdown(&clean);
    assert!(md.contains("## Images\n\nNone.\n"), "{md}");
    assert!(md.contains(
        "Nothing carries the drill's tags (asked tagging:GetResources, ec2:DescribeTags)."
    ));
}

#[test]
fn the_forecast_is_set_against_each_steps_measured_time_and_the_bounds_listed() {
    let md = markdown(&sample());
    for row in [
        "## Forecast against measured",
        "| step | kind | phase | forecast | from | measured |",
        "| net.vpc.main | vpc | foundation | 5.0s | prior: calls that take effect at once | 1m10s |",
        "| app.instances.web | instances | compute | 7m55s | median of 3 drills | 7m50s |",
        "Forecast RTO 8m00s; no RTO measured.",
        "| bound | length | RTO ÷ bound | chain |",
        "| dependency graph | 9m30s | — | net.vpc.main → app.instances.web |",
        "| phase order | 9m00s | — |  |",
        "| phase foundation | 1m10s |  | net.vpc.main |",
        "| phase compute | 7m50s |  | app.instances.web |",
    ] {
        assert!(md.lines().any(|l| l == row), "no line {row:?} in\n{md}");
    }
    let mut none = sample();
    none.forecast = None;
    let md = markdown(&none);
    assert!(!md.contains("Forecast"), "{md}");
    assert_eq!(error_words(-12.5), "12.5% short");
    assert_eq!(error_words(3.0), "3% long");
    assert_eq!(error_words(0.0), "exact");
}

#[test]
fn durations_read_as_people_say_them() {
    let shown = [0, 340, 4_250, 42_000, 724_000, 3_723_000, -3_000].map(duration);
    assert_eq!(shown.join(" "), "0s 340ms 4.2s 42s 12m04s 1h02m03s -3.0s");
}
