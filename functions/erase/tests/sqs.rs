//! The erase Lambda's handler over S3, DynamoDB, SQS and Athena in moto
//! server: requests made through the AWS `Erasures` adapter, messages read
//! back from the erasure queue, Athena's answer seeded (moto does not run
//! queries), the curated Parquet read back after the run.

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use gender_aws::athena::AthenaQueries;
use gender_aws::dynamodb::DynamoProfiles;
use gender_aws::erasure::{CuratedObjects, ErasureLog, ErasureRequests, erasure_key};
use gender_aws::s3::S3ObjectStore;
use gender_core::ports::{Erasures, ObjectStore, ProfileReader};
use gender_core::{ErasureStatus, Gender, Hit};
use gender_erase::Erase;
use gender_pipeline::codec::{decode_daily, decode_hits, encode_daily_rows, encode_hits};
use gender_testkit::{Moto, resources};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const BUCKET: &str = "gs-test-curated";
const TABLE: &str = "gs-test-profiles";
const QUEUE: &str = "gs-test-erase";
const DATABASE: &str = "gs_test";
const SALT: &[u8] = b"test-salt";

struct Stack {
    moto: Moto,
    requests: ErasureRequests,
    erase: Erase,
    curated: S3ObjectStore,
    profiles: DynamoProfiles,
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    athena: aws_sdk_athena::Client,
    queue_url: String,
}

const HITS_FILES: [(&str, &[&str]); 4] = [
    // visitor-1 in three files over two dates, alone in one of them.
    (
        "curated/hits/dt=2026-11-20/a.parquet",
        &["visitor-1", "visitor-2", "visitor-1"],
    ),
    (
        "curated/hits/dt=2026-11-20/b.parquet",
        &["visitor-2", "visitor-3"],
    ),
    (
        "curated/hits/dt=2026-11-21/c.parquet",
        &["visitor-3", "visitor-1", "visitor-3"],
    ),
    ("curated/hits/dt=2026-11-21/d.parquet", &["visitor-1"]),
];
/// A rollup row: clientid, m, f.
type Row = (&'static str, i64, i64);

const ROLLUPS: [(&str, &[Row]); 2] = [
    (
        "curated/daily/dt=2026-11-20/daily.parquet",
        &[
            ("visitor-1", 1, 1),
            ("visitor-2", 2, 0),
            ("visitor-3", 0, 1),
        ],
    ),
    (
        "curated/daily/dt=2026-11-21/daily.parquet",
        &[("visitor-1", 1, 1), ("visitor-3", 1, 1)],
    ),
];
const SOURCES: &str = "v1 test-digest";

fn hits_of(ids: &[&str], day: i64) -> Vec<Hit<'static>> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| Hit {
            clientid: id.to_string().into(),
            gender: if i % 2 == 0 { Gender::M } else { Gender::F },
            event_ms: 1_795_600_000_000 + day * 86_400_000 + i as i64,
            hitid: Some(format!("h{i}").into()),
        })
        .collect()
}

async fn stack() -> Stack {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let s3 = gender_aws::s3::client(&sdk);
    resources::create_bucket(&s3, BUCKET).await;
    let dynamo = resources::create_table(&sdk, TABLE).await;
    let (sqs, queue_url) = resources::create_queue(&sdk, QUEUE).await;
    let curated = S3ObjectStore::new(s3.clone(), BUCKET);
    for (day, (key, ids)) in HITS_FILES.iter().enumerate() {
        let hits = hits_of(ids, day as i64);
        let refs: Vec<&Hit> = hits.iter().collect();
        curated
            .put(key, encode_hits(&refs, key).unwrap())
            .await
            .unwrap();
    }
    for (key, rows) in ROLLUPS {
        curated
            .put(
                key,
                encode_daily_rows(rows.iter().copied(), key, Some(SOURCES)).unwrap(),
            )
            .await
            .unwrap();
    }
    let profiles = DynamoProfiles::new(dynamo.clone(), TABLE);
    for (i, id) in ["visitor-1", "visitor-2", "visitor-3"]
        .into_iter()
        .enumerate()
    {
        let delta = &gender_core::aggregate_hits(&hits_of(&[id, id], i as i64))[0];
        resources::put_profile(
            &dynamo,
            TABLE,
            id,
            (delta.m, delta.f),
            delta.last_gender.as_str(),
            delta.last_seen_ms,
        )
        .await;
    }
    let log = ErasureLog::new(dynamo.clone(), TABLE);
    let athena = aws_sdk_athena::Client::new(&sdk);
    // As Terraform makes it: the results go to a prefix of their own.
    athena
        .create_work_group()
        .name("gs-test-erase")
        .configuration(
            aws_sdk_athena::types::WorkGroupConfiguration::builder()
                .result_configuration(
                    aws_sdk_athena::types::ResultConfiguration::builder()
                        .output_location(format!("s3://{BUCKET}/athena-results/erase/"))
                        .build(),
                )
                .enforce_work_group_configuration(true)
                .build(),
        )
        .send()
        .await
        .unwrap();
    Stack {
        requests: ErasureRequests::new(log.clone(), sqs.clone(), &queue_url, SALT),
        erase: Erase::from_parts(
            log,
            AthenaQueries::new(athena.clone(), "gs-test-erase", DATABASE)
                .with_poll(Duration::from_millis(10)),
            CuratedObjects::new(s3, BUCKET),
        ),
        curated,
        profiles,
        dynamo,
        sqs,
        athena,
        queue_url,
        moto,
    }
}

impl Stack {
    /// Makes moto's next Athena query answer these `$path`s (with the
    /// header row a SELECT's first page starts with).
    async fn athena_finds(&self, keys: &[&str]) {
        let mut rows = vec![serde_json::json!({"Data": [{"VarCharValue": "path"}]})];
        rows.extend(keys.iter().map(
            |k| serde_json::json!({"Data": [{"VarCharValue": format!("s3://{BUCKET}/{k}")}]}),
        ));
        let body = serde_json::json!({"results": [{"rows": rows, "column_info": [
            {"Name": "path", "Label": "path", "Type": "varchar"}
        ]}]});
        let status = reqwest::Client::new()
            .post(format!(
                "{}/moto-api/static/athena/query-results",
                self.moto.endpoint
            ))
            .json(&body)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 201);
    }

    /// Every message on the erasure queue, as the event source mapping
    /// would hand them to the function.
    async fn queued(&self) -> SqsEvent {
        let mut event = SqsEvent::default();
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap();
            if out.messages().is_empty() {
                return event;
            }
            for m in out.messages() {
                let mut message = SqsMessage::default();
                message.message_id = m.message_id.clone();
                message.body = m.body.clone();
                event.records.push(message);
            }
        }
    }

    async fn run(&self, event: SqsEvent) -> (Vec<String>, gender_erase::Report) {
        let deadline = Instant::now() + Duration::from_secs(900);
        let (response, report) = self
            .erase
            .handle_at(event, 1_800_000_000_000, deadline)
            .await;
        let failed = response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        (failed, report)
    }

    /// clientid -> rows, per hits file.
    async fn hits(&self) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        for (key, _) in HITS_FILES {
            let bytes = self.curated.get(key).await.unwrap().unwrap();
            let ids = decode_hits(bytes, key)
                .unwrap()
                .into_iter()
                .map(|h| h.clientid.into_owned())
                .collect();
            out.insert(key.to_owned(), ids);
        }
        out
    }

    async fn rollup(&self, key: &str) -> Vec<(String, i64, i64)> {
        let bytes = self.curated.get(key).await.unwrap().unwrap();
        decode_daily(bytes, key)
            .unwrap()
            .into_iter()
            .map(|r| (r.clientid, r.m, r.f))
            .collect()
    }

    /// The stored log item's attribute names.
    async fn log_item(&self, id: &str) -> Vec<String> {
        resources::item_attributes(&self.dynamo, TABLE, &erasure_key(id)).await
    }

    /// Query texts Athena received.
    async fn queries(&self) -> Vec<String> {
        let ids = self.athena.list_query_executions().send().await.unwrap();
        let mut out = Vec::new();
        for id in ids.query_execution_ids() {
            let q = self
                .athena
                .get_query_execution()
                .query_execution_id(id)
                .send()
                .await
                .unwrap();
            out.push(q.query_execution.unwrap().query.unwrap_or_default());
        }
        out
    }
}

fn without(ids: &[&str], gone: &[&str]) -> Vec<String> {
    ids.iter()
        .filter(|id| !gone.contains(id))
        .map(|id| id.to_string())
        .collect()
}

const VISITOR_1_OBJECTS: [&str; 5] = [
    "curated/hits/dt=2026-11-20/a.parquet",
    "curated/hits/dt=2026-11-21/c.parquet",
    "curated/hits/dt=2026-11-21/d.parquet",
    "curated/daily/dt=2026-11-20/daily.parquet",
    "curated/daily/dt=2026-11-21/daily.parquet",
];

#[tokio::test]
async fn an_erasure_removes_the_profile_and_the_rows_and_a_rerun_changes_nothing() {
    let s = stack().await;
    let record = s
        .requests
        .request_erasure("visitor-1", 1_799_999_000_000)
        .await
        .unwrap();
    assert_eq!(record.status, ErasureStatus::Pending);
    assert_eq!(
        s.requests.erasure(&record.id).await.unwrap(),
        Some(record.clone())
    );
    // While pending, and only then, the entry holds the clientid.
    assert!(
        s.log_item(&record.id)
            .await
            .contains(&"clientid".to_owned())
    );

    // The stream consumer recorded the dates visitor-1 has hits on.
    let mut dates = gender_core::stream::HitDates::default();
    for day in ["2026-11-20", "2026-11-21"] {
        dates.add(gender_core::Date::parse(day).unwrap());
    }
    s.dynamo
        .update_item()
        .table_name(TABLE)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("visitor-1".into()),
        )
        .update_expression("SET dd = :dd")
        .expression_attribute_values(
            ":dd",
            aws_sdk_dynamodb::types::AttributeValue::B(dates.encode().into()),
        )
        .send()
        .await
        .unwrap();

    let event = s.queued().await;
    assert_eq!(event.records.len(), 1);
    assert_eq!(event.records[0].body.as_deref(), Some(record.id.as_str()));
    // A path outside curated/ is never touched.
    let mut found = VISITOR_1_OBJECTS.to_vec();
    found.push("raw/dt=2026-11-20/x.ndjson");
    s.athena_finds(&found).await;
    let (failed, report) = s.run(event.clone()).await;
    assert!(failed.is_empty(), "{report:?}");
    assert_eq!(
        (report.pending, report.completed, report.objects_found),
        (1, 1, 5)
    );
    assert_eq!((report.objects_rewritten, report.hit_rows_removed), (5, 4));

    assert_eq!(s.profiles.get_profile("visitor-1").await.unwrap(), None);
    for other in ["visitor-2", "visitor-3"] {
        assert!(s.profiles.get_profile(other).await.unwrap().is_some());
    }
    let hits = s.hits().await;
    for (key, ids) in HITS_FILES {
        assert_eq!(hits[key], without(ids, &["visitor-1"]), "{key}");
    }
    for (key, rows) in ROLLUPS {
        let expected: Vec<(String, i64, i64)> = rows
            .iter()
            .filter(|r| r.0 != "visitor-1")
            .map(|(id, m, f)| (id.to_string(), *m, *f))
            .collect();
        assert_eq!(s.rollup(key).await, expected, "{key}");
        // The record of what the rollup was built from stays.
        let bytes = bytes::Bytes::from(s.curated.get(key).await.unwrap().unwrap());
        assert_eq!(
            gender_pipeline::codec::daily_sources(&bytes, key)
                .unwrap()
                .as_deref(),
            Some(SOURCES)
        );
    }

    let done = s.requests.erasure(&record.id).await.unwrap().unwrap();
    assert_eq!(done.status, ErasureStatus::Complete);
    assert_eq!(done.completed_ms, Some(1_800_000_000_000));
    assert_eq!(done.clientid_hash, record.clientid_hash);
    assert_eq!(
        s.log_item(&record.id).await,
        [
            "clientid_hash",
            "completed_at",
            "pk",
            "requested_at",
            "status"
        ]
    );
    // Athena's history holds no clientid; the query read only the
    // visitor's dates.
    let queries = s.queries().await;
    assert_eq!(queries.len(), 1);
    assert!(!queries[0].contains("visitor"), "{}", queries[0]);
    assert_eq!(report.dates_queried, Some(2));
    assert_eq!(
        queries[0]
            .matches("AND dt IN ('2026-11-20', '2026-11-21')")
            .count(),
        2,
        "{}",
        queries[0]
    );

    // SQS delivers the message again: the entry is complete, nothing runs.
    let before = s.hits().await;
    let (failed, report) = s.run(event).await;
    assert!(failed.is_empty());
    assert_eq!((report.already_complete, report.pending), (1, 0));
    assert_eq!(s.hits().await, before);
    assert_eq!(s.queries().await.len(), 1, "no second query");
}

#[tokio::test]
async fn two_erasures_share_one_batch_and_unknown_or_bad_ids_are_dropped() {
    let s = stack().await;
    let one = s.requests.request_erasure("visitor-1", 1).await.unwrap();
    let three = s.requests.request_erasure("visitor-3", 2).await.unwrap();
    let mut event = s.queued().await;
    assert_eq!(event.records.len(), 2);
    for (id, body) in [("m-unknown", "0".repeat(32)), ("m-bad", "visitor-2".into())] {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(body);
        event.records.push(m);
    }
    // SQS delivered one message twice.
    event.records.push(event.records[0].clone());

    let mut found = VISITOR_1_OBJECTS.to_vec();
    found.push("curated/hits/dt=2026-11-20/b.parquet");
    s.athena_finds(&found).await;
    let (failed, report) = s.run(event).await;
    assert!(failed.is_empty(), "{report:?}");
    assert_eq!(
        (
            report.messages,
            report.invalid,
            report.unknown,
            report.pending,
            report.completed
        ),
        (5, 1, 1, 2, 2)
    );
    assert_eq!(s.queries().await.len(), 1, "one query for the batch");

    let hits = s.hits().await;
    for (key, ids) in HITS_FILES {
        assert_eq!(
            hits[key],
            without(ids, &["visitor-1", "visitor-3"]),
            "{key}"
        );
    }
    assert_eq!(
        s.rollup("curated/daily/dt=2026-11-20/daily.parquet").await,
        [("visitor-2".to_owned(), 2, 0)]
    );
    assert!(
        s.rollup("curated/daily/dt=2026-11-21/daily.parquet")
            .await
            .is_empty()
    );
    assert!(s.profiles.get_profile("visitor-2").await.unwrap().is_some());
    for (record, id) in [(one, "visitor-1"), (three, "visitor-3")] {
        assert!(s.profiles.get_profile(id).await.unwrap().is_none());
        let done = s.requests.erasure(&record.id).await.unwrap().unwrap();
        assert_eq!(done.status, ErasureStatus::Complete);
    }
    // An id that was never issued, or is malformed, has no record.
    assert_eq!(s.requests.erasure(&"0".repeat(32)).await.unwrap(), None);
    assert_eq!(s.requests.erasure("visitor-1").await.unwrap(), None);
}

#[tokio::test]
async fn a_batch_cut_short_by_the_deadline_is_retried_and_finishes() {
    let s = stack().await;
    let record = s.requests.request_erasure("visitor-1", 1).await.unwrap();
    let event = s.queued().await;

    // Less time left than the margin: no object is started, the message
    // goes back to the queue, the entry stays pending.
    s.athena_finds(&VISITOR_1_OBJECTS).await;
    let soon = Instant::now() + gender_erase::DEADLINE_MARGIN / 2;
    let (response, report) = s.erase.handle_at(event.clone(), 5, soon).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(
        response.batch_item_failures[0].item_identifier,
        event.records[0].message_id.clone().unwrap()
    );
    assert_eq!((report.failed, report.objects_rewritten), (1, 0));
    let pending = s.requests.erasure(&record.id).await.unwrap().unwrap();
    assert_eq!(pending.status, ErasureStatus::Pending);

    // One object gets rewritten by another run before the retry: the retry
    // finds it without rows and leaves it alone.
    let (found, _) = HITS_FILES[3];
    let visitors = gender_pipeline::erase::Visitors::new(["visitor-1"]);
    let body = s.curated.get(found).await.unwrap().unwrap();
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, &body).unwrap();
    let (copy, _) = gender_pipeline::erase::hits_without_visitors(
        file.reopen().unwrap(),
        found,
        found.into(),
        &visitors,
    )
    .unwrap();
    s.curated.put_file(found, copy.temp.path()).await.unwrap();

    s.athena_finds(&VISITOR_1_OBJECTS).await;
    let (failed, report) = s.run(event).await;
    assert!(failed.is_empty(), "{report:?}");
    assert_eq!((report.completed, report.objects_rewritten), (1, 4));
    let hits = s.hits().await;
    for (key, ids) in HITS_FILES {
        assert_eq!(hits[key], without(ids, &["visitor-1"]), "{key}");
    }
    let done = s.requests.erasure(&record.id).await.unwrap().unwrap();
    assert_eq!(done.status, ErasureStatus::Complete);
}
