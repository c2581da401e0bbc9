//! The drill report as JUnit XML, so a CI dashboard shows each phase, each
//! check, the leak check, the teardown and the RTO target as a test of its
//! own.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::render::{duration, leak_line, verdict_word};
use super::report::{CheckStatus, DrillReport};
use crate::clock::Millis;
use crate::journal::format_millis;

/// The report as JUnit XML: one testsuite for the drill, a testcase for each
/// phase, each check and the leak check.
pub fn junit(report: &DrillReport) -> String {
    let runbook = &report.runbook;
    let case = |name: &str, what: &str, ms: Millis, status: TestCaseStatus| {
        let mut case = TestCase::new(name, status);
        case.set_classname(format!("drill.{runbook}.{what}"));
        case.set_time(seconds(ms));
        case
    };
    let mut cases = Vec::new();
    for phase in &report.phases {
        let failed_steps = phase.steps.iter().filter(|s| !s.ok);
        let listed: Vec<String> = failed_steps
            .map(|s| format!("{}: {}", s.address, s.error.as_deref().unwrap_or("failed")))
            .collect();
        let status = match phase.failed {
            0 => TestCaseStatus::success(),
            n => failure(format!("{n} step(s) failed"), &listed),
        };
        cases.push(case(&phase.name, "phase", phase.duration_ms, status));
    }
    for check in &report.checks {
        let status = match check.status {
            CheckStatus::Passed => TestCaseStatus::success(),
            CheckStatus::Failed => failure(check.detail.clone(), &[]),
            CheckStatus::Skipped => skipped(&check.detail),
        };
        cases.push(case(&check.name, "check", check.duration_ms, status));
    }
    let leaks = &report.leak_check.leaks;
    let status = match (report.leak_check.performed, leaks.len()) {
        (false, _) => skipped(&format!("not performed: {}", report.teardown.note)),
        (true, 0) => TestCaseStatus::success(),
        (true, n) => {
            let listed: Vec<String> = leaks.iter().map(leak_line).collect();
            let message = format!("{n} resource(s) still carry the drill's tags");
            failure(message, &listed)
        }
    };
    cases.push(case("leak check", "leak_check", 0, status));
    // A drill that passed every check but missed its RTO, or left its
    // teardown half done, must not look green on a CI dashboard.
    let teardown = &report.teardown;
    let status = match (teardown.performed, teardown.ok) {
        (false, _) => skipped(&teardown.note),
        (true, true) => TestCaseStatus::success(),
        (true, false) => failure("teardown failed".into(), &teardown.errors),
    };
    cases.push(case("teardown", "teardown", teardown.duration_ms, status));
    let rto = &report.rto;
    let status = match (rto.measured_ms, rto.target_ms, rto.met) {
        (None, _, _) => failure("RTO not measured: the checks did not all pass".into(), &[]),
        (Some(_), None, _) => skipped("no rto_target in the runbook"),
        (Some(m), Some(t), Some(false)) => failure(
            format!("RTO {} missed its target {}", duration(m), duration(t)),
            &[],
        ),
        (Some(_), Some(_), _) => TestCaseStatus::success(),
    };
    cases.push(case("rto", "rto", rto.measured_ms.unwrap_or(0), status));

    let mut suite = TestSuite::new(format!("drill {runbook}"));
    suite.set_time(seconds(report.ended_at - report.started_at));
    suite.add_properties([
        ("runbook", runbook.as_str()),
        ("environment", &report.environment),
        ("region", &report.region),
        ("run_id", &report.run_id),
        ("started_at", &format_millis(report.started_at)),
        ("verdict", verdict_word(report.verdict)),
    ]);
    // The bounds and the forecast, in seconds, as dashboards plot them.
    let secs = |ms: Millis| format!("{:.3}", ms as f64 / 1000.0);
    let (dependency, phase_order) = (
        secs(report.critical_path.bound_ms),
        secs(report.phase_order.bound_ms),
    );
    suite.add_properties([
        ("critical_path_bound", dependency.as_str()),
        ("phase_order_bound", phase_order.as_str()),
    ]);
    if let Some(forecast) = &report.forecast {
        suite.add_property(("forecast_rto", secs(forecast.made.rto_ms).as_str()));
        if let Some(error) = forecast.error_pct {
            suite.add_property(("forecast_error_pct", error.to_string().as_str()));
        }
    }
    suite.add_test_cases(cases);
    let mut junit = Report::new(format!("drctl drill {runbook}"));
    junit.add_test_suite(suite);
    junit
        .to_string()
        .expect("serialising to memory does not fail")
}

/// A failure with its message, and the listed lines as its text.
fn failure(message: String, listed: &[String]) -> TestCaseStatus {
    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
    status.set_message(message);
    if !listed.is_empty() {
        status.set_description(listed.join("\n"));
    }
    status
}

fn skipped(message: &str) -> TestCaseStatus {
    let mut status = TestCaseStatus::skipped();
    status.set_message(message);
    status
}

fn seconds(ms: Millis) -> Duration {
    Duration::from_millis(ms.max(0).unsigned_abs())
}

#[cfg(test)]
mod tests {
    use quick_xml::events::{BytesStart, Event};

    use super::*;
    use crate::drill::render::tests::sample;

    /// The value of attribute `name`, unescaped.
    fn attr(tag: &BytesStart<'_>, name: &str) -> String {
        let attr = tag.try_get_attribute(name).unwrap().expect("the attribute");
        let value = attr.normalized_value(quick_xml::XmlVersion::Implicit1_0);
        value.unwrap().into_owned()
    }

    /// The suites and the cases of JUnit XML as read back, one line each:
    /// `name | failures | skipped` and `name | classname | time[ | failure: message]`.
    fn read_junit(xml: &str) -> (Vec<String>, Vec<String>) {
        let mut reader = quick_xml::Reader::from_str(xml);
        let (mut suites, mut cases) = (Vec::new(), Vec::<String>::new());
        loop {
            let (tag, name) = match reader.read_event().expect("well-formed XML") {
                Event::Start(tag) | Event::Empty(tag) => {
                    let name = String::from_utf8(tag.name().as_ref().to_vec()).unwrap();
                    (tag, name)
                }
                Event::Eof => return (suites, cases),
                _ => continue,
            };
            let attrs = |names: [&str; 3]| names.map(|n| attr(&tag, n)).join(" | ");
            match name.as_str() {
                "testsuite" => suites.push(attrs(["name", "failures", "skipped"])),
                "testcase" => cases.push(attrs(["name", "classname", "time"])),
                "failure" | "skipped" => {
                    let message = attr(&tag, "message");
                    cases
                        .last_mut()
                        .unwrap()
                        .push_str(&format!(" | {name}: {message}"));
                }
                _ => {}
            }
        }
    }

    #[test]
    fn junit_has_a_suite_per_drill_and_a_case_per_phase_check_leak_check_teardown_and_rto() {
        let (suites, cases) = read_junit(&junit(&sample()));
        assert_eq!(suites, ["drill fleet-rehearsal | 5 | 1"]);
        assert_eq!(
            cases,
            [
                "foundation | drill.fleet-rehearsal.phase | 72.000",
                "compute | drill.fleet-rehearsal.phase | 480.000 | failure: 1 step(s) failed",
                "target_health app.service.web | drill.fleet-rehearsal.check | 4.000",
                // The detail's `<&"` come back as they were written.
                "http http://web/health | drill.fleet-rehearsal.check | 30.000 | failure: status 503 <html> & \"oops\"",
                "command ./smoke.sh | drill.fleet-rehearsal.check | 0.000 | skipped: needs a resolvable name",
                "leak check | drill.fleet-rehearsal.leak_check | 0.000 | failure: 1 resource(s) still carry the drill's tags",
                "teardown | drill.fleet-rehearsal.teardown | 240.000 | failure: teardown failed",
                "rto | drill.fleet-rehearsal.rto | 0.000 | failure: RTO not measured: the checks did not all pass",
            ]
        );
        let leak = "sg-1 (ec2:security-group, drctl:resource security_group.web|x), found by ec2:DescribeTags";
        assert!(junit(&sample()).contains(&format!(">{leak}</failure>")));
        let mut forecast = sample();
        forecast.forecast.as_mut().unwrap().error_pct = Some(-12.5);
        let xml = junit(&forecast);
        for property in [
            r#"<property name="critical_path_bound" value="570.000"/>"#,
            r#"<property name="phase_order_bound" value="540.000"/>"#,
            r#"<property name="forecast_rto" value="480.000"/>"#,
            r#"<property name="forecast_error_pct" value="-12.5"/>"#,
        ] {
            assert!(xml.contains(property), "no {property} in {xml}");
        }
        let mut clean = sample();
        clean.leak_check.leaks.clear();
        clean.phases.truncate(1);
        clean.checks.truncate(1);
        clean.teardown.ok = true;
        clean.teardown.errors.clear();
        clean.rto.measured_ms = Some(900_000);
        clean.rto.met = Some(true);
        let (suites, cases) = read_junit(&junit(&clean));
        assert_eq!(suites, ["drill fleet-rehearsal | 0 | 0"]);
        assert!(
            cases.iter().all(|c| c.matches(" | ").count() == 2),
            "{cases:?}"
        );
    }
}
