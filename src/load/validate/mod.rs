//! Loading a repository's stacks and runbooks, and the semantic checks that
//! need more than one value at a time: references resolve, types agree,
//! no cycles, every stack lands in exactly one phase after its dependencies.

use std::path::{Path, PathBuf};

use super::decode::{parse_runbook, parse_stack};
use crate::kinds::KindDef;
use std::collections::BTreeMap;

use crate::diag::{Diagnostics, Pos, SourceFile};
use crate::kinds::schema::Ty;
use crate::model::{FileDigest, Project, Runbook};

mod checks;
mod cycles;
mod runbook;
mod stack;

use cycles::check_stack_cycles;
use runbook::{check_environment_claims, check_runbook};
use stack::StackChecker;

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
    project.files = file_digests(&project);
    validate_project(&project, &mut diags);
    (project, diags)
}

/// Reads every file a stack names by a literal path (a missing one is
/// reported by validation): planning hashes scripts without reading files.
fn file_digests(project: &Project) -> BTreeMap<PathBuf, FileDigest> {
    let mut files = BTreeMap::new();
    for stack in project.stacks.values() {
        for resource in &stack.resources {
            for field in resource.kind.fields() {
                if !matches!(field.ty, Ty::File) {
                    continue;
                }
                let Some(text) = resource.attr(field.name).and_then(|e| e.as_literal_str()) else {
                    continue;
                };
                let path = project.stack_file(stack, text);
                if let Ok(bytes) = std::fs::read(&path) {
                    let sha256 = crate::digest::sha256_hex(&bytes);
                    let digest = FileDigest {
                        sha256,
                        bytes: bytes.len() as u64,
                    };
                    files.insert(path, digest);
                }
            }
        }
    }
    files
}

/// `root/rel`, without a leading `./` when the root is the current directory,
/// so messages show the paths users type.
pub(super) fn under(root: &Path, rel: &str) -> PathBuf {
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
