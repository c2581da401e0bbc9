//! [`TetheredMoto`]: a moto server that cannot outlive the process that
//! started it.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::files::{open_log, unique_sibling};
use super::launcher::{install_launcher, launcher_command, wait_ready};
use super::process::Backoff;
use super::venv::ensure_venv;
use super::SandboxError;

/// The launcher shuts down within about 0.1 s; this allows for a loaded machine.
const TETHER_GRACE: Duration = Duration::from_secs(3);

/// A moto server owned by this process. It exits when this value is dropped,
/// and also when this process exits however it exits (SIGKILL included),
/// because the launcher watches its stdin and shuts down at EOF.
pub struct TetheredMoto {
    endpoint: String,
    /// Its stdin pipe is the tether: closing the write end asks it to stop.
    child: Child,
}

impl TetheredMoto {
    /// Prepare the venv (see [`ensure_venv`]), start moto on a free port of
    /// 127.0.0.1 and wait until it answers. The server's output is appended to
    /// `log_file`.
    pub fn start(venv_dir: &Path, log_file: &Path) -> Result<TetheredMoto, SandboxError> {
        let python = ensure_venv(venv_dir)?;
        let launcher = install_launcher(venv_dir)?;
        let (log, log_start) = open_log(log_file)?;
        let port_file = unique_sibling(log_file, "port");

        let mut command = launcher_command(&python, &launcher, &port_file, log, log_file)?;
        // Its own process group: the owner's Ctrl-C (SIGINT to the terminal's
        // foreground group) must not cut the endpoint from under the owner's
        // in-flight calls; the tether ends it when the owner goes.
        command
            .arg("--tether")
            .stdin(Stdio::piped())
            .process_group(0);
        let mut child = command.spawn().map_err(|source| SandboxError::Spawn {
            program: python.clone(),
            source,
        })?;
        let ready = wait_ready(&mut child, &port_file, log_file, log_start);
        let _ = fs::remove_file(&port_file);
        match ready {
            Ok(ready) => Ok(TetheredMoto {
                endpoint: ready.endpoint(),
                child,
            }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for TetheredMoto {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + TETHER_GRACE;
        let mut backoff = Backoff::new(deadline);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if backoff.sleep() => {}
                _ => break,
            }
        }
        tracing::warn!(
            pid = self.child.id(),
            "moto server did not exit within {} s of its stdin closing; killing it",
            TETHER_GRACE.as_secs()
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
