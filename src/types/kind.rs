//! The resource kinds drctl manages. The list below is the one place a kind
//! is registered: [`ResourceKind`] here, each kind's rules in
//! [`crate::kinds`] and its AWS operations in [`crate::cloud`] are all
//! generated from it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Calls `$callback! { Variant => module, … }` with every kind, in the
/// order addresses sort in. Adding a kind is one line here.
macro_rules! with_each_kind {
    ($callback:ident) => {
        $callback! {
            Vpc => vpc,
            Subnet => subnet,
            InternetGateway => internet_gateway,
            RouteTable => route_table,
            SecurityGroup => security_group,
            Image => image,
            Instances => instances,
            TargetGroup => target_group,
            LoadBalancer => load_balancer,
            Listener => listener,
            Service => service,
        }
    };
}
pub(crate) use with_each_kind;

macro_rules! resource_kind_enum {
    ($($variant:ident => $module:ident),+ $(,)?) => {
        /// A kind of resource; its name (`vpc`, `target_group`, …) is how
        /// stacks, addresses and tags write it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ResourceKind {
            $($variant),+
        }

        impl ResourceKind {
            pub const ALL: [ResourceKind; [$(stringify!($variant)),+].len()] =
                [$(ResourceKind::$variant),+];

            pub fn name(self) -> &'static str {
                match self {
                    $(ResourceKind::$variant => stringify!($module)),+
                }
            }
        }
    };
}
with_each_kind!(resource_kind_enum);

impl ResourceKind {
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_names_are_the_kind_names() {
        for kind in ResourceKind::ALL {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::String(kind.name().to_string())
            );
            assert_eq!(ResourceKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(ResourceKind::from_name("bucket"), None);
    }
}
