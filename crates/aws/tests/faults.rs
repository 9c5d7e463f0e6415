//! The AWS adapters through the fault proxy (gender-testkit) in front of
//! moto: the errors real AWS raises under load and moto never does. Each
//! test injects faults and checks the end state: nothing lost, nothing
//! doubled where the adapter promises it, and the faults were really met.

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use gender_aws::dynamodb::DynamoProfiles;
use gender_aws::erasure::{CuratedObjects, ErasureLog, Replaced};
use gender_aws::kinesis::KinesisHitLog;
use gender_aws::s3::{S3ObjectStore, client as s3_client};
use gender_aws::{AwsError, Backoff};
use gender_core::ErasureStatus;
use gender_core::ports::{HitLog, LogRecord, ObjectStore};
use gender_testkit::{Fault, FaultProxy, Moto, Rule, resources};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

const TABLE: &str = "profiles";
const NOW: i64 = 1_795_514_400_000;
/// 32 hex digits, as `new_erasure_id` makes them.
const ERASURE_ID: &str = "0123456789abcdef0123456789abcdef";

fn quick() -> Backoff {
    Backoff {
        attempts: 6,
        base: Duration::from_millis(2),
        cap: Duration::from_millis(20),
    }
}

/// The proxy's configuration without the SDK's own retries: every fault
/// reaches the adapter, whose retries alone must get past it.
async fn without_sdk_retries(proxy: &FaultProxy) -> aws_config::SdkConfig {
    proxy
        .sdk_config()
        .await
        .to_builder()
        .retry_config(RetryConfig::disabled())
        .build()
}

/// An attempt timeout far below the proxy's stall: the answer is lost.
fn with_attempt_timeout(config: aws_config::SdkConfig) -> aws_config::SdkConfig {
    config
        .to_builder()
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_millis(400))
                .build(),
        )
        .build()
}

fn key(pk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_owned(), AttributeValue::S(pk.to_owned()))])
}

async fn item(
    client: &aws_sdk_dynamodb::Client,
    pk: &str,
) -> Option<HashMap<String, AttributeValue>> {
    client
        .get_item()
        .table_name(TABLE)
        .set_key(Some(key(pk)))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

#[tokio::test]
async fn the_erasure_log_writes_through_transaction_conflicts_and_throttling() {
    let moto = Moto::start();
    let direct = resources::create_table(&moto.sdk_config().await, TABLE).await;
    direct
        .put_item()
        .table_name(TABLE)
        .set_item(Some(key("visitor-1")))
        .item("m", AttributeValue::N("3".into()))
        .send()
        .await
        .unwrap();
    let proxy = FaultProxy::start(&moto.endpoint, 11);
    let config = without_sdk_retries(&proxy).await;
    let log = ErasureLog::new(aws_sdk_dynamodb::Client::new(&config), TABLE).with_backoff(quick());
    // What a profile item meets while another writer's transaction holds
    // it, and what an account at its limits answers.
    proxy.inject(Rule::new("dynamodb", "PutItem", Fault::TransactionConflict).times(2));
    proxy.inject(Rule::new("dynamodb", "GetItem", Fault::ProvisionedThroughputExceeded).times(2));
    proxy.inject(Rule::new("dynamodb", "DeleteItem", Fault::TransactionConflict).times(2));
    proxy.inject(Rule::new("dynamodb", "DeleteItem", Fault::RequestLimitExceeded).times(1));
    proxy.inject(Rule::new("dynamodb", "UpdateItem", Fault::TransactionConflict).times(2));
    proxy.inject(Rule::new("dynamodb", "UpdateItem", Fault::Throttling).times(1));

    log.put_pending(ERASURE_ID, "visitor-1", "hash-1", NOW)
        .await
        .unwrap();
    let entry = log.entry(ERASURE_ID).await.unwrap().unwrap();
    assert_eq!(entry.record.status, ErasureStatus::Pending);
    assert_eq!(entry.clientid.as_deref(), Some("visitor-1"));
    log.delete_profile("visitor-1").await.unwrap();
    assert_eq!(item(&direct, "visitor-1").await, None);
    log.complete(ERASURE_ID, NOW + 1).await.unwrap();
    let entry = log.entry(ERASURE_ID).await.unwrap().unwrap();
    assert_eq!(entry.record.status, ErasureStatus::Complete);
    assert_eq!(entry.clientid, None);

    let injected = proxy.counts();
    let expected: BTreeMap<(String, String), u64> = [
        ("TransactionConflict", "PutItem", 2),
        ("ProvisionedThroughputExceeded", "GetItem", 2),
        ("TransactionConflict", "DeleteItem", 2),
        ("RequestLimitExceeded", "DeleteItem", 1),
        ("TransactionConflict", "UpdateItem", 2),
        ("Throttling", "UpdateItem", 1),
    ]
    .into_iter()
    .map(|(fault, op, n)| ((fault.to_owned(), op.to_owned()), n))
    .collect();
    assert_eq!(injected, expected, "every fault was met and got past");
}

#[tokio::test]
async fn retries_end_after_the_attempts_and_never_repeat_what_cannot_pass() {
    let moto = Moto::start();
    resources::create_table(&moto.sdk_config().await, TABLE).await;
    let proxy = FaultProxy::start(&moto.endpoint, 12);
    let config = without_sdk_retries(&proxy).await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let log = ErasureLog::new(client.clone(), TABLE).with_backoff(quick());

    proxy.inject(Rule::new(
        "dynamodb",
        "DeleteItem",
        Fault::TransactionConflict,
    ));
    match log.delete_profile("visitor-1").await.unwrap_err() {
        AwsError::Exhausted {
            operation,
            attempts,
            last,
        } => {
            assert_eq!((operation, attempts), ("DeleteItem", 6));
            assert!(last.contains("TransactionConflictException"), "{last}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(proxy.requests("DeleteItem"), 6);

    // A missing table fails the same way every time: one request only.
    proxy.clear();
    let elsewhere = ErasureLog::new(client, "no-such-table").with_backoff(quick());
    let err = elsewhere.delete_profile("visitor-1").await.unwrap_err();
    assert!(!err.retryable(), "{err:?}");
    assert_eq!(proxy.requests("DeleteItem"), 7);
}

#[tokio::test]
async fn a_pending_entry_whose_answer_was_lost_counts_as_written_once() {
    let moto = Moto::start();
    let direct = resources::create_table(&moto.sdk_config().await, TABLE).await;
    let proxy = FaultProxy::start(&moto.endpoint, 13);
    // The SDK's own retry makes the second attempt: it meets the entry the
    // first attempt wrote (its condition fails on our own item).
    let config = with_attempt_timeout(proxy.sdk_config().await);
    let log = ErasureLog::new(aws_sdk_dynamodb::Client::new(&config), TABLE).with_backoff(quick());
    proxy.inject(Rule::new("dynamodb", "PutItem", Fault::Stall(Duration::from_secs(3))).times(1));
    log.put_pending(ERASURE_ID, "visitor-1", "hash-1", NOW)
        .await
        .unwrap();
    assert_eq!(proxy.injected(Fault::Stall(Duration::ZERO), "PutItem"), 1);
    assert!(
        proxy.requests("PutItem") >= 2,
        "the lost answer was retried"
    );
    let stored = item(&direct, &gender_aws::erasure::erasure_key(ERASURE_ID))
        .await
        .unwrap();
    assert_eq!(stored["clientid_hash"], AttributeValue::S("hash-1".into()));
    assert_eq!(stored["status"], AttributeValue::S("pending".into()));

    // Another entry under the same id (a collision) is still refused.
    let err = log
        .put_pending(ERASURE_ID, "visitor-2", "hash-2", NOW + 5)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("PutItem"), "{err}");
    let stored = item(&direct, &gender_aws::erasure::erasure_key(ERASURE_ID))
        .await
        .unwrap();
    assert_eq!(stored["clientid_hash"], AttributeValue::S("hash-1".into()));
}

#[tokio::test]
async fn a_lookup_survives_throttled_reads_within_its_few_attempts() {
    let moto = Moto::start();
    let direct = resources::create_table(&moto.sdk_config().await, TABLE).await;
    direct
        .put_item()
        .table_name(TABLE)
        .set_item(Some(key("visitor-1")))
        .item("m", AttributeValue::N("2".into()))
        .item("f", AttributeValue::N("1".into()))
        .item("last_gender", AttributeValue::S("M".into()))
        .item("last_seen", AttributeValue::N(NOW.to_string()))
        .send()
        .await
        .unwrap();
    let proxy = FaultProxy::start(&moto.endpoint, 14);
    let config = without_sdk_retries(&proxy).await;
    let profiles =
        DynamoProfiles::new(aws_sdk_dynamodb::Client::new(&config), TABLE).with_backoff(quick());
    proxy.inject(Rule::new("dynamodb", "GetItem", Fault::ProvisionedThroughputExceeded).times(2));
    let profile = profiles.profile("visitor-1").await.unwrap().unwrap();
    assert_eq!((profile.m, profile.f), (2, 1));
    // A request waits for a lookup: 3 attempts, not the writes' 6.
    proxy.inject(Rule::new("dynamodb", "GetItem", Fault::ServerError));
    let err = profiles.profile("visitor-1").await.unwrap_err();
    assert!(
        matches!(err, AwsError::Exhausted { attempts: 3, .. }),
        "{err:?}"
    );
    assert_eq!(proxy.requests("GetItem"), 3 + 3);
}

fn records(n: usize) -> Vec<LogRecord> {
    (0..n)
        .map(|i| LogRecord {
            partition_key: format!("v{i:03}"),
            data: format!(r#"{{"clientid":"v{i:03}","pageGender":"M"}}"#).into_bytes(),
        })
        .collect()
}

/// How many times each record's data is in the stream.
async fn copies(kinesis: &aws_sdk_kinesis::Client) -> BTreeMap<Vec<u8>, usize> {
    let mut copies = BTreeMap::new();
    for (_, data) in resources::read_stream(kinesis, "hits").await {
        *copies.entry(data).or_default() += 1;
    }
    copies
}

#[tokio::test]
async fn kinesis_throttled_records_are_retried_until_each_is_stored_once() {
    let moto = Moto::start();
    let direct = resources::create_stream(&moto.sdk_config().await, "hits").await;
    let proxy = FaultProxy::start(&moto.endpoint, 16);
    let log = KinesisHitLog::new(
        aws_sdk_kinesis::Client::new(&proxy.sdk_config().await),
        "hits",
    )
    .with_backoff(Backoff {
        attempts: 12,
        ..quick()
    });
    proxy.inject(Rule::new("kinesis", "PutRecords", Fault::RecordThrottled).rate(0.5));
    let sent = records(60);
    assert_eq!(log.append(sent.clone()).await.unwrap(), Vec::<usize>::new());
    assert!(proxy.injected(Fault::RecordThrottled, "PutRecords") > 0);
    assert!(proxy.requests("PutRecords") > 1);
    // Kinesis stores no failed record, so only the failed ones are sent
    // again: each record once, none lost.
    let expected: BTreeMap<Vec<u8>, usize> = sent.iter().map(|r| (r.data.clone(), 1)).collect();
    assert_eq!(copies(&direct).await, expected);
}

#[tokio::test]
async fn kinesis_reports_as_failed_exactly_the_records_it_could_not_store() {
    let moto = Moto::start();
    let direct = resources::create_stream(&moto.sdk_config().await, "hits").await;
    let proxy = FaultProxy::start(&moto.endpoint, 17);
    let log = KinesisHitLog::new(
        aws_sdk_kinesis::Client::new(&proxy.sdk_config().await),
        "hits",
    )
    .with_backoff(Backoff {
        attempts: 2,
        ..quick()
    });
    proxy.inject(Rule::new("kinesis", "PutRecords", Fault::RecordThrottled).rate(0.6));
    let sent = records(50);
    let failed = log.append(sent.clone()).await.unwrap();
    assert!(
        !failed.is_empty(),
        "two attempts at 0.6 leave some unstored"
    );
    let stored = copies(&direct).await;
    for (i, record) in sent.iter().enumerate() {
        // Accepted (not reported) means stored, exactly once.
        let expected = usize::from(!failed.contains(&i));
        assert_eq!(
            stored.get(&record.data).copied().unwrap_or(0),
            expected,
            "record {i}"
        );
    }

    // Nothing stored at all is an error, not an empty acceptance.
    proxy.inject(Rule::new("kinesis", "PutRecords", Fault::RecordThrottled));
    let err = log.append(records(3)).await.unwrap_err();
    assert!(err.to_string().contains("PutRecords"), "{err}");
}

#[tokio::test]
async fn kinesis_a_lost_put_records_answer_is_retried_and_duplicates_are_stored() {
    let moto = Moto::start();
    let direct = resources::create_stream(&moto.sdk_config().await, "hits").await;
    let proxy = FaultProxy::start(&moto.endpoint, 18);
    // No SDK retries: the adapter's own loop retries the timed-out call.
    let config = with_attempt_timeout(without_sdk_retries(&proxy).await);
    let log =
        KinesisHitLog::new(aws_sdk_kinesis::Client::new(&config), "hits").with_backoff(quick());
    proxy.inject(
        Rule::new(
            "kinesis",
            "PutRecords",
            Fault::Stall(Duration::from_secs(3)),
        )
        .times(1),
    );
    let sent = records(20);
    assert_eq!(log.append(sent.clone()).await.unwrap(), Vec::<usize>::new());
    assert_eq!(proxy.requests("PutRecords"), 2);
    // Every record at least once; the lost answer's records are there too
    // (the hits' ids make such duplicates harmless downstream).
    let stored = copies(&direct).await;
    for record in &sent {
        assert!(stored.get(&record.data).copied().unwrap_or(0) >= 1);
    }
    assert_eq!(stored.values().sum::<usize>(), 2 * sent.len());
}

#[tokio::test]
async fn the_s3_store_gets_past_slow_down_and_server_errors() {
    let moto = Moto::start();
    let direct = s3_client(&moto.sdk_config().await);
    resources::create_bucket(&direct, "curated").await;
    // More than a page (1,000 keys) so that listing continues after a
    // throttled page.
    for i in 0..1_005 {
        direct
            .put_object()
            .bucket("curated")
            .key(format!("many/{i:04}"))
            .body(b"x".to_vec().into())
            .send()
            .await
            .unwrap();
    }
    let proxy = FaultProxy::start(&moto.endpoint, 19);
    let store = S3ObjectStore::new(s3_client(&without_sdk_retries(&proxy).await), "curated")
        .with_backoff(quick());
    proxy.inject(Rule::new("s3", "PutObject", Fault::SlowDown).times(3));
    proxy.inject(Rule::new("s3", "GetObject", Fault::ServerError).times(2));
    proxy.inject(
        Rule::new("s3", "ListObjectsV2", Fault::SlowDown)
            .rate(0.5)
            .times(3),
    );
    proxy.inject(Rule::new("s3", "DeleteObject", Fault::SlowDown).times(1));

    store.put("a", b"first".to_vec()).await.unwrap();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), b"from a file").unwrap();
    store.put_file("b", file.path()).await.unwrap();
    assert_eq!(
        store.get("a").await.unwrap().as_deref(),
        Some(&b"first"[..])
    );
    assert_eq!(
        store.get("b").await.unwrap().as_deref(),
        Some(&b"from a file"[..])
    );
    let listed = store.list("many/").await.unwrap();
    assert_eq!(listed.len(), 1_005);
    assert_eq!(listed[1_004], "many/1004");
    store.delete("a").await.unwrap();
    assert_eq!(store.get("a").await.unwrap(), None);

    assert_eq!(proxy.injected(Fault::SlowDown, "PutObject"), 3);
    assert_eq!(proxy.injected(Fault::ServerError, "GetObject"), 2);
    assert!(proxy.injected(Fault::SlowDown, "ListObjectsV2") > 0);
    assert_eq!(proxy.injected(Fault::SlowDown, "DeleteObject"), 1);
}

#[tokio::test]
async fn curated_objects_are_fetched_and_replaced_past_slow_down() {
    let moto = Moto::start();
    let direct = s3_client(&moto.sdk_config().await);
    resources::create_bucket(&direct, "curated").await;
    direct
        .put_object()
        .bucket("curated")
        .key("curated/hits/dt=2026-11-24/a.parquet")
        .body(b"old".to_vec().into())
        .send()
        .await
        .unwrap();
    let proxy = FaultProxy::start(&moto.endpoint, 20);
    let objects = CuratedObjects::new(s3_client(&without_sdk_retries(&proxy).await), "curated")
        .with_backoff(quick());
    proxy.inject(Rule::new("s3", "*", Fault::SlowDown).times(4));
    let key = "curated/hits/dt=2026-11-24/a.parquet";
    let current = objects.fetch(key).await.unwrap().unwrap();
    assert_eq!(std::fs::read(current.file.path()).unwrap(), b"old");
    let new = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(new.path(), b"new").unwrap();
    assert_eq!(
        objects
            .replace(key, new.path(), &current.etag)
            .await
            .unwrap(),
        Replaced::Yes
    );
    let stored = ObjectStore::get(&S3ObjectStore::new(direct, "curated"), key)
        .await
        .unwrap();
    assert_eq!(stored.as_deref(), Some(&b"new"[..]));
    assert_eq!(proxy.injected_total(), 4);
}
