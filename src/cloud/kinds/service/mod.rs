//! The AWS half of [`crate::kinds::service`]: reading services back
//! ([`colours`]), creating, retiring and deleting colours ([`steps`]),
//! putting a colour's group in use so AWS health-checks it before it takes
//! traffic ([`in_use`]), the verdict on a colour's targets and waiting for
//! it ([`health`]), and moving the listener's weights ([`traffic`]).

use crate::world::Attrs;
mod colours;
mod health;
mod in_use;
mod steps;
mod traffic;

pub struct Service;

impl super::AwsKind for Service {
    fn observe<'a>(
        &'a self,
        aws: &'a crate::cloud::aws::AwsProvider,
        pass: &'a crate::cloud::aws::Discovery,
    ) -> super::Op<'a, Vec<crate::world::ObservedResource>> {
        Box::pin(colours::observe(aws, pass))
    }

    fn create<'a>(
        &'a self,
        aws: &'a crate::cloud::aws::AwsProvider,
        request: &'a crate::cloud::provider::CreateRequest<'a>,
    ) -> super::Op<'a, crate::world::ObservedResource> {
        Box::pin(steps::run(
            aws,
            request.address,
            request.attrs,
            request.tags,
            (request.client_token, request.late),
        ))
    }

    fn update<'a>(
        &'a self,
        aws: &'a crate::cloud::aws::AwsProvider,
        current: &'a crate::world::ObservedResource,
        attrs: &'a Attrs,
        tags: &'a crate::world::Tags,
    ) -> super::Op<'a, crate::world::ObservedResource> {
        Box::pin(steps::run(aws, &current.address, attrs, tags, ("", None)))
    }

    fn delete<'a>(
        &'a self,
        aws: &'a crate::cloud::aws::AwsProvider,
        current: &'a crate::world::ObservedResource,
    ) -> super::Op<'a, ()> {
        Box::pin(steps::delete(aws, current))
    }
}
