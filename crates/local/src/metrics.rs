use gender_api::{ApiMetrics, write_header, write_metric};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of the local pipeline stages.
#[derive(Debug, Default)]
pub struct PipelineMetrics {
    pub hits_delivered: AtomicU64,
    pub objects_delivered: AtomicU64,
    pub records_failed: AtomicU64,
    pub objects_curated: AtomicU64,
    pub hits_curated: AtomicU64,
    pub curate_lag_ms: AtomicU64,
    pub delivered_offset: AtomicU64,
    pub delivery_errors: AtomicU64,
    pub curate_errors: AtomicU64,
    pub daily_runs: AtomicU64,
    pub daily_errors: AtomicU64,
}

/// The Prometheus text of `/metrics`.
pub fn render(
    api: &ApiMetrics,
    pipeline: &PipelineMetrics,
    log_end: u64,
    profiles: Option<u64>,
) -> String {
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let mut out = String::with_capacity(4096);
    api.render(&mut out);
    let p = pipeline;
    write_metric(
        &mut out,
        "gender_hits_delivered_total",
        "counter",
        "Log records delivered to raw objects.",
        get(&p.hits_delivered),
    );
    write_metric(
        &mut out,
        "gender_objects_delivered_total",
        "counter",
        "Raw objects written by delivery.",
        get(&p.objects_delivered),
    );
    write_metric(
        &mut out,
        "gender_records_processing_failed_total",
        "counter",
        "Records the transform rejected (errors/ prefix).",
        get(&p.records_failed),
    );
    write_metric(
        &mut out,
        "gender_objects_curated_total",
        "counter",
        "Raw objects curated.",
        get(&p.objects_curated),
    );
    write_metric(
        &mut out,
        "gender_hits_curated_total",
        "counter",
        "Hits written to curated Parquet and counted.",
        get(&p.hits_curated),
    );
    write_metric(
        &mut out,
        "gender_curate_lag_seconds",
        "gauge",
        "Age of the oldest hit of the last cycle when it became visible.",
        get(&p.curate_lag_ms) as f64 / 1000.0,
    );
    write_metric(
        &mut out,
        "gender_log_durable_offset_bytes",
        "gauge",
        "End of the durable log.",
        log_end,
    );
    write_metric(
        &mut out,
        "gender_log_delivered_offset_bytes",
        "gauge",
        "Log position delivered so far.",
        get(&p.delivered_offset),
    );
    write_metric(
        &mut out,
        "gender_daily_runs_total",
        "counter",
        "Completed daily jobs.",
        get(&p.daily_runs),
    );
    if let Some(profiles) = profiles {
        write_metric(
            &mut out,
            "gender_profiles",
            "gauge",
            "Visitors in the state store.",
            profiles,
        );
    }
    write_header(
        &mut out,
        "gender_errors_total",
        "counter",
        "Failures by stage.",
    );
    let stages = api.error_counts().into_iter().chain([
        ("delivery", get(&p.delivery_errors)),
        ("curate", get(&p.curate_errors)),
        ("daily", get(&p.daily_errors)),
    ]);
    for (stage, value) in stages {
        let _ = writeln!(out, "gender_errors_total{{stage=\"{stage}\"}} {value}");
    }
    out
}
