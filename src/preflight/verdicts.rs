//! Needs + observations → checks (pure). A question AWS did not answer (an
//! error) is unknown, never a pass.

use std::collections::{BTreeMap, BTreeSet};

use super::needs::{ImageNeed, Needs};
use super::observe::Observations;
use super::{Check, CheckName, Finding, Verdict};
use crate::cloud::ec2::DryRunAnswer;

/// Every check of a plan's `needs` against what `seen` of its region.
pub fn checks(needs: &Needs, seen: &Observations, region: &str) -> Vec<Check> {
    vec![
        plan(needs),
        images(needs, seen, region),
        capacity(needs, seen, region),
        quotas(needs, seen),
        permissions(needs, seen),
    ]
}

/// When no plan could be made: the plan check fails with `why`, and the
/// others cannot tell.
pub fn without_plan(why: &str) -> Vec<Check> {
    CheckName::ALL
        .iter()
        .map(|&name| match name {
            CheckName::Plan => Check::of(name, vec![Finding::new(Verdict::Fail, "plan", why)], ""),
            _ => Check::of(
                name,
                vec![Finding::new(
                    Verdict::Unknown,
                    name.word(),
                    "not checked: there is no plan to check against",
                )],
                "",
            ),
        })
        .collect()
}

fn plan(needs: &Needs) -> Check {
    let shape = &needs.shape;
    let mut findings: Vec<Finding> = shape
        .problems
        .iter()
        .map(|p| Finding::new(Verdict::Fail, "plan", p.clone()))
        .collect();
    if findings.is_empty() {
        findings.push(Finding::new(
            Verdict::Pass,
            "plan",
            format!(
                "{} step(s) in {} phase(s): {}; no unresolved reference, no cycle",
                shape.steps, shape.phases, shape.summary
            ),
        ));
    }
    Check::of(CheckName::Plan, findings, "")
}

fn images(needs: &Needs, seen: &Observations, region: &str) -> Check {
    // One finding per image id, naming every use of it.
    let mut by_id: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut findings = Vec::new();
    for need in &needs.images {
        match need {
            ImageNeed::Id { id, role } => by_id.entry(id).or_default().push(role),
            ImageNeed::NoMatch { address, filter } => findings.push(Finding::new(
                Verdict::Fail,
                address.to_string(),
                format!(
                    "no image matches its base image ({filter}) in {region}: a bake cannot start"
                ),
            )),
            ImageNeed::FromRun { address, from } => findings.push(Finding::new(
                Verdict::Pass,
                address.to_string(),
                format!("launches what {from} makes in this run (checked as {from})"),
            )),
        }
    }
    for (id, roles) in by_id {
        let roles = roles.join("; ");
        let finding = match &seen.images {
            Err(e) => Finding::new(Verdict::Unknown, id, format!("{roles}: cannot tell: {e}")),
            Ok(states) => match states.get(id).map(String::as_str) {
                Some("available") => {
                    Finding::new(Verdict::Pass, id, format!("{roles}: available in {region}"))
                }
                Some(state) => Finding::new(
                    Verdict::Fail,
                    id,
                    format!("{roles}: {state} in {region}, not available"),
                ),
                None => Finding::new(
                    Verdict::Fail,
                    id,
                    format!("{roles}: not found in {region} (or not launchable by this account)"),
                ),
            },
        };
        findings.push(finding);
    }
    Check::of(CheckName::Images, findings, "the plan launches no image")
}

fn capacity(needs: &Needs, seen: &Observations, region: &str) -> Check {
    let mut findings = Vec::new();
    let zones: Option<BTreeSet<&str>> = seen
        .zones
        .as_ref()
        .ok()
        .map(|z| z.iter().map(String::as_str).collect());
    for zone in &needs.zones {
        findings.push(match (&zones, &seen.zones) {
            (Some(known), _) if known.contains(zone.as_str()) => {
                Finding::new(Verdict::Pass, zone, format!("a zone of {region}"))
            }
            (Some(known), _) => Finding::new(
                Verdict::Fail,
                zone,
                format!(
                    "no such zone in {region} (its zones: {})",
                    known.iter().copied().collect::<Vec<_>>().join(", ")
                ),
            ),
            (None, Err(e)) => Finding::new(Verdict::Unknown, zone, format!("cannot tell: {e}")),
            (None, Ok(_)) => unreachable!("zones read"),
        });
    }
    let mut placed: BTreeMap<(String, Option<String>), Vec<String>> = BTreeMap::new();
    for p in &needs.placements {
        placed
            .entry((p.instance_type.clone(), p.zone.clone()))
            .or_default()
            .push(p.address.to_string());
    }
    for ((instance_type, zone), users) in placed {
        let mut users = users;
        users.dedup();
        let by = users.join(", ");
        let Some(zone) = zone else {
            findings.push(Finding::new(
                Verdict::Unknown,
                &instance_type,
                format!("for {by}: a subnet's zone is unknown (neither planned nor found)"),
            ));
            continue;
        };
        let subject = format!("{instance_type} in {zone}");
        findings.push(match &seen.offerings {
            Err(e) => Finding::new(
                Verdict::Unknown,
                subject,
                format!("for {by}: cannot tell: {e}"),
            ),
            Ok(offered) if offered.contains(&(instance_type.clone(), zone.clone())) => {
                Finding::new(Verdict::Pass, subject, format!("offered, for {by}"))
            }
            Ok(_) => Finding::new(
                Verdict::Fail,
                subject,
                format!("{instance_type} is not offered in {zone}, where {by} launches it"),
            ),
        });
    }
    for address in &needs.unplaced {
        findings.push(Finding::new(
            Verdict::Unknown,
            address.to_string(),
            "its instance type is known only when the run gets there: not checked",
        ));
    }
    Check::of(
        CheckName::Capacity,
        findings,
        "the plan launches no instance",
    )
}

fn quotas(needs: &Needs, seen: &Observations) -> Check {
    let adds = needs.adds;
    let mut findings = Vec::new();
    if adds.instances > 0 {
        let live = match &seen.live_instances {
            Ok(n) => format!("{n} live in the region"),
            Err(e) => format!("live ones unknown: {e}"),
        };
        let attribute = match &seen.max_instances {
            Ok(Some(max)) => {
                format!("; EC2's max-instances attribute says {max}, but EC2 no longer keeps it")
            }
            _ => String::new(),
        };
        // On-Demand limits are in vCPUs per instance family, kept only in
        // Service Quotas; drctl does not call it (build cost of its SDK).
        findings.push(Finding::new(
            Verdict::Unknown,
            "instances",
            format!(
                "needs {} new, {live}{attribute}: the limit is in vCPUs, in Service Quotas (L-1216C47A), which drctl does not read",
                adds.instances
            ),
        ));
    }
    let elb = [
        (
            "load balancers",
            adds.load_balancers,
            "application-load-balancers",
            &seen.load_balancers,
        ),
        (
            "target groups",
            adds.target_groups,
            "target-groups",
            &seen.target_groups,
        ),
    ];
    for (what, needed, limit, used) in elb {
        if needed == 0 {
            continue;
        }
        let finding = match (&seen.elb_limits, used) {
            (Err(e), _) | (_, Err(e)) => Finding::new(
                Verdict::Unknown,
                what,
                format!("needs {needed}: cannot tell: {e}"),
            ),
            (Ok(limits), Ok(used)) => match limits.get(limit) {
                None => Finding::new(
                    Verdict::Unknown,
                    what,
                    format!("needs {needed}: ELBv2 reports no `{limit}` limit"),
                ),
                Some(&max) if *used as u64 + needed <= max => Finding::new(
                    Verdict::Pass,
                    what,
                    format!("needs {needed}, {used} in use, limit {max} ({limit})"),
                ),
                Some(&max) => Finding::new(
                    Verdict::Fail,
                    what,
                    format!(
                        "needs {needed}, {used} in use, limit {max} ({limit}): over by {}",
                        *used as u64 + needed - max
                    ),
                ),
            },
        };
        findings.push(finding);
    }
    Check::of(
        CheckName::Quotas,
        findings,
        "the plan adds no instance, load balancer or target group",
    )
}

fn permissions(needs: &Needs, seen: &Observations) -> Check {
    let mut findings = Vec::new();
    for ((service, action), need) in &needs.calls {
        let subject = format!("{}:{action}", service.prefix());
        let by = need
            .by
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let mut verdicts = Vec::new();
        for call in &need.dry_runs {
            verdicts.push(match seen.dry_runs.get(call) {
                Some(Ok(DryRunAnswer::Allowed)) => {
                    (Verdict::Pass, "allowed (DryRunOperation)".to_string())
                }
                Some(Ok(DryRunAnswer::Denied(message))) => (
                    Verdict::Fail,
                    format!("denied (UnauthorizedOperation): {message}"),
                ),
                Some(Ok(DryRunAnswer::Refused { code, message })) => (
                    Verdict::Unknown,
                    format!("the dry run stopped before the permission check: {code}: {message}"),
                ),
                Some(Ok(DryRunAnswer::TookEffect)) => (
                    Verdict::Fail,
                    "the endpoint carried the dry run out: it ignores DryRun for this call"
                        .to_string(),
                ),
                Some(Err(e)) => (Verdict::Unknown, format!("cannot tell: {e}")),
                None => (Verdict::Unknown, "not tried".to_string()),
            });
        }
        for why in &need.untried {
            verdicts.push((Verdict::Unknown, why.clone()));
        }
        let verdict = verdicts
            .iter()
            .map(|(v, _)| *v)
            .max()
            .unwrap_or(Verdict::Unknown);
        let mut said: Vec<String> = verdicts
            .into_iter()
            .filter(|(v, _)| *v == verdict)
            .map(|(_, why)| why)
            .collect();
        said.dedup();
        let prefix = format!("for {by}: ");
        findings.push(Finding::new(verdict, subject, prefix + &said.join("; ")));
    }
    Check::of(
        CheckName::Permissions,
        findings,
        "the plan makes no mutating call",
    )
}

#[cfg(test)]
#[path = "verdicts_tests.rs"]
mod tests;
