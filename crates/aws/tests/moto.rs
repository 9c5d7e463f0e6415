//! The AWS adapters against moto server (a real AWS-API emulator) on loopback.

use gender_aws::Backoff;
use gender_aws::dynamodb::DynamoProfiles;
use gender_aws::kinesis::KinesisHitLog;
use gender_aws::lambda::SelfInvoke;
use gender_aws::s3::{S3ObjectStore, client as s3_client};
use gender_core::ports::{
    ApplyOutcome, Continuation, CounterStore, HealthProbe, HitLog, Lease, LeaseGrant, LogRecord,
    ObjectStore, ProfileReader, WindowStore,
};
use gender_core::{Date, Gender, VisitorDelta, WindowSums};
use gender_testkit::{Moto, resources};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const NOW: i64 = 1_795_514_400_000;

fn record(id: &str, n: usize) -> LogRecord {
    LogRecord {
        partition_key: id.into(),
        data: format!(r#"{{"clientid":"{id}","pageGender":"M","n":{n}}}"#).into_bytes(),
    }
}

fn delta(id: &str, m: u64, f: u64, last: Gender, at: i64) -> VisitorDelta {
    VisitorDelta {
        clientid: id.into(),
        m,
        f,
        last_gender: last,
        last_seen_ms: at,
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
    let stored = resources::read_stream(&kinesis, "hits").await;
    assert_eq!(stored.len(), 500);
    assert_eq!(stored[3], ("v3".to_owned(), records[3].data.clone()));
}

#[tokio::test]
async fn kinesis_missing_stream_is_an_error_not_an_acceptance() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let log =
        KinesisHitLog::new(aws_sdk_kinesis::Client::new(&config), "nope").with_backoff(quick());
    assert!(log.append(vec![record("a", 0)]).await.is_err());
}

/// A fault-injecting proxy in front of moto: moto cannot report per-record
/// `PutRecords` failures, so the first `fail_calls` PutRecords calls forward
/// only the even-indexed records and answer the odd ones as throttled,
/// exactly as Kinesis does under a hot shard.
async fn throttling_proxy(upstream: String, fail_calls: usize) -> (String, Arc<AtomicUsize>) {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, Method, Uri};
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let client = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let (client, upstream, calls) = (client.clone(), upstream.clone(), seen.clone());
        async move {
            let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            let mut forwarded = body.to_vec();
            let mut dropped = Vec::new();
            if target.ends_with("PutRecords") && calls.fetch_add(1, Ordering::SeqCst) < fail_calls {
                let mut request: serde_json::Value = serde_json::from_slice(&body).expect("PutRecords is JSON");
                let all = request["Records"].as_array().unwrap().clone();
                let (keep, drop): (Vec<_>, Vec<_>) = all.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
                dropped = drop.iter().map(|(i, _)| *i).collect();
                request["Records"] = keep.into_iter().map(|(_, r)| r).collect();
                forwarded = serde_json::to_vec(&request).unwrap();
            }
            let mut builder = client.request(method, format!("{upstream}{uri}"));
            for (name, value) in &headers {
                if name != "content-length" && name != "host" {
                    builder = builder.header(name, value);
                }
            }
            let response = builder.body(forwarded).send().await.unwrap();
            let status = response.status();
            let content_type = response.headers().get("content-type").cloned();
            let mut bytes = response.bytes().await.unwrap().to_vec();
            if !dropped.is_empty() && status.is_success() {
                let mut answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                let mut results: Vec<serde_json::Value> = answer["Records"].as_array().unwrap().clone();
                for &i in &dropped {
                    let failure = serde_json::json!({"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded for shard"});
                    results.insert(i, failure);
                }
                answer["FailedRecordCount"] = dropped.len().into();
                answer["Records"] = results.into();
                bytes = serde_json::to_vec(&answer).unwrap();
            }
            let mut reply = axum::http::Response::builder().status(status.as_u16());
            if let Some(ct) = content_type {
                reply = reply.header("content-type", ct);
            }
            reply.body(axum::body::Body::from(bytes)).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), calls)
}

#[tokio::test]
async fn kinesis_partial_failures_are_retried_until_stored_once() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let kinesis = resources::create_stream(&config, "hits").await;
    let (proxy, calls) = throttling_proxy(moto.endpoint.clone(), 2).await;
    let proxied = aws_sdk_kinesis::config::Builder::from(&config)
        .endpoint_url(proxy)
        .build();
    let log = KinesisHitLog::new(aws_sdk_kinesis::Client::from_conf(proxied), "hits")
        .with_backoff(quick());

    let records: Vec<_> = (0..10).map(|i| record(&format!("v{i}"), i)).collect();
    assert_eq!(
        log.append(records.clone()).await.unwrap(),
        Vec::<usize>::new(),
        "all stored in the end"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "10 -> 5 failed -> 2 failed -> done"
    );
    let mut stored: Vec<_> = resources::read_stream(&kinesis, "hits")
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    stored.sort();
    let mut expected: Vec<_> = records.iter().map(|r| r.partition_key.clone()).collect();
    expected.sort();
    assert_eq!(stored, expected, "each record exactly once");

    // When retries run out, only the stored ones count: the rest are reported.
    let (proxy, _) = throttling_proxy(moto.endpoint.clone(), usize::MAX).await;
    let proxied = aws_sdk_kinesis::config::Builder::from(&config)
        .endpoint_url(proxy)
        .build();
    let log = KinesisHitLog::new(aws_sdk_kinesis::Client::from_conf(proxied), "hits").with_backoff(
        Backoff {
            attempts: 2,
            ..quick()
        },
    );
    let failed = log.append(records[..4].to_vec()).await.unwrap();
    assert_eq!(
        failed,
        [3],
        "attempt 1 stores 0 and 2, attempt 2 stores 1, then no attempts are left"
    );
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

#[tokio::test]
async fn dynamodb_applies_an_object_exactly_once_across_chunks() {
    let moto = Moto::start();
    let store = profiles(&moto).await;
    store.ping().await.unwrap();
    // 250 visitors: three transactions of at most 100 items each.
    let deltas: Vec<_> = (0..250)
        .map(|i| delta(&format!("v{i:03}"), 2, 1, Gender::M, NOW + i))
        .collect();
    assert_eq!(
        store
            .apply_object("bucket/raw/o1#etag", &deltas, NOW)
            .await
            .unwrap(),
        ApplyOutcome::Applied
    );
    assert_eq!(
        store
            .apply_object("bucket/raw/o1#etag", &deltas, NOW + 1)
            .await
            .unwrap(),
        ApplyOutcome::AlreadyApplied
    );
    for id in ["v000", "v123", "v249"] {
        let p = store.get_profile(id).await.unwrap().unwrap();
        assert_eq!((p.m, p.f, p.last_gender), (2, 1, Gender::M), "{id}");
    }
    assert_eq!(store.get_profile("nobody").await.unwrap(), None);
}

#[tokio::test]
async fn dynamodb_last_moves_only_forward() {
    let moto = Moto::start();
    let store = profiles(&moto).await;
    store
        .apply_object("o1", &[delta("a", 1, 0, Gender::M, NOW)], NOW)
        .await
        .unwrap();
    store
        .apply_object("o2", &[delta("a", 0, 1, Gender::F, NOW - 5_000)], NOW)
        .await
        .unwrap();
    let p = store.get_profile("a").await.unwrap().unwrap();
    assert_eq!(
        (p.m, p.f, p.last_gender, p.last_seen_ms),
        (1, 1, Gender::M, NOW),
        "older hit keeps last"
    );
    store
        .apply_object("o3", &[delta("a", 0, 1, Gender::F, NOW)], NOW)
        .await
        .unwrap();
    assert_eq!(
        store.get_profile("a").await.unwrap().unwrap().last_gender,
        Gender::F,
        "equal time, processed later"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_concurrent_objects_over_overlapping_visitors_lose_nothing() {
    let moto = Moto::start();
    let store = Arc::new(profiles(&moto).await);
    let tasks: Vec<_> = (0..6)
        .map(|o| {
            let store = store.clone();
            tokio::spawn(async move {
                // Every object touches the shared visitors plus one of its own.
                let mut deltas: Vec<_> = (0..20)
                    .map(|i| delta(&format!("shared-{i:02}"), 1, 2, Gender::F, NOW + o))
                    .collect();
                deltas.push(delta(&format!("own-{o}"), 1, 0, Gender::M, NOW));
                deltas.sort_by(|a, b| a.clientid.cmp(&b.clientid));
                store
                    .apply_object(&format!("obj-{o}"), &deltas, NOW)
                    .await
                    .unwrap()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), ApplyOutcome::Applied);
    }
    for i in 0..20 {
        let p = store
            .get_profile(&format!("shared-{i:02}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((p.m, p.f, p.last_seen_ms), (6, 12, NOW + 5));
    }
}

#[tokio::test]
async fn dynamodb_windows_are_set_and_cleared_on_existing_profiles_only() {
    let moto = Moto::start();
    let store = profiles(&moto).await;
    store
        .apply_object(
            "o",
            &[
                delta("a", 1, 0, Gender::M, NOW),
                delta("b", 0, 1, Gender::F, NOW),
            ],
            NOW,
        )
        .await
        .unwrap();
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
    let deltas: Vec<_> = ids
        .iter()
        .map(|id| delta(id, 1, 0, Gender::M, NOW))
        .collect();
    store.apply_object("o", &deltas, NOW).await.unwrap();
    // The object's `last_*` updates are also made as slots free up.
    for id in &ids {
        let profile = store.get_profile(id).await.unwrap().unwrap();
        assert_eq!(
            (profile.last_gender, profile.last_seen_ms),
            (Gender::M, NOW),
            "{id}"
        );
    }
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
