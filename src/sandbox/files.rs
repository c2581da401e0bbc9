//! File helpers: locks, the server log, atomic writes, and I/O errors.

pub(super) use crate::durable::{unique_sibling, write_atomic};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use super::SandboxError;

const LOG_TAIL_BYTES: u64 = 4096;
pub(super) const LOG_TAIL_LINES: usize = 30;

pub(super) fn lock_exclusive(path: &Path, waiting_message: &str) -> Result<File, SandboxError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_error("open lock file", path))?;
    match file.try_lock() {
        Ok(()) => return Ok(file),
        Err(TryLockError::WouldBlock) => {
            tracing::info!(lock = %path.display(), "{waiting_message}");
        }
        Err(TryLockError::Error(e)) => return Err(io_error("lock", path)(e)),
    }
    file.lock().map_err(io_error("lock", path))?;
    Ok(file)
}

/// Open `path` for appending, returning it and its current length (where this
/// run's output starts).
pub(super) fn open_log(path: &Path) -> Result<(File, u64), SandboxError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(io_error("create directory", parent))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_error("open log file", path))?;
    let start = file
        .metadata()
        .map_err(io_error("read metadata of", path))?
        .len();
    Ok((file, start))
}

/// The last lines written to the log since `start`, for error messages.
pub(super) fn log_tail(path: &Path, start: u64) -> String {
    let read = || -> io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        let from = start.max(len.saturating_sub(LOG_TAIL_BYTES));
        file.seek(SeekFrom::Start(from))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) if text.trim().is_empty() => "(nothing)".to_string(),
        Ok(text) => tail_lines(&text, LOG_TAIL_LINES),
        Err(e) => format!("(could not read it: {e})"),
    }
}

pub(super) fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub(super) fn combined_output(output: &std::process::Output) -> String {
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    text
}

pub(super) fn remove_if_exists(path: &Path) -> Result<(), SandboxError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error("remove", path)(e)),
        _ => Ok(()),
    }
}

pub(super) fn io_error(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(io::Error) -> SandboxError {
    let path = path.to_path_buf();
    move |source| SandboxError::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::super::scratch_dir;
    use super::*;
    use std::io::Write;

    #[test]
    fn log_tail_shows_only_this_runs_last_lines() {
        let dir = scratch_dir("logtail");
        let log = dir.join("moto.log");
        fs::write(&log, "old run\n").expect("write");
        let start = fs::metadata(&log).expect("metadata").len();
        let mut text = String::new();
        for i in 0..100 {
            text.push_str(&format!("line {i}\n"));
        }
        let mut file = OpenOptions::new().append(true).open(&log).expect("open");
        file.write_all(text.as_bytes()).expect("append");
        let tail = log_tail(&log, start);
        assert!(!tail.contains("old run"));
        assert!(tail.ends_with("line 99"));
        assert_eq!(tail.lines().count(), LOG_TAIL_LINES);
        assert_eq!(
            log_tail(&log, fs::metadata(&log).expect("m").len()),
            "(nothing)"
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
