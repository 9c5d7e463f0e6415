//! Curate and daily against the embedded adapters (directory object store
//! and redb), the same code paths the local server and the Lambdas run.

use gender_core::ports::{ApplyOutcome, ObjectStore, ProfileReader};
use gender_core::{Date, Gender, Hit};
use gender_embedded::{DirObjectStore, StateStore};
use gender_pipeline::codec::{decode_daily, decode_hits};
use gender_pipeline::{curate_object, run_daily};

const NOW: i64 = 1_795_514_400_000; // 2026-11-24T10:00:00Z

struct Env {
    _dir: tempfile::TempDir,
    store: DirObjectStore,
    state: StateStore,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = DirObjectStore::new(dir.path());
    let state = StateStore::open(dir.path().join("state.redb")).unwrap();
    Env {
        _dir: dir,
        store,
        state,
    }
}

fn ndjson(hits: &[(&str, Gender, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (id, gender, ts) in hits {
        let event_ms = gender_core::time::parse_rfc3339_millis(ts).unwrap();
        Hit {
            clientid: (*id).into(),
            gender: *gender,
            event_ms,
            hitid: None,
        }
        .write_ndjson(&mut out);
    }
    out
}

async fn put_raw(env: &Env, key: &str, hits: &[(&str, Gender, &str)]) {
    env.store.put(key, ndjson(hits)).await.unwrap();
}

async fn curate(env: &Env, key: &str, keep_raw: bool) -> gender_pipeline::CurateReport {
    curate_object(&env.store, &env.store, &env.state, key, key, keep_raw, NOW)
        .await
        .unwrap()
}

async fn counts(env: &Env, id: &str) -> (u64, u64) {
    let p = env.state.get_profile(id).await.unwrap().unwrap();
    (p.m, p.f)
}

#[tokio::test]
async fn the_same_object_twice_leaves_counts_and_files_unchanged() {
    let env = env();
    let key = "raw/dt=2026-11-24/batch-1.ndjson";
    put_raw(
        &env,
        key,
        &[
            ("a", Gender::M, "2026-11-24T01:00:00Z"),
            ("a", Gender::F, "2026-11-24T02:00:00Z"),
        ],
    )
    .await;
    let first = curate(&env, key, true).await;
    let second = curate(&env, key, true).await;
    assert_eq!(
        (first.outcome, second.outcome),
        (ApplyOutcome::Applied, ApplyOutcome::AlreadyApplied)
    );
    assert_eq!(counts(&env, "a").await, (1, 1));
    let files = env.store.list("curated/hits/").await.unwrap();
    assert_eq!(files, ["curated/hits/dt=2026-11-24/batch-1.parquet"]);
    let rows = decode_hits(env.store.get(&files[0]).await.unwrap().unwrap(), "x").unwrap();
    assert_eq!(rows.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_objects_for_the_same_visitor_lose_no_update() {
    let env = std::sync::Arc::new(env());
    let hits: Vec<_> = (0..50)
        .map(|_| ("v", Gender::M, "2026-11-24T01:00:00Z"))
        .collect();
    for i in 0..8 {
        put_raw(&env, &format!("raw/dt=2026-11-24/o{i}.ndjson"), &hits).await;
    }
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let env = env.clone();
            tokio::spawn(async move {
                curate(&env, &format!("raw/dt=2026-11-24/o{i}.ndjson"), true).await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().outcome, ApplyOutcome::Applied);
    }
    assert_eq!(counts(&env, "v").await, (400, 0));
}

#[tokio::test]
async fn mixed_dates_go_to_their_own_partitions_and_raw_is_deleted_when_asked() {
    let env = env();
    let key = "raw/dt=2026-11-24/mixed.ndjson";
    put_raw(
        &env,
        key,
        &[
            ("a", Gender::M, "2026-11-23T23:59:59.999Z"),
            ("b", Gender::F, "2026-11-24T00:00:00Z"),
        ],
    )
    .await;
    // A bad line is skipped, not fatal.
    let mut body = env.store.get(key).await.unwrap().unwrap();
    body.extend_from_slice(b"{\"clientid\":\"c\"}\n");
    env.store.put(key, body).await.unwrap();
    let report = curate(&env, key, false).await;
    assert_eq!(
        (report.hits, report.invalid_lines, report.visitors),
        (2, 1, 2)
    );
    assert_eq!(
        report.curated_keys,
        [
            "curated/hits/dt=2026-11-23/mixed.parquet",
            "curated/hits/dt=2026-11-24/mixed.parquet"
        ]
    );
    assert_eq!(
        env.store.get(key).await.unwrap(),
        None,
        "raw deleted after curate"
    );
}

#[tokio::test]
async fn daily_counts_late_hits_inside_the_window_clears_outside_and_reruns_identically() {
    let env = env();
    put_raw(
        &env,
        "raw/dt=2026-11-20/a.ndjson",
        &[
            ("a", Gender::F, "2026-11-20T10:00:00Z"),
            ("b", Gender::M, "2026-11-20T10:00:00Z"),
        ],
    )
    .await;
    curate(&env, "raw/dt=2026-11-20/a.ndjson", true).await;
    let d = Date::parse("2026-11-23").unwrap();
    let first = run_daily(&env.store, &env.state, d, NOW).await.unwrap();
    assert_eq!(first.visitors_in_window, 2);
    assert_eq!(
        env.state
            .get_profile("a")
            .await
            .unwrap()
            .unwrap()
            .signals()
            .last_7_days,
        Some(Gender::F)
    );

    // A late hit dated inside the window arrives; re-running D counts it.
    put_raw(
        &env,
        "raw/dt=2026-11-18/late.ndjson",
        &[
            ("a", Gender::M, "2026-11-18T10:00:00Z"),
            ("a", Gender::M, "2026-11-18T11:00:00Z"),
        ],
    )
    .await;
    curate(&env, "raw/dt=2026-11-18/late.ndjson", true).await;
    let second = run_daily(&env.store, &env.state, d, NOW).await.unwrap();
    let a = env.state.get_profile("a").await.unwrap().unwrap();
    assert_eq!((a.window.unwrap().m, a.window.unwrap().f), (2, 1));
    assert_eq!(a.signals().last_7_days, Some(Gender::M));
    let rollup = decode_daily(
        env.store
            .get("curated/daily/dt=2026-11-18/daily.parquet")
            .await
            .unwrap()
            .unwrap(),
        "x",
    )
    .unwrap();
    assert_eq!(rollup.len(), 1);

    // Identical on re-run.
    let again = run_daily(&env.store, &env.state, d, NOW).await.unwrap();
    assert_eq!(second, again);
    assert_eq!(
        env.state.get_profile("a").await.unwrap().unwrap().window,
        a.window
    );

    // A window with no hits clears every signal.
    let later = run_daily(
        &env.store,
        &env.state,
        Date::parse("2026-12-31").unwrap(),
        NOW,
    )
    .await
    .unwrap();
    assert_eq!(later.signals_cleared, 2);
    assert_eq!(
        env.state.get_profile("a").await.unwrap().unwrap().window,
        None
    );
}

#[tokio::test]
async fn gzip_raw_objects_are_read_like_plain_ones() {
    use std::io::Write;
    let env = env();
    let plain = ndjson(&[
        ("z", Gender::F, "2026-11-24T01:00:00Z"),
        ("z", Gender::F, "2026-11-24T02:00:00Z"),
    ]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let key = "raw/dt=2026-11-24/firehose-1.gz";
    env.store.put(key, gz.finish().unwrap()).await.unwrap();
    let report = curate(&env, key, true).await;
    assert_eq!(report.hits, 2);
    assert_eq!(
        report.curated_keys,
        ["curated/hits/dt=2026-11-24/firehose-1.parquet"]
    );
    assert_eq!(counts(&env, "z").await, (0, 2));
    env.store
        .put("raw/dt=2026-11-24/broken.gz", vec![0x1f, 0x8b, 0, 1, 2])
        .await
        .unwrap();
    let broken = curate_object(
        &env.store,
        &env.store,
        &env.state,
        "raw/dt=2026-11-24/broken.gz",
        "b",
        true,
        NOW,
    )
    .await;
    assert!(matches!(
        broken,
        Err(gender_pipeline::PipelineError::BadObject { .. })
    ));
}

#[tokio::test]
async fn daily_reuses_current_rollups_and_rebuilds_only_dates_that_got_new_objects() {
    let env = env();
    put_raw(
        &env,
        "raw/dt=2026-11-18/a.ndjson",
        &[
            ("a", Gender::F, "2026-11-18T10:00:00Z"),
            ("b", Gender::M, "2026-11-18T10:00:00Z"),
        ],
    )
    .await;
    put_raw(
        &env,
        "raw/dt=2026-11-20/b.ndjson",
        &[("a", Gender::M, "2026-11-20T10:00:00Z")],
    )
    .await;
    curate(&env, "raw/dt=2026-11-18/a.ndjson", true).await;
    curate(&env, "raw/dt=2026-11-20/b.ndjson", true).await;
    let d = Date::parse("2026-11-23").unwrap();
    let first = run_daily(&env.store, &env.state, d, NOW).await.unwrap();
    let rollups = env.store.list_info("curated/daily/").await.unwrap();
    assert_eq!(rollups.len(), 7);

    // Nothing new: the same answer, and no rollup rewritten.
    let again = run_daily(&env.store, &env.state, d, NOW).await.unwrap();
    assert_eq!(again, first);
    assert_eq!(
        env.store.list_info("curated/daily/").await.unwrap(),
        rollups
    );

    // A new object for 2026-11-20: only that date's rollup is rebuilt.
    put_raw(
        &env,
        "raw/dt=2026-11-20/c.ndjson",
        &[
            ("a", Gender::M, "2026-11-20T11:00:00Z"),
            ("c", Gender::F, "2026-11-20T11:00:00Z"),
        ],
    )
    .await;
    curate(&env, "raw/dt=2026-11-20/c.ndjson", true).await;
    let third = run_daily(&env.store, &env.state, d, NOW).await.unwrap();
    let after = env.store.list_info("curated/daily/").await.unwrap();
    for (old, new) in rollups.iter().zip(&after) {
        let rebuilt = old.version != new.version;
        assert_eq!(rebuilt, new.key.contains("2026-11-20"), "{}", new.key);
    }
    assert_eq!(third.visitors_in_window, 3);
    let a = env
        .state
        .get_profile("a")
        .await
        .unwrap()
        .unwrap()
        .window
        .unwrap();
    assert_eq!((a.m, a.f), (2, 1));

    // The same as a run from scratch.
    for rollup in &after {
        env.store.delete(&rollup.key).await.unwrap();
    }
    let scratch = run_daily(&env.store, &env.state, d, NOW).await.unwrap();
    assert_eq!(scratch, third);
    assert_eq!(
        env.state
            .get_profile("a")
            .await
            .unwrap()
            .unwrap()
            .window
            .unwrap(),
        a
    );

    // A rollup without the record of its sources (an older version's) is rebuilt once.
    let key = "curated/daily/dt=2026-11-18/daily.parquet";
    let plain = gender_pipeline::codec::encode_daily(
        &decode_daily(env.store.get(key).await.unwrap().unwrap(), key).unwrap(),
        key,
    )
    .unwrap();
    env.store.put(key, plain).await.unwrap();
    let before = env.store.list_info("curated/daily/").await.unwrap();
    assert_eq!(
        run_daily(&env.store, &env.state, d, NOW).await.unwrap(),
        third
    );
    let rebuilt = env.store.list_info("curated/daily/").await.unwrap();
    let changed: Vec<_> = before
        .iter()
        .zip(&rebuilt)
        .filter(|(o, n)| o.version != n.version)
        .map(|(_, n)| n.key.as_str())
        .collect();
    assert_eq!(changed, [key]);
}
