//! `internet_gateway`: an internet gateway, attached to one VPC.

use super::Kind;
use crate::kinds::schema::{req, Field, Ty, ValueType};
use crate::types::ResourceKind;

pub struct InternetGateway;

const FIELDS: &[Field] = &[req("vpc", Ty::IdOf(ResourceKind::Vpc))];

impl Kind for InternetGateway {
    fn fields(&self) -> &'static [Field] {
        FIELDS
    }

    fn exports(&self) -> &'static [(&'static str, ValueType)] {
        &[("id", ValueType::Str)]
    }

    // Attaching finishes a create interrupted between create and attach.
    fn updatable(&self, attr: &str) -> bool {
        attr == "vpc"
    }
}
