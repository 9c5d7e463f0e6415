//! The stream consumer against moto server: hits put into a real Kinesis
//! stream by the ingest adapter (packed records, a retried `PutRecords`, a
//! producer resending its `hitid`s), read back and handed to the consumer
//! the way the event source mapping does, with redelivery, bisection and a
//! poison record. Every hit counts exactly once.

use gender_aws::Backoff;
use gender_aws::kinesis::KinesisHitLog;
use gender_consumer::{Config, Consumer, StreamEvent};
use gender_core::ports::{HitLog, LogRecord};
use gender_core::seen_set::Horizon;
use gender_testkit::{Moto, esm, resources};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

const TABLE: &str = "profiles";
const STREAM: &str = "hits";
const STREAM_ARN: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/hits";
const NOW: i64 = 1_795_514_400_000;

struct Setup {
    _moto: Moto,
    consumer: Consumer,
    log: KinesisHitLog,
    kinesis: aws_sdk_kinesis::Client,
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    dlq: String,
}

async fn setup() -> Setup {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let dynamo = resources::create_table(&sdk, TABLE).await;
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    kinesis
        .create_stream()
        .stream_name(STREAM)
        .shard_count(2)
        .send()
        .await
        .unwrap();
    let (sqs, dlq) = resources::create_queue(&sdk, "consumer-dlq").await;
    let fast = Backoff {
        attempts: 4,
        base: Duration::from_millis(1),
        cap: Duration::from_millis(5),
    };
    let consumer = Consumer::new(
        Config {
            table_name: TABLE.into(),
            dead_letter_queue_url: dlq.clone(),
            dedup_horizon: Horizon::from_seconds(3600),
        },
        &sdk,
    )
    .with_backoff(fast);
    Setup {
        consumer,
        log: KinesisHitLog::new(kinesis.clone(), STREAM).with_backoff(fast),
        kinesis,
        dynamo,
        sqs,
        dlq,
        _moto: moto,
    }
}

/// A hit as `POST /hits` stores it.
fn hit(clientid: &str, gender: &str, at_ms: i64, hitid: &str) -> LogRecord {
    LogRecord {
        partition_key: clientid.to_owned(),
        data: format!(
            r#"{{"clientid":"{clientid}","pageGender":"{gender}","timestamp":{at_ms},"hitid":"{hitid}"}}"#
        )
        .into_bytes(),
    }
}

/// Requests of a small site: 12 visitors, several hits each per request.
fn requests() -> Vec<Vec<LogRecord>> {
    let mut out = Vec::new();
    for r in 0..6 {
        let mut request = Vec::new();
        for v in 0..12 {
            for k in 0..(1 + (v + r) % 3) {
                let gender = if (v * 7 + r + k) % 3 == 0 { "F" } else { "M" };
                request.push(hit(
                    &format!("visitor-{v}"),
                    gender,
                    NOW + (r * 1000 + k * 10) as i64,
                    &format!("h-{v}-{r}-{k}"),
                ));
            }
        }
        out.push(request);
    }
    out
}

/// What every visitor must end with: each `(clientid, hitid)` once; the
/// latest hit (later in the stream on equal times) is `last`.
fn expected(requests: &[Vec<LogRecord>]) -> HashMap<String, (u64, u64, String, i64)> {
    let mut seen = HashSet::new();
    let mut out: HashMap<String, (u64, u64, String, i64)> = HashMap::new();
    for record in requests.iter().flatten() {
        let v: serde_json::Value = serde_json::from_slice(&record.data).unwrap();
        let (id, hitid) = (
            v["clientid"].as_str().unwrap(),
            v["hitid"].as_str().unwrap(),
        );
        if !seen.insert((id.to_owned(), hitid.to_owned())) {
            continue;
        }
        let (gender, at) = (
            v["pageGender"].as_str().unwrap(),
            v["timestamp"].as_i64().unwrap(),
        );
        let entry = out
            .entry(id.to_owned())
            .or_insert((0, 0, gender.to_owned(), at));
        if gender == "M" {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
        if at >= entry.3 {
            entry.2 = gender.to_owned();
            entry.3 = at;
        }
    }
    out
}

async fn profiles(setup: &Setup) -> HashMap<String, (u64, u64, String, i64)> {
    let items = setup
        .dynamo
        .scan()
        .table_name(TABLE)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    items
        .into_iter()
        .map(|item| {
            let n = |name: &str| {
                item.get(name)
                    .and_then(|v| v.as_n().ok())
                    .map(|t| t.parse::<i64>().unwrap())
                    .unwrap_or(0)
            };
            (
                item["pk"].as_s().unwrap().clone(),
                (
                    n("m") as u64,
                    n("f") as u64,
                    item["last_gender"].as_s().unwrap().clone(),
                    n("last_seen"),
                ),
            )
        })
        .collect()
}

async fn deliver(
    setup: &Setup,
    shard: &esm::ShardRecords,
    range: std::ops::Range<usize>,
) -> gender_consumer::BatchReport {
    let event: StreamEvent = serde_json::from_value(esm::event(
        &shard.shard_id,
        &shard.records[range],
        STREAM_ARN,
    ))
    .unwrap();
    let (response, report) = setup.consumer.handle_at(event, NOW).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    report
}

#[tokio::test]
async fn every_hit_counts_once_through_redelivery_bisection_and_resends() {
    let setup = setup().await;
    let requests = requests();
    for request in &requests {
        assert!(setup.log.append(request.clone()).await.unwrap().is_empty());
    }
    // A PutRecords retry after a lost answer: the same request stored twice.
    setup.log.append(requests[2].clone()).await.unwrap();
    // A producer resending two of its hits in a new request.
    setup
        .log
        .append(vec![requests[0][0].clone(), requests[4][3].clone()])
        .await
        .unwrap();

    let shards = esm::read_shards(&setup.kinesis, STREAM).await;
    let hits_put: usize = requests.iter().map(Vec::len).sum::<usize>() + requests[2].len() + 2;
    let records: usize = shards.iter().map(|s| s.records.len()).sum();
    assert!(
        records < hits_put,
        "hits of one visitor and date share a record ({records} records for {hits_put} hits)"
    );

    for shard in &shards {
        let n = shard.records.len();
        // Bisected: the first half alone, then the whole batch (the mapping
        // retries from the start), then the second half again.
        deliver(&setup, shard, 0..n / 2).await;
        let whole = deliver(&setup, shard, 0..n).await;
        assert!(whole.replayed > 0, "the first half is skipped by position");
        let again = deliver(&setup, shard, n / 2..n).await;
        assert_eq!(again.counted, 0);
    }
    let expected = expected(&requests);
    assert_eq!(profiles(&setup).await, expected);

    // The whole stream redelivered: nothing changes.
    for shard in &shards {
        let report = deliver(&setup, shard, 0..shard.records.len()).await;
        assert_eq!(
            (report.counted, report.replayed as usize),
            (0, report.hits as usize)
        );
    }
    assert_eq!(profiles(&setup).await, expected);
}

#[tokio::test]
async fn a_poison_record_goes_to_the_dead_letter_queue_and_the_rest_counts() {
    let setup = setup().await;
    setup
        .log
        .append(vec![hit("a", "M", NOW, "1"), hit("b", "F", NOW, "2")])
        .await
        .unwrap();
    // Not from the API: a record that is no hit.
    setup
        .kinesis
        .put_record()
        .stream_name(STREAM)
        .partition_key("a")
        .data(aws_sdk_kinesis::primitives::Blob::new(
            b"{\"clientid\":\"a\"}".to_vec(),
        ))
        .send()
        .await
        .unwrap();
    setup
        .log
        .append(vec![hit("a", "F", NOW + 5, "3")])
        .await
        .unwrap();

    let mut poison = 0;
    for shard in esm::read_shards(&setup.kinesis, STREAM).await {
        poison += deliver(&setup, &shard, 0..shard.records.len()).await.poison;
    }
    assert_eq!(poison, 1);
    let got = profiles(&setup).await;
    assert_eq!(got["a"], (1, 1, "F".to_owned(), NOW + 5));
    assert_eq!(got["b"], (0, 1, "F".to_owned(), NOW));
    let parked = resources::queued_bodies(&setup.sqs, &setup.dlq).await;
    assert_eq!(parked.len(), 1);
    let message: serde_json::Value = serde_json::from_str(&parked[0]).unwrap();
    assert_eq!(message["partition_key"], "a");
    assert!(
        message["reason"].as_str().unwrap().contains("pageGender"),
        "{message}"
    );
}

#[tokio::test]
async fn an_item_changed_between_read_and_write_is_decided_again() {
    let setup = setup().await;
    setup
        .log
        .append(vec![hit("a", "M", NOW, "1")])
        .await
        .unwrap();
    let shards = esm::read_shards(&setup.kinesis, STREAM).await;
    let shard = shards.iter().find(|s| !s.records.is_empty()).unwrap();
    deliver(&setup, shard, 0..1).await;

    // The visitor erased, then its next hit: the consumer's stale read of
    // `ver` (here: a write that expects version 1 when the item is gone)
    // is refused, and the hit counts afresh.
    setup
        .dynamo
        .delete_item()
        .table_name(TABLE)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("a".into()))
        .send()
        .await
        .unwrap();
    let profiles_adapter = gender_aws::dynamodb::DynamoProfiles::new(setup.dynamo.clone(), TABLE);
    let update = gender_core::stream::CountingUpdate {
        m: 1,
        f: 0,
        last: Some((gender_core::Gender::M, NOW)),
        seen: Default::default(),
        position: shard_position(shard),
        expected_version: Some(1),
        duplicates: 0,
        dates: None,
    };
    let written = profiles_adapter
        .write_counting("a", &update, NOW)
        .await
        .unwrap();
    assert_eq!(
        written,
        gender_aws::counting::Written::Conflict(Default::default()),
        "the item is gone: decided again from nothing"
    );
    setup
        .log
        .append(vec![hit("a", "F", NOW + 1, "2")])
        .await
        .unwrap();
    let shards = esm::read_shards(&setup.kinesis, STREAM).await;
    let shard = shards.iter().find(|s| s.records.len() == 2).unwrap();
    let report = deliver(&setup, shard, 1..2).await;
    assert_eq!(report.counted, 1);
    assert_eq!(profiles(&setup).await["a"], (0, 1, "F".to_owned(), NOW + 1));
}

fn shard_position(shard: &esm::ShardRecords) -> gender_core::stream::StreamPosition {
    gender_core::stream::StreamPosition {
        shard: shard.shard_id.clone(),
        sequence: gender_core::stream::SequenceNumber::parse(shard.records[0].sequence_number())
            .unwrap(),
    }
}

/// The consumer's DynamoDB calls through the fault proxy: what DynamoDB
/// raises under load and moto never does.
mod faults {
    use super::*;
    use gender_testkit::{Fault, FaultProxy, Rule};

    async fn faulted(setup: &Setup, proxy: &FaultProxy, attempts: u32) -> Consumer {
        let config = proxy
            .sdk_config()
            .await
            .to_builder()
            // Far below the proxy's stall: the answer of a stalled write is lost.
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_millis(300))
                    .build(),
            )
            .build();
        Consumer::new(
            Config {
                table_name: TABLE.into(),
                dead_letter_queue_url: setup.dlq.clone(),
                dedup_horizon: Horizon::from_seconds(3600),
            },
            &config,
        )
        .with_backoff(Backoff {
            attempts,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(10),
        })
    }

    #[tokio::test]
    async fn every_hit_counts_once_through_throttling_conflicts_partial_reads_and_lost_answers() {
        let setup = setup().await;
        let requests = requests();
        for request in &requests {
            setup.log.append(request.clone()).await.unwrap();
        }
        let proxy = FaultProxy::start(&setup._moto.endpoint, 27);
        for rule in [
            Rule::new("dynamodb", "UpdateItem", Fault::TransactionConflict).rate(0.2),
            Rule::new("dynamodb", "UpdateItem", Fault::Throttling).rate(0.1),
            Rule::new(
                "dynamodb",
                "UpdateItem",
                Fault::Stall(Duration::from_millis(800)),
            )
            .rate(0.1),
            Rule::new("dynamodb", "BatchGetItem", Fault::Unprocessed).rate(0.3),
            Rule::new(
                "dynamodb",
                "BatchGetItem",
                Fault::ProvisionedThroughputExceeded,
            )
            .rate(0.2),
        ] {
            proxy.inject(rule);
        }
        let consumer = faulted(&setup, &proxy, 12).await;
        for shard in esm::read_shards(&setup.kinesis, STREAM).await {
            let mut from = 0;
            // The mapping retries from the reported record until the batch passes.
            while from < shard.records.len() {
                let event: StreamEvent = serde_json::from_value(esm::event(
                    &shard.shard_id,
                    &shard.records[from..],
                    STREAM_ARN,
                ))
                .unwrap();
                let (response, _) = consumer.handle_at(event, NOW).await;
                from = match response.batch_item_failures.first() {
                    None => shard.records.len(),
                    Some(f) => shard
                        .records
                        .iter()
                        .position(|r| r.sequence_number() == f.item_identifier)
                        .unwrap(),
                };
            }
        }
        assert_eq!(profiles(&setup).await, expected(&requests));
        for (fault, operation) in [
            (Fault::TransactionConflict, "UpdateItem"),
            (Fault::Throttling, "UpdateItem"),
            (Fault::Stall(Duration::ZERO), "UpdateItem"),
            (Fault::Unprocessed, "BatchGetItem"),
        ] {
            assert!(
                proxy.injected(fault, operation) > 0,
                "{fault:?} on {operation} was met"
            );
        }
    }

    #[tokio::test]
    async fn a_visitor_that_cannot_be_written_is_retried_from_its_earliest_record() {
        let setup = setup().await;
        let requests = requests();
        for request in &requests {
            setup.log.append(request.clone()).await.unwrap();
        }
        let proxy = FaultProxy::start(&setup._moto.endpoint, 5);
        // Every write refused for a while: the batch reports its first record.
        proxy.inject(
            Rule::new(
                "dynamodb",
                "UpdateItem",
                Fault::ProvisionedThroughputExceeded,
            )
            .times(40),
        );
        let consumer = faulted(&setup, &proxy, 2).await;
        let shards = esm::read_shards(&setup.kinesis, STREAM).await;
        let mut retried = 0;
        for shard in &shards {
            let mut from = 0;
            while from < shard.records.len() {
                let event: StreamEvent = serde_json::from_value(esm::event(
                    &shard.shard_id,
                    &shard.records[from..],
                    STREAM_ARN,
                ))
                .unwrap();
                let (response, report) = consumer.handle_at(event, NOW).await;
                match response.batch_item_failures.first() {
                    None => from = shard.records.len(),
                    Some(f) => {
                        retried += 1;
                        assert!(report.failed_visitors > 0);
                        from += shard.records[from..]
                            .iter()
                            .position(|r| r.sequence_number() == f.item_identifier)
                            .unwrap();
                    }
                }
            }
        }
        assert!(retried > 0, "some batches came back");
        assert_eq!(profiles(&setup).await, expected(&requests));
    }
}
