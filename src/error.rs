//! The crate's top-level error: what failed, rendered once at the edge with
//! a hint and the cause chain, and mapped to the SPEC's exit codes.

use std::path::PathBuf;

use crate::cloud::CloudError;
use crate::diag::Diagnostics;
use crate::sandbox::SandboxError;
use crate::store::StoreError;

/// SPEC.md exit codes.
pub mod exit {
    pub const OK: u8 = 0;
    /// A failure during a run (or any command's own failure).
    pub const FAILURE: u8 = 1;
    /// Invalid input or usage: nothing was touched.
    pub const INVALID: u8 = 2;
    /// Paused at a gate.
    pub const PAUSED: u8 = 3;
    /// `plan --detailed-exitcode`: there are changes.
    pub const CHANGES: u8 = 4;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Stacks or runbooks failed validation.
    #[error("{0}")]
    Invalid(Diagnostics),
    /// A command-line argument names something that is not there.
    #[error("{message}")]
    Usage {
        message: String,
        hint: Option<String>,
    },
    #[error(transparent)]
    Cloud(#[from] CloudError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// A saved plan whose files or world changed since it was made.
    #[error("the saved plan {file} is stale: {}", why.join("; "))]
    StalePlan { file: String, why: Vec<String> },
    /// Another run holds the environment.
    #[error("environment {env} in {region} is locked by {holder}")]
    Locked {
        env: String,
        region: String,
        holder: String,
    },
    /// The lock file names a run on another host that did not release it:
    /// the state dir is shared, its locks may not reach across hosts, and no
    /// process can be checked there.
    #[error("environment {env} in {region} is locked by {holder}, left on another host where drctl cannot check whether that run still runs")]
    LockedOnOtherHost {
        env: String,
        region: String,
        host: String,
        holder: String,
    },
    /// `drctl unlock` while a live process holds the lock.
    #[error("cannot unlock environment {env} in {region}: a live process holds it, {holder}")]
    LockInUse {
        env: String,
        region: String,
        holder: String,
    },
    /// A journal line other than a torn last one does not parse.
    #[error("journal {} is corrupt at line {line}", path.display())]
    CorruptJournal {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    /// The user answered "no" at a prompt.
    #[error("not confirmed; nothing was changed")]
    Declined,
    /// A started run stopped on an error (its journal says interrupted):
    /// `drctl resume` continues it where it stopped.
    #[error("run {run_id} stopped before it was finished")]
    RunStopped {
        run_id: String,
        #[source]
        source: Box<Error>,
    },
    /// The shared run store failed (bucket, key and S3's answer named).
    #[error("{0}")]
    Store(String),
    /// The shared run store is out of reach, said with what to do without
    /// it (a rebuild can keep its records locally).
    #[error("{message}")]
    StoreDown { message: String, hint: String },
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A store's failure, said as drctl says any other: an I/O error names
/// the record; a run id taken already is the caller's to change.
impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Io {
                action,
                path,
                source,
            } => Error::Io {
                action,
                path,
                source,
            },
            StoreError::Remote { .. } => Error::Store(e.to_string()),
            StoreError::RunExists { .. } | StoreError::Busy { .. } => {
                Error::usage(e.to_string(), None)
            }
        }
    }
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Invalid(_) | Error::Usage { .. } | Error::Declined => exit::INVALID,
            Error::StalePlan { .. }
            | Error::Locked { .. }
            | Error::LockedOnOtherHost { .. }
            | Error::LockInUse { .. }
            | Error::CorruptJournal { .. } => exit::FAILURE,
            Error::Cloud(_)
            | Error::Sandbox(_)
            | Error::Io { .. }
            | Error::Store(_)
            | Error::StoreDown { .. } => exit::FAILURE,
            Error::RunStopped { .. } => exit::FAILURE,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Usage { hint, .. } => hint.clone(),
            Error::StoreDown { hint, .. } => Some(hint.clone()),
            Error::Cloud(e) => e.hint().map(str::to_string),
            Error::StalePlan { .. } => Some("plan again and review the new plan".into()),
            Error::RunStopped { run_id, .. } => Some(format!(
                "once the cause is fixed, continue it with: drctl resume {run_id}"
            )),
            Error::Locked { .. } => {
                Some("wait for that run: its lock goes when its process ends".into())
            }
            Error::LockedOnOtherHost { env, region, host, .. } => Some(format!(
                "once you know that run is no longer running on {host}: drctl unlock {env}@{region}"
            )),
            Error::LockInUse { .. } => Some(
                "the lock goes when that run ends; Ctrl-C stops it after its calls in flight"
                    .into(),
            ),
            Error::CorruptJournal { line, .. } => Some(format!(
                "only a torn last line (a write cut off by a crash) is skipped; line {line} was damaged or edited, so the run's history cannot be trusted until the file is repaired"
            )),
            _ => None,
        }
    }

    pub fn usage(message: impl Into<String>, hint: Option<String>) -> Self {
        Error::Usage {
            message: message.into(),
            hint,
        }
    }

    /// The message a user sees: headline, cause chain, hint.
    pub fn render(&self) -> String {
        if let Error::Invalid(diags) = self {
            return diags.to_string();
        }
        let mut out = format!("error: {self}");
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            out.push_str(&format!("\n  caused by: {cause}"));
            source = cause.source();
        }
        if let Some(hint) = self.hint() {
            out.push_str(&format!("\n  hint: {hint}"));
        }
        out
    }
}
