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
/// On everything a drill creates: the drill's run id.
pub const DRILL: &str = "drctl:drill";
/// On everything a drill creates: when it may be swept (UTC, RFC 3339).
pub const EXPIRES: &str = "drctl:expires";

/// A drill's lifetime, written on every object it creates from its first
/// API call, so that whatever a dead drill left can be found and swept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifetime {
    /// The drill's run id.
    pub drill: String,
    /// Milliseconds since the Unix epoch.
    pub expires_at: i64,
}

impl Lifetime {
    pub fn tags(&self) -> [(String, String); 2] {
        [
            (DRILL.to_string(), self.drill.clone()),
            (EXPIRES.to_string(), format_expires(self.expires_at)),
        ]
    }
}

/// `2026-03-14T04:00:00Z`: whole seconds, rounded up (an object never reads
/// as expired before its drill's deadline).
pub fn format_expires(millis: i64) -> String {
    let seconds = millis.div_euclid(1000) + i64::from(millis.rem_euclid(1000) > 0);
    jiff::Timestamp::from_second(seconds)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| millis.to_string())
}

/// A `drctl:expires` value back in milliseconds; `None` for anything else
/// (which is never read as expired).
pub fn parse_expires(text: &str) -> Option<i64> {
    text.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

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
    lifetime: Option<&Lifetime>,
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
    if let Some(lifetime) = lifetime {
        tags.extend(lifetime.tags());
    }
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
        let tags = tag_set(&id, "abc123", "run-1", None, &user);
        assert_eq!(Identity::from_tags(&tags), Some(id));
        assert_eq!(tags["team"], "sre");
        assert_eq!(tags[ENV], "web-dr", "drctl's tags win over the user's");
        assert_eq!(tags[NAME], "web-dr/network/vpc.main");
        assert_eq!(tags[RUN], "run-1");
    }

    #[test]
    fn a_drill_s_lifetime_is_in_its_tags_and_reads_back() {
        let id = Identity::new("web-dr-drill-x", "network", "vpc.main");
        let lifetime = Lifetime {
            drill: "run-7".into(),
            // 2026-11-22T05:15:00.001Z: rounded up to the next second
            expires_at: 1_795_324_500_001,
        };
        let tags = tag_set(&id, "h", "run-7", Some(&lifetime), &BTreeMap::new());
        assert_eq!(tags[DRILL], "run-7");
        assert_eq!(tags[EXPIRES], "2026-11-22T05:15:01Z");
        assert_eq!(parse_expires(&tags[EXPIRES]), Some(1_795_324_501_000));
        assert_eq!(parse_expires("soon"), None);
        assert!(!tag_set(&id, "h", "r", None, &BTreeMap::new()).contains_key(EXPIRES));
    }

    #[test]
    fn foreign_resources_have_no_identity() {
        assert_eq!(Identity::from_tags(&BTreeMap::new()), None);
    }
}
