//! What each resource kind accepts and exports (SPEC.md "Resource kinds").
//!
//! The schema is data, so the decoder, the validator, the planner and the docs
//! all read one table instead of each knowing the kinds by heart.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Vpc,
    Subnet,
    InternetGateway,
    RouteTable,
    SecurityGroup,
    Image,
    Instances,
    TargetGroup,
    LoadBalancer,
    Listener,
    Service,
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 11] = [
        ResourceKind::Vpc,
        ResourceKind::Subnet,
        ResourceKind::InternetGateway,
        ResourceKind::RouteTable,
        ResourceKind::SecurityGroup,
        ResourceKind::Image,
        ResourceKind::Instances,
        ResourceKind::TargetGroup,
        ResourceKind::LoadBalancer,
        ResourceKind::Listener,
        ResourceKind::Service,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ResourceKind::Vpc => "vpc",
            ResourceKind::Subnet => "subnet",
            ResourceKind::InternetGateway => "internet_gateway",
            ResourceKind::RouteTable => "route_table",
            ResourceKind::SecurityGroup => "security_group",
            ResourceKind::Image => "image",
            ResourceKind::Instances => "instances",
            ResourceKind::TargetGroup => "target_group",
            ResourceKind::LoadBalancer => "load_balancer",
            ResourceKind::Listener => "listener",
            ResourceKind::Service => "service",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The attributes a stack may set on this kind (besides `tags`).
    pub fn fields(self) -> &'static [Field] {
        use ResourceKind as K;
        match self {
            K::Vpc => VPC,
            K::Subnet => SUBNET,
            K::InternetGateway => INTERNET_GATEWAY,
            K::RouteTable => ROUTE_TABLE,
            K::SecurityGroup => SECURITY_GROUP,
            K::Image => IMAGE,
            K::Instances => INSTANCES,
            K::TargetGroup => TARGET_GROUP,
            K::LoadBalancer => LOAD_BALANCER,
            K::Listener => LISTENER,
            K::Service => SERVICE,
        }
    }

    /// What `${kind.name.<attr>}` may read once the resource exists.
    pub fn exports(self) -> &'static [(&'static str, ValueType)] {
        use ResourceKind as K;
        use ValueType::{List, Str};
        match self {
            K::Vpc | K::Subnet | K::InternetGateway | K::RouteTable | K::SecurityGroup => {
                &[("id", Str)]
            }
            K::Image => &[("id", Str), ("recipe", Str)],
            K::Instances => &[("ids", List), ("private_ips", List)],
            K::TargetGroup => &[("arn", Str)],
            K::LoadBalancer => &[("arn", Str), ("dns_name", Str)],
            K::Listener => &[("arn", Str)],
            K::Service => &[
                ("live_color", Str),
                ("target_group_arn", Str),
                ("ids", List),
            ],
        }
    }

    pub fn export_type(self, attr: &str) -> Option<ValueType> {
        self.exports()
            .iter()
            .find(|(name, _)| *name == attr)
            .map(|(_, ty)| *ty)
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The coarse type of a value, as far as it is known before apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Str,
    Int,
    Bool,
    List,
    Table,
}

impl ValueType {
    pub fn describe(self) -> &'static str {
        match self {
            ValueType::Str => "a string",
            ValueType::Int => "an integer",
            ValueType::Bool => "a boolean",
            ValueType::List => "a list",
            ValueType::Table => "a table",
        }
    }
}

/// One attribute of a kind or of a nested table.
#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub ty: Ty,
    pub required: bool,
}

/// What an attribute must hold.
#[derive(Debug)]
pub enum Ty {
    Str,
    Int {
        min: i64,
        max: i64,
    },
    Bool,
    /// An IPv4 CIDR, e.g. `0.0.0.0/0` in a rule or route.
    Cidr,
    /// A VPC or subnet address block: a CIDR from /16 to /28, as AWS requires.
    Block,
    /// A duration such as `30m`, `1h` or `4h 30m`.
    Duration,
    /// The id (or ARN) of a resource of this kind.
    IdOf(ResourceKind),
    /// One of these strings.
    Enum(&'static [&'static str]),
    List(&'static Ty),
    /// A table with these fields and no others.
    Object(&'static [Field]),
    /// A table of string keys to string values (tags).
    StrMap,
    /// Any of these shapes; the first whose coarse type matches is used.
    OneOf(&'static [Ty]),
    /// A path relative to the stacks directory that must exist.
    File,
}

impl Ty {
    /// How the type reads in "expected …" messages.
    pub fn describe(&self) -> String {
        match self {
            Ty::Str => "a string".into(),
            Ty::Int { min, max } if *max == i64::MAX => format!("an integer ≥ {min}"),
            Ty::Int { min, max } => format!("an integer from {min} to {max}"),
            Ty::Bool => "true or false".into(),
            Ty::Cidr => "an IPv4 CIDR like \"0.0.0.0/0\"".into(),
            Ty::Block => "an IPv4 CIDR block from /16 to /28 like \"10.0.0.0/16\"".into(),
            Ty::Duration => "a duration like \"30m\" or \"4h\"".into(),
            Ty::IdOf(kind) => format!("a {kind} id, e.g. \"${{{kind}.NAME.{}}}\"", id_attr(*kind)),
            Ty::Enum(values) => format!("one of {}", quoted(values)),
            Ty::List(inner) => format!("a list of {}", strip_article(&inner.describe())),
            Ty::Object(fields) => format!(
                "a table with keys {}",
                quoted(&fields.iter().map(|f| f.name).collect::<Vec<_>>())
            ),
            Ty::StrMap => "a table of strings".into(),
            Ty::OneOf(tys) => tys
                .iter()
                .map(Ty::describe)
                .collect::<Vec<_>>()
                .join(", or "),
            Ty::File => "a path to a file under stacks/".into(),
        }
    }

    /// The coarse type a value of this type has.
    pub fn value_type(&self) -> Option<ValueType> {
        Some(match self {
            Ty::Str
            | Ty::Cidr
            | Ty::Block
            | Ty::Duration
            | Ty::IdOf(_)
            | Ty::Enum(_)
            | Ty::File => ValueType::Str,
            Ty::Int { .. } => ValueType::Int,
            Ty::Bool => ValueType::Bool,
            Ty::List(_) => ValueType::List,
            Ty::Object(_) | Ty::StrMap => ValueType::Table,
            Ty::OneOf(_) => return None,
        })
    }

    /// Whether a value of coarse type `vt` could be of this type.
    pub fn accepts(&self, vt: ValueType) -> bool {
        match self {
            Ty::OneOf(tys) => tys.iter().any(|t| t.accepts(vt)),
            other => other.value_type() == Some(vt),
        }
    }
}

fn id_attr(kind: ResourceKind) -> &'static str {
    kind.exports().first().map(|(n, _)| *n).unwrap_or("id")
}

fn quoted(values: &[&str]) -> String {
    values
        .iter()
        .map(|v| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn strip_article(s: &str) -> String {
    s.strip_prefix("a ")
        .or_else(|| s.strip_prefix("an "))
        .unwrap_or(s)
        .to_string()
}

const fn req(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        required: true,
    }
}

const fn opt(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        required: false,
    }
}

const PORT: Ty = Ty::Int { min: 1, max: 65535 };
const ANY_PORT: Ty = Ty::Int {
    min: -1,
    max: 65535,
};
const COUNT: Ty = Ty::Int {
    min: 0,
    max: i64::MAX,
};
const NAME_OR_ID: Ty = Ty::Str;

const VPC: &[Field] = &[
    req("cidr_block", Ty::Block),
    opt("enable_dns_hostnames", Ty::Bool),
];

const SUBNET: &[Field] = &[
    req("vpc", Ty::IdOf(ResourceKind::Vpc)),
    req("cidr_block", Ty::Block),
    req("availability_zone", Ty::Str),
    opt("map_public_ip", Ty::Bool),
];

const INTERNET_GATEWAY: &[Field] = &[req("vpc", Ty::IdOf(ResourceKind::Vpc))];

const ROUTE: &[Field] = &[req("destination", Ty::Cidr), req("gateway", NAME_OR_ID)];

const ROUTE_TABLE: &[Field] = &[
    req("vpc", Ty::IdOf(ResourceKind::Vpc)),
    opt("routes", Ty::List(&Ty::Object(ROUTE))),
    opt("subnets", Ty::List(&Ty::IdOf(ResourceKind::Subnet))),
];

/// `port` or `from_port` + `to_port`; `cidr` or `security_group` (checked by the validator).
pub const RULE: &[Field] = &[
    req("protocol", Ty::Enum(&["tcp", "udp", "icmp", "all", "-1"])),
    opt("port", ANY_PORT),
    opt("from_port", ANY_PORT),
    opt("to_port", ANY_PORT),
    opt("cidr", Ty::Cidr),
    opt("security_group", Ty::IdOf(ResourceKind::SecurityGroup)),
    opt("description", Ty::Str),
];

const SECURITY_GROUP: &[Field] = &[
    req("vpc", Ty::IdOf(ResourceKind::Vpc)),
    req("description", Ty::Str),
    opt("ingress", Ty::List(&Ty::Object(RULE))),
    opt("egress", Ty::List(&Ty::Object(RULE))),
];

const IMAGE_FILTER: &[Field] = &[req("owners", Ty::List(&Ty::Str)), req("name", Ty::Str)];

const IMAGE: &[Field] = &[
    req(
        "base_image",
        Ty::OneOf(&[Ty::IdOf(ResourceKind::Image), Ty::Object(IMAGE_FILTER)]),
    ),
    req("instance_type", Ty::Str),
    req("subnet", Ty::IdOf(ResourceKind::Subnet)),
    opt("provision", Ty::File),
    opt("copy_to_regions", Ty::List(&Ty::Str)),
    opt("keep", Ty::Int { min: 1, max: 1000 }),
];

const INSTANCES: &[Field] = &[
    req("image", Ty::IdOf(ResourceKind::Image)),
    req("count", COUNT),
    req("instance_type", Ty::Str),
    req("subnets", Ty::List(&Ty::IdOf(ResourceKind::Subnet))),
    opt(
        "security_groups",
        Ty::List(&Ty::IdOf(ResourceKind::SecurityGroup)),
    ),
    opt("user_data", Ty::Str),
];

pub const HEALTH_CHECK: &[Field] = &[
    opt("path", Ty::Str),
    opt("interval", Ty::Int { min: 5, max: 300 }),
    opt("healthy_threshold", Ty::Int { min: 2, max: 10 }),
];

const PROTOCOL: Ty = Ty::Enum(&["HTTP", "HTTPS", "TCP"]);

const TARGET_GROUP: &[Field] = &[
    req("vpc", Ty::IdOf(ResourceKind::Vpc)),
    req("protocol", PROTOCOL),
    req("port", PORT),
    opt("health_check", Ty::Object(HEALTH_CHECK)),
];

const LOAD_BALANCER: &[Field] = &[
    req("subnets", Ty::List(&Ty::IdOf(ResourceKind::Subnet))),
    opt(
        "security_groups",
        Ty::List(&Ty::IdOf(ResourceKind::SecurityGroup)),
    ),
    opt("internal", Ty::Bool),
];

const LISTENER: &[Field] = &[
    req("load_balancer", Ty::IdOf(ResourceKind::LoadBalancer)),
    req("protocol", PROTOCOL),
    req("port", PORT),
    opt("default_target_group", Ty::IdOf(ResourceKind::TargetGroup)),
];

const CANARY: &[Field] = &[req("canary", Ty::List(&Ty::Int { min: 1, max: 100 }))];

const SERVICE: &[Field] = &[
    req("image", Ty::IdOf(ResourceKind::Image)),
    req("count", COUNT),
    req("instance_type", Ty::Str),
    req("subnets", Ty::List(&Ty::IdOf(ResourceKind::Subnet))),
    req("port", PORT),
    req("listener", Ty::IdOf(ResourceKind::Listener)),
    opt(
        "security_groups",
        Ty::List(&Ty::IdOf(ResourceKind::SecurityGroup)),
    ),
    opt("health_check", Ty::Object(HEALTH_CHECK)),
    opt(
        "strategy",
        Ty::OneOf(&[Ty::Enum(&["blue_green"]), Ty::Object(CANARY)]),
    ),
    opt("retire_after", Ty::Duration),
    opt("user_data", Ty::Str),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip() {
        for kind in ResourceKind::ALL {
            assert_eq!(ResourceKind::from_name(kind.name()), Some(kind));
            assert!(!kind.exports().is_empty(), "{kind} exports nothing");
        }
        assert_eq!(ResourceKind::from_name("bucket"), None);
    }

    #[test]
    fn types_describe_themselves_for_messages() {
        assert_eq!(
            Ty::List(&Ty::IdOf(ResourceKind::Subnet)).describe(),
            "a list of subnet id, e.g. \"${subnet.NAME.id}\""
        );
        assert_eq!(PORT.describe(), "an integer from 1 to 65535");
    }
}
