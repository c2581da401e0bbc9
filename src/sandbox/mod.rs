//! The local AWS endpoint: moto server, run from a private Python virtualenv.
//!
//! Two lifetimes are offered:
//! * [`TetheredMoto`] belongs to the process that starts it (tests, `--sandbox`
//!   runs). It cannot outlive that process: the launcher reads its stdin and
//!   shuts down at EOF, which the kernel delivers however the owner dies,
//!   SIGKILL included.
//! * [`Sandbox`] backs `drctl sandbox start|stop|status`: a detached server in
//!   its own process group that outlives the command, found again through a
//!   state file.
//!
//! Both run `moto_launcher.py` (embedded below), which binds port 0 so the
//! kernel picks a free port, and reports it through a port file.
//!
//! This module is plain blocking code: it starts processes and waits for them
//! with deadlines, and must not be called from an async task without
//! `spawn_blocking`.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

mod background;
mod endpoint;
mod files;
mod launcher;
mod process;
mod tethered;
mod venv;

pub use background::{Sandbox, SandboxStatus};
pub use endpoint::endpoint_answers;
pub use process::pid_alive;
pub use tethered::TetheredMoto;
pub use venv::{ensure_venv, MOTO_REQUIREMENT};

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("python3 was not found on PATH: install Python 3 (with the venv module) to use the moto sandbox")]
    PythonMissing {
        #[source]
        source: io::Error,
    },

    #[error(
        "could not create a Python virtualenv in {}: install Python 3 with the venv module \
         (Debian/Ubuntu: `apt install python3-venv`)\n{output}",
        dir.display()
    )]
    VenvCreate { dir: PathBuf, output: String },

    #[error("pip could not install {requirement} into {}:\n{output_tail}", dir.display())]
    PipInstall {
        dir: PathBuf,
        requirement: &'static str,
        output_tail: String,
    },

    #[error("could not run {}", program.display())]
    Spawn {
        program: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("could not {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("could not check on the moto server process (pid {pid})")]
    Wait {
        pid: u32,
        #[source]
        source: io::Error,
    },

    #[error(
        "moto server exited ({status}) before it was ready; its log {} ends with:\n{log_tail}",
        log.display()
    )]
    Exited {
        status: ExitStatus,
        log: PathBuf,
        log_tail: String,
    },

    #[error(
        "moto server did not answer at {} within {} s; its log {} ends with:\n{log_tail}",
        endpoint.as_deref().unwrap_or("(no port reported yet)"),
        waited.as_secs(),
        log.display()
    )]
    NotReady {
        endpoint: Option<String>,
        waited: Duration,
        log: PathBuf,
        log_tail: String,
    },

    #[error("the moto launcher's port file {} is not valid: {content:?}", path.display())]
    PortFile {
        path: PathBuf,
        content: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("could not {action} the sandbox state file {}", path.display())]
    State {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "the sandbox state file {} is not valid; remove it (a moto server it recorded may still be running)",
        path.display()
    )]
    StateCorrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("could not signal the moto server (pid {pid})")]
    Stop {
        pid: u32,
        #[source]
        source: io::Error,
    },

    #[error("the moto server (pid {pid}) was still running {} s after SIGKILL", waited.as_secs())]
    StopTimeout { pid: u32, waited: Duration },
}

#[cfg(test)]
fn scratch_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("drctl-sandbox-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}
