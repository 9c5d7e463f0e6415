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

/// The daily job's write: the 7-day window sums of each visitor.
#[async_trait]
pub trait WindowStore: Send + Sync {
    /// Visitors whose profile currently has window sums.
    async fn visitors_with_window(&self) -> Result<Vec<String>, PortError>;
    /// Sets (`Some`) or clears (`None`) window sums on existing profiles;
    /// setting the same values again changes nothing but `updated_at`.
    async fn set_windows(
        &self,
        updates: &[(String, Option<WindowSums>)],
        now_ms: i64,
    ) -> Result<(), PortError>;
}
