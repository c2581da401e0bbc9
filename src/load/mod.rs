//! From the user's files to a validated [`crate::model::Project`]: each
//! file decoded strictly (file, line, key and what was expected for every
//! problem), then the whole checked against the kinds' schemas and rules
//! and the dependency graph.
//!
//! Pure: this layer reads the files it is given and nothing else (no cloud,
//! no clock), so `drctl validate` can never touch AWS.

pub mod decode;
pub mod validate;

pub use validate::load_project;

/// The nearest directory at or above `start` holding `runbooks/` or
/// `stacks/`: the project root, found as git and cargo find theirs.
pub fn find_root(start: &std::path::Path) -> Option<std::path::PathBuf> {
    start
        .ancestors()
        .find(|dir| dir.join("runbooks").is_dir() || dir.join("stacks").is_dir())
        .map(std::path::Path::to_path_buf)
}
