//! The daily Lambda's handler with the scheduled and the manual event, over
//! S3 and DynamoDB in moto server: its runs, its continuations past the
//! deadline, its lease, and its writes through faults moto never raises
//! (injected by a proxy in front of moto).

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use gender_aws::Backoff;
use gender_aws::dynamodb::DynamoProfiles;
use gender_aws::s3::S3ObjectStore;
use gender_core::ports::{Continuation, Lease, ObjectStore, ProfileReader};
use gender_core::{Date, Gender, Hit, PortError};
use gender_daily::{Config, Daily, DailyReply, Invocation};
use gender_testkit::{Moto, resources};
use serde_json::json;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SCHEDULED: &str = "eventbridge-scheduled.json";
const MANUAL: &str = "daily-manual.json";
const BUCKET: &str = "gs-test-curated";
const TABLE: &str = "gs-test-profiles";

fn quick() -> Backoff {
    Backoff {
        attempts: 6,
        base: Duration::from_millis(5),
        cap: Duration::from_millis(50),
    }
}

/// An invocation with the whole 15 minutes ahead.
fn at_ease(request_id: &str) -> Invocation {
    Invocation {
        request_id: request_id.into(),
        deadline_ms: gender_core::time::system_now_ms() + 900_000,
    }
}

/// An invocation past its deadline's margin: it stops at the first chance.
fn out_of_time(request_id: &str) -> Invocation {
    Invocation {
        request_id: request_id.into(),
        deadline_ms: 0,
    }
}

/// Lambda's queue of asynchronous invocations, as far as this test needs
/// it: the continuations asked for, delivered by the test itself (moto's
/// Lambda does not run functions).
#[derive(Default)]
struct Queued(Mutex<Vec<Date>>);

impl Queued {
    fn take(&self) -> Vec<Date> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

#[async_trait::async_trait]
impl Continuation for Queued {
    async fn continue_daily(&self, date: Date) -> Result<(), PortError> {
        self.0.lock().unwrap().push(date);
        Ok(())
    }
}

/// What the fault proxy saw of `UpdateItem`: the keys it passed to moto,
/// and the faults it answered instead.
#[derive(Default)]
struct Updates {
    forwarded: Vec<String>,
    faults: usize,
    attempts: HashMap<String, usize>,
}

/// DynamoDB's answer for each injected fault, in order of attempts.
const FAULTS: [(&str, &str); 3] = [
    (
        "com.amazonaws.dynamodb.v20120810#TransactionConflictException",
        "Transaction is ongoing for the item",
    ),
    (
        "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "The level of configured provisioned throughput for the table was exceeded.",
    ),
    (
        "com.amazon.coral.availability#ThrottlingException",
        "Throughput exceeds the current capacity of your table or index.",
    ),
];

/// A proxy in front of moto answering the first `faults_per_key`
/// `UpdateItem` attempts of each key with the errors of [`FAULTS`] (what
/// DynamoDB answers under load, and what moto never does), and recording
/// the `UpdateItem`s it passes on.
async fn fault_proxy(upstream: String, faults_per_key: usize) -> (String, Arc<Mutex<Updates>>) {
    let seen = Arc::new(Mutex::new(Updates::default()));
    let updates = seen.clone();
    let client = reqwest::Client::new();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (client, upstream, updates) = (client.clone(), upstream.clone(), updates.clone());
            async move {
                let target = headers
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if target.ends_with(".UpdateItem") {
                    let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let key = request["Key"]["pk"]["S"].as_str().unwrap().to_owned();
                    let mut updates = updates.lock().unwrap();
                    let attempt = updates.attempts.entry(key.clone()).or_default();
                    *attempt += 1;
                    if *attempt <= faults_per_key {
                        let (kind, message) = FAULTS[(*attempt - 1) % FAULTS.len()];
                        updates.faults += 1;
                        return axum::http::Response::builder()
                            .status(400)
                            .header("content-type", "application/x-amz-json-1.0")
                            .body(axum::body::Body::from(
                                json!({"__type": kind, "message": message}).to_string(),
                            ))
                            .unwrap();
                    }
                    updates.forwarded.push(key);
                }
                let mut builder = client.request(method, format!("{upstream}{uri}"));
                for (name, value) in &headers {
                    if name != "content-length" && name != "host" {
                        builder = builder.header(name, value);
                    }
                }
                let response = builder.body(body.to_vec()).send().await.unwrap();
                let mut reply = axum::http::Response::builder().status(response.status().as_u16());
                if let Some(ct) = response.headers().get("content-type") {
                    reply = reply.header("content-type", ct.clone());
                }
                reply
                    .body(axum::body::Body::from(response.bytes().await.unwrap()))
                    .unwrap()
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

struct Setup {
    _moto: Moto,
    sdk: aws_config::SdkConfig,
    curated: S3ObjectStore,
    /// Straight to moto: how the test reads (and seeds) the table.
    profiles: DynamoProfiles,
    updates: Arc<Mutex<Updates>>,
    queued: Arc<Queued>,
    daily: Daily,
}

/// The bucket and table, `visitors` visitors with hits on 2026-11-20 (curated
/// hits and counters, as curate and the consumer leave them), and the
/// handler, whose DynamoDB calls go through the fault proxy.
async fn setup(visitors: usize, faults_per_key: usize, writes_per_second: u32) -> Setup {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let s3 = gender_aws::s3::client(&sdk);
    resources::create_bucket(&s3, BUCKET).await;
    let dynamo = resources::create_table(&sdk, TABLE).await;
    let profiles = DynamoProfiles::new(dynamo.clone(), TABLE).with_backoff(quick());
    let curated = S3ObjectStore::new(s3.clone(), BUCKET);

    let at = gender_core::time::parse_rfc3339_millis("2026-11-20T10:00:00Z").unwrap();
    let mut hits: Vec<Hit> = Vec::new();
    for i in 0..visitors {
        for gender in [Gender::M, Gender::M, Gender::F] {
            hits.push(Hit {
                clientid: format!("visitor-{i:02}").into(),
                gender,
                event_ms: at,
                hitid: None,
            });
        }
    }
    let key = "curated/hits/dt=2026-11-20/x.parquet";
    let body = gender_pipeline::codec::encode_hits(&hits.iter().collect::<Vec<_>>(), key).unwrap();
    curated.put(key, body).await.unwrap();
    for delta in gender_core::aggregate_hits(&hits) {
        resources::put_profile(
            &dynamo,
            TABLE,
            &delta.clientid,
            (delta.m, delta.f),
            delta.last_gender.as_str(),
            delta.last_seen_ms,
        )
        .await;
    }

    let (proxy, updates) = fault_proxy(moto.endpoint.clone(), faults_per_key).await;
    let proxied = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .endpoint_url(proxy)
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_initial_backoff(Duration::from_millis(5)),
        )
        .build();
    let queued = Arc::new(Queued::default());
    let daily = Daily::with_ports(
        curated.clone(),
        DynamoProfiles::new(aws_sdk_dynamodb::Client::from_conf(proxied), TABLE)
            .with_backoff(quick()),
        queued.clone(),
        NonZeroU32::new(writes_per_second).unwrap(),
    );
    Setup {
        _moto: moto,
        sdk,
        curated,
        profiles,
        updates,
        queued,
        daily,
    }
}

fn complete(reply: DailyReply) -> gender_core::DailySummary {
    match reply {
        DailyReply::Complete(summary) => summary,
        other => panic!("not complete: {other:?}"),
    }
}

async fn window(profiles: &DynamoProfiles, id: &str) -> Option<(u64, u64)> {
    let profile = profiles.get_profile(id).await.unwrap().unwrap();
    profile.window.map(|w| (w.m, w.f))
}

#[tokio::test]
async fn scheduled_and_manual_runs_set_the_window_and_write_rollups() {
    let s = setup(1, 0, 2_000).await;
    let summary = complete(
        s.daily
            .handle(
                &serde_json::from_str(&gender_testkit::fixture(SCHEDULED)).unwrap(),
                &at_ease("req-1"),
            )
            .await
            .unwrap(),
    );
    assert_eq!(
        (summary.date.as_str(), summary.window_from.as_str()),
        ("2026-11-23", "2026-11-17")
    );
    assert_eq!(summary.visitors_in_window, 1);
    assert_eq!(window(&s.profiles, "visitor-00").await, Some((2, 1)));
    let rollups = s.curated.list("curated/daily/").await.unwrap();
    assert_eq!(rollups.len(), 7, "one rollup per date of the window");

    let again = complete(
        s.daily
            .handle(
                &serde_json::from_str(&gender_testkit::fixture(MANUAL)).unwrap(),
                &at_ease("req-2"),
            )
            .await
            .unwrap(),
    );
    assert_eq!(
        again, summary,
        "a re-run of the same date gives identical results"
    );
    assert_eq!(
        s.updates.lock().unwrap().forwarded,
        ["visitor-00"],
        "and writes nothing"
    );

    let later = complete(
        s.daily
            .handle(&json!({"date": "2026-12-31"}), &at_ease("req-3"))
            .await
            .unwrap(),
    );
    assert_eq!(later.signals_cleared, 1);
    assert_eq!(window(&s.profiles, "visitor-00").await, None);
    assert!(s.queued.take().is_empty(), "no run needed a continuation");
}

#[tokio::test]
async fn a_run_stopped_at_its_deadline_continues_in_new_invocations_without_rewriting() {
    // 50 writes a second: batches of 5, so 20 visitors take four.
    let s = setup(20, 0, 50).await;
    let date = Date::parse("2026-11-23").unwrap();
    let first = s
        .daily
        .handle(&json!({"date": "2026-11-23"}), &out_of_time("req-0"))
        .await
        .unwrap();
    assert!(matches!(first, DailyReply::Continued(_)), "{first:?}");
    let mut invocations = 1;
    let summary = loop {
        assert_eq!(s.queued.take(), [date], "one continuation queued");
        invocations += 1;
        assert!(invocations < 20, "no end in sight");
        // Lambda delivers the queued event to a new invocation.
        let event = json!({"date": "2026-11-23", "continue": true});
        match s
            .daily
            .handle(&event, &out_of_time(&format!("req-{invocations}")))
            .await
            .unwrap()
        {
            DailyReply::Complete(summary) => break summary,
            DailyReply::Continued(stop) => assert_eq!(stop.requested, "2026-11-23"),
            other => panic!("{other:?}"),
        }
    };
    // One invocation for each of the first six rollups rebuilt, one for the
    // seventh and the first batch, one for each other batch, and the last
    // finds nothing left but to record the window applied.
    assert_eq!(invocations, 6 + 4 + 1);
    assert_eq!(summary.visitors_in_window, 20);
    let mut forwarded = s.updates.lock().unwrap().forwarded.clone();
    let written = forwarded.len();
    forwarded.sort();
    forwarded.dedup();
    assert_eq!(
        (written, forwarded.len()),
        (20, 20),
        "every window written once"
    );
    for i in 0..20 {
        let id = format!("visitor-{i:02}");
        assert_eq!(window(&s.profiles, &id).await, Some((2, 1)), "{id}");
    }
    // A continuation delivered twice (Lambda may) finds nothing to do.
    let stale = s
        .daily
        .handle(
            &json!({"date": "2026-11-23", "continue": true}),
            &at_ease("req-again"),
        )
        .await
        .unwrap();
    assert!(matches!(stale, DailyReply::Skipped { .. }), "{stale:?}");
    assert_eq!(s.updates.lock().unwrap().forwarded.len(), 20);
}

#[tokio::test]
async fn a_second_run_while_one_is_active_is_refused_by_the_lease() {
    let s = setup(3, 0, 2_000).await;
    let event = json!({"date": "2026-11-23"});
    // Two invocations at once (the CLI's retries of a timed-out call).
    let (first, second) = (at_ease("req-a"), at_ease("req-b"));
    let (a, b) = tokio::join!(
        s.daily.handle(&event, &first),
        s.daily.handle(&event, &second)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let (done, refused) = match (&a, &b) {
        (DailyReply::Complete(_), DailyReply::Skipped { reason, .. }) => (&a, reason),
        (DailyReply::Skipped { reason, .. }, DailyReply::Complete(_)) => (&b, reason),
        _ => panic!("one run, one refusal: {a:?} / {b:?}"),
    };
    assert!(refused.contains("holds the lease"), "{refused}");
    assert_eq!(s.updates.lock().unwrap().forwarded.len(), 3);
    // Released at the end: the next run runs (and writes nothing new).
    let again = s.daily.handle(&event, &at_ease("req-c")).await.unwrap();
    assert_eq!(&again, done);
    // A run that died holding the lease blocks others until it expires.
    let now = gender_core::time::system_now_ms();
    s.profiles
        .acquire("daily", "req-dead", now, now + 60_000)
        .await
        .unwrap();
    let blocked = s.daily.handle(&event, &at_ease("req-d")).await.unwrap();
    assert!(
        matches!(&blocked, DailyReply::Skipped { reason, .. } if reason.contains("req-dead")),
        "{blocked:?}"
    );
}

#[tokio::test]
async fn window_writes_are_retried_through_conflicts_and_throttling() {
    // Every window write meets a transaction conflict, then throughput
    // exceeded, then throttling, before it lands.
    let s = setup(10, FAULTS.len(), 2_000).await;
    let summary = complete(
        s.daily
            .handle(&json!({"date": "2026-11-23"}), &at_ease("req-1"))
            .await
            .unwrap(),
    );
    assert_eq!(summary.visitors_in_window, 10);
    let (faults, mut forwarded) = {
        let updates = s.updates.lock().unwrap();
        (updates.faults, updates.forwarded.clone())
    };
    assert_eq!(faults, 10 * FAULTS.len());
    forwarded.sort();
    assert_eq!(
        forwarded,
        (0..10)
            .map(|i| format!("visitor-{i:02}"))
            .collect::<Vec<_>>()
    );
    for i in 0..10 {
        let id = format!("visitor-{i:02}");
        assert_eq!(window(&s.profiles, &id).await, Some((2, 1)), "{id}");
    }
    // The lease and the progress were never in the way: a re-run is a no-op.
    let sdk = &s.sdk;
    let again = Daily::new(
        Config {
            curated_bucket: BUCKET.into(),
            table_name: TABLE.into(),
            writes_per_second: NonZeroU32::new(2_000).unwrap(),
        },
        sdk,
        "gender-test-daily",
    )
    .handle(&json!({"date": "2026-11-23"}), &at_ease("req-2"))
    .await
    .unwrap();
    assert_eq!(complete(again), summary);
}
