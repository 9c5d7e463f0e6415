//! The AWS adapters against moto server (a real AWS-API emulator) on loopback.

use gender_aws::Backoff;
use gender_aws::dynamodb::DynamoProfiles;
use gender_aws::kinesis::KinesisHitLog;
use gender_aws::lambda::SelfInvoke;
use gender_aws::s3::{S3ObjectStore, client as s3_client};
use gender_core::ports::{
    Continuation, HealthProbe, HitLog, Lease, LeaseGrant, LogRecord, ObjectStore, ProfileReader,
    WindowStore,
};
use gender_core::{Date, WindowSums};
use gender_testkit::{Moto, resources};
use std::time::Duration;

const NOW: i64 = 1_795_514_400_000;

fn record(id: &str, n: usize) -> LogRecord {
    LogRecord {
        partition_key: id.into(),
        data: format!(r#"{{"clientid":"{id}","pageGender":"M","n":{n}}}"#).into_bytes(),
    }
}

fn quick() -> Backoff {
    Backoff {
        attempts: 6,
        base: Duration::from_millis(5),
        cap: Duration::from_millis(50),
    }
}

#[tokio::test]
async fn kinesis_stores_every_record_keyed_by_clientid() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let kinesis = resources::create_stream(&config, "hits").await;
    let log = KinesisHitLog::new(aws_sdk_kinesis::Client::new(&config), "hits");
    let records: Vec<_> = (0..500)
        .map(|i| record(&format!("v{}", i % 7), i))
        .collect();
    assert_eq!(
        log.append(records.clone()).await.unwrap(),
        Vec::<usize>::new()
    );
    // Each visitor's hits of the request (none with a timestamp: one date,
    // their arrival's) share one record, in request order.
    let stored = resources::read_stream(&kinesis, "hits").await;
    assert_eq!(stored.len(), 7);
    for (key, data) in &stored {
        let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
        let want: Vec<&[u8]> = records
            .iter()
            .filter(|r| &r.partition_key == key)
            .map(|r| r.data.as_slice())
            .collect();
        assert_eq!(lines, want, "{key}");
    }
}

#[tokio::test]
async fn kinesis_missing_stream_is_an_error_not_an_acceptance() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let log =
        KinesisHitLog::new(aws_sdk_kinesis::Client::new(&config), "nope").with_backoff(quick());
    assert!(log.append(vec![record("a", 0)]).await.is_err());
}

#[tokio::test]
async fn s3_object_store_round_trip() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let client = s3_client(&config);
    resources::create_bucket(&client, "curated").await;
    let store = S3ObjectStore::new(client, "curated");
    store
        .put("curated/hits/dt=2026-11-24/a.parquet", b"A".to_vec())
        .await
        .unwrap();
    store
        .put("curated/hits/dt=2026-11-24/_temporary", b"x".to_vec())
        .await
        .unwrap();
    store
        .put("curated/hits/dt=2026-11-25/b.parquet", b"B".to_vec())
        .await
        .unwrap();
    assert_eq!(
        store
            .get("curated/hits/dt=2026-11-24/a.parquet")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"A"[..])
    );
    assert_eq!(store.get("missing").await.unwrap(), None);
    assert_eq!(
        store.list("curated/hits/").await.unwrap(),
        [
            "curated/hits/dt=2026-11-24/a.parquet",
            "curated/hits/dt=2026-11-25/b.parquet"
        ]
    );
    store
        .delete("curated/hits/dt=2026-11-24/a.parquet")
        .await
        .unwrap();
    assert_eq!(
        store.list("curated/hits/dt=2026-11-24/").await.unwrap(),
        Vec::<String>::new()
    );
    let missing_bucket = S3ObjectStore::new(s3_client(&config), "nope");
    assert!(missing_bucket.get("x").await.is_err());
}

async fn profiles(moto: &Moto) -> DynamoProfiles {
    let config = moto.sdk_config().await;
    let client = resources::create_table(&config, "profiles").await;
    DynamoProfiles::new(client, "profiles").with_backoff(quick())
}

/// Profiles as the stream consumer leaves them.
async fn seed(moto: &Moto, ids: &[&str]) {
    let client = aws_sdk_dynamodb::Client::new(&moto.sdk_config().await);
    for id in ids {
        resources::put_profile(&client, "profiles", id, (1, 0), "M", NOW).await;
    }
}

#[tokio::test]
async fn dynamodb_windows_are_set_and_cleared_on_existing_profiles_only() {
    let moto = Moto::start();
    let store = profiles(&moto).await;
    store.ping().await.unwrap();
    seed(&moto, &["a", "b"]).await;
    let w = WindowSums {
        m: 3,
        f: 4,
        date: Date::parse("2026-11-23").unwrap(),
    };
    store
        .set_windows(
            &[
                ("a".into(), Some(w)),
                ("b".into(), Some(w)),
                ("ghost".into(), Some(w)),
            ],
            NOW,
        )
        .await
        .unwrap();
    for id in ["a", "b"] {
        assert_eq!(
            store.get_profile(id).await.unwrap().unwrap().window,
            Some(w),
            "{id}"
        );
    }
    assert_eq!(
        store.get_profile("ghost").await.unwrap(),
        None,
        "ghost not created"
    );
    store.set_windows(&[("a".into(), None)], NOW).await.unwrap();
    assert_eq!(store.get_profile("a").await.unwrap().unwrap().window, None);
    assert_eq!(
        store.get_profile("b").await.unwrap().unwrap().window,
        Some(w)
    );
    assert_eq!(store.get_profile("ghost").await.unwrap(), None);
}

#[tokio::test]
async fn dynamodb_window_writes_beyond_the_requests_in_flight_all_land() {
    // More writes than requests in flight (64): each slot is refilled from
    // the lazily made requests until every one was sent, clears included.
    let moto = Moto::start();
    let store = profiles(&moto).await;
    let ids: Vec<String> = (0..300).map(|i| format!("v{i:03}")).collect();
    seed(&moto, &ids.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let date = Date::parse("2026-11-23").unwrap();
    let sums = |i: u64| WindowSums { m: i, f: 1, date };
    let updates: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), Some(sums(i as u64))))
        .collect();
    store.set_windows(&updates, NOW).await.unwrap();
    let windows = |ids: &[String]| {
        let store = store.clone();
        let ids = ids.to_vec();
        async move {
            let mut out = Vec::new();
            for id in ids {
                out.push((
                    id.clone(),
                    store.get_profile(&id).await.unwrap().unwrap().window,
                ));
            }
            out
        }
    };
    let want: Vec<_> = updates.clone();
    assert_eq!(windows(&ids).await, want);

    let clears: Vec<_> = ids[..200].iter().map(|id| (id.clone(), None)).collect();
    store.set_windows(&clears, NOW).await.unwrap();
    let mut want = clears;
    want.extend_from_slice(&updates[200..]);
    assert_eq!(windows(&ids).await, want);
}

#[tokio::test]
async fn dynamodb_lease_is_held_by_one_owner_until_released_or_expired() {
    let moto = Moto::start();
    let store = profiles(&moto).await;
    let grant = |owner: &'static str, now: i64| {
        let store = store.clone();
        async move {
            store
                .acquire("daily", owner, now, now + 60_000)
                .await
                .unwrap()
        }
    };
    assert_eq!(grant("run-1", NOW).await, LeaseGrant::Granted);
    assert_eq!(
        grant("run-2", NOW + 1_000).await,
        LeaseGrant::HeldBy {
            owner: "run-1".into(),
            until_ms: NOW + 60_000,
        },
        "a second run is refused and told who holds it"
    );
    assert_eq!(
        grant("run-1", NOW + 30_000).await,
        LeaseGrant::Granted,
        "renewed"
    );
    assert!(matches!(
        grant("run-2", NOW + 60_001).await,
        LeaseGrant::HeldBy { .. }
    ));
    // Released by its owner only.
    store.release("daily", "run-2").await.unwrap();
    assert!(matches!(
        grant("run-2", NOW + 60_001).await,
        LeaseGrant::HeldBy { .. }
    ));
    store.release("daily", "run-1").await.unwrap();
    assert_eq!(grant("run-2", NOW + 60_001).await, LeaseGrant::Granted);
    // Expired (its owner died): taken over.
    assert_eq!(grant("run-3", NOW + 200_000).await, LeaseGrant::Granted);
}

/// `application/x-www-form-urlencoded`, every byte but letters and digits escaped.
fn form(pairs: &[(&str, &str)]) -> String {
    let escape = |text: &str| -> String {
        text.bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A function in moto's Lambda without Docker (it answers invocations
/// without running code, but creating one still checks that its role
/// exists), with that role created through the IAM query API (no IAM SDK in
/// this workspace).
async fn lambda_function(moto: &Moto, name: &str) -> aws_sdk_lambda::Client {
    let http = reqwest::Client::new();
    let config = http
        .post(format!("{}/moto-api/config", moto.endpoint))
        .json(&serde_json::json!({"lambda": {"use_docker": false}}))
        .send()
        .await
        .unwrap();
    assert!(config.status().is_success());
    let role = http
        .post(&moto.endpoint)
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=x",
        )
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("Action", "CreateRole"),
            ("Version", "2010-05-08"),
            ("RoleName", "daily"),
            ("AssumeRolePolicyDocument", r#"{"Version":"2012-10-17","Statement":[]}"#),
        ]))
        .send()
        .await
        .unwrap();
    assert!(role.status().is_success(), "{}", role.text().await.unwrap());
    let client = aws_sdk_lambda::Client::new(&moto.sdk_config().await);
    // An empty zip archive: moto keeps the code without running it.
    let mut zip = b"PK\x05\x06".to_vec();
    zip.resize(22, 0);
    client
        .create_function()
        .function_name(name)
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .handler("bootstrap")
        .role("arn:aws:iam::123456789012:role/daily")
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(zip))
                .build(),
        )
        .send()
        .await
        .unwrap();
    client
}

#[tokio::test]
async fn lambda_self_invoke_queues_the_continuation() {
    let moto = Moto::start();
    let client = lambda_function(&moto, "gender-test-daily").await;
    let date = Date::parse("2026-11-23").unwrap();
    SelfInvoke::new(client.clone(), "gender-test-daily")
        .with_backoff(quick())
        .continue_daily(date)
        .await
        .unwrap();
    assert_eq!(
        gender_aws::lambda::daily_continuation_event(date),
        br#"{"date":"2026-11-23","continue":true}"#
    );
    // (moto's Lambda without Docker answers any name, so an unknown
    // function's ResourceNotFoundException is not seen here.)
}
