//! `gender-service serve`: flags and env to a [`LocalConfig`], bind, banner,
//! then the local deployment until SIGTERM or Ctrl-C.

use anyhow::{Context, Result};
use clap::Args;
use gender_core::time::system_now_ms;
use gender_embedded::CheckpointPolicy;
use gender_local::compaction::CompactionPolicy;
use gender_local::keys::{ExplicitKeys, ResolvedKey, resolve_keys};
use gender_local::retention::RetentionPolicy;
use gender_local::serve::ConnectionLimits;
use gender_local::{CorsOrigins, DEFAULT_DATA_DIR, LocalConfig, Scope};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Where the log, the state store, raw/ and curated/ live.
    #[arg(long, env = "GENDER_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    #[arg(long, env = "GENDER_ADDR", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// The admin key (x-api-key; every route); else the one kept in DATA_DIR/api-key, created on first start.
    #[arg(long, env = "GENDER_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// The ingest key (only POST /hits; may be published in pages); else DATA_DIR/ingest-key, created on first start.
    #[arg(long, env = "GENDER_INGEST_KEY", hide_env_values = true)]
    ingest_key: Option<String>,
    /// The read key (GET /gender, GET /erasures); else DATA_DIR/read-key, created on first start.
    #[arg(long, env = "GENDER_READ_KEY", hide_env_values = true)]
    read_key: Option<String>,
    /// Origins whose pages may POST /hits, comma-separated (https://example.com,https://www.example.com); default none (no CORS).
    #[arg(long, env = "GENDER_CORS_ORIGINS", default_value = "")]
    cors_origins: String,
    /// Delivery buffer interval (like Firehose's buffering hint).
    #[arg(long, env = "GENDER_FLUSH_INTERVAL_MS", default_value_t = 1000)]
    flush_interval_ms: u64,
    /// Deliver early once this many log bytes are waiting.
    #[arg(long, env = "GENDER_BUFFER_BYTES", default_value_t = 4 * 1024 * 1024)]
    buffer_bytes: u64,
    /// Delete raw objects once curated (default: keep them as the record of truth).
    #[arg(long, env = "GENDER_DELETE_RAW")]
    delete_raw: bool,
    /// Accepted log bytes not yet curated beyond which POST /hits answers 503 (backpressure).
    #[arg(long, env = "GENDER_MAX_BACKLOG_BYTES", default_value_t = gender_local::DEFAULT_MAX_BACKLOG_BYTES)]
    max_backlog_bytes: u64,
    /// Event dates with hits waiting for curate beyond which POST /hits answers 503 (each costs curate a Parquet file).
    #[arg(long, env = "GENDER_MAX_PENDING_DATES", default_value_t = gender_local::DEFAULT_MAX_PENDING_DATES)]
    max_pending_dates: usize,
    /// How much longer than the flush interval an accepted hit may wait to become visible before POST /hits answers 503 (0: no bound); with the default interval, a curate lag of 10 s at most.
    #[arg(long, env = "GENDER_MAX_CURATE_DELAY_MS", default_value_t = gender_local::DEFAULT_MAX_CURATE_DELAY.as_millis() as u64)]
    max_curate_delay_ms: u64,
    /// Free bytes kept on the data directory's filesystem beyond twice the backlog (what delivering and curating it needs); below, POST /hits answers 503.
    #[arg(long, env = "GENDER_MIN_FREE_BYTES", default_value_t = gender_local::DEFAULT_MIN_FREE_BYTES)]
    min_free_bytes: u64,
    /// POST /admin/flush waits at most this long for the pipeline, then answers 503 with the reason.
    #[arg(long, env = "GENDER_FLUSH_TIMEOUT_MS", default_value_t = 120_000)]
    flush_timeout_ms: u64,
    /// Request-body bytes held in memory at once across all requests; past it a request gets 503 + Retry-After before its body is read.
    #[arg(long, env = "GENDER_MAX_BODY_MEMORY_BYTES", default_value_t = gender_local::admission::DEFAULT_MAX_BODY_MEMORY_BYTES)]
    max_body_memory_bytes: u64,
    /// POST /hits with the ingest key: requests per second per client address (TCP peer; IPv6 by /64),
    /// in bursts of as many; past it 429 with Retry-After. 0: no limit. Read and admin keys are never limited.
    #[arg(long, env = "GENDER_INGEST_RATE_PER_IP", default_value_t = 0)]
    ingest_rate_per_ip: u32,
    /// POST /hits handled at once; more wait their turn with their bodies unread (TCP pushes back), up to 10 s, then 503.
    #[arg(long, env = "GENDER_MAX_INGEST_IN_FLIGHT", default_value_t = gender_local::admission::DEFAULT_INGEST_IN_FLIGHT)]
    max_ingest_in_flight: usize,
    /// How long a POST /hits whose turn came waits for the pipeline to make room (backlog bound) before 503 + Retry-After.
    #[arg(long, env = "GENDER_INGEST_ROOM_WAIT_MS", default_value_t = gender_local::admission::DEFAULT_INGEST_ROOM_WAIT.as_millis() as u64)]
    ingest_room_wait_ms: u64,
    /// Nice levels below the request workers for the pipeline (delivery, curate): lookups are answered
    /// first when the CPU is busy, for some ingest throughput under overload. 0: the same priority.
    #[arg(long, env = "GENDER_PIPELINE_NICENESS", default_value_t = gender_local::scheduling::PIPELINE_NICENESS,
          value_parser = clap::value_parser!(i32).range(0..=19))]
    pipeline_niceness: i32,
    /// Curated files of a date smaller than this are merged into files of about this size.
    #[arg(long, env = "GENDER_COMPACT_TARGET_BYTES", default_value_t = 64 * 1024 * 1024)]
    compact_target_bytes: u64,
    /// A date is compacted once it has this many files below the target size.
    #[arg(long, env = "GENDER_COMPACT_MIN_FILES", default_value_t = 8)]
    compact_min_files: usize,
    /// How often dates that received curated files are looked at for compaction (0: every cycle).
    #[arg(long, env = "GENDER_COMPACT_INTERVAL_MS", default_value_t = 60_000)]
    compact_interval_ms: u64,
    /// Open connections at most (also kept below the open-file limit, which is raised at start).
    #[arg(long, env = "GENDER_MAX_CONNECTIONS", default_value_t = 4096)]
    max_connections: usize,
    /// Request headers (and the next request on an idle connection) must arrive within this.
    #[arg(long, env = "GENDER_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    header_timeout_ms: u64,
    /// A public API request, body included, must be done within this (else a JSON 408).
    #[arg(long, env = "GENDER_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    request_timeout_ms: u64,
    /// A request's head (request line and headers) in bytes at most; more gets a JSON 431 (at least 8192).
    #[arg(long, env = "GENDER_MAX_HEADER_BYTES", default_value_t = gender_local::serve::DEFAULT_MAX_HEADER_BYTES)]
    max_header_bytes: usize,
    /// UTC time of the daily job, HH:MM.
    #[arg(long, env = "GENDER_DAILY_AT", default_value = "01:00")]
    daily_at: String,
    /// How long a counted (clientid, hitid) is remembered, so a resend is not counted again (0: no deduplication).
    #[arg(long, env = "GENDER_DEDUP_HORIZON_SECS", default_value_t = 3600)]
    dedup_horizon_secs: u64,
    /// Raw objects (and rejected records) are deleted once their date is this many days old (0: kept forever).
    #[arg(long, env = "GENDER_RETAIN_RAW_DAYS", default_value_t = 90)]
    retain_raw_days: u32,
    /// Curated hits are deleted once their date is this many days old (0: kept forever; else at least 8).
    #[arg(long, env = "GENDER_RETAIN_CURATED_DAYS", default_value_t = 400)]
    retain_curated_days: u32,
    /// Daily rollups are deleted once their date is this many days old (0: kept forever; else at least 8).
    #[arg(long, env = "GENDER_RETAIN_DAILY_DAYS", default_value_t = 400)]
    retain_daily_days: u32,
    /// The state store checkpoints (merges its journal into state.redb) once this many visitors changed since the last one (about 100-150 bytes of memory each).
    #[arg(long, env = "GENDER_CHECKPOINT_VISITORS", default_value_t = 4_000_000)]
    checkpoint_visitors: usize,
    /// ... or once its journal holds this many MiB (what a restart after a crash replays).
    #[arg(long, env = "GENDER_CHECKPOINT_JOURNAL_MIB", default_value_t = 1024)]
    checkpoint_journal_mib: u64,
    /// ... and at least this often while anything changes.
    #[arg(long, env = "GENDER_CHECKPOINT_INTERVAL_SECS", default_value_t = 60)]
    checkpoint_interval_secs: u64,
    /// The state store's page cache at most, MiB (its memory besides the changes not yet checkpointed).
    #[arg(long, env = "GENDER_STATE_CACHE_MIB", default_value_t = (gender_embedded::DEFAULT_CACHE_BYTES >> 20) as u64)]
    state_cache_mib: u64,
}

fn parse_hh_mm(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl ServeArgs {
    fn into_config(self) -> Result<(LocalConfig, Vec<ResolvedKey>, SocketAddr)> {
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("creating data dir {}", self.data_dir.display()))?;
        let daily_at_minute = parse_hh_mm(&self.daily_at).with_context(|| {
            format!(
                "--daily-at / GENDER_DAILY_AT must be HH:MM, got {:?}",
                self.daily_at
            )
        })?;
        anyhow::ensure!(
            self.flush_interval_ms > 0,
            "--flush-interval-ms must be positive"
        );
        anyhow::ensure!(
            self.max_header_bytes >= 8192,
            "--max-header-bytes must be at least 8192"
        );
        anyhow::ensure!(
            self.max_backlog_bytes > 0,
            "--max-backlog-bytes must be positive"
        );
        let days = |d: u32| (d > 0).then_some(d);
        let retention = RetentionPolicy {
            raw_days: days(self.retain_raw_days),
            curated_hits_days: days(self.retain_curated_days),
            daily_rollups_days: days(self.retain_daily_days),
        };
        retention
            .check()
            .map_err(|e| anyhow::anyhow!("--retain-*-days: {e}"))?;
        let cors = CorsOrigins::parse(&self.cors_origins)
            .map_err(|e| anyhow::anyhow!("--cors-origins / GENDER_CORS_ORIGINS: {e}"))?;
        let keys = ExplicitKeys {
            admin: self.api_key,
            ingest: self.ingest_key,
            read: self.read_key,
        };
        // Created here (not only at start) so the banner can print them.
        let resolved = resolve_keys(&self.data_dir, &keys, system_now_ms())
            .with_context(|| format!("key files in {}", self.data_dir.display()))?;
        let config = LocalConfig {
            flush_interval: Duration::from_millis(self.flush_interval_ms),
            buffer_bytes: self.buffer_bytes,
            keep_raw: !self.delete_raw,
            daily_at_minute,
            max_backlog_bytes: self.max_backlog_bytes,
            max_body_memory_bytes: self.max_body_memory_bytes,
            ingest_rate_per_ip: (self.ingest_rate_per_ip > 0).then_some(self.ingest_rate_per_ip),
            ingest_in_flight: self.max_ingest_in_flight.max(1),
            ingest_room_wait: Duration::from_millis(self.ingest_room_wait_ms),
            min_free_bytes: self.min_free_bytes,
            max_pending_dates: self.max_pending_dates.max(1),
            max_curate_delay: (self.max_curate_delay_ms > 0)
                .then(|| Duration::from_millis(self.max_curate_delay_ms)),
            flush_timeout: Duration::from_millis(self.flush_timeout_ms.max(1)),
            compaction: CompactionPolicy {
                target_bytes: self.compact_target_bytes,
                min_files: self.compact_min_files.max(2),
            },
            compaction_interval: Duration::from_millis(self.compact_interval_ms),
            dedup_horizon: Duration::from_secs(self.dedup_horizon_secs),
            retention,
            limits: ConnectionLimits {
                max_connections: self.max_connections.max(1),
                header_timeout: Duration::from_millis(self.header_timeout_ms.max(1)),
                request_timeout: Duration::from_millis(self.request_timeout_ms.max(1)),
                max_header_bytes: self.max_header_bytes,
            },
            checkpoint: CheckpointPolicy {
                max_visitors: self.checkpoint_visitors.max(1),
                max_journal_bytes: self.checkpoint_journal_mib.max(1) * 1024 * 1024,
                interval: Duration::from_secs(self.checkpoint_interval_secs.max(1)),
                cache_bytes: usize::try_from(self.state_cache_mib.max(1) * 1024 * 1024)
                    .unwrap_or(usize::MAX),
            },
            pipeline_niceness: self.pipeline_niceness,
            keys,
            cors,
            ..LocalConfig::new(self.data_dir, "")
        };
        Ok((config, resolved, self.addr))
    }
}

pub async fn run(args: ServeArgs) -> Result<()> {
    let (config, keys, addr) = args.into_config()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    print_banner(&config, &keys, listener.local_addr()?);
    gender_local::run(config, listener, shutdown_signal()).await?;
    Ok(())
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

fn print_banner(config: &LocalConfig, keys: &[ResolvedKey], addr: SocketAddr) {
    let url = format!("http://{addr}");
    let key = |scope| {
        keys.iter()
            .find(|k| k.scope == scope)
            .map_or("", |k| k.keys.current.as_str())
    };
    println!(
        "Gender Service listening on {url} (data dir {})",
        config.data_dir.display()
    );
    for resolved in keys {
        let (scope, what) = match resolved.scope {
            Scope::Admin => ("admin", "every route; x-api-key"),
            Scope::Ingest => ("ingest", "POST /hits only; may go in pages"),
            Scope::Read => ("read", "GET /gender, GET /erasures"),
        };
        let kept = match &resolved.file {
            Some(file) => format!("kept in {}", file.display()),
            None => "set by flag / env".to_owned(),
        };
        println!(
            "{scope:>6} key: {}   ({what}; {kept})",
            resolved.keys.current
        );
    }
    if !config.cors.is_empty() {
        println!("CORS: POST /hits from {}", config.cors.origins().join(", "));
    }
    if let Some(rate) = config.ingest_rate_per_ip {
        println!("Ingest key: at most {rate} POST /hits per second per client address");
    }
    let (admin, ingest, read) = (key(Scope::Admin), key(Scope::Ingest), key(Scope::Read));
    println!("Try:");
    println!(
        "  curl -s -X POST {url}/hits -H 'x-api-key: {ingest}' -H 'content-type: application/json' -d '{{\"clientid\":\"visitor-1\",\"pageGender\":\"F\"}}'"
    );
    println!("  curl -s {url}/gender/visitor-1 -H 'x-api-key: {read}'");
    println!(
        "  <script defer src=\"{url}/tracker.js\" data-key=\"{ingest}\" data-page-gender=\"F\"></script>"
    );
    println!("Console: {url}/ (admin key {admin})   API docs: {url}/docs");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_at_parses_hh_mm() {
        assert_eq!(parse_hh_mm("01:00"), Some(60));
        assert_eq!(parse_hh_mm("23:59"), Some(23 * 60 + 59));
        assert_eq!(parse_hh_mm("24:00"), None);
        assert_eq!(parse_hh_mm("1"), None);
    }
}
