//! What kind of step a plan's change (or a journaled step) is, and how long
//! a step of that kind takes before any drill has measured one: drctl's
//! priors, from AWS's published figures.
//!
//! The figures are for AWS, not for the sandbox (moto answers at once);
//! they are a starting point that a runbook's `[forecast.priors]`
//! overrides and that the median of its drills' measurements replaces.

use crate::clock::Millis;
use crate::kinds::common::Want;
use crate::kinds::service::canary::Canary;
use crate::kinds::service::op::ServiceOp;
use crate::model::forecast::{StepKind, StepOp};
use crate::plan::{Action, Change};
use crate::types::ResourceKind;
use crate::world::{Attrs, Value};

const SECOND: Millis = 1_000;
const MINUTE: Millis = 60 * SECOND;

/// A running instance from RunInstances: EC2 reports most launches
/// `running` within 30–60 s (EC2 User Guide, "Instance lifecycle").
const EC2_BOOT: Millis = MINUTE;
/// Registering targets with a target group (`initial`,
/// `Elb.RegistrationInProgress`) before the first health check.
const REGISTRATION: Millis = 10 * SECOND;
/// ELBv2's defaults when a health check sets neither: interval 30 s,
/// healthy threshold 5 (ELB User Guide, "Health checks for target groups").
const HEALTH_INTERVAL_S: i64 = 30;
const HEALTHY_THRESHOLD: i64 = 5;
/// A baked image: the builder's boot (~1 min), its provisioning script (a
/// few minutes, assumed), power-off (~1 min), and CreateImage until
/// `available` (EC2: "it can take several minutes", an 8 GiB snapshot).
const BAKE: Millis = 12 * MINUTE;
/// CopyImage to another region copies the snapshots: minutes for a small
/// image, longer for large ones (EC2 User Guide, "Copy an AMI"); the copies
/// of one image run in parallel.
const COPY: Millis = 10 * MINUTE;
/// An Application Load Balancer goes `provisioning` → `active` in about
/// 2–3 minutes (ELB User Guide; drctl waits for `active`).
const LOAD_BALANCER: Millis = 3 * MINUTE;
/// Calls that take effect when they return (CreateVpc, CreateSubnet,
/// CreateSecurityGroup + AuthorizeSecurityGroupIngress, CreateTargetGroup,
/// CreateListener, ModifyListener, …): a few round trips and tagging.
const API_CALLS: Millis = 5 * SECOND;
const ONE_CALL: Millis = 3 * SECOND;

/// The kind of step a plan's change is; `None` for what takes no time of
/// the rebuild (no-ops; deletions come after it, in cleanup).
pub fn step_kind(change: &Change) -> Option<StepKind> {
    let kind = step_kind_of(change.address.kind, change.action)?;
    if kind.kind != ResourceKind::Service {
        return Some(kind);
    }
    // A service says what its step does; an older plan's step that does
    // not keeps the guess from its action.
    let attrs = known(change);
    let op = match ServiceOp::read(&Want::new(&change.address, &attrs)) {
        Ok(ServiceOp::Colour { .. }) => StepOp::Colour,
        Ok(ServiceOp::Cutover(_)) => StepOp::Cutover,
        Ok(ServiceOp::Maintain { .. } | ServiceOp::Retire { .. }) => StepOp::Maintain,
        Err(_) => kind.op,
    };
    Some(StepKind::new(ResourceKind::Service, op))
}

/// The kind of a journaled step, from its resource kind and action alone
/// (the journal has no more): an image created is baked and one updated
/// only copied; a service created makes a colour, and one updated moves
/// its traffic (a drill rebuilds from nothing, so an update of a service is
/// its cutover; health checks and retirements touch a service that existed
/// before). `None` for deletions and no-ops.
pub fn step_kind_of(kind: ResourceKind, action: Action) -> Option<StepKind> {
    let created = match action {
        Action::Create | Action::Replace => true,
        Action::Update => false,
        Action::Delete | Action::NoOp => return None,
    };
    let op = match (kind, created) {
        (ResourceKind::Image, true) => StepOp::Bake,
        (ResourceKind::Image, false) => StepOp::Copy,
        (ResourceKind::Service, true) => StepOp::Colour,
        (ResourceKind::Service, false) => StepOp::Cutover,
        (_, true) => StepOp::Create,
        (_, false) => StepOp::Update,
    };
    Some(StepKind::new(kind, op))
}

/// How long `change`, a step of `kind`, is expected to take without any
/// measurement, and on what figures (one short phrase).
pub fn prior(kind: StepKind, change: &Change) -> (Millis, String) {
    let attrs = known(change);
    match (kind.kind, kind.op) {
        (ResourceKind::Image, StepOp::Bake) => {
            let region = attrs.get("region").and_then(Value::as_str);
            let copies = attrs
                .get("copy_to_regions")
                .and_then(Value::as_str_list)
                .is_some_and(|rs| rs.iter().any(|r| Some(*r) != region));
            match copies {
                true => (
                    BAKE + COPY,
                    "bake ~12m (boot, script, CreateImage) + copies ~10m".into(),
                ),
                false => (BAKE, "bake: builder boot, script, CreateImage ~12m".into()),
            }
        }
        (ResourceKind::Image, _) => (COPY, "CopyImage to other regions ~10m".into()),
        (ResourceKind::Service, StepOp::Colour) => colour(&attrs),
        (ResourceKind::Service, StepOp::Cutover) => cutover(&attrs),
        (ResourceKind::Service, _) => {
            (API_CALLS, "health checks and retirements: API calls".into())
        }
        (ResourceKind::LoadBalancer, StepOp::Create) => {
            (LOAD_BALANCER, "ALB provisioning → active ~2–3m".into())
        }
        (ResourceKind::Instances, StepOp::Create) => (
            EC2_BOOT + REGISTRATION,
            "EC2 boot to running ~30–60s, registration".into(),
        ),
        (_, StepOp::Update) => (ONE_CALL, "a call that takes effect at once".into()),
        _ => (API_CALLS, "calls that take effect at once".into()),
    }
}

/// A new colour: its fleet boots, registers, and passes the health check
/// `healthy_threshold` times `interval` apart (its own, or ELBv2's defaults).
fn colour(attrs: &Attrs) -> (Millis, String) {
    let check = attrs.get("health_check").and_then(Value::as_table);
    let int = |key: &str, default: i64| {
        check
            .and_then(|t| t.get(key))
            .and_then(Value::as_int)
            .unwrap_or(default)
    };
    let (interval, threshold) = (
        int("interval", HEALTH_INTERVAL_S),
        int("healthy_threshold", HEALTHY_THRESHOLD),
    );
    let ms = EC2_BOOT + REGISTRATION + interval * threshold * SECOND;
    let basis = format!("EC2 boot ~1m, registration, health {threshold} × {interval}s");
    (ms, basis)
}

/// A cutover: one ModifyListener per weight, each weight below 100%
/// watched for the canary's `wait`.
fn cutover(attrs: &Attrs) -> (Millis, String) {
    let canary = Canary::of(attrs);
    let watched = canary.steps.iter().filter(|&&w| w < 100).count() as Millis;
    let wait = canary.wait.as_millis() as Millis;
    if watched == 0 || wait == 0 {
        return (ONE_CALL, "ModifyListener takes effect at once".into());
    }
    let basis = format!(
        "ModifyListener per weight, {watched} weight(s) watched {}s each",
        wait / SECOND
    );
    (ONE_CALL + watched * wait, basis)
}

/// The step's attributes known when planned (a service's image may be
/// pending on a bake in the same run; its health check is not).
fn known(change: &Change) -> Attrs {
    change
        .desired
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.known()?.clone())))
        .collect()
}
