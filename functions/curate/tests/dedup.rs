//! Deduplication on AWS (SPEC 15) against moto server: S3, DynamoDB and
//! Kinesis emulated, the curate code unchanged.

use gender_aws::dynamodb::DynamoProfiles;
use gender_aws::kinesis::KinesisHitLog;
use gender_aws::s3::S3ObjectStore;
use gender_core::ports::{ApplyOutcome, HitLog, LogRecord, ProfileReader};
use gender_core::seen_set::Horizon;
use gender_core::{Gender, Hit, IncomingHit};
use gender_curate::dedup::curate_deduplicated;
use gender_pipeline::CurateReport;
use gender_testkit::{Moto, resources};

const RAW: &str = "gs-test-raw";
const CURATED: &str = "gs-test-curated";
const TABLE: &str = "gs-test-profiles";
/// 2026-11-24T10:00:00Z: the commit time the tests start from.
const NOW: i64 = 1_795_514_400_000;
const MIN: i64 = 60_000;

struct Stack {
    _moto: Moto,
    sdk: aws_config::SdkConfig,
    s3: aws_sdk_s3::Client,
    profiles: DynamoProfiles,
}

async fn stack() -> Stack {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let s3 = gender_aws::s3::client(&sdk);
    resources::create_bucket(&s3, RAW).await;
    resources::create_bucket(&s3, CURATED).await;
    let dynamo = resources::create_table(&sdk, TABLE).await;
    Stack {
        profiles: DynamoProfiles::new(dynamo, TABLE),
        s3,
        sdk,
        _moto: moto,
    }
}

fn hour() -> Horizon {
    Horizon::from_seconds(3600).unwrap()
}

/// A hit of `visitor` with id `hitid`; the gender alternates with `n`.
fn hit(visitor: &str, hitid: &str, n: usize) -> Hit<'static> {
    Hit {
        clientid: visitor.to_owned().into(),
        gender: if n.is_multiple_of(3) {
            Gender::F
        } else {
            Gender::M
        },
        event_ms: NOW - 120_000 + n as i64 * 10,
        hitid: Some(hitid.to_owned().into()),
    }
}

fn ndjson(hits: &[Hit<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for h in hits {
        h.write_ndjson(&mut out);
    }
    out
}

impl Stack {
    async fn put_raw(&self, name: &str, body: Vec<u8>) -> String {
        let key = format!("raw/dt=2026-11-24/{name}.ndjson");
        self.s3
            .put_object()
            .bucket(RAW)
            .key(&key)
            .body(body.into())
            .send()
            .await
            .unwrap();
        key
    }

    async fn curate(&self, key: &str, now_ms: i64, horizon: Horizon) -> CurateReport {
        let raw = S3ObjectStore::new(self.s3.clone(), RAW);
        let curated = S3ObjectStore::new(self.s3.clone(), CURATED);
        curate_deduplicated(
            &raw,
            &curated,
            &self.profiles,
            key,
            &format!("{RAW}/{key}#etag-of-{key}"),
            true,
            now_ms,
            horizon,
        )
        .await
        .unwrap()
    }

    async fn counts(&self, visitor: &str) -> (u64, u64) {
        let p = self.profiles.get_profile(visitor).await.unwrap().unwrap();
        (p.m, p.f)
    }

    /// The (clientid, hitid) rows of a curated file, or `None` if there is none.
    async fn rows(&self, curated_key: &str) -> Option<Vec<(String, String)>> {
        let object = self
            .s3
            .get_object()
            .bucket(CURATED)
            .key(curated_key)
            .send()
            .await
            .ok()?;
        let bytes = object.body.collect().await.unwrap().into_bytes().to_vec();
        Some(
            gender_pipeline::codec::decode_hits(bytes, curated_key)
                .unwrap()
                .into_iter()
                .map(|h| (h.clientid.into_owned(), h.hitid.unwrap().into_owned()))
                .collect(),
        )
    }
}

fn curated_key(raw_key: &str) -> String {
    raw_key
        .replace("raw/", "curated/hits/")
        .replace(".ndjson", ".parquet")
}

/// The m/f a set of hits adds when each (visitor, hitid) counts once.
fn expected(hits: &[Hit<'_>], visitor: &str) -> (u64, u64) {
    let mut seen = std::collections::HashSet::new();
    let (mut m, mut f) = (0, 0);
    for h in hits.iter().filter(|h| h.clientid == visitor) {
        if seen.insert(h.hitid.clone()) {
            match h.gender {
                Gender::M => m += 1,
                Gender::F => f += 1,
            }
        }
    }
    (m, f)
}

#[tokio::test]
async fn the_same_records_in_two_objects_are_counted_and_written_once() {
    let s = stack().await;
    let hits: Vec<_> = (0..6)
        .map(|i| hit(&format!("v{}", i % 2), &format!("h{i}"), i))
        .collect();
    let first = s.put_raw("first", ndjson(&hits)).await;
    let second = s.put_raw("second", ndjson(&hits)).await;
    let one = s.curate(&first, NOW, hour()).await;
    assert_eq!((one.hits, one.duplicates), (6, 0));
    let two = s.curate(&second, NOW + MIN, hour()).await;
    assert_eq!((two.hits, two.duplicates, two.visitors), (0, 6, 0));
    assert_eq!(
        two.outcome,
        ApplyOutcome::Applied,
        "its markers were written"
    );
    assert_eq!(s.counts("v0").await, expected(&hits, "v0"));
    assert_eq!(s.counts("v1").await, expected(&hits, "v1"));
    assert_eq!(s.rows(&curated_key(&first)).await.unwrap().len(), 6);
    assert!(two.curated_keys.is_empty());
    assert_eq!(
        s.rows(&curated_key(&second)).await,
        None,
        "no rows for them"
    );
}

#[tokio::test]
async fn a_partial_overlap_counts_only_the_new_hits() {
    let s = stack().await;
    let old: Vec<_> = (0..8)
        .map(|i| hit(&format!("v{}", i % 3), &format!("h{i}"), i))
        .collect();
    let first = s.put_raw("first", ndjson(&old)).await;
    s.curate(&first, NOW, hour()).await;
    // Half of the first object again, new hits of the same and of a new
    // visitor, and a repeat inside the object.
    let mut later: Vec<_> = old[4..].to_vec();
    let new: Vec<_> = (8..12)
        .map(|i| hit(&format!("v{}", i % 4), &format!("h{i}"), i))
        .collect();
    later.extend(new.iter().cloned());
    later.push(new[0].clone());
    let second = s.put_raw("second", ndjson(&later)).await;
    let two = s.curate(&second, NOW + MIN, hour()).await;
    assert_eq!((two.hits, two.duplicates), (4, 5));
    let mut all = old.clone();
    all.extend(new.iter().cloned());
    for v in ["v0", "v1", "v2", "v3"] {
        assert_eq!(s.counts(v).await, expected(&all, v), "{v}");
    }
    let rows = s.rows(&curated_key(&second)).await.unwrap();
    let ids: Vec<&str> = rows.iter().map(|(_, h)| h.as_str()).collect();
    assert_eq!(ids, ["h8", "h9", "h10", "h11"]);
}

#[tokio::test]
async fn the_same_object_twice_is_counted_once_with_the_same_parquet() {
    let s = stack().await;
    // 250 visitors: three chunks.
    let mut hits: Vec<_> = (0..500)
        .map(|i| hit(&format!("v{:03}", i % 250), &format!("h{i}"), i))
        .collect();
    hits.push(hits[7].clone());
    let key = s.put_raw("twice", ndjson(&hits)).await;
    let one = s.curate(&key, NOW, hour()).await;
    assert_eq!((one.hits, one.duplicates), (500, 1));
    let parquet = s.rows(&curated_key(&key)).await.unwrap();
    // Later, even after the horizon: the markers hold the decision.
    let two = s.curate(&key, NOW + 3 * 3_600_000, hour()).await;
    assert_eq!(two.outcome, ApplyOutcome::AlreadyApplied);
    assert_eq!((two.hits, two.duplicates), (500, 1));
    assert_eq!(s.rows(&curated_key(&key)).await.unwrap(), parquet);
    for v in ["v000", "v007", "v249"] {
        assert_eq!(s.counts(v).await, expected(&hits, v));
    }
}

#[tokio::test]
async fn a_retried_put_records_is_counted_once() {
    let s = stack().await;
    let kinesis = resources::create_stream(&s.sdk, "gs-test-hits").await;
    let log = KinesisHitLog::new(aws_sdk_kinesis::Client::new(&s.sdk), "gs-test-hits");
    // As the http function writes them: every record carries the hitid the
    // API assigned before PutRecords.
    let records: Vec<LogRecord> = (0..20i64)
        .map(|i| {
            let hit = IncomingHit {
                clientid: format!("visitor-{}", i % 4),
                gender: if i % 2 == 0 { Gender::M } else { Gender::F },
                event_ms: Some(NOW - 5_000 + i),
                hitid: Some(format!("Zq81xPq0aLk.{i}")),
            };
            LogRecord {
                partition_key: hit.clientid.clone(),
                data: hit.to_json(),
            }
        })
        .collect();
    // The call and its retry (the first answer was lost): stored twice.
    assert!(log.append(records.clone()).await.unwrap().is_empty());
    assert!(log.append(records.clone()).await.unwrap().is_empty());
    let stored = resources::read_stream(&kinesis, "gs-test-hits").await;
    assert_eq!(stored.len(), 40);
    // Firehose delivers the copies in two different objects.
    let mut objects = [Vec::new(), Vec::new()];
    for (i, (_, data)) in stored.iter().enumerate() {
        gender_core::transform::transform_record(data, NOW, &mut objects[i / 20]).unwrap();
    }
    let [a, b] = objects;
    let a = s.put_raw("firehose-a", a).await;
    let b = s.put_raw("firehose-b", b).await;
    assert_eq!(s.curate(&a, NOW, hour()).await.hits, 20);
    assert_eq!(s.curate(&b, NOW + MIN, hour()).await.hits, 0);
    for v in 0..4 {
        let id = format!("visitor-{v}");
        let (m, f) = s.counts(&id).await;
        assert_eq!(m + f, 5, "{id}");
    }
}

#[tokio::test]
async fn an_identity_counts_again_after_the_horizon() {
    let s = stack().await;
    let horizon = Horizon::from_seconds(600).unwrap();
    let hits = vec![hit("v", "h1", 1), hit("v", "h2", 2)];
    let key = |n| format!("copy-{n}");
    let k0 = s.put_raw(&key(0), ndjson(&hits)).await;
    s.curate(&k0, NOW, horizon).await;
    // Within the horizon (10 min, in buckets of 1 min): a duplicate.
    let k1 = s.put_raw(&key(1), ndjson(&hits)).await;
    assert_eq!(s.curate(&k1, NOW + 10 * MIN, horizon).await.hits, 0);
    // One bucket past it: pruned, counted again.
    let k2 = s.put_raw(&key(2), ndjson(&hits[..1])).await;
    assert_eq!(s.curate(&k2, NOW + 11 * MIN, horizon).await.hits, 1);
    assert_eq!(s.counts("v").await, (3, 0));
    // The rewrite pruned h2's entry; h1's is the new one.
    let k3 = s.put_raw(&key(3), ndjson(&hits)).await;
    let report = s.curate(&k3, NOW + 12 * MIN, horizon).await;
    assert_eq!(
        (report.hits, report.duplicates),
        (1, 1),
        "h2 counts, h1 not"
    );
}

#[tokio::test]
async fn concurrent_objects_over_the_same_visitors_count_each_identity_once() {
    let s = stack().await;
    // 150 visitors (two chunks), hits h0..h600 in A, h300..h900 in B.
    let make = |range: std::ops::Range<usize>| -> Vec<Hit<'static>> {
        range
            .map(|i| hit(&format!("v{:03}", i % 150), &format!("h{i}"), i))
            .collect()
    };
    let (a_hits, b_hits) = (make(0..600), make(300..900));
    let a = s.put_raw("concurrent-a", ndjson(&a_hits)).await;
    let b = s.put_raw("concurrent-b", ndjson(&b_hits)).await;
    let (ra, rb) = tokio::join!(s.curate(&a, NOW, hour()), s.curate(&b, NOW + 1, hour()));
    assert_eq!(ra.hits + rb.hits, 900, "every identity once: {ra:?} {rb:?}");
    assert!(
        ra.redos + rb.redos > 0,
        "the two reads interleaved, so one of them had to decide again"
    );
    let all = make(0..900);
    for v in ["v000", "v001", "v077", "v149"] {
        assert_eq!(s.counts(v).await, expected(&all, v), "{v}");
    }
    // And each identity has exactly one Parquet row over both objects.
    let mut rows = s.rows(&curated_key(&a)).await.unwrap_or_default();
    rows.extend(s.rows(&curated_key(&b)).await.unwrap_or_default());
    rows.sort();
    let before = rows.len();
    rows.dedup();
    assert_eq!((before, rows.len()), (900, 900));
}
