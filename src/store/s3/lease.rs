//! Locks in the bucket are leases. Taking one creates its object with
//! `If-None-Match: *`; the holder renews it every third of the lease with
//! `If-Match` on the ETag it last wrote; another process takes it over only
//! once the lease has lapsed by S3's own clock (the object's LastModified
//! against the `Date` S3 answers with), with `If-Match` on the stale ETag
//! and the generation raised. Release is a conditional delete.
//!
//! A holder that cannot renew stops at once (fail-stop): its journals
//! refuse appends from the moment its lease may have lapsed, measured from
//! when it sent its last successful renewal, before anyone can take over.
//! And every journal object names the leases its writer held ([`Fence`]):
//! once an object of the holder that took a lease over is in a journal,
//! readers skip any later object of the holder it took over from, so even
//! a former holder that did not notice (a process paused past its lease)
//! cannot append after the one that took over.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::date_time::{DateTime, Format};
use serde::{Deserialize, Serialize};

use super::{try_block, Condition, Found, Shared, Written};
use crate::store::{Key, Lease, LeaseAge, LockHolder, LockRefusal, LockStatus, StoreError};

/// What a lock's object holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct LeaseRecord {
    pub holder: LockHolder,
    /// Raised by every takeover: which holder wrote a record.
    pub generation: u64,
    pub lease_ms: u64,
    /// Counts renewals, so that each one changes the object's ETag.
    pub renewals: u64,
    /// The lease this one took over, if it did (its [`LeaseRecord::id`]):
    /// journal objects written under that one after this one wrote are
    /// not read (see `journal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub took_over: Option<String>,
}

impl LeaseRecord {
    /// Names this holding of the lock: its generation and holder.
    pub fn id(&self) -> String {
        format!(
            "{}#{}@{}/{}/{}",
            self.holder.run_id,
            self.generation,
            self.holder.host,
            self.holder.pid,
            self.holder.since
        )
    }
}

/// What a journal object written under a lease says of it: the lock, the
/// holding, and the holding it took over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Fence {
    pub lock: String,
    pub lease: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub took_over: Option<String>,
}

/// A lease this process holds.
#[derive(Debug)]
struct Held {
    key: String,
    etag: String,
    record: LeaseRecord,
    /// When the last renewal that succeeded was sent: the lease is good
    /// until a lease after it, whatever S3's clock says.
    renewed: Instant,
    /// Why the lease is gone, once it is.
    lost: Option<String>,
}

/// The leases this process holds, for the journals to check.
#[derive(Debug, Default)]
pub(super) struct LeaseBook(Vec<Weak<Mutex<Held>>>);

impl LeaseBook {
    /// The leases held here, for a journal object to carry; `Err(why)`
    /// once one may have lapsed or was lost.
    pub(super) fn check(&mut self) -> Result<Vec<Fence>, String> {
        self.0.retain(|held| held.strong_count() > 0);
        let mut fences = Vec::new();
        for held in self.0.iter().filter_map(Weak::upgrade) {
            let held = held.lock().expect("lease");
            fences.push(Fence {
                lock: held.key.clone(),
                lease: held.record.id(),
                took_over: held.record.took_over.clone(),
            });
            if let Some(why) = &held.lost {
                return Err(why.clone());
            }
            let lease = Duration::from_millis(held.record.lease_ms);
            if held.renewed.elapsed() > lease.mul_f64(0.9) {
                return Err(format!(
                    "the lease on the lock was not renewed for {}s and may have lapsed; stopping so that whoever takes it over is the only writer",
                    held.renewed.elapsed().as_secs()
                ));
            }
        }
        Ok(fences)
    }
}

/// A lease, renewed in the background until dropped.
#[derive(Debug)]
pub(super) struct S3Lease {
    shared: Arc<Shared>,
    key: String,
    held: Arc<Mutex<Held>>,
    renewer: tokio::task::JoinHandle<()>,
}

impl Lease for S3Lease {}

impl Drop for S3Lease {
    fn drop(&mut self) {
        self.renewer.abort();
        let etag = self.held.lock().expect("lease").etag.clone();
        let (shared, key) = (self.shared.clone(), self.key.clone());
        let released = try_block(&self.shared.handle.clone(), async move {
            shared.delete_if(&key, &etag).await
        });
        match released {
            Some(Ok(_)) => {}
            Some(Err(e)) => tracing::warn!("could not release the lock (it lapses by itself): {e}"),
            None => tracing::warn!(
                "the run store closed before the lock was released: it lapses by itself"
            ),
        }
    }
}

/// S3's clock, from the `Date` of its answers: the newest seen plus the
/// time since it was seen (the whole seconds it gives only make a lease
/// look younger, never older).
#[derive(Debug, Default)]
pub(super) struct S3Clock(Mutex<Option<(i64, Instant)>>);

impl S3Clock {
    fn record(&self, s3_ms: i64) {
        let mut seen = self.0.lock().expect("s3 clock");
        let newer = seen.is_none_or(|(ms, at)| s3_ms >= ms + at.elapsed().as_millis() as i64);
        if newer {
            *seen = Some((s3_ms, Instant::now()));
        }
    }

    pub(super) fn now_ms(&self) -> i64 {
        match *self.0.lock().expect("s3 clock") {
            Some((ms, at)) => ms + at.elapsed().as_millis() as i64,
            None => jiff::Timestamp::now().as_millisecond(),
        }
    }
}

/// Reads the `Date` of every S3 answer into the store's [`S3Clock`].
#[derive(Debug)]
pub(super) struct DateRecorder(pub Arc<S3Clock>);

impl Intercept for DateRecorder {
    fn name(&self) -> &'static str {
        "drctl::S3DateRecorder"
    }

    fn read_after_transmit(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let date = context.response().headers().get("date");
        if let Some(ms) = date
            .and_then(|d| DateTime::from_str(d, Format::HttpDate).ok())
            .and_then(|t| t.to_millis().ok())
        {
            self.0.record(ms);
        }
        Ok(())
    }
}

/// The lock's record and object, if there is one.
pub(super) async fn read(
    shared: &Shared,
    key: &str,
) -> Result<Option<(LeaseRecord, Found)>, StoreError> {
    let Some(found) = shared.get(key).await? else {
        return Ok(None);
    };
    let record = serde_json::from_slice(&found.bytes)
        .map_err(|e| shared.failed("read the lock", key, e.to_string()))?;
    Ok(Some((record, found)))
}

/// Takes the lock at `key` for `me`: a new one, or one whose lease lapsed.
pub(super) async fn acquire(
    shared: Arc<Shared>,
    key: String,
    me: LockHolder,
) -> Result<S3Lease, LockRefusal> {
    let lease_ms = shared.place.lease.as_millis() as u64;
    let mut record = LeaseRecord {
        holder: me,
        generation: 1,
        lease_ms,
        renewals: 0,
        took_over: None,
    };
    // Each round either takes the lock, or finds it held, or lost a race to
    // someone who changed it meanwhile (and looks again).
    for _ in 0..5 {
        let sent = Instant::now();
        let body = serde_json::to_vec(&record).expect("lease records serialise");
        if let Written::Done(etag) = shared.put(&key, body, Condition::Absent).await? {
            return Ok(start(shared, key, record, etag, sent));
        }
        let Some((old, found)) = read(&shared, &key).await? else {
            continue; // released meanwhile
        };
        // LastModified comes in whole seconds, up to one earlier than the
        // write: a lease counts as lapsed only a second past its end.
        let age = shared.clock.now_ms() - found.modified_ms;
        if age <= old.lease_ms as i64 + 1000 {
            return Err(LockRefusal::Held(Some(old.holder)));
        }
        record.generation = old.generation + 1;
        record.took_over = Some(old.id());
        let sent = Instant::now();
        let body = serde_json::to_vec(&record).expect("lease records serialise");
        tracing::warn!(
            "taking over the lock {key} of {} (generation {}): its lease lapsed {}s ago",
            old.holder,
            old.generation,
            (age - old.lease_ms as i64 - 1000) / 1000
        );
        if let Written::Done(etag) = shared
            .put(&key, body, Condition::Unchanged(&found.etag))
            .await?
        {
            return Ok(start(shared, key, record, etag, sent));
        }
    }
    Err(LockRefusal::Held(None))
}

fn start(
    shared: Arc<Shared>,
    key: String,
    record: LeaseRecord,
    etag: String,
    renewed: Instant,
) -> S3Lease {
    let held = Arc::new(Mutex::new(Held {
        key: key.clone(),
        etag,
        record,
        renewed,
        lost: None,
    }));
    shared
        .leases
        .lock()
        .expect("lease book")
        .0
        .push(Arc::downgrade(&held));
    let renewer = shared
        .handle
        .spawn(renew(shared.clone(), key.clone(), held.clone()));
    S3Lease {
        shared,
        key,
        held,
        renewer,
    }
}

/// Renews the lease every third of it until it is dropped or lost.
async fn renew(shared: Arc<Shared>, key: String, held: Arc<Mutex<Held>>) {
    let lease = shared.place.lease;
    loop {
        tokio::time::sleep(lease / 3).await;
        let (etag, mut record) = {
            let held = held.lock().expect("lease");
            (held.etag.clone(), held.record.clone())
        };
        record.renewals += 1;
        let body = serde_json::to_vec(&record).expect("lease records serialise");
        let sent = Instant::now();
        let outcome = shared.put(&key, body, Condition::Unchanged(&etag)).await;
        let mut held = held.lock().expect("lease");
        match outcome {
            Ok(Written::Done(etag)) => {
                held.etag = etag;
                held.record = record;
                held.renewed = sent;
            }
            Ok(Written::Lost) => {
                held.lost = Some(format!(
                    "the lock {key} was taken over by another process after this one's lease lapsed"
                ));
                tracing::error!("{}", held.lost.as_deref().unwrap_or_default());
                return;
            }
            Err(e) if held.renewed.elapsed() > lease => {
                held.lost = Some(format!("could not renew the lock's lease: {e}"));
                tracing::error!("{}", held.lost.as_deref().unwrap_or_default());
                return;
            }
            Err(e) => tracing::warn!("could not renew the lock's lease (trying again): {e}"),
        }
    }
}

/// `drctl unlock`: removes the lock whoever holds it, and leaves a record
/// of who broke whose lease under `locks/broken/`. The holder it removed.
pub(super) async fn break_lease(
    shared: &Shared,
    key: &str,
    by: &str,
) -> Result<Option<LockHolder>, StoreError> {
    let Some((record, found)) = read(shared, key).await? else {
        return Ok(None);
    };
    let now = shared.clock.now_ms();
    let note = serde_json::json!({
        "lock": key,
        "broken_at": crate::clock::format_millis(now),
        "broken_by": by,
        "holder": record.holder,
        "generation": record.generation,
    });
    let note_key = Key::broken_lock(&Key::from_relative(key.to_string()), now);
    let body = serde_json::to_vec_pretty(&note).expect("notes serialise");
    shared
        .put(note_key.as_str(), body, Condition::Always)
        .await?;
    shared.delete_if(key, &found.etag).await?;
    Ok(Some(record.holder))
}

/// Every environment lock in the bucket, with its lease's age by S3's clock.
pub(super) async fn statuses(shared: &Shared) -> Result<Vec<LockStatus>, StoreError> {
    let (keys, _) = shared.list(Key::locks().as_str()).await?;
    let mut found = Vec::new();
    for key in keys {
        let name = key.rsplit('/').next().unwrap_or(&key);
        let Some(name) = name.strip_suffix(".lock").map(str::to_string) else {
            continue;
        };
        let Some((record, object)) = read(shared, &key).await? else {
            continue; // released meanwhile
        };
        found.push(LockStatus {
            name,
            lease: Some(LeaseAge {
                renewed_ms_ago: shared.clock.now_ms() - object.modified_ms,
                lease_ms: record.lease_ms,
                generation: record.generation,
            }),
            holder: Some(record.holder),
        });
    }
    Ok(found)
}
