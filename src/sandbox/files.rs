//! File helpers: locks, the server log, atomic writes, and I/O errors.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

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

/// `<dir>/.<name>.<pid>.<n>.<ext>`: unique within this host, in the same
/// directory (hence file system) as `path`, so a rename into it is atomic.
pub(super) fn unique_sibling(path: &Path, ext: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.{n}.{ext}", std::process::id()))
}

pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = unique_sibling(path, "tmp");
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
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
