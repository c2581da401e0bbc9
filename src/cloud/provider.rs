//! The one interface the engine uses to change the world: create, read back,
//! update and delete resources of every kind, by address and tags.
//!
//! Implementations own waiting (a create returns when the resource is usable:
//! instances running, load balancer active), paging, batching and throttling.

use crate::world::{Address, Attrs, LookupRequest, Lookups, ObservedResource, Tags};

use super::CloudError;

/// What to create: the resolved, normalised attributes and the full tag set
/// (drctl's identity tags included).
#[derive(Debug, Clone)]
pub struct CreateRequest<'a> {
    pub address: &'a Address,
    pub attrs: &'a Attrs,
    pub tags: &'a Tags,
    /// Idempotency token for APIs that take one (RunInstances, CreateVpc…).
    /// moto ignores it; real AWS honours it within a few minutes.
    pub client_token: &'a str,
}

#[allow(async_fn_in_trait)] // used through generics, never as dyn
pub trait Provider {
    /// Every resource tagged `drctl:env = env`, batched: a fixed number of
    /// paginated Describe calls per kind, however many resources exist.
    async fn discover(&self, env: &str) -> Result<Vec<ObservedResource>, CloudError>;

    /// Reads what `request` asks for: a fixed number of calls per filter
    /// and per region, however many images exist.
    async fn look_up(&self, request: &LookupRequest) -> Result<Lookups, CloudError>;

    /// Creates the resource and returns it as observed afterwards.
    async fn create(&self, request: &CreateRequest<'_>) -> Result<ObservedResource, CloudError>;

    /// Changes `current` in place to `attrs` (only attributes the planner
    /// marks updatable differ) and sets `tags` exactly (adds, changes, removes).
    async fn update(
        &self,
        current: &ObservedResource,
        attrs: &Attrs,
        tags: &Tags,
    ) -> Result<ObservedResource, CloudError>;

    /// Deletes the resource and waits until it no longer blocks its
    /// dependencies' deletion (e.g. instances terminated). Deleting something
    /// already gone is success.
    async fn delete(&self, current: &ObservedResource) -> Result<(), CloudError>;

    /// Waits for the clean-up steps left to finish on their own (a bake's
    /// builder shutting down) and says which did not, by the address of
    /// the step that started it. The run calls it once before it ends.
    async fn settle_background(&self) -> Vec<(Address, CloudError)>;
}
