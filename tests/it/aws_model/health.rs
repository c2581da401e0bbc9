//! What AWS says of one registered target that moto calls `healthy`: the
//! pure rule, apart from the calls that gather its facts.

use std::time::{Duration, Instant};

use super::xml::Element;
use super::TargetOverride;

/// A target's health as DescribeTargetHealth gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shown {
    pub state: &'static str,
    pub reason: Option<&'static str>,
}

impl Shown {
    const fn new(state: &'static str, reason: Option<&'static str>) -> Shown {
        Shown { state, reason }
    }

    pub const HEALTHY: Shown = Shown::new("healthy", None);
    pub const NOT_IN_USE: Shown = Shown::new("unused", Some("Target.NotInUse"));
    pub const REGISTERING: Shown = Shown::new("initial", Some("Elb.RegistrationInProgress"));
    pub const CHECKING: Shown = Shown::new("initial", Some("Elb.InitialHealthChecking"));
    pub const DRAINING: Shown = Shown::new("draining", Some("Target.DeregistrationInProgress"));

    /// `<TargetHealth>` as ELBv2 writes it.
    pub fn to_element(self) -> Element {
        let mut health = Element::new("TargetHealth");
        health.push(Element::with_text("State", self.state));
        if let Some(reason) = self.reason {
            health.push(Element::with_text("Reason", reason));
            health.push(Element::with_text("Description", description(reason)));
        }
        health
    }
}

/// AWS's description for each reason code (TargetHealth API reference);
/// the code itself for one the model does not know.
pub fn description(reason: &str) -> &str {
    match reason {
        "Elb.RegistrationInProgress" => "Target registration is in progress",
        "Elb.InitialHealthChecking" => "Initial health checks in progress",
        "Elb.InternalError" => "Health checks failed due to an internal error",
        "Target.NotInUse" => {
            "Target group is not configured to receive traffic from the load balancer"
        }
        "Target.DeregistrationInProgress" => "Target deregistration is in progress",
        "Target.FailedHealthChecks" => "Health checks failed",
        "Target.Timeout" => "Request timed out",
        "Target.ResponseCodeMismatch" => "Health checks failed with these codes: [502]",
        "Target.HealthCheckDisabled" => "Health checks are disabled",
        "Target.InvalidState" => "Target is in an invalid state",
        "Target.NotRegistered" => "Target is not registered to the target group",
        other => other,
    }
}

/// When health checks of a target can begin, and how long they take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checks {
    /// The latest of: the group coming into use, the target's
    /// registration, its load balancer turning active, its instance
    /// finishing boot; `None` when all of them predate the model.
    pub from: Option<Instant>,
    /// One health-check interval (scaled).
    pub interval: Duration,
    /// Interval × healthy threshold (scaled): passing checks needed.
    pub to_healthy: Duration,
}

/// The health of a target that moto calls healthy: `unused` while no
/// listener forwards to its group, `initial` until it has passed enough
/// checks, then `healthy` — or what `forced` makes of `initial` and
/// `healthy`, `forced` being set at the instant it carries.
pub fn judge(
    in_use: bool,
    checks: Checks,
    forced: Option<&(TargetOverride, Instant)>,
    now: Instant,
) -> Shown {
    if !in_use {
        return Shown::NOT_IN_USE;
    }
    let natural = match checks.from {
        Some(from) if now < from + checks.interval.min(checks.to_healthy) => Shown::REGISTERING,
        Some(from) if now < from + checks.to_healthy => Shown::CHECKING,
        _ => Shown::HEALTHY,
    };
    match forced {
        None => natural,
        Some((TargetOverride::Unhealthy(reason), _)) => Shown::new("unhealthy", Some(reason)),
        Some((TargetOverride::State(state, reason), _)) => Shown::new(state, Some(reason)),
        Some((TargetOverride::Flapping { period }, since)) => {
            let phase = now.saturating_duration_since(*since).as_nanos() / period.as_nanos().max(1);
            if phase.is_multiple_of(2) {
                Shown::new("unhealthy", Some("Target.FailedHealthChecks"))
            } else {
                Shown::HEALTHY
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn checks(from: Option<Instant>) -> Checks {
        Checks {
            from,
            interval: 30 * S,
            to_healthy: 150 * S,
        }
    }

    #[test]
    fn an_unused_group_never_checks_whatever_is_forced() {
        let t0 = Instant::now();
        let forced = (TargetOverride::Unhealthy("Target.Timeout"), t0);
        assert_eq!(
            judge(false, checks(None), Some(&forced), t0),
            Shown::NOT_IN_USE
        );
        assert_eq!(
            Shown::NOT_IN_USE.to_element().text_at("Description"),
            "Target group is not configured to receive traffic from the load balancer"
        );
    }

    #[test]
    fn a_target_registers_then_checks_then_is_healthy() {
        let t0 = Instant::now();
        let at = |s: u32| judge(true, checks(Some(t0)), None, t0 + s * S);
        assert_eq!(at(0), Shown::REGISTERING);
        assert_eq!(at(29), Shown::REGISTERING);
        assert_eq!(at(30), Shown::CHECKING);
        assert_eq!(at(149), Shown::CHECKING);
        assert_eq!(at(150), Shown::HEALTHY);
        assert_eq!(judge(true, checks(None), None, t0), Shown::HEALTHY);
    }

    #[test]
    fn overrides_replace_initial_and_healthy() {
        let t0 = Instant::now();
        let down = (TargetOverride::Unhealthy("Target.Timeout"), t0);
        let shown = judge(true, checks(Some(t0)), Some(&down), t0);
        assert_eq!(shown, Shown::new("unhealthy", Some("Target.Timeout")));
        assert_eq!(
            shown.to_element().text_at("Description"),
            "Request timed out"
        );

        let stuck = (TargetOverride::State("unused", "Target.InvalidState"), t0);
        let shown = judge(true, checks(Some(t0)), Some(&stuck), t0);
        assert_eq!(shown, Shown::new("unused", Some("Target.InvalidState")));

        let flap = (TargetOverride::Flapping { period: 10 * S }, t0);
        let at = |s: u32| judge(true, checks(None), Some(&flap), t0 + s * S).state;
        assert_eq!(
            [at(0), at(9), at(10), at(19), at(20)],
            ["unhealthy", "unhealthy", "healthy", "healthy", "unhealthy"]
        );
    }
}
