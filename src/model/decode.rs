//! TOML text → [`Stack`] / [`Runbook`], reporting every problem with its
//! position instead of stopping at the first (serde would stop at one).
//!
//! The span-keeping tree from `toml::de::DeTable` is walked by hand: each table
//! lists the keys it allows (unknown keys are errors, with a "did you mean"),
//! and each resource attribute is checked against [`schema`](super::schema).
//! References are parsed here; whether they resolve is [`validate`](super::validate)'s job.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::expr::{parse_template, Expr, ExprKind};
use super::schema::{Field, ResourceKind, Ty};
use super::{
    Check, Drill, Gate, ManualGate, Named, OnTimeout, Output, Phase, Resource, Runbook, Schedule,
    ServiceRef, Stack, Teardown, Var,
};
use crate::diag::{suggest, Diagnostic, Diagnostics, Pos, SourceFile};

type Value<'i> = Spanned<DeValue<'i>>;

/// Parses one stack file. `None` when it could not be read as TOML at all;
/// otherwise a stack with the problems pushed into `diags`.
pub fn parse_stack(src: &SourceFile, diags: &mut Diagnostics) -> Option<Stack> {
    let mut d = Decoder { src, diags };
    let root = d.document()?;
    let name = file_stem(&src.path);
    d.check_name(&name, Pos { line: 1, column: 1 }, "", "stack file name");
    d.check_keys(
        &root,
        "",
        &["description", "depends_on", "vars", "resources", "outputs"],
    );
    let mut stack = Stack {
        name,
        file: src.path.clone(),
        description: d.opt_str(&root, "description", ""),
        depends_on: d.name_list(&root, "depends_on", ""),
        vars: d.vars(&root),
        resources: Vec::new(),
        outputs: Vec::new(),
    };
    if let Some(resources) = d.table(&root, "resources", "") {
        for (kind_key, kind_value) in resources.iter() {
            let kind_path = format!("resources.{}", kind_key.get_ref());
            let Some(kind) = ResourceKind::from_name(kind_key.get_ref()) else {
                d.at(
                    kind_key.span(),
                    &kind_path,
                    format!("unknown resource kind `{}`", kind_key.get_ref()),
                )
                .with_hint_opt(suggest(
                    kind_key.get_ref(),
                    ResourceKind::ALL.iter().map(|k| k.name()),
                ));
                continue;
            };
            let Some(by_name) = d.as_table(kind_value, &kind_path) else {
                continue;
            };
            for (name_key, body) in by_name.iter() {
                let path = format!("{kind_path}.{}", name_key.get_ref());
                if let Some(resource) = d.resource(kind, name_key, body, &path) {
                    stack.resources.push(resource);
                }
            }
        }
    }
    if let Some(outputs) = d.table(&root, "outputs", "") {
        for (key, value) in outputs.iter() {
            let path = format!("outputs.{}", key.get_ref());
            if let Some(expr) = d.expr(value, &path) {
                stack.outputs.push(Output {
                    name: key.get_ref().to_string(),
                    value: expr,
                    pos: d.pos(key.span()),
                });
            }
        }
    }
    Some(stack)
}

/// Parses one runbook file, like [`parse_stack`].
pub fn parse_runbook(src: &SourceFile, diags: &mut Diagnostics) -> Option<Runbook> {
    let mut d = Decoder { src, diags };
    let root = d.document()?;
    d.check_keys(
        &root,
        "",
        &[
            "description",
            "environment",
            "region",
            "stacks",
            "schedule",
            "timezone",
            "rto_target",
            "protected",
            "vars",
            "phases",
            "drill",
        ],
    );
    let environment = d.req_str(&root, "environment", "");
    let environment_pos = root
        .get("environment")
        .map_or(Pos { line: 1, column: 1 }, |v| d.pos(v.span()));
    if let (Some(env), Some((_, value))) = (&environment, root.get_key_value("environment")) {
        d.check_environment_name(env, value);
    }
    let region = d.req_str(&root, "region", "");
    if let (Some(region), Some((_, value))) = (&region, root.get_key_value("region")) {
        if !is_region_name(region) {
            d.at(
                value.span(),
                "region",
                format!("`{region}` is not an AWS region name"),
            )
            .with_hint("a region looks like \"us-west-2\" or \"eu-central-1\"");
        }
    }
    let stacks = d.name_list(&root, "stacks", "");
    if root.get("stacks").is_none() {
        d.missing(
            &root,
            "stacks",
            "",
            "a list of root stack names, e.g. [\"web\"]",
        );
    } else if stacks.is_empty() {
        if let Some(v) = root.get("stacks") {
            d.at(v.span(), "stacks", "a runbook needs at least one stack");
        }
    }
    let timezone = d
        .opt_str(&root, "timezone", "")
        .unwrap_or_else(|| "UTC".to_string());
    if let Some(v) = root.get("timezone") {
        if jiff::tz::TimeZone::get(&timezone).is_err() {
            d.at(
                v.span(),
                "timezone",
                format!("unknown time zone `{timezone}`"),
            )
            .with_hint(
                "use an IANA name such as \"UTC\", \"Europe/Berlin\" or \"America/New_York\"",
            );
        }
    }
    let schedule = d.opt_str(&root, "schedule", "").and_then(|expression| {
        match expression.parse::<croner::Cron>() {
            Ok(cron) => Some(Schedule { expression, cron }),
            Err(e) => {
                let span = root.get("schedule").map(|v| v.span()).unwrap_or(0..0);
                d.at(
                    span,
                    "schedule",
                    format!("invalid cron expression `{expression}`: {e}"),
                )
                .with_hint(
                    "five fields: minute hour day-of-month month day-of-week, e.g. \"0 4 * * SAT\"",
                );
                None
            }
        }
    });
    let rto_target = d.opt_duration(&root, "rto_target", "");
    let protected = d.opt_bool(&root, "protected", "").unwrap_or(false);
    let vars = d.vars(&root);
    let phases = d.phases(&root);
    let drill = d.drill(&root);
    Some(Runbook {
        name: file_stem(&src.path),
        file: src.path.clone(),
        description: d.opt_str(&root, "description", ""),
        environment: environment.unwrap_or_default(),
        environment_pos,
        region: region.unwrap_or_default(),
        stacks,
        schedule,
        timezone,
        rto_target,
        protected,
        vars,
        phases,
        drill,
    })
}

pub(crate) fn file_stem(path: &Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string()
}

/// `us-west-2`, `eu-central-1`, `us-gov-west-1`, …
fn is_region_name(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

struct Decoder<'a> {
    src: &'a SourceFile,
    diags: &'a mut Diagnostics,
}

impl<'a> Decoder<'a> {
    fn pos(&self, span: Range<usize>) -> Pos {
        self.src.pos(span.start)
    }

    fn at(&mut self, span: Range<usize>, key: &str, message: impl Into<String>) -> &mut Diagnostic {
        let pos = self.pos(span);
        self.diags.error(&self.src.path, pos, key, message)
    }

    fn at_pos(&mut self, pos: Pos, key: &str, message: impl Into<String>) -> &mut Diagnostic {
        self.diags.error(&self.src.path, pos, key, message)
    }

    /// The whole file as a table; syntax errors are reported, all of them.
    fn document(&mut self) -> Option<DeTable<'a>> {
        let (root, errors) = DeTable::parse_recoverable(&self.src.text);
        for error in &errors {
            let span = error.span().unwrap_or(0..0);
            self.at(
                span,
                "",
                format!("invalid TOML: {}", error.message().trim()),
            );
        }
        if errors.is_empty() {
            Some(root.into_inner())
        } else {
            None
        }
    }

    fn check_keys(&mut self, table: &DeTable<'_>, prefix: &str, allowed: &[&str]) {
        for key in table.keys() {
            if !allowed.contains(&key.get_ref().as_ref()) {
                let path = join(prefix, key.get_ref());
                self.at(
                    key.span(),
                    &path,
                    format!("unknown key `{}`", key.get_ref()),
                )
                .with_hint_opt(suggest(key.get_ref(), allowed.iter().copied()));
            }
        }
    }

    fn missing(&mut self, table: &DeTable<'_>, key: &str, prefix: &str, expected: &str) {
        // Point at the table's first key (the header line), or the file start.
        let pos = table
            .keys()
            .next()
            .map(|k| self.pos(k.span()))
            .unwrap_or(Pos { line: 1, column: 1 });
        let path = join(prefix, key);
        self.at_pos(
            pos,
            &path,
            format!("missing required key `{key}`: expected {expected}"),
        );
    }

    fn wrong_type(&mut self, value: &Value<'_>, path: &str, expected: &str) {
        let found = value.get_ref().type_str();
        self.at(
            value.span(),
            path,
            format!("expected {expected}, found {found}"),
        );
    }

    fn as_table<'v>(&mut self, value: &'v Value<'a>, path: &str) -> Option<&'v DeTable<'a>> {
        match value.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.wrong_type(value, path, "a table");
                None
            }
        }
    }

    fn table<'v>(
        &mut self,
        table: &'v DeTable<'a>,
        key: &str,
        prefix: &str,
    ) -> Option<&'v DeTable<'a>> {
        let value = table.get(key)?;
        self.as_table(value, &join(prefix, key))
    }

    fn opt_str(&mut self, table: &DeTable<'_>, key: &str, prefix: &str) -> Option<String> {
        let value = table.get(key)?;
        match value.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => {
                self.wrong_type(value, &join(prefix, key), "a string");
                None
            }
        }
    }

    fn req_str(&mut self, table: &DeTable<'_>, key: &str, prefix: &str) -> Option<String> {
        if table.get(key).is_none() {
            self.missing(table, key, prefix, "a string");
            return None;
        }
        self.opt_str(table, key, prefix)
    }

    fn opt_bool(&mut self, table: &DeTable<'_>, key: &str, prefix: &str) -> Option<bool> {
        let value = table.get(key)?;
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(value, &join(prefix, key), "true or false");
                None
            }
        }
    }

    fn opt_int(&mut self, table: &DeTable<'_>, key: &str, prefix: &str, min: i64) -> Option<i64> {
        let value = table.get(key)?;
        let path = join(prefix, key);
        match value.get_ref() {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) if n >= min => Some(n),
                _ => {
                    self.at(
                        value.span(),
                        &path,
                        format!("expected an integer ≥ {min}, found {i}"),
                    );
                    None
                }
            },
            _ => {
                self.wrong_type(value, &path, &format!("an integer ≥ {min}"));
                None
            }
        }
    }

    fn opt_duration(
        &mut self,
        table: &DeTable<'_>,
        key: &str,
        prefix: &str,
    ) -> Option<std::time::Duration> {
        let text = self.opt_str(table, key, prefix)?;
        match humantime::parse_duration(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                let span = table.get(key).map(|v| v.span()).unwrap_or(0..0);
                self.at(
                    span,
                    &join(prefix, key),
                    format!("invalid duration `{text}`: {e}"),
                )
                .with_hint("write a duration like \"30m\", \"1h\" or \"1h 30m\"");
                None
            }
        }
    }

    fn check_name(&mut self, name: &str, pos: Pos, path: &str, what: &str) -> bool {
        let ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok {
            self.at_pos(pos, path, format!("invalid {what} `{name}`"))
                .with_hint("use letters, digits, `_` and `-` only");
        }
        ok
    }

    fn check_environment_name(&mut self, env: &str, value: &Value<'_>) {
        let ok = (1..=40).contains(&env.len())
            && env.starts_with(|c: char| c.is_ascii_lowercase())
            && env
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            self.at(value.span(), "environment", format!("invalid environment name `{env}`"))
                .with_hint("1 to 40 characters: lowercase letters, digits and `-`, starting with a letter (it is part of tags and load-balancer names)");
        }
    }

    /// A list of names (stack names, approvers), with duplicates reported.
    fn name_list(&mut self, table: &DeTable<'_>, key: &str, prefix: &str) -> Vec<Named> {
        let Some(value) = table.get(key) else {
            return Vec::new();
        };
        let path = join(prefix, key);
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(value, &path, "a list of names");
            return Vec::new();
        };
        let mut names: Vec<Named> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            let DeValue::String(s) = item.get_ref() else {
                self.wrong_type(item, &item_path, "a name (string)");
                continue;
            };
            let pos = self.pos(item.span());
            if names.iter().any(|n| n.name == *s) {
                self.at_pos(pos, &item_path, format!("duplicate name `{s}`"));
                continue;
            }
            names.push(Named {
                name: s.to_string(),
                pos,
            });
        }
        names
    }

    /// `[vars]`: literal defaults or overrides; `{ value = …, sensitive = true }`
    /// declares a secret.
    fn vars(&mut self, root: &DeTable<'a>) -> BTreeMap<String, Var> {
        let mut vars = BTreeMap::new();
        let Some(table) = self.table(root, "vars", "") else {
            return vars;
        };
        for (key, value) in table.iter() {
            let path = format!("vars.{}", key.get_ref());
            let Some(expr) = self.expr(value, &path) else {
                continue;
            };
            let (expr, sensitive) = sensitive_var(expr);
            if let Some(r) = expr.references().first() {
                self.at_pos(
                    r.pos,
                    &path,
                    format!("vars are literal values; `{r}` is not allowed here"),
                )
                .with_hint("write the value itself; a runbook's [vars] overrides a stack's");
                continue;
            }
            vars.insert(
                key.get_ref().to_string(),
                Var {
                    value: expr,
                    pos: self.pos(key.span()),
                    sensitive,
                },
            );
        }
        vars
    }

    /// Any value, with `${…}` parsed in every string.
    fn expr(&mut self, value: &Value<'_>, path: &str) -> Option<Expr> {
        let pos = self.pos(value.span());
        let kind = match value.get_ref() {
            DeValue::String(s) => {
                // References are placed relative to the first character inside the quotes.
                let quote_len = if self.src.text[value.span().start..].starts_with("\"\"\"")
                    || self.src.text[value.span().start..].starts_with("'''")
                {
                    3
                } else {
                    1
                };
                let start = Pos {
                    line: pos.line,
                    column: pos.column + quote_len,
                };
                match parse_template(s, start) {
                    Ok(t) => ExprKind::Str(t),
                    Err(e) => {
                        let at = Pos {
                            line: start.line,
                            column: start.column + e.offset as u32,
                        };
                        self.at_pos(at, path, e.message).with_hint_opt(e.hint);
                        return None;
                    }
                }
            }
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => ExprKind::Int(n),
                Err(_) => {
                    self.at(value.span(), path, format!("integer {i} is out of range"));
                    return None;
                }
            },
            DeValue::Boolean(b) => ExprKind::Bool(*b),
            DeValue::Float(_) | DeValue::Datetime(_) => {
                self.wrong_type(value, path, "a string, integer, boolean, list or table");
                return None;
            }
            DeValue::Array(items) => ExprKind::List(
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, item)| self.expr(item, &format!("{path}[{i}]")))
                    .collect(),
            ),
            DeValue::Table(t) => ExprKind::Table(
                t.iter()
                    .filter_map(|(k, v)| {
                        let e = self.expr(v, &join(path, k.get_ref()))?;
                        Some((k.get_ref().to_string(), e))
                    })
                    .collect(),
            ),
        };
        Some(Expr { kind, pos })
    }

    fn resource(
        &mut self,
        kind: ResourceKind,
        name_key: &Spanned<std::borrow::Cow<'_, str>>,
        body: &Value<'a>,
        path: &str,
    ) -> Option<Resource> {
        let name = name_key.get_ref().to_string();
        let pos = self.pos(name_key.span());
        self.check_name(&name, pos, path, "resource name");
        let table = self.as_table(body, path)?;
        let fields = kind.fields();
        let mut allowed: Vec<&str> = fields.iter().map(|f| f.name).collect();
        allowed.push("tags");
        self.check_keys(table, path, &allowed);
        for field in fields.iter().filter(|f| f.required) {
            if table.get(field.name).is_none() {
                self.at_pos(
                    pos,
                    &join(path, field.name),
                    format!(
                        "{kind} `{name}` is missing required attribute `{}`: expected {}",
                        field.name,
                        field.ty.describe()
                    ),
                );
            }
        }
        let mut attrs = Vec::new();
        for field in fields {
            let Some(value) = table.get(field.name) else {
                continue;
            };
            let attr_path = join(path, field.name);
            if let Some(expr) = self.expr(value, &attr_path) {
                self.check_ty(&expr, &field.ty, &attr_path);
                attrs.push((field.name.to_string(), expr));
            }
        }
        let mut tags = Vec::new();
        if let Some(value) = table.get("tags") {
            let tags_path = join(path, "tags");
            if let Some(expr) = self.expr(value, &tags_path) {
                self.check_ty(&expr, &Ty::StrMap, &tags_path);
                if let ExprKind::Table(entries) = expr.kind {
                    for (key, _) in entries.iter().filter(|(k, _)| k.starts_with("drctl:")) {
                        self.at_pos(
                            expr.pos,
                            &join(&tags_path, key),
                            format!("tag `{key}` is reserved"),
                        )
                        .with_hint("drctl sets the `drctl:*` tags itself");
                    }
                    tags = entries;
                }
            }
        }
        Some(Resource {
            kind,
            name,
            attrs,
            tags,
            pos,
        })
    }

    /// Checks a value against a schema type as far as it is known before
    /// references are resolved; whole-value references are checked by `validate`.
    fn check_ty(&mut self, expr: &Expr, ty: &Ty, path: &str) {
        if expr.as_whole_ref().is_some() {
            return;
        }
        if let Ty::OneOf(options) = ty {
            let vt = value_type(expr);
            match options.iter().find(|t| t.accepts(vt)) {
                Some(t) => self.check_ty(expr, t, path),
                None => {
                    self.at_pos(
                        expr.pos,
                        path,
                        format!("expected {}, found {}", ty.describe(), expr.type_name()),
                    );
                }
            }
            return;
        }
        if !ty.accepts(value_type(expr)) {
            self.at_pos(
                expr.pos,
                path,
                format!("expected {}, found {}", ty.describe(), expr.type_name()),
            );
            return;
        }
        match (ty, &expr.kind) {
            (Ty::Int { min, max }, ExprKind::Int(n)) if n < min || n > max => {
                self.at_pos(
                    expr.pos,
                    path,
                    format!("expected {}, found {n}", ty.describe()),
                );
            }
            (Ty::List(inner), ExprKind::List(items)) => {
                for (i, item) in items.iter().enumerate() {
                    self.check_ty(item, inner, &format!("{path}[{i}]"));
                }
            }
            (Ty::Object(fields), ExprKind::Table(entries)) => {
                self.check_object(expr, fields, entries, path)
            }
            (Ty::StrMap, ExprKind::Table(entries)) => {
                for (key, value) in entries {
                    if !matches!(value.kind, ExprKind::Str(_)) {
                        self.at_pos(
                            value.pos,
                            &join(path, key),
                            format!("expected a string, found {}", value.type_name()),
                        );
                    }
                }
            }
            (_, ExprKind::Str(template)) => {
                if let Some(text) = template.as_literal() {
                    if let Err((message, hint)) = check_literal_str(ty, text, &self.src.path) {
                        self.at_pos(expr.pos, path, message).with_hint_opt(hint);
                    }
                }
            }
            _ => {}
        }
    }

    fn check_object(
        &mut self,
        expr: &Expr,
        fields: &[Field],
        entries: &[(String, Expr)],
        path: &str,
    ) {
        let allowed: Vec<&str> = fields.iter().map(|f| f.name).collect();
        for (key, value) in entries {
            match fields.iter().find(|f| f.name == key) {
                Some(field) => self.check_ty(value, &field.ty, &join(path, key)),
                None => {
                    self.at_pos(value.pos, &join(path, key), format!("unknown key `{key}`"))
                        .with_hint_opt(suggest(key, allowed.iter().copied()));
                }
            }
        }
        for field in fields.iter().filter(|f| f.required) {
            if !entries.iter().any(|(k, _)| k == field.name) {
                self.at_pos(
                    expr.pos,
                    &join(path, field.name),
                    format!(
                        "missing required key `{}`: expected {}",
                        field.name,
                        field.ty.describe()
                    ),
                );
            }
        }
    }

    fn phases(&mut self, root: &DeTable<'a>) -> Vec<Phase> {
        let Some(value) = root.get("phases") else {
            return Vec::new();
        };
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(value, "phases", "an array of tables ([[phases]])");
            return Vec::new();
        };
        let mut phases: Vec<Phase> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("phases[{i}]");
            let Some(table) = self.as_table(item, &path) else {
                continue;
            };
            self.check_keys(table, &path, &["name", "stacks", "cutover", "gate"]);
            let pos = self.pos(item.span());
            let Some(name) = self.req_str(table, "name", &path) else {
                continue;
            };
            let path = format!("phases.{name}");
            if phases.iter().any(|p| p.name == name) {
                self.at_pos(pos, &path, format!("duplicate phase name `{name}`"));
            }
            let stacks = self.name_list(table, "stacks", &path);
            let cutover = self
                .name_list(table, "cutover", &path)
                .into_iter()
                .filter_map(|n| self.service_ref(&n, &join(&path, "cutover")))
                .collect::<Vec<_>>();
            if stacks.is_empty() && cutover.is_empty() {
                self.at_pos(pos, &path, format!("phase `{name}` has nothing to do"))
                    .with_hint(
                        "list `stacks = [...]` to apply, or `cutover = [\"STACK.service.NAME\"]`",
                    );
            }
            let gate = table
                .get("gate")
                .map(|g| self.gate(g, &join(&path, "gate")))
                .unwrap_or_default();
            phases.push(Phase {
                name,
                stacks,
                cutover,
                gate,
                pos,
            });
        }
        phases
    }

    /// `"STACK.service.NAME"`
    fn service_ref(&mut self, named: &Named, path: &str) -> Option<ServiceRef> {
        match named.name.split('.').collect::<Vec<_>>().as_slice() {
            [stack, "service", name] if !stack.is_empty() && !name.is_empty() => Some(ServiceRef {
                stack: stack.to_string(),
                name: name.to_string(),
                pos: named.pos,
            }),
            _ => {
                self.at_pos(
                    named.pos,
                    path,
                    format!("`{}` does not name a service", named.name),
                )
                .with_hint("write \"STACK.service.NAME\", e.g. \"web.service.web\"");
                None
            }
        }
    }

    fn gate(&mut self, value: &Value<'a>, path: &str) -> Gate {
        match value.get_ref() {
            DeValue::String(s) if s == "auto" => Gate::Auto,
            DeValue::String(s) if s == "manual" => Gate::Manual(ManualGate::default()),
            DeValue::Table(table) => {
                self.check_keys(table, path, &["manual"]);
                let Some(manual) = self.table(table, "manual", path) else {
                    if table.get("manual").is_none() {
                        self.at(value.span(), path, "expected `{ manual = { … } }`");
                    }
                    return Gate::Auto;
                };
                let path = join(path, "manual");
                self.check_keys(
                    manual,
                    &path,
                    &["approvals", "approvers", "timeout", "on_timeout"],
                );
                let approvers: Vec<String> = self
                    .name_list(manual, "approvers", &path)
                    .into_iter()
                    .map(|n| n.name)
                    .collect();
                let approvals = self.opt_int(manual, "approvals", &path, 1).unwrap_or(1) as u32;
                if !approvers.is_empty() && approvals as usize > approvers.len() {
                    let span = manual
                        .get("approvals")
                        .map(|v| v.span())
                        .unwrap_or(value.span());
                    self.at(
                        span,
                        &join(&path, "approvals"),
                        format!(
                            "{approvals} approvals needed but only {} approver{} listed",
                            approvers.len(),
                            if approvers.len() == 1 { " is" } else { "s are" }
                        ),
                    );
                }
                let timeout = self.opt_duration(manual, "timeout", &path);
                let on_timeout = match self.opt_str(manual, "on_timeout", &path).as_deref() {
                    None | Some("wait") => OnTimeout::Wait,
                    Some("reject") => OnTimeout::Reject,
                    Some(other) => {
                        let span = manual.get("on_timeout").map(|v| v.span()).unwrap_or(0..0);
                        self.at(
                            span,
                            &join(&path, "on_timeout"),
                            format!("expected `reject` or `wait`, found `{other}`"),
                        );
                        OnTimeout::Wait
                    }
                };
                if on_timeout == OnTimeout::Reject && timeout.is_none() {
                    let span = manual.get("on_timeout").map(|v| v.span()).unwrap_or(0..0);
                    self.at(
                        span,
                        &join(&path, "on_timeout"),
                        "`on_timeout` needs a `timeout`",
                    )
                    .with_hint("add e.g. `timeout = \"4h\"`");
                }
                Gate::Manual(ManualGate {
                    approvals,
                    approvers,
                    timeout,
                    on_timeout,
                })
            }
            DeValue::String(s) => {
                self.at(value.span(), path, format!("unknown gate `{s}`"))
                    .with_hint("a gate is \"auto\", \"manual\" or { manual = { approvals = 2 } }");
                Gate::Auto
            }
            _ => {
                self.wrong_type(value, path, "\"auto\", \"manual\" or { manual = { … } }");
                Gate::Auto
            }
        }
    }

    fn drill(&mut self, root: &DeTable<'a>) -> Drill {
        let mut drill = Drill::default();
        let Some(table) = self.table(root, "drill", "") else {
            return drill;
        };
        self.check_keys(table, "drill", &["teardown", "auto_approve", "checks"]);
        match self.opt_str(table, "teardown", "drill").as_deref() {
            None => {}
            Some("always") => drill.teardown = Teardown::Always,
            Some("on_success") => drill.teardown = Teardown::OnSuccess,
            Some("never") => drill.teardown = Teardown::Never,
            Some(other) => {
                let span = table.get("teardown").map(|v| v.span()).unwrap_or(0..0);
                self.at(
                    span,
                    "drill.teardown",
                    format!("expected `always`, `on_success` or `never`, found `{other}`"),
                )
                .with_hint_opt(suggest(other, ["always", "on_success", "never"]));
            }
        }
        if let Some(auto) = self.opt_bool(table, "auto_approve", "drill") {
            drill.auto_approve = auto;
        }
        if let Some(value) = table.get("checks") {
            let DeValue::Array(items) = value.get_ref() else {
                self.wrong_type(value, "drill.checks", "a list of checks");
                return drill;
            };
            for (i, item) in items.iter().enumerate() {
                let path = format!("drill.checks[{i}]");
                let Some(check) = self.as_table(item, &path) else {
                    continue;
                };
                self.check_keys(check, &path, &["target_health"]);
                if check.len() != 1 {
                    self.at(
                        item.span(),
                        &path,
                        "a check is one of: { target_health = \"STACK.service.NAME\" }",
                    );
                    continue;
                }
                if let Some(target) = self.opt_str(check, "target_health", &path) {
                    let pos = check
                        .get("target_health")
                        .map(|v| self.pos(v.span()))
                        .unwrap_or_default();
                    let named = Named { name: target, pos };
                    if let Some(service) = self.service_ref(&named, &join(&path, "target_health")) {
                        drill.checks.push(Check::TargetHealth(service));
                    }
                }
            }
        }
        drill
    }
}

/// The coarse type of a value as written (`Str` for strings with references).
fn value_type(expr: &Expr) -> super::ValueType {
    use super::ValueType as V;
    match expr.kind {
        ExprKind::Str(_) => V::Str,
        ExprKind::Int(_) => V::Int,
        ExprKind::Bool(_) => V::Bool,
        ExprKind::List(_) => V::List,
        ExprKind::Table(_) => V::Table,
    }
}

/// Checks a literal string against a string-like type; shared with the
/// validator, which checks variables' values where they are used.
pub fn check_literal_str(ty: &Ty, text: &str, file: &Path) -> Result<(), (String, Option<String>)> {
    match ty {
        Ty::Cidr => check_cidr(text, 0..=32),
        Ty::Block => check_cidr(text, 16..=28),
        Ty::Duration => humantime::parse_duration(text).map(|_| ()).map_err(|e| {
            (
                format!("invalid duration `{text}`: {e}"),
                Some("write a duration like \"30m\", \"1h\" or \"1h 30m\"".into()),
            )
        }),
        Ty::Enum(values) if !values.contains(&text) => Err((
            format!("expected {}, found `{text}`", ty.describe()),
            suggest(text, values.iter().copied()),
        )),
        Ty::File => {
            let stacks_dir = file.parent().unwrap_or(Path::new("."));
            if stacks_dir.join(text).is_file() {
                Ok(())
            } else {
                Err((
                    format!(
                        "file `{text}` not found (looked in {})",
                        stacks_dir.display()
                    ),
                    Some(
                        "paths are relative to the stacks/ directory, e.g. \"files/provision.sh\""
                            .into(),
                    ),
                ))
            }
        }
        _ => Ok(()),
    }
}

fn check_cidr(
    text: &str,
    prefixes: std::ops::RangeInclusive<u8>,
) -> Result<(), (String, Option<String>)> {
    match text.parse::<ipnet::Ipv4Net>() {
        Ok(net) if net.trunc() != net => Err((
            format!("`{text}` has host bits set"),
            Some(format!("did you mean \"{}\"?", net.trunc())),
        )),
        Ok(net) if !prefixes.contains(&net.prefix_len()) => Err((
            format!(
                "`{text}`: AWS accepts VPC and subnet blocks from /{} to /{}",
                prefixes.start(),
                prefixes.end()
            ),
            None,
        )),
        Ok(_) => Ok(()),
        Err(_) => Err((
            format!("`{text}` is not a valid IPv4 CIDR block"),
            Some("write an address and prefix length, e.g. \"10.40.0.0/16\"".into()),
        )),
    }
}

/// `{ value = X, sensitive = true|false }` → (X, sensitive); any other value
/// is itself, not sensitive.
fn sensitive_var(expr: Expr) -> (Expr, bool) {
    if let ExprKind::Table(entries) = &expr.kind {
        let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        let flag = expr.get("sensitive").and_then(|e| match e.kind {
            ExprKind::Bool(b) => Some(b),
            _ => None,
        });
        if let (true, Some(flag), Some(value)) = (
            keys.len() == 2 && keys.contains(&"value"),
            flag,
            expr.get("value"),
        ) {
            return (value.clone(), flag);
        }
    }
    (expr, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_names() {
        for ok in [
            "us-west-2",
            "eu-central-1",
            "us-gov-west-1",
            "ap-southeast-4",
        ] {
            assert!(is_region_name(ok), "{ok}");
        }
        for bad in ["us-west", "uswest2", "US-WEST-2", "us-west-", "west-2"] {
            assert!(!is_region_name(bad), "{bad}");
        }
    }

    #[test]
    fn cidr_checks() {
        let block = 16..=28;
        assert!(check_cidr("10.40.0.0/16", block.clone()).is_ok());
        assert!(check_cidr("0.0.0.0/0", 0..=32).is_ok());
        let (_, hint) = check_cidr("10.40.0.1/16", block.clone()).unwrap_err();
        assert!(hint.unwrap().contains("10.40.0.0/16"));
        assert!(check_cidr("10.40.0.0/33", block.clone()).is_err());
        assert!(check_cidr("10.0.0.0/8", block.clone())
            .unwrap_err()
            .0
            .contains("/16 to /28"));
        assert!(check_cidr("banana", block).is_err());
    }
}
