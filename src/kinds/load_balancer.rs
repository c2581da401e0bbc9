//! `load_balancer`: an application load balancer over subnets.

use super::Kind;
use crate::kinds::common::sorted;
use crate::kinds::schema::{opt, req, Field, Ty, ValueType};
use crate::types::ResourceKind;
use crate::world::Value;

pub struct LoadBalancer;

const FIELDS: &[Field] = &[
    req("subnets", Ty::List(&Ty::IdOf(ResourceKind::Subnet))),
    opt(
        "security_groups",
        Ty::List(&Ty::IdOf(ResourceKind::SecurityGroup)),
    ),
    opt("internal", Ty::Bool),
];

impl Kind for LoadBalancer {
    fn fields(&self) -> &'static [Field] {
        FIELDS
    }

    fn exports(&self) -> &'static [(&'static str, ValueType)] {
        &[("arn", ValueType::Str), ("dns_name", ValueType::Str)]
    }

    fn defaults(&self) -> Vec<(&'static str, Value)> {
        // No `security_groups` means "AWS's default group", which is not
        // ours to manage: the key stays unset.
        vec![("internal", Value::Bool(false))]
    }

    fn normalize_attr(&self, key: &str, value: Value) -> Value {
        match key {
            "subnets" | "security_groups" => sorted(value),
            _ => value,
        }
    }

    fn updatable(&self, attr: &str) -> bool {
        matches!(attr, "subnets" | "security_groups")
    }
}
