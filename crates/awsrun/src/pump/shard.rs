//! One reader of one shard, as the event source mapping and Firehose each
//! hold their own: an iterator from the oldest record, `GetRecords` pages
//! through the fault proxy (a throttled poll is simply tried again at the
//! next one, as both services do).

use aws_sdk_kinesis::types::{Record, ShardIteratorType};
use std::time::Duration;

pub struct ShardReader {
    client: aws_sdk_kinesis::Client,
    stream: String,
    pub shard_id: String,
    iterator: Option<String>,
    /// `GetRecords` calls that failed (after the SDK's retries).
    pub failed_polls: u64,
}

impl ShardReader {
    pub fn new(client: aws_sdk_kinesis::Client, stream: &str, shard_id: &str) -> ShardReader {
        ShardReader {
            client,
            stream: stream.to_owned(),
            shard_id: shard_id.to_owned(),
            iterator: None,
            failed_polls: 0,
        }
    }

    /// The shard ids of `stream`, retried through faults.
    pub async fn shards(client: &aws_sdk_kinesis::Client, stream: &str) -> Vec<String> {
        for _ in 0..50 {
            if let Ok(out) = client.list_shards().stream_name(stream).send().await {
                return out
                    .shards()
                    .iter()
                    .map(|s| s.shard_id().to_owned())
                    .collect();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("ListShards of {stream} failed 50 times");
    }

    /// Up to `limit` records after the last ones returned; empty when the
    /// poll failed (counted) or found nothing.
    pub async fn poll(&mut self, limit: i32) -> Vec<Record> {
        let iterator = match &self.iterator {
            Some(iterator) => iterator.clone(),
            None => match self
                .client
                .get_shard_iterator()
                .stream_name(&self.stream)
                .shard_id(&self.shard_id)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
            {
                Ok(out) => out.shard_iterator.expect("an iterator"),
                Err(_) => {
                    self.failed_polls += 1;
                    return Vec::new();
                }
            },
        };
        match self
            .client
            .get_records()
            .shard_iterator(&iterator)
            .limit(limit)
            .send()
            .await
        {
            Ok(page) => {
                self.iterator = page.next_shard_iterator.clone().or(Some(iterator));
                page.records
            }
            Err(_) => {
                self.iterator = Some(iterator);
                self.failed_polls += 1;
                Vec::new()
            }
        }
    }
}
