//! Test support: a real AWS-API emulator (moto server) on a free loopback
//! port, started per test and killed when dropped, and an SDK configuration
//! pointed at it with dummy credentials; a proxy in front of it that injects
//! the faults moto never raises ([`faults`]).
//!
//! moto runs from `moto_serial.py` (see there for why one request at a time)
//! under the Python of `MOTO_PYTHON`, else the workspace's `.venv` (which
//! `scripts/test` creates with `pip install "moto[server]"`), else `python3`.

pub mod faults;

pub use faults::{Fault, FaultProxy, Rule};

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const REGION: &str = "us-east-1";

pub struct Moto {
    child: Child,
    pub endpoint: String,
}

fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("MOTO_PYTHON") {
        return path.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("python3")
}

impl Moto {
    pub fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let binary = python();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/moto_serial.py");
        let child = Command::new(&binary)
            .args([script, "127.0.0.1", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e}. Run scripts/test (it installs moto into .venv) \
                     or `pip install \"moto[server]\"`",
                    binary.display()
                )
            });
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!(
                    "moto server exited ({status}): is moto installed for {}? Run scripts/test, \
                     which installs it into .venv",
                    binary.display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "moto server did not start on {addr}"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        moto
    }

    /// The SDK configuration the Lambdas would load, aimed at this emulator.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .test_credentials()
            .load()
            .await
    }

    /// Environment for a child process (a function under `cargo lambda watch`, say).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resources shaped like the Terraform ones, created in the emulator.
/// A real-shaped event from the workspace's `tests/fixtures/`.
pub fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

pub mod resources {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        TimeToLiveSpecification,
    };

    /// The profiles table: hash key `pk` (S), on-demand, TTL on `expires_at`.
    pub async fn create_table(
        config: &aws_config::SdkConfig,
        name: &str,
    ) -> aws_sdk_dynamodb::Client {
        let client = aws_sdk_dynamodb::Client::new(config);
        client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("pk")
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("create table");
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("expires_at")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("enable TTL");
        client
    }

    pub async fn create_stream(
        config: &aws_config::SdkConfig,
        name: &str,
    ) -> aws_sdk_kinesis::Client {
        let client = aws_sdk_kinesis::Client::new(config);
        client
            .create_stream()
            .stream_name(name)
            .shard_count(1)
            .send()
            .await
            .expect("create stream");
        client
    }

    /// Reads every record of a one-shard stream: (partition key, data).
    pub async fn read_stream(
        client: &aws_sdk_kinesis::Client,
        name: &str,
    ) -> Vec<(String, Vec<u8>)> {
        let shards = client
            .list_shards()
            .stream_name(name)
            .send()
            .await
            .expect("list shards");
        let mut out = Vec::new();
        for shard in shards.shards() {
            let iterator = client
                .get_shard_iterator()
                .stream_name(name)
                .shard_id(shard.shard_id())
                .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
                .send()
                .await
                .expect("shard iterator");
            let records = client
                .get_records()
                .shard_iterator(iterator.shard_iterator().unwrap())
                .limit(10_000)
                .send()
                .await
                .expect("get records");
            for r in records.records() {
                out.push((
                    r.partition_key().unwrap_or_default().to_owned(),
                    r.data().as_ref().to_vec(),
                ));
            }
        }
        out
    }

    /// The names of the attributes of the item whose `pk` is `pk`, sorted.
    pub async fn item_attributes(
        client: &aws_sdk_dynamodb::Client,
        table: &str,
        pk: &str,
    ) -> Vec<String> {
        let item = client
            .get_item()
            .table_name(table)
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(pk.to_owned()),
            )
            .send()
            .await
            .expect("get item")
            .item
            .expect("the item exists");
        let mut names: Vec<String> = item.into_keys().collect();
        names.sort();
        names
    }

    /// Puts a visitor's profile item as the stream consumer leaves it
    /// (counters and `last_*`), for tests of what reads profiles.
    pub async fn put_profile(
        client: &aws_sdk_dynamodb::Client,
        table: &str,
        clientid: &str,
        (m, f): (u64, u64),
        last_gender: &str,
        last_seen_ms: i64,
    ) {
        use aws_sdk_dynamodb::types::AttributeValue::{N, S};
        client
            .put_item()
            .table_name(table)
            .item("pk", S(clientid.to_owned()))
            .item("m", N(m.to_string()))
            .item("f", N(f.to_string()))
            .item("last_gender", S(last_gender.to_owned()))
            .item("last_seen", N(last_seen_ms.to_string()))
            .item("updated_at", N(last_seen_ms.to_string()))
            .send()
            .await
            .expect("put profile");
    }

    /// A standard queue; returns its client and URL.
    pub async fn create_queue(
        config: &aws_config::SdkConfig,
        name: &str,
    ) -> (aws_sdk_sqs::Client, String) {
        let client = aws_sdk_sqs::Client::new(config);
        let url = client
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .expect("create queue")
            .queue_url
            .expect("a queue URL");
        (client, url)
    }

    /// The bodies of up to 10 messages waiting on the queue.
    pub async fn queued_bodies(client: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
        client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive messages")
            .messages()
            .iter()
            .filter_map(|m| m.body().map(str::to_owned))
            .collect()
    }

    pub async fn create_bucket(client: &aws_sdk_s3::Client, name: &str) {
        client
            .create_bucket()
            .bucket(name)
            .send()
            .await
            .expect("create bucket");
    }
}

/// What Lambda's event source mapping makes of a Kinesis stream: the
/// records of each shard, and the event it invokes a function with.
pub mod esm {
    use base64::Engine;

    /// One shard's records, in order.
    pub struct ShardRecords {
        pub shard_id: String,
        pub records: Vec<aws_sdk_kinesis::types::Record>,
    }

    /// Every record of every shard of the stream, from the start.
    pub async fn read_shards(client: &aws_sdk_kinesis::Client, stream: &str) -> Vec<ShardRecords> {
        let shards = client
            .list_shards()
            .stream_name(stream)
            .send()
            .await
            .expect("list shards");
        let mut out = Vec::new();
        for shard in shards.shards() {
            let mut iterator = client
                .get_shard_iterator()
                .stream_name(stream)
                .shard_id(shard.shard_id())
                .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
                .send()
                .await
                .expect("shard iterator")
                .shard_iterator
                .expect("an iterator");
            let mut records = Vec::new();
            loop {
                let page = client
                    .get_records()
                    .shard_iterator(&iterator)
                    .limit(10_000)
                    .send()
                    .await
                    .expect("get records");
                let empty = page.records().is_empty();
                records.extend(page.records().iter().cloned());
                match page.next_shard_iterator() {
                    Some(next) if !empty => iterator = next.to_owned(),
                    _ => break,
                }
            }
            out.push(ShardRecords {
                shard_id: shard.shard_id().to_owned(),
                records,
            });
        }
        out
    }

    /// The event Lambda invokes a stream consumer with for `records` of
    /// `shard_id` (the shape AWS documents for Kinesis event sources; the
    /// arrival time in epoch seconds with milliseconds).
    pub fn event(
        shard_id: &str,
        records: &[aws_sdk_kinesis::types::Record],
        stream_arn: &str,
    ) -> serde_json::Value {
        let records: Vec<serde_json::Value> = records
            .iter()
            .map(|r| {
                let arrival = r
                    .approximate_arrival_timestamp()
                    .map(|t| t.to_millis().expect("a time") as f64 / 1000.0)
                    .unwrap_or_default();
                serde_json::json!({
                    "kinesis": {
                        "kinesisSchemaVersion": "1.0",
                        "partitionKey": r.partition_key(),
                        "sequenceNumber": r.sequence_number(),
                        "data": base64::engine::general_purpose::STANDARD.encode(r.data().as_ref()),
                        "approximateArrivalTimestamp": arrival,
                    },
                    "eventSource": "aws:kinesis",
                    "eventVersion": "1.0",
                    "eventID": format!("{shard_id}:{}", r.sequence_number()),
                    "eventName": "aws:kinesis:record",
                    "invokeIdentityArn": "arn:aws:iam::123456789012:role/consumer",
                    "awsRegion": super::REGION,
                    "eventSourceARN": stream_arn,
                })
            })
            .collect();
        serde_json::json!({ "Records": records })
    }
}
