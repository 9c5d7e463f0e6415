//! Ingest on Kinesis: `PutRecords` with partition key = clientid. Records
//! that Kinesis reports as failed inside a call are retried with backoff;
//! only records finally stored count as accepted (SPEC 3).
//!
//! The hits of one request that share a visitor and an event date go into
//! one Kinesis record, as NDJSON lines (KPL-style aggregation): Kinesis bills
//! each record rounded up to 1 KB and Firehose to 5 KB, so a request with a
//! visitor's three page views costs one record instead of three. The
//! transform and the stream consumer unpack them (`gender_core::stream`).
//! One date per record because the transform gives each record one `dt`
//! partition; one visitor per record keeps the partition key its clientid,
//! so a visitor's hits stay in one shard, in order.

use crate::error::is_retryable_sdk_error;
use crate::{AwsError, Backoff};
use async_trait::async_trait;
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use gender_core::PortError;
use gender_core::ports::{HitLog, LogRecord};
use gender_core::{Date, HitError};

pub struct KinesisHitLog {
    client: Client,
    stream_name: String,
    backoff: Backoff,
}

impl KinesisHitLog {
    pub fn new(client: Client, stream_name: impl Into<String>) -> Self {
        KinesisHitLog {
            client,
            stream_name: stream_name.into(),
            backoff: Backoff::default(),
        }
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Returns the indexes still unstored after every attempt.
    pub async fn put_all(&self, records: &[LogRecord]) -> Result<Vec<usize>, AwsError> {
        let mut pending: Vec<usize> = (0..records.len()).collect();
        let mut last_error = String::new();
        for attempt in 0..self.backoff.attempts {
            if pending.is_empty() {
                break;
            }
            if attempt > 0 {
                self.backoff.pause(attempt).await;
            }
            let entries = pending
                .iter()
                .map(|&i| {
                    PutRecordsRequestEntry::builder()
                        .data(Blob::new(records[i].data.clone()))
                        .partition_key(&records[i].partition_key)
                        .build()
                        .map_err(|e| AwsError::sdk("PutRecords", false, e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let response = self
                .client
                .put_records()
                .stream_name(&self.stream_name)
                .set_records(Some(entries))
                .send()
                .await;
            match response {
                Ok(output) => {
                    // Results come back in request order; keep the failed ones.
                    let failed: Vec<usize> = output
                        .records()
                        .iter()
                        .zip(&pending)
                        .filter(|(result, _)| result.error_code().is_some())
                        .map(|(_, &i)| i)
                        .collect();
                    if let Some(code) = output.records().iter().find_map(|r| r.error_code()) {
                        last_error = code.to_owned();
                        tracing::warn!(
                            failed = failed.len(),
                            code,
                            attempt,
                            "PutRecords partial failure; retrying those records"
                        );
                    }
                    pending = failed;
                }
                Err(err) => {
                    let retryable = is_retryable_sdk_error(&err);
                    last_error = format!("{}", aws_sdk_kinesis::error::DisplayErrorContext(&err));
                    tracing::warn!(error = %last_error, attempt, retryable, "PutRecords call failed");
                    if !retryable {
                        return match pending.len() == records.len() {
                            true => Err(AwsError::sdk("PutRecords", false, err)),
                            false => Ok(pending),
                        };
                    }
                }
            }
        }
        if !pending.is_empty() && pending.len() == records.len() {
            return Err(AwsError::Exhausted {
                operation: "PutRecords",
                attempts: self.backoff.attempts,
                last: last_error,
            });
        }
        Ok(pending)
    }
}

/// A packed record stays far below Kinesis' 1 MiB record limit (a request
/// is at most 500 hits of at most ~250 bytes each; this is a guard).
const MAX_PACKED_BYTES: usize = 256 * 1024;

/// The Kinesis records for a request's hits: hits with the same partition
/// key and event date (a hit without timestamp takes its record's arrival
/// time, the same for all of them) share one record, in request order. Each
/// packed record comes with the indexes of the hits it holds.
pub fn pack(records: Vec<LogRecord>) -> Vec<(LogRecord, Vec<usize>)> {
    let mut packed: Vec<(LogRecord, Vec<usize>)> = Vec::new();
    let mut open: std::collections::HashMap<(String, Option<Date>), usize> =
        std::collections::HashMap::new();
    for (index, record) in records.into_iter().enumerate() {
        // The API stored valid hits only; a record that does not parse (not
        // from the API) travels alone, as before.
        let date = match gender_core::hit::parse_hit(&record.data).map(|w| w.into_raw_hit()) {
            Ok(Ok(hit)) => Some(Some(Date::of_millis(hit.event_ms))),
            Ok(Err(HitError::MissingTimestamp)) => Some(None),
            _ => None,
        };
        let Some(date) = date else {
            packed.push((record, vec![index]));
            continue;
        };
        let key = (record.partition_key.clone(), date);
        match open.get(&key) {
            Some(&at) if packed[at].0.data.len() + 1 + record.data.len() <= MAX_PACKED_BYTES => {
                let (target, indexes) = &mut packed[at];
                target.data.push(b'\n');
                target.data.extend_from_slice(&record.data);
                indexes.push(index);
            }
            _ => {
                open.insert(key, packed.len());
                packed.push((record, vec![index]));
            }
        }
    }
    packed
}

#[async_trait]
impl HitLog for KinesisHitLog {
    async fn append(&self, records: Vec<LogRecord>) -> Result<Vec<usize>, PortError> {
        let (packed, members): (Vec<LogRecord>, Vec<Vec<usize>>) =
            pack(records).into_iter().unzip();
        let failed = self.put_all(&packed).await?;
        let mut hits: Vec<usize> = failed
            .into_iter()
            .flat_map(|i| members[i].iter().copied())
            .collect();
        hits.sort_unstable();
        Ok(hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(clientid: &str, timestamp: Option<&str>, hitid: &str) -> LogRecord {
        let time = timestamp.map_or(String::new(), |t| format!(",\"timestamp\":\"{t}\""));
        LogRecord {
            partition_key: clientid.to_owned(),
            data: format!(
                "{{\"clientid\":\"{clientid}\",\"pageGender\":\"M\"{time},\"hitid\":\"{hitid}\"}}"
            )
            .into_bytes(),
        }
    }

    #[test]
    fn hits_of_one_visitor_and_date_share_a_record_in_request_order() {
        let records = vec![
            record("a", Some("2026-11-24T10:00:00.000Z"), "1"),
            record("b", Some("2026-11-24T10:00:00.000Z"), "2"),
            record("a", Some("2026-11-24T11:00:00.000Z"), "3"),
            record("a", Some("2026-11-23T23:00:00.000Z"), "4"), // another date
            record("a", None, "5"),                             // arrival time
            record("a", None, "6"),
        ];
        let packed = pack(records);
        let members: Vec<&[usize]> = packed.iter().map(|(_, m)| m.as_slice()).collect();
        assert_eq!(members, [&[0, 2][..], &[1], &[3], &[4, 5]]);
        let first = String::from_utf8(packed[0].0.data.clone()).unwrap();
        assert_eq!(first.lines().count(), 2);
        assert!(first.lines().next().unwrap().contains("\"hitid\":\"1\""));
        assert_eq!(packed[0].0.partition_key, "a");
        // What is packed unpacks to the same hits, as the consumer reads it.
        let hits =
            gender_core::stream::unpack_record(&packed[0].0.data, 1_795_514_400_000).unwrap();
        assert_eq!(
            hits.iter()
                .map(|h| h.hitid.as_deref().unwrap())
                .collect::<Vec<_>>(),
            ["1", "3"]
        );
    }

    #[test]
    fn a_record_that_is_not_a_hit_travels_alone() {
        let odd = LogRecord {
            partition_key: "a".into(),
            data: b"not json".to_vec(),
        };
        let packed = pack(vec![odd.clone(), odd]);
        assert_eq!(packed.len(), 2);
    }
}
