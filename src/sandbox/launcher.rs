//! The embedded `moto_launcher.py`: installing it, building its command
//! line, and waiting until the server it starts is ready.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::endpoint::endpoint_answers;
use super::files::{io_error, log_tail, write_atomic};
use super::process::Backoff;
use super::SandboxError;

const LAUNCHER_SOURCE: &str = include_str!("moto_launcher.py");
/// Its name must contain "moto_launcher": `Sandbox` recognises its server in
/// /proc/PID/cmdline by this file's path.
pub(super) const LAUNCHER_NAME: &str = "moto_launcher.py";

/// Importing moto takes about a second on a warm cache, much longer on a
/// cold disk or a loaded CI machine.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// What the launcher writes to its port file once it is bound.
#[derive(serde::Deserialize)]
pub(super) struct LauncherReady {
    pub(super) port: u16,
    #[serde(default)]
    pub(super) moto: String,
}

impl LauncherReady {
    pub(super) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

pub(super) fn launcher_command(
    python: &Path,
    launcher: &Path,
    port_file: &Path,
    log: File,
    log_path: &Path,
) -> Result<Command, SandboxError> {
    let log_for_stdout = log
        .try_clone()
        .map_err(io_error("duplicate the handle of", log_path))?;
    let mut command = Command::new(python);
    // -I: the user's PYTHONPATH, PYTHONHOME and user site-packages must not
    // change which moto runs. -u: log lines reach the log as they happen.
    command
        .arg("-I")
        .arg("-u")
        .arg(launcher)
        .arg("--port-file")
        .arg(port_file)
        .stdout(log_for_stdout)
        .stderr(log);
    Ok(command)
}

/// Wait until the launcher has reported its port and the port answers HTTP,
/// failing early with the log's tail if the process dies first.
pub(super) fn wait_ready(
    child: &mut Child,
    port_file: &Path,
    log_path: &Path,
    log_start: u64,
) -> Result<LauncherReady, SandboxError> {
    let started = Instant::now();
    let mut backoff = Backoff::new(started + READY_TIMEOUT);
    let mut ready: Option<LauncherReady> = None;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return Err(SandboxError::Exited {
                    status,
                    log: log_path.to_path_buf(),
                    log_tail: log_tail(log_path, log_start),
                })
            }
            Ok(None) => {}
            Err(source) => {
                return Err(SandboxError::Wait {
                    pid: child.id(),
                    source,
                })
            }
        }
        if ready.is_none() {
            ready = read_port_file(port_file)?;
        }
        match ready.take() {
            Some(r) if endpoint_answers(&r.endpoint()) => {
                tracing::debug!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    endpoint = %r.endpoint(),
                    "moto server ready"
                );
                return Ok(r);
            }
            other => ready = other,
        }
        if !backoff.sleep() {
            return Err(SandboxError::NotReady {
                endpoint: ready.as_ref().map(LauncherReady::endpoint),
                waited: started.elapsed(),
                log: log_path.to_path_buf(),
                log_tail: log_tail(log_path, log_start),
            });
        }
    }
}

fn read_port_file(path: &Path) -> Result<Option<LauncherReady>, SandboxError> {
    // The launcher renames a complete file into place: no partial reads.
    let content = match fs::read_to_string(path) {
        Ok(content) => content,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("read", path)(e)),
    };
    serde_json::from_str(&content)
        .map(Some)
        .map_err(|source| SandboxError::PortFile {
            path: path.to_path_buf(),
            content,
            source,
        })
}

/// Write the embedded launcher as `dir/moto_launcher.py` unless it is there
/// already with the same content.
pub(super) fn install_launcher(dir: &Path) -> Result<PathBuf, SandboxError> {
    fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
    let path = dir.join(LAUNCHER_NAME);
    if fs::read(&path).is_ok_and(|current| current == LAUNCHER_SOURCE.as_bytes()) {
        return Ok(path);
    }
    // Atomic, so a concurrent start never runs a half-written script.
    write_atomic(&path, LAUNCHER_SOURCE.as_bytes()).map_err(io_error("write", &path))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::super::scratch_dir;
    use super::*;

    #[test]
    fn launcher_is_written_once_and_atomically() {
        let dir = scratch_dir("launcher");
        let path = install_launcher(&dir).expect("install");
        assert_eq!(fs::read_to_string(&path).expect("read"), LAUNCHER_SOURCE);
        let modified = fs::metadata(&path)
            .and_then(|m| m.modified())
            .expect("mtime");
        install_launcher(&dir).expect("install again");
        let again = fs::metadata(&path)
            .and_then(|m| m.modified())
            .expect("mtime");
        assert_eq!(modified, again);
        // Only the launcher: no temporary files left behind.
        assert_eq!(fs::read_dir(&dir).expect("ls").count(), 1);
        let _ = fs::remove_dir_all(&dir);
    }
}
