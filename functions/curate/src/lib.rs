//! Curate on AWS: the archive half of the pipeline (SPEC 6, 19). Each SQS
//! message carries an S3 event for a raw object Firehose wrote; its hits
//! become Parquet under `curated/hits/dt=.../`, one row per counted hit.
//! The counters are the stream consumer's (functions/consumer): curate
//! never touches DynamoDB, so nothing counts twice between the two paths.
//!
//! Exactly once in the archive:
//! - a hit repeated within the horizon (a `PutRecords` retry, a producer
//!   resending its `hitid`, a redelivery) is written once: the archive index
//!   ([`gender_core::archive_index`], one object in the curated bucket) is
//!   read, decides the object's rows, and is replaced with `If-Match`; a
//!   concurrent curate that changed it meanwhile makes this one decide again;
//! - the Parquet objects are written with `If-None-Match: *`: an object
//!   curated before is never written again, so an erasure that rewrote it
//!   stays complete through a redelivered event, a retry or a DLQ redrive.
//!
//! Failures are reported per message (partial batch response), so only those
//! messages return to the queue and, after its retries, to the dead-letter queue.

use aws_lambda_events::event::s3::S3Event;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use gender_aws::s3::{Conditional, S3ObjectStore};
use gender_core::archive_index::{ArchiveDecision, ArchiveIndex, owner_of};
use gender_core::dedup::{CountAll, HitFilter};
use gender_core::layout;
use gender_core::ports::ObjectStore;
use gender_core::seen_set::Horizon;
use gender_lambda::{ConfigError, SdkTimeouts, required_env};
use gender_pipeline::{CurateStream, PipelineError};
use std::time::Duration;

/// SDK limits per call. The largest bodies sent within an attempt are the
/// archive index (up to ~45 MB at 1,000 hits/s) and the curated Parquet (a
/// few MB); a raw object's `GetObject` body, up to Firehose's 128 MB buffer,
/// is read after it: 30 s is ample at S3's tens of MB/s per connection. An operation (the SDK's 3
/// attempts and its pauses) ends within 90 s, far below the function's
/// 300 s timeout, so a stalled call ends in a retryable error and a retry,
/// not in a killed invocation.
pub const SDK_TIMEOUTS: SdkTimeouts = SdkTimeouts {
    attempt: Duration::from_secs(30),
    operation: Duration::from_secs(90),
};

/// Decisions redone after another curate replaced the archive index
/// between this one's read and write, before the message goes back to the
/// queue (which retries it later).
pub const MAX_REDOS: u32 = 8;

#[derive(Debug, Clone)]
pub struct Config {
    /// `CURATED_BUCKET`: where `curated/hits/dt=.../*.parquet` and the
    /// archive index go.
    pub curated_bucket: String,
    /// `KEEP_RAW` (default `true`): keep raw objects after curate; `false` deletes them.
    pub keep_raw: bool,
    /// `DEDUP_HORIZON_SECONDS` (default 3600; `0` turns deduplication off):
    /// the consumer's horizon, so the archive keeps the hits it counts.
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
            keep_raw,
            dedup_horizon: gender_lambda::dedup_horizon_from_env()?,
        })
    }
}

pub struct Curate {
    s3: aws_sdk_s3::Client,
    curated: S3ObjectStore,
    keep_raw: bool,
    dedup_horizon: Option<Horizon>,
}

/// What curating one object did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveReport {
    pub hits: usize,
    pub duplicates: usize,
    pub invalid_lines: usize,
    /// Parquet objects written now.
    pub written: Vec<String>,
    /// Parquet objects that existed already (curated before): left alone.
    pub existing: Vec<String>,
    pub redos: u32,
    /// The object's rows were decided before (a redelivery): same rows.
    pub replayed: bool,
}

/// One raw object named by an S3 event record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawObject {
    pub bucket: String,
    pub key: String,
    pub etag: String,
    /// When S3 created it (the event's `eventTime`): the object's time for
    /// the deduplication horizon, the same on every delivery of the event.
    pub created_ms: i64,
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
            Ok(RawObject {
                bucket,
                key,
                etag,
                created_ms: r.event_time.timestamp_millis(),
            })
        })
        .collect()
}

impl Curate {
    pub fn new(config: Config, sdk: &aws_config::SdkConfig) -> Curate {
        let s3 = gender_aws::s3::client(sdk);
        Curate {
            curated: S3ObjectStore::new(s3.clone(), config.curated_bucket),
            keep_raw: config.keep_raw,
            dedup_horizon: config.dedup_horizon,
            s3,
        }
    }

    /// Curates one object: its rows decided (and the decision recorded in
    /// the archive index), its Parquet objects written unless they exist,
    /// then, unless raw data is kept, the raw object deleted.
    pub async fn curate(&self, object: &RawObject) -> Result<ArchiveReport, PipelineError> {
        let raw = S3ObjectStore::new(self.s3.clone(), &object.bucket);
        let (curated, mut report) = match self.dedup_horizon {
            None => (
                self.stream(&raw, object, &mut CountAll).await?,
                ArchiveReport::default(),
            ),
            Some(horizon) => Box::pin(self.decide(&raw, object, horizon)).await?,
        };
        report.hits = curated.hits;
        report.duplicates = curated.duplicates;
        report.invalid_lines = curated.invalid_lines;
        for file in &curated.files {
            match self
                .curated
                .put_file_if_absent(&file.key, file.temp.path())
                .await?
            {
                Conditional::Written => report.written.push(file.key.clone()),
                Conditional::Refused => report.existing.push(file.key.clone()),
            }
        }
        if !self.keep_raw {
            raw.delete(&object.key).await?;
        }
        Ok(report)
    }

    /// The object's rows, decided against the archive index, and the
    /// decision committed to it (compare-and-set on the index's ETag).
    async fn decide(
        &self,
        raw: &S3ObjectStore,
        object: &RawObject,
        horizon: Horizon,
    ) -> Result<(gender_pipeline::CuratedObject, ArchiveReport), PipelineError> {
        let owner = owner_of(&object.id());
        let key = layout::ARCHIVE_INDEX_KEY;
        let mut redos = 0;
        loop {
            let (mut index, etag) = match self.curated.get_with_etag(key).await? {
                Some((bytes, etag)) => (
                    ArchiveIndex::decode(&bytes).map_err(|e| PipelineError::BadObject {
                        key: key.to_owned(),
                        detail: e.to_string(),
                    })?,
                    Some(etag),
                ),
                None => (ArchiveIndex::default(), None),
            };
            let mut decision: ArchiveDecision = index.decision(owner, object.created_ms, horizon);
            let curated = self.stream(raw, object, &mut decision).await?;
            let replayed = decision.is_replay();
            if !replayed {
                index.commit(owner, object.created_ms, &decision, horizon);
                let stored = self
                    .curated
                    .put_if(key, index.encode(), etag.as_deref())
                    .await?;
                if stored == Conditional::Refused {
                    redos += 1;
                    if redos > MAX_REDOS {
                        return Err(PipelineError::Port(gender_core::PortError::Throttled {
                            what: format!(
                                "archive index changed {redos} times while curating {}",
                                object.key
                            ),
                            source: None,
                        }));
                    }
                    continue;
                }
            }
            let report = ArchiveReport {
                redos,
                replayed,
                ..ArchiveReport::default()
            };
            return Ok((curated, report));
        }
    }

    /// Streams the raw object through the shared curate code with `filter`
    /// deciding which hits are written.
    async fn stream(
        &self,
        raw: &S3ObjectStore,
        object: &RawObject,
        filter: &mut dyn HitFilter,
    ) -> Result<gender_pipeline::CuratedObject, PipelineError> {
        let mut body = raw
            .get_stream(&object.key)
            .await?
            .ok_or_else(|| PipelineError::RawMissing(object.key.clone()))?;
        let mut stream = CurateStream::with_filter(&object.key, filter);
        while let Some(chunk) = body.next_chunk().await? {
            stream.push(&chunk)?;
        }
        let curated = stream.finish()?;
        if let Some((line, error)) = &curated.first_invalid {
            tracing::warn!(key = %object.key, invalid = curated.invalid_lines, first_line = line, %error, "raw object has invalid lines");
        }
        Ok(curated)
    }

    async fn curate_logged(&self, object: &RawObject) -> Result<(), PipelineError> {
        // Boxed: the nested retried S3 calls are too deep for the compiler's
        // layout query otherwise.
        match Box::pin(self.curate(object)).await {
            Ok(r) => {
                tracing::info!(key = %object.key, hits = r.hits, duplicates = r.duplicates, invalid_lines = r.invalid_lines, written = r.written.len(), existing = r.existing.len(), redos = r.redos, replayed = r.replayed, "curated");
                Ok(())
            }
            // Deleted after an earlier successful curate (KEEP_RAW=false), or
            // never there: either way there is nothing left to archive.
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
                        if let Err(e) = self.curate_logged(object).await {
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
}
