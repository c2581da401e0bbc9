//! Loading a repository's stacks and runbooks, and the semantic checks that
//! need more than one value at a time: references resolve, types agree,
//! no cycles, every stack lands in exactly one phase after its dependencies.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use petgraph::graph::DiGraph;

use super::decode::{check_literal_str, parse_runbook, parse_stack};
use super::expr::{EnvField, Expr, ExprKind, RefTarget, Reference};
use super::schema::{ResourceKind, Ty, ValueType};
use super::{Check, Project, Runbook, ServiceRef, Stack};
use crate::diag::{suggest, Diagnostics, Pos, SourceFile};
use crate::graph::{find_cycles, StackGraph};
use crate::kinds::Problems;

/// Reads `stacks/*.toml` under `root` and the given runbooks (every
/// `runbooks/*.toml` when none is given), and validates them together.
/// Returns the project even when it has problems, so callers can show both.
pub fn load_project(root: &Path, runbooks: &[PathBuf]) -> (Project, Diagnostics) {
    let mut diags = Diagnostics::new();
    let mut project = Project {
        root: root.to_path_buf(),
        ..Project::default()
    };
    for path in toml_files(&under(root, "stacks"), &mut diags) {
        if let Some(src) = read_source(&path, &mut diags) {
            match parse_stack(&src, &mut diags) {
                Some(stack) => {
                    project.stacks.insert(stack.name.clone(), stack);
                }
                None => {
                    project
                        .unreadable_stacks
                        .insert(super::decode::file_stem(&path));
                }
            }
        }
    }
    let runbook_paths = if runbooks.is_empty() {
        toml_files(&under(root, "runbooks"), &mut diags)
    } else {
        runbooks.to_vec()
    };
    for path in &runbook_paths {
        if let Some(src) = read_source(path, &mut diags) {
            if let Some(runbook) = parse_runbook(&src, &mut diags) {
                project.runbooks.push(runbook);
            }
        }
    }
    if !runbooks.is_empty() {
        project.other_runbooks = other_runbooks(root, &runbook_paths);
    }
    validate_project(&project, &mut diags);
    (project, diags)
}

/// `root/rel`, without a leading `./` when the root is the current directory,
/// so messages show the paths users type.
fn under(root: &Path, rel: &str) -> PathBuf {
    if root == Path::new(".") || root.as_os_str().is_empty() {
        PathBuf::from(rel)
    } else {
        root.join(rel)
    }
}

fn toml_files(dir: &Path, diags: &mut Diagnostics) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            diags.error(dir, Pos { line: 1, column: 1 }, "", format!("cannot read directory: {e}"))
                .with_hint("run drctl from the repository root (the directory holding stacks/ and runbooks/), or pass --root");
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    files
}

/// The runbooks under `runbooks/` other than `selected`, read quietly: their
/// own problems are for a `drctl validate` of them, not for this command.
fn other_runbooks(root: &Path, selected: &[PathBuf]) -> Vec<Runbook> {
    let identity = |path: &Path| path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let selected: Vec<PathBuf> = selected.iter().map(|p| identity(p)).collect();
    let mut quiet = Diagnostics::new();
    toml_files(&under(root, "runbooks"), &mut quiet)
        .into_iter()
        .filter(|path| !selected.contains(&identity(path)))
        .filter_map(|path| parse_runbook(&read_source(&path, &mut quiet)?, &mut quiet))
        .collect()
}

fn read_source(path: &Path, diags: &mut Diagnostics) -> Option<SourceFile> {
    match std::fs::read_to_string(path) {
        Ok(text) => Some(SourceFile::new(path, text)),
        Err(e) => {
            diags.error(
                path,
                Pos { line: 1, column: 1 },
                "",
                format!("cannot read file: {e}"),
            );
            None
        }
    }
}

/// Every cross-value check, over every stack and runbook of the project.
pub fn validate_project(project: &Project, diags: &mut Diagnostics) {
    for stack in project.stacks.values() {
        StackChecker {
            project,
            stack,
            diags: &mut *diags,
        }
        .check();
    }
    check_stack_cycles(project, diags);
    for runbook in &project.runbooks {
        check_runbook(project, runbook, diags);
    }
    check_environment_claims(project, diags);
}

/// Two runbooks may not claim one environment in one region: each plans to
/// delete what carries the environment's tag and is not declared in its own
/// stacks, so each would delete the other's resources (and `destroy` of
/// either takes both down). Reported at the second claim, naming the first;
/// a runbook asked for alone is compared with every other runbook of the
/// repository all the same.
fn check_environment_claims(project: &Project, diags: &mut Diagnostics) {
    let mut earlier: Vec<&Runbook> = Vec::new();
    for runbook in &project.runbooks {
        // A missing environment or region is reported where it is parsed.
        if runbook.environment.is_empty() || runbook.region.is_empty() {
            continue;
        }
        let first = earlier
            .iter()
            .copied()
            .chain(&project.other_runbooks)
            .find(|other| {
                other.file != runbook.file
                    && other.environment == runbook.environment
                    && other.region == runbook.region
            });
        if let Some(first) = first {
            diags
                .error(
                    &runbook.file,
                    runbook.environment_pos,
                    "environment",
                    format!(
                        "environment `{}` in {} is already claimed by runbook {}",
                        runbook.environment,
                        runbook.region,
                        first.file.display()
                    ),
                )
                .with_hint("each runbook deletes the resources of its environment that its stacks do not declare, so two runbooks on one environment delete each other's; give one of them an environment of its own");
        }
        earlier.push(runbook);
    }
}

/// Each stack dependency cycle, reported at one of its edges and listing
/// every edge with the file, line and key that creates it, so that every file
/// to look at is named. The report starts at an edge written as `depends_on`
/// when the cycle has one: an explicit ordering is the usual edge to drop
/// (and the one most likely just added), where a `${stack.…}` reference
/// carries data the stack needs.
fn check_stack_cycles(project: &Project, diags: &mut Diagnostics) {
    let graph = StackGraph::new(project);
    for cycle in graph.cycles() {
        // `cycle[i]` depends on `cycle[i + 1]`, the last on the first.
        let Some(mut edges) = cycle
            .iter()
            .zip(cycle.iter().cycle().skip(1))
            .map(|(from, to)| {
                let stack = project.stacks.get(from)?;
                let cause = dependency_causes(stack).into_iter().find(|c| &c.on == to)?;
                Some((stack, cause))
            })
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        let start = edges
            .iter()
            .position(|(_, c)| c.key == "depends_on")
            .unwrap_or(0);
        edges.rotate_left(start);
        let mut path: Vec<&str> = edges.iter().map(|(s, _)| s.name.as_str()).collect();
        path.push(path[0]);
        let mut message = format!("stack dependency cycle: {}", path.join(" → "));
        for (stack, cause) in &edges {
            message.push_str(&format!(
                "\n  {} → {} ({}:{}:{}: {})",
                stack.name,
                cause.on,
                stack.file.display(),
                cause.pos.line,
                cause.pos.column,
                cause.what
            ));
        }
        let (stack, first) = &edges[0];
        diags
            .error(&stack.file, first.pos, first.key.clone(), message)
            .with_hint("stacks are applied in dependency order; break the cycle by dropping one of these edges, or by moving what they share into a stack of its own");
    }
}

/// What makes a stack depend on another: a `depends_on` entry or a
/// `${stack.….…}` reference, where it is written.
struct DependencyCause {
    /// The stack depended on.
    on: String,
    pos: Pos,
    /// The key it is written under: `depends_on`, `resources.….attr`, `outputs.x`.
    key: String,
    /// The key, and for a reference what it reads.
    what: String,
}

/// Every `depends_on` entry and `${stack.…}` reference of `stack`, in that
/// order (`depends_on` first, then the file's order).
fn dependency_causes(stack: &Stack) -> Vec<DependencyCause> {
    let explicit = stack.depends_on.iter().map(|d| DependencyCause {
        on: d.name.clone(),
        pos: d.pos,
        key: "depends_on".into(),
        what: "depends_on".into(),
    });
    let resources = stack.resources.iter().flat_map(|r| {
        let attrs = r
            .attrs
            .iter()
            .map(move |(k, v)| (format!("resources.{}.{k}", r.address()), v));
        let tags = r
            .tags
            .iter()
            .map(move |(k, v)| (format!("resources.{}.tags.{k}", r.address()), v));
        attrs.chain(tags)
    });
    let outputs = stack
        .outputs
        .iter()
        .map(|o| (format!("outputs.{}", o.name), &o.value));
    let references = resources.chain(outputs).flat_map(|(key, value)| {
        value
            .references()
            .into_iter()
            .filter_map(move |r| match &r.target {
                RefTarget::StackOutput { stack, output } => Some(DependencyCause {
                    on: stack.clone(),
                    pos: r.pos,
                    what: format!("{key} = \"${{stack.{stack}.{output}}}\""),
                    key: key.clone(),
                }),
                _ => None,
            })
    });
    explicit.chain(references).collect()
}

struct StackChecker<'a> {
    project: &'a Project,
    stack: &'a Stack,
    diags: &'a mut Diagnostics,
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

    fn check(&mut self) {
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
                        let hint = suggest(output, target.outputs.iter().map(|o| o.name.as_str()))
                            .or_else(|| Some(format!("stack `{other}` has no [outputs]")));
                        self.error(
                            r.pos,
                            path,
                            format!("stack `{other}` has no output `{output}`"),
                        )
                        .with_hint_opt(hint);
                        None
                    }
                }
            }
        }
    }

    /// Rules the schema cannot say alone: the kind's own.
    fn check_kind_rules(&mut self, resource: &super::Resource, base: &str) {
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
fn expr_type(expr: &Expr) -> ValueType {
    match &expr.kind {
        ExprKind::Str(_) => ValueType::Str,
        ExprKind::Int(_) => ValueType::Int,
        ExprKind::Bool(_) => ValueType::Bool,
        ExprKind::List(_) => ValueType::List,
        ExprKind::Table(_) => ValueType::Table,
    }
}

/// The type of a stack output's value, following whole-value references.
/// `depth` stops runaway recursion through a stack cycle (reported separately).
fn output_type(project: &Project, stack: &Stack, value: &Expr, depth: usize) -> ValueType {
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

fn check_runbook(project: &Project, runbook: &Runbook, diags: &mut Diagnostics) {
    let file = &runbook.file;
    let known = || project.stacks.keys().map(String::as_str);
    let unknown = |name: &str| {
        !project.stacks.contains_key(name) && !project.unreadable_stacks.contains(name)
    };
    for root in &runbook.stacks {
        if unknown(&root.name) {
            diags
                .error(
                    file,
                    root.pos,
                    "stacks",
                    format!("unknown stack `{}`", root.name),
                )
                .with_hint_opt(suggest(&root.name, known()));
        }
    }
    let graph = StackGraph::new(project);
    let closure: BTreeSet<String> = graph.closure(runbook.stacks.iter().map(|n| n.name.as_str()));
    check_var_overrides(project, runbook, &closure, diags);

    // Which phase applies each stack.
    let mut phase_of: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, phase) in runbook.phases.iter().enumerate() {
        let key = format!("phases.{}.stacks", phase.name);
        for s in &phase.stacks {
            if project.unreadable_stacks.contains(&s.name) {
                continue;
            }
            if unknown(&s.name) {
                diags
                    .error(file, s.pos, &key, format!("unknown stack `{}`", s.name))
                    .with_hint_opt(suggest(&s.name, known()));
            } else if !closure.contains(&s.name) {
                diags
                    .error(
                        file,
                        s.pos,
                        &key,
                        format!("stack `{}` is not part of this runbook", s.name),
                    )
                    .with_hint("add it (or a stack that depends on it) to the runbook's `stacks`");
            } else if let Some(&other) = phase_of.get(s.name.as_str()) {
                diags.error(file, s.pos, &key, format!(
                    "stack `{}` is already applied in phase `{}`; a stack lands in exactly one phase",
                    s.name, runbook.phases[other].name
                ));
            } else {
                phase_of.insert(&s.name, i);
            }
        }
    }
    if !runbook.phases.is_empty() {
        for stack in &closure {
            if !phase_of.contains_key(stack.as_str()) {
                let pos = runbook.phases[0].pos;
                diags
                    .error(file, pos, "phases", format!("stack `{stack}` is in no phase"))
                    .with_hint("every stack the runbook needs (its roots and their dependencies) must be listed in one phase");
            }
        }
        for (i, phase) in runbook.phases.iter().enumerate() {
            for s in &phase.stacks {
                let Some(stack) = project.stacks.get(&s.name) else {
                    continue;
                };
                for dep in stack.dependencies() {
                    if let Some(&j) = phase_of.get(dep.name.as_str()) {
                        if j > i {
                            diags
                                .error(
                                    file,
                                    s.pos,
                                    format!("phases.{}.stacks", phase.name),
                                    format!(
                                "phase `{}` applies `{}` before its dependency `{}` (phase `{}`)",
                                phase.name, s.name, dep.name, runbook.phases[j].name
                            ),
                                )
                                .with_hint(format!(
                                    "move `{}` to phase `{}` or later",
                                    s.name, runbook.phases[j].name
                                ));
                        }
                    }
                }
            }
        }
    }

    let mut cut_over: BTreeMap<String, &str> = BTreeMap::new();
    for (i, phase) in runbook.phases.iter().enumerate() {
        let key = format!("phases.{}.cutover", phase.name);
        for service in &phase.cutover {
            if !check_service_ref(project, runbook, &closure, service, &key, diags) {
                continue;
            }
            if let Some(&j) = phase_of.get(service.stack.as_str()) {
                if j > i {
                    diags.error(
                        file,
                        service.pos,
                        &key,
                        format!(
                        "phase `{}` cuts over `{service}` before its stack is applied (phase `{}`)",
                        phase.name, runbook.phases[j].name
                    ),
                    );
                }
            }
            if let Some(previous) = cut_over.insert(service.to_string(), &phase.name) {
                diags.error(
                    file,
                    service.pos,
                    &key,
                    format!("`{service}` is already cut over in phase `{previous}`"),
                );
            }
        }
    }
    for (i, check) in runbook.drill.checks.iter().enumerate() {
        let Check::TargetHealth(service) = check;
        check_service_ref(
            project,
            runbook,
            &closure,
            service,
            &format!("drill.checks[{i}].target_health"),
            diags,
        );
    }
}

fn check_service_ref(
    project: &Project,
    runbook: &Runbook,
    closure: &BTreeSet<String>,
    service: &ServiceRef,
    key: &str,
    diags: &mut Diagnostics,
) -> bool {
    let file = &runbook.file;
    let Some(stack) = project.stacks.get(&service.stack) else {
        if project.unreadable_stacks.contains(&service.stack) {
            return false;
        }
        diags
            .error(
                file,
                service.pos,
                key,
                format!("unknown stack `{}` in `{service}`", service.stack),
            )
            .with_hint_opt(suggest(
                &service.stack,
                project.stacks.keys().map(String::as_str),
            ));
        return false;
    };
    if !closure.contains(&service.stack) {
        diags
            .error(
                file,
                service.pos,
                key,
                format!("stack `{}` is not part of this runbook", service.stack),
            )
            .with_hint("add it to the runbook's `stacks`");
        return false;
    }
    // Cutovers and health checks name resources that take traffic.
    let takes_traffic = |r: &&super::Resource| r.kind.def().takes_traffic();
    if !stack
        .resources
        .iter()
        .filter(takes_traffic)
        .any(|r| r.name == service.name)
    {
        let names = stack
            .resources
            .iter()
            .filter(takes_traffic)
            .map(|r| r.name.as_str());
        diags
            .error(
                file,
                service.pos,
                key,
                format!(
                    "stack `{}` has no service `{}`",
                    service.stack, service.name
                ),
            )
            .with_hint_opt(suggest(&service.name, names));
        return false;
    }
    true
}

/// A runbook's `[vars]` must name variables its stacks declare, with the same
/// type, and a value that fits wherever a stack uses it.
fn check_var_overrides(
    project: &Project,
    runbook: &Runbook,
    closure: &BTreeSet<String>,
    diags: &mut Diagnostics,
) {
    let stacks: Vec<&Stack> = closure
        .iter()
        .filter_map(|s| project.stacks.get(s))
        .collect();
    for (name, var) in &runbook.vars {
        let declared: Vec<&Stack> = stacks
            .iter()
            .copied()
            .filter(|s| s.vars.contains_key(name))
            .collect();
        if declared.is_empty() {
            let all: BTreeSet<&str> = stacks
                .iter()
                .flat_map(|s| s.vars.keys().map(String::as_str))
                .collect();
            diags
                .error(
                    &runbook.file,
                    var.pos,
                    format!("vars.{name}"),
                    format!("no stack of this runbook declares variable `{name}`"),
                )
                .with_hint_opt(suggest(name, all));
            continue;
        }
        let found = expr_type(&var.value);
        for stack in declared {
            let default = expr_type(&stack.vars[name].value);
            if default != found {
                diags.error(
                    &runbook.file,
                    var.pos,
                    format!("vars.{name}"),
                    format!(
                        "expected {} (the type of `{name}` in stack `{}`), found {}",
                        default.describe(),
                        stack.name,
                        found.describe()
                    ),
                );
                continue;
            }
            let Some(text) = var.value.as_literal_str() else {
                continue;
            };
            for (ty, path) in whole_var_uses(stack, name) {
                if let Err((message, hint)) = check_literal_str(ty, text, &stack.file) {
                    diags
                        .error(
                            &runbook.file,
                            var.pos,
                            format!("vars.{name}"),
                            format!("{message} (used as {path} in stack `{}`)", stack.name),
                        )
                        .with_hint_opt(hint);
                }
            }
        }
    }
}

/// Where a stack uses `${var.<name>}` as a whole attribute value, with the attribute's type.
fn whole_var_uses(stack: &Stack, var: &str) -> Vec<(&'static Ty, String)> {
    let mut uses = Vec::new();
    for resource in &stack.resources {
        for field in resource.kind.fields() {
            let Some(value) = resource.attr(field.name) else {
                continue;
            };
            if let Some(RefTarget::Var(name)) = value.as_whole_ref().map(|r| &r.target) {
                if name == var {
                    uses.push((
                        &field.ty,
                        format!(
                            "resources.{}.{}.{}",
                            resource.kind, resource.name, field.name
                        ),
                    ));
                }
            }
        }
    }
    uses
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runbook(env: &str, region: &str) -> String {
        format!("environment = \"{env}\"\nregion = \"{region}\"\nstacks = [\"s\"]\n")
    }

    fn claims(root: &Path, selected: &[&str]) -> Vec<String> {
        let selected: Vec<PathBuf> = selected.iter().map(|s| root.join(s)).collect();
        let (_, diags) = load_project(root, &selected);
        let prefix = format!("{}/", root.display());
        diags
            .sorted()
            .iter()
            .map(|d| d.to_string().replace(&prefix, ""))
            .map(|d| d.lines().next().unwrap().to_string())
            .collect()
    }

    #[test]
    fn a_runbook_asked_for_alone_is_compared_with_every_other_runbook() {
        let dir = tempfile::tempdir().unwrap();
        let write = |rel: &str, text: &str| {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("stacks/s.toml", "");
        write("runbooks/a.toml", &runbook("web", "us-east-1"));
        write("runbooks/b.toml", &runbook("web", "us-east-1"));
        // The same environment in another region is another environment.
        write("runbooks/c.toml", &runbook("web", "eu-west-1"));
        // Another runbook's own problems are not this command's.
        write("runbooks/d.toml", "environment = \n");
        let root = dir.path();

        let at_b = "runbooks/b.toml:1:15: environment: environment `web` in us-east-1 is already claimed by runbook runbooks/a.toml";
        let at_a = "runbooks/a.toml:1:15: environment: environment `web` in us-east-1 is already claimed by runbook runbooks/b.toml";
        assert_eq!(claims(root, &["runbooks/b.toml"]), [at_b]);
        assert_eq!(claims(root, &["runbooks/a.toml"]), [at_a]);
        // Both asked for: reported once, at the second.
        assert_eq!(
            claims(root, &["runbooks/a.toml", "runbooks/b.toml"]),
            [at_b]
        );
        // A runbook named by another spelling of its path is not its own rival.
        assert_eq!(
            claims(root, &["runbooks/../runbooks/c.toml"]),
            Vec::<String>::new()
        );
        // All of them: d's problem, and the claim once.
        let all = claims(root, &[]);
        assert_eq!(all.len(), 2, "{all:#?}");
        assert_eq!(all[0], at_b);
        assert!(all[1].starts_with("runbooks/d.toml:1:"), "{all:#?}");
    }
}
