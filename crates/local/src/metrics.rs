//! The Prometheus text of `/metrics`: one `prometheus-client` registry with
//! the API's metrics ([`ApiMetrics`]), the pipeline's ([`PipelineMetrics`])
//! and the values read at scrape time ([`ScrapeTime`]), rendered in the
//! Prometheus text format 0.0.4.

use crate::status::{Backlog, BoundedHitLog, PipelineStatus};
use gender_api::ApiMetrics;
use gender_embedded::LogReader;
use gender_embedded::state::StateStore;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// `Content-Type` of the rendered text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// A registered counter that the pipeline bumps like an [`AtomicU64`]
/// (`fetch_add`); the registry reads the same atomic.
#[derive(Debug, Clone, Default)]
pub struct CounterCell(Counter);

impl Deref for CounterCell {
    type Target = AtomicU64;
    fn deref(&self) -> &AtomicU64 {
        self.0.inner()
    }
}

/// A registered gauge that the pipeline sets like an [`AtomicU64`] (`store`).
#[derive(Debug, Clone, Default)]
pub struct GaugeCell(Gauge<u64, AtomicU64>);

impl Deref for GaugeCell {
    type Target = AtomicU64;
    fn deref(&self) -> &AtomicU64 {
        self.0.inner()
    }
}

/// Counters of the local pipeline stages.
#[derive(Debug, Default)]
pub struct PipelineMetrics {
    pub hits_delivered: CounterCell,
    pub objects_delivered: CounterCell,
    pub records_failed: CounterCell,
    pub objects_curated: CounterCell,
    pub hits_curated: CounterCell,
    /// Hits curate skipped as already counted (SPEC 15).
    pub hits_duplicate: CounterCell,
    /// Hit identities the dedup index remembers.
    pub dedup_identities: GaugeCell,
    /// Rendered in seconds ([`ScrapeTime`]).
    pub curate_lag_ms: AtomicU64,
    pub delivered_offset: GaugeCell,
    pub delivery_errors: CounterCell,
    pub curate_errors: CounterCell,
    pub daily_runs: CounterCell,
    pub daily_errors: CounterCell,
    /// Curated files merged away by compaction.
    pub files_compacted: CounterCell,
    pub raw_files_compacted: CounterCell,
    /// Date partitions deleted by retention.
    pub partitions_expired: CounterCell,
    /// Erasures carried out (SPEC 17).
    pub erasures_completed: CounterCell,
    /// Curated hits rows removed by erasures.
    pub erased_rows: CounterCell,
}

impl PipelineMetrics {
    /// The pipeline's counters, its errors counted in the API's
    /// `gender_errors_total` family (stages `delivery`, `curate`, `daily`).
    pub fn new(api: &ApiMetrics) -> PipelineMetrics {
        let errors = |stage| CounterCell(api.error_counter(stage));
        PipelineMetrics {
            delivery_errors: errors("delivery"),
            curate_errors: errors("curate"),
            daily_errors: errors("daily"),
            ..PipelineMetrics::default()
        }
    }

    /// Registers the pipeline's metrics (its errors are in the API's family).
    fn register(&self, registry: &mut Registry) {
        let counters = [
            (
                "gender_hits_delivered",
                "Log records delivered to raw objects",
                &self.hits_delivered,
            ),
            (
                "gender_objects_delivered",
                "Raw objects written by delivery",
                &self.objects_delivered,
            ),
            (
                "gender_records_processing_failed",
                "Records the transform rejected (errors/ prefix)",
                &self.records_failed,
            ),
            (
                "gender_objects_curated",
                "Raw objects curated",
                &self.objects_curated,
            ),
            (
                "gender_hits_curated",
                "Hits written to curated Parquet and counted",
                &self.hits_curated,
            ),
            (
                "gender_hits_duplicate",
                "Hits not counted again: their (clientid, hitid) was counted within the horizon",
                &self.hits_duplicate,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.0.clone());
        }
        registry.register(
            "gender_log_delivered_offset_bytes",
            "Log position delivered so far",
            self.delivered_offset.0.clone(),
        );
        registry.register(
            "gender_dedup_identities",
            "Hit identities remembered for deduplication",
            self.dedup_identities.0.clone(),
        );
        registry.register(
            "gender_daily_runs",
            "Completed daily jobs",
            self.daily_runs.0.clone(),
        );
        registry.register(
            "gender_curated_files_compacted",
            "Curated hits files merged away by compaction",
            self.files_compacted.0.clone(),
        );
        registry.register(
            "gender_raw_files_compacted",
            "Raw objects merged away by compaction",
            self.raw_files_compacted.0.clone(),
        );
        registry.register(
            "gender_erasures_completed",
            "Visitor erasures carried out",
            self.erasures_completed.0.clone(),
        );
        registry.register(
            "gender_erased_rows",
            "Curated hits rows removed by erasures",
            self.erased_rows.0.clone(),
        );
        registry.register(
            "gender_partitions_expired",
            "Date partitions (raw, curated hits, daily rollups) deleted by retention",
            self.partitions_expired.0.clone(),
        );
    }
}

/// Values read when `/metrics` is scraped: the curate lag in seconds, the
/// end of the durable log and the number of profiles (left out when the
/// state store does not answer).
pub struct ScrapeTime {
    pub pipeline: Arc<PipelineMetrics>,
    pub log: LogReader,
    pub state: StateStore,
    pub status: Arc<PipelineStatus>,
    pub backlog: Backlog,
    /// The ingest gate, for how many requests it refused.
    pub gate: Arc<BoundedHitLog>,
}

impl std::fmt::Debug for ScrapeTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrapeTime").finish_non_exhaustive()
    }
}

fn gauge<N: prometheus_client::encoding::EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: N,
) -> std::fmt::Result {
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> std::fmt::Result {
    let counter = prometheus_client::metrics::counter::ConstCounter::new(value);
    counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)
}

impl Collector for ScrapeTime {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        // During a long cycle the lag is the age of the oldest hit it is
        // still making visible, so the gauge grows instead of freezing.
        let last_ms = self.pipeline.curate_lag_ms.load(Ordering::Relaxed);
        let running_ms = self.status.cycle_oldest_arrival_ms().map_or(0, |arrival| {
            (gender_core::time::system_now_ms() - arrival).max(0) as u64
        });
        let lag_ms = last_ms.max(running_ms);
        gauge(
            &mut encoder,
            "gender_curate_lag_seconds",
            "Age of the oldest hit of the last cycle when it became visible.",
            lag_ms as f64 / 1000.0,
        )?;
        gauge(
            &mut encoder,
            "gender_log_durable_offset_bytes",
            "End of the durable log.",
            self.log.durable_end(),
        )?;
        gauge(
            &mut encoder,
            "gender_backlog_bytes",
            "Accepted log bytes not yet curated (ingest is refused at the bound).",
            self.backlog.bytes(&self.status),
        )?;
        gauge(
            &mut encoder,
            "gender_backlog_bound_bytes",
            "The backlog bound (--max-backlog-bytes).",
            self.backlog.max_bytes,
        )?;
        counter(
            &mut encoder,
            "gender_ingest_refused",
            "POST /hits requests refused with nothing stored: pipeline behind or data directory unusable.",
            self.gate.refused.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "gender_log_damaged_records",
            "Log records lost to damaged bytes (skipped, the records after them delivered).",
            self.status.damaged_records(),
        )?;
        // As of the state store's last checkpoint: a scrape never forces one.
        if let Ok(profiles) = self.state.checkpointed_profile_count() {
            gauge(
                &mut encoder,
                "gender_profiles",
                "Visitors in the state store as of its last checkpoint (at most --checkpoint-interval-secs old while curating).",
                profiles,
            )?;
        }
        Ok(())
    }
}

/// The one registry of the local server.
pub fn registry(api: &ApiMetrics, scrape: ScrapeTime) -> Registry {
    let mut registry = Registry::default();
    api.register(&mut registry);
    scrape.pipeline.register(&mut registry);
    registry.register_collector(Box::new(scrape));
    registry
}

/// The Prometheus text of `registry`.
pub fn render(registry: &Registry) -> String {
    let mut out = String::with_capacity(4096);
    prometheus_client::encoding::prometheus_text::encode(&mut out, registry)
        .expect("writing to a String does not fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hint::black_box;
    use std::time::Instant;

    struct Sample {
        api: ApiMetrics,
        pipeline: Arc<PipelineMetrics>,
        status: Arc<PipelineStatus>,
        registry: Registry,
        _dir: tempfile::TempDir,
    }

    fn sample() -> Sample {
        let dir = tempfile::tempdir().unwrap();
        let api = ApiMetrics::default();
        let pipeline = Arc::new(PipelineMetrics::new(&api));
        let state = StateStore::open(dir.path().join("state.redb")).unwrap();
        let (log_file, log) =
            gender_embedded::HitLogFile::open(dir.path().join("log"), || 0).unwrap();
        let status = Arc::new(PipelineStatus::default());
        let backlog = Backlog {
            reader: log.clone(),
            max_bytes: 1000,
            space: None,
            max_pending_dates: usize::MAX,
            pending_dates: Default::default(),
            max_wait: None,
            waiting: Default::default(),
        };
        let gate = Arc::new(BoundedHitLog::new(
            Arc::new(log_file),
            backlog.clone(),
            status.clone(),
        ));
        let scrape = ScrapeTime {
            pipeline: pipeline.clone(),
            log,
            state,
            status: status.clone(),
            backlog,
            gate,
        };
        Sample {
            status,
            registry: registry(&api, scrape),
            api,
            pipeline,
            _dir: dir,
        }
    }

    #[test]
    fn the_curate_lag_grows_while_a_long_cycle_runs() {
        let s = sample();
        s.pipeline.curate_lag_ms.store(800, Ordering::Relaxed);
        let lag = |text: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix("gender_curate_lag_seconds "))
                .unwrap()
                .parse()
                .unwrap()
        };
        assert_eq!(lag(&render(&s.registry)), 0.8);
        s.status
            .cycle_reading_since(gender_core::time::system_now_ms() - 5_000);
        assert!(lag(&render(&s.registry)) >= 5.0);
        s.status.set_visible(0);
        assert_eq!(lag(&render(&s.registry)), 0.8);
    }

    /// Every metric of `/metrics` keeps its name, type and labels (the
    /// console, the e2e tests and dashboards read them).
    #[test]
    fn renders_every_metric_with_its_type_and_labels() {
        let s = sample();
        s.api.hits_accepted.inc_by(7);
        s.api.lookups_not_found.inc();
        // Bumped the way delivery does.
        s.pipeline.hits_curated.fetch_add(3, Ordering::Relaxed);
        s.pipeline.delivered_offset.store(42, Ordering::Relaxed);
        s.pipeline.curate_lag_ms.store(1500, Ordering::Relaxed);
        s.pipeline.curate_errors.fetch_add(1, Ordering::Relaxed);
        let text = render(&s.registry);
        let types: Vec<(&str, &str)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_once(' '))
            .collect();
        let expected = [
            ("gender_hits_accepted_total", "counter"),
            ("gender_hits_rejected_total", "counter"),
            ("gender_ingest_requests_failed_total", "counter"),
            ("gender_lookups_total", "counter"),
            ("gender_errors_total", "counter"),
            ("gender_requests_refused_total", "counter"),
            ("gender_url_key_requests_total", "counter"),
            ("gender_hits_delivered_total", "counter"),
            ("gender_objects_delivered_total", "counter"),
            ("gender_records_processing_failed_total", "counter"),
            ("gender_objects_curated_total", "counter"),
            ("gender_hits_curated_total", "counter"),
            ("gender_hits_duplicate_total", "counter"),
            ("gender_log_delivered_offset_bytes", "gauge"),
            ("gender_dedup_identities", "gauge"),
            ("gender_daily_runs_total", "counter"),
            ("gender_curated_files_compacted_total", "counter"),
            ("gender_raw_files_compacted_total", "counter"),
            ("gender_erasures_completed_total", "counter"),
            ("gender_erased_rows_total", "counter"),
            ("gender_partitions_expired_total", "counter"),
            ("gender_curate_lag_seconds", "gauge"),
            ("gender_log_durable_offset_bytes", "gauge"),
            ("gender_backlog_bytes", "gauge"),
            ("gender_backlog_bound_bytes", "gauge"),
            ("gender_ingest_refused_total", "counter"),
            ("gender_log_damaged_records_total", "counter"),
            ("gender_profiles", "gauge"),
        ];
        assert_eq!(types, expected, "{text}");
        for sample in [
            "gender_hits_accepted_total 7",
            "gender_lookups_total{result=\"found\"} 0",
            "gender_lookups_total{result=\"not_found\"} 1",
            "gender_lookups_total{result=\"invalid\"} 0",
            "gender_errors_total{stage=\"ingest\"} 0",
            "gender_errors_total{stage=\"lookup\"} 0",
            "gender_requests_refused_total{reason=\"unauthorized\"} 0",
            "gender_requests_refused_total{reason=\"forbidden\"} 0",
            "gender_requests_refused_total{reason=\"origin\"} 0",
            "gender_requests_refused_total{reason=\"rate_limited\"} 0",
            "gender_errors_total{stage=\"delivery\"} 0",
            "gender_errors_total{stage=\"curate\"} 1",
            "gender_errors_total{stage=\"daily\"} 0",
            "gender_hits_curated_total 3",
            "gender_log_delivered_offset_bytes 42",
            "gender_curate_lag_seconds 1.5",
            "gender_log_durable_offset_bytes 0",
            "gender_profiles 0",
        ] {
            assert!(text.lines().any(|l| l == sample), "{sample} in\n{text}");
        }
        assert!(text.ends_with('\n') && !text.contains("# EOF"), "{text}");
    }

    /// The three scrape-time gauges with fixed values, so the timing below
    /// measures encoding only, like the hand-written writer it replaced
    /// (which was passed those values).
    #[derive(Debug)]
    struct Fixed;

    impl Collector for Fixed {
        fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
            gauge(&mut encoder, "gender_curate_lag_seconds", "Lag.", 0.25)?;
            gauge(
                &mut encoder,
                "gender_log_durable_offset_bytes",
                "End.",
                12345_u64,
            )?;
            gauge(&mut encoder, "gender_profiles", "Visitors.", 100_u64)
        }
    }

    /// Cost of recording a counter and of rendering `/metrics`:
    /// `cargo test --release -p gender-local --lib -- --ignored --nocapture metrics_overhead`
    #[test]
    #[ignore = "timing, not a check"]
    fn metrics_overhead() {
        let api = ApiMetrics::default();
        let pipeline = PipelineMetrics::new(&api);
        let mut registry = Registry::default();
        api.register(&mut registry);
        pipeline.register(&mut registry);
        registry.register_collector(Box::new(Fixed));
        const RECORDS: u32 = 50_000_000;
        let start = Instant::now();
        for _ in 0..RECORDS {
            black_box(&api.hits_accepted).inc();
        }
        let record_ns = start.elapsed().as_nanos() as f64 / f64::from(RECORDS);
        let start = Instant::now();
        for _ in 0..RECORDS {
            black_box(&api.lookups_found).inc();
        }
        let labelled_ns = start.elapsed().as_nanos() as f64 / f64::from(RECORDS);
        const RENDERS: u32 = 200_000;
        let start = Instant::now();
        let mut bytes = 0;
        for _ in 0..RENDERS {
            bytes += black_box(render(&registry)).len();
        }
        let render_us = start.elapsed().as_nanos() as f64 / f64::from(RENDERS) / 1000.0;
        let s = sample();
        let start = Instant::now();
        for _ in 0..RENDERS / 10 {
            black_box(render(&s.registry));
        }
        let scrape_us = start.elapsed().as_nanos() as f64 / f64::from(RENDERS / 10) / 1000.0;
        println!(
            "counter: {record_ns:.2} ns/record; labelled counter: {labelled_ns:.2} ns/record; \
             render /metrics: {render_us:.2} µs ({} bytes); with the state store read: \
             {scrape_us:.2} µs",
            bytes / RENDERS as usize
        );
    }
}
