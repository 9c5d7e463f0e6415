//! Wiring of the HTTP API Lambda: configuration read once at cold start and
//! the Router over the Kinesis and DynamoDB adapters. All request handling
//! (and its tests) lives in `gender-api`.

use gender_api::{ApiKey, ApiMetrics, ApiState};
use gender_aws::dynamodb::DynamoProfiles;
use gender_aws::kinesis::KinesisHitLog;
use gender_aws::{AwsError, required_env};
use std::sync::Arc;

/// Environment of the function (see the README's table).
#[derive(Debug, Clone)]
pub struct Config {
    /// `HITS_STREAM_NAME`: the Kinesis stream `POST /hits` writes to.
    pub stream_name: String,
    /// `PROFILES_TABLE_NAME`: the DynamoDB table `GET /gender` reads.
    pub table_name: String,
    /// `API_KEY`: the `x-api-key` credential (SPEC 4).
    pub api_key: String,
}

impl Config {
    pub fn from_env() -> Result<Config, AwsError> {
        Ok(Config {
            stream_name: required_env("HITS_STREAM_NAME")?,
            table_name: required_env("PROFILES_TABLE_NAME")?,
            api_key: required_env("API_KEY")?,
        })
    }
}

/// The Router the local server also serves, over the AWS adapters.
pub fn app(config: &Config, sdk: &aws_config::SdkConfig) -> axum::Router {
    let profiles = Arc::new(DynamoProfiles::new(
        aws_sdk_dynamodb::Client::new(sdk),
        &config.table_name,
    ));
    let state = ApiState {
        log: Arc::new(KinesisHitLog::new(
            aws_sdk_kinesis::Client::new(sdk),
            &config.stream_name,
        )),
        profiles: profiles.clone(),
        health: profiles,
        api_key: ApiKey::required(config.api_key.as_str()),
        metrics: Arc::new(ApiMetrics::default()),
        clock: gender_lambda::now_ms,
    };
    gender_api::with_edge_layers(gender_api::router(state))
}
