//! Decoding values: `[vars]`, any value with `${…}` parsed in its strings,
//! and the checks of values against schema types (CIDR blocks, durations, …).

use std::collections::BTreeMap;
use std::path::Path;

use toml::de::{DeTable, DeValue};

use crate::diag::{suggest, Pos};
use crate::kinds::schema::{Field, Ty};
use crate::model::expr::{parse_template, Expr, ExprKind};
use crate::model::Var;

use super::{join, Decoder, Value};

impl<'a> Decoder<'a> {
    /// `[vars]`: literal defaults or overrides; `{ value = …, sensitive = true }`
    /// declares a secret.
    pub(super) fn vars(&mut self, root: &DeTable<'a>) -> BTreeMap<String, Var> {
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
    pub(super) fn expr(&mut self, value: &Value<'_>, path: &str) -> Option<Expr> {
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

    /// Checks a value against a schema type as far as it is known before
    /// references are resolved; whole-value references are checked by `validate`.
    pub(super) fn check_ty(&mut self, expr: &Expr, ty: &Ty, path: &str) {
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
}

/// The coarse type of a value as written (`Str` for strings with references).
fn value_type(expr: &Expr) -> crate::kinds::schema::ValueType {
    use crate::kinds::schema::ValueType as V;
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
