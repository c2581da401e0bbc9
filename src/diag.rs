//! Validation diagnostics: every problem in the user's files, with file, line,
//! column, key path, what was expected and, where it helps, a hint.
//!
//! Validation never stops at the first problem: loaders push into a
//! [`Diagnostics`] and the caller decides once, at the end, whether the input is
//! usable. This module is pure (no I/O beyond what `SourceFile` was given).

use std::fmt;
use std::path::{Path, PathBuf};

/// A 1-based line and column in a source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

/// The text of one input file, with an index to turn byte offsets into [`Pos`].
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        let text = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        SourceFile {
            path: path.into(),
            text,
            line_starts,
        }
    }

    /// The position of a byte offset (clamped to the text).
    pub fn pos(&self, offset: usize) -> Pos {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let start = self.line_starts[line];
        let column = self.text[start..offset].chars().count();
        Pos {
            line: line as u32 + 1,
            column: column as u32 + 1,
        }
    }
}

/// One problem in the user's input.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub pos: Pos,
    /// Dotted key path, e.g. `resources.vpc.main.cidr_block`; empty for the whole file.
    pub key: String,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: ",
            self.file.display(),
            self.pos.line,
            self.pos.column
        )?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found so far, in file order when displayed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn error(
        &mut self,
        file: &Path,
        pos: Pos,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        self.items.push(Diagnostic {
            file: file.to_path_buf(),
            pos,
            key: key.into(),
            message: message.into(),
            hint: None,
        });
        self.items.last_mut().expect("just pushed")
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.items.extend(other.items);
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The problems sorted by file and position, duplicates removed.
    pub fn sorted(&self) -> Vec<&Diagnostic> {
        let mut items: Vec<&Diagnostic> = self.items.iter().collect();
        items.sort();
        items.dedup();
        items
    }

    /// `Ok(value)` when nothing was reported.
    pub fn into_result<T>(self, value: T) -> Result<T, Diagnostics> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl Diagnostic {
    pub fn with_hint(&mut self, hint: impl Into<String>) -> &mut Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_hint_opt(&mut self, hint: Option<String>) -> &mut Self {
        self.hint = hint;
        self
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sorted = self.sorted();
        for diagnostic in &sorted {
            writeln!(f, "error: {diagnostic}")?;
        }
        let n = sorted.len();
        write!(f, "{n} problem{} found", if n == 1 { "" } else { "s" })
    }
}

impl std::error::Error for Diagnostics {}

/// "did you mean `x`?" for a misspelt name, or the list of known names.
pub fn suggest<'a>(wanted: &str, known: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let known: Vec<&str> = known.into_iter().collect();
    let best = known
        .iter()
        .map(|k| (strsim::jaro_winkler(wanted, k), *k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, name)) => Some(format!("did you mean `{name}`?")),
        None if known.is_empty() => None,
        None => Some(format!("known: {}", known.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_chars() {
        let src = SourceFile::new("x.toml", "a = 1\nbé = \"x\"\n");
        assert_eq!(src.pos(0), Pos { line: 1, column: 1 });
        assert_eq!(src.pos(6), Pos { line: 2, column: 1 });
        // 'é' is two bytes but one column
        assert_eq!(src.pos(9), Pos { line: 2, column: 3 });
    }

    #[test]
    fn suggestions_prefer_close_names() {
        assert_eq!(
            suggest("cidr_blok", ["cidr_block", "tags"]).as_deref(),
            Some("did you mean `cidr_block`?")
        );
        assert_eq!(suggest("zzz", ["a", "b"]).as_deref(), Some("known: a, b"));
        assert_eq!(suggest("zzz", []), None);
    }
}
