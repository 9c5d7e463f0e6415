//! Curate and daily against the embedded adapters (directory object store
//! and redb), the same code paths the local server and the Lambdas run.

use gender_core::ports::{ApplyOutcome, ObjectStore, ProfileReader};
use gender_core::{Date, Gender, Hit};
use gender_embedded::{DirObjectStore, StateStore};
use gender_pipeline::codec::{decode_daily, decode_hits};
use gender_pipeline::{DailyOptions, DailyRun, curate_object, run_daily, run_daily_with};

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

/// The embedded state store, with the clientids of every batch it was
/// handed recorded, and a failure injected after `fail_after` batches.
struct Recorded<'a> {
    inner: &'a StateStore,
    writes: std::sync::Mutex<Vec<String>>,
    batches: std::sync::atomic::AtomicUsize,
    fail_after: Option<usize>,
}

impl<'a> Recorded<'a> {
    fn new(inner: &'a StateStore) -> Recorded<'a> {
        Recorded {
            inner,
            writes: std::sync::Mutex::new(Vec::new()),
            batches: std::sync::atomic::AtomicUsize::new(0),
            fail_after: None,
        }
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.writes.lock().unwrap())
    }
}

#[async_trait::async_trait]
impl gender_core::ports::WindowStore for Recorded<'_> {
    async fn set_windows(
        &self,
        updates: &[(String, Option<gender_core::WindowSums>)],
        now_ms: i64,
    ) -> Result<(), gender_core::PortError> {
        let n = self
            .batches
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.fail_after.is_some_and(|after| n >= after) {
            return Err(gender_core::PortError::Throttled {
                what: "injected".into(),
                source: None,
            });
        }
        self.inner.set_windows(updates, now_ms).await?;
        let mut writes = self.writes.lock().unwrap();
        writes.extend(updates.iter().map(|(id, _)| id.clone()));
        Ok(())
    }
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("v{i:02}")).collect()
}

/// Ten visitors with hits on `day` (v00..v09), v00 with one F hit more.
async fn ten_visitors(env: &Env, day: &str) {
    let at = format!("{day}T10:00:00Z");
    let names = ids(0..10);
    let mut hits: Vec<(&str, Gender, &str)> = names
        .iter()
        .map(|id| (id.as_str(), Gender::M, at.as_str()))
        .collect();
    hits.push(("v00", Gender::F, at.as_str()));
    let key = format!("raw/dt={day}/ten.ndjson");
    put_raw(env, &key, &hits).await;
    curate(env, &key, true).await;
}

async fn window(env: &Env, id: &str) -> Option<(u64, u64)> {
    let profile = env.state.get_profile(id).await.unwrap().unwrap();
    profile.window.map(|w| (w.m, w.f))
}

fn stop_always() -> bool {
    true
}

/// Runs with `options` (which stop at every chance) until the run stops
/// after writing: the stops before are between rollups rebuilt (each run
/// rebuilds one more), with nothing written. Returns those stops' count.
async fn stop_after_first_batch(
    env: &Env,
    store: &Recorded<'_>,
    d: Date,
    options: &DailyOptions<'_>,
) -> (usize, gender_core::daily::DailyStop) {
    for rollup_stops in 0..8 {
        match run_daily_with(&env.store, store, d, NOW, options)
            .await
            .unwrap()
        {
            DailyRun::Stopped(stop) if stop.windows_written == 0 => {
                assert!(store.take().is_empty());
            }
            DailyRun::Stopped(stop) => return (rollup_stops, stop),
            done => panic!("{done:?}"),
        }
    }
    panic!("no writes after 8 runs")
}

#[tokio::test]
async fn a_stopped_run_resumes_without_rewriting_what_it_wrote() {
    let env = env();
    ten_visitors(&env, "2026-11-20").await;
    let d = Date::parse("2026-11-23").unwrap();
    let store = Recorded::new(&env.state);
    let stopping = DailyOptions {
        batch_writes: 3,
        should_stop: Some(&stop_always),
        ..DailyOptions::default()
    };
    // Stopped (as at a deadline) between the rollups it rebuilds, each kept,
    // then after its first batch of writes: progress saved.
    let (rollup_stops, stop) = stop_after_first_batch(&env, &store, d, &stopping).await;
    assert_eq!(
        rollup_stops, 6,
        "after each of the first six of seven rollups"
    );
    assert_eq!(
        (stop.windows_written, stop.requested.as_str()),
        (3, "2026-11-23")
    );
    assert_eq!(store.take(), ids(0..3));
    assert_eq!(window(&env, "v00").await, Some((1, 1)));
    assert_eq!(window(&env, "v03").await, None, "not written yet");
    assert_eq!(
        gender_pipeline::unfinished_request(&env.store)
            .await
            .unwrap(),
        Some(d)
    );
    // Stopped again: three more, none of the first three again.
    run_daily_with(&env.store, &store, d, NOW, &stopping)
        .await
        .unwrap();
    assert_eq!(store.take(), ids(3..6));
    // Run to its end: the rest, each once.
    let done = run_daily(&env.store, &store, d, NOW).await.unwrap();
    assert_eq!(store.take(), ids(6..10));
    assert_eq!(done.visitors_in_window, 10);
    for id in ids(0..10) {
        assert!(window(&env, &id).await.is_some(), "{id}");
    }
    assert_eq!(
        gender_pipeline::unfinished_request(&env.store)
            .await
            .unwrap(),
        None
    );
    // The same as a run from scratch, and a re-run writes nothing.
    assert_eq!(run_daily(&env.store, &store, d, NOW).await.unwrap(), done);
    assert!(store.take().is_empty());
}

#[tokio::test]
async fn a_stopped_run_whose_inputs_changed_starts_over_and_rewrites_what_it_may_have_written() {
    let env = env();
    ten_visitors(&env, "2026-11-20").await;
    let d = Date::parse("2026-11-23").unwrap();
    run_daily(&env.store, &env.state, d, NOW).await.unwrap();
    // The run for 11-24 would change nothing for v00..v09 (11-17 had no
    // hits), but late hits on 11-21 rebuild that date, so its visitors are
    // written (v01, v05); the run is stopped after one batch.
    put_raw(
        &env,
        "raw/dt=2026-11-21/late.ndjson",
        &[
            ("v01", Gender::F, "2026-11-21T10:00:00Z"),
            ("v05", Gender::F, "2026-11-21T10:00:00Z"),
        ],
    )
    .await;
    curate(&env, "raw/dt=2026-11-21/late.ndjson", true).await;
    let next = Date::parse("2026-11-24").unwrap();
    let store = Recorded::new(&env.state);
    let stopping = DailyOptions {
        batch_writes: 1,
        should_stop: Some(&stop_always),
        ..DailyOptions::default()
    };
    let (rollup_stops, _) = stop_after_first_batch(&env, &store, next, &stopping).await;
    assert_eq!(rollup_stops, 1, "after 11-21, the first of the two rebuilt");
    assert_eq!(
        store.take(),
        ["v01"],
        "the rebuilt date's visitors, one batch"
    );
    // More late hits before the run resumes: the rollup of 11-21 changes
    // again, so the run starts over, and every clientid up to v01 (where it
    // may have written with the old inputs) is written whatever its sums.
    put_raw(
        &env,
        "raw/dt=2026-11-21/later.ndjson",
        &[("v07", Gender::F, "2026-11-21T11:00:00Z")],
    )
    .await;
    curate(&env, "raw/dt=2026-11-21/later.ndjson", true).await;
    run_daily(&env.store, &store, next, NOW).await.unwrap();
    assert_eq!(store.take(), ["v00", "v01", "v05", "v07"]);
    assert_eq!(window(&env, "v01").await, Some((1, 1)));
    assert_eq!(window(&env, "v07").await, Some((1, 1)));
    assert_eq!(window(&env, "v02").await, Some((1, 0)));
}

#[tokio::test]
async fn an_unfinished_run_of_another_date_is_finished_before_the_next_one() {
    let env = env();
    ten_visitors(&env, "2026-11-20").await;
    put_raw(
        &env,
        "raw/dt=2026-12-10/e.ndjson",
        &[("later", Gender::M, "2026-12-10T10:00:00Z")],
    )
    .await;
    curate(&env, "raw/dt=2026-12-10/e.ndjson", true).await;
    let store = Recorded::new(&env.state);
    let stopping = DailyOptions {
        batch_writes: 4,
        should_stop: Some(&stop_always),
        ..DailyOptions::default()
    };
    let d = Date::parse("2026-11-23").unwrap();
    stop_after_first_batch(&env, &store, d, &stopping).await;
    assert_eq!(store.take(), ids(0..4));
    // The next request is for a date whose window shares nothing with it:
    // the unfinished run is finished first (v04..v09 set), then every window
    // of it cleared, so v00..v03 do not keep sums no window explains.
    let later = Date::parse("2026-12-10").unwrap();
    let summary = run_daily(&env.store, &store, later, NOW).await.unwrap();
    let mut expected = ids(4..10);
    expected.extend(ids(0..10));
    expected.push("later".into());
    expected[6..].sort();
    assert_eq!(store.take(), expected);
    assert_eq!(summary.signals_cleared, 10);
    for id in ids(0..10) {
        assert_eq!(window(&env, &id).await, None, "{id}");
    }
    assert_eq!(window(&env, "later").await, Some((1, 0)));
}

#[tokio::test]
async fn a_failed_write_keeps_the_progress_and_the_retry_finishes() {
    let env = env();
    ten_visitors(&env, "2026-11-20").await;
    let d = Date::parse("2026-11-23").unwrap();
    let failing = Recorded {
        fail_after: Some(2),
        ..Recorded::new(&env.state)
    };
    let small = DailyOptions {
        batch_writes: 3,
        checkpoint_every: std::time::Duration::ZERO,
        ..DailyOptions::default()
    };
    let err = run_daily_with(&env.store, &failing, d, NOW, &small)
        .await
        .unwrap_err();
    assert!(err.retryable(), "{err}");
    assert_eq!(failing.take(), ids(0..6));
    let store = Recorded::new(&env.state);
    run_daily_with(&env.store, &store, d, NOW, &small)
        .await
        .unwrap();
    assert_eq!(
        store.take(),
        ids(6..10),
        "resumed after the last batch done"
    );
}

#[tokio::test(start_paused = true)]
async fn writes_are_paced_to_the_configured_rate() {
    let env = env();
    ten_visitors(&env, "2026-11-20").await;
    let d = Date::parse("2026-11-23").unwrap();
    let paced = DailyOptions {
        // A tenth of a second's worth a batch: one write each.
        writes_per_second: std::num::NonZeroU32::new(10),
        ..DailyOptions::default()
    };
    let store = Recorded::new(&env.state);
    let start = tokio::time::Instant::now();
    run_daily_with(&env.store, &store, d, NOW, &paced)
        .await
        .unwrap();
    // Ten writes at 10 a second: the first at once, nine 0.1 s apart (the
    // clock is tokio's paused one: it moves by the pauses only).
    let elapsed = start.elapsed();
    assert!(
        elapsed >= std::time::Duration::from_millis(900)
            && elapsed < std::time::Duration::from_secs(1),
        "{elapsed:?}"
    );
    assert_eq!(store.batches.load(std::sync::atomic::Ordering::SeqCst), 10);
}

#[tokio::test]
async fn a_damaged_record_of_the_applied_window_is_an_error_not_a_guess() {
    let env = env();
    env.store
        .put(
            gender_core::layout::DAILY_APPLIED_KEY,
            b"{\"format\":9}".to_vec(),
        )
        .await
        .unwrap();
    let err = run_daily(
        &env.store,
        &env.state,
        Date::parse("2026-11-23").unwrap(),
        NOW,
    )
    .await
    .unwrap_err();
    assert!(!err.retryable());
    assert!(err.to_string().contains("_applied.json"), "{err}");
}

#[tokio::test]
async fn gaps_and_backfills_leave_exactly_the_window_of_the_last_run() {
    let env = env();
    ten_visitors(&env, "2026-11-20").await;
    put_raw(
        &env,
        "raw/dt=2026-11-30/b.ndjson",
        &[
            ("v03", Gender::F, "2026-11-30T10:00:00Z"),
            ("new", Gender::F, "2026-11-30T10:00:00Z"),
        ],
    )
    .await;
    curate(&env, "raw/dt=2026-11-30/b.ndjson", true).await;
    let store = Recorded::new(&env.state);
    let run = |date: &'static str| {
        let (env, store) = (&env, &store);
        async move {
            run_daily(&env.store, store, Date::parse(date).unwrap(), NOW)
                .await
                .unwrap();
            let mut written = store.take();
            written.sort();
            written
        }
    };
    assert_eq!(run("2026-11-23").await, ids(0..10));
    // Three days later (window 11-20..26 overlaps): nothing changed.
    assert!(run("2026-11-26").await.is_empty());
    // After a gap (window 11-24..30, disjoint from 11-20..26): v00..v09
    // cleared, v03 and `new` set.
    let mut expected = ids(0..10);
    expected.push("new".into());
    expected.sort();
    assert_eq!(run("2026-11-30").await, expected);
    assert_eq!(window(&env, "v03").await, Some((0, 1)));
    assert_eq!(window(&env, "v04").await, None);
    // A backfill of an older date after a newer one: back to its window.
    assert_eq!(run("2026-11-23").await, expected);
    assert_eq!(window(&env, "v03").await, Some((1, 0)));
    assert_eq!(window(&env, "v00").await, Some((1, 1)));
    assert_eq!(window(&env, "new").await, None);
    assert!(run("2026-11-23").await.is_empty(), "re-run: nothing");
}

/// The directory store with the keys of the objects read recorded.
struct ReadsRecorded<'a> {
    inner: &'a DirObjectStore,
    reads: std::sync::Mutex<Vec<String>>,
}

impl ReadsRecorded<'_> {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.reads.lock().unwrap())
    }
}

#[async_trait::async_trait]
impl ObjectStore for ReadsRecorded<'_> {
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), gender_core::PortError> {
        self.inner.put(key, body).await
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, gender_core::PortError> {
        self.reads.lock().unwrap().push(key.to_owned());
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, gender_core::PortError> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<(), gender_core::PortError> {
        self.inner.delete(key).await
    }
    async fn get_stream(
        &self,
        key: &str,
    ) -> Result<Option<Box<dyn gender_core::ports::ObjectRead>>, gender_core::PortError> {
        self.reads.lock().unwrap().push(key.to_owned());
        self.inner.get_stream(key).await
    }
    async fn put_file(
        &self,
        key: &str,
        path: &std::path::Path,
    ) -> Result<(), gender_core::PortError> {
        self.inner.put_file(key, path).await
    }
    async fn list_info(
        &self,
        prefix: &str,
    ) -> Result<Vec<gender_core::ports::ObjectInfo>, gender_core::PortError> {
        self.inner.list_info(prefix).await
    }
}

/// Day `day` (0 = 2026-11-10) of a made-up site: visitors `p00..p39`, each
/// with a few hits on about half the days, genders mixed.
fn site_day(day: u64) -> Vec<(String, Gender)> {
    let mut hits = Vec::new();
    for visitor in 0..40u64 {
        let x = (visitor * 7919 + day * 104_729) % 97;
        if x.is_multiple_of(2) {
            continue;
        }
        for n in 0..(1 + x % 3) {
            let gender = if (x + n).is_multiple_of(3) {
                Gender::F
            } else {
                Gender::M
            };
            hits.push((format!("p{visitor:02}"), gender));
        }
    }
    hits
}

async fn put_site_hits(env: &Env, date: Date, name: &str, hits: &[(String, Gender)]) {
    let at = format!("{date}T12:00:00Z");
    let rows: Vec<(&str, Gender, &str)> = hits
        .iter()
        .map(|(id, g)| (id.as_str(), *g, at.as_str()))
        .collect();
    let key = format!("raw/dt={date}/{name}.ndjson");
    put_raw(env, &key, &rows).await;
    curate(env, &key, true).await;
}

/// The window sums of `p00..p39` and `p77`, `None` without a profile or a window.
async fn all_windows(env: &Env) -> Vec<(String, Option<(u64, u64)>)> {
    let mut out = Vec::new();
    for visitor in (0..40).chain([77]) {
        let id = format!("p{visitor:02}");
        let window = match env.state.get_profile(&id).await.unwrap() {
            Some(profile) => profile.window.map(|w| (w.m, w.f)),
            None => None,
        };
        out.push((id, window));
    }
    out
}

/// Night after night, late hits for a date inside the window now and then:
/// the runs that start from the window sums file leave the store exactly as
/// runs that merge every rollup, report the same, and read only the rollups
/// of the dates that entered, left or changed.
#[tokio::test]
async fn the_window_sums_file_gives_what_merging_every_rollup_gives() {
    let (with_file, without) = (env(), env());
    let recorded = ReadsRecorded {
        inner: &with_file.store,
        reads: std::sync::Mutex::new(Vec::new()),
    };
    let merge_all = DailyOptions {
        window_file: false,
        ..DailyOptions::default()
    };
    let day0 = Date::parse("2026-11-10").unwrap();
    for day in 0..16u64 {
        let date = day0.add_days(day as i32);
        for env in [&with_file, &without] {
            put_site_hits(env, date, "day", &site_day(day)).await;
        }
        // Late hits for a date four days back, before the run on days 9 and 13.
        let late = (day == 9 || day == 13).then(|| date.add_days(-4));
        if let Some(late) = late {
            let hits = [("p01".to_owned(), Gender::F), ("p77".to_owned(), Gender::M)];
            for env in [&with_file, &without] {
                put_site_hits(env, late, "late", &hits).await;
            }
        }
        let ran = run_daily(&recorded, &with_file.state, date, NOW)
            .await
            .unwrap();
        let expected = match run_daily_with(&without.store, &without.state, date, NOW, &merge_all)
            .await
            .unwrap()
        {
            DailyRun::Complete(summary) => summary,
            stopped => panic!("{stopped:?}"),
        };
        assert_eq!(ran, expected, "day {day}");
        assert_eq!(
            all_windows(&with_file).await,
            all_windows(&without).await,
            "day {day}"
        );
        let mut rollups_read: Vec<String> = recorded
            .take()
            .into_iter()
            .filter(|key| key.starts_with("curated/daily/dt="))
            .filter_map(|key| gender_core::layout::date_of_key(&key).map(|d| d.to_string()))
            .collect();
        rollups_read.sort();
        rollups_read.dedup();
        let (entered, left) = (date.to_string(), date.add_days(-7).to_string());
        let expected_reads: Vec<String> = match (day, late) {
            // The first run has no file: every date of its window.
            (0, _) => (0..7)
                .map(|back| date.add_days(-back).to_string())
                .rev()
                .collect(),
            (_, Some(late)) => vec![left, late.to_string(), entered],
            _ => vec![left, entered],
        };
        assert_eq!(rollups_read, expected_reads, "day {day}");
    }
    let windows = all_windows(&with_file).await;
    assert!(windows.iter().filter(|(_, w)| w.is_some()).count() > 20);
}

/// A window sums file that counts fewer hits than the rollups it claims to
/// be made of is an error, not a guess: the run fails with the file named,
/// the file is emptied, and the next run merges every rollup and is right.
#[tokio::test]
async fn a_window_sums_file_that_disagrees_with_its_rollups_is_emptied_and_not_trusted() {
    let env = env();
    let day0 = Date::parse("2026-11-10").unwrap();
    for day in 0..8u64 {
        put_site_hits(&env, day0.add_days(day as i32), "day", &site_day(day)).await;
    }
    run_daily(&env.store, &env.state, day0.add_days(6), NOW)
        .await
        .unwrap();
    let key = gender_core::layout::DAILY_WINDOW_KEY;
    // The same metadata, but every visitor's sums set to zero.
    let local = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(local.path(), env.store.get(key).await.unwrap().unwrap()).unwrap();
    let file = gender_pipeline::codec::open_daily_file(local.reopen().unwrap(), key, 1024).unwrap();
    let meta = file.window.clone().expect("the window's record");
    let mut writer = gender_pipeline::codec::WindowFileWriter::create(key, 1024).unwrap();
    for batch in file.reader {
        let batch = batch.unwrap();
        let ids = batch
            .column(0)
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .unwrap();
        for id in ids.iter().flatten() {
            writer.push(id, 0, 0).unwrap();
        }
    }
    let zeroed = writer.finish(meta).unwrap();
    env.store.put_file(key, zeroed.path()).await.unwrap();

    let next = day0.add_days(7);
    let err = run_daily(&env.store, &env.state, next, NOW)
        .await
        .unwrap_err();
    assert!(err.to_string().contains(key), "{err}");
    assert_eq!(
        env.store.get(key).await.unwrap(),
        Some(Vec::new()),
        "emptied"
    );
    run_daily(&env.store, &env.state, next, NOW).await.unwrap();

    let fresh = self::env();
    for day in 0..8u64 {
        put_site_hits(&fresh, day0.add_days(day as i32), "day", &site_day(day)).await;
    }
    run_daily(&fresh.store, &fresh.state, next, NOW)
        .await
        .unwrap();
    assert_eq!(all_windows(&env).await, all_windows(&fresh).await);
}
