//! Ingest on Kinesis: `PutRecords` with partition key = clientid. Records
//! that Kinesis reports as failed inside a call are retried with backoff;
//! only records finally stored count as accepted (SPEC 3).

use crate::error::is_retryable_sdk_error;
use crate::{AwsError, Backoff};
use async_trait::async_trait;
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use gender_core::PortError;
use gender_core::ports::{HitLog, LogRecord};

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

#[async_trait]
impl HitLog for KinesisHitLog {
    async fn append(&self, records: Vec<LogRecord>) -> Result<Vec<usize>, PortError> {
        self.put_all(&records).await.map_err(Into::into)
    }
}
