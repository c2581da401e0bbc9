//! The RTO forecast's vocabulary as a runbook writes it: step kinds, and
//! `[forecast.priors]`, the runbook's own expected duration of a kind.
//!
//! A step kind is a resource kind, plus the operation where the kind's
//! steps differ in how long they take: an image is baked or only copied, a
//! service makes a colour, moves its traffic or only maintains itself.
//! Other kinds are created (`vpc`) or updated in place (`vpc:update`).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::types::ResourceKind;

/// What a step does, as far as its duration goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StepOp {
    /// A new resource (or a replacement's new copy).
    Create,
    /// A change in place.
    Update,
    /// An image: builder, provisioning, CreateImage (and its copies).
    Bake,
    /// An image that exists: only its copies to other regions.
    Copy,
    /// A service's new colour: its fleet, target group, health.
    Colour,
    /// A service's traffic moving to a colour (ModifyListener, canary waits).
    Cutover,
    /// A service's health checks put in place, old colours retired.
    Maintain,
}

impl StepOp {
    fn name(self) -> &'static str {
        match self {
            StepOp::Create => "create",
            StepOp::Update => "update",
            StepOp::Bake => "bake",
            StepOp::Copy => "copy",
            StepOp::Colour => "colour",
            StepOp::Cutover => "cutover",
            StepOp::Maintain => "maintain",
        }
    }
}

/// A kind of step, with one expected duration: `vpc`, `vpc:update`,
/// `image:bake`, `service:colour`, …
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StepKind {
    pub kind: ResourceKind,
    pub op: StepOp,
}

impl StepKind {
    pub fn new(kind: ResourceKind, op: StepOp) -> Self {
        StepKind { kind, op }
    }

    /// The operations a resource kind's steps are told apart by.
    pub fn ops(kind: ResourceKind) -> &'static [StepOp] {
        match kind {
            ResourceKind::Image => &[StepOp::Bake, StepOp::Copy],
            ResourceKind::Service => &[StepOp::Colour, StepOp::Cutover, StepOp::Maintain],
            _ => &[StepOp::Create, StepOp::Update],
        }
    }

    /// Every step kind, in the order resource kinds sort in.
    pub fn all() -> Vec<StepKind> {
        ResourceKind::ALL
            .into_iter()
            .flat_map(|kind| Self::ops(kind).iter().map(move |&op| StepKind { kind, op }))
            .collect()
    }

    /// As written in `[forecast.priors]` (`vpc`, `image:bake`); `None` for
    /// anything else.
    pub fn parse(text: &str) -> Option<StepKind> {
        Self::all().into_iter().find(|k| k.to_string() == text)
    }
}

impl fmt::Display for StepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.op {
            StepOp::Create => write!(f, "{}", self.kind),
            op => write!(f, "{}:{}", self.kind, op.name()),
        }
    }
}

impl serde::Serialize for StepKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for StepKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        StepKind::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown step kind `{text}`")))
    }
}

/// `[forecast.priors]`: the runbook's expected duration of a step kind,
/// used instead of drctl's published-figure prior (until drills measure it).
pub type Priors = BTreeMap<StepKind, Duration>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_kinds_read_back_as_written() {
        let all = StepKind::all();
        let names: Vec<String> = all.iter().map(ToString::to_string).collect();
        for name in [
            "vpc",
            "vpc:update",
            "image:bake",
            "image:copy",
            "load_balancer",
            "service:colour",
            "service:cutover",
            "service:maintain",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
        }
        assert!(!names.iter().any(|n| n == "image" || n == "service"));
        for kind in all {
            assert_eq!(StepKind::parse(&kind.to_string()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(serde_json::from_str::<StepKind>(&json).unwrap(), kind);
        }
        assert_eq!(StepKind::parse("image:fry"), None);
    }
}
