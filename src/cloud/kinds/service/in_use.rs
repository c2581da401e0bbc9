//! A colour's target group on the listener. AWS health-checks a target
//! group only while a listener's default action or a rule forwards to it;
//! until then every target reads `unused` / `Target.NotInUse`. So a new
//! colour's group is put in use before its health is awaited:
//!
//! - beside a live colour, as a weight-0 member of the listener's forward
//!   action (no traffic, but checked; as CodeDeploy keeps its idle group);
//! - on a listener with no colour yet (its 503), through a rule that only
//!   test traffic matches (`X-Drctl-Colour: <colour>`), removed once the
//!   colour takes the default action.
//!
//! Every colour the service keeps stays in the forward action at weight 0
//! until it is removed, so a rollback is one call and its health visible.

use std::collections::BTreeMap;

use crate::cloud::aws::AwsProvider;
use crate::cloud::elbv2::{forward_weights, free_priority, DefaultAction, Elbv2, ListenerRules};
use crate::cloud::kinds::common::gone_ok;
use crate::cloud::CloudError;
use crate::kinds::service::colours::Colour;
use crate::kinds::service::TEST_HEADER;
use crate::world::Tags;

/// How a colour's group is in use on its listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum InUse {
    /// A member of the listener's forward action (weight 0 while idle).
    Member,
    /// Behind this test rule (its ARN).
    Rule(String),
}

/// Puts `colour`'s group in use on `listener`: at weight 0 beside `live`
/// (the service's live colour there), else by a test rule. Idempotent: a
/// group already in the action, or already behind a test rule, is left.
pub(super) async fn put_in_use(
    aws: &AwsProvider,
    listener: &str,
    colour: &Colour,
    live: Option<&Colour>,
    tags: &Tags,
) -> Result<InUse, CloudError> {
    let group = colour.target_group.as_str();
    if live.is_some_and(|l| l.listener == listener) {
        let current = aws.elbv2.listener(listener).await?;
        let members = current
            .as_ref()
            .map(|l| forward_weights(l.default_actions()))
            .unwrap_or_default();
        if members.iter().any(|(g, _)| g == group) {
            return Ok(InUse::Member);
        }
        let mut weights = members;
        weights.push((group.to_string(), 0));
        aws.elbv2
            .set_default_action(listener, DefaultAction::Weighted(&weights))
            .await?;
        return Ok(InUse::Member);
    }
    let mut rule_tags: BTreeMap<String, String> = tags.clone();
    rule_tags.remove(crate::types::tags::SPEC);
    // Two services on one listener may race for the lowest free priority:
    // the loser reads the rules again and takes the next.
    let mut attempts = 0;
    loop {
        let rules = aws.elbv2.rules(listener).await?;
        let ours = |r: &crate::cloud::elbv2::ListenerRule| {
            r.matches_header(TEST_HEADER) && r.forwards_to.iter().any(|g| g == group)
        };
        if let Some(rule) = rules.iter().find(|r| ours(r)) {
            return Ok(InUse::Rule(rule.arn.clone()));
        }
        let header = (TEST_HEADER, colour.name.as_str());
        let made = aws
            .elbv2
            .create_header_rule(listener, free_priority(&rules), header, group, &rule_tags)
            .await;
        attempts += 1;
        match made {
            Err(e) if e.code() == Some("PriorityInUse") && attempts < 5 => continue,
            other => return other.map(|rule| InUse::Rule(rule.arn)),
        }
    }
}

/// Takes `colour`'s group out of use: out of the forward action of
/// `listener` (or of the listener it is a member of), and its test rules
/// deleted, so the group can be deleted. A colour taking traffic is the
/// caller's to refuse; its weight here is 0.
pub(super) async fn take_out_of_use(
    aws: &AwsProvider,
    listener: &str,
    colour: &Colour,
) -> Result<(), CloudError> {
    let group = colour.target_group.as_str();
    if group.is_empty() {
        return Ok(());
    }
    let mut listeners = vec![listener, colour.listener.as_str()];
    listeners.retain(|l| !l.is_empty());
    listeners.dedup();
    if listeners.is_empty() && !colour.test_rule.is_empty() {
        // A colour behind its test rule alone (as a teardown finds it).
        gone_ok(aws.elbv2.delete_rule(&colour.test_rule).await)?;
    }
    for arn in listeners {
        let Some(current) = aws.elbv2.listener(arn).await? else {
            continue;
        };
        let members = forward_weights(current.default_actions());
        if members.iter().any(|(g, _)| g == group) {
            let rest: Vec<(String, i32)> =
                members.into_iter().filter(|(g, _)| g != group).collect();
            let action = if rest.iter().any(|(_, w)| *w > 0) {
                DefaultAction::Weighted(&rest)
            } else {
                // Nothing else takes traffic: the listener's 503 again.
                DefaultAction::Unavailable
            };
            gone_ok(aws.elbv2.set_default_action(arn, action).await)?;
        }
        drop_test_rules(aws, arn, colour).await?;
    }
    Ok(())
}

/// Deletes the test rules that put `colour` in use: once it takes the
/// default action, test traffic reaches it like any other. A colour that
/// was a member of `listener`'s action already never needed one.
pub(super) async fn drop_test_rules(
    aws: &AwsProvider,
    listener: &str,
    colour: &Colour,
) -> Result<(), CloudError> {
    if colour.listener == listener && colour.test_rule.is_empty() {
        return Ok(());
    }
    let mut doomed: std::collections::BTreeSet<String> = aws
        .elbv2
        .rules(listener)
        .await?
        .into_iter()
        .filter(|r| r.matches_header(TEST_HEADER) && r.forwards_to.contains(&colour.target_group))
        .map(|r| r.arn)
        .collect();
    // The one discovery found, should the listener have moved on.
    if !colour.test_rule.is_empty() {
        doomed.insert(colour.test_rule.clone());
    }
    for rule in doomed {
        gone_ok(aws.elbv2.delete_rule(&rule).await)?;
    }
    Ok(())
}

/// The listener's forward action with `to` at `share` percent and `from`
/// (if any) at the rest; every other colour of the service that is a
/// member stays at weight 0 (in use, so its health stays visible and a
/// rollback is one call). What is not a colour of the service (the
/// listener's own target group before the first cutover) leaves it.
pub(super) fn shares(
    colours: &[Colour],
    listener: &str,
    to: &Colour,
    share: i64,
    from: Option<&Colour>,
) -> Vec<(String, i32)> {
    let share = share.clamp(0, 100) as i32;
    let mut weights = vec![(to.target_group.clone(), share)];
    if let Some(from) =
        from.filter(|f| f.target_group != to.target_group && !f.target_group.is_empty())
    {
        weights.push((from.target_group.clone(), 100 - share));
    }
    for c in colours {
        let member = c.listener == listener && !c.target_group.is_empty();
        if member && !weights.iter().any(|(g, _)| *g == c.target_group) {
            weights.push((c.target_group.clone(), 0));
        }
    }
    weights
}

#[cfg(test)]
mod tests {
    use super::*;

    fn colour(name: &str, listener: &str, traffic: i64) -> Colour {
        Colour {
            name: name.into(),
            target_group: format!("tg/{name}"),
            listener: listener.into(),
            traffic,
            complete: true,
            ..Colour::default()
        }
    }

    #[test]
    fn a_cutover_keeps_the_old_colour_in_the_action_at_weight_0() {
        let blue = colour("blue", "L", 100);
        let green = colour("green", "L", 0);
        let colours = [blue.clone(), green.clone()];
        assert_eq!(
            shares(&colours, "L", &green, 100, Some(&blue)),
            [("tg/green".to_string(), 100), ("tg/blue".to_string(), 0)]
        );
        assert_eq!(
            shares(&colours, "L", &green, 10, Some(&blue)),
            [("tg/green".to_string(), 10), ("tg/blue".to_string(), 90)],
            "a canary weight"
        );
        assert_eq!(
            shares(&colours, "L", &blue, 100, Some(&green)),
            [("tg/blue".to_string(), 100), ("tg/green".to_string(), 0)],
            "a rollback is the same call the other way"
        );
    }

    #[test]
    fn the_first_cutover_takes_the_listener_over_alone() {
        // Blue was put in use by a test rule, not by the action.
        let blue = colour("blue", "", 0);
        assert_eq!(
            shares(std::slice::from_ref(&blue), "L", &blue, 100, None),
            [("tg/blue".to_string(), 100)]
        );
        // Members of another listener stay out.
        let other = colour("green", "M", 0);
        assert_eq!(
            shares(&[blue.clone(), other], "L", &blue, 100, None),
            [("tg/blue".to_string(), 100)]
        );
    }
}
