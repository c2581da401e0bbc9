//! Clean-up a step starts and leaves to AWS: a bake's builder is terminated
//! once its image is available, but the minute AWS takes to shut it down is
//! not the bake's; the run checks every such termination once before it
//! ends ([`super::provider::Provider::settle_background`]), when it has
//! long finished, instead of the critical path waiting for it.

use std::sync::{Arc, Mutex};

use crate::world::Address;

/// Terminations requested and not yet seen through. Shared by the clones of
/// a provider.
#[derive(Debug, Clone, Default)]
pub struct Background(Arc<Mutex<Vec<Terminating>>>);

/// Instances whose termination a step of `address` requested.
#[derive(Debug, Clone)]
pub(crate) struct Terminating {
    pub address: Address,
    /// What they are, for messages (`web.image.app: builder`).
    pub what: String,
    pub instances: Vec<String>,
}

impl Background {
    pub(crate) fn terminating(&self, terminating: Terminating) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(terminating);
    }

    /// Everything requested so far, handed over to be checked.
    pub(crate) fn take(&self) -> Vec<Terminating> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
