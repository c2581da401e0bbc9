//! Reading a service back: its colours (target groups and instances carrying
//! the service's address and a `drctl:color`) and where its listener sends
//! the traffic. A service is one object: the planner sees every colour at
//! once, and a plan's `current` covers them all.
//!
//! The object's `colors` attribute is a table, colour → [`Colour`] fields;
//! its exports are the live colour's (`live_color`, `target_group_arn`,
//! `ids`), or the newest finished colour's before the first cutover.

use crate::world::{Address, Attrs, ObservedResource, Tags, Value};
use std::collections::BTreeMap;

/// One colour of a service, as observed (in the service's `colors`
/// attribute, by name).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Colour {
    #[serde(skip)]
    pub name: String,
    /// Its target group's ARN ("" if an interrupted create made none yet).
    pub target_group: String,
    /// [`super::fleet_hash`] of what it runs ("" if unknown).
    pub fleet: String,
    /// Its create finished (healthy, `drctl:spec` written last).
    pub complete: bool,
    /// Its share of the listener's traffic, in percent.
    pub traffic: i64,
    /// The listener whose default action forwards to it, at any weight (0
    /// included: in use, so AWS health-checks it); "" if none does.
    pub listener: String,
    /// The test-traffic rule forwarding to it while no colour is live
    /// ([`super::TEST_HEADER`]); "" if none does.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub test_rule: String,
    /// Its instances that are not terminated (running or not).
    pub instances: Vec<String>,
    pub running: i64,
    pub image: String,
    pub instance_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<Value>,
    pub port: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_since: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced_at: Option<i64>,
}

impl Colour {
    pub(super) fn to_value(&self) -> Value {
        serde_json::to_value(self)
            .and_then(serde_json::from_value)
            .expect("a colour is a table of plain values")
    }

    fn from_value(name: &str, value: &Value) -> Option<Colour> {
        let colour: Colour = serde_json::from_value(serde_json::to_value(value).ok()?).ok()?;
        Some(Colour {
            name: name.to_string(),
            ..colour
        })
    }
}

/// The colours of an observed service, by name.
pub fn colours_of(service: &ObservedResource) -> Vec<Colour> {
    service
        .attrs
        .get("colors")
        .and_then(Value::as_table)
        .map(|t| {
            t.iter()
                .filter_map(|(name, v)| Colour::from_value(name, v))
                .collect()
        })
        .unwrap_or_default()
}

/// The live colour: of those taking traffic, the one that took it all
/// last (a canary on its way has a share but not that), else the one
/// taking the most.
pub(crate) fn live(colours: &[Colour]) -> Option<&Colour> {
    colours
        .iter()
        .filter(|c| c.traffic > 0)
        .max_by_key(|c| (c.live_since, c.traffic))
}

/// A canary on its way: a colour with a share of the traffic that is not
/// the live one.
pub(crate) fn canary_under_way(colours: &[Colour]) -> Option<&Colour> {
    let live = live(colours)?;
    colours
        .iter()
        .find(|c| c.traffic > 0 && c.name != live.name)
}

/// The name of an observed service's live colour ([`live`]).
pub fn live_colour(service: &ObservedResource) -> Option<String> {
    live(&colours_of(service)).map(|c| c.name.clone())
}

/// One service from its colours.
pub(crate) fn service_object(
    address: Address,
    colours: BTreeMap<String, (Colour, Tags)>,
) -> ObservedResource {
    let mut list: Vec<(Colour, Tags)> = colours.into_values().collect();
    for (c, _) in &mut list {
        c.instances.sort();
    }
    let all: Vec<Colour> = list.iter().map(|(c, _)| c.clone()).collect();
    let live_colour = live(&all);
    let is_live = live_colour.is_some();
    // What the service exports and is named by: the live colour, else the
    // newest finished one, else any.
    let main = live_colour
        .or_else(|| {
            all.iter()
                .filter(|c| c.complete)
                .max_by_key(|c| (c.live_since, c.name.clone()))
        })
        .or_else(|| all.first())
        .cloned()
        .unwrap_or_default();
    let tags = list
        .iter()
        .find(|(c, _)| c.name == main.name)
        .map(|(_, t)| t.clone())
        .unwrap_or_default();
    let mut attrs = Attrs::new();
    attrs.insert(
        "colors".into(),
        Value::Table(all.iter().map(|c| (c.name.clone(), c.to_value())).collect()),
    );
    let mut exports = Attrs::new();
    exports.insert(
        "live_color".into(),
        Value::Str(if is_live {
            main.name.clone()
        } else {
            String::new()
        }),
    );
    exports.insert(
        "target_group_arn".into(),
        Value::Str(main.target_group.clone()),
    );
    exports.insert(
        "ids".into(),
        Value::str_list(main.instances.iter().cloned()),
    );
    let id = if main.target_group.is_empty() {
        main.instances.first().cloned().unwrap_or_default()
    } else {
        main.target_group.clone()
    };
    ObservedResource {
        address,
        id,
        attrs,
        exports,
        tags,
    }
}
