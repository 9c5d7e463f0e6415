//! Port traits: one small trait per capability. Domain and application code
//! take these; the embedded and AWS adapters implement them.

use crate::{PortError, Profile, VisitorDelta, WindowSums};
use async_trait::async_trait;

/// One hit on its way into the log / stream: the normalized JSON and the key
/// that keeps one visitor's hits in order (the Kinesis partition key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub partition_key: String,
    pub data: Vec<u8>,
}

/// Durable ingest (Kinesis `PutRecords`, or the local fsync'ed log).
#[async_trait]
pub trait HitLog: Send + Sync {
    /// Stores the records durably (taken by value: the local log moves the
    /// bytes into its write buffer without another copy). `Ok` lists the indexes of records that
    /// could not be stored even after retries (normally none); `Err` means
    /// none of them was stored.
    async fn append(&self, records: Vec<LogRecord>) -> Result<Vec<usize>, PortError>;

    /// Whether an append now would be refused, asked before a request's
    /// body is parsed so that refusing it costs no parsing. A fast check
    /// with no I/O; [`append`](Self::append) still decides.
    fn admits(&self) -> Result<(), PortError> {
        Ok(())
    }
}

/// Lookup of one visitor's profile.
#[async_trait]
pub trait ProfileReader: Send + Sync {
    async fn get_profile(&self, clientid: &str) -> Result<Option<Profile>, PortError>;
}

/// Tells whether the state store answers (for `GET /health`).
#[async_trait]
pub trait HealthProbe: Send + Sync {
    async fn ping(&self) -> Result<(), PortError>;
}

/// A bucket, or a directory with the same key layout. Keys use `/`.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Writes the whole object atomically: readers see all of it or nothing.
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), PortError>;
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PortError>;
    /// Keys under `prefix`, sorted, without in-progress (`_`/`.`) names.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, PortError>;
    async fn delete(&self, key: &str) -> Result<(), PortError>;

    /// The body as a stream of chunks, so that an object of any size is
    /// read in bounded memory. The default reads it whole with [`get`](Self::get).
    async fn get_stream(&self, key: &str) -> Result<Option<Box<dyn ObjectRead>>, PortError> {
        Ok(self
            .get(key)
            .await?
            .map(|body| Box::new(WholeBody(Some(body))) as Box<dyn ObjectRead>))
    }

    /// Writes the object from a local file, atomically like [`put`](Self::put),
    /// without holding it in memory. The default reads the file and `put`s it.
    async fn put_file(&self, key: &str, path: &std::path::Path) -> Result<(), PortError> {
        let body = std::fs::read(path).map_err(|e| PortError::unavailable("read local file", e))?;
        self.put(key, body).await
    }

    /// Writes local files as objects, each all-or-nothing for readers like
    /// [`put_file`](Self::put_file), all of them durable when it returns.
    /// The files are the caller's temporaries: a store may move them into
    /// place rather than copy them, so the caller must not read them after,
    /// and forgets them once this succeeds.
    /// A store may make them durable together, far cheaper for many small
    /// objects than one at a time; then a crash before it returns can leave
    /// some of them short under their keys, so callers use it only for
    /// objects they write again, under the same keys, when their work is
    /// redone (curate's per-date Parquet). The default puts them in turn.
    async fn put_files(&self, files: &[(String, std::path::PathBuf)]) -> Result<(), PortError> {
        for (key, path) in files {
            self.put_file(key, path).await?;
        }
        Ok(())
    }

    /// [`list`](Self::list) with each object's size and a version that
    /// changes whenever the object is replaced (ETag, or the file's identity).
    /// The default knows neither: size 0, empty version.
    async fn list_info(&self, prefix: &str) -> Result<Vec<ObjectInfo>, PortError> {
        Ok(self
            .list(prefix)
            .await?
            .into_iter()
            .map(|key| ObjectInfo {
                key,
                size: 0,
                version: String::new(),
            })
            .collect())
    }
}

/// A listed object: its key, size in bytes and version (see [`ObjectStore::list_info`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub version: String,
}

/// An object's body, read piece by piece ([`ObjectStore::get_stream`]).
#[async_trait]
pub trait ObjectRead: Send {
    /// The next piece of the body, or `None` at its end.
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, PortError>;
}

struct WholeBody(Option<Vec<u8>>);

#[async_trait]
impl ObjectRead for WholeBody {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, PortError> {
        Ok(self.0.take())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    Applied,
    /// The object's marker was already there: nothing changed.
    AlreadyApplied,
}

/// Curate's write: one object's deltas, applied exactly once.
#[async_trait]
pub trait CounterStore: Send + Sync {
    /// Applies all deltas and records `object_id` in one atomic step, unless
    /// `object_id` was applied before.
    async fn apply_object(
        &self,
        object_id: &str,
        deltas: &[VisitorDelta],
        now_ms: i64,
    ) -> Result<ApplyOutcome, PortError>;
}

/// The daily job's write: the 7-day window sums of each visitor. The job
/// never reads them back: it knows what the store holds from its own record
/// (`core::daily::AppliedWindows`).
#[async_trait]
pub trait WindowStore: Send + Sync {
    /// Sets (`Some`) or clears (`None`) window sums on existing profiles,
    /// one batch (sorted by clientid) at a time; setting the same values
    /// again changes nothing but `updated_at`. Returns when every write of
    /// the batch is done.
    async fn set_windows(
        &self,
        updates: &[(String, Option<WindowSums>)],
        now_ms: i64,
    ) -> Result<(), PortError>;
}

/// Whether a lease was granted, or who holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseGrant {
    Granted,
    HeldBy { owner: String, until_ms: i64 },
}

/// A named lease with an expiry, so that one run at a time does a job.
#[async_trait]
pub trait Lease: Send + Sync {
    /// Takes lease `name` for `owner` until `until_ms` when it is free or
    /// expired at `now_ms`, or extends it when `owner` holds it already.
    async fn acquire(
        &self,
        name: &str,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<LeaseGrant, PortError>;
    /// Gives the lease up if `owner` still holds it.
    async fn release(&self, name: &str, owner: &str) -> Result<(), PortError>;
}

/// Hands the rest of a daily run to a new invocation (on AWS: Lambda's 15
/// minutes end before a day's writes do).
#[async_trait]
pub trait Continuation: Send + Sync {
    async fn continue_daily(&self, date: crate::Date) -> Result<(), PortError>;
}

/// Requests to forget a visitor (SPEC 17), and their status. The request is
/// durable when it returns; the work happens in the background.
#[async_trait]
pub trait Erasures: Send + Sync {
    /// Records an erasure of `clientid` (already validated) requested at
    /// `now_ms`, and returns its record (pending).
    async fn request_erasure(
        &self,
        clientid: &str,
        now_ms: i64,
    ) -> Result<crate::ErasureRecord, PortError>;
    /// The record of erasure `id`, if there is one.
    async fn erasure(&self, id: &str) -> Result<Option<crate::ErasureRecord>, PortError>;
}
