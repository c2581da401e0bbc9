//! One run per environment and region at a time: the environment's lock
//! in the run store, owned by the run that holds it.
//!
//! In a state directory the lock is an OS file lock (`flock(2)`) on
//! `locks/<env>@<region>.lock`, released by the kernel however its process
//! ends, with the holder's record in the file; a record left by a holder
//! that ended on this host is taken over, one left on another host is
//! refused until `drctl unlock` (see the local store's locks). This module
//! says who is asking and what a refusal means to the user.

use crate::error::Error;
use crate::journal::{current_user, host_name, now_millis};
use crate::store::{Lease, LockRefusal, RunStore};

pub use crate::store::LockHolder;

/// The environment's lock, held until dropped.
#[derive(Debug)]
pub struct EnvLock {
    _lease: Box<dyn Lease>,
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
        store: &dyn RunStore,
        env: &str,
        region: &str,
        run_id: &str,
    ) -> Result<EnvLock, Error> {
        let me = LockHolder {
            pid: std::process::id(),
            host: host_name(),
            user: current_user(),
            run_id: run_id.to_string(),
            since: now_millis(),
        };
        match store.lock_environment(env, region, &me) {
            Ok(lease) => Ok(EnvLock { _lease: lease }),
            Err(LockRefusal::Held(holder)) => Err(Error::Locked {
                env: env.to_string(),
                region: region.to_string(),
                holder: describe(holder),
            }),
            Err(LockRefusal::LeftOnOtherHost(holder)) => Err(Error::LockedOnOtherHost {
                env: env.to_string(),
                region: region.to_string(),
                host: holder.host.clone(),
                holder: holder.to_string(),
            }),
            Err(LockRefusal::Failed(e)) => Err(e.into()),
        }
    }
}

/// Who holds the lock of `env` in `region` (or left it behind), if anyone
/// does and its record is readable.
pub fn holder(store: &dyn RunStore, env: &str, region: &str) -> Option<LockHolder> {
    store.environment_holder(env, region)
}

/// What `drctl unlock` does: removes the lock of an environment that no
/// live process holds, and returns the holder it recorded (none when there
/// was no lock or no readable record). Refused while a process holds it:
/// the lock is that run's, and goes when it ends.
pub fn unlock(store: &dyn RunStore, env: &str, region: &str) -> Result<Option<LockHolder>, Error> {
    let by = format!("{}@{}", current_user(), host_name());
    match store.unlock_environment(env, region, &by) {
        Ok(holder) => Ok(holder),
        Err(LockRefusal::Held(holder)) => Err(Error::LockInUse {
            env: env.to_string(),
            region: region.to_string(),
            holder: describe(holder),
        }),
        // Not a store's answer to an unlock (removing such a record is what
        // it is for); named as the holder it is, should one give it.
        Err(LockRefusal::LeftOnOtherHost(holder)) => Err(Error::LockInUse {
            env: env.to_string(),
            region: region.to_string(),
            holder: holder.to_string(),
        }),
        Err(LockRefusal::Failed(e)) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Key, LocalStore};
    use std::path::Path;

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
        let store = LocalStore::new(dir.path());
        let first = EnvLock::acquire(&store, "e", REGION, "run-1").unwrap();
        // flock(2) locks belong to the open file, not the process: a second
        // open of the same file conflicts even here.
        let err = EnvLock::acquire(&store, "e", REGION, "run-2").unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("environment e in us-east-1 is locked by run run-1 (pid ")
                && text.contains(&format!("pid {} on {}", std::process::id(), host_name())),
            "{text}"
        );
        assert!(matches!(err, Error::Locked { .. }), "{err:?}");
        // Another environment, or the same one in another region, is independent.
        let other = EnvLock::acquire(&store, "f", REGION, "run-3").unwrap();
        let elsewhere = EnvLock::acquire(&store, "e", "eu-west-1", "run-4").unwrap();
        drop((other, elsewhere));
        assert_eq!(holder(&store, "e", REGION).unwrap().run_id, "run-1");
        drop(first);
    }

    #[test]
    fn dropping_the_lock_releases_it_and_removes_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let path = store.location(&Key::environment_lock("e", REGION));
        for run in ["run-1", "run-2", "run-3"] {
            let lock = EnvLock::acquire(&store, "e", REGION, run).unwrap();
            assert_eq!(holder(&store, "e", REGION).unwrap().run_id, run);
            drop(lock);
            assert!(!path.exists(), "a clean release leaves no record behind");
        }
    }

    #[test]
    fn a_record_without_an_os_lock_on_this_host_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let path = store.location(&Key::environment_lock("e", REGION));
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
            let lock = EnvLock::acquire(&store, "e", REGION, "run-new")
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let holder = holder(&store, "e", REGION).unwrap();
            assert_eq!(holder.run_id, "run-new", "{what}");
            assert_eq!(holder.pid, std::process::id(), "{what}");
            drop(lock);
        }
    }

    #[test]
    fn a_record_left_on_another_host_is_refused_until_unlocked() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let path = store.location(&Key::environment_lock("e", REGION));
        leave(&path, &record(4242, "elsewhere.example"));
        let err = EnvLock::acquire(&store, "e", REGION, "run-new").unwrap_err();
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
        assert_eq!(
            holder(&store, "e", REGION).unwrap().run_id,
            "run-old",
            "kept"
        );

        let removed = unlock(&store, "e", REGION).unwrap();
        assert_eq!(removed.unwrap().host, "elsewhere.example");
        assert!(!path.exists());
        drop(EnvLock::acquire(&store, "e", REGION, "run-new").unwrap());
        assert_eq!(unlock(&store, "e", REGION).unwrap(), None, "nothing left");
    }

    #[test]
    fn unlock_is_refused_while_the_lock_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let lock = EnvLock::acquire(&store, "e", REGION, "run-1").unwrap();
        let err = unlock(&store, "e", REGION).unwrap_err();
        assert!(matches!(err, Error::LockInUse { .. }), "{err:?}");
        assert!(err.to_string().contains("run run-1"), "{err}");
        assert_eq!(holder(&store, "e", REGION).unwrap().run_id, "run-1");
        drop(lock);
    }

    #[test]
    fn a_release_never_removes_a_file_it_does_not_hold() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let path = store.location(&Key::environment_lock("e", REGION));
        let first = EnvLock::acquire(&store, "e", REGION, "run-1").unwrap();
        // Someone removes the file under the holder (as `rm` would); a new
        // run creates and locks a new one.
        std::fs::remove_file(&path).unwrap();
        let second = EnvLock::acquire(&store, "e", REGION, "run-2").unwrap();
        drop(first);
        assert_eq!(holder(&store, "e", REGION).unwrap().run_id, "run-2");
        let err = EnvLock::acquire(&store, "e", REGION, "run-3").unwrap_err();
        assert!(err.to_string().contains("run run-2"), "{err}");
        drop(second);
        assert!(!path.exists());
    }
}
