//! Each resource kind's AWS half, one module per kind beside its rules in
//! [`crate::kinds`]: how its objects are read back from batched Describe
//! calls, and how they are created, updated and deleted through the
//! adapters ([`crate::cloud::ec2`], [`crate::cloud::elbv2`]). What every
//! kind uses (reading a Describe result, attributes handed in by the
//! planner, tag changes, error classes) is in [`common`].

pub(crate) mod common;

use std::collections::BTreeSet;

use futures_util::future::BoxFuture;

use crate::cloud::aws::{AwsProvider, Discovery};
use crate::cloud::provider::CreateRequest;
use crate::cloud::CloudError;
use crate::types::ResourceKind;
use crate::world::{Attrs, ObservedResource, Tags};

/// What a kind's cloud operations return (boxed, so [`AwsKind`] stays object-safe).
pub type Op<'a, T> = BoxFuture<'a, Result<T, CloudError>>;

/// One kind's operations against AWS, called through `&'static dyn AwsKind`
/// (hence the boxed futures).
pub trait AwsKind: Send + Sync {
    /// This kind's resources of the discovery's environment, from batched
    /// Describe calls (a fixed number, however many resources exist).
    fn observe<'a>(
        &'a self,
        aws: &'a AwsProvider,
        pass: &'a Discovery,
    ) -> Op<'a, Vec<ObservedResource>>;

    /// See [`crate::cloud::provider::Provider::create`].
    fn create<'a>(
        &'a self,
        aws: &'a AwsProvider,
        request: &'a CreateRequest<'a>,
    ) -> Op<'a, ObservedResource>;

    /// See [`crate::cloud::provider::Provider::update`].
    fn update<'a>(
        &'a self,
        aws: &'a AwsProvider,
        current: &'a ObservedResource,
        attrs: &'a Attrs,
        tags: &'a Tags,
    ) -> Op<'a, ObservedResource>;

    /// See [`crate::cloud::provider::Provider::delete`].
    fn delete<'a>(&'a self, aws: &'a AwsProvider, current: &'a ObservedResource) -> Op<'a, ()>;

    /// Which of `ids` still exist by this kind's own Describe, when they are
    /// its objects under the tagging API's `resource_type` (`ec2:vpc`);
    /// `None`: not this kind's objects. The leak check asks, because tags
    /// outlive their resources in some indexes.
    fn existing<'a>(
        &'a self,
        aws: &'a AwsProvider,
        resource_type: &str,
        ids: &'a [String],
    ) -> Option<Op<'a, BTreeSet<String>>> {
        let _ = (aws, resource_type, ids);
        None
    }
}

/// Which of `ids` (objects of the tagging API's `resource_type`) still
/// exist, asked of the kind whose objects they are; `None` when no kind
/// knows them.
pub async fn existing(
    aws: &AwsProvider,
    resource_type: &str,
    ids: &[String],
) -> Result<Option<BTreeSet<String>>, CloudError> {
    for kind in ResourceKind::ALL {
        if let Some(existing) = ops(kind).existing(aws, resource_type, ids) {
            return existing.await.map(Some);
        }
    }
    Ok(None)
}

/// The body of an [`AwsKind`] impl. `aws_operations!()`
/// boxes the kind module's own functions (`aws_operations!(existing
/// "ec2:vpc" => describe_vpcs.vpc_id)` also says how to tell which of its
/// objects still exist):
///
/// ```text
/// async fn observe(aws: &AwsProvider, pass: &Discovery) -> Result<Vec<ObservedResource>, CloudError>
/// async fn create(aws: &AwsProvider, req: &CreateRequest<'_>) -> Result<ObservedResource, CloudError>
/// async fn update(aws: &AwsProvider, current: &ObservedResource, attrs: &Attrs, tags: &Tags) -> Result<ObservedResource, CloudError>
/// async fn delete(aws: &AwsProvider, current: &ObservedResource) -> Result<(), CloudError>
/// ```
macro_rules! aws_operations {
    () => {
        fn observe<'a>(
            &'a self,
            aws: &'a $crate::cloud::aws::AwsProvider,
            pass: &'a $crate::cloud::aws::Discovery,
        ) -> $crate::cloud::kinds::Op<'a, Vec<$crate::world::ObservedResource>> {
            Box::pin(observe(aws, pass))
        }

        fn create<'a>(
            &'a self,
            aws: &'a $crate::cloud::aws::AwsProvider,
            request: &'a $crate::cloud::provider::CreateRequest<'a>,
        ) -> $crate::cloud::kinds::Op<'a, $crate::world::ObservedResource> {
            Box::pin(create(aws, request))
        }

        fn update<'a>(
            &'a self,
            aws: &'a $crate::cloud::aws::AwsProvider,
            current: &'a $crate::world::ObservedResource,
            attrs: &'a $crate::world::Attrs,
            tags: &'a $crate::world::Tags,
        ) -> $crate::cloud::kinds::Op<'a, $crate::world::ObservedResource> {
            Box::pin(update(aws, current, attrs, tags))
        }

        fn delete<'a>(
            &'a self,
            aws: &'a $crate::cloud::aws::AwsProvider,
            current: &'a $crate::world::ObservedResource,
        ) -> $crate::cloud::kinds::Op<'a, ()> {
            Box::pin(delete(aws, current))
        }
    };
    // The four, and [`AwsKind::existing`] for the objects the tagging API
    // lists as `$type`: the ids one Describe by id (`$describe`) returns.
    (existing $type:literal => $describe:ident . $id:ident) => {
        aws_operations!();

        fn existing<'a>(
            &'a self,
            aws: &'a $crate::cloud::aws::AwsProvider,
            resource_type: &str,
            ids: &'a [String],
        ) -> Option<$crate::cloud::kinds::Op<'a, std::collections::BTreeSet<String>>> {
            use $crate::cloud::ec2::Ec2 as _;
            (resource_type == $type).then(|| {
                let describe = aws.ec2.$describe($crate::cloud::ec2::Select::Ids(ids));
                $crate::cloud::kinds::common::existing_by(describe, |o| o.$id)
            })
        }
    };
}

/// Declares the kinds' AWS modules from [`crate::types::with_each_kind`]'s
/// list: a module `m` registered as `Variant => m` defines a unit struct
/// `m::Variant` implementing [`AwsKind`].
macro_rules! aws_kinds {
    ($($variant:ident => $module:ident),+ $(,)?) => {
        $(pub mod $module;)+

        /// A kind's AWS half.
        pub fn ops(kind: ResourceKind) -> &'static dyn AwsKind {
            match kind {
                $(ResourceKind::$variant => &$module::$variant),+
            }
        }
    };
}
crate::types::with_each_kind!(aws_kinds);
