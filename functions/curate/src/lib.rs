//! Curate on AWS: each SQS message carries an S3 event for a raw object that
//! Firehose wrote; each object is curated by the shared pipeline code.
//! Failures are reported per message (partial batch response), so only those
//! messages return to the queue and, after its retries, to the dead-letter queue.

use aws_lambda_events::event::s3::S3Event;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use gender_aws::dynamodb::DynamoProfiles;
use gender_aws::s3::S3ObjectStore;
use gender_core::seen_set::Horizon;
use gender_lambda::{ConfigError, SdkTimeouts, required_env};
use gender_pipeline::{PipelineError, curate_object};

pub mod dedup;

/// SDK limits per call. The largest is the curated Parquet's `PutObject` (a
/// few MB at 1,000 hits/s, the body sent within the attempt; a raw object's
/// `GetObject` body, up to Firehose's 128 MB buffer, is read after it): 30 s
/// is ample at S3's tens of MB/s per connection. An operation (the SDK's 3
/// attempts and its pauses) ends within 90 s, far below the function's
/// 300 s timeout, so a stalled call ends in a retryable error and a retry,
/// not in a killed invocation.
pub const SDK_TIMEOUTS: SdkTimeouts = SdkTimeouts {
    attempt: std::time::Duration::from_secs(30),
    operation: std::time::Duration::from_secs(90),
};

/// `DEDUP_HORIZON_SECONDS` when unset: one hour (SPEC 15).
pub const DEFAULT_DEDUP_HORIZON_SECONDS: u64 = 3600;

#[derive(Debug, Clone)]
pub struct Config {
    /// `CURATED_BUCKET`: where `curated/hits/dt=.../*.parquet` go.
    pub curated_bucket: String,
    /// `PROFILES_TABLE_NAME`: the DynamoDB profiles table.
    pub table_name: String,
    /// `KEEP_RAW` (default `true`): keep raw objects after curate; `false` deletes them.
    pub keep_raw: bool,
    /// `DEDUP_HORIZON_SECONDS` (default 3600; `0` turns deduplication off):
    /// a hit whose `(clientid, hitid)` was counted within this horizon is
    /// not counted again (SPEC 15).
    pub dedup_horizon: Option<Horizon>,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        let keep_raw = match std::env::var("KEEP_RAW").as_deref() {
            Err(_) | Ok("") | Ok("true") => true,
            Ok("false") => false,
            Ok(other) => {
                return Err(ConfigError::InvalidEnv {
                    name: "KEEP_RAW",
                    detail: format!("{other:?}: use true or false"),
                });
            }
        };
        Ok(Config {
            curated_bucket: required_env("CURATED_BUCKET")?,
            table_name: required_env("PROFILES_TABLE_NAME")?,
            keep_raw,
            dedup_horizon: dedup_horizon(std::env::var("DEDUP_HORIZON_SECONDS").ok().as_deref())?,
        })
    }
}

/// `DEDUP_HORIZON_SECONDS`: whole seconds, at most 7 days; empty or unset
/// is the default, `0` is off.
pub fn dedup_horizon(value: Option<&str>) -> Result<Option<Horizon>, ConfigError> {
    let seconds = match value.map(str::trim) {
        None | Some("") => DEFAULT_DEDUP_HORIZON_SECONDS,
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|&s| s <= 7 * 86_400)
            .ok_or_else(|| ConfigError::InvalidEnv {
                name: "DEDUP_HORIZON_SECONDS",
                detail: format!("{text:?}: use whole seconds from 0 (off) to 604800"),
            })?,
    };
    Ok(Horizon::from_seconds(seconds))
}

pub struct Curate {
    s3: aws_sdk_s3::Client,
    curated: S3ObjectStore,
    counters: DynamoProfiles,
    keep_raw: bool,
    dedup_horizon: Option<Horizon>,
}

/// One raw object named by an S3 event record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawObject {
    pub bucket: String,
    pub key: String,
    pub etag: String,
}

impl RawObject {
    /// The idempotency identity of SPEC 6: bucket, key and ETag.
    pub fn id(&self) -> String {
        format!("{}/{}#{}", self.bucket, self.key, self.etag)
    }
}

/// S3 event keys are URL-encoded, with `+` for a space.
pub fn decode_key(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&key[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The raw objects a message announces. An S3 test event announces none.
pub fn objects_in(message: &SqsMessage) -> Result<Vec<RawObject>, String> {
    let body = message.body.as_deref().ok_or("message has no body")?;
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("body is not JSON: {e}"))?;
    if value.get("Event").and_then(|e| e.as_str()) == Some("s3:TestEvent") {
        return Ok(Vec::new());
    }
    let event: S3Event =
        serde_json::from_value(value).map_err(|e| format!("body is not an S3 event: {e}"))?;
    event
        .records
        .iter()
        .filter(|r| {
            r.event_name
                .as_deref()
                .is_some_and(|n| n.starts_with("ObjectCreated:"))
        })
        .map(|r| {
            let bucket =
                r.s3.bucket
                    .name
                    .clone()
                    .ok_or("record without bucket name")?;
            let key =
                r.s3.object
                    .key
                    .as_deref()
                    .map(decode_key)
                    .ok_or("record without object key")?;
            let etag =
                r.s3.object
                    .e_tag
                    .clone()
                    .or_else(|| r.s3.object.version_id.clone())
                    .unwrap_or_default();
            Ok(RawObject { bucket, key, etag })
        })
        .collect()
}

impl Curate {
    pub fn new(config: Config, sdk: &aws_config::SdkConfig) -> Curate {
        let s3 = gender_aws::s3::client(sdk);
        Curate {
            curated: S3ObjectStore::new(s3.clone(), config.curated_bucket),
            counters: DynamoProfiles::new(aws_sdk_dynamodb::Client::new(sdk), config.table_name),
            keep_raw: config.keep_raw,
            dedup_horizon: config.dedup_horizon,
            s3,
        }
    }

    async fn curate(&self, object: &RawObject) -> Result<(), PipelineError> {
        self.curate_at(object, gender_core::time::system_now_ms())
            .await
    }

    /// Curates one object as if at `now_ms` (the commit time deduplication
    /// records; tests move it).
    pub async fn curate_at(&self, object: &RawObject, now_ms: i64) -> Result<(), PipelineError> {
        let raw = S3ObjectStore::new(self.s3.clone(), &object.bucket);
        let result = match self.dedup_horizon {
            // Boxed: the nested futures are too deep for the compiler's
            // layout query otherwise.
            Some(horizon) => {
                Box::pin(dedup::curate_deduplicated(
                    &raw,
                    &self.curated,
                    &self.counters,
                    &object.key,
                    &object.id(),
                    self.keep_raw,
                    now_ms,
                    horizon,
                ))
                .await
            }
            None => {
                curate_object(
                    &raw,
                    &self.curated,
                    &self.counters,
                    &object.key,
                    &object.id(),
                    self.keep_raw,
                    now_ms,
                )
                .await
            }
        }
        .map(|r| {
            tracing::info!(key = %object.key, hits = r.hits, duplicates = r.duplicates, visitors = r.visitors, invalid_lines = r.invalid_lines, redos = r.redos, outcome = ?r.outcome, "curated");
        });
        match result {
            Ok(()) => Ok(()),
            // Deleted after an earlier successful curate (KEEP_RAW=false), or
            // never there: either way there is nothing left to count.
            Err(PipelineError::RawMissing(key)) => {
                tracing::warn!(%key, "raw object is gone; nothing to curate");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Curates every object of the batch; failed messages are returned so
    /// that SQS redelivers only them.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for message in &event.records {
            let id = message.message_id.clone().unwrap_or_default();
            let outcome = match objects_in(message) {
                Ok(objects) => {
                    let mut result = Ok(());
                    for object in &objects {
                        if let Err(e) = self.curate(object).await {
                            result = Err(format!("{e}; retryable: {}", e.retryable()));
                            break;
                        }
                    }
                    result
                }
                Err(e) => Err(format!("{e}; retryable: false")),
            };
            if let Err(error) = outcome {
                tracing::error!(message_id = %id, %error, "message failed; SQS will redeliver it");
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_url_decoded() {
        assert_eq!(
            decode_key("raw/dt%3D2026-11-24/a+b%2Bc.ndjson"),
            "raw/dt=2026-11-24/a b+c.ndjson"
        );
        assert_eq!(decode_key("plain/key"), "plain/key");
        assert_eq!(decode_key("bad%zz"), "bad%zz");
        assert_eq!(decode_key("end%4"), "end%4");
    }

    #[test]
    fn the_dedup_horizon_defaults_to_an_hour_and_zero_turns_it_off() {
        assert_eq!(dedup_horizon(None).unwrap(), Horizon::from_seconds(3600));
        assert_eq!(
            dedup_horizon(Some("")).unwrap(),
            Horizon::from_seconds(3600)
        );
        assert_eq!(dedup_horizon(Some("0")).unwrap(), None);
        assert_eq!(
            dedup_horizon(Some("600")).unwrap(),
            Horizon::from_seconds(600)
        );
        for bad in ["-1", "1h", "604801"] {
            let err = dedup_horizon(Some(bad)).unwrap_err().to_string();
            assert!(err.contains("DEDUP_HORIZON_SECONDS"), "{err}");
        }
    }
}
