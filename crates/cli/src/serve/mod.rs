//! `gender-service serve`: the whole local deployment in one process.

mod admin;
mod config;
mod metrics;
mod pipeline;
mod scheduler;

pub use config::{ServeArgs, ServeConfig};

use anyhow::{Context, Result};
use gender_api::{ApiKey, ApiMetrics, ApiState};
use gender_core::{DailySummary, Date};
use gender_embedded::state::StateStore;
use gender_embedded::{DirObjectStore, HitLogFile, LogReader};
use gender_pipeline::PipelineError;
use metrics::PipelineMetrics;
use pipeline::{Pipeline, PipelineHandle, PipelineSettings};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{Mutex, watch};

/// How long shutdown may take in total before the process exits anyway
/// (SPEC 13 allows 30 s; everything not finished is safe in the log).
const SHUTDOWN_BUDGET: Duration = Duration::from_secs(25);

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Shared by the local routes.
#[derive(Clone)]
pub struct LocalState {
    api: ApiState,
    pipeline: PipelineHandle,
    store: DirObjectStore,
    state: StateStore,
    log_reader: LogReader,
    metrics: Arc<PipelineMetrics>,
    /// Daily runs never overlap.
    daily_lock: Arc<Mutex<()>>,
}

async fn run_daily_job(local: &LocalState, date: Date) -> Result<DailySummary, PipelineError> {
    let _one_at_a_time = local.daily_lock.lock().await;
    let result = gender_pipeline::run_daily(&local.store, &local.state, date, now_ms()).await;
    match &result {
        Ok(_) => local.metrics.daily_runs.fetch_add(1, Ordering::Relaxed),
        Err(_) => local.metrics.daily_errors.fetch_add(1, Ordering::Relaxed),
    };
    result
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

fn print_banner(config: &ServeConfig) {
    let url = format!("http://{}", config.addr);
    println!(
        "Gender Service listening on {url} (data dir {})",
        config.data_dir.display()
    );
    println!(
        "API key: {}   (kept in {}/api-key unless given by --api-key / GENDER_API_KEY)",
        config.api_key,
        config.data_dir.display()
    );
    println!("Try:");
    println!(
        "  curl -s -X POST {url}/hits -H 'x-api-key: {}' -H 'content-type: application/json' -d '{{\"clientid\":\"visitor-1\",\"pageGender\":\"F\"}}'",
        config.api_key
    );
    println!(
        "  curl -s {url}/gender/visitor-1 -H 'x-api-key: {}'",
        config.api_key
    );
    println!("Console: {url}/   API docs: {url}/docs");
}

pub async fn run(config: ServeConfig) -> Result<()> {
    let data = &config.data_dir;
    let state = StateStore::open(data.join("state.redb"))
        .context("opening the state store (is another server using this data dir?)")?;
    let (log, log_reader) =
        HitLogFile::open(data.join("log"), now_ms).context("opening the hit log")?;
    let store = DirObjectStore::new(data);
    let metrics = Arc::new(PipelineMetrics::default());

    let (stop_pipeline, pipeline_shutdown) = watch::channel(false);
    let settings = PipelineSettings {
        interval: config.flush_interval,
        buffer_bytes: config.buffer_bytes,
        keep_raw: config.keep_raw,
        clock: now_ms,
    };
    let pipeline = Pipeline::new(
        log_reader.clone(),
        store.clone(),
        state.clone(),
        metrics.clone(),
        settings,
    )?;
    let (pipeline_handle, pipeline_task) = pipeline.spawn(pipeline_shutdown);

    let log = Arc::new(log);
    let api = ApiState {
        log: log.clone(),
        profiles: Arc::new(state.clone()),
        health: Arc::new(state.clone()),
        api_key: ApiKey::required(config.api_key.as_str()),
        metrics: Arc::new(ApiMetrics::default()),
        clock: now_ms,
    };
    let local = LocalState {
        api: api.clone(),
        pipeline: pipeline_handle,
        store,
        state,
        log_reader,
        metrics,
        daily_lock: Arc::new(Mutex::new(())),
    };
    let scheduler = tokio::spawn(daily_schedule(local.clone(), config.daily_at_minute));
    let app = gender_api::with_edge_layers(gender_api::router(api).merge(admin::routes(local)));

    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("binding {}", config.addr))?;
    print_banner(&config);

    let (stop_tx, mut stop_rx) = watch::channel(false);
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = stop_rx.changed().await;
    });
    let server = tokio::spawn(async move { server.await });
    shutdown_signal().await;
    tracing::info!("shutting down: no new connections; finishing in-flight requests");
    let deadline = tokio::time::Instant::now() + SHUTDOWN_BUDGET;
    let _ = stop_tx.send(true);
    scheduler.abort();
    if tokio::time::timeout_at(deadline - Duration::from_secs(10), server)
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish in time");
    }
    let _ = stop_pipeline.send(true);
    if tokio::time::timeout_at(deadline, pipeline_task)
        .await
        .is_err()
    {
        tracing::warn!("pipeline did not drain in time; the log keeps the rest for the next start");
    }
    match Arc::try_unwrap(log) {
        Ok(mut log) => log.close(),
        Err(_) => tracing::warn!(
            "log still referenced at exit; every acknowledged append is already fsync'ed"
        ),
    }
    tracing::info!("stopped");
    Ok(())
}

async fn daily_schedule(local: LocalState, minute_of_day: u32) {
    loop {
        let now = now_ms();
        let next = scheduler::next_run_ms(now, minute_of_day);
        tokio::time::sleep(Duration::from_millis((next - now) as u64)).await;
        let date = gender_core::default_daily_date(now_ms());
        match run_daily_job(&local, date).await {
            Ok(summary) => {
                tracing::info!(%date, visitors = summary.visitors_in_window, "scheduled daily run done")
            }
            Err(e) => tracing::error!(%date, error = %e, "scheduled daily run failed"),
        }
    }
}
