//! Which mutating AWS calls a plan's step makes, by kind and action: what
//! the permissions check asks about. The match is exhaustive on purpose: a
//! new kind does not compile until its calls are listed here (they are read
//! off its AWS half in `cloud/kinds/`).

use crate::model::ResourceKind;
use crate::plan::Action;

/// The AWS service a call goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Service {
    Ec2,
    Elbv2,
}

impl Service {
    /// IAM's prefix for the service's actions.
    pub fn prefix(self) -> &'static str {
        match self {
            Service::Ec2 => "ec2",
            // IAM names ELBv2's actions `elasticloadbalancing:…`.
            Service::Elbv2 => "elasticloadbalancing",
        }
    }
}

use Service::{Ec2, Elbv2};

/// The mutating calls a step of `kind` with `action` makes (none for a no-op).
pub fn calls(kind: ResourceKind, action: Action) -> Vec<(Service, &'static str)> {
    match action {
        Action::NoOp => Vec::new(),
        Action::Create => creates(kind).to_vec(),
        Action::Update => updates(kind).to_vec(),
        Action::Delete => deletes(kind).to_vec(),
        Action::Replace => creates(kind).iter().chain(deletes(kind)).copied().collect(),
    }
}

fn creates(kind: ResourceKind) -> &'static [(Service, &'static str)] {
    use ResourceKind::*;
    match kind {
        Vpc => &[(Ec2, "CreateVpc"), (Ec2, "ModifyVpcAttribute")],
        Subnet => &[(Ec2, "CreateSubnet"), (Ec2, "ModifySubnetAttribute")],
        InternetGateway => &[
            (Ec2, "CreateInternetGateway"),
            (Ec2, "AttachInternetGateway"),
        ],
        RouteTable => &[
            (Ec2, "CreateRouteTable"),
            (Ec2, "CreateRoute"),
            (Ec2, "AssociateRouteTable"),
        ],
        SecurityGroup => &[
            (Ec2, "CreateSecurityGroup"),
            (Ec2, "AuthorizeSecurityGroupIngress"),
        ],
        // A bake: builder, image, tags on its snapshots, builder gone.
        Image => &[
            (Ec2, "RunInstances"),
            (Ec2, "CreateImage"),
            (Ec2, "CreateTags"),
            (Ec2, "TerminateInstances"),
        ],
        Instances => &[(Ec2, "RunInstances")],
        TargetGroup => &[(Elbv2, "CreateTargetGroup")],
        LoadBalancer => &[(Elbv2, "CreateLoadBalancer")],
        Listener => &[(Elbv2, "CreateListener")],
        // A colour: its fleet and target group, registered, put in use,
        // then the listener moved to it.
        Service => &[
            (Ec2, "RunInstances"),
            (Elbv2, "CreateTargetGroup"),
            (Elbv2, "RegisterTargets"),
            (Elbv2, "CreateRule"),
            (Elbv2, "ModifyListener"),
        ],
    }
}

fn updates(kind: ResourceKind) -> &'static [(Service, &'static str)] {
    use ResourceKind::*;
    match kind {
        Vpc => &[(Ec2, "ModifyVpcAttribute"), (Ec2, "CreateTags")],
        Subnet => &[(Ec2, "ModifySubnetAttribute"), (Ec2, "CreateTags")],
        InternetGateway => &[(Ec2, "CreateTags")],
        RouteTable => &[
            (Ec2, "ReplaceRoute"),
            (Ec2, "AssociateRouteTable"),
            (Ec2, "CreateTags"),
        ],
        SecurityGroup => &[
            (Ec2, "AuthorizeSecurityGroupIngress"),
            (Ec2, "RevokeSecurityGroupIngress"),
            (Ec2, "CreateTags"),
        ],
        Image => &[(Ec2, "CopyImage"), (Ec2, "CreateTags")],
        Instances => &[
            (Ec2, "RunInstances"),
            (Ec2, "TerminateInstances"),
            (Ec2, "CreateTags"),
        ],
        TargetGroup => &[(Elbv2, "ModifyTargetGroup"), (Elbv2, "AddTags")],
        LoadBalancer => &[
            (Elbv2, "SetSubnets"),
            (Elbv2, "SetSecurityGroups"),
            (Elbv2, "AddTags"),
        ],
        Listener => &[(Elbv2, "ModifyListener")],
        Service => &[
            (Ec2, "RunInstances"),
            (Ec2, "TerminateInstances"),
            (Elbv2, "CreateTargetGroup"),
            (Elbv2, "RegisterTargets"),
            (Elbv2, "ModifyListener"),
        ],
    }
}

fn deletes(kind: ResourceKind) -> &'static [(Service, &'static str)] {
    use ResourceKind::*;
    match kind {
        Vpc => &[(Ec2, "DeleteVpc")],
        Subnet => &[(Ec2, "DeleteSubnet")],
        InternetGateway => &[
            (Ec2, "DetachInternetGateway"),
            (Ec2, "DeleteInternetGateway"),
        ],
        RouteTable => &[(Ec2, "DisassociateRouteTable"), (Ec2, "DeleteRouteTable")],
        SecurityGroup => &[(Ec2, "DeleteSecurityGroup")],
        Image => &[(Ec2, "DeregisterImage"), (Ec2, "DeleteSnapshot")],
        Instances => &[(Ec2, "TerminateInstances")],
        TargetGroup => &[(Elbv2, "DeleteTargetGroup")],
        LoadBalancer => &[(Elbv2, "DeleteLoadBalancer")],
        Listener => &[(Elbv2, "DeleteListener")],
        Service => &[
            (Elbv2, "DeregisterTargets"),
            (Ec2, "TerminateInstances"),
            (Elbv2, "DeleteTargetGroup"),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacement_creates_then_deletes_and_a_no_op_calls_nothing() {
        let calls = calls(ResourceKind::Vpc, Action::Replace);
        assert_eq!(
            calls,
            [
                (Ec2, "CreateVpc"),
                (Ec2, "ModifyVpcAttribute"),
                (Ec2, "DeleteVpc")
            ]
        );
        for kind in ResourceKind::ALL {
            assert!(super::calls(kind, Action::NoOp).is_empty());
            assert!(!super::calls(kind, Action::Create).is_empty(), "{kind}");
        }
    }
}
