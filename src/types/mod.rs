//! Names every layer shares, defined once at the bottom: this module
//! imports nothing else of the crate. Resource kinds, tag keys and gate
//! identity; what exists (values, addresses, observed resources) is its
//! neighbour [`crate::world`], the one hash [`crate::digest`].

mod gate;
mod kind;
pub mod tags;

pub use gate::GateId;
pub(crate) use kind::with_each_kind;
pub use kind::ResourceKind;
