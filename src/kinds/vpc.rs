//! `vpc`: a VPC and whether its instances get DNS hostnames.

use super::Kind;
use crate::kinds::schema::{opt, req, Field, Ty, ValueType};
use crate::world::Value;

pub struct Vpc;

const FIELDS: &[Field] = &[
    req("cidr_block", Ty::Block),
    opt("enable_dns_hostnames", Ty::Bool),
];

impl Kind for Vpc {
    fn fields(&self) -> &'static [Field] {
        FIELDS
    }

    fn exports(&self) -> &'static [(&'static str, ValueType)] {
        &[("id", ValueType::Str)]
    }

    fn defaults(&self) -> Vec<(&'static str, Value)> {
        vec![("enable_dns_hostnames", Value::Bool(false))]
    }

    fn updatable(&self, attr: &str) -> bool {
        attr == "enable_dns_hostnames"
    }
}
