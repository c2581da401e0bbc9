//! `target_group`: an ELBv2 target group and its health check.

use super::Kind;
use crate::kinds::common::{normal_health_check, HEALTH_CHECK, PROTOCOL};
use crate::kinds::schema::{opt, req, Field, Ty, ValueType, PORT};
use crate::types::ResourceKind;
use crate::world::Value;
use std::collections::BTreeMap;

pub struct TargetGroup;

const FIELDS: &[Field] = &[
    req("vpc", Ty::IdOf(ResourceKind::Vpc)),
    req("protocol", PROTOCOL),
    req("port", PORT),
    opt("health_check", Ty::Object(HEALTH_CHECK)),
];

impl Kind for TargetGroup {
    fn fields(&self) -> &'static [Field] {
        FIELDS
    }

    fn exports(&self) -> &'static [(&'static str, ValueType)] {
        &[("arn", ValueType::Str)]
    }

    fn defaults(&self) -> Vec<(&'static str, Value)> {
        vec![("health_check", Value::Table(BTreeMap::new()))]
    }

    fn normalize_attr(&self, key: &str, value: Value) -> Value {
        match key {
            "health_check" => normal_health_check(value),
            _ => value,
        }
    }

    fn updatable(&self, attr: &str) -> bool {
        attr == "health_check"
    }
}
