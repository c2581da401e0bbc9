//! Values in stack files, with `${…}` references parsed into typed [`Reference`]s
//! at load time, so later layers never re-scan strings.

use std::fmt;

use crate::diag::Pos;
use crate::types::ResourceKind;

/// A value as written in a stack or runbook, before references are resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Str(Template),
    Int(i64),
    Bool(bool),
    List(Vec<Expr>),
    /// An inline or header table, in file order.
    Table(Vec<(String, Expr)>),
}

impl Expr {
    /// The entry `key` of a table value.
    pub fn get(&self, key: &str) -> Option<&Expr> {
        match &self.kind {
            ExprKind::Table(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string when this is a plain string with no reference.
    pub fn as_literal_str(&self) -> Option<&str> {
        match &self.kind {
            ExprKind::Str(t) => t.as_literal(),
            _ => None,
        }
    }

    /// The reference when the whole value is one `${…}`.
    pub fn as_whole_ref(&self) -> Option<&Reference> {
        match &self.kind {
            ExprKind::Str(t) => t.as_whole_ref(),
            _ => None,
        }
    }

    /// Every reference inside this value, depth first, in file order.
    pub fn references(&self) -> Vec<&Reference> {
        let mut out = Vec::new();
        self.collect_refs(&mut out);
        out
    }

    fn collect_refs<'a>(&'a self, out: &mut Vec<&'a Reference>) {
        match &self.kind {
            ExprKind::Str(t) => out.extend(t.references()),
            ExprKind::Int(_) | ExprKind::Bool(_) => {}
            ExprKind::List(items) => items.iter().for_each(|i| i.collect_refs(out)),
            ExprKind::Table(entries) => entries.iter().for_each(|(_, v)| v.collect_refs(out)),
        }
    }

    /// A short name for the value's type, for messages.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            ExprKind::Str(_) => "a string",
            ExprKind::Int(_) => "an integer",
            ExprKind::Bool(_) => "a boolean",
            ExprKind::List(_) => "a list",
            ExprKind::Table(_) => "a table",
        }
    }
}

/// A string made of literal text and references.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Template {
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Lit(String),
    Ref(Reference),
}

impl Template {
    pub fn literal(s: impl Into<String>) -> Self {
        Template {
            parts: vec![Part::Lit(s.into())],
        }
    }

    pub fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Lit(s)] => Some(s),
            _ => None,
        }
    }

    pub fn as_whole_ref(&self) -> Option<&Reference> {
        match self.parts.as_slice() {
            [Part::Ref(r)] => Some(r),
            _ => None,
        }
    }

    pub fn references(&self) -> impl Iterator<Item = &Reference> {
        self.parts.iter().filter_map(|p| match p {
            Part::Ref(r) => Some(r),
            Part::Lit(_) => None,
        })
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Lit(s) => write!(f, "{}", s.replace("${", "$${"))?,
                Part::Ref(r) => write!(f, "{r}")?,
            }
        }
        Ok(())
    }
}

/// A `${…}` reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    pub target: RefTarget,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RefTarget {
    /// `${<kind>.<name>.<attr>}`: a resource of the same stack.
    Resource {
        kind: ResourceKind,
        name: String,
        attr: String,
    },
    /// `${stack.<stack>.<output>}`: another stack's output; adds a dependency edge.
    StackOutput { stack: String, output: String },
    /// `${var.<name>}`
    Var(String),
    /// `${env.name}` or `${env.region}`
    Env(EnvField),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EnvField {
    Name,
    Region,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${{{}}}", self.target)
    }
}

impl fmt::Display for RefTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefTarget::Resource { kind, name, attr } => write!(f, "{kind}.{name}.{attr}"),
            RefTarget::StackOutput { stack, output } => write!(f, "stack.{stack}.{output}"),
            RefTarget::Var(name) => write!(f, "var.{name}"),
            RefTarget::Env(EnvField::Name) => write!(f, "env.name"),
            RefTarget::Env(EnvField::Region) => write!(f, "env.region"),
        }
    }
}

/// A problem in one string's `${…}` syntax: where in the string, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// Character offset inside the string's contents.
    pub offset: usize,
    pub message: String,
    pub hint: Option<String>,
}

/// Parses the contents of a TOML string into literal text and references.
/// `$${` stands for a literal `${`. `start` is the position of the string's
/// first content character, used to place each reference.
pub fn parse_template(text: &str, start: Pos) -> Result<Template, TemplateError> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    let mut offset = 0usize; // in chars, for positions
    while let Some(i) = rest.find('$') {
        let (before, after) = rest.split_at(i);
        literal.push_str(before);
        offset += before.chars().count();
        if let Some(after_escape) = after.strip_prefix("$${") {
            literal.push_str("${");
            rest = after_escape;
            offset += 3;
        } else if let Some(inner_start) = after.strip_prefix("${") {
            let Some(end) = inner_start.find('}') else {
                return Err(TemplateError {
                    offset,
                    message: "unterminated reference: `${` without a closing `}`".into(),
                    hint: Some("write `$${` for a literal `${`".into()),
                });
            };
            let inner = &inner_start[..end];
            let target = parse_ref_target(inner).map_err(|(message, hint)| TemplateError {
                offset,
                message,
                hint,
            })?;
            if !literal.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut literal)));
            }
            parts.push(Part::Ref(Reference {
                target,
                pos: Pos {
                    line: start.line,
                    column: start.column + offset as u32,
                },
            }));
            offset += 3 + inner.chars().count();
            rest = &inner_start[end + 1..];
        } else {
            literal.push('$');
            rest = &after[1..];
            offset += 1;
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(Part::Lit(literal));
    }
    Ok(Template { parts })
}

fn parse_ref_target(inner: &str) -> Result<RefTarget, (String, Option<String>)> {
    let segments: Vec<&str> = inner.split('.').map(str::trim).collect();
    let bad_shape = |expected: &str| {
        (
            format!("malformed reference `${{{inner}}}`: expected {expected}"),
            None,
        )
    };
    if segments.iter().any(|s| s.is_empty()) {
        return Err(bad_shape(
            "`${var.NAME}`, `${env.name}`, `${env.region}`, `${stack.STACK.OUTPUT}` or `${KIND.NAME.ATTR}`",
        ));
    }
    match segments[0] {
        "var" => match segments.as_slice() {
            [_, name] => Ok(RefTarget::Var(name.to_string())),
            _ => Err(bad_shape("`${var.NAME}`")),
        },
        "env" => match segments.as_slice() {
            [_, "name"] => Ok(RefTarget::Env(EnvField::Name)),
            [_, "region"] => Ok(RefTarget::Env(EnvField::Region)),
            _ => Err((
                format!("unknown reference `${{{inner}}}`"),
                Some("the environment offers `${env.name}` and `${env.region}`".into()),
            )),
        },
        "stack" => match segments.as_slice() {
            [_, stack, output] => Ok(RefTarget::StackOutput {
                stack: stack.to_string(),
                output: output.to_string(),
            }),
            _ => Err(bad_shape("`${stack.STACK.OUTPUT}`")),
        },
        root => {
            let Some(kind) = ResourceKind::from_name(root) else {
                let mut roots = vec!["var", "env", "stack"];
                roots.extend(ResourceKind::ALL.iter().map(|k| k.name()));
                return Err((
                    format!("unknown reference `${{{inner}}}`: `{root}` is not a resource kind"),
                    crate::diag::suggest(root, roots),
                ));
            };
            match segments.as_slice() {
                [_, name, attr] => Ok(RefTarget::Resource {
                    kind,
                    name: name.to_string(),
                    attr: attr.to_string(),
                }),
                _ => Err(bad_shape(&format!("`${{{root}.NAME.ATTR}}`"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: Pos = Pos {
        line: 3,
        column: 10,
    };

    #[test]
    fn literal_text_has_no_parts_but_itself() {
        let t = parse_template("10.0.0.0/16", AT).unwrap();
        assert_eq!(t.as_literal(), Some("10.0.0.0/16"));
    }

    #[test]
    fn whole_and_embedded_references() {
        let t = parse_template("${vpc.main.id}", AT).unwrap();
        assert_eq!(
            t.as_whole_ref().map(|r| &r.target),
            Some(&RefTarget::Resource {
                kind: ResourceKind::Vpc,
                name: "main".into(),
                attr: "id".into()
            })
        );
        let t = parse_template("${env.region}a", AT).unwrap();
        assert_eq!(t.parts.len(), 2);
        assert_eq!(t.to_string(), "${env.region}a");
        let t = parse_template("x-${var.n}-${stack.net.vpc_id}", AT).unwrap();
        let refs: Vec<_> = t.references().collect();
        assert_eq!(refs.len(), 2);
        assert_eq!(
            refs[0].pos,
            Pos {
                line: 3,
                column: 12
            }
        );
        assert_eq!(refs[1].target.to_string(), "stack.net.vpc_id");
    }

    #[test]
    fn escapes_and_lone_dollars_are_literal() {
        let t = parse_template("cost $5 and $${not.a.ref}", AT).unwrap();
        assert_eq!(t.as_literal(), Some("cost $5 and ${not.a.ref}"));
    }

    #[test]
    fn malformed_references_are_errors() {
        for (text, needle) in [
            ("${vpc.main", "unterminated"),
            ("${vpcc.main.id}", "did you mean `vpc`?"),
            ("${var.a.b}", "expected `${var.NAME}`"),
            ("${env.zone}", "env.region"),
            ("${stack.net}", "STACK.OUTPUT"),
            ("${}", "malformed"),
        ] {
            let err = parse_template(text, AT).unwrap_err();
            let full = format!("{} {}", err.message, err.hint.unwrap_or_default());
            assert!(full.contains(needle), "{text}: {full}");
        }
    }
}
