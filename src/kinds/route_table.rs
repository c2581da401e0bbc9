//! `route_table`: a VPC's route table, its routes and the subnets it serves.

use super::Kind;
use crate::kinds::common::sorted;
use crate::kinds::schema::{opt, req, Field, Ty, ValueType};
use crate::types::ResourceKind;
use crate::world::Value;

pub struct RouteTable;

const NAME_OR_ID: Ty = Ty::Str;

const ROUTE: &[Field] = &[req("destination", Ty::Cidr), req("gateway", NAME_OR_ID)];

const FIELDS: &[Field] = &[
    req("vpc", Ty::IdOf(ResourceKind::Vpc)),
    opt("routes", Ty::List(&Ty::Object(ROUTE))),
    opt("subnets", Ty::List(&Ty::IdOf(ResourceKind::Subnet))),
];

impl Kind for RouteTable {
    fn fields(&self) -> &'static [Field] {
        FIELDS
    }

    fn exports(&self) -> &'static [(&'static str, ValueType)] {
        &[("id", ValueType::Str)]
    }

    fn defaults(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("routes", Value::List(Vec::new())),
            ("subnets", Value::List(Vec::new())),
        ]
    }

    fn normalize_attr(&self, key: &str, value: Value) -> Value {
        match key {
            "routes" => match value {
                Value::List(routes) => sorted(Value::List(
                    routes
                        .into_iter()
                        .map(|r| match r {
                            Value::Table(mut t) => {
                                t.retain(|k, _| k == "destination" || k == "gateway");
                                Value::Table(t)
                            }
                            other => other,
                        })
                        .collect(),
                )),
                other => other,
            },
            "subnets" => sorted(value),
            _ => value,
        }
    }

    fn updatable(&self, attr: &str) -> bool {
        matches!(attr, "routes" | "subnets")
    }
}
