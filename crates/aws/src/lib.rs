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

/// Loads the SDK configuration once (credentials, region, and
/// `AWS_ENDPOINT_URL` when pointing at an emulator).
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// Reads a required environment variable, naming it when missing.
pub fn required_env(name: &'static str) -> Result<String, AwsError> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(AwsError::MissingEnv(name)),
    }
}
