//! `gender-service serve`: flags and env to a [`LocalConfig`], bind, banner,
//! then the local deployment until SIGTERM or Ctrl-C.

use anyhow::{Context, Result};
use clap::Args;
use gender_embedded::CheckpointPolicy;
use gender_local::compaction::CompactionPolicy;
use gender_local::retention::RetentionPolicy;
use gender_local::serve::ConnectionLimits;
use gender_local::{DEFAULT_DATA_DIR, LocalConfig, resolve_api_key};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Where the log, the state store, raw/ and curated/ live.
    #[arg(long, env = "GENDER_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    #[arg(long, env = "GENDER_ADDR", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// API key for x-api-key; else the one kept in DATA_DIR/api-key, created on first start.
    #[arg(long, env = "GENDER_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
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
    /// Free bytes kept on the data directory's filesystem beyond twice the backlog (what delivering and curating it needs); below, POST /hits answers 503.
    #[arg(long, env = "GENDER_MIN_FREE_BYTES", default_value_t = gender_local::DEFAULT_MIN_FREE_BYTES)]
    min_free_bytes: u64,
    /// POST /admin/flush waits at most this long for the pipeline, then answers 503 with the reason.
    #[arg(long, env = "GENDER_FLUSH_TIMEOUT_MS", default_value_t = 120_000)]
    flush_timeout_ms: u64,
    /// Request-body bytes held in memory at once across all requests; past it a request gets 503 + Retry-After before its body is read.
    #[arg(long, env = "GENDER_MAX_BODY_MEMORY_BYTES", default_value_t = gender_local::admission::DEFAULT_MAX_BODY_MEMORY_BYTES)]
    max_body_memory_bytes: u64,
    /// POST /hits handled at once; more wait their turn with their bodies unread (TCP pushes back), up to 10 s, then 503.
    #[arg(long, env = "GENDER_MAX_INGEST_IN_FLIGHT", default_value_t = gender_local::admission::DEFAULT_INGEST_IN_FLIGHT)]
    max_ingest_in_flight: usize,
    /// How long a POST /hits whose turn came waits for the pipeline to make room (backlog bound) before 503 + Retry-After.
    #[arg(long, env = "GENDER_INGEST_ROOM_WAIT_MS", default_value_t = gender_local::admission::DEFAULT_INGEST_ROOM_WAIT.as_millis() as u64)]
    ingest_room_wait_ms: u64,
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
    fn into_config(self) -> Result<(LocalConfig, SocketAddr)> {
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
        let api_key = resolve_api_key(self.api_key, &self.data_dir)
            .with_context(|| format!("API key in {}", self.data_dir.display()))?;
        let config = LocalConfig {
            flush_interval: Duration::from_millis(self.flush_interval_ms),
            buffer_bytes: self.buffer_bytes,
            keep_raw: !self.delete_raw,
            daily_at_minute,
            max_backlog_bytes: self.max_backlog_bytes,
            max_body_memory_bytes: self.max_body_memory_bytes,
            ingest_in_flight: self.max_ingest_in_flight.max(1),
            ingest_room_wait: Duration::from_millis(self.ingest_room_wait_ms),
            min_free_bytes: self.min_free_bytes,
            max_pending_dates: self.max_pending_dates.max(1),
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
            ..LocalConfig::new(self.data_dir, api_key)
        };
        Ok((config, self.addr))
    }
}

pub async fn run(args: ServeArgs) -> Result<()> {
    let (config, addr) = args.into_config()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    print_banner(&config, listener.local_addr()?);
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

fn print_banner(config: &LocalConfig, addr: SocketAddr) {
    let url = format!("http://{addr}");
    let key = &config.api_key;
    let key_file = Path::new(&config.data_dir).join(gender_local::API_KEY_FILE);
    println!(
        "Gender Service listening on {url} (data dir {})",
        config.data_dir.display()
    );
    println!(
        "API key: {key}   (kept in {} unless given by --api-key / GENDER_API_KEY)",
        key_file.display()
    );
    println!("Try:");
    println!(
        "  curl -s -X POST {url}/hits -H 'x-api-key: {key}' -H 'content-type: application/json' -d '{{\"clientid\":\"visitor-1\",\"pageGender\":\"F\"}}'"
    );
    println!("  curl -s {url}/gender/visitor-1 -H 'x-api-key: {key}'");
    println!("Console: {url}/   API docs: {url}/docs");
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
