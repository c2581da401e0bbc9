//! Listener rules: how a service's colour is put in use before any traffic
//! reaches it. AWS health-checks a target group only while a listener's
//! default action or a rule forwards to it; a listener with no colour yet
//! (its 503) gets a rule that only test traffic matches (a header),
//! forwarding to the new colour.

use std::collections::BTreeMap;

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, HttpHeaderConditionConfig, Rule, RuleCondition,
};

use super::client::{found, sdk_tags};
use super::{DefaultAction, SdkElbv2};
use crate::cloud::sdk::ELBV2;
use crate::cloud::CloudError;

/// A listener rule, as drctl reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerRule {
    pub arn: String,
    /// `default` for the listener's default rule, else a number.
    pub priority: String,
    /// The target groups its forward action names, at any weight.
    pub forwards_to: Vec<String>,
    /// Its `http-header` conditions: (header name, first value).
    pub headers: Vec<(String, String)>,
}

impl ListenerRule {
    /// Whether it matches requests whose header `name` is set (any value).
    pub fn matches_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }
}

/// What drctl needs of a listener's rules.
#[allow(async_fn_in_trait)] // used with generics inside this crate, never as dyn
pub trait ListenerRules {
    /// Every rule of the listener, the default one included (paged).
    async fn rules(&self, listener: &str) -> Result<Vec<ListenerRule>, CloudError>;
    /// A rule at `priority` forwarding requests whose header `header.0` is
    /// `header.1` to `target_group`.
    async fn create_header_rule(
        &self,
        listener: &str,
        priority: i32,
        header: (&str, &str),
        target_group: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<ListenerRule, CloudError>;
    async fn delete_rule(&self, arn: &str) -> Result<(), CloudError>;
}

impl ListenerRules for SdkElbv2 {
    async fn rules(&self, listener: &str) -> Result<Vec<ListenerRule>, CloudError> {
        let mut rules = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            // DescribeRules pages by marker; the SDK has no paginator for it.
            let request = self
                .client
                .describe_rules()
                .listener_arn(listener)
                .set_marker(marker.take());
            // A listener deleted since it was listed has no rules.
            let Some(out) = found(ELBV2.call(request.send()).await)? else {
                return Ok(rules);
            };
            rules.extend(out.rules().iter().map(read_rule));
            match out.next_marker() {
                Some(next) if !next.is_empty() => marker = Some(next.to_string()),
                _ => return Ok(rules),
            }
        }
    }

    async fn create_header_rule(
        &self,
        listener: &str,
        priority: i32,
        header: (&str, &str),
        target_group: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<ListenerRule, CloudError> {
        let condition = RuleCondition::builder()
            .field("http-header")
            .http_header_config(
                HttpHeaderConditionConfig::builder()
                    .http_header_name(header.0)
                    .values(header.1)
                    .build(),
            )
            .build();
        let request = self
            .client
            .create_rule()
            .listener_arn(listener)
            .priority(priority)
            .conditions(condition)
            .actions(super::default_action(DefaultAction::Forward(target_group)))
            .set_tags(Some(sdk_tags(tags)));
        let out = ELBV2.call(request.send()).await?;
        ELBV2.required(out, "Rules", |o| o.rules?.first().map(read_rule))
    }

    async fn delete_rule(&self, arn: &str) -> Result<(), CloudError> {
        ELBV2
            .call(self.client.delete_rule().rule_arn(arn).send())
            .await?;
        Ok(())
    }
}

fn read_rule(rule: &Rule) -> ListenerRule {
    ListenerRule {
        arn: rule.rule_arn().unwrap_or_default().to_string(),
        priority: rule.priority().unwrap_or_default().to_string(),
        forwards_to: forwarded_groups(rule.actions()),
        headers: rule
            .conditions()
            .iter()
            .filter_map(|c| c.http_header_config())
            .filter_map(|h| {
                let name = h.http_header_name()?.to_string();
                Some((name, h.values().first().cloned().unwrap_or_default()))
            })
            .collect(),
    }
}

/// Every target group the forward actions name, whatever their weight.
pub fn forwarded_groups(actions: &[Action]) -> Vec<String> {
    let mut groups = Vec::new();
    for action in actions
        .iter()
        .filter(|a| a.r#type() == Some(&ActionTypeEnum::Forward))
    {
        groups.extend(action.target_group_arn().map(str::to_string));
        if let Some(config) = action.forward_config() {
            groups.extend(
                config
                    .target_groups()
                    .iter()
                    .filter_map(|g| g.target_group_arn().map(str::to_string)),
            );
        }
    }
    groups.sort();
    groups.dedup();
    groups
}

/// The lowest rule priority no rule of the listener has (AWS: 1–50000).
/// Rules drctl adds go first, so no rule of the user's shadows them; they
/// match only a header that real clients never send.
pub fn free_priority(rules: &[ListenerRule]) -> i32 {
    let taken: std::collections::BTreeSet<i32> = rules
        .iter()
        .filter_map(|r| r.priority.parse().ok())
        .collect();
    (1..=50_000).find(|p| !taken.contains(p)).unwrap_or(50_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(priority: &str) -> ListenerRule {
        ListenerRule {
            arn: format!("arn:rule/{priority}"),
            priority: priority.into(),
            forwards_to: Vec::new(),
            headers: Vec::new(),
        }
    }

    #[test]
    fn a_test_rule_takes_the_lowest_free_priority() {
        assert_eq!(free_priority(&[rule("default")]), 1);
        assert_eq!(free_priority(&[rule("default"), rule("1"), rule("3")]), 2);
    }

    #[test]
    fn forward_actions_name_their_groups_at_any_weight() {
        let weighted = super::super::default_action(DefaultAction::Weighted(&[
            ("arn:tg/b".to_string(), 100),
            ("arn:tg/a".to_string(), 0),
        ]));
        let plain = super::super::default_action(DefaultAction::Forward("arn:tg/c"));
        let fixed = super::super::default_action(DefaultAction::Unavailable);
        assert_eq!(
            forwarded_groups(&[weighted, plain, fixed]),
            ["arn:tg/a", "arn:tg/b", "arn:tg/c"]
        );
    }
}
