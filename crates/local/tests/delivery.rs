//! Delivery and its crash recovery, in-process over a real data directory:
//! the log, the state store and the object store are the embedded adapters;
//! "crashes" are left exactly as a killed process leaves them.

use gender_core::time::system_now_ms;
use gender_embedded::state::StateStore;
use gender_embedded::{DirObjectStore, HitLogFile, LogReader};
use gender_local::retention::RetentionPolicy;
use gender_local::{
    Delivery, DeliveryHandle, DeliverySettings, Housekeeping, HousekeepingSettings,
    PipelineMetrics, PipelineStatus,
};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const DAY: &str = "2026-11-24";

fn hit(clientid: &str, gender: &str, second: u32) -> Vec<u8> {
    format!(
        r#"{{"clientid":"{clientid}","pageGender":"{gender}","timestamp":"{DAY}T10:00:{second:02}.000Z"}}"#
    )
    .into_bytes()
}

struct Parts {
    log: Arc<HitLogFile>,
    reader: LogReader,
    store: DirObjectStore,
    state: StateStore,
}

fn open(dir: &Path) -> Parts {
    let state = StateStore::open(dir.join("state.redb")).unwrap();
    let (log, reader) = HitLogFile::open(dir.join("log"), system_now_ms).unwrap();
    Parts {
        log: Arc::new(log),
        reader,
        store: DirObjectStore::new(dir),
        state,
    }
}

/// Starts delivery with a long interval, so only flushes move it.
fn start(
    parts: &Parts,
) -> (
    DeliveryHandle,
    watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    start_with_status(parts, Arc::new(PipelineStatus::default()))
}

fn start_with_status(
    parts: &Parts,
    status: Arc<PipelineStatus>,
) -> (
    DeliveryHandle,
    watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let settings = DeliverySettings {
        interval: Duration::from_secs(3600),
        buffer_bytes: u64::MAX,
        ..DeliverySettings::new(system_now_ms)
    };
    start_with_settings(parts, status, settings, keep_everything())
}

/// Upkeep with retention off: these tests use dates far in the past, and
/// retention has its own test.
fn keep_everything() -> HousekeepingSettings {
    HousekeepingSettings {
        retention: RetentionPolicy {
            raw_days: None,
            curated_hits_days: None,
            daily_rollups_days: None,
        },
        ..HousekeepingSettings::new(system_now_ms)
    }
}

fn start_with_settings(
    parts: &Parts,
    status: Arc<PipelineStatus>,
    settings: DeliverySettings,
    upkeep: HousekeepingSettings,
) -> (
    DeliveryHandle,
    watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let metrics = Arc::new(PipelineMetrics::default());
    let housekeeping = Housekeeping::new(
        parts.store.clone(),
        parts.state.clone(),
        metrics.clone(),
        upkeep,
    );
    let delivery = Delivery::new(
        parts.reader.clone(),
        parts.store.clone(),
        parts.state.clone(),
        metrics,
        status,
        settings,
        housekeeping,
    )
    .unwrap();
    let (stop, shutdown) = watch::channel(false);
    let (handle, task) = delivery.spawn(shutdown);
    (handle, stop, task)
}

fn counts(state: &StateStore, clientid: &str) -> (u64, u64) {
    let p = state
        .get_profile_blocking(clientid)
        .unwrap()
        .expect("profile");
    (p.m, p.f)
}

fn raw_keys(store: &DirObjectStore) -> Vec<String> {
    store.list_blocking("raw/").unwrap()
}

#[tokio::test]
async fn a_flush_delivers_curates_and_counts_what_the_log_holds() {
    let dir = tempfile::tempdir().unwrap();
    let parts = open(dir.path());
    parts
        .log
        .append_payloads(vec![hit("a", "M", 1), hit("a", "F", 2), hit("b", "F", 3)])
        .await
        .unwrap();
    let (handle, stop, task) = start(&parts);
    let report = handle.flush().await.unwrap();
    assert_eq!((report.objects_delivered, report.hits_curated), (1, 3));
    assert_eq!(report.delivered_offset, parts.reader.durable_end());
    assert_eq!(counts(&parts.state, "a"), (1, 1));
    assert_eq!(counts(&parts.state, "b"), (0, 1));
    let keys = raw_keys(&parts.store);
    assert_eq!(keys.len(), 1);
    // Raw objects are filed by arrival, like the log; curated ones by event date.
    let arrived = arrival_day(&parts.reader, 0);
    assert!(
        keys[0].starts_with(&format!("raw/dt={arrived}/")),
        "{keys:?}"
    );
    let curated = parts.store.list_blocking("curated/hits/").unwrap();
    assert_eq!(curated.len(), 1);
    assert!(
        curated[0].starts_with(&format!("curated/hits/dt={DAY}/")),
        "{curated:?}"
    );
    assert!(parts.state.delivery_state().unwrap().pending.is_empty());

    // A second flush with nothing new changes nothing.
    let again = handle.flush().await.unwrap();
    assert_eq!((again.objects_delivered, again.hits_curated), (0, 0));
    assert_eq!(counts(&parts.state, "a"), (1, 1));
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn a_batch_cut_before_a_crash_is_redelivered_under_the_same_names_and_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let end = {
        let parts = open(dir.path());
        parts
            .log
            .append_payloads(vec![hit("a", "M", 1), hit("a", "M", 2)])
            .await
            .unwrap();
        let end = parts.reader.durable_end();
        // The process recorded the batch, wrote half an object, and died.
        parts.state.begin_delivery(0, end).unwrap();
        let arrived = arrival_day(&parts.reader, 0);
        let name = format!("raw/dt={arrived}/{:020}-{end:020}.ndjson", 0);
        parts
            .store
            .put_blocking(&name, b"{\"clientid\":\"a\"")
            .unwrap();
        end
    };

    let parts = open(dir.path());
    // Hits that arrive after the restart must not be cut into the old batch.
    parts
        .log
        .append_payloads(vec![hit("a", "F", 3)])
        .await
        .unwrap();
    let (handle, stop, task) = start(&parts);
    let report = handle.flush().await.unwrap();
    assert_eq!(report.delivered_offset, parts.reader.durable_end());
    assert_eq!(counts(&parts.state, "a"), (2, 1), "each hit counted once");
    let redone_key = format!(
        "raw/dt={}/{:020}-{end:020}.ndjson",
        arrival_day(&parts.reader, 0),
        0
    );
    let mut expected = vec![
        redone_key.clone(),
        format!(
            "raw/dt={}/{end:020}-{:020}.ndjson",
            arrival_day(&parts.reader, end),
            parts.reader.durable_end()
        ),
    ];
    expected.sort();
    assert_eq!(raw_keys(&parts.store), expected);
    let keys = [redone_key];
    let redone = parts.store.get_blocking(&keys[0]).unwrap().unwrap();
    assert_eq!(
        redone.iter().filter(|&&b| b == b'\n').count(),
        2,
        "rewritten whole"
    );
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn objects_queued_before_a_crash_are_curated_once_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        let parts = open(dir.path());
        parts
            .log
            .append_payloads(vec![hit("q", "F", 1)])
            .await
            .unwrap();
        let end = parts.reader.durable_end();
        let key = format!("raw/dt={DAY}/{:020}-{end:020}.ndjson", 0);
        // Delivered and queued, then the process died before curate.
        parts.state.begin_delivery(0, end).unwrap();
        let mut line = hit("q", "F", 1);
        line.push(b'\n');
        parts.store.put_blocking(&key, &line).unwrap();
        parts.state.finish_delivery(0, end, &[key]).unwrap();
    }
    let parts = open(dir.path());
    let (handle, stop, task) = start(&parts);
    handle.flush().await.unwrap();
    assert_eq!(counts(&parts.state, "q"), (0, 1));
    assert!(parts.state.delivery_state().unwrap().pending.is_empty());
    // A later flush finds nothing to redo.
    handle.flush().await.unwrap();
    assert_eq!(counts(&parts.state, "q"), (0, 1));
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn hits_of_many_dates_are_cut_into_batches_of_a_bounded_number_of_objects() {
    let dir = tempfile::tempdir().unwrap();
    let parts = open(dir.path());
    // 1,100 distinct dates (back from 2026-01-01: none in the future),
    // visitor "spread" seen once on each.
    let payloads = (0..1100)
        .map(|d| {
            format!(
                r#"{{"clientid":"spread","pageGender":"F","timestamp":"2026-01-01T00:00:00Z","n":{d}}}"#
            )
            .replace("2026-01-01", &date_plus(-d))
            .into_bytes()
        })
        .collect();
    parts.log.append_payloads(payloads).await.unwrap();
    let (handle, stop, task) = start(&parts);
    let report = handle.flush().await.unwrap();
    // Default cap 1,024 dates per batch (and cycle): 2 batches, one raw
    // object each whatever the spread of dates, one curated file per date.
    assert_eq!(report.delivered_offset, parts.reader.durable_end());
    assert_eq!(counts(&parts.state, "spread"), (0, 1100));
    let mut dates_per_object = Vec::new();
    for key in raw_keys(&parts.store) {
        let body = parts.store.get_blocking(&key).unwrap().unwrap();
        dates_per_object.push(body.iter().filter(|&&b| b == b'\n').count());
    }
    assert_eq!(dates_per_object, [1024, 76]);
    assert_eq!(
        parts.store.list_blocking("curated/hits/").unwrap().len(),
        1100
    );
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn a_cycle_delivers_a_bounded_number_of_dates_and_a_flush_takes_as_many_cycles_as_needed() {
    let dir = tempfile::tempdir().unwrap();
    let parts = open(dir.path());
    let payloads = (0..200)
        .map(|d| {
            format!(
                r#"{{"clientid":"capped","pageGender":"M","timestamp":"{}T00:00:00Z"}}"#,
                date_plus(d)
            )
            .into_bytes()
        })
        .collect();
    parts.log.append_payloads(payloads).await.unwrap();
    let settings = DeliverySettings {
        interval: Duration::from_secs(3600),
        buffer_bytes: u64::MAX,
        max_dates_per_batch: 16,
        max_dates_per_cycle: 50,
        ..DeliverySettings::new(system_now_ms)
    };
    let upkeep = keep_everything();
    let (handle, stop, task) = start_with_settings(
        &parts,
        Arc::new(PipelineStatus::default()),
        settings,
        upkeep,
    );
    let report = handle.flush().await.unwrap();
    // 16 dates a batch, a cycle stops once 50 are delivered (4 batches, 64
    // dates): 200 dates take 4 cycles, and the flush waits for all of them.
    assert_eq!(report.cycles, 4, "{report:?}");
    assert_eq!(report.delivered_offset, parts.reader.durable_end());
    assert_eq!(counts(&parts.state, "capped"), (200, 0));
    assert_eq!(
        parts.store.list_blocking("curated/hits/").unwrap().len(),
        200
    );
    stop.send(true).unwrap();
    task.await.unwrap();
}

/// The arrival date of the log record at `offset`: raw objects are filed by it.
fn arrival_day(reader: &LogReader, offset: u64) -> gender_core::Date {
    let read = reader.read_to(offset, u64::MAX, 1 << 20).unwrap();
    gender_core::Date::of_millis(read.entries[0].arrival_ms)
}

fn date_plus(days: i32) -> String {
    gender_core::Date::from_ymd(2026, 1, 1)
        .unwrap()
        .add_days(days)
        .to_string()
}

#[tokio::test]
async fn past_the_backlog_bound_appends_are_refused_with_nothing_stored_until_curate_catches_up() {
    use gender_core::ports::{HitLog, LogRecord};
    use gender_local::{Backlog, BoundedHitLog};

    let dir = tempfile::tempdir().unwrap();
    let parts = open(dir.path());
    let status = Arc::new(PipelineStatus::default());
    let gate = BoundedHitLog::new(
        parts.log.clone(),
        Backlog {
            reader: parts.reader.clone(),
            max_bytes: 1000,
            space: None,
            max_pending_dates: usize::MAX,
            pending_dates: Default::default(),
            max_wait: None,
            waiting: Default::default(),
        },
        status.clone(),
    );
    let record = |i: u32| LogRecord {
        partition_key: "bp".into(),
        data: hit("bp", "M", i % 60),
    };
    let mut accepted = 0;
    let mut refused = 0;
    for i in 0..40 {
        match gate.append(vec![record(i)]).await {
            Ok(failed) => {
                assert!(failed.is_empty());
                accepted += 1;
            }
            Err(e) => {
                assert!(e.retryable(), "{e}");
                assert!(e.to_string().contains("pipeline behind"), "{e}");
                refused += 1;
            }
        }
    }
    assert!(
        refused > 0 && accepted > 0,
        "{accepted} accepted, {refused} refused"
    );
    let end = parts.reader.durable_end();
    assert!(end < 1000 + 200, "backlog stayed near its bound: {end}");
    // Asked before a request's body is parsed: refused without parsing.
    assert!(
        gate.admits()
            .unwrap_err()
            .to_string()
            .contains("pipeline behind")
    );
    assert!(gate.refusing.load(std::sync::atomic::Ordering::Relaxed));

    // Curate catches up: the gate opens again, and every accepted hit counts once.
    let (handle, stop, task) = start_with_status(&parts, status.clone());
    handle.flush().await.unwrap();
    assert_eq!(status.visible_offset(), end);
    assert_eq!(counts(&parts.state, "bp"), (accepted, 0));
    assert!(gate.admits().is_ok());
    assert!(gate.append(vec![record(0)]).await.is_ok());
    assert!(!gate.refusing.load(std::sync::atomic::Ordering::Relaxed));
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn the_curate_time_bound_trusts_the_pace_only_once_hits_have_waited() {
    use gender_core::ports::{HitLog, LogRecord};
    use gender_local::{Backlog, BoundedHitLog};

    let dir = tempfile::tempdir().unwrap();
    let parts = open(dir.path());
    let status = Arc::new(PipelineStatus::default());
    // The last cycles made 100 bytes visible a second: a quiet minute's
    // pace, mostly the fixed cost of a cycle.
    status.cycle_made_visible(100, Duration::from_secs(1));
    let gate = BoundedHitLog::new(
        parts.log.clone(),
        Backlog {
            reader: parts.reader.clone(),
            max_bytes: u64::MAX,
            space: None,
            max_pending_dates: usize::MAX,
            pending_dates: Default::default(),
            max_wait: Some(Duration::from_millis(800)),
            waiting: Default::default(),
        },
        status.clone(),
    );
    let burst: Vec<LogRecord> = (0..50)
        .map(|i| LogRecord {
            partition_key: "burst".into(),
            data: hit("burst", "F", i),
        })
        .collect();
    // Far more than 800 ms of work at that pace, but nothing has waited:
    // a burst after a quiet spell is taken.
    gate.append(burst.clone()).await.unwrap();
    assert!(gate.admits().is_ok());
    // Once the oldest has waited a quarter of the bound without becoming
    // visible, the pace counts: the backlog would wait far beyond it.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let refusal = gate.admits().unwrap_err().to_string();
    assert!(refusal.contains("to curate"), "{refusal}");
    // Visible again: nothing waits, the gate opens.
    status.set_visible(parts.reader.durable_end());
    assert!(gate.admits().is_ok());
}

/// A clock set to 2027-06-01, 189 days after the hits' date.
fn june_2027() -> i64 {
    gender_core::Date::from_ymd(2027, 6, 1)
        .unwrap()
        .start_millis()
}

#[tokio::test]
async fn retention_deletes_partitions_older_than_their_age_by_the_delivery_clock() {
    let dir = tempfile::tempdir().unwrap();
    let parts = open(dir.path());
    parts
        .log
        .append_payloads(vec![hit("old", "M", 1), hit("old", "F", 2)])
        .await
        .unwrap();
    let settings = DeliverySettings {
        interval: Duration::from_secs(3600),
        buffer_bytes: u64::MAX,
        ..DeliverySettings::new(june_2027)
    };
    let upkeep = HousekeepingSettings {
        retention: RetentionPolicy {
            raw_days: Some(30),
            curated_hits_days: Some(400),
            daily_rollups_days: None,
        },
        ..HousekeepingSettings::new(june_2027)
    };
    let (handle, stop, task) = start_with_settings(
        &parts,
        Arc::new(PipelineStatus::default()),
        settings,
        upkeep,
    );
    handle.flush().await.unwrap();
    // The raw object was curated in the same cycle, then expired: 189 > 30
    // days. The curated hits are younger than 400 days and stay, and the
    // profile keeps its counts (retention forgets files, not visitors).
    assert!(raw_keys(&parts.store).is_empty(), "raw expired");
    assert!(dir.path().join(format!("curated/hits/dt={DAY}")).exists());
    assert_eq!(counts(&parts.state, "old"), (1, 1));
    assert!(
        !dir.path()
            .join(".retention")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some())
    );
    stop.send(true).unwrap();
    task.await.unwrap();
}
