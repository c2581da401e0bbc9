//! Verdicts from hand-made needs and observations: what AWS did not answer
//! is unknown, a limit exceeded fails, a dry run carried out fails.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::cloud::ec2::DryRun;
use crate::model::ResourceKind;
use crate::preflight::calls::Service;
use crate::preflight::needs::{Adds, CallNeed, ImageNeed, Needs};
use crate::world::Address;

fn seen() -> Observations {
    Observations {
        zones: Ok(vec!["r-1a".into()]),
        offerings: Ok(BTreeSet::new()),
        images: Ok(BTreeMap::new()),
        max_instances: Ok(None),
        live_instances: Ok(0),
        elb_limits: Ok(BTreeMap::from([
            ("application-load-balancers".to_string(), 2),
            ("target-groups".to_string(), 100),
        ])),
        load_balancers: Ok(2),
        target_groups: Ok(10),
        dry_runs: BTreeMap::new(),
    }
}

fn check(checks: &[Check], name: CheckName) -> &Check {
    checks.iter().find(|c| c.name == name).unwrap()
}

#[test]
fn an_unanswered_question_is_unknown_never_a_pass() {
    let needs = Needs {
        images: vec![ImageNeed::Id {
            id: "ami-1".into(),
            role: "image of s.instances.f".into(),
        }],
        ..Needs::default()
    };
    let mut seen = seen();
    seen.images = Err("EC2 DescribeImages failed: no answer".into());
    let checks = checks(&needs, &seen, "r-1");
    let images = check(&checks, CheckName::Images);
    assert_eq!(images.verdict, Verdict::Unknown);
    assert!(images.findings[0]
        .evidence
        .contains("cannot tell: EC2 DescribeImages failed"));
    // A launch whose type is not known yet is not checked, and says so.
    let needs = Needs {
        unplaced: vec![Address::new("s", ResourceKind::Instances, "f")],
        ..Needs::default()
    };
    let capacity = checks_of(&needs, CheckName::Capacity);
    assert_eq!(capacity.verdict, Verdict::Unknown);
}

fn checks_of(needs: &Needs, name: CheckName) -> Check {
    check(&checks(needs, &seen(), "r-1"), name).clone()
}

#[test]
fn a_limit_the_plan_would_exceed_fails_and_names_it() {
    let needs = Needs {
        adds: Adds {
            instances: 0,
            load_balancers: 1,
            target_groups: 2,
        },
        ..Needs::default()
    };
    let quotas = checks_of(&needs, CheckName::Quotas);
    assert_eq!(quotas.verdict, Verdict::Fail);
    let lbs = &quotas.findings[0];
    assert_eq!(
        (lbs.subject.as_str(), lbs.verdict),
        ("load balancers", Verdict::Fail)
    );
    assert_eq!(
        lbs.evidence,
        "needs 1, 2 in use, limit 2 (application-load-balancers): over by 1"
    );
    assert_eq!(quotas.findings[1].verdict, Verdict::Pass);
}

#[test]
fn a_dry_run_carried_out_fails_and_a_refused_one_is_unknown() {
    let call = DryRun::CreateInternetGateway;
    let needs = Needs {
        calls: BTreeMap::from([(
            (Service::Ec2, "CreateInternetGateway"),
            CallNeed {
                by: BTreeSet::from([Address::new("n", ResourceKind::InternetGateway, "gw")]),
                dry_runs: BTreeSet::from([call.clone()]),
                untried: BTreeSet::new(),
            },
        )]),
        ..Needs::default()
    };
    let mut seen = seen();
    seen.dry_runs
        .insert(call.clone(), Ok(DryRunAnswer::TookEffect));
    let checks = checks(&needs, &seen, "r-1");
    let permissions = check(&checks, CheckName::Permissions);
    assert_eq!(permissions.verdict, Verdict::Fail);
    assert!(permissions.findings[0]
        .evidence
        .contains("carried the dry run out"));
    seen.dry_runs.insert(
        call,
        Ok(DryRunAnswer::Refused {
            code: "InvalidParameterValue".into(),
            message: "bad".into(),
        }),
    );
    let checks = super::checks(&needs, &seen, "r-1");
    let permissions = check(&checks, CheckName::Permissions);
    assert_eq!(permissions.verdict, Verdict::Unknown);
    assert!(permissions.findings[0]
        .evidence
        .contains("stopped before the permission check: InvalidParameterValue"));
}
