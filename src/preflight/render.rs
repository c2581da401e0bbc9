//! A preflight report as a terminal table and as JUnit XML (one testcase
//! per finding; an unknown is `skipped` with its reason, never a success).

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::{PreflightReport, Verdict};

/// The table: one block per check (verdict, summary), one line per finding,
/// then the verdict with every unknown listed.
pub fn table(report: &PreflightReport, strict: bool) -> String {
    let mut out = format!(
        "Preflight of {} ({}) in {}, {}\n\n",
        report.runbook, report.environment, report.region, report.at
    );
    out.push_str(&format!(
        "{:<12} {:<8} {}\n",
        "CHECK", "VERDICT", "EVIDENCE"
    ));
    for check in &report.checks {
        out.push_str(&format!(
            "{:<12} {:<8} {}\n",
            check.name.word(),
            check.verdict.word(),
            check.summary
        ));
        for f in &check.findings {
            out.push_str(&format!(
                "  {:<7} {}: {}\n",
                f.verdict.word(),
                f.subject,
                f.evidence
            ));
        }
    }
    let failed: Vec<_> = report.findings(Verdict::Fail).collect();
    let unknown: Vec<_> = report.findings(Verdict::Unknown).collect();
    out.push('\n');
    if !unknown.is_empty() {
        out.push_str(&format!(
            "UNKNOWN ({}): not proved either way, so not passed (reasons above){}:\n",
            unknown.len(),
            if strict {
                " (--strict: they fail the preflight)"
            } else {
                ""
            }
        ));
        // The reasons are in the table above; here, what to look at.
        for (check, f) in &unknown {
            out.push_str(&format!("  {} {}\n", check.word(), f.subject));
        }
    }
    match (failed.len(), report.failed(strict)) {
        (0, false) if unknown.is_empty() => out.push_str("Preflight passed: every check passed.\n"),
        (0, false) => out.push_str(&format!(
            "Preflight passed: nothing failed; {} unknown (listed above).\n",
            unknown.len()
        )),
        (0, true) => out.push_str(&format!(
            "Preflight FAILED: {} unknown with --strict.\n",
            unknown.len()
        )),
        (n, _) => {
            out.push_str(&format!("Preflight FAILED: {n} finding(s) failed:\n"));
            for (check, f) in failed {
                out.push_str(&format!(
                    "  {} {}: {}\n",
                    check.word(),
                    f.subject,
                    f.evidence
                ));
            }
        }
    }
    out
}

/// JUnit XML: a testsuite per check, a testcase per finding.
pub fn junit(report: &PreflightReport) -> String {
    let runbook = &report.runbook;
    let mut junit = Report::new(format!("drctl preflight {runbook}"));
    for check in &report.checks {
        let mut suite = TestSuite::new(format!("preflight {runbook} {}", check.name.word()));
        suite.add_properties([
            ("runbook", runbook.as_str()),
            ("environment", &report.environment),
            ("region", &report.region),
            ("at", &report.at),
        ]);
        for f in &check.findings {
            let status = match f.verdict {
                Verdict::Pass => TestCaseStatus::success(),
                Verdict::Fail => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_message(f.evidence.clone());
                    s
                }
                Verdict::Unknown => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(format!("unknown: {}", f.evidence));
                    s
                }
            };
            let mut case = TestCase::new(f.subject.clone(), status);
            case.set_classname(format!("preflight.{runbook}.{}", check.name.word()));
            if f.verdict == Verdict::Pass {
                case.set_system_out(f.evidence.clone());
            }
            suite.add_test_case(case);
        }
        junit.add_test_suite(suite);
    }
    junit
        .to_string()
        .expect("serialising to memory does not fail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preflight::{Check, CheckName, Finding};

    fn report() -> PreflightReport {
        PreflightReport::new(
            "p-1",
            "rb",
            "web-dr",
            "us-west-2",
            "2026-12-07T10:00:00Z".into(),
            vec![
                Check::of(
                    CheckName::Images,
                    vec![Finding::new(
                        Verdict::Fail,
                        "ami-1",
                        "not found in us-west-2",
                    )],
                    "",
                ),
                Check::of(
                    CheckName::Quotas,
                    vec![Finding::new(
                        Verdict::Unknown,
                        "instances",
                        "in Service Quotas",
                    )],
                    "",
                ),
            ],
        )
    }

    #[test]
    fn the_table_names_what_failed_and_lists_every_unknown() {
        let text = table(&report(), false);
        assert!(text.contains("images       fail     1 fail"), "{text}");
        assert!(text.contains("UNKNOWN (1)"), "{text}");
        assert!(
            text.contains("  unknown instances: in Service Quotas\n"),
            "{text}"
        );
        assert!(
            text.contains("so not passed (reasons above):\n  quotas instances\n"),
            "{text}"
        );
        assert!(
            text.contains("Preflight FAILED: 1 finding(s) failed:\n  images ami-1: not found"),
            "{text}"
        );
    }

    #[test]
    fn junit_fails_a_failure_and_skips_an_unknown() {
        let xml = junit(&report());
        assert!(
            xml.contains("<failure message=\"not found in us-west-2\""),
            "{xml}"
        );
        assert!(
            xml.contains("<skipped message=\"unknown: in Service Quotas\""),
            "{xml}"
        );
    }
}
