//! drctl's listener actions and health checks in ELBv2's wire form, and back.

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, FixedResponseActionConfig, ForwardActionConfig, ProtocolEnum,
    TargetGroupTuple,
};

use super::{DefaultAction, UNAVAILABLE_BODY};

/// The health-check protocol for a target group's protocol: HTTPS checks for
/// HTTPS groups, HTTP checks otherwise (also for TCP groups, so the path is
/// meaningful everywhere).
pub fn health_check_protocol(protocol: &str) -> ProtocolEnum {
    if protocol.eq_ignore_ascii_case("HTTPS") {
        ProtocolEnum::Https
    } else {
        ProtocolEnum::Http
    }
}

/// The wire form of a default action.
pub fn default_action(action: DefaultAction<'_>) -> Action {
    match action {
        DefaultAction::Forward(target_group) => Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn(target_group)
            .build(),
        DefaultAction::Unavailable => Action::builder()
            .r#type(ActionTypeEnum::FixedResponse)
            .fixed_response_config(
                FixedResponseActionConfig::builder()
                    .status_code("503")
                    .content_type("text/plain")
                    .message_body(UNAVAILABLE_BODY)
                    .build(),
            )
            .build(),
        DefaultAction::Weighted(groups) => Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .forward_config(
                ForwardActionConfig::builder()
                    .set_target_groups(Some(
                        groups
                            .iter()
                            .map(|(arn, weight)| {
                                TargetGroupTuple::builder()
                                    .target_group_arn(arn)
                                    .weight(*weight)
                                    .build()
                            })
                            .collect(),
                    ))
                    .build(),
            )
            .build(),
    }
}

/// Each target group a listener's default action forwards to, with its
/// share of the traffic in percent (a plain forward: 100). Empty for fixed
/// responses and redirects.
pub fn forward_weights(actions: &[Action]) -> Vec<(String, i32)> {
    let Some(action) = actions
        .iter()
        .find(|a| a.r#type() == Some(&ActionTypeEnum::Forward))
    else {
        return Vec::new();
    };
    if let Some(arn) = action.target_group_arn() {
        return vec![(arn.to_string(), 100)];
    }
    let groups = action
        .forward_config()
        .map(|c| c.target_groups())
        .unwrap_or_default();
    let total: i32 = groups.iter().map(|g| g.weight().unwrap_or(1)).sum();
    groups
        .iter()
        .filter_map(|g| {
            let weight = g.weight().unwrap_or(1);
            let share = if total > 0 { weight * 100 / total } else { 0 };
            Some((g.target_group_arn()?.to_string(), share))
        })
        .collect()
}

/// The single target group a listener's default actions forward to, if
/// they forward everything to exactly one (a plain forward, or a forward
/// config in which one group has all the weight: the others, at 0, are
/// only kept in use). `None` for fixed responses, redirects and traffic
/// split across several groups.
pub fn forwarded_target_group(actions: &[Action]) -> Option<String> {
    let [action] = actions else { return None };
    if action.r#type() != Some(&ActionTypeEnum::Forward) {
        return None;
    }
    if let Some(arn) = action.target_group_arn() {
        return Some(arn.to_string());
    }
    let groups = action.forward_config()?.target_groups();
    let weighted: Vec<&TargetGroupTuple> = match groups {
        [only] => vec![only],
        // A missing weight is AWS's default, 1.
        _ => groups
            .iter()
            .filter(|g| g.weight().unwrap_or(1) > 0)
            .collect(),
    };
    match weighted[..] {
        [only] => only.target_group_arn().map(str::to_string),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_elasticloadbalancingv2::types::{ForwardActionConfig, TargetGroupTuple};

    #[test]
    fn a_single_forward_names_its_target_group() {
        let plain = default_action(DefaultAction::Forward("arn:tg/a"));
        assert_eq!(forwarded_target_group(&[plain]), Some("arn:tg/a".into()));

        let tuple = |arn: &str| {
            TargetGroupTuple::builder()
                .target_group_arn(arn)
                .weight(1)
                .build()
        };
        let one = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .forward_config(
                ForwardActionConfig::builder()
                    .target_groups(tuple("b"))
                    .build(),
            )
            .build();
        assert_eq!(forwarded_target_group(&[one]), Some("b".into()));

        let weighted = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .forward_config(
                ForwardActionConfig::builder()
                    .target_groups(tuple("b"))
                    .target_groups(tuple("c"))
                    .build(),
            )
            .build();
        assert_eq!(
            forwarded_target_group(std::slice::from_ref(&weighted)),
            None
        );
        assert_eq!(
            forward_weights(&[weighted]),
            [("b".to_string(), 50), ("c".to_string(), 50)]
        );
        let idle = [("g".to_string(), 100), ("b".to_string(), 0)];
        let idle = default_action(DefaultAction::Weighted(&idle));
        assert_eq!(
            forwarded_target_group(std::slice::from_ref(&idle)),
            Some("g".into()),
            "a group at weight 0 is in use but takes nothing"
        );
        assert_eq!(
            forward_weights(&[idle]),
            [("g".to_string(), 100), ("b".to_string(), 0)]
        );
        let canary = [("g".to_string(), 10), ("b".to_string(), 90)];
        assert_eq!(
            forward_weights(&[default_action(DefaultAction::Weighted(&canary))]),
            canary
        );
        assert_eq!(
            forwarded_target_group(&[default_action(DefaultAction::Unavailable)]),
            None
        );
    }
}
