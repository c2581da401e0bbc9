//! `listener`: a load balancer's listener, its default certificate (HTTPS),
//! and where it sends traffic by default (a target group, or a fixed 503
//! until a service cuts over).

use aws_sdk_elasticloadbalancingv2::types::Listener as AwsListener;

use super::common::{gone_ok, vanished, Seen, Want};
use super::{Kind, Problems, ResourceKind};
use crate::cloud::aws::{AwsProvider, Discovery};
use crate::cloud::elbv2::{self, DefaultAction, Elbv2};
use crate::cloud::provider::CreateRequest;
use crate::cloud::{tags, CloudError};
use crate::model::schema::{opt, req, Field, Ty, ValueType, PORT};
use crate::model::Resource;
use crate::world::{Attrs, ObservedResource, Tags, Value};

pub struct Listener;

const FIELDS: &[Field] = &[
    req("load_balancer", Ty::IdOf(ResourceKind::LoadBalancer)),
    req("protocol", PROTOCOL),
    req("port", PORT),
    opt("default_target_group", Ty::IdOf(ResourceKind::TargetGroup)),
    // The default certificate (ACM or IAM ARN) an HTTPS listener presents.
    opt("certificate_arn", Ty::Str),
];

/// A Network Load Balancer's listener protocols: ELBv2 words, so the schema
/// takes them and [`Kind::check`] says why they are refused (drctl's load
/// balancers are Application Load Balancers) rather than calling them typos.
const NETWORK: &[&str] = &["TCP", "TLS", "UDP", "TCP_UDP"];

/// An Application Load Balancer's (HTTP, HTTPS), then [`NETWORK`]. Not the
/// target groups' protocol type: a TCP target group is fine, a TCP listener
/// on drctl's load balancer is not.
const PROTOCOL: Ty = Ty::Enum(&["HTTP", "HTTPS", "TCP", "TLS", "UDP", "TCP_UDP"]);

impl Kind for Listener {
    fn fields(&self) -> &'static [Field] {
        FIELDS
    }

    fn exports(&self) -> &'static [(&'static str, ValueType)] {
        &[("arn", ValueType::Str)]
    }

    fn updatable(&self, attr: &str) -> bool {
        UPDATABLE.contains(&attr)
    }

    /// Unset `default_target_group` means a fixed 503.
    fn unset_is_a_value(&self, attr: &str) -> bool {
        attr == "default_target_group"
    }

    fn delete_rank(&self) -> u8 {
        1
    }

    /// What AWS refuses and moto accepts, refused before any call. Every
    /// listener drctl manages is on an Application Load Balancer: drctl
    /// makes no other kind, and discovery finds listeners only on its own.
    /// Only a protocol written out is checked; one from a reference is
    /// known once resolved.
    fn check(&self, resource: &Resource, base: &str, problems: &mut Problems<'_>) {
        let Some(protocol) = resource.attr("protocol") else {
            return; // the schema reports it missing
        };
        let Some(name) = protocol.as_literal_str() else {
            return;
        };
        let certificate = resource.attr("certificate_arn");
        match refusal(name, certificate.is_some()) {
            None => {}
            Some(Refusal::NotApplication) => {
                problems
                    .error(
                        protocol.pos,
                        &format!("{base}.protocol"),
                        format!("an Application Load Balancer takes HTTP or HTTPS listeners, not `{name}`"),
                    )
                    .with_hint(format!(
                        "drctl's load balancers are Application Load Balancers (`{name}` is a Network Load Balancer's protocol); \
                         write protocol = \"HTTP\", or \"HTTPS\" with certificate_arn"
                    ));
            }
            Some(Refusal::NoCertificate) => {
                problems
                    .error(
                        protocol.pos,
                        &format!("{base}.certificate_arn"),
                        "an HTTPS listener needs `certificate_arn`, the default certificate it presents (AWS refuses HTTPS without one)",
                    )
                    .with_hint("add certificate_arn = \"arn:aws:acm:…\" (a certificate in the listener's region)");
            }
            Some(Refusal::UnusedCertificate) => {
                let at = certificate.map_or(protocol.pos, |c| c.pos);
                problems
                    .error(
                        at,
                        &format!("{base}.certificate_arn"),
                        format!("`certificate_arn` is for HTTPS listeners; this one is `{name}`"),
                    )
                    .with_hint("remove certificate_arn, or write protocol = \"HTTPS\"");
            }
        }
    }

    aws_operations!();
}

/// The attributes ModifyListener changes in place.
const UPDATABLE: &[&str] = &[
    "protocol",
    "port",
    "default_target_group",
    "certificate_arn",
];

/// Why AWS would refuse a listener of this protocol, with or without a
/// certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// A Network Load Balancer's protocol on an Application Load Balancer.
    NotApplication,
    /// HTTPS with no default certificate.
    NoCertificate,
    /// A certificate on a listener that terminates no TLS.
    UnusedCertificate,
}

/// Pure: the refusal for `protocol` as written (`None` when AWS takes it, or
/// when it is no protocol at all, which the schema reports). A Network Load
/// Balancer's protocol is the one problem reported: with HTTP or HTTPS
/// instead, the certificate rules follow.
fn refusal(protocol: &str, certificate: bool) -> Option<Refusal> {
    if NETWORK.contains(&protocol) {
        return Some(Refusal::NotApplication);
    }
    match (protocol, certificate) {
        ("HTTPS", false) => Some(Refusal::NoCertificate),
        ("HTTP", true) => Some(Refusal::UnusedCertificate),
        _ => None,
    }
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

    #[test]
    fn refuses_what_an_application_load_balancer_refuses() {
        use Refusal::*;
        let cases = [
            ("HTTP", false, None),
            ("HTTPS", true, None),
            ("HTTPS", false, Some(NoCertificate)),
            ("HTTP", true, Some(UnusedCertificate)),
            ("TCP", false, Some(NotApplication)),
            ("UDP", false, Some(NotApplication)),
            ("TCP_UDP", false, Some(NotApplication)),
            // A TLS listener takes a certificate, but not on this balancer:
            // the protocol is the one problem.
            ("TLS", true, Some(NotApplication)),
            // No protocol at all: the schema's enum reports it.
            ("HTTTP", true, None),
        ];
        for (protocol, certificate, expected) in cases {
            assert_eq!(
                refusal(protocol, certificate),
                expected,
                "{protocol} with certificate: {certificate}"
            );
        }
    }

    /// A protocol the schema takes but neither HTTP(S) nor in [`NETWORK`]
    /// would pass validation and be refused by AWS.
    #[test]
    fn every_protocol_the_schema_takes_is_application_or_refused() {
        let Ty::Enum(protocols) = PROTOCOL else {
            panic!("the listener protocol is an enum");
        };
        for protocol in protocols {
            assert!(
                ["HTTP", "HTTPS"].contains(protocol) || NETWORK.contains(protocol),
                "{protocol}"
            );
        }
        assert!(NETWORK.iter().all(|p| protocols.contains(p)));
    }

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
