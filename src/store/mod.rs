//! The run store: where drctl keeps its records. Journals (and the gate
//! decisions in them), environment locks, drill reports and their history,
//! the listing of runs and the scheduler's state all go through
//! [`RunStore`]; no other module builds a path under the state directory.
//!
//! One implementation today, [`LocalStore`]: the state directory, its files
//! and its OS locks, laid out as [`layout`] says. The interface is cut for a
//! store a team shares (a bucket) as well:
//!
//! - a journal is a log of records; [`RunLog::append`] returns only once its
//!   records are durable, because drctl acts on them next (an intent is
//!   written before its API call). Locally that is an fsync'd line each; in
//!   a bucket, a conditional create of the next numbered object, the
//!   records of one step in one object;
//! - runs are listed by id and read whole ([`RunStore::list_runs`],
//!   [`RunStore::read_run`]): a prefix listing and parallel reads remotely;
//! - an environment's lock has an owner, a [`LockHolder`], who is named to
//!   whoever is refused and can be removed by hand (`drctl unlock`);
//! - reports and the scheduler's state are whole objects, written so that a
//!   reader sees the old one or the new, never half of one.
//!
//! The store deals in bytes and ids: what a record means (a journal event,
//! a report) is its caller's, so the store sits below them all.
//!
//! The interface is synchronous. Its callers wait for every operation anyway
//! (a journal append must be durable before drctl acts); a remote store runs
//! its requests on a runtime of its own and waits for them.

mod layout;
mod local;
mod location;
mod s3;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::{format_millis, Millis};

pub use layout::{sandbox_dir, Key, ReportFormat};
pub use local::LocalStore;
pub use location::{BucketLocation, StoreLocation, DEFAULT_LEASE};
pub use s3::S3Store;

/// A store's location as a run records it: a directory made absolute (a
/// printed `drctl resume ID` works from anywhere), a bucket's URL as it is.
pub fn absolute(location: &Path) -> PathBuf {
    let text = location.to_string_lossy();
    match StoreLocation::parse(&text) {
        Ok(StoreLocation::Bucket(_)) => location.to_path_buf(),
        _ => std::path::absolute(location).unwrap_or_else(|_| location.into()),
    }
}

/// The store in the state directory `state_dir`.
pub fn local(state_dir: &Path) -> Arc<dyn RunStore> {
    Arc::new(LocalStore::new(state_dir))
}

pub trait RunStore: Send + Sync + std::fmt::Debug {
    /// Where the store is: the state directory (a bucket's URL, remotely).
    /// What a run records of itself, so `drctl resume ID` finds it.
    fn root(&self) -> PathBuf;

    /// Where `key` is, for messages: a file's path here.
    fn location(&self, key: &Key) -> PathBuf;

    /// Starts the journal of a new run; refused if the run exists.
    fn create_run(&self, run_id: &str) -> Result<Box<dyn RunLog>, StoreError>;

    /// Opens a run's journal to append to it; `None` when there is no such run.
    fn open_run(&self, run_id: &str) -> Result<Option<Box<dyn RunLog>>, StoreError>;

    /// A run's records, oldest first (none for an unknown run).
    fn read_run(&self, run_id: &str) -> Result<Vec<Vec<u8>>, StoreError>;

    /// The ids of the runs, in no particular order.
    fn list_runs(&self) -> Result<Vec<String>, StoreError>;

    /// Whether the store holds anything of run `run_id`.
    fn has_run(&self, run_id: &str) -> bool;

    /// Takes the lock of `env` in `region` for `me`, or says who has it.
    /// Held until the returned lease is dropped.
    fn lock_environment(
        &self,
        env: &str,
        region: &str,
        me: &LockHolder,
    ) -> Result<Box<dyn Lease>, LockRefusal>;

    /// Who holds the lock of `env` in `region`, or left it behind; `None`
    /// when nobody does or the record is not readable (being written).
    fn environment_holder(&self, env: &str, region: &str) -> Option<LockHolder>;

    /// Removes the lock of `env` in `region` (`drctl unlock`, confirmed by
    /// `by`, `user@host`), returning the holder it recorded. A local store
    /// refuses while a live process holds it; a shared one cannot tell, and
    /// breaks the lease, keeping a record of who did.
    fn unlock_environment(
        &self,
        env: &str,
        region: &str,
        by: &str,
    ) -> Result<Option<LockHolder>, LockRefusal>;

    /// Every environment lock in the store (held, or left by a holder that
    /// ended), for `drctl lock status`.
    fn environment_locks(&self) -> Result<Vec<LockStatus>, StoreError>;

    /// Takes the lock that keeps one scheduler per store, naming `owner`
    /// (`pid 1234`) to a second one, which is refused with
    /// [`StoreError::Busy`].
    fn lock_scheduler(&self, owner: &str) -> Result<Box<dyn Lease>, StoreError>;

    /// Writes a whole object: a reader sees the old one or this, never part.
    fn put(&self, key: &Key, bytes: &[u8]) -> Result<(), StoreError>;

    /// Writes `key` only where nothing is: whether this call wrote it (a
    /// second claim of the same thing, from anywhere, gets `false`).
    fn claim(&self, key: &Key, bytes: &[u8]) -> Result<bool, StoreError>;

    /// Reads a whole object; `None` when there is none.
    fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError>;

    /// The objects directly in `folder`, sorted by key.
    fn list(&self, folder: &Key) -> Result<Vec<Key>, StoreError>;
}

/// One run's journal, open for appending.
pub trait RunLog: Send + Sync {
    /// Appends `records` (one journal event each, without newlines) and
    /// returns once they are durable, all of them or none.
    fn append(&self, records: &[Vec<u8>]) -> Result<(), StoreError>;

    /// The records appended so far, oldest first.
    fn read(&self) -> Result<Vec<Vec<u8>>, StoreError>;
}

/// A lock held until dropped.
pub trait Lease: Send + Sync + std::fmt::Debug {}

/// Who holds an environment's lock: named to a run that is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub pid: u32,
    pub host: String,
    pub user: String,
    pub run_id: String,
    pub since: Millis,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "run {} (pid {} on {}, user {}, since {})",
            self.run_id,
            self.pid,
            self.host,
            self.user,
            format_millis(self.since)
        )
    }
}

/// One environment lock as `drctl lock status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockStatus {
    /// `env@region`.
    pub name: String,
    /// `None` while its holder is still writing its record.
    pub holder: Option<LockHolder>,
    /// In a shared store: the lease, as S3's clock sees it.
    pub lease: Option<LeaseAge>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseAge {
    /// Since the holder last renewed it.
    pub renewed_ms_ago: Millis,
    pub lease_ms: u64,
    /// Raised by every takeover.
    pub generation: u64,
}

/// Why a lock was not taken (or not removed).
#[derive(Debug)]
pub enum LockRefusal {
    /// A live process holds it; its record, unless it is still writing it.
    Held(Option<LockHolder>),
    /// A record left on another host, where the store cannot tell whether
    /// its run still runs: someone has to check, then `drctl unlock`.
    LeftOnOtherHost(LockHolder),
    Failed(StoreError),
}

impl From<StoreError> for LockRefusal {
    fn from(e: StoreError) -> Self {
        LockRefusal::Failed(e)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A new run's id names one the store holds.
    #[error("run {run_id} exists already in {}", path.display())]
    RunExists { run_id: String, path: PathBuf },
    /// A request to a shared store failed (after the SDK's retries).
    #[error("cannot {action} {url}: {message}")]
    Remote {
        action: &'static str,
        url: String,
        message: String,
    },
    /// Another process holds a lock that has no takeover (the scheduler's).
    #[error("{} is held by {holder}", path.display())]
    Busy { path: PathBuf, holder: String },
}

impl StoreError {
    /// The same failure, said as `action` (`read the drill report`) by a
    /// caller that knows what the object is.
    pub fn doing(self, action: &'static str) -> StoreError {
        match self {
            StoreError::Io { path, source, .. } => StoreError::Io {
                action,
                path,
                source,
            },
            other => other,
        }
    }
}
