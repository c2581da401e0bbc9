//! The AWS half of [`crate::kinds::security_group`]: reading its objects back, creating,
//! updating and deleting them.

use crate::cloud::aws::{AwsProvider, Discovery};
use crate::cloud::ec2::{self, Ec2, RuleSource, Select, SgRule};
use crate::cloud::kinds::common::{discovered, gone_ok, identity_tags, Seen};
use crate::cloud::provider::CreateRequest;
use crate::cloud::wait::{self, Probe};
use crate::cloud::{names, CloudError};
use crate::kinds::common::Want;
use crate::types::tags;
use crate::types::ResourceKind;
use crate::world::{Attrs, ObservedResource, Tags, Value};
use aws_sdk_ec2::types::SecurityGroup as AwsSecurityGroup;
use std::collections::BTreeMap;

pub struct SecurityGroup;

impl super::AwsKind for SecurityGroup {
    aws_operations!(existing "ec2:security_group" => describe_security_groups.group_id);
}

async fn observe(aws: &AwsProvider, pass: &Discovery) -> Result<Vec<ObservedResource>, CloudError> {
    let groups = aws
        .ec2
        .describe_security_groups(Select::Env(pass.env()))
        .await?;
    Ok(discovered(&groups, seen, ResourceKind::SecurityGroup))
}

async fn update(
    aws: &AwsProvider,
    current: &ObservedResource,
    attrs: &Attrs,
    tags: &Tags,
) -> Result<ObservedResource, CloudError> {
    let (address, id) = (&current.address, current.id.as_str());
    converge_rules(aws, &Want { address, attrs }, id).await?;
    aws.retag_and_read_ec2(current, tags, || async {
        Ok(read(aws, id).await?.as_ref().and_then(seen))
    })
    .await
}

// --- Reading back ------------------------------------------------------------

fn rules_value(rules: &[SgRule]) -> Value {
    let mut items: Vec<Value> = rules
        .iter()
        .map(|r| {
            let mut t = BTreeMap::from([
                ("protocol".to_string(), Value::Str(r.protocol.clone())),
                ("from_port".to_string(), Value::Int(r.from_port.into())),
                ("to_port".to_string(), Value::Int(r.to_port.into())),
            ]);
            match &r.source {
                RuleSource::Cidr(c) => t.insert("cidr".into(), Value::Str(c.clone())),
                RuleSource::Group(g) => t.insert("security_group".into(), Value::Str(g.clone())),
            };
            Value::Table(t)
        })
        .collect();
    items.sort();
    Value::List(items)
}

fn seen(group: &AwsSecurityGroup) -> Option<Seen> {
    Some(
        Seen::with_id(group.group_id()?, ec2::tag_map(group.tags()))
            .attr("vpc", Value::Str(group.vpc_id().unwrap_or_default().into()))
            .attr(
                "description",
                Value::Str(group.description().unwrap_or_default().into()),
            )
            .attr(
                "ingress",
                rules_value(&ec2::sg_rules(group.ip_permissions())),
            )
            .attr(
                "egress",
                rules_value(&ec2::sg_rules(group.ip_permissions_egress())),
            ),
    )
}

async fn read(aws: &AwsProvider, id: &str) -> Result<Option<AwsSecurityGroup>, CloudError> {
    let ids = [id.to_string()];
    Ok(aws
        .ec2
        .describe_security_groups(Select::Ids(&ids))
        .await?
        .into_iter()
        .next())
}

async fn create(
    aws: &AwsProvider,
    req: &CreateRequest<'_>,
) -> Result<ObservedResource, CloudError> {
    let want = Want::new(req.address, req.attrs);
    let vpc = want.str("vpc")?;
    let name = names::security_group_name(
        req.tags.get(tags::ENV).map_or("", String::as_str),
        &req.address.stack,
        &req.address.resource(),
        req.tags.get(tags::SPEC).map_or("", String::as_str),
    );
    let id = match aws
        .ec2
        .create_security_group(&name, want.str("description")?, vpc, req.tags)
        .await
    {
        Ok(id) => id,
        // A retry of a create that got through: adopt it if it is ours.
        Err(e) if e.code() == Some("InvalidGroup.Duplicate") => {
            let existing = aws.ec2.security_group_by_name(vpc, &name).await?;
            let ours = existing
                .filter(|g| identity_tags(&ec2::tag_map(g.tags())) == identity_tags(req.tags));
            match ours.as_ref().and_then(|g| g.group_id()) {
                Some(id) => id.to_string(),
                None => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    converge_rules(aws, &want, &id).await?;
    aws.read_back(req.address, &id, || async {
        Ok(read(aws, &id).await?.as_ref().and_then(seen))
    })
    .await
}

/// Makes the group's ingress and egress rules exactly the wanted ones
/// (which drops AWS's default allow-all egress unless it is wanted).
/// Authorizes before revoking, so a changed rule never leaves a gap.
async fn converge_rules(aws: &AwsProvider, want: &Want<'_>, id: &str) -> Result<(), CloudError> {
    let group = wait::until(
        &format!("security group {id} to become visible"),
        aws.waits.visibility,
        aws.waits.backoff,
        || async {
            Ok(match read(aws, id).await? {
                Some(g) => Probe::Done(g),
                None => Probe::Waiting("not found yet".into()),
            })
        },
    )
    .await?;
    for (egress, key, current) in [
        (false, "ingress", ec2::sg_rules(group.ip_permissions())),
        (true, "egress", ec2::sg_rules(group.ip_permissions_egress())),
    ] {
        let wanted = want.rules(key)?;
        let missing: Vec<SgRule> = wanted
            .iter()
            .filter(|r| !current.contains(r))
            .cloned()
            .collect();
        let extra: Vec<SgRule> = current
            .iter()
            .filter(|r| !wanted.contains(r))
            .cloned()
            .collect();
        // A referenced group created just before may not be visible yet.
        aws.settle(&format!("{key} rules of {id}"), || {
            aws.ec2.authorize(id, egress, &missing)
        })
        .await?;
        gone_ok(aws.ec2.revoke(id, egress, &extra).await)?;
    }
    Ok(())
}

async fn delete(aws: &AwsProvider, current: &ObservedResource) -> Result<(), CloudError> {
    let id = current.id.as_str();
    let Some(group) = read(aws, id).await? else {
        return Ok(());
    };
    // Its own rules may reference other groups, which then could not be
    // deleted: drop them first.
    gone_ok(
        aws.ec2
            .revoke(id, false, &ec2::sg_rules(group.ip_permissions()))
            .await,
    )?;
    gone_ok(
        aws.ec2
            .revoke(id, true, &ec2::sg_rules(group.ip_permissions_egress()))
            .await,
    )?;
    // Other groups' rules, instances or load balancers may still use it
    // until their own deletion completes.
    aws.patiently(&format!("delete {id}"), || {
        aws.ec2.delete_security_group(id)
    })
    .await
}

impl Want<'_> {
    pub(crate) fn rules(&self, key: &str) -> Result<Vec<SgRule>, CloudError> {
        const SHAPE: &str =
            "a list of { protocol, from_port, to_port, and one of cidr or security_group }";
        let mut rules = Vec::new();
        for item in self.list(key)? {
            let rule = item.as_table().and_then(|t| {
                let source = match (
                    t.get("cidr").and_then(Value::as_str),
                    t.get("security_group").and_then(Value::as_str),
                ) {
                    (Some(cidr), None) => RuleSource::Cidr(cidr.to_string()),
                    (None, Some(group)) => RuleSource::Group(group.to_string()),
                    _ => return None,
                };
                Some(SgRule {
                    protocol: t.get("protocol")?.as_str()?.to_string(),
                    from_port: i32::try_from(t.get("from_port")?.as_int()?).ok()?,
                    to_port: i32::try_from(t.get("to_port")?.as_int()?).ok()?,
                    source,
                })
            });
            rules.push(rule.ok_or_else(|| self.bad(key, SHAPE))?);
        }
        rules.sort();
        rules.dedup();
        Ok(rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::Address;

    #[test]
    fn rules_read_from_attrs_in_the_normalised_shape() {
        let address = Address::new("net", ResourceKind::SecurityGroup, "web");
        let rule = |extra: (&str, Value)| {
            Value::Table(BTreeMap::from([
                ("protocol".to_string(), Value::Str("tcp".into())),
                ("from_port".to_string(), Value::Int(80)),
                ("to_port".to_string(), Value::Int(80)),
                (extra.0.to_string(), extra.1),
            ]))
        };
        let attrs = Attrs::from([(
            "ingress".to_string(),
            Value::List(vec![
                rule(("security_group", Value::Str("sg-1".into()))),
                rule(("cidr", Value::Str("0.0.0.0/0".into()))),
            ]),
        )]);
        let want = Want::new(&address, &attrs);
        let rules = want.rules("ingress").unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(want.rules("egress").unwrap(), vec![]);
        // And back: the same shape, sorted.
        let mut expected = attrs["ingress"].as_list().unwrap().to_vec();
        expected.sort();
        assert_eq!(rules_value(&rules), Value::List(expected));

        let bad = Attrs::from([(
            "ingress".to_string(),
            Value::List(vec![Value::Table(BTreeMap::from([(
                "protocol".to_string(),
                Value::Str("tcp".into()),
            )]))]),
        )]);
        let err = Want {
            address: &address,
            attrs: &bad,
        }
        .rules("ingress")
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("net.security_group.web: attribute `ingress` must be"),
            "{err}"
        );
    }
}
