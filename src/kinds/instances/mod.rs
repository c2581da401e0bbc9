//! `instances`: a fleet of `count` instances from an image, spread over
//! subnets. A fleet is not one AWS object: it is every instance wearing its
//! address tags (and its creating run, see [`fleets`]).

use super::Kind;
use crate::kinds::common::sorted;
use crate::kinds::schema::{opt, req, secret, Field, Ty, ValueType, COUNT};
use crate::types::ResourceKind;
use crate::world::Value;

pub struct Instances;

const FIELDS: &[Field] = &[
    req("image", Ty::IdOf(ResourceKind::Image)),
    req("count", COUNT),
    req("instance_type", Ty::Str),
    req("subnets", Ty::List(&Ty::IdOf(ResourceKind::Subnet))),
    opt(
        "security_groups",
        Ty::List(&Ty::IdOf(ResourceKind::SecurityGroup)),
    ),
    secret("user_data", Ty::Str),
    // Registered as targets of these groups (like an Auto Scaling group's
    // target_group_arns): a load balancer forwards to the fleet.
    opt(
        "target_groups",
        Ty::List(&Ty::IdOf(ResourceKind::TargetGroup)),
    ),
];

impl Kind for Instances {
    fn fields(&self) -> &'static [Field] {
        FIELDS
    }

    fn exports(&self) -> &'static [(&'static str, ValueType)] {
        &[("ids", ValueType::List), ("private_ips", ValueType::List)]
    }

    fn defaults(&self) -> Vec<(&'static str, Value)> {
        // No `security_groups` on a fleet means "AWS's default group", which
        // is not ours to manage: the key stays unset.
        vec![
            ("user_data", Value::Str(String::new())),
            ("target_groups", Value::List(Vec::new())),
        ]
    }

    fn normalize_attr(&self, key: &str, value: Value) -> Value {
        match key {
            "security_groups" | "target_groups" => sorted(value),
            _ => value,
        }
    }

    fn updatable(&self, attr: &str) -> bool {
        matches!(attr, "count" | "target_groups")
    }

    fn hidden_force_new(&self) -> &'static [&'static str] {
        &["user_data", "subnets"]
    }
}
