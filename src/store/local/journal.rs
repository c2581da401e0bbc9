//! A run's journal as a file: one record per line, appended and fsync'd.
//!
//! Only a torn last line is not a record: the final line, when it does not
//! end with a newline (a write cut off by a crash, or one still under way in
//! another process; either way its append had not returned, so nothing acted
//! on it). The next append cuts it off first.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{io, is_missing};
use crate::store::{RunLog, StoreError};

pub(super) struct LocalRunLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl LocalRunLog {
    /// Opens (creating) the journal file at `path`.
    pub(super) fn open(path: PathBuf) -> Result<LocalRunLog, StoreError> {
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io("open journal", &path))?;
        Ok(LocalRunLog {
            path,
            file: Mutex::new(file),
        })
    }
}

impl RunLog for LocalRunLog {
    fn append(&self, records: &[Vec<u8>]) -> Result<(), StoreError> {
        let mut lines = Vec::new();
        for record in records {
            debug_assert!(!record.contains(&b'\n'), "a record is one line");
            lines.extend_from_slice(record);
            lines.push(b'\n');
        }
        let file = self.file.lock().expect("journal lock poisoned");
        // `drctl approve` and `reject` append to a run's journal from
        // other processes: appends (and the repair of a torn tail) take
        // turns under an OS lock on the file, held for one write.
        let mut file: &File = &file;
        File::lock(file).map_err(io("append to journal", &self.path))?;
        let written = drop_torn_tail(file, &self.path)
            .and_then(|()| file.write_all(&lines))
            .and_then(|()| file.sync_data());
        let unlocked = File::unlock(file);
        written
            .and(unlocked)
            .map_err(io("append to journal", &self.path))
    }

    fn read(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        read_records(&self.path)
    }
}

/// The records in the journal at `path`: its complete lines, without their
/// newlines. A missing file has none.
pub(super) fn read_records(path: &Path) -> Result<Vec<Vec<u8>>, StoreError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if is_missing(&e) => return Ok(Vec::new()),
        Err(e) => return Err(io("read journal", path)(e)),
    };
    Ok(bytes[..complete_lines_len(&bytes)]
        .split_inclusive(|&b| b == b'\n')
        .map(|line| line[..line.len() - 1].to_vec())
        .collect())
}

/// The length of the journal's complete lines: up to its last newline.
fn complete_lines_len(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |last| last + 1)
}

/// Cuts a torn last line off before appending, so that the next record
/// starts a line of its own instead of turning the torn one into a corrupt
/// middle line. Called with the journal's OS lock held: no append is under way.
fn drop_torn_tail(file: &File, path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut last = [0u8];
    file.read_exact_at(&mut last, len - 1)?;
    if last[0] == b'\n' {
        return Ok(());
    }
    let mut bytes = vec![0u8; usize::try_from(len).expect("a journal fits in memory")];
    file.read_exact_at(&mut bytes, 0)?;
    let keep = complete_lines_len(&bytes);
    tracing::warn!(
        "{}: dropping a torn last line ({} bytes) left by a process that died while writing it",
        path.display(),
        bytes.len() - keep
    );
    file.set_len(keep as u64)
}
