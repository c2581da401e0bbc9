//! Security-group rules: drctl's one-rule-one-source [`SgRule`] and AWS's
//! IpPermission (several ranges and groups each), in both directions.

use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range, UserIdGroupPair};

use super::{RuleSource, SgRule};

/// The wire form of `rules`: one IpPermission per rule. Protocol `-1`
/// carries no ports (that is how AWS stores it, and revoking must match).
pub fn ip_permissions(rules: &[SgRule]) -> Vec<IpPermission> {
    rules
        .iter()
        .map(|rule| {
            let mut perm = IpPermission::builder().ip_protocol(&rule.protocol);
            if rule.protocol != "-1" {
                perm = perm.from_port(rule.from_port).to_port(rule.to_port);
            }
            perm = match &rule.source {
                RuleSource::Cidr(cidr) if cidr.contains(':') => {
                    perm.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(cidr).build())
                }
                RuleSource::Cidr(cidr) => perm.ip_ranges(IpRange::builder().cidr_ip(cidr).build()),
                RuleSource::Group(group) => {
                    perm.user_id_group_pairs(UserIdGroupPair::builder().group_id(group).build())
                }
            };
            perm.build()
        })
        .collect()
}

/// Splits AWS's IpPermissions (several ranges and groups each) into one
/// [`SgRule`] per source, with protocols and ports normalised. Prefix-list
/// sources have no place in drctl's model and are left out.
pub fn sg_rules(perms: &[IpPermission]) -> Vec<SgRule> {
    let mut rules = Vec::new();
    for perm in perms {
        let protocol = match perm.ip_protocol().unwrap_or("-1") {
            "6" => "tcp",
            "17" => "udp",
            "1" => "icmp",
            other => other,
        }
        .to_string();
        let (from_port, to_port) = if protocol == "-1" {
            (-1, -1)
        } else {
            (perm.from_port().unwrap_or(-1), perm.to_port().unwrap_or(-1))
        };
        let sources = perm
            .ip_ranges()
            .iter()
            .filter_map(|r| r.cidr_ip().map(|c| RuleSource::Cidr(c.to_string())))
            .chain(
                perm.ipv6_ranges()
                    .iter()
                    .filter_map(|r| r.cidr_ipv6().map(|c| RuleSource::Cidr(c.to_string()))),
            )
            .chain(
                perm.user_id_group_pairs()
                    .iter()
                    .filter_map(|p| p.group_id().map(|g| RuleSource::Group(g.to_string()))),
            );
        for source in sources {
            rules.push(SgRule {
                protocol: protocol.clone(),
                from_port,
                to_port,
                source,
            });
        }
    }
    rules.sort();
    rules.dedup();
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(protocol: &str, from: i32, to: i32, source: RuleSource) -> SgRule {
        SgRule {
            protocol: protocol.into(),
            from_port: from,
            to_port: to,
            source,
        }
    }

    #[test]
    fn permissions_with_several_sources_split_into_one_rule_each() {
        let perm = IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(80)
            .to_port(80)
            .ip_ranges(IpRange::builder().cidr_ip("10.0.0.0/8").build())
            .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
            .user_id_group_pairs(UserIdGroupPair::builder().group_id("sg-1").build())
            .build();
        let all = IpPermission::builder()
            .ip_protocol("-1")
            .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
            .build();
        assert_eq!(
            sg_rules(&[perm, all]),
            vec![
                rule("-1", -1, -1, RuleSource::Cidr("0.0.0.0/0".into())),
                rule("tcp", 80, 80, RuleSource::Cidr("0.0.0.0/0".into())),
                rule("tcp", 80, 80, RuleSource::Cidr("10.0.0.0/8".into())),
                rule("tcp", 80, 80, RuleSource::Group("sg-1".into())),
            ]
        );
    }

    #[test]
    fn rules_round_trip_through_the_wire_form() {
        let rules = vec![
            rule("-1", -1, -1, RuleSource::Group("sg-2".into())),
            rule("icmp", -1, -1, RuleSource::Cidr("10.0.0.0/8".into())),
            rule("udp", 53, 53, RuleSource::Cidr("::/0".into())),
        ];
        let perms = ip_permissions(&rules);
        assert_eq!(perms[0].from_port(), None, "protocol -1 carries no ports");
        assert_eq!(sg_rules(&perms), rules);
    }

    #[test]
    fn numeric_protocols_read_as_names() {
        let perm = IpPermission::builder()
            .ip_protocol("6")
            .from_port(22)
            .to_port(22)
            .ip_ranges(IpRange::builder().cidr_ip("10.0.0.0/8").build())
            .build();
        assert_eq!(sg_rules(&[perm])[0].protocol, "tcp");
    }
}
