//! The daily job on AWS (SPEC 7): fired by the EventBridge schedule (the date
//! is the day before the event's `time`), or invoked with `{"date": "YYYY-MM-DD"}`
//! for a manual run or a backfill.

use gender_aws::dynamodb::DynamoProfiles;
use gender_aws::s3::S3ObjectStore;
use gender_core::time::parse_rfc3339_millis;
use gender_core::{DailySummary, Date, default_daily_date};
use gender_lambda::{ConfigError, SdkTimeouts, required_env};
use gender_pipeline::{PipelineError, run_daily};
use lambda_runtime::Diagnostic;
use serde_json::Value;

/// SDK limits per call. The largest is a rollup's `PutObject` (tens of MB
/// for a busy date, sent within the attempt): 60 s leaves a wide margin at
/// S3's tens of MB/s per connection. An operation (the SDK's 3 attempts and
/// its pauses) ends within 180 s, well inside the function's 900 s timeout,
/// so a stalled call is retried instead of running the invocation out.
pub const SDK_TIMEOUTS: SdkTimeouts = SdkTimeouts {
    attempt: std::time::Duration::from_secs(60),
    operation: std::time::Duration::from_secs(180),
};

#[derive(Debug, Clone)]
pub struct Config {
    /// `CURATED_BUCKET`: curated hits are read from and rollups written to it.
    pub curated_bucket: String,
    /// `PROFILES_TABLE_NAME`: the DynamoDB profiles table.
    pub table_name: String,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Ok(Config {
            curated_bucket: required_env("CURATED_BUCKET")?,
            table_name: required_env("PROFILES_TABLE_NAME")?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DailyError {
    #[error("event must be {{\"date\": \"YYYY-MM-DD\"}} or an EventBridge scheduled event: {0}")]
    BadEvent(String),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

impl From<DailyError> for Diagnostic {
    /// The error type tells operators (and retry policies) whether a retry can help.
    fn from(e: DailyError) -> Diagnostic {
        let retryable = matches!(&e, DailyError::Pipeline(p) if p.retryable());
        Diagnostic {
            error_type: if retryable {
                "Retryable"
            } else {
                "NonRetryable"
            }
            .into(),
            error_message: e.to_string(),
        }
    }
}

/// Which date an event asks for.
pub fn date_of(event: &Value) -> Result<Date, DailyError> {
    if let Some(date) = event.get("date") {
        let text = date
            .as_str()
            .ok_or_else(|| DailyError::BadEvent("date is not a string".into()))?;
        return Date::parse(text).ok_or_else(|| DailyError::BadEvent(format!("date {text:?}")));
    }
    if event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
        let time = event
            .get("time")
            .and_then(Value::as_str)
            .ok_or_else(|| DailyError::BadEvent("no time".into()))?;
        let ms = parse_rfc3339_millis(time)
            .map_err(|e| DailyError::BadEvent(format!("time {time:?}: {e}")))?;
        return Ok(default_daily_date(ms));
    }
    Err(DailyError::BadEvent(event.to_string()))
}

pub struct Daily {
    curated: S3ObjectStore,
    profiles: DynamoProfiles,
}

impl Daily {
    pub fn new(config: Config, sdk: &aws_config::SdkConfig) -> Daily {
        Daily {
            curated: S3ObjectStore::new(gender_aws::s3::client(sdk), config.curated_bucket),
            profiles: DynamoProfiles::new(aws_sdk_dynamodb::Client::new(sdk), config.table_name),
        }
    }

    pub async fn handle(&self, event: &Value) -> Result<DailySummary, DailyError> {
        let date = date_of(event)?;
        Ok(run_daily(
            &self.curated,
            &self.profiles,
            date,
            gender_core::time::system_now_ms(),
        )
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates_from_manual_and_scheduled_events() {
        assert_eq!(
            date_of(&json!({"date": "2026-11-20"})).unwrap().to_string(),
            "2026-11-20"
        );
        let scheduled = json!({"detail-type": "Scheduled Event", "source": "aws.events", "time": "2026-11-24T01:00:00Z"});
        assert_eq!(date_of(&scheduled).unwrap().to_string(), "2026-11-23");
        assert!(matches!(
            date_of(&json!({"date": "2026-02-30"})),
            Err(DailyError::BadEvent(_))
        ));
        assert!(matches!(
            date_of(&json!({"hello": 1})),
            Err(DailyError::BadEvent(_))
        ));
        let diagnostic: Diagnostic = date_of(&json!({})).unwrap_err().into();
        assert_eq!(diagnostic.error_type, "NonRetryable");
    }
}
