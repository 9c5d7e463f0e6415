//! What the local deployment needs to start, and its key files.

use crate::compaction::CompactionPolicy;
use crate::keys::ExplicitKeys;
use crate::serve::ConnectionLimits;
use gender_api::CorsOrigins;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The data directory when none is given (SPEC 9).
pub const DEFAULT_DATA_DIR: &str = "data";
/// The default backlog bound: about 600k hits of log, a few seconds of the
/// pipeline's throughput on one core, so a hit that gets a `202` is visible
/// within seconds even at the bound.
pub const DEFAULT_MAX_BACKLOG_BYTES: u64 = 64 * 1024 * 1024;

/// The file in the data directory that keeps the admin key (SPEC 4's key).
pub const API_KEY_FILE: &str = "api-key";

/// Settings of one local deployment; the binary builds it from flags and env.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    pub data_dir: PathBuf,
    /// Keys given by flags / env (`api_key` is the admin key); the other
    /// scopes' keys are kept in the data directory ([`crate::keys`]).
    pub keys: ExplicitKeys,
    /// Origins whose pages may `POST /hits` (SPEC 18); none by default.
    pub cors: CorsOrigins,
    /// Delivery buffer interval (like Firehose's buffering hint).
    pub flush_interval: Duration,
    /// Deliver early once this many log bytes are waiting.
    pub buffer_bytes: u64,
    /// Keep raw objects after curate (the record of truth) or delete them.
    pub keep_raw: bool,
    /// When the daily job runs: minutes after midnight UTC.
    pub daily_at_minute: u32,
    /// Accepted log bytes not yet curated beyond which `POST /hits` answers
    /// 503 with nothing stored (SPEC 14).
    pub max_backlog_bytes: u64,
    /// Event dates with hits waiting for curate beyond which `POST /hits`
    /// answers `503` (SPEC 14: the backlog counts date partitions too).
    pub max_pending_dates: usize,
    /// How much longer than `flush_interval` an accepted hit may wait to
    /// become visible before `POST /hits` answers `503` (`None`: no bound).
    pub max_curate_delay: Option<Duration>,
    /// Free bytes kept on the data directory's filesystem beyond what the
    /// backlog needs to be delivered and curated; below, ingest answers `503`.
    pub min_free_bytes: u64,
    /// Request-body bytes held in memory at once, across all requests; past
    /// it a request gets `503` before its body is read ([`crate::admission`]).
    pub max_body_memory_bytes: u64,
    /// `POST /hits` with the ingest key per second per client address
    /// (bursts of as many); `None`: not limited ([`crate::rate_limit`]).
    pub ingest_rate_per_ip: Option<u32>,
    /// `POST /hits` handled at once; the others wait their turn unread
    /// ([`crate::admission::IngestGate`]).
    pub ingest_in_flight: usize,
    /// How long a request whose turn came waits for the pipeline to make
    /// room before the handler refuses it.
    pub ingest_room_wait: Duration,
    /// Distinct event dates one delivery batch may hold (SPEC 14).
    pub max_dates_per_batch: usize,
    /// When a date's curated files are merged, and into what size (SPEC 14).
    pub compaction: CompactionPolicy,
    /// How often dates that received curated files are looked at for compaction.
    pub compaction_interval: Duration,
    /// How long `POST /admin/flush` waits for the pipeline before it answers
    /// `503` with the reason.
    pub flush_timeout: Duration,
    /// How long a counted `(clientid, hitid)` is remembered (SPEC 15); zero
    /// turns deduplication off.
    pub dedup_horizon: Duration,
    /// Ages after which raw, curated hits and daily rollups are deleted (SPEC 17).
    pub retention: crate::retention::RetentionPolicy,
    /// Connection and request limits against slow or idle clients (SPEC 16).
    pub limits: ConnectionLimits,
    /// When the state store merges its journaled changes into redb.
    pub checkpoint: gender_embedded::CheckpointPolicy,
    /// Nice levels below the request workers that the pipeline runs at
    /// (0..=19; 0: the same priority). See [`crate::scheduling`].
    pub pipeline_niceness: i32,
}

impl LocalConfig {
    /// The defaults of `gender-service serve` for `data_dir` and the admin
    /// key `api_key` (the ingest and read keys are kept in `data_dir`).
    pub fn new(data_dir: impl Into<PathBuf>, api_key: impl Into<String>) -> LocalConfig {
        LocalConfig {
            data_dir: data_dir.into(),
            keys: ExplicitKeys {
                admin: Some(api_key.into()),
                ..ExplicitKeys::default()
            },
            cors: CorsOrigins::none(),
            flush_interval: Duration::from_secs(1),
            buffer_bytes: 4 * 1024 * 1024,
            keep_raw: true,
            daily_at_minute: 60,
            max_backlog_bytes: DEFAULT_MAX_BACKLOG_BYTES,
            max_pending_dates: crate::status::DEFAULT_MAX_PENDING_DATES,
            max_curate_delay: Some(crate::status::DEFAULT_MAX_CURATE_DELAY),
            min_free_bytes: crate::status::DEFAULT_MIN_FREE_BYTES,
            max_body_memory_bytes: crate::admission::DEFAULT_MAX_BODY_MEMORY_BYTES,
            ingest_rate_per_ip: None,
            ingest_in_flight: crate::admission::DEFAULT_INGEST_IN_FLIGHT,
            ingest_room_wait: crate::admission::DEFAULT_INGEST_ROOM_WAIT,
            max_dates_per_batch: crate::delivery::DEFAULT_MAX_DATES_PER_BATCH,
            compaction: CompactionPolicy::default(),
            compaction_interval: Duration::from_secs(60),
            flush_timeout: Duration::from_secs(120),
            dedup_horizon: crate::delivery::DEFAULT_DEDUP_HORIZON,
            retention: crate::retention::RetentionPolicy::default(),
            limits: ConnectionLimits::default(),
            checkpoint: gender_embedded::CheckpointPolicy::default(),
            pipeline_niceness: crate::scheduling::PIPELINE_NICENESS,
        }
    }
}

/// The admin key kept in `data_dir`, if there is one.
pub fn read_api_key(data_dir: &Path) -> std::io::Result<String> {
    read_key_file(&data_dir.join(API_KEY_FILE))
}

/// The key kept in `file`.
pub(crate) fn read_key_file(file: &Path) -> std::io::Result<String> {
    let key = std::fs::read_to_string(file)?;
    Ok(key.trim().to_owned())
}

/// The admin key given explicitly, else the one kept in `data_dir`, else a
/// new random one written there (mode 0600) for the next start and the clients.
pub fn resolve_api_key(explicit: Option<String>, data_dir: &Path) -> std::io::Result<String> {
    if let Some(key) = explicit.filter(|k| !k.is_empty()) {
        return Ok(key);
    }
    resolve_key_file(&data_dir.join(API_KEY_FILE))
}

/// The key kept in `file`, else a new random one written there (mode 0600).
pub(crate) fn resolve_key_file(file: &Path) -> std::io::Result<String> {
    match read_key_file(file) {
        Ok(key) if key.is_empty() => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} is empty; delete it to get a new key",
                file.file_name().unwrap_or_default().to_string_lossy()
            ),
        )),
        Ok(key) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = generate_key()?;
            write_private(file, &key)?;
            Ok(key)
        }
        Err(e) => Err(e),
    }
}

/// A new random key: 32 hex characters from the OS generator.
pub(crate) fn generate_key() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_generated_once_then_reused_and_explicit_wins() {
        let dir = tempfile::tempdir().unwrap();
        let first = resolve_api_key(None, dir.path()).unwrap();
        assert_eq!(first.len(), 32);
        assert_eq!(resolve_api_key(None, dir.path()).unwrap(), first);
        assert_eq!(read_api_key(dir.path()).unwrap(), first);
        assert_eq!(
            resolve_api_key(Some("mine".into()), dir.path()).unwrap(),
            "mine"
        );
    }

    #[test]
    fn an_empty_key_file_is_an_error_not_an_empty_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(API_KEY_FILE), "\n").unwrap();
        let err = resolve_api_key(None, dir.path()).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
    }
}
