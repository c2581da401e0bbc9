//! The AWS half of [`crate::kinds::listener`]: reading its objects back, creating,
//! updating and deleting them.

use crate::cloud::aws::{AwsProvider, Discovery};
use crate::cloud::elbv2::{self, DefaultAction, Elbv2};
use crate::cloud::kinds::common::{gone_ok, vanished, Seen};
use crate::cloud::provider::CreateRequest;
use crate::cloud::CloudError;
use crate::kinds::common::Want;
use crate::kinds::listener::{owned_by_service, UPDATABLE};
use crate::types::tags;
use crate::types::ResourceKind;
use crate::world::{Attrs, ObservedResource, Tags, Value};
use aws_sdk_elasticloadbalancingv2::types::Listener as AwsListener;

pub struct Listener;

impl super::AwsKind for Listener {
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
            found.extend(seen(listener, t).and_then(|s| s.discovered(ResourceKind::Listener)));
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
    if let Some(certificate) = default_certificate(listener) {
        seen = seen.attr("certificate_arn", Value::Str(certificate.into()));
    }
    // Once a service owns the traffic, the default action is the service's
    // live colour, not this resource's attribute: nothing to compare.
    if !owned {
        if let Some(group) = elbv2::forwarded_target_group(listener.default_actions()) {
            seen = seen.attr("default_target_group", Value::Str(group));
        }
    }
    Some(seen)
}

/// The listener's default certificate. DescribeListeners lists only that
/// one; should a listing carry more, the default is the one marked so.
fn default_certificate(listener: &AwsListener) -> Option<&str> {
    let certificates = listener.certificates();
    certificates
        .iter()
        .find(|c| c.is_default() == Some(true))
        .or_else(|| certificates.first())
        .and_then(|c| c.certificate_arn())
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
            want.opt_str("certificate_arn")?,
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
    let changed = UPDATABLE
        .iter()
        .any(|k| current.attrs.get(*k) != attrs.get(*k));
    if changed {
        // Only a new certificate is sent: without one, ModifyListener keeps
        // the listener's own.
        let certificate = want
            .opt_str("certificate_arn")?
            .filter(|c| current.attrs.get("certificate_arn").and_then(Value::as_str) != Some(*c));
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
                certificate,
                action,
            )
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use aws_sdk_elasticloadbalancingv2::types::{Certificate, ProtocolEnum};

    use super::*;

    fn listener(protocol: ProtocolEnum, certificates: Vec<Certificate>) -> AwsListener {
        AwsListener::builder()
            .listener_arn("arn:aws:elasticloadbalancing:us-east-1:1:listener/app/lb/1/2")
            .load_balancer_arn("arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/lb/1")
            .protocol(protocol)
            .port(443)
            .set_certificates(Some(certificates))
            .build()
    }

    fn certificate(name: &str, default: Option<bool>) -> Certificate {
        Certificate::builder()
            .certificate_arn(format!("arn:aws:acm:us-east-1:1:certificate/{name}"))
            .set_is_default(default)
            .build()
    }

    /// Read back as written, or a listener with a certificate would differ
    /// from its stack on every plan.
    #[test]
    fn the_default_certificate_is_read_back() {
        let read = |l: &AwsListener| {
            seen(l, Tags::new())
                .expect("has an ARN")
                .attrs
                .get("certificate_arn")
                .cloned()
        };
        let arn = |name: &str| {
            Some(Value::Str(format!(
                "arn:aws:acm:us-east-1:1:certificate/{name}"
            )))
        };
        // DescribeListeners: the default certificate alone, unmarked.
        let https = listener(ProtocolEnum::Https, vec![certificate("a", None)]);
        assert_eq!(read(&https), arn("a"));
        // A listing with more: the one marked default.
        let both = listener(
            ProtocolEnum::Https,
            vec![
                certificate("extra", Some(false)),
                certificate("main", Some(true)),
            ],
        );
        assert_eq!(read(&both), arn("main"));
        // None: unset, as an HTTP listener's stack leaves it.
        assert_eq!(read(&listener(ProtocolEnum::Http, Vec::new())), None);
    }
}
