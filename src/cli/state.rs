//! Which run store a command uses: `--state` (or `DRCTL_STATE`), else the
//! repository's `drctl.toml`, else the state directory (`--state-dir`,
//! `.drctl` by default). A team puts its bucket in `drctl.toml`, so every
//! teammate and every scheduled job finds the same store:
//!
//! ```toml
//! [state]
//! url = "s3://team-dr/drctl"   # or a directory
//! region = "eu-west-1"          # the bucket's (default: the AWS config's)
//! kms_key = "alias/drctl"       # SSE-KMS (default: SSE-S3)
//! lease = "60s"                 # how long a silent lock holder keeps a lock
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::GlobalArgs;
use crate::diag::{Diagnostics, Pos, SourceFile};
use crate::error::exit;
use crate::error::Error;
use crate::journal::StoreFallback;
use crate::store::{RunStore, S3Store, StoreError, StoreLocation};

/// The repository's settings file, beside `stacks/` and `runbooks/`.
pub const SETTINGS_FILE: &str = "drctl.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    state: Option<StateSection>,
    /// Webhooks for every run of the repository: read (and checked, with
    /// file, line and key) by `crate::notify`.
    #[serde(default)]
    #[allow(dead_code)]
    notify: Option<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateSection {
    url: String,
    region: Option<String>,
    kms_key: Option<String>,
    lease: Option<String>,
}

impl GlobalArgs {
    /// Where the records go (see the module's doc).
    pub fn store_location(&self) -> Result<StoreLocation, Error> {
        if let Some(url) = &self.state {
            return StoreLocation::parse(url).map_err(|e| {
                Error::usage(
                    format!("--state (or DRCTL_STATE) {e}"),
                    Some("e.g. --state s3://my-bucket/drctl, or a directory".into()),
                )
            });
        }
        if let Some(Some(location)) = self
            .settings_file()
            .map(|f| read_settings(&f))
            .transpose()?
        {
            return Ok(location);
        }
        Ok(StoreLocation::Local(self.state_dir.clone()))
    }

    /// The run store, opened once per command.
    pub fn store(&self) -> Result<Arc<dyn RunStore>, Error> {
        if let Some(store) = self.opened.get() {
            return Ok(store.clone());
        }
        let store = self.open_store(self.store_location()?)?;
        Ok(self.opened.get_or_init(|| store).clone())
    }

    fn open_store(&self, location: StoreLocation) -> Result<Arc<dyn RunStore>, StoreError> {
        Ok(match location {
            StoreLocation::Local(dir) => crate::store::local(&dir),
            StoreLocation::Bucket(place) => {
                // The same endpoint and credentials as every other client,
                // but quick to give up: when the store's region is down, a
                // command says so in seconds rather than retrying for
                // minutes as a control-plane call does.
                let settings = crate::cloud::AwsSettings {
                    region: place.region.clone(),
                    endpoint_url: self.endpoint_url.clone(),
                    profile: self.profile.clone(),
                    max_attempts: 4,
                    initial_backoff: Duration::from_millis(200),
                    max_backoff: Duration::from_secs(2),
                    connect_timeout: Duration::from_secs(2),
                    attempt_timeout: Duration::from_secs(5),
                    operation_timeout: Duration::from_secs(15),
                    ..crate::cloud::AwsSettings::default()
                };
                Arc::new(S3Store::open(place, async move { settings.load().await })?)
            }
        })
    }

    /// The options a rebuild runs with: these, with the store opened, when
    /// it opens; with `fallback` (`--state-fallback DIR`) as the store,
    /// recorded as such, when the configured store is a bucket out of
    /// reach. What exists is read from the tags either way: only the run's
    /// history waits for `drctl state push DIR`.
    pub(crate) fn or_fallback(
        &self,
        fallback: Option<&Path>,
        reason: &str,
    ) -> Result<GlobalArgs, Error> {
        let Some(dir) = fallback else {
            return Ok(self.clone());
        };
        let dir = local_dir("--state-fallback", dir)?;
        let location = self.store_location()?;
        let StoreLocation::Bucket(place) = &location else {
            return Ok(self.clone()); // a directory: nothing to fall back from
        };
        if self.opened.get().is_some() {
            return Ok(self.clone());
        }
        match self.open_store(location.clone()) {
            Ok(store) => {
                let _ = self.opened.set(store);
                Ok(self.clone())
            }
            Err(error @ StoreError::Remote { .. }) => {
                eprintln!("warning: the run store is out of reach: {error}");
                eprintln!(
                    "The rebuild keeps its records on the local store {} instead (--state-fallback), recorded as such; what exists is still read from the tags.",
                    dir.display()
                );
                eprintln!(
                    "Once the store is back, merge them into it with: drctl state push {}",
                    dir.display()
                );
                let mut fell_back = self.clone();
                fell_back.state = Some(dir.display().to_string());
                fell_back.opened = Default::default();
                fell_back.fallback = Some(StoreFallback {
                    instead_of: place.to_string(),
                    error: error.to_string(),
                    reason: reason.to_string(),
                });
                Ok(fell_back)
            }
            Err(other) => Err(other.into()),
        }
    }

    /// `drctl.toml` at the repository root, if there is one.
    fn settings_file(&self) -> Option<PathBuf> {
        let root = self.root.clone().or_else(|| {
            std::env::current_dir()
                .ok()
                .and_then(|cwd| crate::app::find_root(&cwd))
        })?;
        Some(root.join(SETTINGS_FILE)).filter(|f| f.is_file())
    }
}

/// `dir` (given as `option`) as an absolute path, refused unless it is a
/// directory's path rather than a bucket's URL.
fn local_dir(option: &str, dir: &Path) -> Result<PathBuf, Error> {
    match StoreLocation::parse(&dir.to_string_lossy()) {
        Ok(StoreLocation::Local(_)) => Ok(crate::store::absolute(dir)),
        _ => Err(Error::usage(
            format!("{option} `{}`: expected a local directory", dir.display()),
            Some("the local store's directory, e.g. /var/tmp/drctl-fallback".into()),
        )),
    }
}

/// `drctl state push DIR`: the runs and drill reports of the local store
/// DIR merged into the run store (see [`crate::app::push`]).
pub fn push_command(global: &GlobalArgs, dir: &Path) -> Result<u8, Error> {
    let dir = local_dir("DIR", dir)?;
    if !dir.is_dir() {
        return Err(Error::usage(
            format!("{}: no such directory", dir.display()),
            Some("name the directory a rebuild ran with --state-fallback".into()),
        ));
    }
    let target = global.store()?;
    if crate::store::absolute(&target.root()) == dir {
        return Err(Error::usage(
            format!("{} is the run store itself: nothing to push", dir.display()),
            Some("name the store to push to with --state URL or drctl.toml's [state] url".into()),
        ));
    }
    let source = crate::store::local(&dir);
    let now = crate::clock::Clock::now(&crate::cli::commands::CLOCK);
    let pushed = crate::app::push::push(source.as_ref(), target.as_ref(), now)?;
    print!("{}", render_push(&pushed, &dir));
    Ok(if pushed.conflicts().is_empty() {
        exit::OK
    } else {
        exit::FAILURE
    })
}

/// What a push did: a line per run or report it wrote, found there
/// already or could not write, then the sum. Runs an earlier push wrote,
/// and reports found there already, go unsaid.
fn render_push(pushed: &crate::app::push::Pushed, dir: &Path) -> String {
    use crate::app::push::{ReportPushed, RunPushed};
    use std::fmt::Write as _;
    let (mut out, to, from) = (String::new(), &pushed.to, dir.display());
    let (mut runs, mut reports) = (0, 0);
    for (id, done) in &pushed.runs {
        let _ = match done {
            RunPushed::Copied { records } => {
                runs += 1;
                writeln!(out, "pushed run {id} ({records} records)")
            }
            RunPushed::Continued { had, added } => {
                runs += 1;
                writeln!(
                    out,
                    "pushed run {id}: {added} more records after the {had} pushed before"
                )
            }
            RunPushed::Conflict { ours, theirs } => writeln!(
                out,
                "CONFLICT: run {id} is in {to} with other records ({theirs} there, {ours} here); neither was changed"
            ),
            RunPushed::AlreadyThere => writeln!(out, "skipped run {id}: {to} holds it already"),
            RunPushed::PushedBefore => Ok(()),
        };
    }
    for (key, done) in &pushed.reports {
        let _ = match done {
            ReportPushed::Copied => {
                reports += 1;
                writeln!(out, "pushed report {key}")
            }
            ReportPushed::Conflict => writeln!(
                out,
                "CONFLICT: {key} is in {to} with other contents; neither was changed"
            ),
            ReportPushed::AlreadyThere => Ok(()),
        };
    }
    let counted = |n: usize, what: &str| match n {
        1 => format!("1 {what}"),
        n => format!("{n} {what}s"),
    };
    let conflicts = pushed.conflicts().len();
    let _ = match (runs + reports, conflicts) {
        (0, 0) => writeln!(
            out,
            "Nothing to push from {from}: {to} holds all of it already."
        ),
        (_, 0) => writeln!(
            out,
            "Pushed {} and {} from {from} to {to}.",
            counted(runs, "run"),
            counted(reports, "report")
        ),
        _ => writeln!(
            out,
            "Pushed {} and {} from {from} to {to}; {} left as {} (compare with: drctl --state {from} runs show RUN_ID).",
            counted(runs, "run"),
            counted(reports, "report"),
            counted(conflicts, "conflict"),
            if conflicts == 1 { "it is" } else { "they are" }
        ),
    };
    out
}

/// The store `file` names in its `[state]`, if it has one.
fn read_settings(file: &Path) -> Result<Option<StoreLocation>, Error> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::Io {
        action: "read",
        path: file.to_path_buf(),
        source: e,
    })?;
    let source = SourceFile::new(file, text);
    let invalid = |pos: Pos, key: &str, message: String| {
        let mut diags = Diagnostics::new();
        diags.error(file, pos, key, message);
        Error::Invalid(diags)
    };
    let settings: Settings = toml::from_str(&source.text).map_err(|e| {
        let pos = e.span().map(|s| source.pos(s.start)).unwrap_or_default();
        invalid(pos, "", e.message().to_string())
    })?;
    crate::notify::read_notify(file)?;
    let Some(state) = settings.state else {
        return Ok(None);
    };
    let at = |key: &str| {
        source
            .text
            .find(&format!("{key} ="))
            .map(|i| source.pos(i))
            .unwrap_or_default()
    };
    let location =
        StoreLocation::parse(&state.url).map_err(|e| invalid(at("url"), "state.url", e))?;
    let lease = match &state.lease {
        None => None,
        Some(text) => Some(parse_lease(text).map_err(|e| invalid(at("lease"), "state.lease", e))?),
    };
    Ok(Some(match location {
        StoreLocation::Local(dir) => StoreLocation::Local(match dir.is_absolute() {
            true => dir,
            false => file.parent().unwrap_or(Path::new(".")).join(dir),
        }),
        StoreLocation::Bucket(mut place) => {
            place.region = state.region;
            place.kms_key = state.kms_key;
            place.lease = lease.unwrap_or(place.lease);
            StoreLocation::Bucket(place)
        }
    }))
}

/// A lease of 3 s or more: it is renewed every third of itself.
fn parse_lease(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d >= Duration::from_secs(3) => Ok(d),
        Ok(_) => Err(format!("`{text}`: expected a lease of at least 3s")),
        Err(e) => Err(format!("`{text}`: expected a duration like \"60s\" ({e})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Option<StoreLocation>, String> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(SETTINGS_FILE);
        std::fs::write(&file, text).unwrap();
        read_settings(&file).map_err(|e| e.render())
    }

    #[test]
    fn the_repository_names_its_bucket_and_bad_settings_say_where() {
        let found = read(
            "[state]\nurl = \"s3://team-dr/drctl\"\nregion = \"eu-west-1\"\nlease = \"90s\"\n",
        )
        .unwrap();
        let Some(StoreLocation::Bucket(place)) = found else {
            panic!("a bucket: {found:?}")
        };
        assert_eq!(place.region.as_deref(), Some("eu-west-1"));
        assert_eq!(place.lease, Duration::from_secs(90));
        assert_eq!(read("# nothing yet\n").unwrap(), None);

        let typo = read("[state]\nurl = \"s3://team-dr\"\nregoin = \"x\"\n").unwrap_err();
        assert!(
            typo.contains("drctl.toml:3") && typo.contains("regoin"),
            "{typo}"
        );
        let scheme = read("[state]\nurl = \"gs://team-dr/x\"\n").unwrap_err();
        assert!(
            scheme.contains("drctl.toml:2") && scheme.contains("state.url"),
            "{scheme}"
        );
        let lease = read("[state]\nurl = \"s3://team-dr\"\nlease = \"1s\"\n").unwrap_err();
        assert!(lease.contains("at least 3s"), "{lease}");
        let notify = read("[notify]\nwebhooks = [\"https://hooks.example/x\"]\n").unwrap();
        assert_eq!(notify, None);
        let notify = read("[notify]\nwebhooks = [\"hooks.example/x\"]\n").unwrap_err();
        assert!(
            notify.contains("drctl.toml:2") && notify.contains("notify.webhooks[0]"),
            "{notify}"
        );
    }
}
