//! `listener`: a load balancer's listener and where it sends traffic by
//! default (a target group, or a fixed 503 until a service cuts over).

use aws_sdk_elasticloadbalancingv2::types::Listener as AwsListener;

use super::common::{gone_ok, vanished, Seen, Want, PROTOCOL};
use super::{Kind, ResourceKind};
use crate::cloud::aws::{AwsProvider, Discovery};
use crate::cloud::elbv2::{self, DefaultAction, Elbv2};
use crate::cloud::provider::CreateRequest;
use crate::cloud::{tags, CloudError};
use crate::model::schema::{opt, req, Field, Ty, ValueType, PORT};
use crate::world::{Attrs, ObservedResource, Tags, Value};

pub struct Listener;

const FIELDS: &[Field] = &[
    req("load_balancer", Ty::IdOf(ResourceKind::LoadBalancer)),
    req("protocol", PROTOCOL),
    req("port", PORT),
    opt("default_target_group", Ty::IdOf(ResourceKind::TargetGroup)),
];

impl Kind for Listener {
    fn fields(&self) -> &'static [Field] {
        FIELDS
    }

    fn exports(&self) -> &'static [(&'static str, ValueType)] {
        &[("arn", ValueType::Str)]
    }

    fn updatable(&self, attr: &str) -> bool {
        matches!(attr, "protocol" | "port" | "default_target_group")
    }

    /// Unset `default_target_group` means a fixed 503.
    fn unset_is_a_value(&self, attr: &str) -> bool {
        attr == "default_target_group"
    }

    fn delete_rank(&self) -> u8 {
        1
    }

    aws_operations!();
}

async fn observe(aws: &AwsProvider, pass: &Discovery) -> Result<Vec<ObservedResource>, CloudError> {
    let env = pass.env();
    // Listeners live under load balancers: only ours can hold ours.
    let listeners = pass.listeners(aws).await?;
    let arns: Vec<String> = listeners
        .iter()
        .filter_map(|l| l.listener_arn().map(str::to_string))
        .collect();
    let mut tags = aws.elbv2.tags(&arns).await?;
    let mut found = Vec::new();
    for listener in listeners {
        let Some(t) = listener.listener_arn().and_then(|a| tags.remove(a)) else {
            continue;
        };
        if t.get(tags::ENV).map(String::as_str) == Some(env) {
            found.extend(
                seen(listener, t).and_then(|s| s.discovered(ResourceKind::Listener)),
            );
        }
    }
    Ok(found)
}

async fn update(
    aws: &AwsProvider,
    current: &ObservedResource,
    attrs: &Attrs,
    tags: &Tags,
) -> Result<ObservedResource, CloudError> {
    let (address, id) = (&current.address, current.id.as_str());
    modify(aws, current, attrs).await?;
    aws.retag_elbv2(id, &current.tags, tags).await?;
    let listener = aws.elbv2.listener(id).await?;
    let tags = aws.elbv2_tags(id).await?;
    listener
        .as_ref()
        .and_then(|l| seen(l, tags))
        .map(|s| s.at(address))
        .ok_or_else(|| vanished(address, id))
}

async fn delete(aws: &AwsProvider, current: &ObservedResource) -> Result<(), CloudError> {
    gone_ok(aws.elbv2.delete_listener(&current.id).await)
}

fn seen(listener: &AwsListener, tags: Tags) -> Option<Seen> {
    let arn = listener.listener_arn()?;
    let owned = tags.contains_key(tags::TRAFFIC);
    let mut seen = Seen::new(arn, tags)
        .attr(
            "load_balancer",
            Value::Str(listener.load_balancer_arn().unwrap_or_default().into()),
        )
        .attr(
            "protocol",
            Value::Str(
                listener
                    .protocol()
                    .map(|p| p.as_str())
                    .unwrap_or_default()
                    .into(),
            ),
        )
        .attr(
            "port",
            Value::Int(listener.port().unwrap_or_default().into()),
        )
        .export("arn", Value::Str(arn.into()));
    // Once a service owns the traffic, the default action is the service's
    // live colour, not this resource's attribute: nothing to compare.
    if !owned {
        if let Some(group) = elbv2::forwarded_target_group(listener.default_actions()) {
            seen = seen.attr("default_target_group", Value::Str(group));
        }
    }
    Some(seen)
}

/// Whether a service has cut over on this listener (and so owns its traffic).
fn owned_by_service(current: &ObservedResource) -> bool {
    current.tags.contains_key(tags::TRAFFIC)
}

async fn create(
    aws: &AwsProvider,
    req: &CreateRequest<'_>,
) -> Result<ObservedResource, CloudError> {
    let want = Want::new(req.address, req.attrs);
    let action = match want.opt_str("default_target_group")? {
        Some(group) => DefaultAction::Forward(group),
        None => DefaultAction::Unavailable,
    };
    let listener = aws
        .elbv2
        .create_listener(
            want.str("load_balancer")?,
            want.str("protocol")?,
            want.i32("port")?,
            action,
            req.tags,
        )
        .await?;
    seen(&listener, req.tags.clone())
        .map(|s| s.at(req.address))
        .ok_or(CloudError::MissingField {
            service: "ELBv2",
            operation: "CreateListener",
            field: "ListenerArn",
        })
}

async fn modify(
    aws: &AwsProvider,
    current: &ObservedResource,
    attrs: &Attrs,
) -> Result<(), CloudError> {
    let want = Want::new(&current.address, attrs);
    let changed = ["protocol", "port", "default_target_group"]
        .iter()
        .any(|k| current.attrs.get(*k) != attrs.get(*k));
    if changed {
        // A listener a service owns keeps the traffic where the service put it.
        let action = match want.opt_str("default_target_group")? {
            _ if owned_by_service(current) => None,
            Some(group) => Some(DefaultAction::Forward(group)),
            None => Some(DefaultAction::Unavailable),
        };
        aws.elbv2
            .modify_listener(
                &current.id,
                want.str("protocol")?,
                want.i32("port")?,
                action,
            )
            .await?;
    }
    Ok(())
}
