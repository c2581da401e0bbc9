//! `listener`: a load balancer's listener, its default certificate (HTTPS),
//! and where it sends traffic by default (a target group, or a fixed 503
//! until a service cuts over).

use super::{Kind, Problems};
use crate::kinds::schema::{opt, req, Field, Ty, ValueType, PORT};
use crate::model::Resource;
use crate::types::tags;
use crate::types::ResourceKind;
use crate::world::ObservedResource;

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
}

/// The attributes ModifyListener changes in place.
pub(crate) const UPDATABLE: &[&str] = &[
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

/// Whether a service has cut over on this listener (and so owns its traffic).
pub(crate) fn owned_by_service(current: &ObservedResource) -> bool {
    current.tags.contains_key(tags::TRAFFIC)
}

#[cfg(test)]
mod tests {
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
}
