//! A colour's health as ELBv2 reports it: the wait for a new colour, the
//! check just before traffic moves, and the verdict on one
//! DescribeTargetHealth, for every state and reason AWS documents.

use std::time::Duration;

use crate::cloud::aws::AwsProvider;
use crate::cloud::elbv2::{Elbv2, TargetHealth};
use crate::cloud::wait::{self, Probe};
use crate::cloud::CloudError;

/// Until every one of `ids` is a healthy target of the group, or `deadline`.
/// A target AWS reports as not running (stopped, terminated) ends the wait
/// at once: it will not become healthy.
pub(super) async fn wait_healthy(
    aws: &AwsProvider,
    what: &str,
    arn: &str,
    ids: &[String],
    deadline: Duration,
) -> Result<(), CloudError> {
    wait::until(
        &format!("{what}: every target healthy"),
        deadline,
        aws.waits.backoff,
        || async {
            let health = aws.elbv2.target_health(arn).await?;
            match verdict(&health, ids) {
                Verdict::Healthy => Ok(Probe::Done(())),
                Verdict::Waiting(state) => Ok(Probe::Waiting(state)),
                Verdict::Never(reason) => Err(CloudError::Failed {
                    what: what.to_string(),
                    state: "unhealthy".into(),
                    reason,
                }),
            }
        },
    )
    .await
}

/// What one DescribeTargetHealth says of a colour's targets.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Healthy,
    /// Not yet: checks under way, failing checks that may pass, or
    /// registration still propagating.
    Waiting(String),
    /// Never will: the wait ends at once.
    Never(String),
}

/// Every state and reason AWS documents for TargetHealth: `healthy` is
/// done; `initial`, `unhealthy` (checks fail now but may pass) and
/// `unused` for a group not yet in use or a registration in flight are
/// waited on until the deadline; a stopped or terminated instance, a
/// target being deregistered, an unusable IP or disabled health checks
/// can never become healthy, so they end the wait at once.
fn verdict(health: &[TargetHealth], ids: &[String]) -> Verdict {
    if ids.is_empty() {
        return Verdict::Never("no targets (count is 0): nothing to be healthy".into());
    }
    let mut not_yet = Vec::new();
    for id in ids {
        let Some(t) = health.iter().find(|t| &t.id == id) else {
            not_yet.push(format!("{id} not registered"));
            continue;
        };
        let reason = t.reason.as_deref().unwrap_or("");
        let never = match (t.state.as_str(), reason) {
            ("healthy", _) => continue,
            (_, "Target.InvalidState") => Some("is not running (stopped or terminated)"),
            (_, "Target.IpUnusable") => Some("has an IP address the load balancer cannot use"),
            ("draining", _) | (_, "Target.DeregistrationInProgress") => {
                Some("is being deregistered")
            }
            ("unavailable", _) | (_, "Target.HealthCheckDisabled") => {
                Some("is not health-checked (health checks are disabled on its group)")
            }
            _ => None,
        };
        if let Some(why) = never {
            return Verdict::Never(format!("{id} {why}: {}{}", t.state, describe(reason)));
        }
        not_yet.push(format!("{id} {}{}", t.state, describe(reason)));
    }
    if not_yet.is_empty() {
        Verdict::Healthy
    } else {
        Verdict::Waiting(format!(
            "{} of {} healthy; {}",
            ids.len() - not_yet.len(),
            ids.len(),
            not_yet.join("; ")
        ))
    }
}

/// ` (Reason)`, or nothing.
fn describe(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(" ({reason})")
    }
}

/// Every target healthy right now (one DescribeTargetHealth), or why not.
pub(super) async fn healthy_now(
    aws: &AwsProvider,
    arn: &str,
    ids: &[String],
) -> Result<(), String> {
    let health = aws
        .elbv2
        .target_health(arn)
        .await
        .map_err(|e| e.to_string())?;
    match verdict(&health, ids) {
        Verdict::Healthy => Ok(()),
        Verdict::Waiting(why) | Verdict::Never(why) => Err(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(id: &str, state: &str, reason: Option<&str>) -> TargetHealth {
        TargetHealth {
            id: id.into(),
            port: Some(80),
            state: state.into(),
            reason: reason.map(str::to_string),
            description: None,
        }
    }

    fn of(state: &str, reason: Option<&str>) -> Verdict {
        verdict(&[target("i-1", state, reason)], &["i-1".to_string()])
    }

    fn waits(v: &Verdict) -> bool {
        matches!(v, Verdict::Waiting(_))
    }

    fn never(v: &Verdict) -> bool {
        matches!(v, Verdict::Never(_))
    }

    #[test]
    fn healthy_targets_are_done() {
        assert_eq!(of("healthy", None), Verdict::Healthy);
        let both = [
            target("i-1", "healthy", None),
            target("i-2", "healthy", None),
        ];
        assert_eq!(
            verdict(&both, &["i-1".into(), "i-2".into()]),
            Verdict::Healthy
        );
    }

    #[test]
    fn checks_under_way_or_failing_for_now_are_waited_on() {
        for (state, reason) in [
            ("initial", Some("Elb.RegistrationInProgress")),
            ("initial", Some("Elb.InitialHealthChecking")),
            ("unhealthy", Some("Target.ResponseCodeMismatch")),
            ("unhealthy", Some("Target.Timeout")),
            ("unhealthy", Some("Target.FailedHealthChecks")),
            ("unhealthy", Some("Elb.InternalError")),
            // Registration still propagating, or the group not yet in use
            // (drctl puts it in use before waiting; AWS may lag a moment).
            ("unused", Some("Target.NotRegistered")),
            ("unused", Some("Target.NotInUse")),
            ("unknown-state", None),
            ("", None),
        ] {
            let v = of(state, reason);
            assert!(waits(&v), "{state} {reason:?}: {v:?}");
        }
        let Verdict::Waiting(why) = of("unused", Some("Target.NotInUse")) else {
            unreachable!()
        };
        assert_eq!(why, "0 of 1 healthy; i-1 unused (Target.NotInUse)");
    }

    #[test]
    fn targets_that_can_never_become_healthy_end_the_wait() {
        for (state, reason) in [
            ("unused", Some("Target.InvalidState")),
            ("unhealthy", Some("Target.InvalidState")),
            ("unused", Some("Target.IpUnusable")),
            ("draining", Some("Target.DeregistrationInProgress")),
            ("draining", None),
            ("unavailable", Some("Target.HealthCheckDisabled")),
        ] {
            let v = of(state, reason);
            assert!(never(&v), "{state} {reason:?}: {v:?}");
        }
        let Verdict::Never(why) = of("unused", Some("Target.InvalidState")) else {
            unreachable!()
        };
        assert_eq!(
            why,
            "i-1 is not running (stopped or terminated): unused (Target.InvalidState)"
        );
    }

    #[test]
    fn a_missing_target_is_waited_on_and_no_targets_is_never_healthy() {
        let v = verdict(
            &[target("i-1", "healthy", None)],
            &["i-1".into(), "i-2".into()],
        );
        assert_eq!(
            v,
            Verdict::Waiting("1 of 2 healthy; i-2 not registered".into())
        );
        assert!(never(&verdict(&[], &[])));
    }

    #[test]
    fn one_target_that_never_will_fails_the_colour_whatever_the_others_say() {
        let health = [
            target("i-1", "initial", Some("Elb.InitialHealthChecking")),
            target("i-2", "unused", Some("Target.InvalidState")),
        ];
        assert!(never(&verdict(&health, &["i-1".into(), "i-2".into()])));
    }
}
