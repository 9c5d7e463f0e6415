//! Local delivery: reads the durable log like Firehose reads Kinesis, runs the
//! shared transform into raw/ objects, then curates them into curated/ and
//! the state store. One task, so a flush is a true barrier.
//!
//! Crash safety: a batch `[start, end)` is recorded before its objects are
//! written (so a restart rewrites exactly that batch under the same names),
//! the checkpoint and the curate queue move in one transaction afterwards, and
//! curate's counter update and queue ack are one transaction with its marker.

use crate::CycleError;
use crate::metrics::PipelineMetrics;
use gender_core::ports::ObjectStore;
use gender_core::time::format_rfc3339_millis;
use gender_core::transform::transform_record;
use gender_core::{Date, layout};
use gender_embedded::state::StateStore;
use gender_embedded::{AckQueuedOnApply, DirObjectStore, EmbeddedError, LogEntry, LogReader};
use gender_pipeline::{PipelineError, curate_object};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Log bytes delivered into one set of raw objects at most.
const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// What a flush observed, returned by `POST /admin/flush`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FlushReport {
    pub delivered_offset: u64,
    pub objects_delivered: u64,
    pub objects_curated: u64,
    pub hits_curated: u64,
}

pub struct DeliverySettings {
    pub interval: Duration,
    pub buffer_bytes: u64,
    pub keep_raw: bool,
    pub clock: fn() -> i64,
}

type FlushReply = oneshot::Sender<Result<FlushReport, String>>;

#[derive(Clone)]
pub struct DeliveryHandle {
    flushes: mpsc::Sender<FlushReply>,
}

impl DeliveryHandle {
    /// Resolves once every hit durable before the call is curated and visible.
    pub async fn flush(&self) -> Result<FlushReport, String> {
        let (reply, answer) = oneshot::channel();
        self.flushes
            .send(reply)
            .await
            .map_err(|_| CycleError::Stopped.to_string())?;
        answer.await.map_err(|_| CycleError::Stopped.to_string())?
    }
}

pub struct Delivery {
    reader: LogReader,
    store: DirObjectStore,
    state: StateStore,
    metrics: Arc<PipelineMetrics>,
    settings: DeliverySettings,
    delivered: u64,
}

impl Delivery {
    pub fn new(
        reader: LogReader,
        store: DirObjectStore,
        state: StateStore,
        metrics: Arc<PipelineMetrics>,
        settings: DeliverySettings,
    ) -> Result<Delivery, EmbeddedError> {
        let delivered = state.delivery_state()?.delivered_offset;
        Ok(Delivery {
            reader,
            store,
            state,
            metrics,
            settings,
            delivered,
        })
    }

    /// Starts the loop; it runs a last cycle and returns when `shutdown` flips.
    pub fn spawn(
        self,
        shutdown: watch::Receiver<bool>,
    ) -> (DeliveryHandle, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(self.run(rx, shutdown));
        (DeliveryHandle { flushes: tx }, task)
    }

    async fn run(
        mut self,
        mut flushes: mpsc::Receiver<FlushReply>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        // Nothing new is delivered before the interrupted batch is redone
        // under its recorded bounds, or its objects could be cut differently.
        while let Err(e) = self.recover().await {
            tracing::error!(error = %e, "pipeline recovery failed; retrying");
            tokio::select! {
                _ = tokio::time::sleep(self.settings.interval) => {}
                _ = shutdown.changed() => return,
            }
        }
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
                        Ok(report) => tracing::info!(delivered_offset = report.delivered_offset, "pipeline drained"),
                        Err(e) => tracing::error!(error = %e, "final pipeline cycle failed; the log keeps the hits"),
                    }
                    return;
                }
            }
            let result = self.cycle().await.map_err(|e| {
                tracing::error!(error = %e, "pipeline cycle failed; will retry");
                e.to_string()
            });
            for reply in waiters {
                let _ = reply.send(result.clone());
            }
        }
    }

    /// Finishes what a crash interrupted: the recorded batch, then the queue.
    async fn recover(&mut self) -> Result<(), CycleError> {
        let state = self.state_op(StateStore::delivery_state).await?;
        if let Some((start, end)) = state.intent {
            tracing::info!(start, end, "re-delivering the batch a crash interrupted");
            let entries = self.read_log(start, (end - start) as usize).await?.0;
            let keys = self.write_raw_objects(start, end, &entries).await?;
            self.finish_delivery(start, end, keys).await?;
            self.delivered = end;
        }
        self.curate_pending(&mut FlushReport::default()).await
    }

    async fn read_log(
        &self,
        from: u64,
        max_bytes: usize,
    ) -> Result<(Vec<LogEntry>, u64), CycleError> {
        let reader = self.reader.clone();
        let read = tokio::task::spawn_blocking(move || reader.read(from, max_bytes));
        Ok(read.await.map_err(|_| CycleError::Stopped)??)
    }

    async fn state_op<T: Send + 'static>(
        &self,
        op: impl FnOnce(&StateStore) -> Result<T, EmbeddedError> + Send + 'static,
    ) -> Result<T, CycleError> {
        let state = self.state.clone();
        let done = tokio::task::spawn_blocking(move || op(&state));
        Ok(done.await.map_err(|_| CycleError::Stopped)??)
    }

    async fn finish_delivery(
        &self,
        start: u64,
        end: u64,
        keys: Vec<String>,
    ) -> Result<(), CycleError> {
        self.state_op(move |s| s.finish_delivery(start, end, &keys))
            .await
    }

    /// Delivers everything durable so far in batches; returns the oldest arrival time seen.
    async fn deliver_all(&mut self, report: &mut FlushReport) -> Result<Option<i64>, CycleError> {
        let mut oldest_arrival = None;
        while self.delivered < self.reader.durable_end() {
            let start = self.delivered;
            let (entries, end) = self.read_log(start, MAX_BATCH_BYTES).await?;
            oldest_arrival = oldest_arrival.or(entries.first().map(|e| e.arrival_ms));
            self.state_op(move |s| s.begin_delivery(start, end)).await?;
            let keys = self.write_raw_objects(start, end, &entries).await?;
            let objects = keys.len() as u64;
            self.finish_delivery(start, end, keys).await?;
            self.delivered = end;
            report.objects_delivered += objects;
            self.metrics
                .objects_delivered
                .fetch_add(objects, Ordering::Relaxed);
            self.metrics
                .hits_delivered
                .fetch_add(entries.len() as u64, Ordering::Relaxed);
        }
        self.metrics
            .delivered_offset
            .store(self.delivered, Ordering::Relaxed);
        Ok(oldest_arrival)
    }

    /// Delivers everything durable so far, then curates every queued object.
    async fn cycle(&mut self) -> Result<FlushReport, CycleError> {
        let mut report = FlushReport::default();
        let started_ms = (self.settings.clock)();
        let oldest_arrival = self.deliver_all(&mut report).await.inspect_err(|_| {
            self.metrics.delivery_errors.fetch_add(1, Ordering::Relaxed);
        })?;
        self.curate_pending(&mut report).await?;
        if let Some(arrival) = oldest_arrival {
            let lag_ms = (self.settings.clock)().saturating_sub(arrival).max(0) as u64;
            self.metrics.curate_lag_ms.store(lag_ms, Ordering::Relaxed);
            tracing::debug!(
                lag_ms,
                cycle_ms = (self.settings.clock)() - started_ms,
                "pipeline cycle"
            );
        }
        let reader = self.reader.clone();
        let delivered = self.delivered;
        if let Ok(Ok(n @ 1..)) =
            tokio::task::spawn_blocking(move || reader.delete_before(delivered)).await
        {
            tracing::info!(segments = n, "deleted delivered log segments");
        }
        report.delivered_offset = self.delivered;
        Ok(report)
    }

    /// The transform step: one NDJSON object per event date, plus the records
    /// that failed it under errors/ (Firehose's error output prefix).
    async fn write_raw_objects(
        &self,
        start: u64,
        end: u64,
        entries: &[LogEntry],
    ) -> Result<Vec<String>, CycleError> {
        let mut by_date: BTreeMap<Date, Vec<u8>> = BTreeMap::new();
        let mut failed = Vec::new();
        let mut line = Vec::with_capacity(128);
        for entry in entries {
            line.clear();
            match transform_record(&entry.payload, entry.arrival_ms, &mut line) {
                Ok(dt) => by_date.entry(dt).or_default().extend_from_slice(&line),
                Err(error) => {
                    let record = serde_json::json!({
                        "offset": entry.offset,
                        "arrival": format_rfc3339_millis(entry.arrival_ms),
                        "error": error.to_string(),
                        "data": String::from_utf8_lossy(&entry.payload),
                    });
                    failed.push(record.to_string());
                }
            }
        }
        let name = format!("{start:020}-{end:020}.ndjson");
        let mut keys = Vec::with_capacity(by_date.len());
        for (dt, body) in by_date {
            let key = layout::raw_key(dt, &name);
            self.store.put(&key, body).await?;
            keys.push(key);
        }
        if !failed.is_empty() {
            let dt = Date::of_millis((self.settings.clock)());
            let body = failed.join("\n") + "\n";
            self.store
                .put(&layout::processing_failed_key(dt, &name), body.into_bytes())
                .await?;
            self.metrics
                .records_failed
                .fetch_add(failed.len() as u64, Ordering::Relaxed);
            tracing::warn!(records = failed.len(), "records failed the transform");
        }
        Ok(keys)
    }

    async fn curate_pending(&self, report: &mut FlushReport) -> Result<(), CycleError> {
        for key in self.state_op(StateStore::delivery_state).await?.pending {
            let now = (self.settings.clock)();
            let counters = AckQueuedOnApply {
                state: self.state.clone(),
                queued_key: key.clone(),
            };
            match curate_object(
                &self.store,
                &self.store,
                &counters,
                &key,
                &key,
                self.settings.keep_raw,
                now,
            )
            .await
            {
                Ok(curated) => {
                    report.objects_curated += 1;
                    report.hits_curated += curated.hits as u64;
                    self.metrics.objects_curated.fetch_add(1, Ordering::Relaxed);
                    self.metrics
                        .hits_curated
                        .fetch_add(curated.hits as u64, Ordering::Relaxed);
                }
                Err(PipelineError::RawMissing(key)) => {
                    tracing::error!(%key, "queued raw object is missing; dropping it from the queue");
                    self.state_op(move |s| s.drop_pending(&key)).await?;
                }
                Err(e) => {
                    self.metrics.curate_errors.fetch_add(1, Ordering::Relaxed);
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }
}
