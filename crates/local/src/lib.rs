//! The local deployment of Gender Service as a library (SPEC 9): the durable
//! hit log, delivery with the shared transform, curate into the embedded
//! state store, the daily schedule and the HTTP server, in one process.
//!
//! [`run`] serves until `shutdown` resolves, then drains: no new connections,
//! in-flight requests finished, a last delivery cycle, the log closed. The
//! `gender-service serve` binary only parses flags, binds and prints a banner.

mod admin;
pub mod admission;
pub mod compaction;
mod config;
pub mod delivery;
pub mod erasure;
mod error;
pub mod housekeeping;
pub mod keys;
mod metrics;
mod parse_pool;
pub mod rate_limit;
pub mod retention;
mod scheduler;
pub mod scheduling;
pub mod serve;
mod status;

pub use config::{
    API_KEY_FILE, DEFAULT_DATA_DIR, DEFAULT_MAX_BACKLOG_BYTES, LocalConfig, read_api_key,
    resolve_api_key,
};
pub use delivery::{Delivery, DeliveryHandle, DeliverySettings, FlushReport};
pub use error::{CycleError, LocalError};
pub use gender_api::{CorsOrigins, Scope};
pub use housekeeping::{CuratedLock, Housekeeping, HousekeepingSettings};
pub use metrics::PipelineMetrics;
pub use status::{
    Backlog, BoundedHitLog, DEFAULT_MAX_CURATE_DELAY, DEFAULT_MAX_PENDING_DATES,
    DEFAULT_MIN_FREE_BYTES, DISK_BYTES_PER_BACKLOG_BYTE, LocalHealth, PipelineStatus, SpaceReserve,
    StageFailure,
};

use crate::erasure::LocalErasures;
use gender_api::{ApiMetrics, ApiState, Keys};
use gender_core::hitid::HitIds;
use gender_core::time::system_now_ms;
use gender_embedded::state::StateStore;
use gender_embedded::{DirObjectStore, HitLogFile};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long shutdown may take in total before `run` returns anyway
/// (SPEC 13 allows 30 s; everything not finished is safe in the log).
const SHUTDOWN_BUDGET: Duration = Duration::from_secs(25);

/// How often the data directory is checked to be there and writable.
const DATA_DIR_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Runs the local deployment on `config.data_dir`, serving HTTP on
/// `listener`, until `shutdown` resolves; then drains and returns.
pub async fn run(
    config: LocalConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), LocalError> {
    let data = &config.data_dir;
    let state = StateStore::open_with(data.join("state.redb"), config.checkpoint)
        .map_err(LocalError::OpenState)?;
    let delivered = state
        .delivery_state()
        .map_err(LocalError::OpenState)?
        .delivered_offset;
    // Never below the checkpoint, or new hits would hide behind it.
    let (log, log_reader) = HitLogFile::open_above(data.join("log"), system_now_ms, delivered)
        .map_err(LocalError::OpenLog)?;
    let store = DirObjectStore::new(data);
    let api_metrics = Arc::new(ApiMetrics::default());
    let mut instance = [0u8; 8];
    getrandom::fill(&mut instance).expect("the OS random source is available");
    // One assigner: the API assigns ids, delivery knows them as this process's.
    let hit_ids = Arc::new(HitIds::new(instance));
    let metrics = Arc::new(PipelineMetrics::new(&api_metrics));

    let (stop_delivery, delivery_shutdown) = watch::channel(false);
    let settings = DeliverySettings {
        interval: config.flush_interval,
        buffer_bytes: config.buffer_bytes,
        keep_raw: config.keep_raw,
        max_dates_per_batch: config.max_dates_per_batch,
        dedup_horizon: config.dedup_horizon,
        own_hitid_prefix: Some(hit_ids.own_prefix()),
        flush_timeout: config.flush_timeout,
        niceness: config.pipeline_niceness,
        ..DeliverySettings::new(system_now_ms)
    };
    let housekeeping = Housekeeping::new(
        store.clone(),
        state.clone(),
        metrics.clone(),
        HousekeepingSettings {
            compaction: config.compaction,
            compaction_interval: config.compaction_interval,
            retention: config.retention,
            ..HousekeepingSettings::new(system_now_ms)
        },
    )
    .with_log_roller(log.roller());
    let curated = housekeeping.curated_lock();
    let status = Arc::new(PipelineStatus::starting_at(delivered));
    let delivery = Delivery::new(
        log_reader.clone(),
        store.clone(),
        state.clone(),
        metrics.clone(),
        status.clone(),
        settings,
        housekeeping,
    )
    .map_err(LocalError::OpenState)?;
    let (delivery_handle, delivery_task) = delivery.spawn(delivery_shutdown);

    let log = Arc::new(log);
    let backlog = Backlog {
        reader: log_reader.clone(),
        max_bytes: config.max_backlog_bytes,
        space: Some(status::SpaceReserve {
            data_dir: data.clone(),
            min_free_bytes: config.min_free_bytes,
        }),
        max_pending_dates: config.max_pending_dates,
        pending_dates: Arc::default(),
        max_wait: config
            .max_curate_delay
            .map(|delay| config.flush_interval + delay),
        waiting: Arc::default(),
    };
    let bounded_log = Arc::new(BoundedHitLog::new(
        log.clone(),
        backlog.clone(),
        status.clone(),
    ));
    let api_keys = Keys::new(system_now_ms);
    let resolved =
        keys::resolve_keys(data, &config.keys, system_now_ms()).map_err(LocalError::Keys)?;
    for key in &resolved {
        api_keys.set(key.scope, &key.keys);
    }
    let erasures =
        LocalErasures::open(state.clone(), log_reader.clone()).map_err(LocalError::OpenState)?;
    let api = ApiState {
        log: bounded_log.clone(),
        profiles: Arc::new(state.clone()),
        erasures: Arc::new(erasures),
        health: Arc::new(LocalHealth {
            state: state.clone(),
            backlog: backlog.clone(),
            status: status.clone(),
        }),
        keys: api_keys,
        cors: config.cors.clone(),
        hit_ids,
        metrics: api_metrics.clone(),
        clock: system_now_ms,
        max_body_bytes: gender_core::ingest::MAX_BODY_BYTES,
        parse_on: Some(
            parse_pool::spawn(
                std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
            )
            .map_err(LocalError::Threads)?,
        ),
    };
    let registry = metrics::registry(
        &api_metrics,
        metrics::ScrapeTime {
            pipeline: metrics.clone(),
            log: log_reader,
            state: state.clone(),
            status: status.clone(),
            backlog: backlog.clone(),
            gate: bounded_log.clone(),
        },
    );
    let daily = scheduler::DailyJob {
        store: store.clone(),
        state,
        metrics,
        curated,
        clock: system_now_ms,
    };
    let scheduler = tokio::spawn(scheduler::daily_schedule(
        daily.clone(),
        config.daily_at_minute,
    ));
    let (admin, admin_doc) = admin::routes(admin::Parts {
        delivery: delivery_handle,
        daily,
        reports: admin::Reports {
            store: store.clone(),
            clock: api.clock,
        },
        registry: Arc::new(registry),
        keys: admin::KeyRotation {
            keys: api.keys.clone(),
            data_dir: config.data_dir.clone(),
            fixed: resolved
                .iter()
                .filter(|k| k.file.is_none())
                .map(|k| k.scope)
                .collect(),
            clock: system_now_ms,
        },
        metrics: api_metrics.clone(),
    });
    // The document the local server serves: the API's routes and these.
    let mut doc = gender_api::api_doc(api.max_body_bytes);
    doc.merge(admin_doc);
    // The public API answers within the request timeout (a trickling body
    // gets a 408); admin routes wait for the pipeline as long as it takes.
    let body_budget = admission::BodyBudget::new(config.max_body_memory_bytes, api.max_body_bytes);
    let ingest_rate = config
        .ingest_rate_per_ip
        .map(|per_second| rate_limit::IngestRate {
            limiter: Arc::new(rate_limit::RateLimiter::new(per_second)),
            keys: api.keys.clone(),
            metrics: api_metrics.clone(),
        });
    let room = bounded_log.clone();
    let ingest_gate = admission::IngestGate::new(
        config.ingest_in_flight,
        admission::DEFAULT_INGEST_QUEUE_WAIT.min(config.limits.request_timeout / 2),
        config.ingest_room_wait,
        move || room.has_room(),
    );
    // The gate is outside the body budget: a request waiting for its turn
    // holds no share of it.
    let mut public = gender_api::router_with_docs(api, &doc, admin::docs_page())
        .layer(axum::middleware::from_fn_with_state(
            body_budget,
            admission::admit_body,
        ))
        .layer(axum::middleware::from_fn_with_state(
            ingest_gate,
            admission::admit_ingest,
        ));
    // Outside the gate and the body budget: a request past its rate waits
    // for no turn and takes no body memory.
    if let Some(ingest_rate) = ingest_rate {
        public = public.layer(axum::middleware::from_fn_with_state(
            ingest_rate,
            rate_limit::limit_ingest,
        ));
    }
    let public = serve::with_request_timeout(public, config.limits.request_timeout);
    let app = gender_api::with_edge_layers(public.merge(admin));

    let watchdog = tokio::spawn(status::watch_data_dir(
        store,
        status.clone(),
        DATA_DIR_PROBE_INTERVAL,
    ));
    let max_connections = serve::connection_bound(&config.limits, serve::raise_fd_limit());
    tracing::info!(max_connections, "serving");
    let served = serve::serve(
        listener,
        app,
        config.limits,
        max_connections,
        shutdown,
        SHUTDOWN_BUDGET - Duration::from_secs(10),
    )
    .await;
    tracing::info!("shutting down: no new connections; in-flight requests finished");
    let deadline = tokio::time::Instant::now() + SHUTDOWN_BUDGET;
    scheduler.abort();
    watchdog.abort();
    let _ = stop_delivery.send(true);
    if tokio::time::timeout_at(deadline, delivery_task)
        .await
        .is_err()
    {
        tracing::warn!("delivery did not drain in time; the log keeps the rest for the next start");
    }
    drop(bounded_log);
    match Arc::try_unwrap(log) {
        Ok(mut log) => log.close(),
        Err(_) => tracing::warn!(
            "log still referenced at exit; every acknowledged append is already fsync'ed"
        ),
    }
    tracing::info!("stopped");
    served.map_err(LocalError::Serve)
}
