//! The vocabulary of resource schemas (SPEC.md "Resource kinds"): attribute
//! types and the coarse value types references are checked against. Each
//! kind's table of fields and exports is in its module under `crate::kinds`.
//!
//! The schema is data, so the decoder, the validator, the planner and the docs
//! all read one table instead of each knowing the kinds by heart.

use crate::kinds::KindDef;
pub use crate::types::ResourceKind;

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
    /// Carries a secret (a script, user data): shown only as
    /// `(sensitive, sha256 …)` in plans, logs, journals and reports.
    pub sensitive: bool,
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

/// A required attribute.
pub const fn req(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        required: true,
        sensitive: false,
    }
}

/// An optional attribute.
pub const fn opt(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        required: false,
        sensitive: false,
    }
}

/// An optional attribute that carries a secret.
pub const fn secret(name: &'static str, ty: Ty) -> Field {
    Field {
        sensitive: true,
        ..opt(name, ty)
    }
}

pub const PORT: Ty = Ty::Int { min: 1, max: 65535 };
pub const COUNT: Ty = Ty::Int {
    min: 0,
    max: i64::MAX,
};

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
