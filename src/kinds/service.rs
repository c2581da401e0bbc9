//! `service`: a blue/green fleet behind a listener (SPEC.md "`service` —
//! blue/green behind a load balancer"). Its schema, normal form and rules
//! are here; planning refuses it ([`Kind::not_executable_yet`]) and the
//! provider says so too.


use super::common::{normal_health_check, sorted, HEALTH_CHECK};
use super::{Kind, Problems, ResourceKind};
use crate::model::schema::{opt, req, secret, Field, Ty, ValueType, COUNT, PORT};
use crate::model::{ExprKind, Resource};
use crate::world::Value;

pub struct Service;

const CANARY: &[Field] = &[req("canary", Ty::List(&Ty::Int { min: 1, max: 100 }))];

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
        Ty::OneOf(&[Ty::Enum(&["blue_green"]), Ty::Object(CANARY)]),
    ),
    opt("retire_after", Ty::Duration),
    secret("user_data", Ty::Str),
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
        vec![("user_data", Value::Str(String::new()))]
    }

    fn normalize_attr(&self, key: &str, value: Value) -> Value {
        match key {
            "security_groups" => sorted(value),
            "health_check" => normal_health_check(value),
            _ => value,
        }
    }

    fn delete_rank(&self) -> u8 {
        0
    }

    fn not_executable_yet(&self) -> Option<&'static str> {
        Some("blue/green services are not implemented yet")
    }

    fn takes_traffic(&self) -> bool {
        true
    }

    fn check(&self, resource: &Resource, base: &str, problems: &mut Problems<'_>) {
        if let Some(steps) = resource.attr("strategy").and_then(|s| s.get("canary")) {
            if let ExprKind::List(items) = &steps.kind {
                let values: Vec<i64> = items
                    .iter()
                    .filter_map(|i| match i.kind {
                        ExprKind::Int(n) => Some(n),
                        _ => None,
                    })
                    .collect();
                let increasing = values.windows(2).all(|w| w[0] < w[1]);
                if values.len() == items.len() && (!increasing || values.last() != Some(&100)) {
                    problems.error(
                        steps.pos,
                        &format!("{base}.strategy.canary"),
                        format!("canary steps {values:?} must increase and end at 100"),
                    )
                    .with_hint("e.g. canary = [10, 50, 100]");
                }
            }
        }
    }

    aws_operations!(unsupported: ResourceKind::Service);
}
