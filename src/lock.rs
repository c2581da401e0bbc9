//! One run per environment and region at a time: a lock file under the state
//! dir recording who holds it. A lock whose process is dead on this host is
//! stale and taken over; a live one is refused with its holder named.

use std::io::Write;
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

/// Held until dropped.
#[derive(Debug)]
pub struct EnvLock {
    path: PathBuf,
}

pub fn lock_path(state_dir: &Path, env: &str, region: &str) -> PathBuf {
    state_dir.join("locks").join(format!("{env}@{region}.json"))
}

pub fn read_holder(path: &Path) -> Option<LockHolder> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
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
        let me = LockHolder {
            pid: std::process::id(),
            host: host_name(),
            user: current_user(),
            run_id: run_id.to_string(),
            since: now_millis(),
        };
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    let text = serde_json::to_string(&me).expect("holder serialises");
                    file.write_all(text.as_bytes())
                        .map_err(|e| io("write lock", e))?;
                    file.sync_all().map_err(|e| io("write lock", e))?;
                    return Ok(EnvLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = read_holder(&path);
                    let stale = match &holder {
                        Some(h) => h.host == me.host && !crate::sandbox::pid_alive(h.pid),
                        None => true, // torn write by a process that died creating it
                    };
                    if !stale {
                        let holder = holder.expect("a live holder was read");
                        return Err(Error::Locked {
                            env: env.to_string(),
                            region: region.to_string(),
                            holder: holder.to_string(),
                        });
                    }
                    tracing::warn!(
                        "taking over a stale lock on {env}@{region}: {}",
                        holder.map_or("unreadable lock file".into(), |h| h.to_string())
                    );
                    std::fs::remove_file(&path).map_err(|e| io("remove stale lock", e))?;
                }
                Err(e) => return Err(io("create lock", e)),
            }
        }
        Err(Error::Locked {
            env: env.to_string(),
            region: region.to_string(),
            holder: "another drctl that took it at the same moment".into(),
        })
    }
}

impl Drop for EnvLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_holder_is_refused_and_a_dead_one_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let first = EnvLock::acquire(dir.path(), "e", "us-east-1", "run-1").unwrap();
        // This process holds it and is alive: refused, naming the holder.
        let err = EnvLock::acquire(dir.path(), "e", "us-east-1", "run-2").unwrap_err();
        assert!(err.to_string().contains("run run-1"), "{err}");
        // Another environment is independent.
        let other = EnvLock::acquire(dir.path(), "f", "us-east-1", "run-3").unwrap();
        drop(other);
        std::mem::forget(first);
        // Rewrite the holder as a dead pid on this host: stale, taken over.
        let path = lock_path(dir.path(), "e", "us-east-1");
        let mut holder = read_holder(&path).unwrap();
        holder.pid = i32::MAX as u32;
        std::fs::write(&path, serde_json::to_string(&holder).unwrap()).unwrap();
        let taken = EnvLock::acquire(dir.path(), "e", "us-east-1", "run-4").unwrap();
        assert_eq!(read_holder(&path).unwrap().run_id, "run-4");
        drop(taken);
        assert!(!path.exists());
    }
}
