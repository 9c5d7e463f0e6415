//! The stream consumer (SPEC 19): the Kinesis event source mapping hands it
//! batches of one shard's records; it applies each visitor's hits to the
//! visitor's profile in DynamoDB, exactly once (SPEC 6, 15), about a second
//! after the `202`. Firehose and curate keep the raw and Parquet archive;
//! curate no longer touches the counters, so nothing counts twice.
//!
//! Per batch: decode every record (a packed record holds one visitor's hits
//! of one date), read the visitors' counting state consistently, decide each
//! visitor's write with [`gender_core::stream::decide`] and make it with one
//! conditional `UpdateItem` ([`gender_aws::counting`]). A record that is not
//! a packed record of valid hits (a poison record) goes to the dead-letter
//! queue with its data and is not counted: it never blocks the shard. A
//! visitor whose write still fails after the retries is reported as a
//! batch item failure at its earliest record, so the mapping retries from
//! there; what was applied is skipped on the retry by the stored stream
//! position.

use base64::Engine;
use futures::{StreamExt, stream};
use gender_aws::AwsError;
use gender_aws::counting::Written;
use gender_aws::dead_letter::{DeadLetters, MAX_MESSAGE_BYTES};
use gender_aws::dynamodb::DynamoProfiles;
use gender_core::seen_set::Horizon;
use gender_core::stream::{
    CountingState, SequenceNumber, StreamHit, StreamPosition, decide, unpack_record,
};
use gender_lambda::{ConfigError, SdkTimeouts, required_env};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

/// SDK limits per call: a `BatchGetItem` of 100 items or an `UpdateItem`
/// answers in milliseconds; a call stuck for seconds is retried rather
/// than waited for, well inside the function's timeout (terraform/:
/// `lambda_timeout_seconds.consumer`).
pub const SDK_TIMEOUTS: SdkTimeouts = SdkTimeouts {
    attempt: Duration::from_secs(2),
    operation: Duration::from_secs(6),
};

/// Visitors written at once. A batch of a busy shard holds a few thousand.
const CONCURRENT_WRITES: usize = 32;

/// Decisions redone for one visitor after its item changed under the
/// consumer (an erasure between the read and the write, say) before the
/// visitor is reported as failed and its records retried.
pub const MAX_REDOS: u32 = 4;

#[derive(Debug, Clone)]
pub struct Config {
    /// `PROFILES_TABLE_NAME`: the DynamoDB profiles table.
    pub table_name: String,
    /// `DEAD_LETTER_QUEUE_URL`: where poison records go (the same queue is
    /// the mapping's on-failure destination).
    pub dead_letter_queue_url: String,
    /// `DEDUP_HORIZON_SECONDS` (default 3600; `0` off): a hit whose
    /// `(clientid, hitid)` was counted within the horizon is not counted
    /// again (SPEC 15). Measured in arrival time of the stream's records.
    pub dedup_horizon: Option<Horizon>,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Ok(Config {
            table_name: required_env("PROFILES_TABLE_NAME")?,
            dead_letter_queue_url: required_env("DEAD_LETTER_QUEUE_URL")?,
            dedup_horizon: gender_lambda::dedup_horizon_from_env()?,
        })
    }
}

/// The part of the Kinesis event the consumer reads. Not
/// `aws_lambda_events`' type: the arrival time is read to the millisecond
/// (it decides a missing timestamp and the horizon, as in the transform).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct StreamEvent {
    #[serde(rename = "Records")]
    pub records: Vec<StreamEventRecord>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamEventRecord {
    pub kinesis: KinesisData,
    /// `shardId-…:<sequence number>`.
    #[serde(rename = "eventID")]
    pub event_id: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KinesisData {
    pub partition_key: String,
    pub sequence_number: String,
    /// Base64.
    pub data: String,
    /// Epoch seconds with a millisecond fraction.
    pub approximate_arrival_timestamp: f64,
}

impl KinesisData {
    /// The arrival time in epoch milliseconds (rounded: the float holds
    /// the milliseconds Kinesis recorded, not always exactly).
    pub fn arrival_ms(&self) -> i64 {
        (self.approximate_arrival_timestamp * 1000.0).round() as i64
    }
}

/// The answer the mapping reads with `ReportBatchItemFailures`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamBatchResponse {
    pub batch_item_failures: Vec<ItemFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemFailure {
    /// The failed record's sequence number.
    pub item_identifier: String,
}

/// What one batch came to (logged once per batch, returned for tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub records: usize,
    pub hits: u64,
    pub counted: u64,
    pub duplicates: u64,
    pub replayed: u64,
    pub visitors: usize,
    pub poison: usize,
    pub redos: u32,
    pub failed_visitors: usize,
    /// Milliseconds from the batch's oldest arrival to its handling.
    pub oldest_age_ms: i64,
}

pub struct Consumer {
    profiles: DynamoProfiles,
    dead_letters: DeadLetters,
    horizon: Option<Horizon>,
}

/// A record the consumer cannot count, as its dead-letter message.
#[derive(Debug, Serialize)]
struct PoisonMessage<'a> {
    reason: String,
    shard: &'a str,
    sequence_number: &'a str,
    partition_key: &'a str,
    approximate_arrival_timestamp_ms: i64,
    /// The record's data as it came (base64), cut to fit the message.
    data: &'a str,
    data_truncated: bool,
}

/// One visitor's part of a batch.
struct Visitor {
    clientid: String,
    hits: Vec<StreamHit>,
}

impl Consumer {
    pub fn new(config: Config, sdk: &aws_config::SdkConfig) -> Consumer {
        Consumer {
            profiles: DynamoProfiles::new(aws_sdk_dynamodb::Client::new(sdk), config.table_name),
            dead_letters: DeadLetters::new(
                aws_sdk_sqs::Client::new(sdk),
                config.dead_letter_queue_url,
            ),
            horizon: config.dedup_horizon,
        }
    }

    /// The same consumer with other retry pauses (tests shorten them).
    pub fn with_backoff(mut self, backoff: gender_aws::Backoff) -> Consumer {
        self.profiles = self.profiles.with_backoff(backoff);
        self.dead_letters = self.dead_letters.with_backoff(backoff);
        self
    }

    pub async fn handle(&self, event: StreamEvent) -> StreamBatchResponse {
        self.handle_at(event, gender_core::time::system_now_ms())
            .await
            .0
    }

    /// Handles one batch as if at `now_ms` (the `updated_at` it writes).
    pub async fn handle_at(
        &self,
        event: StreamEvent,
        now_ms: i64,
    ) -> (StreamBatchResponse, BatchReport) {
        let mut report = BatchReport {
            records: event.records.len(),
            ..BatchReport::default()
        };
        let records = &event.records;
        let mut positions: Vec<StreamPosition> = Vec::with_capacity(records.len());
        // The earliest record that must be retried.
        let mut first_failed: Option<usize> = None;
        let mut visitors: Vec<Visitor> = Vec::new();
        let mut index_of: HashMap<String, usize> = HashMap::new();
        let mut oldest_arrival = i64::MAX;

        for (i, record) in records.iter().enumerate() {
            let arrival_ms = record.kinesis.arrival_ms();
            oldest_arrival = oldest_arrival.min(arrival_ms);
            let shard = record
                .event_id
                .split_once(':')
                .map_or(record.event_id.as_str(), |(shard, _)| shard);
            let sequence = SequenceNumber::parse(&record.kinesis.sequence_number);
            let decoded = match &sequence {
                None => Err("the sequence number is not a number".to_owned()),
                Some(_) => base64::engine::general_purpose::STANDARD
                    .decode(record.kinesis.data.as_bytes())
                    .map_err(|e| format!("data is not base64: {e}"))
                    .and_then(|bytes| {
                        unpack_record(&bytes, arrival_ms)
                            .map_err(|e| format!("not a hit record: {e}"))
                    }),
            };
            positions.push(StreamPosition {
                shard: shard.to_owned(),
                // A record without a valid sequence number is parked below
                // and never stored as a visitor's position.
                sequence: sequence.unwrap_or_else(|| SequenceNumber::parse("0").expect("a number")),
            });
            let hits = match decoded {
                Ok(hits) => hits,
                Err(reason) => {
                    report.poison += 1;
                    if let Err(error) = self.park(record, shard, arrival_ms, reason).await {
                        tracing::error!(%error, shard, sequence_number = %record.kinesis.sequence_number, "poison record could not be sent to the dead-letter queue; the batch is retried from it");
                        first_failed = Some(first_failed.map_or(i, |f| f.min(i)));
                    }
                    continue;
                }
            };
            report.hits += hits.len() as u64;
            for hit in &hits {
                let at = *index_of.entry(hit.clientid.to_string()).or_insert_with(|| {
                    visitors.push(Visitor {
                        clientid: hit.clientid.to_string(),
                        hits: Vec::new(),
                    });
                    visitors.len() - 1
                });
                visitors[at].hits.push(StreamHit::of(hit, arrival_ms, i));
            }
        }
        report.visitors = visitors.len();
        if oldest_arrival != i64::MAX {
            report.oldest_age_ms = now_ms - oldest_arrival;
        }

        let clientids: Vec<String> = visitors.iter().map(|v| v.clientid.clone()).collect();
        let results: Vec<(usize, Result<Outcome, AwsError>)> = match self
            .profiles
            .counting_states(&clientids)
            .await
        {
            Ok(mut states) => {
                stream::iter(visitors.iter().enumerate().map(|(i, visitor)| {
                    let state = states.remove(&visitor.clientid).unwrap_or_default();
                    let positions = &positions;
                    async move { (i, self.apply(visitor, state, positions, now_ms).await) }
                }))
                .buffer_unordered(CONCURRENT_WRITES)
                .collect()
                .await
            }
            Err(error) => {
                tracing::error!(%error, visitors = visitors.len(), "reading the visitors' state failed; the batch is retried");
                visitors
                    .iter()
                    .enumerate()
                    .map(|(i, _)| {
                        (
                            i,
                            Err(AwsError::Exhausted {
                                operation: "BatchGetItem",
                                attempts: 0,
                                last: error.to_string(),
                            }),
                        )
                    })
                    .collect()
            }
        };
        for (i, result) in results {
            match result {
                Ok(outcome) => {
                    report.counted += outcome.counted;
                    report.duplicates += outcome.duplicates;
                    report.replayed += outcome.replayed;
                    report.redos += outcome.redos;
                }
                Err(error) => {
                    report.failed_visitors += 1;
                    let earliest = visitors[i].hits.iter().map(|h| h.record).min();
                    if let Some(earliest) = earliest {
                        first_failed = Some(first_failed.map_or(earliest, |f| f.min(earliest)));
                    }
                    tracing::warn!(%error, retryable = error.retryable(), "a visitor's write failed; its records are retried");
                }
            }
        }

        let mut response = StreamBatchResponse::default();
        if let Some(first) = first_failed {
            response.batch_item_failures.push(ItemFailure {
                item_identifier: records[first].kinesis.sequence_number.clone(),
            });
        }
        tracing::info!(
            records = report.records,
            hits = report.hits,
            counted = report.counted,
            duplicates = report.duplicates,
            replayed = report.replayed,
            visitors = report.visitors,
            poison = report.poison,
            redos = report.redos,
            failed_visitors = report.failed_visitors,
            oldest_age_ms = report.oldest_age_ms,
            "batch applied"
        );
        (response, report)
    }

    /// Decides and writes one visitor, deciding again from the item as it
    /// is when the write finds it changed.
    async fn apply(
        &self,
        visitor: &Visitor,
        mut state: CountingState,
        positions: &[StreamPosition],
        now_ms: i64,
    ) -> Result<Outcome, AwsError> {
        let mut redos = 0;
        loop {
            let decision = decide(&visitor.hits, positions, &state, self.horizon);
            let Some(update) = decision.update else {
                return Ok(Outcome {
                    counted: 0,
                    duplicates: 0,
                    replayed: decision.replayed,
                    redos,
                });
            };
            match self
                .profiles
                .write_counting(&visitor.clientid, &update, now_ms)
                .await?
            {
                Written::Applied => {
                    return Ok(Outcome {
                        counted: update.counted(),
                        duplicates: update.duplicates,
                        replayed: decision.replayed,
                        redos,
                    });
                }
                Written::Conflict(now) if redos < MAX_REDOS => {
                    redos += 1;
                    state = now;
                }
                Written::Conflict(_) => {
                    return Err(AwsError::Exhausted {
                        operation: "UpdateItem",
                        attempts: redos + 1,
                        last: "the item kept changing between read and write".into(),
                    });
                }
            }
        }
    }

    async fn park(
        &self,
        record: &StreamEventRecord,
        shard: &str,
        arrival_ms: i64,
        reason: String,
    ) -> Result<(), AwsError> {
        let data = record.kinesis.data.as_str();
        // Room for the rest of the message; a hit record is far smaller.
        let keep = data.len().min(MAX_MESSAGE_BYTES - 4096);
        let message = PoisonMessage {
            reason,
            shard,
            sequence_number: &record.kinesis.sequence_number,
            partition_key: &record.kinesis.partition_key,
            approximate_arrival_timestamp_ms: arrival_ms,
            data: &data[..keep],
            data_truncated: keep < data.len(),
        };
        let body = serde_json::to_string(&message).expect("serializable");
        tracing::warn!(shard, sequence_number = %record.kinesis.sequence_number, reason = %message.reason, "poison record sent to the dead-letter queue");
        self.dead_letters.send(body).await
    }
}

struct Outcome {
    counted: u64,
    duplicates: u64,
    replayed: u64,
    redos: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_event_lambda_sends() {
        let event: StreamEvent =
            serde_json::from_str(&gender_testkit::fixture("kinesis-stream-batch.json")).unwrap();
        assert_eq!(event.records.len(), 2);
        let first = &event.records[0];
        assert_eq!(first.kinesis.arrival_ms(), 1_795_514_400_123);
        assert!(first.event_id.starts_with("shardId-000000000000:"));
        let body = serde_json::to_value(StreamBatchResponse {
            batch_item_failures: vec![ItemFailure {
                item_identifier: "42".into(),
            }],
        })
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"batchItemFailures": [{"itemIdentifier": "42"}]})
        );
    }
}
