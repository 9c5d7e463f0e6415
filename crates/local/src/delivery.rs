//! Local delivery: reads the durable log like Firehose reads Kinesis, runs the
//! shared transform into raw/ objects, then curates them into curated/ and
//! the state store. One loop on its own thread (with its own small runtime),
//! so the transform and Parquet encoding never hold up the HTTP workers, and
//! a flush is a true barrier.
//!
//! Objects are cut like Firehose buffers: a cycle starts when `buffer_bytes`
//! of log are waiting or the interval passes, and delivers what was durable
//! when it started, in batches of at most [`MAX_BATCH_BYTES`] and at most
//! `max_dates_per_batch` event dates. Each batch is one raw object, filed
//! by the arrival date of its first hit like the log, so raw/ grows with
//! volume, not with the spread of event dates (issue 26); curate writes one
//! Parquet file per event date in it. The objects of a cycle are then
//! curated: Parquet each, and the counters of all of them in one
//! state-store transaction.
//!
//! Crash safety: a batch `[start, end)` is recorded before its objects are
//! written (so a restart rewrites exactly that batch under the same names),
//! the checkpoint and the curate queue move in one transaction afterwards, and
//! curate's counter update, markers and queue acknowledgements are one
//! transaction.
//!
//! A pending erasure (SPEC 17) splits a cycle at its log offset: delivery
//! stops there, curates everything before it and deletes the visitor's
//! profile before it reads on. Each cycle ends with the data directory's
//! upkeep ([`Housekeeping`]), which carries out the erasure on the files.

use crate::error::{CycleError, on_state};
use crate::housekeeping::Housekeeping;
use crate::metrics::PipelineMetrics;
use crate::status::PipelineStatus;
use gender_core::dedup::{CountAll, HitFilter, SeenIndex};
use gender_core::ports::ObjectStore;
use gender_core::time::format_rfc3339_millis;
use gender_core::transform::transform_record;
use gender_core::{Date, layout};
use gender_embedded::state::{ObjectDeltas, SeenKeys, StateStore};
use gender_embedded::{DirObjectStore, EmbeddedError, LogEntry, LogRead, LogReader};
use gender_pipeline::{PipelineError, PreparedObject, prepare_object};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Log bytes delivered into one set of raw objects at most.
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// Distinct event dates one batch holds at most: the Parquet files curate
/// writes for one raw object (one per date). As many as a cycle may write:
/// a smaller cap would cut a second's hits spread over a few hundred dates
/// into several objects, each with its own file per date, so files would
/// grow with hits instead of with dates (issue 26). Curate holds a date's
/// rows, not an open file, until the object is done.
pub const DEFAULT_MAX_DATES_PER_BATCH: usize = DEFAULT_MAX_DATES_PER_CYCLE;
/// Distinct event dates one delivery cycle writes curated files for at
/// most (the sum over its batches); the rest waits in the log for the next
/// cycle, so a cycle writes a bounded number of objects (SPEC 14).
pub const DEFAULT_MAX_DATES_PER_CYCLE: usize = 1024;
/// Raw objects whose counters one state-store transaction applies at most.
const MAX_OBJECTS_PER_APPLY: usize = 64;

/// What a flush observed, returned by `POST /admin/flush`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FlushReport {
    pub delivered_offset: u64,
    pub objects_delivered: u64,
    pub objects_curated: u64,
    pub hits_curated: u64,
    /// Hits not counted again because their `(clientid, hitid)` was (SPEC 15).
    pub hits_duplicate: u64,
    /// Accepted records lost to damaged log ranges since start: when not
    /// zero, not every accepted hit is visible (the flush answer says so).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub damaged_ranges: Vec<LostRange>,
    #[serde(skip_serializing_if = "is_zero")]
    pub lost_records: u64,
    /// Delivery cycles this flush took: more than one when a cycle reached
    /// its cap on event dates and the rest waited in the log.
    pub cycles: u64,
}

impl FlushReport {
    /// Adds a later cycle's report to this one.
    fn absorb(&mut self, later: FlushReport) {
        self.delivered_offset = later.delivered_offset;
        self.objects_delivered += later.objects_delivered;
        self.objects_curated += later.objects_curated;
        self.hits_curated += later.hits_curated;
        self.hits_duplicate += later.hits_duplicate;
        self.damaged_ranges = later.damaged_ranges;
        self.lost_records = later.lost_records;
        self.cycles += later.cycles;
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A damaged log range whose records were skipped, as the flush reports it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LostRange {
    /// First and last+1 log offsets of the damaged bytes.
    pub start: u64,
    pub end: u64,
    /// Records it most likely held.
    pub records: u64,
}

/// SPEC 15's default: an hour of arrival time.
pub const DEFAULT_DEDUP_HORIZON: Duration = Duration::from_secs(3600);

pub struct DeliverySettings {
    pub interval: Duration,
    pub buffer_bytes: u64,
    pub keep_raw: bool,
    pub clock: fn() -> i64,
    /// Distinct event dates one batch may hold; the batch is cut before the
    /// first hit of one more date.
    pub max_dates_per_batch: usize,
    /// How long a counted hit identity is remembered (SPEC 15); zero turns
    /// deduplication off.
    pub dedup_horizon: Duration,
    /// What the ids this process assigns start with
    /// ([`HitIds::own_prefix`](gender_core::hitid::HitIds::own_prefix)):
    /// such ids are unique, so they are counted without being remembered.
    pub own_hitid_prefix: Option<String>,
    /// How long a flush waits for the pipeline before it answers with the reason.
    pub flush_timeout: Duration,
    /// Event dates one cycle delivers at most (summed over its batches).
    pub max_dates_per_cycle: usize,
    /// Nice levels below the async workers that the delivery thread and its
    /// blocking threads run at ([`crate::scheduling`]); 0: the same priority.
    pub niceness: i32,
}

impl DeliverySettings {
    /// The local defaults: Firehose-like 1 s / 4 MiB buffering, raw kept.
    pub fn new(clock: fn() -> i64) -> DeliverySettings {
        DeliverySettings {
            interval: Duration::from_secs(1),
            buffer_bytes: 4 * 1024 * 1024,
            keep_raw: true,
            clock,
            max_dates_per_batch: DEFAULT_MAX_DATES_PER_BATCH,
            dedup_horizon: DEFAULT_DEDUP_HORIZON,
            own_hitid_prefix: None,
            flush_timeout: Duration::from_secs(120),
            max_dates_per_cycle: DEFAULT_MAX_DATES_PER_CYCLE,
            niceness: crate::scheduling::PIPELINE_NICENESS,
        }
    }
}

type FlushReply = oneshot::Sender<Result<FlushReport, String>>;

#[derive(Clone)]
pub struct DeliveryHandle {
    flushes: mpsc::Sender<FlushReply>,
    timeout: Duration,
    status: Arc<PipelineStatus>,
}

impl DeliveryHandle {
    /// Resolves once every hit durable before the call is curated and
    /// visible, or with why not: a failed cycle's reason, or, past the flush
    /// timeout, that it did not finish (and the failing stage, if any).
    pub async fn flush(&self) -> Result<FlushReport, String> {
        let (reply, answer) = oneshot::channel();
        let waited = tokio::time::timeout(self.timeout, async {
            self.flushes
                .send(reply)
                .await
                .map_err(|_| CycleError::Stopped.to_string())?;
            answer.await.map_err(|_| CycleError::Stopped.to_string())?
        })
        .await;
        waited.unwrap_or_else(|_| {
            let failing = match self.status.failure() {
                Some(f) => format!("; {} is failing: {}", f.stage, f.reason),
                None => String::new(),
            };
            Err(format!(
                "the pipeline did not finish within the flush timeout ({} ms){failing}",
                self.timeout.as_millis()
            ))
        })
    }
}

/// What went wrong, for HTTP bodies: the error and its root cause (a full
/// disk, an I/O error), with the data directory's path left out.
fn describe(error: &CycleError, data_dir: &std::path::Path) -> String {
    let mut root: &dyn std::error::Error = error;
    while let Some(source) = root.source() {
        root = source;
    }
    let top = error.to_string();
    let root = root.to_string();
    let text = if top.ends_with(&root) {
        top
    } else {
        format!("{top}: {root}")
    };
    text.replace(&data_dir.display().to_string(), "<data dir>")
}

/// A batch of log records after the transform, not yet written.
struct TransformedBatch {
    start: u64,
    /// Where the batch ends: the read end, or the record a date cap cut at.
    end: u64,
    /// Oldest arrival time in the batch.
    first_arrival_ms: Option<i64>,
    records: usize,
    by_date: BTreeMap<Date, Vec<u8>>,
    /// Records that failed the transform, as error-output lines.
    failed: Vec<String>,
}

/// Runs the shared transform over `entries` (which start at `start` and end
/// at `end`), stopping before the first record of a date beyond `max_dates`.
fn transform_batch(
    start: u64,
    end: u64,
    entries: &[LogEntry],
    max_dates: usize,
) -> TransformedBatch {
    let mut batch = TransformedBatch {
        start,
        end,
        first_arrival_ms: entries.first().map(|e| e.arrival_ms),
        records: 0,
        by_date: BTreeMap::new(),
        failed: Vec::new(),
    };
    let mut line = Vec::with_capacity(128);
    for entry in entries {
        line.clear();
        match transform_record(&entry.payload, entry.arrival_ms, &mut line) {
            Ok(dt) => {
                if !batch.by_date.contains_key(&dt) && batch.by_date.len() >= max_dates.max(1) {
                    batch.end = entry.offset;
                    break;
                }
                batch
                    .by_date
                    .entry(dt)
                    .or_default()
                    .extend_from_slice(&line);
            }
            Err(error) => {
                let record = serde_json::json!({
                    "offset": entry.offset,
                    "arrival": format_rfc3339_millis(entry.arrival_ms),
                    "error": error.to_string(),
                    "data": String::from_utf8_lossy(&entry.payload),
                });
                batch.failed.push(record.to_string());
            }
        }
        batch.records += 1;
    }
    batch
}

pub struct Delivery {
    reader: LogReader,
    store: DirObjectStore,
    state: StateStore,
    metrics: Arc<PipelineMetrics>,
    status: Arc<PipelineStatus>,
    settings: DeliverySettings,
    delivered: u64,
    /// A batch recorded as begun but not finished: redone exactly as cut,
    /// so its objects keep their names and nothing is written twice.
    unfinished: Option<(u64, u64)>,
    /// The stage the current step belongs to, for `/health` when it fails.
    stage: &'static str,
    /// The identities counted within the dedup horizon; `None` when off.
    seen: Option<SeenIndex>,
    /// Delivery reads no further than this log offset: the position of the
    /// oldest pending erasure still ahead (see [`crate::erasure`]).
    until: u64,
    /// Told which dates got curated files; run at the end of each cycle.
    housekeeping: Housekeeping,
    /// Event dates the running cycle has delivered so far.
    cycle_dates: usize,
    /// Whether a flush waits for the running cycle.
    flushing: bool,
}

impl Delivery {
    pub fn new(
        reader: LogReader,
        store: DirObjectStore,
        state: StateStore,
        metrics: Arc<PipelineMetrics>,
        status: Arc<PipelineStatus>,
        settings: DeliverySettings,
        housekeeping: Housekeeping,
    ) -> Result<Delivery, EmbeddedError> {
        let delivered = state.delivery_state()?.delivered_offset;
        metrics.delivered_offset.store(delivered, Ordering::Relaxed);
        let horizon_ms = i64::try_from(settings.dedup_horizon.as_millis()).unwrap_or(i64::MAX);
        let seen = if horizon_ms == 0 {
            None
        } else {
            // This process's assigned ids need no memory (see SeenIndex);
            // ids assigned before a restart still go through the index.
            let mut index = SeenIndex::new(horizon_ms);
            if let Some(prefix) = &settings.own_hitid_prefix {
                index = index.with_unique_prefix(prefix.as_str());
            }
            let since = index.oldest_kept_ms((settings.clock)());
            let mut loaded = 0;
            for (at_ms, keys) in state.seen_since_blocking(since)? {
                loaded += keys.len();
                index.remember(&keys, at_ms);
            }
            tracing::info!(identities = loaded, horizon_ms, "dedup index rebuilt");
            metrics
                .dedup_identities
                .store(index.len() as u64, Ordering::Relaxed);
            Some(index)
        };
        Ok(Delivery {
            reader,
            store,
            state,
            metrics,
            status,
            settings,
            delivered,
            unfinished: None,
            stage: "delivery",
            seen,
            until: u64::MAX,
            housekeeping,
            cycle_dates: 0,
            flushing: false,
        })
    }

    /// Starts the loop on its own thread; it runs a last cycle and ends when
    /// `shutdown` flips. Await the returned task to know it has drained.
    pub fn spawn(
        self,
        shutdown: watch::Receiver<bool>,
    ) -> (DeliveryHandle, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(64);
        let (done_tx, done_rx) = oneshot::channel();
        let flush_timeout = self.settings.flush_timeout;
        let status = self.status.clone();
        // Computed here, on a thread at the workers' priority: the threads
        // below start from theirs.
        let nice = crate::scheduling::below_current(self.settings.niceness);
        let thread = std::thread::Builder::new()
            .name("delivery".into())
            .spawn(move || {
                // Below the async workers, so a lookup's wake-up runs first
                // (crate::scheduling). Its blocking threads (log reads,
                // curate's file work) are lowered too, whichever thread
                // happens to start them.
                let lower = move || crate::scheduling::set_niceness(nice);
                lower();
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .thread_name("delivery-io")
                    .on_thread_start(lower)
                    .build();
                match runtime {
                    Ok(runtime) => runtime.block_on(self.run(rx, shutdown)),
                    Err(e) => tracing::error!(error = %e, "delivery runtime did not start"),
                }
                let _ = done_tx.send(());
            });
        if let Err(e) = thread {
            tracing::error!(error = %e, "delivery thread did not start");
        }
        let task = tokio::spawn(async move {
            let _ = done_rx.await;
        });
        let handle = DeliveryHandle {
            flushes: tx,
            timeout: flush_timeout,
            status,
        };
        (handle, task)
    }

    async fn run(
        mut self,
        mut flushes: mpsc::Receiver<FlushReply>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        // Nothing new is delivered before the interrupted batch is redone
        // under its recorded bounds, or its objects could be cut differently.
        // Meanwhile the failing stage shows in `/health` and a flush is
        // answered with the reason instead of waiting for it.
        while let Err(e) = self.recover().await {
            let reason = describe(&e, self.store.root());
            tracing::error!(error = %e, stage = self.stage, %reason, "delivery recovery failed; retrying");
            self.status.set_failure(self.stage, reason.clone());
            let retry = tokio::time::sleep(self.settings.interval);
            tokio::pin!(retry);
            loop {
                tokio::select! {
                    _ = &mut retry => break,
                    Some(reply) = flushes.recv() => {
                        let _ = reply.send(Err(format!("recovering after a restart: {reason}")));
                    }
                    _ = shutdown.changed() => return,
                }
            }
        }
        self.status.clear_failure();
        let mut ticker = tokio::time::interval(self.settings.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut log_end = self.reader.subscribe();
        loop {
            let mut waiters = Vec::new();
            tokio::select! {
                _ = ticker.tick() => {}
                Some(reply) = flushes.recv() => {
                    waiters.push(reply);
                    while let Ok(more) = flushes.try_recv() {
                        waiters.push(more);
                    }
                }
                Ok(()) = log_end.changed() => {
                    // Size-triggered delivery, like Firehose's buffer size hint.
                    let waiting = log_end.borrow_and_update().saturating_sub(self.delivered);
                    if waiting < self.settings.buffer_bytes {
                        continue;
                    }
                }
                _ = shutdown.changed() => {
                    match self.cycle().await {
                        Ok(report) => tracing::info!(delivered_offset = report.delivered_offset, "delivery drained"),
                        Err(e) => tracing::error!(error = %e, "final delivery cycle failed; the log keeps the hits"),
                    }
                    return;
                }
            }
            // A flush is a barrier: cycles until everything durable before
            // it is visible, each within its cap on event dates.
            let goal = self.reader.durable_end();
            self.flushing = !waiters.is_empty();
            let mut progress = self.delivered;
            let mut result = self.cycle().await;
            while !waiters.is_empty()
                && let Ok(report) = &mut result
                && self.delivered < goal
                && self.delivered > progress
            {
                progress = self.delivered;
                match self.cycle().await {
                    Ok(later) => report.absorb(later),
                    Err(e) => result = Err(e),
                }
            }
            let result = result.map_err(|e| {
                let reason = describe(&e, self.store.root());
                tracing::error!(error = %e, stage = self.stage, %reason, "delivery cycle failed; will retry");
                reason
            });
            match &result {
                Ok(_) => self.status.clear_failure(),
                Err(reason) => self.status.set_failure(self.stage, reason.clone()),
            }
            // The interval counts from the end of the last cycle, unless the
            // cycle stopped at its cap on event dates with more waiting: then
            // the next one starts now, or curate would idle an interval per
            // 1,024 dates while a backlog spread over many waits (issue 26).
            if self.cycle_dates >= self.settings.max_dates_per_cycle
                && self.delivered < self.reader.durable_end()
            {
                ticker.reset_immediately();
            } else {
                ticker.reset();
            }
            for reply in waiters {
                let _ = reply.send(result.clone());
            }
        }
    }

    /// Finishes what a crash interrupted: the recorded batch, then the queue.
    async fn recover(&mut self) -> Result<(), CycleError> {
        self.stage = "compaction";
        self.housekeeping.recover().await?;
        self.stage = "delivery";
        let state = on_state(&self.state, StateStore::delivery_state).await?;
        self.unfinished = state.intent;
        if let Some((start, end)) = self.unfinished {
            tracing::info!(start, end, "re-delivering the batch a crash interrupted");
            self.deliver_batch(&mut FlushReport::default()).await?;
        }
        self.stage = "curate";
        self.curate_pending(&mut FlushReport::default()).await
    }

    /// Reads the log from `from`; damaged ranges on the way are skipped,
    /// reported (log line, metric, `/health`) and never hold anything back.
    async fn read_log(&self, from: u64, max_bytes: usize) -> Result<LogRead, CycleError> {
        let reader = self.reader.clone();
        let until = self.until;
        let read = tokio::task::spawn_blocking(move || reader.read_to(from, until, max_bytes));
        let read = read.await.map_err(|_| CycleError::Stopped)??;
        for damage in &read.damaged {
            tracing::error!(
                start = damage.start,
                end = damage.end,
                records = damage.records,
                "damaged log range skipped; the records after it are delivered"
            );
            self.status.record_damage(*damage);
        }
        Ok(read)
    }

    async fn finish_delivery(
        &self,
        start: u64,
        end: u64,
        keys: Vec<String>,
    ) -> Result<(), CycleError> {
        on_state(&self.state, move |s| s.finish_delivery(start, end, &keys)).await
    }

    /// Delivers what was durable when the cycle started, in batches; returns
    /// the oldest arrival time seen.
    async fn deliver_until(
        &mut self,
        target: u64,
        report: &mut FlushReport,
    ) -> Result<Option<i64>, CycleError> {
        let mut oldest_arrival = None;
        while self.delivered < target && self.cycle_dates < self.settings.max_dates_per_cycle {
            let first_arrival = self.deliver_batch(report).await?;
            oldest_arrival = oldest_arrival.or(first_arrival);
        }
        Ok(oldest_arrival)
    }

    /// Delivers one batch from the checkpoint: the one recorded as
    /// unfinished (after a crash or a failed attempt) exactly as it was cut,
    /// else a new one. Returns its oldest arrival time.
    async fn deliver_batch(&mut self, report: &mut FlushReport) -> Result<Option<i64>, CycleError> {
        let start = self.delivered;
        let mut batch = match self.unfinished {
            Some((recorded, end)) if recorded == start => {
                let read = self.read_log(start, (end - start) as usize).await?;
                transform_batch(start, end, &read.entries, usize::MAX)
            }
            _ => {
                let read = self.read_log(start, MAX_BATCH_BYTES).await?;
                let batch = transform_batch(
                    start,
                    read.next,
                    &read.entries,
                    self.settings.max_dates_per_batch,
                );
                let end = batch.end;
                on_state(&self.state, move |s| s.begin_delivery(start, end)).await?;
                self.unfinished = Some((start, end));
                batch
            }
        };
        if let Some(arrival) = batch.first_arrival_ms {
            self.status.cycle_reading_since(arrival);
        }
        let end = batch.end;
        self.cycle_dates += batch.by_date.len();
        let keys = self.write_raw_objects(&mut batch).await?;
        let objects = keys.len() as u64;
        self.finish_delivery(start, end, keys).await?;
        self.unfinished = None;
        self.delivered = end;
        report.objects_delivered += objects;
        self.metrics
            .objects_delivered
            .fetch_add(objects, Ordering::Relaxed);
        self.metrics
            .hits_delivered
            .fetch_add(batch.records as u64, Ordering::Relaxed);
        self.metrics
            .delivered_offset
            .store(self.delivered, Ordering::Relaxed);
        Ok(batch.first_arrival_ms)
    }

    /// Delivers everything durable so far, then curates every queued object.
    /// A pending erasure splits the cycle at its log offset: what came
    /// before is delivered and curated, the erasure carried out, then the rest.
    async fn cycle(&mut self) -> Result<FlushReport, CycleError> {
        let (started, visible_before) = (std::time::Instant::now(), self.delivered);
        let mut report = FlushReport {
            cycles: 1,
            ..FlushReport::default()
        };
        self.cycle_dates = 0;
        let target = self.reader.durable_end();
        let mut oldest_arrival = None;
        loop {
            let erasures = on_state(&self.state, StateStore::pending_erasures_blocking).await?;
            self.stage = "curate";
            self.curate_pending(&mut report).await?;
            // At a request's offset exactly, with everything before it
            // curated and nothing after it: the profile goes, once.
            let due: Vec<String> = erasures
                .iter()
                .filter(|e| !e.profile_forgotten && e.log_offset <= self.delivered)
                .map(|e| e.id.clone())
                .collect();
            if !due.is_empty() {
                self.stage = "erasure";
                on_state(&self.state, move |s| {
                    let ids: Vec<&str> = due.iter().map(String::as_str).collect();
                    s.forget_profiles_blocking(&ids)
                })
                .await?;
            }
            if self.delivered >= target || self.cycle_dates >= self.settings.max_dates_per_cycle {
                break;
            }
            self.until = erasures
                .iter()
                .filter(|e| !e.profile_forgotten && e.log_offset > self.delivered)
                .map(|e| e.log_offset)
                .min()
                .unwrap_or(u64::MAX);
            self.stage = "delivery";
            let arrival = self
                .deliver_until(target.min(self.until), &mut report)
                .await
                .inspect_err(|_| {
                    self.metrics.delivery_errors.fetch_add(1, Ordering::Relaxed);
                })?;
            oldest_arrival = oldest_arrival.or(arrival);
        }
        self.until = u64::MAX;
        self.status.set_visible(self.delivered);
        if let Some(arrival) = oldest_arrival {
            let lag_ms = (self.settings.clock)().saturating_sub(arrival).max(0) as u64;
            self.metrics.curate_lag_ms.store(lag_ms, Ordering::Relaxed);
        }
        let reader = self.reader.clone();
        let delivered = self.delivered;
        if let Ok(Ok(n @ 1..)) =
            tokio::task::spawn_blocking(move || reader.delete_before(delivered)).await
        {
            tracing::info!(segments = n, "deleted delivered log segments");
        }
        report.delivered_offset = self.delivered;
        report.lost_records = self.status.damaged_records();
        report.damaged_ranges = self
            .status
            .damaged_ranges()
            .into_iter()
            .map(|d| LostRange {
                start: d.start,
                end: d.end,
                records: d.records as u64,
            })
            .collect();
        self.status
            .cycle_made_visible(self.delivered - visible_before, started.elapsed());
        if let Err((stage, e)) = self.housekeeping.run(self.flushing).await {
            self.stage = stage;
            return Err(e);
        }
        Ok(report)
    }

    /// The transform's output: one NDJSON object for the batch, plus the
    /// records that failed it under errors/ (Firehose's error output prefix),
    /// dated by the batch's first arrival so a redone batch gets the same name.
    async fn write_raw_objects(
        &mut self,
        batch: &mut TransformedBatch,
    ) -> Result<Vec<String>, CycleError> {
        let name = layout::raw_object_name(batch.start, batch.end);
        let mut keys = Vec::with_capacity(1);
        // One object per batch whatever the spread of its event dates, filed
        // by arrival like the log (issue 26): raw/ grows with volume. Its
        // lines stay grouped by event date; curate writes one Parquet per date.
        let by_date = std::mem::take(&mut batch.by_date);
        if !by_date.is_empty() {
            let arrived_on = Date::of_millis(batch.first_arrival_ms.unwrap_or(0));
            let mut body = Vec::with_capacity(by_date.values().map(Vec::len).sum());
            for lines in by_date.into_values() {
                body.extend_from_slice(&lines);
            }
            let key = layout::raw_key(arrived_on, &name);
            self.store.put(&key, body).await?;
            keys.push(key);
            if self.settings.keep_raw {
                self.housekeeping.date_got_raw(arrived_on);
            }
        }
        if !batch.failed.is_empty() {
            let failed_on = Date::of_millis(batch.first_arrival_ms.unwrap_or(0));
            let body = batch.failed.join("\n") + "\n";
            self.store
                .put(
                    &layout::processing_failed_key(failed_on, &name),
                    body.into_bytes(),
                )
                .await?;
            self.metrics
                .records_failed
                .fetch_add(batch.failed.len() as u64, Ordering::Relaxed);
            tracing::warn!(records = batch.failed.len(), "records failed the transform");
        }
        Ok(keys)
    }

    /// Curates the queue: each object's Parquet, then the counters of up to
    /// [`MAX_OBJECTS_PER_APPLY`] objects, their markers and their queue
    /// acknowledgements in one transaction.
    async fn curate_pending(&mut self, report: &mut FlushReport) -> Result<(), CycleError> {
        let pending = on_state(&self.state, StateStore::delivery_state)
            .await?
            .pending;
        if pending.is_empty() {
            return Ok(());
        }
        // No erasure swaps a date's files while new ones are written into it.
        let _no_swaps = self.housekeeping.curated_writes().await;
        for keys in pending.chunks(MAX_OBJECTS_PER_APPLY) {
            let result = self.curate_group(keys, report).await;
            if result.is_err()
                && let Some(index) = &mut self.seen
            {
                // The group did not commit: its decisions are taken again,
                // the same way, when it is redone.
                index.discard_pending();
            }
            result?;
        }
        Ok(())
    }

    async fn curate_group(
        &mut self,
        keys: &[String],
        report: &mut FlushReport,
    ) -> Result<(), CycleError> {
        let mut prepared = Vec::with_capacity(keys.len());
        for key in keys {
            let filter: &mut dyn HitFilter = match &mut self.seen {
                Some(index) => index,
                None => &mut CountAll,
            };
            match prepare_object(&self.store, &self.store, key, filter).await {
                Ok(object) => prepared.push(object),
                Err(PipelineError::RawMissing(key)) => {
                    tracing::error!(%key, "queued raw object is missing; dropping it from the queue");
                    on_state(&self.state, move |s| s.drop_pending(&key)).await?;
                }
                Err(e) => {
                    self.metrics.curate_errors.fetch_add(1, Ordering::Relaxed);
                    return Err(e.into());
                }
            }
        }
        self.apply(prepared, report).await
    }

    async fn apply(
        &mut self,
        prepared: Vec<PreparedObject>,
        report: &mut FlushReport,
    ) -> Result<(), CycleError> {
        if prepared.is_empty() {
            return Ok(());
        }
        let now = (self.settings.clock)();
        let prepared = Arc::new(prepared);
        let objects = prepared.clone();
        let (seen_keys, keep_since_ms) = match &mut self.seen {
            Some(index) => (index.pending_shared(), index.oldest_kept_ms(now)),
            None => (Arc::default(), i64::MIN),
        };
        on_state(&self.state, move |s| {
            let batch: Vec<ObjectDeltas> = objects
                .iter()
                .map(|o| ObjectDeltas {
                    // Locally a raw object's key is its identity and its queue entry.
                    object_id: &o.raw_key,
                    deltas: &o.deltas,
                    ack_queued: Some(&o.raw_key),
                })
                .collect();
            let seen = SeenKeys {
                keys: seen_keys,
                keep_since_ms,
            };
            s.apply_objects_blocking(&batch, seen, now)
        })
        .await
        .inspect_err(|_| {
            self.metrics.curate_errors.fetch_add(1, Ordering::Relaxed);
        })?;
        self.housekeeping.dates_got_files(
            prepared
                .iter()
                .flat_map(|o| &o.curated_keys)
                .filter_map(|key| layout::date_of_key(key)),
        );
        if let Some(index) = &mut self.seen {
            index.remember_pending(now);
            self.metrics
                .dedup_identities
                .store(index.len() as u64, Ordering::Relaxed);
        }
        let hits: u64 = prepared.iter().map(|o| o.hits as u64).sum();
        let duplicates: u64 = prepared.iter().map(|o| o.duplicates as u64).sum();
        report.objects_curated += prepared.len() as u64;
        report.hits_curated += hits;
        report.hits_duplicate += duplicates;
        self.metrics
            .hits_duplicate
            .fetch_add(duplicates, Ordering::Relaxed);
        self.metrics
            .objects_curated
            .fetch_add(prepared.len() as u64, Ordering::Relaxed);
        self.metrics.hits_curated.fetch_add(hits, Ordering::Relaxed);
        if !self.settings.keep_raw {
            for object in prepared.iter() {
                self.store.delete(&object.raw_key).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(offset: u64, day: u32) -> LogEntry {
        LogEntry {
            offset,
            arrival_ms: 1_795_478_400_000,
            payload: format!(
                r#"{{"clientid":"a","pageGender":"M","timestamp":"2026-10-{day:02}T00:00:00Z"}}"#
            )
            .into_bytes(),
        }
    }

    #[test]
    fn a_batch_is_cut_before_the_first_hit_of_one_date_too_many() {
        let entries: Vec<LogEntry> = (0..10).map(|i| entry(i * 100, 1 + i as u32 % 5)).collect();
        let batch = transform_batch(0, 1000, &entries, 3);
        assert_eq!(batch.by_date.len(), 3);
        assert_eq!((batch.end, batch.records), (300, 3));

        let all = transform_batch(0, 1000, &entries, 5);
        assert_eq!((all.end, all.records, all.by_date.len()), (1000, 10, 5));
    }

    #[test]
    fn the_first_record_is_always_taken_and_failures_do_not_count_as_dates() {
        let mut entries = vec![LogEntry {
            offset: 0,
            arrival_ms: 1_795_478_400_000,
            payload: b"not json".to_vec(),
        }];
        entries.extend((1..4).map(|i| entry(i * 100, i as u32)));
        let batch = transform_batch(0, 400, &entries, 1);
        assert_eq!((batch.failed.len(), batch.by_date.len()), (1, 1));
        assert_eq!(batch.end, 200);
    }
}
