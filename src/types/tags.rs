//! The tags that make the cloud the state (SPEC.md "Tags on every resource").
//!
//! Pure: builds tag sets and reads identity back from them.

use std::collections::BTreeMap;

pub const ENV: &str = "drctl:env";
pub const STACK: &str = "drctl:stack";
pub const RESOURCE: &str = "drctl:resource";
pub const SPEC: &str = "drctl:spec";
pub const RUN: &str = "drctl:run";
pub const COLOR: &str = "drctl:color";
/// On a listener: the service (address) that owns its traffic since its
/// first cutover (SPEC.md: no drift is reported for its default action).
pub const TRAFFIC: &str = "drctl:traffic";
pub const NAME: &str = "Name";

/// Who a resource belongs to: enough to find it again with no state file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Identity {
    pub env: String,
    pub stack: String,
    /// `<kind>.<name>`
    pub resource: String,
}

impl Identity {
    pub fn new(env: &str, stack: &str, resource: &str) -> Self {
        Identity {
            env: env.to_string(),
            stack: stack.to_string(),
            resource: resource.to_string(),
        }
    }

    /// Reads the identity back from a resource's tags; `None` for resources drctl did not create.
    pub fn from_tags(tags: &BTreeMap<String, String>) -> Option<Self> {
        Some(Identity {
            env: tags.get(ENV)?.clone(),
            stack: tags.get(STACK)?.clone(),
            resource: tags.get(RESOURCE)?.clone(),
        })
    }

    /// The `Name` tag shown in the AWS console: `<env>/<stack>/<kind>.<name>`.
    pub fn display_name(&self) -> String {
        format!("{}/{}/{}", self.env, self.stack, self.resource)
    }
}

/// The full tag set for a resource drctl creates: the user's tags, then
/// drctl's own (which win on conflict).
pub fn tag_set(
    identity: &Identity,
    spec_hash: &str,
    run_id: &str,
    user_tags: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut tags = user_tags.clone();
    tags.entry(NAME.to_string())
        .or_insert_with(|| identity.display_name());
    tags.insert(ENV.into(), identity.env.clone());
    tags.insert(STACK.into(), identity.stack.clone());
    tags.insert(RESOURCE.into(), identity.resource.clone());
    tags.insert(SPEC.into(), spec_hash.to_string());
    tags.insert(RUN.into(), run_id.to_string());
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_through_tags() {
        let id = Identity::new("web-dr", "network", "vpc.main");
        let user = BTreeMap::from([
            ("team".to_string(), "sre".to_string()),
            (ENV.to_string(), "spoofed".to_string()),
        ]);
        let tags = tag_set(&id, "abc123", "run-1", &user);
        assert_eq!(Identity::from_tags(&tags), Some(id));
        assert_eq!(tags["team"], "sre");
        assert_eq!(tags[ENV], "web-dr", "drctl's tags win over the user's");
        assert_eq!(tags[NAME], "web-dr/network/vpc.main");
        assert_eq!(tags[RUN], "run-1");
    }

    #[test]
    fn foreign_resources_have_no_identity() {
        assert_eq!(Identity::from_tags(&BTreeMap::new()), None);
    }
}
