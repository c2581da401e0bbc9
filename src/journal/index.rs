//! The per-user index of runs: run id → state directory, so a printed
//! `drctl resume ID` works from any directory. One JSON line per run under
//! `$XDG_STATE_HOME/drctl/` (else `~/.local/state/drctl/`).

use std::io::Write as _;
use std::path::{Path, PathBuf};

fn file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(base.join("drctl").join("runs.jsonl"))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Entry {
    run_id: String,
    state_dir: PathBuf,
}

/// Remembers where run `run_id` lives. Best effort: a run that cannot be
/// indexed still runs (`--state-dir` finds it).
pub fn record(run_id: &str, state_dir: &Path) {
    let Some(path) = file() else { return };
    let entry = Entry {
        run_id: run_id.to_string(),
        state_dir: crate::store::absolute(state_dir),
    };
    let written = std::fs::create_dir_all(path.parent().unwrap_or(Path::new("."))).and_then(|()| {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        let line = serde_json::to_string(&entry).map_err(std::io::Error::other)?;
        writeln!(f, "{line}")
    });
    if let Err(e) = written {
        tracing::warn!(index = %path.display(), error = %e, "could not index the run");
    }
}

/// The state directory of run `run_id`, if this user ran it.
pub fn lookup(run_id: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string(file()?).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Entry>(l).ok())
        .find(|e| e.run_id == run_id)
        .map(|e| e.state_dir)
}
