//! The erasure adapters against moto server: the request (queue + log
//! entry), the status, the worker's writes, conditional replacement of a
//! curated object and an Athena query's first column.

use gender_aws::athena::{AthenaQueries, QueryError};
use gender_aws::dynamodb::DynamoProfiles;
use gender_aws::erasure::{CuratedObjects, ErasureLog, ErasureRequests, Replaced, erasure_key};
use gender_core::ErasureStatus;
use gender_core::erasure::clientid_hash;
use gender_core::ports::{Erasures, ObjectStore, ProfileReader};
use gender_testkit::{Moto, resources};
use std::time::{Duration, Instant};

const TABLE: &str = "gs-test-profiles";

struct Stack {
    moto: Moto,
    sdk: aws_config::SdkConfig,
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    log: ErasureLog,
    requests: ErasureRequests,
}

async fn stack() -> Stack {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let dynamo = resources::create_table(&sdk, TABLE).await;
    let (sqs, queue_url) = resources::create_queue(&sdk, "gs-test-erase").await;
    let log = ErasureLog::new(dynamo.clone(), TABLE);
    Stack {
        requests: ErasureRequests::new(log.clone(), sqs.clone(), &queue_url, b"salt".to_vec()),
        log,
        sdk,
        dynamo,
        sqs,
        queue_url,
        moto,
    }
}

#[tokio::test]
async fn a_request_is_logged_with_a_salted_hash_and_queued_by_id_only() {
    let s = stack().await;
    let record = s.requests.request_erasure("visitor-1", 42).await.unwrap();
    assert!(gender_core::erasure::is_erasure_id(&record.id));
    assert_eq!(record.status, ErasureStatus::Pending);
    assert_eq!(record.requested_ms, 42);
    assert_eq!(record.clientid_hash, clientid_hash(b"salt", "visitor-1"));
    assert_eq!(
        s.requests.erasure(&record.id).await.unwrap(),
        Some(record.clone())
    );
    let entry = s.log.entry(&record.id).await.unwrap().unwrap();
    assert_eq!(entry.clientid.as_deref(), Some("visitor-1"));

    // The queue gets the id, never the clientid.
    let bodies = resources::queued_bodies(&s.sqs, &s.queue_url).await;
    assert_eq!(bodies, [record.id.as_str()]);

    // Two requests for one visitor are two erasures.
    let again = s.requests.request_erasure("visitor-1", 43).await.unwrap();
    assert_ne!(again.id, record.id);
    assert_eq!(again.clientid_hash, record.clientid_hash);

    for unknown in ["0".repeat(32), "not-an-id".into(), erasure_key(&record.id)] {
        assert_eq!(
            s.requests.erasure(&unknown).await.unwrap(),
            None,
            "{unknown}"
        );
    }
}

#[tokio::test]
async fn completion_removes_the_clientid_once_and_the_profile_goes() {
    let s = stack().await;
    let profiles = DynamoProfiles::new(s.dynamo.clone(), TABLE);
    resources::put_profile(&s.dynamo, TABLE, "visitor-1", (2, 1), "M", 10).await;
    let record = s.requests.request_erasure("visitor-1", 42).await.unwrap();

    s.log.delete_profile("visitor-1").await.unwrap();
    s.log.delete_profile("visitor-1").await.unwrap(); // a rerun
    assert_eq!(profiles.get_profile("visitor-1").await.unwrap(), None);
    assert!(
        s.log.delete_profile("erasure#x").await.is_err(),
        "not a clientid"
    );

    s.log.complete(&record.id, 99).await.unwrap();
    let done = s.requests.erasure(&record.id).await.unwrap().unwrap();
    assert_eq!(
        (done.status, done.completed_ms),
        (ErasureStatus::Complete, Some(99))
    );
    assert_eq!(
        resources::item_attributes(&s.dynamo, TABLE, &erasure_key(&record.id)).await,
        [
            "clientid_hash",
            "completed_at",
            "pk",
            "requested_at",
            "status"
        ]
    );
    // Completing again keeps the first completion time.
    s.log.complete(&record.id, 200).await.unwrap();
    let again = s.requests.erasure(&record.id).await.unwrap().unwrap();
    assert_eq!(again.completed_ms, Some(99));
    // An id without an entry is left alone (no item is created).
    s.log.complete(&"1".repeat(32), 5).await.unwrap();
    assert_eq!(s.requests.erasure(&"1".repeat(32)).await.unwrap(), None);
}

#[tokio::test]
async fn a_request_whose_queue_is_missing_fails_and_logs_nothing() {
    let s = stack().await;
    let broken = ErasureRequests::new(
        s.log.clone(),
        s.sqs.clone(),
        format!("{}-missing", s.queue_url),
        b"salt".to_vec(),
    );
    assert!(broken.request_erasure("visitor-1", 1).await.is_err());
    let scan = s.dynamo.scan().table_name(TABLE).send().await.unwrap();
    assert_eq!(scan.count(), 0, "no entry holds the clientid");
}

#[tokio::test]
async fn a_replacement_is_refused_when_the_object_changed_since_it_was_read() {
    let s = stack().await;
    let s3 = gender_aws::s3::client(&s.sdk);
    resources::create_bucket(&s3, "gs-test-curated").await;
    let store = gender_aws::s3::S3ObjectStore::new(s3.clone(), "gs-test-curated");
    let objects = CuratedObjects::new(s3, "gs-test-curated");
    let key = "curated/hits/dt=2026-11-20/a.parquet";
    store.put(key, b"first".to_vec()).await.unwrap();

    let read = objects.fetch(key).await.unwrap().unwrap();
    assert_eq!(std::fs::read(read.file.path()).unwrap(), b"first");
    // Someone else writes in between: our replacement must not land.
    store.put(key, b"second".to_vec()).await.unwrap();
    let mut new = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut new, b"ours").unwrap();
    assert_eq!(
        objects.replace(key, new.path(), &read.etag).await.unwrap(),
        Replaced::Changed
    );
    assert_eq!(store.get(key).await.unwrap().unwrap(), b"second");

    let read = objects.fetch(key).await.unwrap().unwrap();
    assert_eq!(
        objects.replace(key, new.path(), &read.etag).await.unwrap(),
        Replaced::Yes
    );
    assert_eq!(store.get(key).await.unwrap().unwrap(), b"ours");
    assert!(
        objects
            .fetch("curated/hits/missing")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn an_athena_query_answers_its_first_column_without_the_header() {
    let s = stack().await;
    let athena = aws_sdk_athena::Client::new(&s.sdk);
    athena
        .create_work_group()
        .name("gs-test")
        .send()
        .await
        .unwrap();
    let rows: Vec<serde_json::Value> = ["path", "s3://b/one", "s3://b/two"]
        .iter()
        .map(|v| serde_json::json!({"Data": [{"VarCharValue": v}]}))
        .collect();
    reqwest::Client::new()
        .post(format!(
            "{}/moto-api/static/athena/query-results",
            s.moto.endpoint
        ))
        .json(&serde_json::json!({"results": [{"rows": rows, "column_info": []}]}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let queries =
        AthenaQueries::new(athena.clone(), "gs-test", "gs_db").with_poll(Duration::from_millis(10));
    let deadline = Instant::now() + Duration::from_secs(30);
    assert_eq!(
        queries.first_column("SELECT 1", deadline).await.unwrap(),
        ["s3://b/one", "s3://b/two"]
    );
    let missing = AthenaQueries::new(athena, "no-such-workgroup", "gs_db");
    let err = missing
        .first_column("SELECT 1", deadline)
        .await
        .unwrap_err();
    assert!(matches!(err, QueryError::Aws(_)), "{err:?}");
}
