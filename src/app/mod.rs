//! The application layer: plan, apply, resume, approve, reject and destroy
//! as library functions that take plain requests and report through an
//! event [`Sink`]. The CLI parses arguments into these requests and picks
//! sinks; drills, rebuilds and schedules call the same functions.

mod decisions;
mod destroy;
mod planning;
mod post_cutover;
pub mod push;
pub(crate) mod resume;
pub(crate) mod runs;
mod saved;
mod session;
pub(crate) mod traffic;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::clock::Clock;
use crate::cloud::aws::AwsProvider;
use crate::error::Error;
use crate::events::Sink;
use crate::load::validate::load_project;
use crate::model::{Project, Runbook};
use crate::store::RunStore;

pub use crate::outcome::RolledBack;
pub use decisions::{
    approve, reject, reject_if_overdue, ApproveRequest, Approved, RejectRequest, Rejected,
};
pub use destroy::{destroy, no_terminal, DestroyRequest, DestroyResult};
pub use planning::{forecast, outputs, plan, OutputRequest, PlanRequest, Planned};
pub(crate) use planning::{make_plan, observe_and_plan, plan_observed};
pub use post_cutover::AfterCutover;
pub(crate) use post_cutover::{roll_back_if_failed, run_checks, Checked, Checking};
pub use resume::resume;
pub use runs::{apply, ApplyRequest, ApplyResult, RunResult};
pub use saved::SavedPlan;
pub(crate) use session::Session;
pub use traffic::{retire, rollback, TrafficRequest, TrafficResult};

/// `path` made absolute (as given if that fails): what journals and saved
/// plans record, so a run continues from any directory.
pub(crate) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Where AWS is for a region: the CLI resolves `--sandbox`,
/// `--endpoint-url`, `--profile`; tests point at their moto server.
#[allow(async_fn_in_trait)] // used through generics, never as dyn
pub trait Connect {
    async fn connect(&self, region: &str) -> Result<AwsProvider, Error>;

    /// What a run records of where it runs (see [`crate::journal::RunTarget`]).
    fn target(&self, region: &str, state_dir: &Path) -> crate::journal::RunTarget;
}

/// What every application function needs besides its request.
pub struct Context<'a> {
    /// Runs, journals, locks, reports (in `.drctl` by default).
    pub store: Arc<dyn RunStore>,
    pub clock: &'a dyn Clock,
    pub sink: &'a dyn Sink,
}

pub use crate::load::find_root;

/// The repository root: `root` if given, else the directory above a runbook
/// path's `runbooks/`, else the project root above the current directory,
/// else the current directory.
pub fn project_root(root: Option<&Path>, runbook: &str) -> PathBuf {
    if let Some(root) = root {
        return root.to_path_buf();
    }
    let path = Path::new(runbook);
    if path.is_file() {
        if let Some(dir) = path
            .canonicalize()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
        {
            if let Some(parent) = dir.parent() {
                if parent.join("stacks").is_dir() {
                    return parent.to_path_buf();
                }
            }
        }
    }
    std::env::current_dir()
        .ok()
        .and_then(|cwd| find_root(&cwd))
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A runbook argument is a path, or a name looked up as `runbooks/<name>.toml`
/// (`<name>.toml` is the name too, not `<name>.toml.toml`).
pub fn runbook_path(root: &Path, runbook: &str) -> Result<PathBuf, Error> {
    let as_path = PathBuf::from(runbook);
    if as_path.is_file() {
        return Ok(as_path);
    }
    let name = match runbook.strip_suffix(".toml") {
        Some(_) => as_path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(runbook),
        None => runbook,
    };
    let by_name = root.join("runbooks").join(format!("{name}.toml"));
    if by_name.is_file() {
        return Ok(by_name);
    }
    let known: Vec<String> = std::fs::read_dir(root.join("runbooks"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let p = e.path();
                    (p.extension()? == "toml")
                        .then(|| p.file_stem()?.to_str().map(str::to_string))?
                })
                .collect()
        })
        .unwrap_or_default();
    let looked_for = if as_path == by_name {
        by_name.display().to_string()
    } else {
        format!("{} and {}", as_path.display(), by_name.display())
    };
    Err(Error::usage(
        format!("no runbook `{runbook}` (looked for {looked_for})"),
        crate::diag::suggest(name, known.iter().map(String::as_str)),
    ))
}

/// A validated project around one runbook.
pub struct Loaded {
    pub project: Project,
    /// The runbook's name (`project.runbook(name)` is it).
    pub name: String,
    /// The environment its file names, once [`Loaded::retarget`] pointed it
    /// at another.
    pub file_environment: Option<String>,
}

impl Loaded {
    pub fn runbook(&self) -> &Runbook {
        self.project
            .runbook(&self.name)
            .expect("a loaded project holds its runbook")
    }

    /// Points the runbook at the region the cloud is reached in (`--region`
    /// wins over the file): the region its runs are journaled and locked under.
    pub fn reached_through<C: Connect>(&mut self, connect: &C, state_dir: &Path) {
        let region = connect.target(&self.runbook().region, state_dir).region;
        let environment = self.runbook().environment.clone();
        self.retarget(&environment, &region);
    }

    /// Points the runbook at another environment and region: a drill's
    /// isolated copy, or a run continuing where it started.
    pub fn retarget(&mut self, environment: &str, region: &str) {
        let name = self.name.clone();
        let runbook = self
            .project
            .runbooks
            .iter_mut()
            .find(|r| r.name == name)
            .expect("a loaded project holds its runbook");
        if runbook.environment != environment {
            self.file_environment
                .get_or_insert_with(|| runbook.environment.clone());
        }
        runbook.environment = environment.to_string();
        runbook.region = region.to_string();
    }

    /// Plans bake images even where one of the same recipe exists (a drill
    /// with `[drill] rebake` or `--rebake`).
    pub fn set_rebake(&mut self, rebake: bool) {
        let name = self.name.clone();
        if let Some(runbook) = self.project.runbooks.iter_mut().find(|r| r.name == name) {
            runbook.rebake_images = rebake;
        }
    }

    /// Tags everything the run creates with a drill's id and deadline.
    pub fn set_lifetime(&mut self, lifetime: Option<crate::types::tags::Lifetime>) {
        let name = self.name.clone();
        if let Some(runbook) = self.project.runbooks.iter_mut().find(|r| r.name == name) {
            runbook.lifetime = lifetime;
        }
    }

    /// The environment the runbook is pointed at, when it is not the one
    /// its file names (a drill's).
    pub fn other_environment(&self) -> Option<&str> {
        let current = &self.runbook().environment;
        self.file_environment
            .as_ref()
            .filter(|named| *named != current)
            .map(|_| current.as_str())
    }
}

/// The runbook (of the project's, read or only known) claiming `environment`.
pub fn claimed_by(project: &Project, environment: &str) -> Option<String> {
    project
        .runbooks
        .iter()
        .chain(&project.other_runbooks)
        .find(|r| r.environment == environment)
        .map(|r| r.name.clone())
}

/// Loads and validates the project around one runbook (a path or a name).
pub fn load(root: Option<&Path>, runbook: &str) -> Result<Loaded, Error> {
    let root = project_root(root, runbook);
    let path = runbook_path(&root, runbook)?;
    load_file(&root, &path)
}

/// Loads and validates the project at `root` with the runbook at `path`.
pub fn load_file(root: &Path, path: &Path) -> Result<Loaded, Error> {
    let (project, diags) = load_project(root, std::slice::from_ref(&path.to_path_buf()));
    if !diags.is_empty() {
        return Err(Error::Invalid(diags));
    }
    let name = project
        .runbooks
        .first()
        .map(|r| r.name.clone())
        .ok_or_else(|| Error::usage(format!("cannot read runbook {}", path.display()), None))?;
    Ok(Loaded {
        project,
        name,
        file_environment: None,
    })
}

/// SHA-256 of every stack file and of the runbook file, keyed by the path
/// relative to the project root (never the path as typed, so a plan saved
/// in one directory applies from another).
pub fn sources(project: &Project, runbook: &Runbook) -> Result<BTreeMap<String, String>, Error> {
    let root = std::path::absolute(&project.root).unwrap_or_else(|_| project.root.clone());
    let files = project
        .stacks
        .values()
        .map(|s| &s.file)
        .chain(std::iter::once(&runbook.file));
    let mut out = BTreeMap::new();
    for file in files {
        let bytes = std::fs::read(file).map_err(|source| Error::Io {
            action: "read",
            path: file.clone(),
            source,
        })?;
        let absolute = std::path::absolute(file).unwrap_or_else(|_| file.clone());
        let key = absolute
            .strip_prefix(&root)
            .unwrap_or(&absolute)
            .to_string_lossy()
            .into_owned();
        out.insert(key, crate::digest::sha256_hex(&bytes));
    }
    Ok(out)
}

/// One hash of all the sources.
pub fn source_hash(sources: &BTreeMap<String, String>) -> String {
    crate::digest::hash_json(sources)
}

/// The files that differ between two source maps (edited, added, removed).
pub fn changed_files(
    before: &BTreeMap<String, String>,
    now: &BTreeMap<String, String>,
) -> Vec<String> {
    before
        .keys()
        .chain(now.keys())
        .filter(|k| before.get(*k) != now.get(*k))
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// `20261121T221503-4f2a`: sortable, unique enough for one environment's runs.
pub fn new_run_id(clock: &dyn Clock) -> String {
    use std::hash::{BuildHasher, Hasher};
    let now =
        jiff::Timestamp::from_millisecond(clock.now()).unwrap_or_else(|_| jiff::Timestamp::now());
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_i64(clock.now());
    hasher.write_u32(std::process::id());
    format!(
        "{}-{:04x}",
        now.strftime("%Y%m%dT%H%M%S"),
        hasher.finish() & 0xffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_files_lists_edits_additions_and_removals() {
        let before = BTreeMap::from([
            ("stacks/a.toml".to_string(), "1".to_string()),
            ("stacks/b.toml".to_string(), "2".to_string()),
        ]);
        let now = BTreeMap::from([
            ("stacks/a.toml".to_string(), "1".to_string()),
            ("stacks/b.toml".to_string(), "3".to_string()),
            ("stacks/c.toml".to_string(), "4".to_string()),
        ]);
        assert_eq!(
            changed_files(&before, &now),
            ["stacks/b.toml", "stacks/c.toml"]
        );
        assert!(changed_files(&now, &now).is_empty());
    }
}
