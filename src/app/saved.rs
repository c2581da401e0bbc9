//! Plans saved with `plan --out` and applied later with `apply FILE`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::plan::{self, Plan};

/// A plan saved with `plan --out`, with what is needed to apply it later.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedPlan {
    /// Marks the file as a drctl plan.
    pub drctl_plan: u32,
    /// The project root, absolute.
    pub root: PathBuf,
    /// The runbook file, absolute.
    pub runbook_file: PathBuf,
    /// Where it was planned against, so the printed `drctl apply FILE`
    /// goes there without the flags being repeated.
    #[serde(default)]
    pub target: Option<crate::journal::RunTarget>,
    pub plan: Plan,
}

impl SavedPlan {
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(self).expect("plans serialise");
        std::fs::write(path, text).map_err(|source| Error::Io {
            action: "write plan to",
            path: path.to_path_buf(),
            source,
        })
    }

    /// The saved plan at `target`, or `None` if `target` is not a plan file
    /// (then it names a runbook).
    pub fn read(target: &str) -> Result<Option<SavedPlan>, Error> {
        let path = Path::new(target);
        if !path.is_file() || path.extension().is_some_and(|e| e == "toml") {
            return Ok(None);
        }
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            action: "read plan",
            path: path.to_path_buf(),
            source,
        })?;
        let saved: SavedPlan = serde_json::from_str(&text).map_err(|e| {
            Error::usage(
                format!("{target} is not a drctl plan file: {e}"),
                Some("make one with `drctl plan RUNBOOK --out FILE`, or pass a runbook".into()),
            )
        })?;
        if saved.drctl_plan != plan::PLAN_FORMAT || saved.plan.format != plan::PLAN_FORMAT {
            return Err(Error::usage(
                format!(
                    "{target} was saved by another drctl version (plan format {})",
                    saved.drctl_plan
                ),
                Some("plan again with this drctl".into()),
            ));
        }
        Ok(Some(saved))
    }
}
