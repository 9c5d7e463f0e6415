//! Domain of Gender Service: the hit event and its validation (SPEC 2), the
//! Firehose-style transform (SPEC 5), curate aggregation (SPEC 6), the daily
//! window (SPEC 7), the gender rule (SPEC 8), deduplication (SPEC 15), erasure records (SPEC 17) and the port traits that adapters
//! implement. Nothing here performs I/O, so every rule is a plain function.

pub mod aggregate;
pub mod archive_index;
pub mod clientid;
pub mod daily;
pub mod dedup;
pub mod erasure;
pub mod error;
pub mod gender;
pub mod hit;
pub mod hitid;
pub mod ingest;
pub mod layout;
pub mod ports;
pub mod profile;
pub mod seen_set;
pub mod stream;
pub mod table;
pub mod time;
pub mod transform;

pub use aggregate::{
    Aggregator, LineSplitter, SortedVisitors, VisitorDelta, VisitorKey, VisitorMap, aggregate_hits,
    parse_raw_line, parse_raw_object,
};
pub use clientid::{validate_clientid, validate_hitid};
pub use daily::{DailyRow, DailySummary, WindowSums, default_daily_date, window_dates};
pub use erasure::{ErasureRecord, ErasureStatus};
pub use error::{HitError, PortError};
pub use gender::Gender;
pub use hit::{Hit, IncomingHit, parse_hit};
pub use profile::{Profile, Signals};
pub use time::Date;
