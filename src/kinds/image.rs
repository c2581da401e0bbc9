//! `image`: an AMI baked from a base image and a provisioning script
//! (SPEC.md "`image` — baking"). Only its schema is here so far: planning
//! refuses it ([`Kind::not_executable_yet`]) and the provider says so too.


use super::{Kind, ResourceKind};
use crate::model::schema::{opt, req, secret, Field, Ty, ValueType};

pub struct Image;

const IMAGE_FILTER: &[Field] = &[req("owners", Ty::List(&Ty::Str)), req("name", Ty::Str)];

const FIELDS: &[Field] = &[
    req(
        "base_image",
        Ty::OneOf(&[Ty::IdOf(ResourceKind::Image), Ty::Object(IMAGE_FILTER)]),
    ),
    req("instance_type", Ty::Str),
    req("subnet", Ty::IdOf(ResourceKind::Subnet)),
    secret("provision", Ty::File),
    opt("copy_to_regions", Ty::List(&Ty::Str)),
    opt("keep", Ty::Int { min: 1, max: 1000 }),
];

impl Kind for Image {
    fn fields(&self) -> &'static [Field] {
        FIELDS
    }

    fn exports(&self) -> &'static [(&'static str, ValueType)] {
        &[("id", ValueType::Str), ("recipe", ValueType::Str)]
    }

    fn delete_rank(&self) -> u8 {
        5
    }

    fn not_executable_yet(&self) -> Option<&'static str> {
        Some("baking images is not implemented yet")
    }

    aws_operations!(unsupported: ResourceKind::Image);
}
