//! Application services of Gender Service over the core ports: curate (raw
//! NDJSON -> Parquet + counters) and the daily window job, plus the Parquet
//! codec they share. Used unchanged by the Lambdas and the local runtime.

pub mod codec;
pub mod compact;
pub mod curate;
pub mod daily;
pub mod erase;
mod error;
pub mod report;

pub use curate::{
    CurateReport, CurateStream, CuratedObject, PreparedObject, curate_object, prepare_object,
};
pub use daily::{DailyOptions, DailyRun, run_daily, run_daily_with, unfinished_request};
pub use error::PipelineError;
