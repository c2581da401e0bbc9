//! Everything drctl knows about each resource kind, one module per kind: its
//! schema (attributes and exports), its normal form, which changes update in
//! place and which replace, its delete rank, the rules the schema cannot say
//! alone, how its objects are read from what Describe calls return, and how
//! it is created, updated and deleted against AWS.
//!
//! Nothing outside this module matches on the kind: the model, the planner
//! and the provider ask [`ResourceKind::def`]. Adding a kind is one module
//! here and one line in the `kinds!` list below.

pub(crate) mod common;

use std::path::Path;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::cloud::aws::{AwsProvider, Discovery};
use crate::cloud::provider::CreateRequest;
use crate::cloud::CloudError;
use crate::diag::{Diagnostic, Diagnostics, Pos};
use crate::model::schema::{Field, ValueType};
use crate::model::Resource;
use crate::world::{Attrs, ObservedResource, Tags, Value};

/// What a kind's cloud operations return (boxed, so [`Kind`] stays object-safe).
pub type Op<'a, T> = BoxFuture<'a, Result<T, CloudError>>;

/// One resource kind. Pure methods describe it (the model, validator and
/// planner read them); async ones act on AWS through the provider's clients.
/// Called through `&'static dyn Kind`, hence the boxed futures.
pub trait Kind: Send + Sync {
    // --- Schema ---

    /// The attributes a stack may set on this kind (besides `tags`).
    fn fields(&self) -> &'static [Field];

    /// What `${kind.name.<attr>}` may read once the resource exists.
    fn exports(&self) -> &'static [(&'static str, ValueType)];

    // --- Normal form and change rules (the planner's side) ---

    /// Values an unset attribute stands for (the adapter reads them back).
    fn defaults(&self) -> Vec<(&'static str, Value)> {
        Vec::new()
    }

    /// A set attribute in the one shape the adapter reads it back in.
    fn normalize_attr(&self, key: &str, value: Value) -> Value {
        let _ = key;
        value
    }

    /// Whether AWS can change `attr` of a live resource (otherwise: replace).
    fn updatable(&self, attr: &str) -> bool {
        let _ = attr;
        false
    }

    /// Whether leaving `attr` unset asks for something (so an observed value
    /// is a difference). Unset attributes are normally AWS's defaults, not
    /// ours to manage.
    fn unset_is_a_value(&self, attr: &str) -> bool {
        let _ = attr;
        false
    }

    /// Attributes the adapter cannot read back and that force a replacement:
    /// a changed spec hash with no visible difference means one changed.
    fn hidden_force_new(&self) -> &'static [&'static str] {
        &[]
    }

    /// Deletion order: lower ranks go first. A kind refers only to kinds of a
    /// higher rank, so deleting rank by rank never hits a dependency violation.
    fn delete_rank(&self) -> u8;

    /// Whether a runbook's `cutover` and `target_health` may name resources
    /// of this kind (they move traffic between fleets).
    fn takes_traffic(&self) -> bool {
        false
    }

    /// Plans the resource itself, for kinds whose objects are not one per
    /// address (an image's kept versions, reuse by recipe, builders). Pure.
    fn plan_itself(&self, input: &crate::plan::OwnPlanInput<'_>) -> Option<crate::plan::OwnPlan> {
        let _ = input;
        None
    }

    // --- Validation ---

    /// Rules the schema cannot say alone; `base` is the resource's key path.
    fn check(&self, resource: &Resource, base: &str, problems: &mut Problems<'_>) {
        let _ = (resource, base, problems);
    }

    // --- The cloud ---

    /// This kind's resources of the discovery's environment, from batched
    /// Describe calls (a fixed number, however many resources exist).
    fn observe<'a>(
        &'a self,
        aws: &'a AwsProvider,
        pass: &'a Discovery,
    ) -> Op<'a, Vec<ObservedResource>> {
        let _ = (aws, pass);
        Box::pin(async { Ok(Vec::new()) })
    }

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
}

/// Where a kind's [`Kind::check`] reports problems: the stack file being
/// validated.
pub struct Problems<'a> {
    file: &'a Path,
    diags: &'a mut Diagnostics,
}

impl<'a> Problems<'a> {
    pub fn new(file: &'a Path, diags: &'a mut Diagnostics) -> Self {
        Problems { file, diags }
    }

    pub fn error(&mut self, pos: Pos, key: &str, message: impl Into<String>) -> &mut Diagnostic {
        self.diags.error(self.file, pos, key, message)
    }
}

/// The cloud half of a [`Kind`] impl, written inside it. `aws_operations!()`
/// boxes the kind module's own functions:
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
        ) -> $crate::kinds::Op<'a, Vec<$crate::world::ObservedResource>> {
            Box::pin(observe(aws, pass))
        }

        fn create<'a>(
            &'a self,
            aws: &'a $crate::cloud::aws::AwsProvider,
            request: &'a $crate::cloud::provider::CreateRequest<'a>,
        ) -> $crate::kinds::Op<'a, $crate::world::ObservedResource> {
            Box::pin(create(aws, request))
        }

        fn update<'a>(
            &'a self,
            aws: &'a $crate::cloud::aws::AwsProvider,
            current: &'a $crate::world::ObservedResource,
            attrs: &'a $crate::world::Attrs,
            tags: &'a $crate::world::Tags,
        ) -> $crate::kinds::Op<'a, $crate::world::ObservedResource> {
            Box::pin(update(aws, current, attrs, tags))
        }

        fn delete<'a>(
            &'a self,
            aws: &'a $crate::cloud::aws::AwsProvider,
            current: &'a $crate::world::ObservedResource,
        ) -> $crate::kinds::Op<'a, ()> {
            Box::pin(delete(aws, current))
        }
    };
}

/// Declares the kind modules, the [`ResourceKind`] enum (variants in this
/// order, which is also the order addresses sort in) and each kind's
/// definition. A module `m` registered as `Variant => m` defines a unit
/// struct `m::Variant` implementing [`Kind`]; the kind's name is `m`.
macro_rules! kinds {
    ($($variant:ident => $module:ident),+ $(,)?) => {
        $(pub mod $module;)+

        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ResourceKind {
            $($variant),+
        }

        impl ResourceKind {
            pub const ALL: [ResourceKind; [$(stringify!($variant)),+].len()] =
                [$(ResourceKind::$variant),+];

            pub fn name(self) -> &'static str {
                match self {
                    $(ResourceKind::$variant => stringify!($module)),+
                }
            }

            /// Everything drctl knows about this kind.
            pub fn def(self) -> &'static dyn Kind {
                match self {
                    $(ResourceKind::$variant => &$module::$variant),+
                }
            }
        }
    };
}

kinds! {
    Vpc => vpc,
    Subnet => subnet,
    InternetGateway => internet_gateway,
    RouteTable => route_table,
    SecurityGroup => security_group,
    Image => image,
    Instances => instances,
    TargetGroup => target_group,
    LoadBalancer => load_balancer,
    Listener => listener,
    Service => service,
}

impl ResourceKind {
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The attributes a stack may set on this kind (besides `tags`).
    pub fn fields(self) -> &'static [Field] {
        self.def().fields()
    }

    /// What `${kind.name.<attr>}` may read once the resource exists.
    pub fn exports(self) -> &'static [(&'static str, ValueType)] {
        self.def().exports()
    }

    pub fn export_type(self, attr: &str) -> Option<ValueType> {
        self.exports()
            .iter()
            .find(|(name, _)| *name == attr)
            .map(|(_, ty)| *ty)
    }
}

impl std::fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_names_are_the_kind_names() {
        for kind in ResourceKind::ALL {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::String(kind.name().to_string())
            );
        }
    }
}
