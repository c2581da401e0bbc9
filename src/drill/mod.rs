//! DR drills: rebuild a runbook's stacks from nothing in an isolated
//! environment, check them, time them, tear them down, prove nothing is left,
//! and report. A drill is an application-layer function like apply: it
//! reports through the same sinks and writes the same journal, so a drill
//! killed mid-way is finished by `drctl resume`.

pub mod history;
pub mod render;
pub mod report;
pub mod timing;
