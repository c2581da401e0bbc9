//! TOML text → [`Stack`] / [`Runbook`], reporting every problem with its
//! position instead of stopping at the first (serde would stop at one).
//!
//! The span-keeping tree from `toml::de::DeTable` is walked by hand: each table
//! lists the keys it allows (unknown keys are errors, with a "did you mean"),
//! and each resource attribute is checked against [`schema`](super::schema).
//! References are parsed here; whether they resolve is [`validate`](super::validate)'s job.

use std::ops::{Range, RangeInclusive};
use std::path::Path;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::diag::{suggest, Diagnostic, Diagnostics, Pos, SourceFile};
use crate::kinds::schema::Ty;
use crate::model::Named;

mod drill;
mod forecast;
mod notify;
mod runbook;
mod stack;
mod value;

pub use drill::is_http_start;
pub use notify::parse_notify;
pub use runbook::parse_runbook;
pub use stack::parse_stack;
pub use value::check_literal_str;

pub(super) type Value<'i> = Spanned<DeValue<'i>>;

pub(crate) fn file_stem(path: &Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string()
}

pub(super) fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

pub(super) struct Decoder<'a> {
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

    fn wrong_type(&mut self, value: &Value<'_>, path: &str, expected: &str) -> &mut Diagnostic {
        let found = value.get_ref().type_str();
        self.at(
            value.span(),
            path,
            format!("expected {expected}, found {found}"),
        )
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
        self.opt_int_in(table, key, prefix, min..=i64::MAX)
    }

    /// An integer within `range`; out of range or not an integer is reported.
    fn opt_int_in(
        &mut self,
        table: &DeTable<'_>,
        key: &str,
        prefix: &str,
        range: RangeInclusive<i64>,
    ) -> Option<i64> {
        let value = table.get(key)?;
        let path = join(prefix, key);
        let expected = Ty::Int {
            min: *range.start(),
            max: *range.end(),
        }
        .describe();
        match value.get_ref() {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) if range.contains(&n) => Some(n),
                _ => {
                    self.at(
                        value.span(),
                        &path,
                        format!("expected {expected}, found {i}"),
                    );
                    None
                }
            },
            _ => {
                self.wrong_type(value, &path, &expected);
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
}
