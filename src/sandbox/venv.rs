//! Installing moto into a private Python virtualenv.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::files::{
    combined_output, io_error, lock_exclusive, tail_lines, write_atomic, LOG_TAIL_LINES,
};
use super::SandboxError;

/// What `ensure_venv` installs. Pinned: moto's behaviour differs between
/// releases in ways drctl's tests depend on (see shared/AWS-NOTES.md).
pub const MOTO_REQUIREMENT: &str = "moto[server]==5.2.5";
/// Written into the venv only after pip succeeded, holding the requirement
/// it installed; a venv without it (or with another requirement) is redone.
const MARKER_NAME: &str = "drctl-installed.txt";

/// Ensure a virtualenv with [`MOTO_REQUIREMENT`] exists in `venv_dir`, and
/// return the path of its python.
///
/// Idempotent, and safe to call from several processes at once: the work
/// happens under an exclusive lock on `<venv_dir>.lock`. pip is skipped when
/// the venv's marker file records that exactly `MOTO_REQUIREMENT` was
/// installed. The first call takes about a minute (pip downloads moto and its
/// dependencies); later ones take milliseconds.
pub fn ensure_venv(venv_dir: &Path) -> Result<PathBuf, SandboxError> {
    let python = venv_dir.join("bin").join("python");
    let marker = venv_dir.join(MARKER_NAME);
    if let Some(parent) = venv_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(io_error("create directory", parent))?;
    }
    let mut lock_path = OsString::from(venv_dir.as_os_str());
    lock_path.push(".lock");
    let _lock = lock_exclusive(
        Path::new(&lock_path),
        "another drctl is preparing the moto virtualenv; waiting for it",
    )?;

    // `exists` follows the symlink: a venv whose base Python was removed or
    // upgraded away reads as missing and is rebuilt.
    let python_ok = python.exists();
    if python_ok && marker_matches(&marker) {
        return Ok(python);
    }
    if !python_ok {
        create_venv(venv_dir)?;
    }
    // A failed or interrupted pip run must not leave an old marker behind.
    match fs::remove_file(&marker) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(io_error("remove", &marker)(e));
        }
        _ => {}
    }

    tracing::info!(
        venv = %venv_dir.display(),
        "installing {MOTO_REQUIREMENT}; the first time takes a minute or two"
    );
    let output = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            MOTO_REQUIREMENT,
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|source| SandboxError::Spawn {
            program: python.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(SandboxError::PipInstall {
            dir: venv_dir.to_path_buf(),
            requirement: MOTO_REQUIREMENT,
            output_tail: tail_lines(&combined_output(&output), LOG_TAIL_LINES),
        });
    }
    write_atomic(&marker, format!("{MOTO_REQUIREMENT}\n").as_bytes())
        .map_err(io_error("write", &marker))?;
    Ok(python)
}

fn marker_matches(marker: &Path) -> bool {
    fs::read_to_string(marker).is_ok_and(|s| s.trim() == MOTO_REQUIREMENT)
}

fn create_venv(venv_dir: &Path) -> Result<(), SandboxError> {
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "venv"]);
    // Only ever clear a directory that is a venv: the path comes from the
    // user's state dir, and a mistake there must not empty another folder.
    if venv_dir.join("pyvenv.cfg").exists() {
        cmd.arg("--clear");
    }
    let output = cmd
        .arg(venv_dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => SandboxError::PythonMissing { source },
            _ => SandboxError::Spawn {
                program: "python3".into(),
                source,
            },
        })?;
    if !output.status.success() {
        // Debian's "ensurepip is not available" explanation goes to stdout.
        return Err(SandboxError::VenvCreate {
            dir: venv_dir.to_path_buf(),
            output: tail_lines(&combined_output(&output), LOG_TAIL_LINES),
        });
    }
    Ok(())
}
