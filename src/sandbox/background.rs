//! [`Sandbox`]: the detached moto server behind `drctl sandbox
//! start|stop|status`, found again through a state file.

use std::fs::{self, File};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

use super::endpoint::endpoint_answers;
use super::files::{io_error, lock_exclusive, open_log, remove_if_exists, write_atomic};
use super::launcher::{install_launcher, launcher_command, wait_ready, LAUNCHER_NAME};
use super::process::{pid_alive, runs_launcher, terminate};
use super::venv::ensure_venv;
use super::SandboxError;

/// What `drctl sandbox status` reports, and what `<dir>/sandbox.json` holds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct SandboxStatus {
    pub pid: u32,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// moto's version, as the running server reported it.
    pub moto: String,
}

/// `drctl sandbox start|stop|status`: a detached moto server that outlives the
/// command. Layout of `dir` (normally `<state_dir>/sandbox`): `venv/`,
/// `sandbox.json` (the state), `moto.log` (appended to by every start),
/// `moto_launcher.py`, and lock files.
pub struct Sandbox {
    dir: PathBuf,
}

/// What the state file says, checked against the system.
enum Probe {
    Absent,
    /// The recorded process is gone, or the pid now belongs to something else.
    Stale,
    /// Our launcher is alive but does not answer (hung, or still starting).
    Unresponsive(SandboxStatus),
    Running(SandboxStatus),
}

impl Sandbox {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Sandbox { dir: dir.into() }
    }

    fn venv_dir(&self) -> PathBuf {
        self.dir.join("venv")
    }
    fn state_path(&self) -> PathBuf {
        self.dir.join("sandbox.json")
    }
    fn log_path(&self) -> PathBuf {
        self.dir.join("moto.log")
    }
    fn port_path(&self) -> PathBuf {
        self.dir.join("moto.port")
    }
    /// Absolute, because it is what identifies our server in
    /// /proc/PID/cmdline, whatever directory the command was run from.
    fn launcher_path(&self) -> Result<PathBuf, SandboxError> {
        let path = self.dir.join(LAUNCHER_NAME);
        std::path::absolute(&path).map_err(io_error("resolve", &path))
    }

    /// Serialises start, stop and status between processes, so that two
    /// starts cannot launch two servers and a status cannot remove the state
    /// a concurrent start just wrote.
    fn lock(&self) -> Result<File, SandboxError> {
        fs::create_dir_all(&self.dir).map_err(io_error("create directory", &self.dir))?;
        lock_exclusive(
            &self.dir.join("sandbox.lock"),
            "another drctl sandbox command is running; waiting for it",
        )
    }

    /// Start the sandbox, or return the one already running and answering.
    pub fn start(&self) -> Result<SandboxStatus, SandboxError> {
        // Outside the sandbox lock, which `status` also takes: a first-time
        // install holds its own lock for a minute.
        let python = ensure_venv(&self.venv_dir())?;
        let _lock = self.lock()?;
        match self.probe()? {
            Probe::Running(status) => return Ok(status),
            Probe::Unresponsive(status) => {
                tracing::warn!(
                    pid = status.pid,
                    endpoint = %status.endpoint,
                    "the recorded moto server does not answer; stopping it and starting a new one"
                );
                terminate(status.pid)?;
                self.remove_state()?;
            }
            Probe::Stale => self.remove_state()?,
            Probe::Absent => {}
        }

        install_launcher(&self.dir)?;
        let launcher = self.launcher_path()?;
        let log_path = self.log_path();
        let port_file = self.port_path();
        remove_if_exists(&port_file)?;
        let (log, log_start) = open_log(&log_path)?;
        let mut command = launcher_command(&python, &launcher, &port_file, log, &log_path)?;
        // Its own process group, so the Ctrl-C or hang-up of the terminal that
        // ran `drctl sandbox start` does not reach it.
        command.stdin(Stdio::null()).process_group(0);
        let mut child = command.spawn().map_err(|source| SandboxError::Spawn {
            program: python.clone(),
            source,
        })?;

        let outcome = wait_ready(&mut child, &port_file, &log_path, log_start).and_then(|ready| {
            let status = SandboxStatus {
                pid: child.id(),
                endpoint: ready.endpoint(),
                started_at: rfc3339_utc(SystemTime::now()),
                moto: ready.moto,
            };
            // A server whose state is not recorded could never be stopped by
            // `drctl sandbox stop`: the write must succeed or the server goes.
            self.write_state(&status)?;
            Ok(status)
        });
        let _ = fs::remove_file(&port_file);
        match outcome {
            // `child` is dropped without waiting: the server lives on. When
            // this process exits it is re-parented; until then `pid_alive`
            // treats it as gone once it is a zombie.
            Ok(status) => {
                tracing::info!(pid = status.pid, endpoint = %status.endpoint, "moto sandbox started");
                Ok(status)
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }

    /// The running sandbox: `Some` only if the recorded pid is alive, is our
    /// launcher, and its endpoint answers. A state file naming a process that
    /// is gone (or a pid reused by another program) is removed.
    pub fn status(&self) -> Result<Option<SandboxStatus>, SandboxError> {
        let _lock = self.lock()?;
        match self.probe()? {
            Probe::Running(status) => Ok(Some(status)),
            Probe::Unresponsive(status) => {
                // Kept: `stop` (or the next `start`) can still end it.
                tracing::warn!(
                    pid = status.pid,
                    endpoint = %status.endpoint,
                    "the moto sandbox process is alive but does not answer"
                );
                Ok(None)
            }
            Probe::Stale => {
                self.remove_state()?;
                Ok(None)
            }
            Probe::Absent => Ok(None),
        }
    }

    /// Stop the sandbox: SIGTERM, up to 5 s for a clean exit, then SIGKILL.
    /// Returns what was stopped, or `None` if nothing was running.
    pub fn stop(&self) -> Result<Option<SandboxStatus>, SandboxError> {
        let _lock = self.lock()?;
        let stopped = match self.probe()? {
            Probe::Absent => return Ok(None),
            Probe::Stale => None,
            Probe::Running(status) | Probe::Unresponsive(status) => {
                terminate(status.pid)?;
                Some(status)
            }
        };
        self.remove_state()?;
        remove_if_exists(&self.port_path())?;
        Ok(stopped)
    }

    fn probe(&self) -> Result<Probe, SandboxError> {
        let Some(status) = self.read_state()? else {
            return Ok(Probe::Absent);
        };
        let launcher = self.launcher_path()?;
        if !pid_alive(status.pid) || !runs_launcher(status.pid, &launcher) {
            return Ok(Probe::Stale);
        }
        if endpoint_answers(&status.endpoint) {
            Ok(Probe::Running(status))
        } else {
            Ok(Probe::Unresponsive(status))
        }
    }

    fn read_state(&self) -> Result<Option<SandboxStatus>, SandboxError> {
        let path = self.state_path();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(SandboxError::State {
                    action: "read",
                    path,
                    source,
                })
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| SandboxError::StateCorrupt { path, source })
    }

    fn write_state(&self, status: &SandboxStatus) -> Result<(), SandboxError> {
        let path = self.state_path();
        let mut json =
            serde_json::to_string_pretty(status).map_err(|source| SandboxError::StateCorrupt {
                path: path.clone(),
                source,
            })?;
        json.push('\n');
        write_atomic(&path, json.as_bytes()).map_err(|source| SandboxError::State {
            action: "write",
            path,
            source,
        })
    }

    fn remove_state(&self) -> Result<(), SandboxError> {
        let path = self.state_path();
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(SandboxError::State {
                action: "remove",
                path,
                source: e,
            }),
            _ => Ok(()),
        }
    }
}

/// RFC 3339 in UTC, second precision (std has no calendar).
fn rfc3339_utc(time: SystemTime) -> String {
    // A clock before 1970 is a broken clock; the epoch is as good as any.
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::super::scratch_dir;
    use super::*;
    use std::time::Duration;

    fn status_with_pid(pid: u32) -> SandboxStatus {
        SandboxStatus {
            pid,
            endpoint: "http://127.0.0.1:1".to_string(),
            started_at: "2026-01-02T03:04:05Z".to_string(),
            moto: "5.2.5".to_string(),
        }
    }

    #[test]
    fn state_file_round_trips() {
        let sandbox = Sandbox::new(scratch_dir("roundtrip"));
        assert_eq!(sandbox.read_state().expect("read"), None);
        let status = status_with_pid(1234);
        sandbox.write_state(&status).expect("write");
        assert_eq!(sandbox.read_state().expect("read"), Some(status));
        sandbox.remove_state().expect("remove");
        assert_eq!(sandbox.read_state().expect("read"), None);
        let _ = fs::remove_dir_all(&sandbox.dir);
    }

    #[test]
    fn corrupt_state_file_is_reported_not_discarded() {
        let sandbox = Sandbox::new(scratch_dir("corrupt"));
        fs::write(sandbox.state_path(), "{not json").expect("write");
        let err = sandbox.status().expect_err("corrupt state");
        assert!(matches!(err, SandboxError::StateCorrupt { .. }), "{err}");
        assert!(sandbox.state_path().exists());
        let _ = fs::remove_dir_all(&sandbox.dir);
    }

    #[test]
    fn status_removes_state_of_a_dead_pid() {
        let sandbox = Sandbox::new(scratch_dir("deadpid"));
        // Above Linux's largest pid_max (2^22): never a live process.
        sandbox
            .write_state(&status_with_pid(i32::MAX as u32))
            .expect("write");
        assert_eq!(sandbox.status().expect("status"), None);
        assert!(!sandbox.state_path().exists());
        let _ = fs::remove_dir_all(&sandbox.dir);
    }

    #[test]
    fn stop_never_signals_a_recycled_pid() {
        // The state names a live process that is not our launcher: this test.
        let sandbox = Sandbox::new(scratch_dir("recycled"));
        sandbox
            .write_state(&status_with_pid(std::process::id()))
            .expect("write");
        assert_eq!(sandbox.stop().expect("stop"), None);
        assert!(!sandbox.state_path().exists());
        assert_eq!(sandbox.stop().expect("stop again"), None);
        let _ = fs::remove_dir_all(&sandbox.dir);
    }

    #[test]
    fn rfc3339_formatting() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3_723); // 2000-02-29
        assert_eq!(rfc3339_utc(t), "2000-02-29T01:02:03Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_798_761_599); // last second of 2026
        assert_eq!(rfc3339_utc(t), "2026-12-31T23:59:59Z");
    }
}
