//! Gate identity: a phase and, between a canary's weights, the weight.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A gate: a phase's own (`cutover`), or one between a gated canary's
/// weights, named for its phase and the weight it moves to next
/// (`cutover@50%`, as `drctl approve RUN --gate cutover@50%` takes it).
/// Written as that text only at the edges: journals, plans, the terminal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GateId {
    pub phase: String,
    /// The canary weight (percent) the gate lets the traffic move to.
    pub weight: Option<u8>,
}

impl GateId {
    /// A phase's own gate.
    pub fn phase(phase: &str) -> GateId {
        GateId {
            phase: phase.to_string(),
            weight: None,
        }
    }

    /// The gate before a canary moves to `weight` percent.
    pub fn canary(phase: &str, weight: i64) -> GateId {
        GateId {
            phase: phase.to_string(),
            weight: Some(weight.clamp(0, 100) as u8),
        }
    }

    /// From its text: `phase@N%` is a canary gate, anything else a phase's.
    pub fn parse(text: &str) -> GateId {
        let canary = text.rsplit_once('@').and_then(|(phase, weight)| {
            let weight = weight.strip_suffix('%')?.parse::<u8>().ok()?;
            Some(GateId {
                phase: phase.to_string(),
                weight: Some(weight),
            })
        });
        canary.unwrap_or_else(|| GateId::phase(text))
    }

    pub fn is_canary(&self) -> bool {
        self.weight.is_some()
    }
}

impl fmt::Display for GateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.weight {
            Some(weight) => write!(f, "{}@{weight}%", self.phase),
            None => f.write_str(&self.phase),
        }
    }
}

// As its text, so plans saved before it was a type read the same.
impl Serialize for GateId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GateId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<GateId, D::Error> {
        Ok(GateId::parse(&String::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gate_reads_back_as_written() {
        for gate in [
            GateId::phase("cutover"),
            GateId::canary("cutover", 50),
            GateId::phase("a@b"),
        ] {
            assert_eq!(GateId::parse(&gate.to_string()), gate);
        }
        assert_eq!(GateId::canary("cutover", 50).to_string(), "cutover@50%");
        assert!(GateId::parse("cutover@100%").is_canary());
        assert!(!GateId::parse("cutover@x%").is_canary());
        let json = serde_json::to_string(&GateId::canary("go", 10)).unwrap();
        assert_eq!(json, "\"go@10%\"");
        assert_eq!(
            serde_json::from_str::<GateId>(&json).unwrap(),
            GateId::canary("go", 10)
        );
    }
}
