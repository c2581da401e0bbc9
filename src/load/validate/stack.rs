//! The checks of one stack: its references resolve and their types agree,
//! its kinds' own rules hold, and its resources form no cycle.

use std::collections::BTreeMap;

use petgraph::graph::DiGraph;

use crate::diag::{suggest, Diagnostics, Pos};
use crate::graph::find_cycles;
use crate::kinds::schema::{ResourceKind, Ty, ValueType};
use crate::kinds::KindDef;
use crate::kinds::Problems;
use crate::load::decode::check_literal_str;
use crate::model::expr::{EnvField, Expr, ExprKind, RefTarget, Reference};
use crate::model::{Project, Stack};

pub(super) struct StackChecker<'a> {
    pub(super) project: &'a Project,
    pub(super) stack: &'a Stack,
    pub(super) diags: &'a mut Diagnostics,
}

/// What a reference must produce where it is used.
#[derive(Clone, Copy)]
enum Expected {
    /// The whole value of an attribute of this type.
    Whole(&'static Ty),
    /// Part of a string: a single value.
    Scalar,
    /// Anything (outputs, untyped places).
    Any,
}

impl<'a> StackChecker<'a> {
    fn error(
        &mut self,
        pos: Pos,
        key: &str,
        message: impl Into<String>,
    ) -> &mut crate::diag::Diagnostic {
        self.diags.error(&self.stack.file, pos, key, message)
    }

    pub(super) fn check(&mut self) {
        let stack = self.stack;
        for dep in &stack.depends_on {
            if dep.name == stack.name {
                self.error(dep.pos, "depends_on", "a stack cannot depend on itself");
            } else if !self.project.stacks.contains_key(&dep.name)
                && !self.project.unreadable_stacks.contains(&dep.name)
            {
                let hint = suggest(&dep.name, self.project.stacks.keys().map(String::as_str));
                self.error(
                    dep.pos,
                    "depends_on",
                    format!("unknown stack `{}`", dep.name),
                )
                .with_hint_opt(hint);
            }
        }
        for resource in &stack.resources {
            let base = format!("resources.{}.{}", resource.kind, resource.name);
            for (attr, value) in &resource.attrs {
                let ty = resource
                    .kind
                    .fields()
                    .iter()
                    .find(|f| f.name == attr)
                    .map(|f| &f.ty);
                self.check_expr(value, ty, &format!("{base}.{attr}"));
            }
            for (key, value) in &resource.tags {
                self.check_expr(value, Some(&Ty::Str), &format!("{base}.tags.{key}"));
            }
            self.check_kind_rules(resource, &base);
        }
        for output in &stack.outputs {
            self.check_expr(&output.value, None, &format!("outputs.{}", output.name));
        }
        self.check_resource_cycles();
    }

    fn check_expr(&mut self, expr: &Expr, ty: Option<&'static Ty>, path: &str) {
        if let Some(r) = expr.as_whole_ref() {
            let expected = ty.map_or(Expected::Any, Expected::Whole);
            self.check_ref(r, expected, path);
            return;
        }
        match (&expr.kind, ty) {
            (ExprKind::Str(t), _) => {
                for r in t.references() {
                    self.check_ref(r, Expected::Scalar, path);
                }
            }
            (ExprKind::List(items), ty) => {
                let inner = match ty {
                    Some(Ty::List(inner)) => Some(*inner),
                    _ => None,
                };
                for (i, item) in items.iter().enumerate() {
                    self.check_expr(item, inner, &format!("{path}[{i}]"));
                }
            }
            (ExprKind::Table(entries), ty) => {
                let ty = match ty {
                    Some(Ty::OneOf(options)) => {
                        options.iter().find(|t| t.accepts(ValueType::Table))
                    }
                    other => other,
                };
                for (key, value) in entries {
                    let field_ty = match ty {
                        Some(Ty::Object(fields)) => {
                            fields.iter().find(|f| f.name == key).map(|f| &f.ty)
                        }
                        Some(Ty::StrMap) => Some(&Ty::Str),
                        _ => None,
                    };
                    self.check_expr(value, field_ty, &format!("{path}.{key}"));
                }
            }
            (ExprKind::Int(_) | ExprKind::Bool(_), _) => {}
        }
    }

    fn check_ref(&mut self, r: &Reference, expected: Expected, path: &str) {
        let Some(found) = self.ref_type(r, path) else {
            return;
        };
        match expected {
            Expected::Any => {}
            Expected::Scalar => {
                if matches!(found, ValueType::List | ValueType::Table) {
                    self.error(r.pos, path, format!("`{r}` is {} and cannot be part of a string", found.describe()))
                        .with_hint("use the reference as the whole value, e.g. subnets = \"${stack.network.subnet_ids}\"");
                }
            }
            Expected::Whole(ty) => {
                if !ty.accepts(found) {
                    self.error(
                        r.pos,
                        path,
                        format!(
                            "expected {}, but `{r}` is {}",
                            ty.describe(),
                            found.describe()
                        ),
                    );
                    return;
                }
                if let (Ty::IdOf(want), RefTarget::Resource { kind, .. }) = (ty, &r.target) {
                    if kind != want {
                        self.error(
                            r.pos,
                            path,
                            format!("expected {}, but `{r}` refers to a {kind}", ty.describe()),
                        );
                    }
                }
                if let RefTarget::Var(name) = &r.target {
                    if let Some(var) = self.stack.vars.get(name) {
                        if let Some(text) = var.value.as_literal_str() {
                            if let Err((message, hint)) =
                                check_literal_str(ty, text, &self.stack.file)
                            {
                                let pos = var.pos;
                                self.error(
                                    pos,
                                    &format!("vars.{name}"),
                                    format!("{message} (used as {path})"),
                                )
                                .with_hint_opt(hint);
                            }
                        }
                    }
                }
            }
        }
    }

    /// The coarse type a reference resolves to, or `None` (with an error) when it does not resolve.
    fn ref_type(&mut self, r: &Reference, path: &str) -> Option<ValueType> {
        let stack = self.stack;
        match &r.target {
            RefTarget::Env(EnvField::Name | EnvField::Region) => Some(ValueType::Str),
            RefTarget::Var(name) => {
                match stack.vars.get(name) {
                    Some(var) => Some(expr_type(&var.value)),
                    None => {
                        let hint = suggest(name, stack.vars.keys().map(String::as_str)).or_else(|| {
                        Some(format!("declare it in the stack's [vars] with a default, e.g. {name} = \"…\""))
                    });
                        self.error(r.pos, path, format!("unknown variable `{name}` in `{r}`"))
                            .with_hint_opt(hint);
                        None
                    }
                }
            }
            RefTarget::Resource { kind, name, attr } => {
                if stack.resource(*kind, name).is_none() {
                    let same_kind: Vec<&str> = stack
                        .resources
                        .iter()
                        .filter(|res| res.kind == *kind)
                        .map(|res| res.name.as_str())
                        .collect();
                    let hint = suggest(name, same_kind.iter().copied()).or_else(|| {
                        Some(format!(
                            "stack `{}` declares no {kind}; another stack's resources are reached through its outputs: ${{stack.STACK.OUTPUT}}",
                            stack.name
                        ))
                    });
                    self.error(
                        r.pos,
                        path,
                        format!("unknown resource `{kind}.{name}` in `{r}`"),
                    )
                    .with_hint_opt(hint);
                    return None;
                }
                match kind.export_type(attr) {
                    Some(t) => Some(t),
                    None => {
                        let exports: Vec<&str> = kind.exports().iter().map(|(n, _)| *n).collect();
                        self.error(
                            r.pos,
                            path,
                            format!("{kind} has no attribute `{attr}` in `{r}`"),
                        )
                        .with_hint(format!("a {kind} exports: {}", exports.join(", ")));
                        None
                    }
                }
            }
            RefTarget::StackOutput {
                stack: other,
                output,
            } => {
                if other == &stack.name {
                    self.error(
                        r.pos,
                        path,
                        format!("`{r}` refers to this stack's own output"),
                    )
                    .with_hint("inside a stack, refer to the resource directly: ${KIND.NAME.ATTR}");
                    return None;
                }
                let Some(target) = self.project.stacks.get(other) else {
                    if self.project.unreadable_stacks.contains(other) {
                        return None;
                    }
                    let hint = suggest(other, self.project.stacks.keys().map(String::as_str));
                    self.error(r.pos, path, format!("unknown stack `{other}` in `{r}`"))
                        .with_hint_opt(hint);
                    return None;
                };
                match target.output(output) {
                    Some(o) => Some(output_type(self.project, target, &o.value, 0)),
                    None => {
                        let (message, hint) = missing_output(target, output);
                        self.error(r.pos, path, message).with_hint_opt(hint);
                        None
                    }
                }
            }
        }
    }

    /// Rules the schema cannot say alone: the kind's own.
    fn check_kind_rules(&mut self, resource: &crate::model::Resource, base: &str) {
        let mut problems = Problems::new(&self.stack.file, self.diags);
        resource.kind.def().check(resource, base, &mut problems);
    }

    fn check_resource_cycles(&mut self) {
        let stack = self.stack;
        let mut graph: DiGraph<String, ()> = DiGraph::new();
        let nodes: BTreeMap<(ResourceKind, &str), _> = stack
            .resources
            .iter()
            .map(|r| ((r.kind, r.name.as_str()), graph.add_node(r.address())))
            .collect();
        for resource in &stack.resources {
            let to = nodes[&(resource.kind, resource.name.as_str())];
            for r in resource.references() {
                if let RefTarget::Resource { kind, name, .. } = &r.target {
                    if let Some(&from) = nodes.get(&(*kind, name.as_str())) {
                        graph.update_edge(from, to, ());
                    }
                }
            }
        }
        for cycle in find_cycles(&graph) {
            // Edges point from dependency to dependent; show "needs" order,
            // starting at the resource declared first.
            let mut cycle = cycle;
            cycle.reverse();
            let first = (0..cycle.len()).min_by_key(|&i| cycle[i]).unwrap_or(0);
            cycle.rotate_left(first);
            let mut names: Vec<String> = cycle.iter().map(|&n| graph[n].clone()).collect();
            names.push(names[0].clone());
            let first = &names[0];
            let resource = stack.resources.iter().find(|r| &r.address() == first);
            let pos = resource.map(|r| r.pos).unwrap_or_default();
            self.error(
                pos,
                &format!("resources.{first}"),
                format!("resource reference cycle: {}", names.join(" → ")),
            )
            .with_hint("each resource must be creatable before the ones that refer to it");
        }
    }
}

/// The coarse type of a literal value.
pub(super) fn expr_type(expr: &Expr) -> ValueType {
    match &expr.kind {
        ExprKind::Str(_) => ValueType::Str,
        ExprKind::Int(_) => ValueType::Int,
        ExprKind::Bool(_) => ValueType::Bool,
        ExprKind::List(_) => ValueType::List,
        ExprKind::Table(_) => ValueType::Table,
    }
}

/// The problem (message, hint) with `${stack.<stack>.<output>}` when
/// `stack` declares no such output.
pub(super) fn missing_output(stack: &Stack, output: &str) -> (String, Option<String>) {
    let hint = suggest(output, stack.outputs.iter().map(|o| o.name.as_str()))
        .or_else(|| Some(format!("stack `{}` has no [outputs]", stack.name)));
    (
        format!("stack `{}` has no output `{output}`", stack.name),
        hint,
    )
}

/// The type of a stack output's value, following whole-value references.
/// `depth` stops runaway recursion through a stack cycle (reported separately).
pub(super) fn output_type(
    project: &Project,
    stack: &Stack,
    value: &Expr,
    depth: usize,
) -> ValueType {
    let Some(r) = value.as_whole_ref() else {
        return expr_type(value);
    };
    match &r.target {
        RefTarget::Resource { kind, attr, .. } => kind.export_type(attr).unwrap_or(ValueType::Str),
        RefTarget::Var(name) => stack
            .vars
            .get(name)
            .map_or(ValueType::Str, |v| expr_type(&v.value)),
        RefTarget::Env(_) => ValueType::Str,
        RefTarget::StackOutput {
            stack: other,
            output,
        } => {
            let next = project
                .stacks
                .get(other)
                .and_then(|s| Some((s, s.output(output)?)));
            match next {
                Some((s, o)) if depth < 16 => output_type(project, s, &o.value, depth + 1),
                _ => ValueType::Str,
            }
        }
    }
}
