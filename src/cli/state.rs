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
use crate::error::Error;
use crate::store::{RunStore, S3Store, StoreLocation};

/// The repository's settings file, beside `stacks/` and `runbooks/`.
pub const SETTINGS_FILE: &str = "drctl.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    state: Option<StateSection>,
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
        let store: Arc<dyn RunStore> = match self.store_location()? {
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
        };
        Ok(self.opened.get_or_init(|| store).clone())
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
    }
}
