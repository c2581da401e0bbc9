//! drctl: a disaster-recovery orchestrator for AWS infrastructure.
//!
//! The modules follow the architecture, from the user's files to the cloud:
//!
//! - [`diag`]: validation problems with file, line, column and key.
//! - [`model`]: stacks and runbooks parsed strictly into typed values (pure).
//! - [`graph`]: the stack dependency graph and a runbook's phases (pure).
//! - [`forecast`]: the RTO forecast of a plan, and the longest-path
//!   algorithm behind it and the drill reports' bounds (pure).
//! - [`kinds`]: one module per resource kind: its schema, normal form,
//!   change rules, validation, and how it is read, created, updated and
//!   deleted on AWS. Nothing else matches on the kind.
//! - [`cloud`]: one small adapter trait per AWS service over the official SDK.
//! - [`sandbox`]: a local AWS endpoint (moto server) for trying and testing.
//! - [`events`]: the typed events every layer reports, and the sinks that consume them.
//! - [`app`]: plan, apply, resume, approve, reject, destroy as library functions.
//! - [`drill`]: DR drills (rebuild, check, time, tear down, leak check, report).
//! - [`cli`]: the command line (its commands and terminal/JSON sinks), a
//!   thin layer over the above.

pub mod app;
pub mod cli;
pub mod clock;
pub mod cloud;
pub mod diag;
pub mod digest;
pub mod drill;
mod durable;
pub mod error;
pub mod events;
pub mod execute;
pub mod forecast;
pub mod graph;
pub mod journal;
pub mod kinds;
pub mod load;
pub mod lock;
pub mod model;
pub mod notify;
pub mod outcome;
pub mod plan;
pub mod planner;
pub mod preflight;
pub mod run;
pub mod sandbox;
pub mod schedule;
pub mod store;
pub mod types;
pub mod verify;
pub mod world;

pub use error::Error;
