//! One run per environment and region at a time.
//!
//! The lock is an OS file lock (`flock(2)`, through `File::try_lock`) on
//! `<state-dir>/locks/<env>@<region>.lock`, held by the open file for the
//! whole life of an [`EnvLock`]. The kernel releases it when the process
//! exits, however it exits, so a crashed run never keeps the environment
//! locked and taking over its lock is the same single atomic step as taking
//! a free one: there is no "is the holder dead?" check to race.
//!
//! While it holds the lock, a process keeps a record of itself (run id, pid,
//! host, user, since) in the file, so that a refused run can name the
//! holder; a clean release removes the file. A record found in a file whose
//! OS lock was free was therefore left by a holder that ended without
//! releasing. On this host that holder is certainly gone (the kernel would
//! not have granted the lock otherwise), whatever its pid now names, and the
//! lock is taken over. A record written on another host is refused instead:
//! the state dir is then on a shared filesystem whose locks may not reach
//! across hosts, and drctl cannot check a process there. `drctl unlock`
//! removes such a record once someone has made sure that run is gone.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::journal::{current_user, format_millis, host_name, now_millis, Millis};

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

/// The environment's lock, held until dropped.
#[derive(Debug)]
pub struct EnvLock {
    path: PathBuf,
    /// Holds the OS lock; closing it releases the lock.
    file: File,
}

pub fn lock_path(state_dir: &Path, env: &str, region: &str) -> PathBuf {
    crate::store::Layout::new(state_dir).lock(env, region)
}

/// The holder recorded in a lock file. A record being written (or cut off by
/// a crash) does not parse, and reads as none rather than as a wrong holder.
pub fn read_holder(path: &Path) -> Option<LockHolder> {
    parse_holder(&std::fs::read(path).ok()?)
}

fn parse_holder(bytes: &[u8]) -> Option<LockHolder> {
    serde_json::from_slice(bytes).ok()
}

/// How a refused run names a holder whose record is not readable: it has
/// locked the file and not yet written the record.
fn describe(holder: Option<LockHolder>) -> String {
    holder.map_or_else(
        || "another drctl process that is taking it right now".to_string(),
        |h| h.to_string(),
    )
}

impl EnvLock {
    /// Takes the lock for `run_id`, or says who has it.
    pub fn acquire(
        state_dir: &Path,
        env: &str,
        region: &str,
        run_id: &str,
    ) -> Result<EnvLock, Error> {
        let path = lock_path(state_dir, env, region);
        let io = |action, source| Error::Io {
            action,
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(path.parent().expect("lock path has a parent"))
            .map_err(|e| io("create lock directory for", e))?;
        let mut file = match lock_file_at(&path, Create::Yes)? {
            Attempt::Held(file) => file,
            Attempt::Busy => {
                return Err(Error::Locked {
                    env: env.to_string(),
                    region: region.to_string(),
                    holder: describe(read_holder(&path)),
                })
            }
            Attempt::Missing => unreachable!("the file is created when missing"),
        };
        let me = LockHolder {
            pid: std::process::id(),
            host: host_name(),
            user: current_user(),
            run_id: run_id.to_string(),
            since: now_millis(),
        };
        let mut left = Vec::new();
        file.read_to_end(&mut left)
            .map_err(|e| io("read lock", e))?;
        if !left.is_empty() {
            match parse_holder(&left) {
                Some(holder) if holder.host != me.host => {
                    // Dropping `file` releases the OS lock and keeps the record.
                    return Err(Error::LockedOnOtherHost {
                        env: env.to_string(),
                        region: region.to_string(),
                        host: holder.host.clone(),
                        holder: holder.to_string(),
                    });
                }
                Some(holder) => tracing::warn!(
                    "taking over the lock on {env}@{region} from {holder}, which ended without releasing it"
                ),
                None => tracing::warn!(
                    "taking over the lock on {env}@{region}: its holder ended while writing its record"
                ),
            }
        }
        // Readers parse the whole file: until the last byte is written they
        // see no holder (refused, "taking it right now"), never a wrong one.
        let record = serde_json::to_vec(&me).expect("holder serialises");
        file.set_len(0).map_err(|e| io("write lock", e))?;
        std::os::unix::fs::FileExt::write_all_at(&file, &record, 0)
            .map_err(|e| io("write lock", e))?;
        file.sync_all().map_err(|e| io("write lock", e))?;
        Ok(EnvLock { path, file })
    }
}

impl Drop for EnvLock {
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

/// What `drctl unlock` does: removes the lock file of an environment that no
/// live process holds, and returns the holder it recorded (none when there
/// was no file or no readable record). Refused while a process holds the OS
/// lock: the lock is that run's, and goes when it ends.
pub fn unlock(state_dir: &Path, env: &str, region: &str) -> Result<Option<LockHolder>, Error> {
    let path = lock_path(state_dir, env, region);
    let mut file = match lock_file_at(&path, Create::No)? {
        Attempt::Missing => return Ok(None),
        Attempt::Busy => {
            return Err(Error::LockInUse {
                env: env.to_string(),
                region: region.to_string(),
                holder: describe(read_holder(&path)),
            })
        }
        Attempt::Held(file) => file,
    };
    let mut left = Vec::new();
    file.read_to_end(&mut left).map_err(|source| Error::Io {
        action: "read lock",
        path: path.clone(),
        source,
    })?;
    // Unlinked while locked, for the reason given in `EnvLock::drop`.
    std::fs::remove_file(&path).map_err(|source| Error::Io {
        action: "remove lock",
        path: path.clone(),
        source,
    })?;
    Ok(parse_holder(&left))
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

fn lock_file_at(path: &Path, create: Create) -> Result<Attempt, Error> {
    let io = |action, source| Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
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
            Err(e) => return Err(io("open lock", e)),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(Attempt::Busy),
            Err(std::fs::TryLockError::Error(e)) => return Err(io("lock", e)),
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

    const REGION: &str = "us-east-1";

    fn leave(path: &Path, content: &[u8]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    fn record(pid: u32, host: &str) -> Vec<u8> {
        serde_json::to_vec(&LockHolder {
            pid,
            host: host.into(),
            user: "someone".into(),
            run_id: "run-old".into(),
            since: 0,
        })
        .unwrap()
    }

    #[test]
    fn a_second_acquire_is_refused_naming_the_holder_even_in_the_same_process() {
        let dir = tempfile::tempdir().unwrap();
        let first = EnvLock::acquire(dir.path(), "e", REGION, "run-1").unwrap();
        // flock(2) locks belong to the open file, not the process: a second
        // open of the same file conflicts even here.
        let err = EnvLock::acquire(dir.path(), "e", REGION, "run-2").unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("environment e in us-east-1 is locked by run run-1 (pid ")
                && text.contains(&format!("pid {} on {}", std::process::id(), host_name())),
            "{text}"
        );
        assert!(matches!(err, Error::Locked { .. }), "{err:?}");
        // Another environment, or the same one in another region, is independent.
        let other = EnvLock::acquire(dir.path(), "f", REGION, "run-3").unwrap();
        let elsewhere = EnvLock::acquire(dir.path(), "e", "eu-west-1", "run-4").unwrap();
        drop((other, elsewhere));
        let path = lock_path(dir.path(), "e", REGION);
        assert_eq!(read_holder(&path).unwrap().run_id, "run-1");
        drop(first);
    }

    #[test]
    fn dropping_the_lock_releases_it_and_removes_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = lock_path(dir.path(), "e", REGION);
        for run in ["run-1", "run-2", "run-3"] {
            let lock = EnvLock::acquire(dir.path(), "e", REGION, run).unwrap();
            assert_eq!(read_holder(&path).unwrap().run_id, run);
            drop(lock);
            assert!(!path.exists(), "a clean release leaves no record behind");
        }
    }

    #[test]
    fn a_record_without_an_os_lock_on_this_host_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = lock_path(dir.path(), "e", REGION);
        let host = host_name();
        let leftovers = [
            ("garbage", b"\x00{\"pid\": 12".to_vec()),
            ("an empty file", Vec::new()),
            ("a dead pid's record", record(i32::MAX as u32, &host)),
            // A crashed holder's pid may since name another live process
            // (here, this one): the free OS lock says the holder is gone.
            ("a reused pid's record", record(std::process::id(), &host)),
        ];
        for (what, content) in leftovers {
            leave(&path, &content);
            let lock = EnvLock::acquire(dir.path(), "e", REGION, "run-new")
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let holder = read_holder(&path).unwrap();
            assert_eq!(holder.run_id, "run-new", "{what}");
            assert_eq!(holder.pid, std::process::id(), "{what}");
            drop(lock);
        }
    }

    #[test]
    fn a_record_left_on_another_host_is_refused_until_unlocked() {
        let dir = tempfile::tempdir().unwrap();
        let path = lock_path(dir.path(), "e", REGION);
        leave(&path, &record(4242, "elsewhere.example"));
        let err = EnvLock::acquire(dir.path(), "e", REGION, "run-new").unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("environment e in us-east-1 is locked by run run-old (pid 4242 on elsewhere.example, user someone, since ")
                && text.contains("another host"),
            "{text}"
        );
        assert!(
            err.hint().unwrap().contains("drctl unlock e@us-east-1"),
            "{:?}",
            err.hint()
        );
        assert_eq!(read_holder(&path).unwrap().run_id, "run-old", "kept");

        let removed = unlock(dir.path(), "e", REGION).unwrap();
        assert_eq!(removed.unwrap().host, "elsewhere.example");
        assert!(!path.exists());
        drop(EnvLock::acquire(dir.path(), "e", REGION, "run-new").unwrap());
        assert_eq!(
            unlock(dir.path(), "e", REGION).unwrap(),
            None,
            "nothing left"
        );
    }

    #[test]
    fn unlock_is_refused_while_the_lock_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let lock = EnvLock::acquire(dir.path(), "e", REGION, "run-1").unwrap();
        let err = unlock(dir.path(), "e", REGION).unwrap_err();
        assert!(matches!(err, Error::LockInUse { .. }), "{err:?}");
        assert!(err.to_string().contains("run run-1"), "{err}");
        assert_eq!(
            read_holder(&lock_path(dir.path(), "e", REGION))
                .unwrap()
                .run_id,
            "run-1"
        );
        drop(lock);
    }

    #[test]
    fn a_release_never_removes_a_file_it_does_not_hold() {
        let dir = tempfile::tempdir().unwrap();
        let path = lock_path(dir.path(), "e", REGION);
        let first = EnvLock::acquire(dir.path(), "e", REGION, "run-1").unwrap();
        // Someone removes the file under the holder (as `rm` would); a new
        // run creates and locks a new one.
        std::fs::remove_file(&path).unwrap();
        let second = EnvLock::acquire(dir.path(), "e", REGION, "run-2").unwrap();
        drop(first);
        assert_eq!(read_holder(&path).unwrap().run_id, "run-2");
        let err = EnvLock::acquire(dir.path(), "e", REGION, "run-3").unwrap_err();
        assert!(err.to_string().contains("run run-2"), "{err}");
        drop(second);
        assert!(!path.exists());
    }

    #[test]
    fn a_lock_on_a_file_released_and_unlinked_meanwhile_does_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = lock_path(dir.path(), "e", REGION);
        let holder = EnvLock::acquire(dir.path(), "e", REGION, "run-1").unwrap();
        // A newcomer opened the file just before the holder released it ...
        let opened_before = File::open(&path).unwrap();
        drop(holder);
        // ... and only then gets the OS lock: on a file no longer at the path.
        opened_before.try_lock().unwrap();
        assert!(!names_file(&path, &opened_before));
        // A third process has meanwhile created the path anew and holds it.
        let third = EnvLock::acquire(dir.path(), "e", REGION, "run-3").unwrap();
        assert!(!names_file(&path, &opened_before));
        drop(third);
    }
}
