//! The one interface the engine uses to change the world: create, read back,
//! update and delete resources of every kind, by address and tags.
//!
//! Implementations own waiting (a create returns when the resource is usable:
//! instances running, load balancer active), paging, batching and throttling.

use std::time::Duration;

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
    /// The attributes the step reads only once under way, when it started
    /// before they were known (absent from `attrs` then).
    pub late: Option<&'a LateInputs<'a>>,
}

/// A step's complete attributes and tags: `None` while an input is still
/// missing, `Some(Err)` once one never will be (its step failed).
pub type Completion = Option<Result<(Attrs, Tags), String>>;

/// What completes a step's attributes once the steps its late inputs wait
/// on are done ([`crate::plan::Change::late`]): a new colour launches its
/// fleet while its load balancer provisions, and takes the listener when
/// it has to put the colour in use.
pub struct LateInputs<'a> {
    /// Bumped each time a step of the run finishes.
    finished: tokio::sync::watch::Receiver<u64>,
    /// The step's attributes and tags as far as the run has got.
    complete: Box<dyn Fn() -> Completion + Send + Sync + 'a>,
}

impl std::fmt::Debug for LateInputs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LateInputs")
    }
}

impl<'a> LateInputs<'a> {
    pub fn new(
        finished: tokio::sync::watch::Receiver<u64>,
        complete: impl Fn() -> Completion + Send + Sync + 'a,
    ) -> Self {
        LateInputs {
            finished,
            complete: Box::new(complete),
        }
    }

    /// The complete attributes and tags, once they are known: waits for the
    /// steps that make them, giving up when the run is stopped (nothing new
    /// starts then, so they might never come).
    pub async fn wait(&self, what: &str) -> Result<(Attrs, Tags), CloudError> {
        let mut finished = self.finished.clone();
        loop {
            if let Some(done) = (self.complete)() {
                return done.map_err(|reason| CloudError::Failed {
                    what: what.to_string(),
                    state: "missing an input".into(),
                    reason,
                });
            }
            if super::wait::interrupted() {
                return Err(CloudError::Failed {
                    what: what.to_string(),
                    state: "interrupted".into(),
                    reason: "the run was stopped before the steps it reads were done".into(),
                });
            }
            // A stop request is noticed within a second.
            let next = tokio::time::timeout(Duration::from_secs(1), finished.changed()).await;
            if let Ok(Err(_)) = next {
                return Err(CloudError::Failed {
                    what: what.to_string(),
                    state: "missing an input".into(),
                    reason: "the run ended before the steps it reads were done".into(),
                });
            }
        }
    }
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
