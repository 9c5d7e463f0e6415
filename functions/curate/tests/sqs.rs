//! The curate Lambda's handler, fed real-shaped SQS batches of S3 events,
//! over S3 in moto server: raw objects become Parquet, one row per counted
//! hit, each object once, whatever SQS and S3 deliver twice.

use aws_lambda_events::event::sqs::SqsEvent;
use gender_core::layout;
use gender_curate::{Config, Curate, RawObject};
use gender_testkit::{Moto, resources};
use std::collections::HashMap;
use std::sync::Arc;

const FIXTURE: &str = "sqs-s3-object-created.json";
const RAW_BUCKET: &str = "gs-test-raw";
const CURATED_BUCKET: &str = "gs-test-curated";
const RAW_KEY: &str = "raw/dt=2026-11-24/gs-test-hits-1-2026-11-24-10-00-00-0b8a1c2e.ndjson";
const PARQUET_KEY: &str =
    "curated/hits/dt=2026-11-24/gs-test-hits-1-2026-11-24-10-00-00-0b8a1c2e.parquet";
/// 2026-11-24T10:00:05Z, the fixture event's time.
const EVENT_MS: i64 = 1_795_514_405_123;
const MIN: i64 = 60_000;

struct Stack {
    _moto: Moto,
    s3: aws_sdk_s3::Client,
    curate: Arc<Curate>,
}

/// Hits with producer ids, as the transform writes them.
fn lines(hits: &[(&str, &str, &str)]) -> String {
    hits.iter()
        .enumerate()
        .map(|(i, (clientid, gender, hitid))| {
            format!(
                "{{\"clientid\":\"{clientid}\",\"pageGender\":\"{gender}\",\"timestamp\":\"2026-11-24T10:00:0{}.000Z\",\"hitid\":\"{hitid}\"}}\n",
                i % 10
            )
        })
        .collect()
}

fn fixture_raw() -> String {
    lines(&[
        ("visitor-1", "F", "a"),
        ("visitor-1", "M", "b"),
        ("visitor-2", "F", "c"),
        ("visitor-1", "F", "d"),
    ])
}

async fn stack(keep_raw: bool) -> Stack {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let s3 = gender_aws::s3::client(&sdk);
    resources::create_bucket(&s3, RAW_BUCKET).await;
    resources::create_bucket(&s3, CURATED_BUCKET).await;
    put(&s3, RAW_KEY, &fixture_raw()).await;
    let config = Config {
        curated_bucket: CURATED_BUCKET.into(),
        keep_raw,
        dedup_horizon: gender_core::seen_set::Horizon::from_seconds(3600),
    };
    Stack {
        curate: Arc::new(Curate::new(config, &sdk)),
        s3,
        _moto: moto,
    }
}

async fn put(s3: &aws_sdk_s3::Client, key: &str, body: &str) {
    s3.put_object()
        .bucket(RAW_BUCKET)
        .key(key)
        .body(body.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
}

fn event() -> SqsEvent {
    serde_json::from_str(&gender_testkit::fixture(FIXTURE)).unwrap()
}

fn object(key: &str, etag: &str, created_ms: i64) -> RawObject {
    RawObject {
        bucket: RAW_BUCKET.into(),
        key: key.into(),
        etag: etag.into(),
        created_ms,
    }
}

/// Every curated hit: `(clientid, hitid)` -> rows.
async fn archive(s3: &aws_sdk_s3::Client) -> HashMap<(String, String), usize> {
    let listed = s3
        .list_objects_v2()
        .bucket(CURATED_BUCKET)
        .prefix(layout::CURATED_HITS_PREFIX)
        .send()
        .await
        .unwrap();
    let mut rows = HashMap::new();
    for object in listed.contents() {
        let key = object.key().unwrap();
        let body = s3
            .get_object()
            .bucket(CURATED_BUCKET)
            .key(key)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes()
            .to_vec();
        for hit in gender_pipeline::codec::decode_hits(body, key).unwrap() {
            *rows
                .entry((hit.clientid.into_owned(), hit.hitid.unwrap().into_owned()))
                .or_default() += 1;
        }
    }
    rows
}

#[tokio::test]
async fn a_raw_object_becomes_parquet_once_even_when_delivered_twice() {
    let s = stack(true).await;
    let response = s.curate.handle(event()).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "test event skipped, object curated"
    );
    let rows = archive(&s.s3).await;
    assert_eq!(rows.len(), 4);
    assert!(rows.values().all(|&n| n == 1));

    // SQS delivers at least once: the same message again writes nothing.
    let again = s
        .curate
        .curate(&object(
            RAW_KEY,
            "d41d8cd98f00b204e9800998ecf8427e",
            EVENT_MS,
        ))
        .await
        .unwrap();
    assert!(again.replayed, "decided before");
    assert_eq!((again.written.len(), again.existing.len()), (0, 1));
    assert_eq!(archive(&s.s3).await, rows);
    // Raw kept by default.
    assert!(
        s.s3.get_object()
            .bucket(RAW_BUCKET)
            .key(RAW_KEY)
            .send()
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn an_erased_visitor_stays_erased_through_a_redelivery_and_a_redrive() {
    let s = stack(true).await;
    assert!(
        s.curate
            .handle(event())
            .await
            .batch_item_failures
            .is_empty()
    );
    // The erasure rewrote the object without visitor-1 (what gender-erase
    // does with the same pipeline code).
    let curated = gender_aws::s3::S3ObjectStore::new(s.s3.clone(), CURATED_BUCKET);
    let original = gender_core::ports::ObjectStore::get(&curated, PARQUET_KEY)
        .await
        .unwrap()
        .unwrap();
    let mut file = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut file, &original).unwrap();
    std::io::Seek::rewind(&mut file).unwrap();
    let (erased, removed) = gender_pipeline::erase::hits_without_visitors(
        file,
        PARQUET_KEY,
        PARQUET_KEY.to_owned(),
        &gender_pipeline::erase::Visitors::new(["visitor-1"]),
    )
    .unwrap();
    assert_eq!(removed, 3);
    gender_core::ports::ObjectStore::put_file(&curated, PARQUET_KEY, erased.temp.path())
        .await
        .unwrap();
    // The same event again (duplicate notification), then from the DLQ.
    for _ in 0..2 {
        assert!(
            s.curate
                .handle(event())
                .await
                .batch_item_failures
                .is_empty()
        );
    }
    let rows = archive(&s.s3).await;
    assert!(
        rows.keys().all(|(clientid, _)| clientid != "visitor-1"),
        "{rows:?}"
    );
    assert_eq!(rows.len(), 1);
}

#[tokio::test]
async fn an_identity_is_archived_once_across_objects_within_the_horizon() {
    let s = stack(true).await;
    // A PutRecords retry and a producer resend put hits of the first object
    // into the second; the third object comes after the horizon.
    put(
        &s.s3,
        "raw/dt=2026-11-24/o2.ndjson",
        &lines(&[("visitor-1", "M", "b"), ("visitor-3", "M", "e")]),
    )
    .await;
    put(
        &s.s3,
        "raw/dt=2026-11-24/o3.ndjson",
        &lines(&[("visitor-2", "F", "c")]),
    )
    .await;
    let first = s
        .curate
        .curate(&object(RAW_KEY, "e1", EVENT_MS))
        .await
        .unwrap();
    let second = s
        .curate
        .curate(&object("raw/dt=2026-11-24/o2.ndjson", "e2", EVENT_MS + MIN))
        .await
        .unwrap();
    let third = s
        .curate
        .curate(&object(
            "raw/dt=2026-11-24/o3.ndjson",
            "e3",
            EVENT_MS + 90 * MIN,
        ))
        .await
        .unwrap();
    assert_eq!((first.hits, first.duplicates), (4, 0));
    assert_eq!((second.hits, second.duplicates), (1, 1));
    assert_eq!(
        (third.hits, third.duplicates),
        (1, 0),
        "beyond the horizon: a new hit"
    );
    let rows = archive(&s.s3).await;
    assert_eq!(rows[&("visitor-1".to_owned(), "b".to_owned())], 1);
    assert_eq!(rows[&("visitor-2".to_owned(), "c".to_owned())], 2);
    assert_eq!(rows.len(), 5);
}

#[tokio::test]
async fn a_crash_between_the_index_and_the_parquet_writes_the_same_rows_on_retry() {
    let s = stack(true).await;
    put(
        &s.s3,
        "raw/dt=2026-11-24/o2.ndjson",
        &lines(&[("visitor-1", "M", "b"), ("visitor-3", "M", "e")]),
    )
    .await;
    s.curate
        .curate(&object(RAW_KEY, "e1", EVENT_MS))
        .await
        .unwrap();
    let o2 = object("raw/dt=2026-11-24/o2.ndjson", "e2", EVENT_MS + MIN);
    let first = s.curate.curate(&o2).await.unwrap();
    let before = archive(&s.s3).await;
    // As if the function died after committing its decision, before its
    // Parquet was written: the retry finds its decision and writes it.
    s.s3.delete_object()
        .bucket(CURATED_BUCKET)
        .key(&first.written[0])
        .send()
        .await
        .unwrap();
    let retry = s.curate.curate(&o2).await.unwrap();
    assert!(retry.replayed);
    assert_eq!(retry.written, first.written);
    assert_eq!(archive(&s.s3).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_objects_with_the_same_hits_archive_each_once() {
    let s = stack(true).await;
    let mut tasks = Vec::new();
    for i in 0..4 {
        let key = format!("raw/dt=2026-11-24/copy-{i}.ndjson");
        put(&s.s3, &key, &fixture_raw()).await;
        let curate = s.curate.clone();
        let raw = object(&key, &format!("etag{i}"), EVENT_MS + i * 1000);
        tasks.push(tokio::spawn(
            async move { curate.curate(&raw).await.unwrap() },
        ));
    }
    let mut redos = 0;
    for t in tasks {
        redos += t.await.unwrap().redos;
    }
    let rows = archive(&s.s3).await;
    assert_eq!(rows.len(), 4);
    assert!(
        rows.values().all(|&n| n == 1),
        "{rows:?} after {redos} redos"
    );
}

#[tokio::test]
async fn bad_messages_fail_alone_and_missing_objects_are_skipped() {
    let s = stack(false).await;
    let mut e = event();
    let mut broken = e.records[1].clone();
    broken.message_id = Some("broken-message".into());
    broken.body = Some("{not json".into());
    e.records.push(broken);
    let response = s.curate.handle(e).await;
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["broken-message"]);
    assert_eq!(
        archive(&s.s3).await.len(),
        4,
        "the good message was curated"
    );
    // KEEP_RAW=false deleted the raw object; a redelivery finds nothing and succeeds.
    assert!(
        s.s3.get_object()
            .bucket(RAW_BUCKET)
            .key(RAW_KEY)
            .send()
            .await
            .is_err()
    );
    assert!(
        s.curate
            .handle(event())
            .await
            .batch_item_failures
            .is_empty()
    );
}

#[tokio::test]
async fn a_storage_failure_returns_the_message_to_the_queue() {
    let s = stack(true).await;
    s.s3.delete_bucket()
        .bucket(CURATED_BUCKET)
        .send()
        .await
        .unwrap();
    let response = s.curate.handle(event()).await;
    assert_eq!(response.batch_item_failures.len(), 1);
}
