//! AWS adapters of Gender Service behind the core ports: Kinesis `PutRecords`
//! for ingest, S3 for raw/curated objects, DynamoDB for profiles with
//! exactly-once counter updates (and the daily job's lease), the erasure log
//! and its queue (SQS), Athena queries over the curated data, and a
//! function's asynchronous invocation of itself (Lambda). Each function crate
//! enables only the services it calls (cargo features), which keeps the
//! Lambda zips small.
//!
//! Every call that AWS may throttle or fail transiently goes through
//! [`Backoff::retry`], above the SDK's own retries, with
//! [`is_retryable_sdk_error`] deciding what is worth another attempt.

mod error;
mod retry;

#[cfg(feature = "athena")]
pub mod athena;
#[cfg(feature = "dynamodb")]
pub mod counting;
#[cfg(feature = "sqs")]
pub mod dead_letter;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(any(feature = "dynamodb", feature = "s3"))]
pub mod erasure;
#[cfg(feature = "kinesis")]
pub mod kinesis;
#[cfg(feature = "lambda")]
pub mod lambda;
#[cfg(feature = "s3")]
pub mod s3;

pub use error::{AwsError, is_retryable_sdk_error};
pub use retry::Backoff;
