//! `subnet`: a subnet of a VPC in one availability zone, and whether
//! instances launched in it get a public address.

use super::Kind;
use crate::kinds::schema::{opt, req, Field, Ty, ValueType};
use crate::types::ResourceKind;
use crate::world::Value;

pub struct Subnet;

const FIELDS: &[Field] = &[
    req("vpc", Ty::IdOf(ResourceKind::Vpc)),
    req("cidr_block", Ty::Block),
    req("availability_zone", Ty::Str),
    opt("map_public_ip", Ty::Bool),
];

impl Kind for Subnet {
    fn fields(&self) -> &'static [Field] {
        FIELDS
    }

    fn exports(&self) -> &'static [(&'static str, ValueType)] {
        &[("id", ValueType::Str)]
    }

    fn defaults(&self) -> Vec<(&'static str, Value)> {
        vec![("map_public_ip", Value::Bool(false))]
    }

    fn updatable(&self, attr: &str) -> bool {
        attr == "map_public_ip"
    }
}
