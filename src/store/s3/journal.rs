//! A run's journal in the bucket: `runs/<id>/events/<seq>`, one object per
//! append (the records of one step together), each created only where
//! nothing is. Object 0 is empty and marks the run as taken.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

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
        let fenced = self.shared.leases.lock().expect("lease book").check();
        if let Err(why) = fenced {
            return Err(self.shared.failed("append to", &folder(&self.run_id), why));
        }
        let mut body = Vec::new();
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

/// The records in journal objects, in their order.
fn records<'a>(objects: impl Iterator<Item = &'a Vec<u8>>) -> Vec<Vec<u8>> {
    objects
        .flat_map(|o| o.split(|b| *b == b'\n'))
        .filter(|r| !r.is_empty())
        .map(|record| record.to_vec())
        .collect()
}

pub(super) async fn exists(shared: &Shared, run_id: &str) -> Result<bool, StoreError> {
    Ok(!numbers(shared, run_id).await?.is_empty())
}
