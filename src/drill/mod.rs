//! DR drills: rebuild a runbook's stacks from nothing in an isolated
//! environment, check them, time them, tear them down, prove nothing is left,
//! and report. A drill is an application-layer function like apply: it
//! reports through the same sinks and writes the same journal, so a drill
//! killed mid-way is finished by `drctl resume`.
//!
//! - [`rehearse`]: the drill from start to end (and its resume).
//! - [`checks`], [`http`]: the checks run after the last phase.
//! - `teardown`, [`leaks`]: the teardown, and the leak check after it,
//!   independent of discovery.
//! - `services`: the colours made, the cutover, and any automatic rollback.
//! - [`timing`]: phases, steps, gates and the critical path from the journal.
//! - [`report`], [`render`], [`junit`], [`history`]: the report, its
//!   Markdown and JUnit forms, and past drills.

mod conclude;
mod expiry;
pub mod history;
mod images;
pub mod junit;
pub mod leaks;
pub mod rehearse;
pub mod render;
pub mod report;
mod services;
pub mod sweep;
mod teardown;
pub mod timing;
