//! Locks in the state directory: OS file locks (`flock(2)`, through
//! `File::try_lock`), held by an open file for the life of a lease. The
//! kernel releases one when its process exits, however it exits, so a
//! crashed run never keeps its lock and taking over a lock is the same
//! single atomic step as taking a free one: there is no "is the holder
//! dead?" check to race.
//!
//! An environment's lock file holds its holder's record (run id, pid,
//! host, user, since) while held, so that a refused run can name the
//! holder; a clean release removes the file. A record found in a file
//! whose OS lock was free was therefore left by a holder that ended without
//! releasing. On this host that holder is certainly gone (the kernel would
//! not have granted the lock otherwise), whatever its pid now names, and
//! the lock is taken over. A record written on another host is refused
//! instead: the state dir is then on a shared filesystem whose locks may
//! not reach across hosts, and drctl cannot check a process there. `drctl
//! unlock` removes such a record once someone has made sure that run is gone.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write as _};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::io;
use crate::store::{Lease, LockHolder, LockRefusal, StoreError};

/// An environment's lock, held until dropped.
#[derive(Debug)]
pub(super) struct EnvLease {
    path: PathBuf,
    /// Holds the OS lock; closing it releases the lock.
    file: File,
}

impl Lease for EnvLease {}

/// The holder recorded in a lock file. A record being written (or cut off by
/// a crash) does not parse, and reads as none rather than as a wrong holder.
pub(super) fn read_holder(path: &Path) -> Option<LockHolder> {
    parse_holder(&std::fs::read(path).ok()?)
}

fn parse_holder(bytes: &[u8]) -> Option<LockHolder> {
    serde_json::from_slice(bytes).ok()
}

impl EnvLease {
    /// Takes the lock at `path` (of `name`, `env@region`) for `me`.
    pub(super) fn acquire(
        path: PathBuf,
        name: &str,
        me: &LockHolder,
    ) -> Result<EnvLease, LockRefusal> {
        std::fs::create_dir_all(path.parent().expect("lock path has a parent"))
            .map_err(io("create lock directory for", &path))?;
        let mut file = match lock_file_at(&path, Create::Yes)? {
            Attempt::Held(file) => file,
            Attempt::Busy => return Err(LockRefusal::Held(read_holder(&path))),
            Attempt::Missing => unreachable!("the file is created when missing"),
        };
        let mut left = Vec::new();
        file.read_to_end(&mut left)
            .map_err(io("read lock", &path))?;
        if !left.is_empty() {
            match parse_holder(&left) {
                Some(holder) if holder.host != me.host => {
                    // Dropping `file` releases the OS lock and keeps the record.
                    return Err(LockRefusal::LeftOnOtherHost(holder));
                }
                Some(holder) => tracing::warn!(
                    "taking over the lock on {name} from {holder}, which ended without releasing it"
                ),
                None => tracing::warn!(
                    "taking over the lock on {name}: its holder ended while writing its record"
                ),
            }
        }
        // Readers parse the whole file: until the last byte is written they
        // see no holder (refused, "taking it right now"), never a wrong one.
        let record = serde_json::to_vec(me).expect("holder serialises");
        let write = |e| io("write lock", &path)(e);
        file.set_len(0).map_err(write)?;
        std::os::unix::fs::FileExt::write_all_at(&file, &record, 0).map_err(write)?;
        file.sync_all().map_err(write)?;
        Ok(EnvLease { path, file })
    }
}

impl Drop for EnvLease {
    fn drop(&mut self) {
        // Remove the file while the lock is still held, and only if the path
        // still names the file this lock holds: then it cannot be a file
        // another process has locked since (nobody can lock ours while we
        // hold it, and whoever else has it open finds it unlinked and starts
        // over, see `lock_file_at`). Unlinking after closing would race a
        // process that locks the file in between. The file's own record goes
        // with it: a record that outlived its holder would read as a crash.
        if names_file(&self.path, &self.file) {
            let _ = std::fs::remove_file(&self.path);
        }
        // Then `self.file` closes, which releases the OS lock.
    }
}

/// Removes the lock file at `path` that no live process holds, and returns
/// the holder it recorded (none when there was no file or no readable
/// record). Refused while a process holds the OS lock: the lock is that
/// run's, and goes when it ends.
pub(super) fn unlock(path: &Path) -> Result<Option<LockHolder>, LockRefusal> {
    let mut file = match lock_file_at(path, Create::No)? {
        Attempt::Missing => return Ok(None),
        Attempt::Busy => return Err(LockRefusal::Held(read_holder(path))),
        Attempt::Held(file) => file,
    };
    let mut left = Vec::new();
    file.read_to_end(&mut left).map_err(io("read lock", path))?;
    // Unlinked while locked, for the reason given in `EnvLease::drop`.
    std::fs::remove_file(path).map_err(io("remove lock", path))?;
    Ok(parse_holder(&left))
}

/// The scheduler's lock: an OS lock on a file naming its owner. The file
/// stays when the lock is released; the next owner rewrites it.
#[derive(Debug)]
pub(super) struct SchedulerLease {
    _file: File,
}

impl Lease for SchedulerLease {}

pub(super) fn lock_scheduler(path: &Path, owner: &str) -> Result<SchedulerLease, StoreError> {
    let dir = path.parent().expect("lock path has a parent");
    std::fs::create_dir_all(dir).map_err(io("create the directory of", path))?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io("open", path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(path).unwrap_or_default();
            return Err(StoreError::Busy {
                path: path.to_path_buf(),
                holder: match holder.trim() {
                    "" => "a process that is starting".to_string(),
                    held => held.to_string(),
                },
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io("lock", path)(e)),
    }
    file.set_len(0).map_err(io("write", path))?;
    writeln!(file, "{owner}").map_err(io("write", path))?;
    Ok(SchedulerLease { _file: file })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Create {
    Yes,
    No,
}

#[derive(Debug)]
enum Attempt {
    /// This process holds the OS lock on the file now at the path.
    Held(File),
    /// Another open file holds it: a live process.
    Busy,
    /// No file, and `Create::No`.
    Missing,
}

/// Releases unlink the file, so between opening the path and locking the
/// file a holder may release it: the lock then sits on a file no longer at
/// the path, while a newcomer creates and locks a new one. So after locking,
/// check that the path still names the locked file, and start over if not.
/// Each retry means another process released the lock in that instant; a
/// lock changing hands this often is reported as busy.
const ATTEMPTS: usize = 8;

fn lock_file_at(path: &Path, create: Create) -> Result<Attempt, StoreError> {
    for _ in 0..ATTEMPTS {
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create == Create::Yes)
            .truncate(false)
            .open(path);
        let file = match opened {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create == Create::No => {
                return Ok(Attempt::Missing)
            }
            Err(e) => return Err(io("open lock", path)(e)),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(Attempt::Busy),
            Err(std::fs::TryLockError::Error(e)) => return Err(io("lock", path)(e)),
        }
        if names_file(path, &file) {
            return Ok(Attempt::Held(file));
        }
        if create == Create::No && !path.exists() {
            return Ok(Attempt::Missing);
        }
    }
    Ok(Attempt::Busy)
}

/// Whether `path` names the same file as `file` (not one created in its place).
fn names_file(path: &Path, file: &File) -> bool {
    match (std::fs::metadata(path), file.metadata()) {
        (Ok(at_path), Ok(held)) => at_path.dev() == held.dev() && at_path.ino() == held.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me(run_id: &str) -> LockHolder {
        LockHolder {
            pid: std::process::id(),
            host: "here".into(),
            user: "someone".into(),
            run_id: run_id.into(),
            since: 0,
        }
    }

    #[test]
    fn a_lock_on_a_file_released_and_unlinked_meanwhile_does_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locks/e@r.lock");
        let holder = EnvLease::acquire(path.clone(), "e@r", &me("run-1")).unwrap();
        // A newcomer opened the file just before the holder released it ...
        let opened_before = File::open(&path).unwrap();
        drop(holder);
        // ... and only then gets the OS lock: on a file no longer at the path.
        opened_before.try_lock().unwrap();
        assert!(!names_file(&path, &opened_before));
        // A third process has meanwhile created the path anew and holds it.
        let third = EnvLease::acquire(path.clone(), "e@r", &me("run-3")).unwrap();
        assert!(!names_file(&path, &opened_before));
        drop(third);
    }
}
