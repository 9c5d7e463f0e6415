//! Kinesis Data Firehose, as `terraform/modules/firehose` configures it:
//!
//! - its own reader per shard (a Kinesis source reads the stream apart
//!   from the event source mapping), polling every second;
//! - the processor buffer (`BufferSizeInMBs` 0.25, `BufferIntervalInSeconds`
//!   10, the latter scaled): records collected until either is reached,
//!   then the transform invoked with a Firehose-shaped event (`recordId`,
//!   base64 `data`, `approximateArrivalTimestamp`, `kinesisRecordMetadata`
//!   with shard, partition key, sequence number and arrival);
//! - dynamic partitioning: each `Ok` record's decoded data appended to the
//!   buffer of its `metadata.partitionKeys.dt`; `ProcessingFailed` records
//!   to the error prefix, in Firehose's error-record JSON;
//! - the S3 buffer (64 MB / 60 s, scaled) per partition, written as
//!   `raw/dt=D/<stream>-1-<yyyy-MM-dd-HH-mm-ss>-<random>` (Firehose's
//!   object name), retried through `SlowDown` as Firehose retries S3;
//! - source backup: every source record, gzip'ed, under
//!   `source/dt=<arrival date>/` of the backup bucket;
//! - each raw object written announces itself through [`S3Events`] (the
//!   bucket's notification to the curate queue).

use super::s3events::S3Events;
use super::shard::ShardReader;
use super::{Stop, scaled};
use crate::stack::names;
use base64::Engine;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The processor buffer: `firehose_processor_buffer_size_mb`.
pub const PROCESSOR_BUFFER_BYTES: usize = 256 * 1024;
/// `firehose_processor_buffer_interval_seconds`, before scaling.
pub const PROCESSOR_INTERVAL: Duration = Duration::from_secs(10);
/// The S3 buffer: `firehose_buffering_size_mb`.
pub const S3_BUFFER_BYTES: usize = 64 * 1024 * 1024;
/// `firehose_buffering_interval_seconds`, before scaling.
pub const S3_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, Default, Clone)]
pub struct FirehoseStats {
    pub records: u64,
    pub transform_invocations: u64,
    pub ok: u64,
    pub processing_failed: u64,
    pub raw_objects: u64,
    pub error_objects: u64,
    pub backup_objects: u64,
    pub s3_retries: u64,
    pub failed_polls: u64,
    /// Every shard read to its end and every buffer written.
    pub idle: bool,
}

struct Buffer {
    bytes: Vec<u8>,
    since: Instant,
}

impl Buffer {
    fn new() -> Buffer {
        Buffer {
            bytes: Vec::new(),
            since: Instant::now(),
        }
    }
}

pub struct Firehose {
    pub stats: Arc<Mutex<FirehoseStats>>,
}

impl Firehose {
    pub async fn start(
        kinesis: aws_sdk_kinesis::Client,
        s3: aws_sdk_s3::Client,
        events: S3Events,
        stop: Stop,
    ) -> (Firehose, tokio::task::JoinHandle<()>) {
        let stats = Arc::new(Mutex::new(FirehoseStats::default()));
        let readers = ShardReader::shards(&kinesis, names::STREAM)
            .await
            .iter()
            .map(|shard| ShardReader::new(kinesis.clone(), names::STREAM, shard))
            .collect();
        let delivery = Delivery {
            readers,
            s3,
            events,
            stats: stats.clone(),
            processor: Vec::new(),
            processor_bytes: 0,
            processor_since: Instant::now(),
            partitions: BTreeMap::new(),
            errors: None,
            backup: None,
            objects: 0,
        };
        (Firehose { stats }, tokio::spawn(delivery.run(stop)))
    }

    pub fn idle(&self) -> bool {
        self.stats.lock().unwrap().idle
    }
}

struct Delivery {
    readers: Vec<ShardReader>,
    s3: aws_sdk_s3::Client,
    events: S3Events,
    stats: Arc<Mutex<FirehoseStats>>,
    /// The processor buffer: (shard, record).
    processor: Vec<(String, aws_sdk_kinesis::types::Record)>,
    processor_bytes: usize,
    processor_since: Instant,
    /// The S3 buffers: one per `dt`.
    partitions: BTreeMap<String, Buffer>,
    errors: Option<Buffer>,
    backup: Option<Buffer>,
    objects: u64,
}

impl Delivery {
    async fn run(mut self, stop: Stop) {
        let mut next_poll = Instant::now();
        while !stop.stopped() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut found = false;
            if Instant::now() >= next_poll {
                next_poll += Duration::from_secs(1);
                for i in 0..self.readers.len() {
                    let before = self.readers[i].failed_polls;
                    let records = self.readers[i].poll(10_000).await;
                    self.stats.lock().unwrap().failed_polls +=
                        self.readers[i].failed_polls - before;
                    found |= !records.is_empty() || self.readers[i].failed_polls > before;
                    let shard = self.readers[i].shard_id.clone();
                    for record in records {
                        if self.processor.is_empty() {
                            self.processor_since = Instant::now();
                        }
                        self.processor_bytes += record.data().as_ref().len();
                        self.processor.push((shard.clone(), record));
                    }
                }
            }
            if !self.processor.is_empty()
                && (self.processor_bytes >= PROCESSOR_BUFFER_BYTES
                    || self.processor_since.elapsed() >= scaled(PROCESSOR_INTERVAL))
            {
                self.process().await;
            }
            self.deliver_due().await;
            let idle = !found
                && self.processor.is_empty()
                && self.partitions.is_empty()
                && self.errors.is_none()
                && self.backup.is_none();
            self.stats.lock().unwrap().idle = idle;
        }
    }

    /// One transform invocation over the processor buffer.
    async fn process(&mut self) {
        let records = std::mem::take(&mut self.processor);
        self.processor_bytes = 0;
        let b64 = base64::engine::general_purpose::STANDARD;
        let event = serde_json::json!({
            "invocationId": format!("awsrun-{}", fastrand::u64(..)),
            "deliveryStreamArn": format!("arn:aws:firehose:us-east-1:123456789012:deliverystream/{}", names::DELIVERY_STREAM),
            "sourceKinesisStreamArn": names::STREAM_ARN,
            "region": "us-east-1",
            "records": records.iter().map(|(shard, r)| {
                let arrival = arrival_ms(r);
                serde_json::json!({
                    "recordId": format!("{}-{}", shard, r.sequence_number()),
                    "approximateArrivalTimestamp": arrival,
                    "data": b64.encode(r.data().as_ref()),
                    "kinesisRecordMetadata": {
                        "shardId": shard,
                        "partitionKey": r.partition_key(),
                        "approximateArrivalTimestamp": arrival,
                        "sequenceNumber": r.sequence_number(),
                        "subsequenceNumber": "",
                    },
                })
            }).collect::<Vec<_>>(),
        });
        let source = event["records"].clone();
        let event: gender_transform::TransformEvent =
            serde_json::from_value(event).expect("Firehose's event is the transform's event");
        let response = serde_json::to_value(gender_transform::transform_event(event))
            .expect("the transform's answer is JSON");
        let answers = response["records"].as_array().expect("records");
        assert_eq!(
            answers.len(),
            records.len(),
            "the transform must answer every record"
        );
        let mut stats = self.stats.lock().unwrap();
        stats.transform_invocations += 1;
        stats.records += records.len() as u64;
        drop(stats);
        for ((answer, source), (_, record)) in
            answers.iter().zip(source.as_array().unwrap()).zip(&records)
        {
            assert_eq!(
                answer["recordId"], source["recordId"],
                "recordIds kept in order"
            );
            // Source backup: the record as it came from the stream.
            let backup = self.backup.get_or_insert_with(Buffer::new);
            backup.bytes.extend_from_slice(record.data().as_ref());
            match answer["result"].as_str() {
                Some("Ok") => {
                    let dt = answer["metadata"]["partitionKeys"]["dt"]
                        .as_str()
                        .expect("an Ok record has its dt partition key")
                        .to_owned();
                    let data = b64
                        .decode(answer["data"].as_str().expect("data"))
                        .expect("the transform's data is base64");
                    let buffer = self.partitions.entry(dt).or_insert_with(Buffer::new);
                    buffer.bytes.extend_from_slice(&data);
                    self.stats.lock().unwrap().ok += 1;
                }
                Some("ProcessingFailed") => {
                    let line = serde_json::json!({
                        "attemptsMade": 1,
                        "arrivalTimestamp": source["approximateArrivalTimestamp"],
                        "errorCode": "Lambda.ProcessingFailed",
                        "errorMessage": "The record was marked ProcessingFailed by the transform",
                        "attemptEndingTimestamp": gender_core::time::system_now_ms(),
                        "rawData": source["data"],
                        "lambdaArn": "arn:aws:lambda:us-east-1:123456789012:function:gs-run-transform:$LATEST",
                    });
                    let errors = self.errors.get_or_insert_with(Buffer::new);
                    errors.bytes.extend_from_slice(line.to_string().as_bytes());
                    errors.bytes.push(b'\n');
                    self.stats.lock().unwrap().processing_failed += 1;
                }
                other => panic!(
                    "the transform answered result {other:?}: only Ok or ProcessingFailed are allowed (SPEC 5)"
                ),
            }
        }
    }

    /// Writes the S3 buffers that are full or old enough.
    async fn deliver_due(&mut self) {
        let due = |b: &Buffer| {
            b.bytes.len() >= S3_BUFFER_BYTES || b.since.elapsed() >= scaled(S3_INTERVAL)
        };
        let ready: Vec<String> = self
            .partitions
            .iter()
            .filter(|(_, b)| due(b))
            .map(|(dt, _)| dt.clone())
            .collect();
        for dt in ready {
            let buffer = self.partitions.remove(&dt).expect("a due partition");
            let key = format!("raw/dt={dt}/{}", self.object_name());
            let etag = self
                .put(names::RAW_BUCKET, &key, buffer.bytes.clone())
                .await;
            self.stats.lock().unwrap().raw_objects += 1;
            self.events
                .object_created(names::RAW_BUCKET, &key, &etag, buffer.bytes.len())
                .await;
        }
        let today = gender_core::Date::of_millis(gender_core::time::system_now_ms());
        if self.errors.as_ref().is_some_and(due) {
            let buffer = self.errors.take().expect("due");
            let key = format!(
                "{}processing-failed/dt={today}/{}",
                names::ERROR_PREFIX,
                self.object_name()
            );
            self.put(names::RAW_BUCKET, &key, buffer.bytes).await;
            self.stats.lock().unwrap().error_objects += 1;
        }
        if self.backup.as_ref().is_some_and(due) {
            let buffer = self.backup.take().expect("due");
            let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gzip.write_all(&buffer.bytes).expect("gzip in memory");
            let key = format!("source/dt={today}/{}.gz", self.object_name());
            self.put(
                names::BACKUP_BUCKET,
                &key,
                gzip.finish().expect("gzip in memory"),
            )
            .await;
            self.stats.lock().unwrap().backup_objects += 1;
        }
    }

    /// Firehose's object name: `<stream>-<version>-<yyyy-MM-dd-HH-mm-ss>-<random>`.
    fn object_name(&mut self) -> String {
        self.objects += 1;
        let now = time::OffsetDateTime::now_utc();
        format!(
            "{}-1-{:04}-{:02}-{:02}-{:02}-{:02}-{:02}-{:08x}-{:04}",
            names::DELIVERY_STREAM,
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second(),
            fastrand::u32(..),
            self.objects
        )
    }

    /// `PutObject`, retried as Firehose retries S3 (its retry duration is
    /// hours): the object's ETag.
    async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> String {
        for attempt in 0..100 {
            match self
                .s3
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(body.clone().into())
                .send()
                .await
            {
                Ok(out) => return out.e_tag.unwrap_or_default().trim_matches('"').to_owned(),
                Err(_) => {
                    self.stats.lock().unwrap().s3_retries += 1;
                    tokio::time::sleep(Duration::from_millis(50 * (attempt + 1).min(10))).await;
                }
            }
        }
        panic!("Firehose could not write s3://{bucket}/{key} in 100 attempts");
    }
}

fn arrival_ms(record: &aws_sdk_kinesis::types::Record) -> i64 {
    record
        .approximate_arrival_timestamp()
        .and_then(|t| t.to_millis().ok())
        .unwrap_or_default()
}
