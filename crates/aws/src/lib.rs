//! AWS adapters of Gender Service behind the core ports: Kinesis `PutRecords`
//! for ingest, S3 for raw/curated objects, DynamoDB for profiles with
//! exactly-once counter updates. Each function crate enables only the
//! services it calls (cargo features), which keeps the Lambda zips small.

mod error;
mod retry;

#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "kinesis")]
pub mod kinesis;
#[cfg(feature = "s3")]
pub mod s3;

pub use error::AwsError;
pub use retry::Backoff;
