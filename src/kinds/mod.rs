//! Each resource kind's rules, one module per kind: its schema (attributes
//! and exports), its normal form, which changes update in place and which
//! replace, the rules the schema cannot say alone, and for some kinds how
//! they plan themselves. Pure: no AWS here; each kind's AWS half is its
//! namesake in [`crate::cloud::kinds`].
//!
//! Nothing outside these modules matches on the kind: the validator and the
//! planner ask `kind.def()` ([`KindDef`]). A kind is registered by one line
//! in [`crate::types::with_each_kind`].

pub(crate) mod common;
pub mod schema;

use std::path::Path;

use crate::diag::{Diagnostic, Diagnostics, Pos};
use crate::kinds::schema::{Field, Ty, ValueType};
use crate::model::Resource;
use crate::types::ResourceKind;
use crate::world::Value;

/// One resource kind's rules: its schema, normal form, change rules,
/// validation and (for some) how it plans itself. Pure: the model, the
/// validator and the planner read them; its AWS half
/// ([`crate::cloud::kinds::AwsKind`]) acts on AWS.
pub trait Kind: Send + Sync {
    // --- Schema ---

    /// The attributes a stack may set on this kind (besides `tags`).
    fn fields(&self) -> &'static [Field];

    /// What `${kind.name.<attr>}` may read once the resource exists.
    fn exports(&self) -> &'static [(&'static str, ValueType)];

    // --- Normal form and change rules (the planner's side) ---

    /// Values an unset attribute stands for (the adapter reads them back).
    fn defaults(&self) -> Vec<(&'static str, Value)> {
        Vec::new()
    }

    /// A set attribute in the one shape the adapter reads it back in.
    fn normalize_attr(&self, key: &str, value: Value) -> Value {
        let _ = key;
        value
    }

    /// Whether AWS can change `attr` of a live resource (otherwise: replace).
    fn updatable(&self, attr: &str) -> bool {
        let _ = attr;
        false
    }

    /// Whether leaving `attr` unset asks for something (so an observed value
    /// is a difference). Unset attributes are normally AWS's defaults, not
    /// ours to manage.
    fn unset_is_a_value(&self, attr: &str) -> bool {
        let _ = attr;
        false
    }

    /// Attributes the adapter cannot read back and that force a replacement:
    /// a changed spec hash with no visible difference means one changed.
    fn hidden_force_new(&self) -> &'static [&'static str] {
        &[]
    }

    /// Whether a runbook's `cutover` and `target_health` may name resources
    /// of this kind (they move traffic between fleets).
    fn takes_traffic(&self) -> bool {
        false
    }

    /// Plans the resource itself, for kinds whose objects are not one per
    /// address (an image's kept versions, reuse by recipe, builders). Pure.
    fn plan_itself(&self, input: &crate::plan::OwnPlanInput<'_>) -> Option<crate::plan::OwnPlan> {
        let _ = input;
        None
    }

    // --- Validation ---

    /// Rules the schema cannot say alone; `base` is the resource's key path.
    fn check(&self, resource: &Resource, base: &str, problems: &mut Problems<'_>) {
        let _ = (resource, base, problems);
    }
}

/// Where a kind's [`Kind::check`] reports problems: the stack file being
/// validated.
pub struct Problems<'a> {
    file: &'a Path,
    diags: &'a mut Diagnostics,
}

impl<'a> Problems<'a> {
    pub fn new(file: &'a Path, diags: &'a mut Diagnostics) -> Self {
        Problems { file, diags }
    }

    pub fn error(&mut self, pos: Pos, key: &str, message: impl Into<String>) -> &mut Diagnostic {
        self.diags.error(self.file, pos, key, message)
    }
}

/// Declares the kind modules of [`crate::types::with_each_kind`]'s list and
/// each kind's definition: a module `m` registered as `Variant => m` defines
/// a unit struct `m::Variant` implementing [`Kind`].
macro_rules! kinds {
    ($($variant:ident => $module:ident),+ $(,)?) => {
        $(pub mod $module;)+

        /// Everything drctl knows about a kind, asked of the kind itself.
        pub fn def(kind: ResourceKind) -> &'static dyn Kind {
            match kind {
                $(ResourceKind::$variant => &$module::$variant),+
            }
        }
    };
}
crate::types::with_each_kind!(kinds);

/// Deletion order, derived from the schemas: a kind's rank is one more than
/// the highest rank of the kinds whose attributes name it (`${kind.x.id}`),
/// and 0 when none does. Deleting rank by rank, lowest first, deletes every
/// resource before what it names, so it never hits a dependency violation;
/// kinds of one rank do not name each other.
pub fn delete_rank(kind: ResourceKind) -> u8 {
    static RANKS: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let ranks = RANKS.get_or_init(|| {
        fn rank(kind: ResourceKind, ranks: &mut [Option<u8>]) -> u8 {
            if let Some(known) = ranks[kind as usize] {
                return known;
            }
            let referrers = ResourceKind::ALL
                .into_iter()
                .filter(|&other| other != kind && names(other).contains(&kind));
            let found = referrers.map(|r| rank(r, ranks) + 1).max().unwrap_or(0);
            ranks[kind as usize] = Some(found);
            found
        }
        let mut ranks = vec![None; ResourceKind::ALL.len()];
        ResourceKind::ALL
            .into_iter()
            .map(|kind| rank(kind, &mut ranks))
            .collect()
    });
    ranks[kind as usize]
}

/// The kinds whose ids `kind`'s attributes may hold.
pub fn names(kind: ResourceKind) -> Vec<ResourceKind> {
    fn collect(ty: &Ty, out: &mut Vec<ResourceKind>) {
        match ty {
            Ty::IdOf(k) => out.push(*k),
            Ty::List(inner) => collect(inner, out),
            Ty::Object(fields) => fields.iter().for_each(|f| collect(&f.ty, out)),
            Ty::OneOf(tys) => tys.iter().for_each(|t| collect(t, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for field in kind.fields() {
        collect(&field.ty, &mut out);
    }
    out.sort();
    out.dedup();
    out
}

/// A kind's definition asked of its [`ResourceKind`] (`kind.def()`).
pub trait KindDef {
    /// Everything drctl knows about this kind.
    fn def(self) -> &'static dyn Kind;

    /// The attributes a stack may set on this kind (besides `tags`).
    fn fields(self) -> &'static [Field];

    /// What `${kind.name.<attr>}` may read once the resource exists.
    fn exports(self) -> &'static [(&'static str, ValueType)];

    fn export_type(self, attr: &str) -> Option<ValueType>;
}

impl KindDef for ResourceKind {
    fn def(self) -> &'static dyn Kind {
        def(self)
    }

    fn fields(self) -> &'static [Field] {
        def(self).fields()
    }

    fn exports(self) -> &'static [(&'static str, ValueType)] {
        def(self).exports()
    }

    fn export_type(self, attr: &str) -> Option<ValueType> {
        self.exports()
            .iter()
            .find(|(name, _)| *name == attr)
            .map(|(_, ty)| *ty)
    }
}
