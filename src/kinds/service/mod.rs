//! `service`: a blue/green fleet behind a listener (SPEC.md "`service` —
//! blue/green behind a load balancer").
//!
//! A service is one object per address made of **colours**: each colour is
//! a fleet of instances and its own target group (`drctl:color` on both, the
//! colour in the group's name). The listener's default action says which
//! colour is live. A change that needs new instances creates the idle
//! colour, waits until every target is healthy (or tears it down), and the
//! cutover moves the listener to it in one call (or in weighted canary
//! steps). The old colour stays for `drctl rollback` until `retire_after`.
//!
//! - [`colours`]: a service's colours as observed, which is live;
//! - [`plan`]: what to do: create a colour, cut over, retire;
//! - [`op`]: a step's operation, as the AWS half reads it;
//! - [`canary`]: canary weights and the gates between them.
//!
//! Its AWS half, [`crate::cloud::kinds::service`], reads services back and
//! creates, retires and deletes colours, puts a colour's group in use and
//! moves the listener's weights.

use super::common::{normal_health_check, sorted, HEALTH_CHECK};
use super::{Kind, Problems, ResourceKind};
use crate::kinds::schema::{opt, req, secret, Field, Ty, ValueType, COUNT, PORT};
use crate::model::Resource;
use crate::world::{Attrs, Value};

pub(crate) mod canary;
pub(crate) mod colours;
pub(crate) mod op;
mod plan;
mod standalone;
#[cfg(test)]
mod tests;

pub use canary::canary_gate;
pub use colours::{colours_of, live_colour, Colour};
pub use plan::kept_for_rollback;
pub use standalone::{canary_rollback_step, retirement_step, rollback_step};

pub struct Service;

/// On a colour's target group: the hash of the fleet it runs ([`fleet_hash`]).
pub(crate) const FLEET_TAG: &str = "drctl:fleet";
/// On a colour's target group: when it started taking all the traffic (ms).
pub(crate) const LIVE_SINCE_TAG: &str = "drctl:live-since";
/// On a colour's target group: when traffic moved away from it (ms); its
/// retirement is due `retire_after` later.
pub(crate) const REPLACED_AT_TAG: &str = "drctl:replaced-at";

/// The header of test traffic for a colour not yet live: a listener with no
/// colour forwards requests carrying `X-Drctl-Colour: <colour>` to it, so
/// AWS health-checks its group and a drill can reach it before the cutover.
pub const TEST_HEADER: &str = "X-Drctl-Colour";

const RETIRE_AFTER_DEFAULT: &str = "1h";
pub(crate) const HEALTH_TIMEOUT_DEFAULT: &str = "10m";

const FIELDS: &[Field] = &[
    req("image", Ty::IdOf(ResourceKind::Image)),
    req("count", COUNT),
    req("instance_type", Ty::Str),
    req("subnets", Ty::List(&Ty::IdOf(ResourceKind::Subnet))),
    req("port", PORT),
    req("listener", Ty::IdOf(ResourceKind::Listener)),
    opt(
        "security_groups",
        Ty::List(&Ty::IdOf(ResourceKind::SecurityGroup)),
    ),
    opt("health_check", Ty::Object(HEALTH_CHECK)),
    opt(
        "strategy",
        Ty::OneOf(&[Ty::Enum(&["blue_green"]), Ty::Object(canary::CANARY)]),
    ),
    opt("retire_after", Ty::Duration),
    // How long a new colour may take to become healthy before it is torn down.
    opt("health_timeout", Ty::Duration),
    secret("user_data", Ty::Str),
];

/// The attributes whose change needs new instances (a new colour).
const FLEET: &[&str] = &[
    "image",
    "count",
    "instance_type",
    "subnets",
    "security_groups",
    "port",
    "user_data",
];

impl Kind for Service {
    fn fields(&self) -> &'static [Field] {
        FIELDS
    }

    fn exports(&self) -> &'static [(&'static str, ValueType)] {
        &[
            ("live_color", ValueType::Str),
            ("target_group_arn", ValueType::Str),
            ("ids", ValueType::List),
        ]
    }

    fn defaults(&self) -> Vec<(&'static str, Value)> {
        // No `security_groups` means "AWS's default group", which is not
        // ours to manage: the key stays unset.
        vec![
            ("user_data", Value::Str(String::new())),
            ("health_check", Value::Table(Default::default())),
            ("strategy", Value::Str("blue_green".into())),
            ("retire_after", Value::Str(RETIRE_AFTER_DEFAULT.into())),
            ("health_timeout", Value::Str(HEALTH_TIMEOUT_DEFAULT.into())),
        ]
    }

    fn normalize_attr(&self, key: &str, value: Value) -> Value {
        match key {
            "security_groups" => sorted(value),
            "health_check" => normal_health_check(value),
            _ => value,
        }
    }

    fn takes_traffic(&self) -> bool {
        true
    }

    fn plan_itself(&self, input: &crate::plan::OwnPlanInput<'_>) -> Option<crate::plan::OwnPlan> {
        Some(plan::plan(input))
    }

    fn check(&self, resource: &Resource, base: &str, problems: &mut Problems<'_>) {
        canary::check(resource, base, problems);
    }
}

/// The hash of what a colour's fleet is made of: equal hashes, no new
/// colour needed. `None` while any input is unknown (pending on a step).
pub(crate) fn fleet_hash(attrs: &Attrs) -> Option<String> {
    let mut inputs = serde_json::Map::new();
    inputs.insert("format".into(), 1.into());
    for key in FLEET {
        let value = match attrs.get(*key) {
            Some(v) => serde_json::to_value(v).ok()?,
            None if *key == "security_groups" => serde_json::Value::Null,
            None => return None,
        };
        inputs.insert((*key).into(), value);
    }
    Some(crate::digest::hash_json(&serde_json::Value::Object(inputs))[..16].to_string())
}

/// `blue` ↔ `green`.
fn other_colour(colour: &str) -> &'static str {
    if colour == "blue" {
        "green"
    } else {
        "blue"
    }
}

/// A duration attribute (validated at load time).
pub(crate) fn duration_of(attrs: &Attrs, key: &str, default: &str) -> std::time::Duration {
    let text = attrs.get(key).and_then(Value::as_str).unwrap_or(default);
    humantime::parse_duration(text)
        .or_else(|_| humantime::parse_duration(default))
        .unwrap_or_default()
}
