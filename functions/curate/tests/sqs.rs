//! The curate Lambda's handler, fed a real-shaped SQS batch of S3 events,
//! over S3 and DynamoDB in moto server.

use aws_lambda_events::event::sqs::SqsEvent;
use gender_aws::dynamodb::DynamoProfiles;
use gender_core::ports::ProfileReader;
use gender_curate::{Config, Curate};
use gender_testkit::{Moto, resources};
use std::sync::Arc;

const FIXTURE: &str = "sqs-s3-object-created.json";
const RAW_BUCKET: &str = "gs-test-raw";
const RAW_KEY: &str = "raw/dt=2026-11-24/gs-test-hits-1-2026-11-24-10-00-00-0b8a1c2e.ndjson";
const RAW: &str = concat!(
    r#"{"clientid":"visitor-1","pageGender":"F","timestamp":"2026-11-24T09:59:58.120Z"}"#,
    "\n",
    r#"{"clientid":"visitor-1","pageGender":"M","timestamp":"2026-11-24T10:00:00.000Z"}"#,
    "\n",
    r#"{"clientid":"visitor-2","pageGender":"F","timestamp":"2026-11-24T10:00:01.000Z"}"#,
    "\n",
    r#"{"clientid":"visitor-1","pageGender":"F","timestamp":"2026-11-24T09:00:00.000Z"}"#,
    "\n",
);

struct Stack {
    _moto: Moto,
    s3: aws_sdk_s3::Client,
    profiles: DynamoProfiles,
    curate: Arc<Curate>,
}

async fn stack(keep_raw: bool) -> Stack {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let s3 = gender_aws::s3::client(&sdk);
    resources::create_bucket(&s3, RAW_BUCKET).await;
    resources::create_bucket(&s3, "gs-test-curated").await;
    let dynamo = resources::create_table(&sdk, "gs-test-profiles").await;
    s3.put_object()
        .bucket(RAW_BUCKET)
        .key(RAW_KEY)
        .body(RAW.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
    let config = Config {
        curated_bucket: "gs-test-curated".into(),
        table_name: "gs-test-profiles".into(),
        keep_raw,
        // On, as deployed: hits without a hitid take the plain path.
        dedup_horizon: gender_core::seen_set::Horizon::from_seconds(3600),
    };
    Stack {
        curate: Arc::new(Curate::new(config, &sdk)),
        profiles: DynamoProfiles::new(dynamo, "gs-test-profiles"),
        s3,
        _moto: moto,
    }
}

fn event() -> SqsEvent {
    serde_json::from_str(&gender_testkit::fixture(FIXTURE)).unwrap()
}

async fn counts(profiles: &DynamoProfiles, id: &str) -> (u64, u64, gender_core::Gender) {
    let p = profiles.get_profile(id).await.unwrap().unwrap();
    (p.m, p.f, p.last_gender)
}

#[tokio::test]
async fn a_raw_object_becomes_parquet_and_counters_once_even_when_delivered_twice() {
    let s = stack(true).await;
    let response = s.curate.handle(event()).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "test event skipped, object curated"
    );
    assert_eq!(
        counts(&s.profiles, "visitor-1").await,
        (1, 2, gender_core::Gender::M)
    );
    assert_eq!(counts(&s.profiles, "visitor-2").await.1, 1);

    let key = "curated/hits/dt=2026-11-24/gs-test-hits-1-2026-11-24-10-00-00-0b8a1c2e.parquet";
    let parquet =
        s.s3.get_object()
            .bucket("gs-test-curated")
            .key(key)
            .send()
            .await
            .unwrap();
    let bytes = parquet.body.collect().await.unwrap().into_bytes().to_vec();
    assert_eq!(
        gender_pipeline::codec::decode_hits(bytes, key)
            .unwrap()
            .len(),
        4
    );

    // SQS delivers at least once: the same message again changes nothing.
    assert!(
        s.curate
            .handle(event())
            .await
            .batch_item_failures
            .is_empty()
    );
    assert_eq!(
        counts(&s.profiles, "visitor-1").await,
        (1, 2, gender_core::Gender::M)
    );
    let listed =
        s.s3.list_objects_v2()
            .bucket("gs-test-curated")
            .send()
            .await
            .unwrap();
    assert_eq!(
        listed.contents().len(),
        1,
        "the retry overwrote, not duplicated"
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_over_the_same_visitors_lose_no_update() {
    let s = stack(true).await;
    let mut tasks = Vec::new();
    for i in 0..4 {
        let key = format!("raw/dt=2026-11-24/gs-test-hits-1-2026-11-24-10-00-0{i}-x.ndjson");
        s.s3.put_object()
            .bucket(RAW_BUCKET)
            .key(&key)
            .body(RAW.as_bytes().to_vec().into())
            .send()
            .await
            .unwrap();
        let mut e = event();
        let body = e.records[0].body.take().unwrap().replace(
            "raw/dt%3D2026-11-24/gs-test-hits-1-2026-11-24-10-00-00-0b8a1c2e.ndjson",
            &key.replace('=', "%3D"),
        );
        e.records[0].body =
            Some(body.replace("d41d8cd98f00b204e9800998ecf8427e", &format!("etag{i}")));
        let curate = s.curate.clone();
        tasks.push(tokio::spawn(async move { curate.handle(e).await }));
    }
    for t in tasks {
        assert!(t.await.unwrap().batch_item_failures.is_empty());
    }
    assert_eq!(
        counts(&s.profiles, "visitor-1").await,
        (4, 8, gender_core::Gender::M)
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
        counts(&s.profiles, "visitor-1").await.0,
        1,
        "the good message in the same batch was curated"
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
    assert_eq!(counts(&s.profiles, "visitor-1").await.0, 1);
}

#[tokio::test]
async fn a_storage_failure_returns_the_message_to_the_queue() {
    let s = stack(true).await;
    s.s3.delete_bucket()
        .bucket("gs-test-curated")
        .send()
        .await
        .unwrap();
    let response = s.curate.handle(event()).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(
        s.profiles.get_profile("visitor-1").await.unwrap(),
        None,
        "no counters without the Parquet"
    );
}
