//! Embedded adapters for the local deployment: a durable append-only hit log,
//! a directory object store with the S3 key layout, a redb state store, and
//! the atomic changes to the data directory's date partitions.

pub mod erasures;
mod error;
pub mod frame;
mod journal;
pub mod log;
pub mod object_store;
mod overlay;
pub mod partitions;
pub mod state;

pub use erasures::PendingErasure;
pub use error::EmbeddedError;
pub use log::{
    DamagedRange, HitLogFile, LogEntry, LogRead, LogReader, LogRoller, SegmentScan, scan_log,
};
pub use object_store::DirObjectStore;
pub(crate) use object_store::blocking;
pub use state::{CheckpointPolicy, DEFAULT_CACHE_BYTES, ObjectDeltas, SeenKeys, StateStore};
