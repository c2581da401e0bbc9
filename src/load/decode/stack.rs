//! Decoding a stack file: its variables, resources and outputs.

use toml::Spanned;

use crate::diag::{suggest, Diagnostics, Pos, SourceFile};
use crate::kinds::schema::{ResourceKind, Ty};
use crate::kinds::KindDef;
use crate::model::expr::ExprKind;
use crate::model::{Output, Resource, Stack};

use super::{file_stem, join, Decoder, Value};

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

impl<'a> Decoder<'a> {
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
}
