//! Lambda's event source mapping on the Kinesis stream -> the stream
//! consumer, as `terraform/modules/consumer_trigger` configures it:
//!
//! - one poller per shard (parallelization factor 1), polling every
//!   [`POLL`] (Lambda's documented base rate for a standard iterator: one
//!   `GetRecords` per shard per second), batching window 0: a batch is
//!   invoked as soon as a poll found records, up to `batch_size` records;
//!   the next batch of a shard waits for the previous one (ordering);
//! - `ReportBatchItemFailures`: the records before the reported sequence
//!   number are checkpointed, the batch is retried from it after the next
//!   poll interval;
//! - `maximum_retry_attempts` retries of the same first record, then
//!   bisection (`bisect_batch_on_function_error`): the batch is halved,
//!   down to one record, which then goes to the on-failure destination
//!   (an SQS message with `KinesisBatchInfo`, the shape Lambda sends) and
//!   is skipped;
//! - at-least-once: with the fault rate, a batch's answer is lost after
//!   the function ran (a timeout, a throttled response) and the same batch
//!   is invoked again.

use super::Stop;
use super::shard::ShardReader;
use gender_consumer::{Consumer, StreamEvent};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The mapping's poll interval per shard.
pub const POLL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct EsmConfig {
    /// `consumer_batch_size` (1000).
    pub batch_size: usize,
    /// `consumer_maximum_retry_attempts` (10).
    pub max_retries: u32,
    /// The chance that a batch is invoked twice (its answer lost).
    pub redeliver_rate: f64,
    pub seed: u64,
    pub on_failure_queue: String,
}

#[derive(Debug, Default, Clone)]
pub struct EsmStats {
    pub invocations: u64,
    pub records: u64,
    pub partial_failures: u64,
    pub bisections: u64,
    pub redeliveries: u64,
    pub sent_to_on_failure: u64,
    pub failed_polls: u64,
    /// Shards whose last poll found nothing and that hold no records.
    pub idle_shards: usize,
}

pub struct Esm {
    pub stats: Arc<Mutex<EsmStats>>,
    pub shards: usize,
}

impl Esm {
    /// Starts one poller per shard of the stream, on a thread of its own
    /// (the consumer's batch future is not `Send`-provable for
    /// `tokio::spawn`; Lambda's runtime does not need it to be). The
    /// pollers' AWS calls use `pump_sdk`, the consumer's `consumer_sdk`.
    pub fn start(
        pump_sdk: aws_config::SdkConfig,
        consumer_sdk: aws_config::SdkConfig,
        consumer_config: gender_consumer::Config,
        config: EsmConfig,
        stop: Stop,
    ) -> Esm {
        let stats = Arc::new(Mutex::new(EsmStats::default()));
        let (shards_tx, shards_rx) = std::sync::mpsc::channel();
        let shared = stats.clone();
        std::thread::Builder::new()
            .name("esm".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("the mapping's runtime");
                runtime.block_on(async move {
                    let kinesis = aws_sdk_kinesis::Client::new(&pump_sdk);
                    let sqs = aws_sdk_sqs::Client::new(&pump_sdk);
                    let consumer = Arc::new(Consumer::new(consumer_config, &consumer_sdk));
                    let shards = ShardReader::shards(&kinesis, crate::stack::names::STREAM).await;
                    let _ = shards_tx.send(shards.len());
                    let pollers = shards.iter().enumerate().map(|(i, shard)| {
                        let poller = ShardPoller {
                            reader: ShardReader::new(
                                kinesis.clone(),
                                crate::stack::names::STREAM,
                                shard,
                            ),
                            consumer: consumer.clone(),
                            sqs: sqs.clone(),
                            config: config.clone(),
                            stats: shared.clone(),
                            rng: fastrand::Rng::with_seed(config.seed.wrapping_add(i as u64)),
                        };
                        poller.run(stop.clone())
                    });
                    futures::future::join_all(pollers).await;
                });
            })
            .expect("the mapping's thread");
        let shards = shards_rx.recv().expect("the stream's shards");
        Esm { stats, shards }
    }

    /// Every shard read to its end and applied.
    pub fn idle(&self) -> bool {
        self.stats.lock().unwrap().idle_shards == self.shards
    }
}

struct ShardPoller {
    reader: ShardReader,
    consumer: Arc<Consumer>,
    sqs: aws_sdk_sqs::Client,
    config: EsmConfig,
    stats: Arc<Mutex<EsmStats>>,
    rng: fastrand::Rng,
}

impl ShardPoller {
    async fn run(mut self, stop: Stop) {
        let mut pending: VecDeque<aws_sdk_kinesis::types::Record> = VecDeque::new();
        let mut window = self.config.batch_size;
        let mut attempts = 0u32;
        let mut was_idle = false;
        let mut next = Instant::now();
        while !stop.stopped() {
            tokio::time::sleep_until(next.into()).await;
            next += POLL;
            let before = self.reader.failed_polls;
            let room = self.config.batch_size.saturating_sub(pending.len());
            let polled = if room > 0 {
                self.reader.poll(room as i32).await
            } else {
                Vec::new()
            };
            let found = !polled.is_empty();
            pending.extend(polled);
            {
                let mut stats = self.stats.lock().unwrap();
                stats.failed_polls += self.reader.failed_polls - before;
            }
            // Batches follow one another until one fails or the records run out.
            while !pending.is_empty() {
                let n = window.min(pending.len());
                let batch: Vec<_> = pending.iter().take(n).cloned().collect();
                let event: StreamEvent = serde_json::from_value(gender_testkit::esm::event(
                    &self.reader.shard_id,
                    &batch,
                    crate::stack::names::STREAM_ARN,
                ))
                .expect("the mapping's event is the consumer's event");
                let mut response = self.consumer.handle(event.clone()).await;
                let redelivered = self.rng.f64() < self.config.redeliver_rate;
                if redelivered {
                    response = self.consumer.handle(event).await;
                }
                {
                    let mut stats = self.stats.lock().unwrap();
                    stats.invocations += 1 + u64::from(redelivered);
                    stats.redeliveries += u64::from(redelivered);
                    stats.records += n as u64;
                    stats.partial_failures += u64::from(!response.batch_item_failures.is_empty());
                }
                let Some(failure) = response.batch_item_failures.first() else {
                    pending.drain(..n);
                    window = self.config.batch_size;
                    attempts = 0;
                    continue;
                };
                let at = batch
                    .iter()
                    .position(|r| r.sequence_number() == failure.item_identifier)
                    .unwrap_or(0);
                pending.drain(..at);
                attempts = if at > 0 { 0 } else { attempts + 1 };
                if attempts > self.config.max_retries {
                    attempts = 0;
                    if window > 1 {
                        window = window.min(n).div_ceil(2);
                        self.stats.lock().unwrap().bisections += 1;
                    } else {
                        self.stats.lock().unwrap().sent_to_on_failure += 1;
                        let record = pending.pop_front().expect("the failed record");
                        self.on_failure(&record).await;
                        window = self.config.batch_size;
                    }
                }
                break;
            }
            let idle = pending.is_empty() && !found && self.reader.failed_polls == before;
            if idle != was_idle {
                let mut stats = self.stats.lock().unwrap();
                if idle {
                    stats.idle_shards += 1;
                } else {
                    stats.idle_shards -= 1;
                }
                was_idle = idle;
            }
        }
    }

    /// What Lambda sends to the on-failure destination for a record it gave
    /// up on (the record itself stays in the stream).
    async fn on_failure(&self, record: &aws_sdk_kinesis::types::Record) {
        let arrival = record
            .approximate_arrival_timestamp()
            .map(|t| t.to_string())
            .unwrap_or_default();
        let body = serde_json::json!({
            "requestContext": {
                "requestId": format!("awsrun-{}", record.sequence_number()),
                "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:gs-run-consumer",
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": self.config.max_retries + 1,
            },
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": null},
            "version": "1.0",
            "timestamp": gender_core::time::format_rfc3339_millis(gender_core::time::system_now_ms()),
            "KinesisBatchInfo": {
                "shardId": self.reader.shard_id,
                "startSequenceNumber": record.sequence_number(),
                "endSequenceNumber": record.sequence_number(),
                "approximateArrivalOfFirstRecord": arrival,
                "approximateArrivalOfLastRecord": arrival,
                "batchSize": 1,
                "streamArn": crate::stack::names::STREAM_ARN,
            },
        });
        for _ in 0..20 {
            let sent = self
                .sqs
                .send_message()
                .queue_url(&self.config.on_failure_queue)
                .message_body(body.to_string())
                .send()
                .await;
            if sent.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the on-failure destination refused a record 20 times");
    }
}
