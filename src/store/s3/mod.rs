//! The run store in an S3 bucket a team shares (`--state s3://BUCKET/PREFIX`):
//! the same keys as a state directory ([`super::layout`]) under the prefix.
//!
//! - A journal is a numbered series of objects, `runs/<id>/events/<seq>`,
//!   each created with `If-None-Match: *`: two writers never overwrite each
//!   other's records, and a writer that finds its number taken reads what
//!   was added and takes the next ([`journal`]).
//! - Locks are leases ([`lease`]): an object created with `If-None-Match`,
//!   renewed with `If-Match` every third of the lease, taken over only once
//!   S3's own clock says the lease lapsed.
//! - Every object is written with server-side encryption requested.
//!
//! The store's interface is synchronous; its requests run on a runtime of
//! the store's own, which also renews leases in the background while the
//! caller's runtime is busy.

mod journal;
mod lease;

use std::future::Future;
use std::sync::{Arc, Mutex};

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use aws_sdk_s3::Client;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use tokio::runtime::{Handle, Runtime};

use super::layout::Key;
use super::location::BucketLocation;
use super::{Lease, LockHolder, LockRefusal, RunLog, RunStore, StoreError};
use lease::{LeaseBook, S3Clock};

/// Reads of one run's objects in flight at once.
const PARALLEL_READS: usize = 16;

#[derive(Debug)]
pub struct S3Store {
    shared: Arc<Shared>,
    /// Runs the store's requests and lease renewals; shut down without
    /// waiting when the store goes (it may go inside another runtime).
    runtime: Option<Runtime>,
}

/// What the store's requests and background renewals share.
#[derive(Debug)]
struct Shared {
    client: Client,
    place: BucketLocation,
    handle: Handle,
    clock: Arc<S3Clock>,
    /// The leases this process holds: a lapsed one stops its journals.
    leases: Mutex<LeaseBook>,
}

/// An object as read: its bytes and the version to write over.
struct Found {
    bytes: Vec<u8>,
    etag: String,
    /// When S3 last wrote it, in S3's clock (ms since the epoch).
    modified_ms: i64,
}

/// How a conditional write ended.
enum Written {
    /// The new ETag.
    Done(String),
    /// The condition failed: someone else wrote first.
    Lost,
}

impl S3Store {
    /// Opens the store in `place`; `config` loads the SDK configuration
    /// (endpoint, credentials, retries) as for every other client. Fails,
    /// naming bucket and region, when the bucket is missing or unreadable:
    /// drctl never creates it.
    pub fn open<F>(place: BucketLocation, config: F) -> Result<S3Store, StoreError>
    where
        F: Future<Output = aws_config::SdkConfig> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("drctl-store")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Io {
                action: "start the store's runtime for",
                path: place.to_string().into(),
                source: e,
            })?;
        let handle = runtime.handle().clone();
        let clock = Arc::new(S3Clock::default());
        let region = place.region.clone();
        let recorder = lease::DateRecorder(clock.clone());
        let client = block(&handle, async move {
            let config = config.await;
            let mut s3 = aws_sdk_s3::config::Builder::from(&config).interceptor(recorder);
            if let Some(region) = region {
                s3 = s3.region(aws_sdk_s3::config::Region::new(region));
            }
            // A custom endpoint (a VPC endpoint, an S3-compatible server) is
            // addressed by path: its host names no bucket.
            if config.endpoint_url().is_some() {
                s3 = s3.force_path_style(true);
            }
            Client::from_conf(s3.build())
        });
        let store = S3Store {
            shared: Arc::new(Shared {
                client,
                place,
                handle,
                clock,
                leases: Mutex::new(LeaseBook::default()),
            }),
            runtime: Some(runtime),
        };
        store.check_bucket()?;
        Ok(store)
    }

    fn check_bucket(&self) -> Result<(), StoreError> {
        let shared = self.shared.clone();
        let checked = self.block(async move {
            let place = &shared.place;
            shared
                .client
                .head_bucket()
                .bucket(&place.bucket)
                .send()
                .await
        });
        checked.map(|_| ()).map_err(|e| {
            let region = self.region();
            let why = match e.raw_response().map(|r| r.status().as_u16()) {
                Some(404) => "it does not exist (drctl never creates it)".to_string(),
                Some(403) => "access denied (drctl needs s3:ListBucket on it)".to_string(),
                _ if self.shared.client.config().region().is_none() => {
                    "no region to find it in: add `region = \"…\"` to drctl.toml's [state], or set AWS_REGION".to_string()
                }
                _ => sdk_message(&e),
            };
            StoreError::Remote {
                action: "open the run store",
                url: format!(
                    "{} (bucket {}, region {region})",
                    self.shared.place, self.shared.place.bucket
                ),
                message: why,
            }
        })
    }

    fn region(&self) -> String {
        self.shared
            .client
            .config()
            .region()
            .map_or_else(|| "not set".to_string(), |r| r.to_string())
    }

    fn block<F>(&self, future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        block(&self.shared.handle, future)
    }
}

impl Drop for S3Store {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Runs `future` on the store's runtime and waits for it: callable from
/// synchronous code inside another runtime, whose thread it only blocks.
fn block<F>(handle: &Handle, future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    try_block(handle, future).expect("the store's runtime is running")
}

/// [`block`], or `None` when the store's runtime has shut down (a lease
/// dropped after its store: there is nothing left to run it on).
fn try_block<F>(handle: &Handle, future: F) -> Option<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    handle.spawn(async move {
        let _ = tx.send(future.await);
    });
    rx.recv().ok()
}

/// An S3 call's error, with the HTTP answer it came in.
type S3Error<E> = aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>;

fn sdk_message<E>(e: &S3Error<E>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_string(),
        _ => causes(e),
    }
}

/// An error and its causes, each said once: what a person needs from a
/// failed request (not the SDK's debug dump of it).
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut said: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(error) = next {
        let text = error.to_string();
        if !text.is_empty() && !said.iter().any(|s| s.contains(&text)) {
            said.push(text);
        }
        next = error.source();
    }
    said.join(": ")
}

impl Shared {
    fn object_key(&self, key: &str) -> String {
        format!("{}{key}", self.place.prefix)
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{}", self.place.bucket, self.object_key(key))
    }

    fn failed(&self, action: &'static str, key: &str, message: String) -> StoreError {
        StoreError::Remote {
            action,
            url: self.url(key),
            message,
        }
    }

    /// Writes `bytes` at `key`: over anything (`None`), only where nothing
    /// is (`Some("*")` as If-None-Match), or only over `etag`.
    async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        condition: Condition<'_>,
    ) -> Result<Written, StoreError> {
        let mut request = self
            .client
            .put_object()
            .bucket(&self.place.bucket)
            .key(self.object_key(key))
            .body(ByteStream::from(bytes));
        request = match &self.place.kms_key {
            Some(kms) => request
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(kms),
            None => request.server_side_encryption(ServerSideEncryption::Aes256),
        };
        request = match condition {
            Condition::Always => request,
            Condition::Absent => request.if_none_match("*"),
            Condition::Unchanged(etag) => request.if_match(etag),
        };
        match request.send().await {
            Ok(out) => Ok(Written::Done(out.e_tag().unwrap_or_default().to_string())),
            Err(e) if lost_race(&e) => Ok(Written::Lost),
            Err(e) => Err(self.failed("write", key, sdk_message(&e))),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Found>, StoreError> {
        let request = self
            .client
            .get_object()
            .bucket(&self.place.bucket)
            .key(self.object_key(key));
        let out = match request.send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(self.failed("read", key, sdk_message(&e))),
        };
        let etag = out.e_tag().unwrap_or_default().to_string();
        let modified_ms = out
            .last_modified()
            .and_then(|t| t.to_millis().ok())
            .unwrap_or_default();
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| self.failed("read", key, e.to_string()))?
            .into_bytes()
            .to_vec();
        Ok(Some(Found {
            bytes,
            etag,
            modified_ms,
        }))
    }

    /// Deletes `key` if it is still at `etag`; whether it was.
    async fn delete_if(&self, key: &str, etag: &str) -> Result<bool, StoreError> {
        let request = self
            .client
            .delete_object()
            .bucket(&self.place.bucket)
            .key(self.object_key(key))
            .if_match(etag);
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) if lost_race(&e) => Ok(false),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(false),
            Err(e) => Err(self.failed("delete", key, sdk_message(&e))),
        }
    }

    /// The keys under `folder/` (relative to the prefix), and the folders
    /// directly in it, each sorted.
    async fn list(&self, folder: &str) -> Result<(Vec<String>, Vec<String>), StoreError> {
        let start = self.object_key(&format!("{folder}/"));
        let pages: Vec<_> = self
            .client
            .list_objects_v2()
            .bucket(&self.place.bucket)
            .prefix(&start)
            .delimiter("/")
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| self.failed("list", folder, sdk_message(&e)))?;
        let relative = |k: &str| k.strip_prefix(&self.place.prefix).unwrap_or(k).to_string();
        let mut keys = Vec::new();
        let mut folders = Vec::new();
        for page in pages {
            keys.extend(page.contents().iter().filter_map(|o| o.key()).map(relative));
            folders.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix())
                    .map(|p| relative(p.trim_end_matches('/'))),
            );
        }
        keys.sort();
        folders.sort();
        Ok((keys, folders))
    }

    /// The objects at `keys`, read in parallel, in `keys`' order.
    async fn get_all(&self, keys: Vec<String>) -> Result<Vec<Vec<u8>>, StoreError> {
        let reads = keys
            .into_iter()
            .map(|key| async move { self.get(&key).await });
        let found: Vec<Option<Found>> = stream::iter(reads)
            .buffered(PARALLEL_READS)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().map(|f| f.bytes).collect())
    }
}

/// The condition of a write.
enum Condition<'a> {
    Always,
    Absent,
    Unchanged(&'a str),
}

/// 412: the condition failed; 409: a concurrent conditional write to the
/// same key was in flight (S3 says to retry, which reads the winner).
fn lost_race<E: ProvideErrorMetadata>(e: &S3Error<E>) -> bool {
    let status = e.raw_response().map(|r| r.status().as_u16());
    matches!(status, Some(412) | Some(409))
        || matches!(
            e.code(),
            Some("PreconditionFailed") | Some("ConditionalRequestConflict")
        )
}

impl RunStore for S3Store {
    fn root(&self) -> std::path::PathBuf {
        self.shared.place.to_string().into()
    }

    fn location(&self, key: &Key) -> std::path::PathBuf {
        self.shared.url(key.as_str()).into()
    }

    fn create_run(&self, run_id: &str) -> Result<Box<dyn RunLog>, StoreError> {
        let shared = self.shared.clone();
        let id = run_id.to_string();
        self.block(async move { journal::S3RunLog::create(shared, &id).await })
            .map(|log| Box::new(log) as Box<dyn RunLog>)
    }

    fn open_run(&self, run_id: &str) -> Result<Option<Box<dyn RunLog>>, StoreError> {
        let shared = self.shared.clone();
        let id = run_id.to_string();
        let log = self.block(async move { journal::S3RunLog::open(shared, &id).await })?;
        Ok(log.map(|l| Box::new(l) as Box<dyn RunLog>))
    }

    fn read_run(&self, run_id: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let shared = self.shared.clone();
        let id = run_id.to_string();
        self.block(async move { journal::read(&shared, &id).await })
    }

    fn list_runs(&self) -> Result<Vec<String>, StoreError> {
        let shared = self.shared.clone();
        let (_, folders) = self.block(async move { shared.list(Key::runs().as_str()).await })?;
        let within = format!("{}/", Key::runs().as_str());
        Ok(folders
            .into_iter()
            .filter_map(|f| f.strip_prefix(&within).map(str::to_string))
            .filter(|id| !id.starts_with('.'))
            .collect())
    }

    fn has_run(&self, run_id: &str) -> bool {
        let shared = self.shared.clone();
        let id = run_id.to_string();
        self.block(async move { journal::exists(&shared, &id).await })
            .unwrap_or(false)
    }

    fn lock_environment(
        &self,
        env: &str,
        region: &str,
        me: &LockHolder,
    ) -> Result<Box<dyn Lease>, LockRefusal> {
        let key = Key::environment_lock(env, region).as_str().to_string();
        let (shared, me) = (self.shared.clone(), me.clone());
        self.block(async move { lease::acquire(shared, key, me).await })
            .map(|l| Box::new(l) as Box<dyn Lease>)
    }

    fn environment_holder(&self, env: &str, region: &str) -> Option<LockHolder> {
        let key = Key::environment_lock(env, region).as_str().to_string();
        let shared = self.shared.clone();
        self.block(async move { lease::read(&shared, &key).await })
            .ok()
            .flatten()
            .map(|(record, _)| record.holder)
    }

    fn environment_locks(&self) -> Result<Vec<super::LockStatus>, StoreError> {
        let shared = self.shared.clone();
        self.block(async move { lease::statuses(&shared).await })
    }

    fn unlock_environment(
        &self,
        env: &str,
        region: &str,
        by: &str,
    ) -> Result<Option<LockHolder>, LockRefusal> {
        let key = Key::environment_lock(env, region).as_str().to_string();
        let (shared, by) = (self.shared.clone(), by.to_string());
        Ok(self.block(async move { lease::break_lease(&shared, &key, &by).await })?)
    }

    fn lock_scheduler(&self, owner: &str) -> Result<Box<dyn Lease>, StoreError> {
        let key = Key::scheduler_lock().as_str().to_string();
        let me = LockHolder {
            pid: std::process::id(),
            host: String::new(),
            user: String::new(),
            run_id: owner.to_string(),
            since: crate::clock::Clock::now(&crate::clock::SystemClock),
        };
        let shared = self.shared.clone();
        let url = shared.url(&key);
        match self.block(async move { lease::acquire(shared, key, me).await }) {
            Ok(lease) => Ok(Box::new(lease)),
            Err(LockRefusal::Failed(e)) => Err(e),
            Err(LockRefusal::Held(holder)) => Err(StoreError::Busy {
                path: url.into(),
                holder: holder.map_or_else(|| "another scheduler".into(), |h| h.run_id),
            }),
            Err(LockRefusal::LeftOnOtherHost(holder)) => Err(StoreError::Busy {
                path: url.into(),
                holder: holder.run_id,
            }),
        }
    }

    fn put(&self, key: &Key, bytes: &[u8]) -> Result<(), StoreError> {
        let shared = self.shared.clone();
        let (key, bytes) = (key.as_str().to_string(), bytes.to_vec());
        self.block(async move { shared.put(&key, bytes, Condition::Always).await })
            .map(|_| ())
    }

    fn claim(&self, key: &Key, bytes: &[u8]) -> Result<bool, StoreError> {
        let shared = self.shared.clone();
        let (key, bytes) = (key.as_str().to_string(), bytes.to_vec());
        let written =
            self.block(async move { shared.put(&key, bytes, Condition::Absent).await })?;
        Ok(matches!(written, Written::Done(_)))
    }

    fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        let shared = self.shared.clone();
        let key = key.as_str().to_string();
        let found = self.block(async move { shared.get(&key).await })?;
        Ok(found.map(|f| f.bytes))
    }

    fn list(&self, folder: &Key) -> Result<Vec<Key>, StoreError> {
        let shared = self.shared.clone();
        let folder = folder.as_str().to_string();
        let (keys, _) = self.block(async move { shared.list(&folder).await })?;
        Ok(keys.into_iter().map(Key::from_relative).collect())
    }
}

#[cfg(test)]
mod tests {
    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn a_failed_request_says_each_cause_once_and_no_debug_dump() {
        let error = Layer(
            "dispatch failure",
            Some(Box::new(Layer(
                "io error: tcp connect error: Connection refused",
                Some(Box::new(Layer(
                    "tcp connect error: Connection refused",
                    None,
                ))),
            ))),
        );
        assert_eq!(
            super::causes(&error),
            "dispatch failure: io error: tcp connect error: Connection refused"
        );
    }
}
