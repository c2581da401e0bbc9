//! A run's journal in the bucket: `runs/<id>/events/<seq>`, one object per
//! append (the records of one step together), each created only where
//! nothing is. Object 0 is empty and marks the run as taken.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use super::lease::Fence;
use super::{block, Condition, Shared, Written};
use crate::store::{Key, RunLog, StoreError};

/// Appends that found their number taken and tried the next, at most.
const RACES: usize = 100;

pub(super) struct S3RunLog {
    shared: Arc<Shared>,
    run_id: String,
    /// The number the next append takes, unless another writer took it.
    next: Mutex<u64>,
    /// The journal's objects read or written so far, by number: written
    /// once and never changed, so a read fetches only the numbers it has
    /// not seen (a run reads its journal at every phase and gate).
    seen: Arc<Mutex<BTreeMap<u64, Vec<u8>>>>,
}

fn folder(run_id: &str) -> String {
    Key::journal_parts(run_id).as_str().to_string()
}

fn object(run_id: &str, seq: u64) -> String {
    Key::journal_part(run_id, seq).as_str().to_string()
}

/// The numbers of a run's journal objects, in order.
async fn numbers(shared: &Shared, run_id: &str) -> Result<Vec<(u64, String)>, StoreError> {
    let (keys, _) = shared.list(&folder(run_id)).await?;
    let mut found: Vec<(u64, String)> = keys
        .into_iter()
        .filter_map(|k| Some((k.rsplit('/').next()?.parse().ok()?, k)))
        .collect();
    found.sort();
    Ok(found)
}

impl S3RunLog {
    pub(super) async fn create(shared: Arc<Shared>, run_id: &str) -> Result<S3RunLog, StoreError> {
        let key = object(run_id, 0);
        match shared.put(&key, Vec::new(), Condition::Absent).await? {
            Written::Done(_) => Ok(S3RunLog {
                shared,
                run_id: run_id.to_string(),
                next: Mutex::new(1),
                seen: Arc::new(Mutex::new(BTreeMap::from([(0, Vec::new())]))),
            }),
            Written::Lost => Err(StoreError::RunExists {
                run_id: run_id.to_string(),
                path: shared.url(&folder(run_id)).into(),
            }),
        }
    }

    pub(super) async fn open(
        shared: Arc<Shared>,
        run_id: &str,
    ) -> Result<Option<S3RunLog>, StoreError> {
        let Some(&(last, _)) = numbers(&shared, run_id).await?.last() else {
            return Ok(None);
        };
        Ok(Some(S3RunLog {
            shared,
            run_id: run_id.to_string(),
            next: Mutex::new(last + 1),
            seen: Arc::default(),
        }))
    }
}

impl RunLog for S3RunLog {
    fn append(&self, records: &[Vec<u8>]) -> Result<(), StoreError> {
        // A process whose lease lapsed writes nothing more: whoever took the
        // environment over is writing now.
        let fences = self.shared.leases.lock().expect("lease book").check();
        let fences = match fences {
            Ok(fences) => fences,
            Err(why) => return Err(self.shared.failed("append to", &folder(&self.run_id), why)),
        };
        let mut body = Vec::new();
        for fence in fences {
            body.extend_from_slice(FENCE);
            body.extend(serde_json::to_vec(&fence).expect("fences serialise"));
            body.push(b'\n');
        }
        for record in records {
            body.extend_from_slice(record);
            body.push(b'\n');
        }
        let shared = self.shared.clone();
        let run_id = self.run_id.clone();
        let mut next = self.next.lock().expect("journal number");
        let first = *next;
        let kept = body.clone();
        let written = block(&self.shared.handle, async move {
            let mut seq = first;
            for _ in 0..RACES {
                match shared
                    .put(&object(&run_id, seq), body.clone(), Condition::Absent)
                    .await?
                {
                    Written::Done(_) => return Ok(seq),
                    // Another writer (an approval from another machine)
                    // took this number: ours goes after what it wrote.
                    Written::Lost => {
                        let last = numbers(&shared, &run_id).await?.last().map(|(n, _)| *n);
                        seq = last.map_or(seq + 1, |n| n.max(seq) + 1);
                    }
                }
            }
            Err(shared.failed(
                "append to",
                &folder(&run_id),
                format!("{RACES} other writers kept taking the next record's number"),
            ))
        })?;
        *next = written + 1;
        self.seen
            .lock()
            .expect("journal cache")
            .insert(written, kept);
        Ok(())
    }

    /// One listing, and a read of each object not seen yet.
    fn read(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let (shared, run_id) = (self.shared.clone(), self.run_id.clone());
        let seen = self.seen.clone();
        block(&self.shared.handle, async move {
            let listed = numbers(&shared, &run_id).await?;
            let missing: Vec<(u64, String)> = {
                let seen = seen.lock().expect("journal cache");
                listed
                    .iter()
                    .filter(|(n, _)| !seen.contains_key(n))
                    .cloned()
                    .collect()
            };
            let keys = missing.iter().map(|(_, k)| k.clone()).collect();
            let fetched = shared.get_all(keys).await?;
            if fetched.len() != missing.len() {
                let why = "an object of it vanished while it was read".to_string();
                return Err(shared.failed("read", &folder(&run_id), why));
            }
            let mut seen = seen.lock().expect("journal cache");
            seen.extend(missing.into_iter().map(|(n, _)| n).zip(fetched));
            Ok(records(listed.iter().filter_map(|(n, _)| seen.get(n))))
        })
    }
}

/// A run's records, oldest first: its objects read in parallel.
pub(super) async fn read(shared: &Shared, run_id: &str) -> Result<Vec<Vec<u8>>, StoreError> {
    let keys = numbers(shared, run_id)
        .await?
        .into_iter()
        .map(|(_, k)| k)
        .collect();
    let objects = shared.get_all(keys).await?;
    Ok(records(objects.iter()))
}

/// How a line naming a lease its object was written under begins (a
/// record is a JSON object: it begins with `{`).
const FENCE: &[u8] = b"#lease ";

/// The records in journal objects, in their order, but for the objects a
/// former holder of a lease wrote after the holder that took the lease
/// over from it had written (fenced out: see `lease`).
fn records<'a>(objects: impl Iterator<Item = &'a Vec<u8>>) -> Vec<Vec<u8>> {
    let mut fenced_out: HashSet<String> = HashSet::new();
    let mut records = Vec::new();
    for object in objects {
        let lines: Vec<&[u8]> = object
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        let fences: Vec<Fence> = lines
            .iter()
            .filter_map(|l| l.strip_prefix(FENCE))
            .filter_map(|f| serde_json::from_slice(f).ok())
            .collect();
        if fences.iter().any(|f| fenced_out.contains(&f.lease)) {
            tracing::warn!(
                "skipped a journal object written by a holder whose lease was taken over"
            );
            continue;
        }
        fenced_out.extend(fences.into_iter().filter_map(|f| f.took_over));
        records.extend(
            lines
                .into_iter()
                .filter(|l| !l.starts_with(FENCE))
                .map(<[u8]>::to_vec),
        );
    }
    records
}

pub(super) async fn exists(shared: &Shared, run_id: &str) -> Result<bool, StoreError> {
    Ok(!numbers(shared, run_id).await?.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(fences: &[(&str, Option<&str>)], records: &[&str]) -> Vec<u8> {
        let mut body = Vec::new();
        for (lease, took_over) in fences {
            let fence = Fence {
                lock: "locks/prod@eu-west-1.lock".into(),
                lease: lease.to_string(),
                took_over: took_over.map(str::to_string),
            };
            body.extend_from_slice(FENCE);
            body.extend(serde_json::to_vec(&fence).unwrap());
            body.push(b'\n');
        }
        for record in records {
            body.extend_from_slice(record.as_bytes());
            body.push(b'\n');
        }
        body
    }

    fn read(objects: &[Vec<u8>]) -> Vec<String> {
        records(objects.iter())
            .into_iter()
            .map(|r| String::from_utf8(r).unwrap())
            .collect()
    }

    #[test]
    fn a_former_holder_cannot_append_after_the_one_that_took_its_lease_over() {
        let objects = [
            Vec::new(), // the run's marker
            object(&[("A#1", None)], &["{\"a\":1}", "{\"a\":2}"]),
            // An approval from a machine that holds no lease.
            object(&[], &["{\"approved\":true}"]),
            // B took the lease over from A and resumed the run...
            object(&[("B#2", Some("A#1"))], &["{\"b\":1}"]),
            // ...then A, paused past its lease and unaware, wrote again.
            object(&[("A#1", None)], &["{\"a\":3}"]),
            object(&[("B#2", Some("A#1"))], &["{\"b\":2}"]),
        ];
        assert_eq!(
            read(&objects),
            [
                "{\"a\":1}",
                "{\"a\":2}",
                "{\"approved\":true}",
                "{\"b\":1}",
                "{\"b\":2}"
            ]
        );
    }

    #[test]
    fn a_holder_whose_lease_was_not_taken_over_is_read_whole() {
        // A released its lock; B took it fresh (no takeover) and resumed.
        let objects = [
            object(&[("A#1", None)], &["{\"a\":1}"]),
            object(&[("B#1", None)], &["{\"b\":1}"]),
            object(&[("A#1", None)], &["{\"a\":2}"]),
        ];
        assert_eq!(read(&objects), ["{\"a\":1}", "{\"b\":1}", "{\"a\":2}"]);
    }
}
