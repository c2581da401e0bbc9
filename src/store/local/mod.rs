//! The run store in a local state directory: a file per record, appends
//! fsync'd, locks held by the kernel (see [`super::layout`] for the files).

mod journal;
mod lock;

use std::path::{Path, PathBuf};

use super::{Key, Lease, LockHolder, LockRefusal, LockStatus, RunLog, RunStore, StoreError};

/// The records in one state directory.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(state_dir: &Path) -> LocalStore {
        LocalStore {
            root: state_dir.to_path_buf(),
        }
    }

    fn path(&self, key: &Key) -> PathBuf {
        key.under(&self.root)
    }
}

/// An I/O failure on `path`, said as `action`.
fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}

fn is_missing(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
}

impl RunStore for LocalStore {
    fn root(&self) -> PathBuf {
        self.root.clone()
    }

    fn location(&self, key: &Key) -> PathBuf {
        self.path(key)
    }

    fn create_run(&self, run_id: &str) -> Result<Box<dyn RunLog>, StoreError> {
        let runs = self.path(&Key::runs());
        std::fs::create_dir_all(&runs).map_err(io("create run directory", &runs))?;
        let dir = self.path(&Key::run(run_id));
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StoreError::RunExists {
                    run_id: run_id.to_string(),
                    path: dir,
                })
            }
            Err(e) => return Err(io("create run directory", &dir)(e)),
        }
        Ok(Box::new(journal::LocalRunLog::open(
            self.path(&Key::journal(run_id)),
        )?))
    }

    fn open_run(&self, run_id: &str) -> Result<Option<Box<dyn RunLog>>, StoreError> {
        let path = self.path(&Key::journal(run_id));
        if !path.is_file() {
            return Ok(None);
        }
        Ok(Some(Box::new(journal::LocalRunLog::open(path)?)))
    }

    fn read_run(&self, run_id: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        journal::read_records(&self.path(&Key::journal(run_id)))
    }

    fn list_runs(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .list(&Key::runs())?
            .iter()
            .map(|k| k.name().to_string())
            .collect())
    }

    fn has_run(&self, run_id: &str) -> bool {
        self.path(&Key::run(run_id)).exists()
    }

    fn lock_environment(
        &self,
        env: &str,
        region: &str,
        me: &LockHolder,
    ) -> Result<Box<dyn Lease>, LockRefusal> {
        let path = self.path(&Key::environment_lock(env, region));
        let lock = lock::EnvLease::acquire(path, &format!("{env}@{region}"), me)?;
        Ok(Box::new(lock))
    }

    fn environment_holder(&self, env: &str, region: &str) -> Option<LockHolder> {
        lock::read_holder(&self.path(&Key::environment_lock(env, region)))
    }

    fn environment_locks(&self) -> Result<Vec<LockStatus>, StoreError> {
        let mut found = Vec::new();
        for key in self.list(&Key::locks())? {
            let Some(name) = key.name().strip_suffix(".lock") else {
                continue;
            };
            found.push(LockStatus {
                name: name.to_string(),
                holder: lock::read_holder(&self.path(&key)),
                lease: None,
            });
        }
        Ok(found)
    }

    fn unlock_environment(
        &self,
        env: &str,
        region: &str,
        _by: &str,
    ) -> Result<Option<LockHolder>, LockRefusal> {
        lock::unlock(&self.path(&Key::environment_lock(env, region)))
    }

    fn lock_scheduler(&self, owner: &str) -> Result<Box<dyn Lease>, StoreError> {
        let lock = lock::lock_scheduler(&self.path(&Key::scheduler_lock()), owner)?;
        Ok(Box::new(lock))
    }

    /// Written to a temporary sibling, fsync'd and renamed over the old one.
    fn put(&self, key: &Key, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path(key);
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        crate::durable::write_atomic(&path, bytes).map_err(io("write", &path))
    }

    /// Created exclusively (`O_EXCL`) and fsync'd.
    fn claim(&self, key: &Key, bytes: &[u8]) -> Result<bool, StoreError> {
        use std::io::Write as _;
        let path = self.path(key);
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path);
        let mut file = match created {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(io("create", &path)(e)),
        };
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(io("write", &path))?;
        Ok(true)
    }

    fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(key);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(io("read", &path)(e)),
        }
    }

    /// Files whose names start with a dot are left out: a temporary file
    /// of a [`RunStore::put`] under way is no object yet.
    fn list(&self, folder: &Key) -> Result<Vec<Key>, StoreError> {
        let dir = self.path(folder);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if is_missing(&e) => return Ok(Vec::new()),
            Err(e) => return Err(io("list", &dir)(e)),
        };
        let mut keys = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io("list", &dir))?;
            match entry.file_name().to_str() {
                Some(name) if !name.starts_with('.') => keys.push(folder.child(name)),
                _ => {}
            }
        }
        keys.sort();
        Ok(keys)
    }
}

#[cfg(test)]
mod tests;
