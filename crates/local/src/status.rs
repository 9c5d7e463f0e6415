//! How far the local pipeline is, whether a stage is failing, and the two
//! things that depend on it: backpressure on ingest and `GET /health`
//! (SPEC 14, 16).

use async_trait::async_trait;
use gender_core::PortError;
use gender_core::ports::{HealthProbe, HitLog, LogRecord};
use gender_embedded::state::StateStore;
use gender_embedded::{DamagedRange, HitLogFile, LogReader};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A stage that failed its last attempt, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageFailure {
    pub stage: &'static str,
    pub reason: String,
}

/// Shared by delivery (which moves it) and ingest and health (which read it).
#[derive(Debug, Default)]
pub struct PipelineStatus {
    /// Every log byte below this is delivered, curated and visible.
    visible_offset: AtomicU64,
    failure: Mutex<Option<StageFailure>>,
    /// Damaged log ranges skipped since start (newest last, a few kept).
    damaged: Mutex<Vec<DamagedRange>>,
    damaged_records: AtomicU64,
    /// The data directory is gone or cannot be written: ingest must stop.
    storage_fault: Mutex<Option<String>>,
    /// Arrival time (ms) of the oldest hit the running cycle is making
    /// visible; 0 between cycles. The lag metric grows with it during a long cycle.
    cycle_oldest_arrival_ms: std::sync::atomic::AtomicI64,
    /// The pace of the last delivery cycles that made hits visible: log
    /// bytes per second of delivery and curate, smoothed (0 before the first).
    visible_bytes_per_sec: AtomicU64,
}

/// How many damaged ranges `/health` and the status keep.
const DAMAGE_KEPT: usize = 16;

impl PipelineStatus {
    pub fn starting_at(visible_offset: u64) -> PipelineStatus {
        PipelineStatus {
            visible_offset: AtomicU64::new(visible_offset),
            ..PipelineStatus::default()
        }
    }

    /// A damaged log range was skipped: its records are lost, the ones
    /// after it were delivered.
    /// A range read again (a batch cut short, a redone batch) counts once.
    pub fn record_damage(&self, damage: DamagedRange) {
        if let Ok(mut damaged) = self.damaged.lock() {
            if damaged.iter().any(|d| d.start == damage.start) {
                return;
            }
            self.damaged_records
                .fetch_add(damage.records as u64, Ordering::Relaxed);
            if damaged.len() == DAMAGE_KEPT {
                damaged.remove(0);
            }
            damaged.push(damage);
        }
    }

    /// Records lost to damaged log ranges since start.
    pub fn damaged_records(&self) -> u64 {
        self.damaged_records.load(Ordering::Relaxed)
    }

    pub fn damaged_ranges(&self) -> Vec<DamagedRange> {
        self.damaged.lock().map(|d| d.clone()).unwrap_or_default()
    }

    pub fn visible_offset(&self) -> u64 {
        self.visible_offset.load(Ordering::Relaxed)
    }

    pub fn set_visible(&self, offset: u64) {
        self.visible_offset.store(offset, Ordering::Relaxed);
        self.cycle_oldest_arrival_ms.store(0, Ordering::Relaxed);
    }

    /// A delivery cycle made `bytes` of log visible in `took` (delivery and
    /// curate, not the upkeep after them). Cycles with nothing to do keep
    /// the last pace.
    pub fn cycle_made_visible(&self, bytes: u64, took: std::time::Duration) {
        if bytes > 0 {
            let per_sec = (bytes as f64 / took.as_secs_f64().max(1e-3)) as u64;
            // Smoothed: cycles of one backlog differ twofold in pace.
            let last = self.visible_bytes_per_sec.load(Ordering::Relaxed);
            let pace = if last == 0 {
                per_sec
            } else {
                last / 2 + per_sec / 2
            };
            self.visible_bytes_per_sec.store(pace, Ordering::Relaxed);
        }
    }

    /// How long `backlog` log bytes take to become visible at the pace of
    /// the last cycles (`None` before the first).
    pub fn time_to_curate(&self, backlog: u64) -> Option<std::time::Duration> {
        match self.visible_bytes_per_sec.load(Ordering::Relaxed) {
            0 => None,
            per_sec => Some(std::time::Duration::from_secs_f64(
                backlog as f64 / per_sec as f64,
            )),
        }
    }

    /// A cycle started on hits that arrived at `arrival_ms` (the oldest it reads).
    pub fn cycle_reading_since(&self, arrival_ms: i64) {
        let _ = self.cycle_oldest_arrival_ms.compare_exchange(
            0,
            arrival_ms,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// The arrival time of the oldest hit a running cycle has not made visible yet.
    pub fn cycle_oldest_arrival_ms(&self) -> Option<i64> {
        Some(self.cycle_oldest_arrival_ms.load(Ordering::Relaxed)).filter(|&ms| ms > 0)
    }

    pub fn failure(&self) -> Option<StageFailure> {
        self.failure.lock().map(|f| f.clone()).unwrap_or(None)
    }

    pub fn set_failure(&self, stage: &'static str, reason: String) {
        if let Ok(mut failure) = self.failure.lock() {
            *failure = Some(StageFailure { stage, reason });
        }
    }

    pub fn storage_fault(&self) -> Option<String> {
        self.storage_fault.lock().map(|f| f.clone()).unwrap_or(None)
    }

    fn set_storage_fault(&self, fault: Option<String>) {
        if let Ok(mut slot) = self.storage_fault.lock() {
            if *slot != fault {
                match &fault {
                    Some(reason) => {
                        tracing::error!(%reason, "data directory unusable; ingest stops")
                    }
                    None => tracing::info!("data directory usable again"),
                }
            }
            *slot = fault;
        }
    }

    pub fn clear_failure(&self) {
        if let Ok(mut failure) = self.failure.lock() {
            *failure = None;
        }
    }
}

/// Disk bytes that delivering and curating one byte of accepted log takes
/// at most while it is in the backlog: its raw object (about 1.1 bytes per
/// log byte), its Parquet (about 0.3), the state journal's record and the
/// temporary copy a compaction writes before it swaps. The log's own bytes
/// are already on disk.
pub const DISK_BYTES_PER_BACKLOG_BYTE: u64 = 2;

/// The default margin kept free beyond what the backlog needs: the state
/// store's checkpoint and a compaction's largest temporary file fit in it.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 256 * 1024 * 1024;

/// Free space the pipeline needs for what ingest has accepted (issue 26):
/// while the data directory's filesystem has less, ingest is refused, so
/// space freed by the operator goes to delivering the acknowledged hits
/// first, and every one of them becomes visible.
#[derive(Clone, Debug)]
pub struct SpaceReserve {
    pub data_dir: std::path::PathBuf,
    /// Bytes kept free beyond what the backlog needs.
    pub min_free_bytes: u64,
}

impl SpaceReserve {
    /// What a backlog of `backlog` log bytes needs free to be delivered and curated.
    pub fn needed(&self, backlog: u64) -> u64 {
        backlog
            .saturating_mul(DISK_BYTES_PER_BACKLOG_BYTE)
            .saturating_add(self.min_free_bytes)
    }

    /// Free bytes for an unprivileged writer on the data directory's filesystem.
    pub fn free_bytes(&self) -> std::io::Result<u64> {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(self.data_dir.as_os_str().as_bytes())
            .map_err(std::io::Error::other)?;
        // SAFETY: a valid NUL-terminated path and a zeroed statvfs to fill.
        let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
    }

    /// Why ingest must wait, if the filesystem has less free than `backlog` needs.
    fn short(&self, backlog: u64) -> Option<PortError> {
        let needed = self.needed(backlog);
        let free = self.free_bytes().ok()?;
        (free < needed).then(|| PortError::Throttled {
            what: format!(
                "disk: {free} bytes free, below the {needed} the pipeline needs for its \
                 backlog of {backlog} bytes plus the margin of {} (free space, or wait)",
                self.min_free_bytes
            ),
            source: None,
        })
    }
}

/// The default bound on event dates with hits waiting for curate: each
/// such date costs curate one Parquet file (and its compaction) whatever
/// its number of hits, so a backlog spread over many dates is slow even
/// when it is small in bytes.
pub const DEFAULT_MAX_PENDING_DATES: usize = 20_000;

/// The event dates of accepted hits not yet visible (issue 26): each date
/// with the log end after its latest append; a date is pending while that
/// end is above the visible offset.
#[derive(Debug, Default)]
pub struct PendingDates {
    dates: Mutex<std::collections::HashMap<[u8; 10], u64>>,
}

/// The `YYYY-MM-DD` of a normalized hit's `timestamp` ([`ARRIVAL`] when it
/// has none and is dated by its arrival). No other value can contain the
/// pattern: `clientid` and `hitid` are identifiers, without quotes (SPEC 2).
fn event_date(data: &[u8]) -> [u8; 10] {
    const FIELD: &[u8] = br#""timestamp":""#;
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(FIELD));
    FINDER
        .find(data)
        .and_then(|at| data.get(at + FIELD.len()..at + FIELD.len() + 10))
        .and_then(|date| <[u8; 10]>::try_from(date).ok())
        .unwrap_or(ARRIVAL)
}

/// Hits without a timestamp: dated by arrival, a date or two at most.
const ARRIVAL: [u8; 10] = *b"arrival---";

impl PendingDates {
    /// `dates` got hits stored below log offset `end`.
    fn appended(&self, dates: impl IntoIterator<Item = [u8; 10]>, end: u64) {
        if let Ok(mut pending) = self.dates.lock() {
            for date in dates {
                pending.insert(date, end);
            }
        }
    }

    /// Dates with hits at or above `visible` (forgetting the others).
    pub fn count(&self, visible: u64) -> usize {
        match self.dates.lock() {
            Ok(mut pending) => {
                pending.retain(|_, end| *end > visible);
                pending.len()
            }
            Err(_) => 0,
        }
    }
}

/// When the accepted hits still waiting for curate were appended: appends
/// within [`WAIT_BUCKET`] of each other share an entry (the log end after
/// the last of them, the time of the first), so the queue stays short
/// whatever the request rate.
#[derive(Debug, Default)]
pub struct WaitingSince {
    appends: Mutex<std::collections::VecDeque<(u64, std::time::Instant)>>,
}

/// How close in time appends share one [`WaitingSince`] entry: the wait it
/// reports is at most this much longer than the truth.
const WAIT_BUCKET: std::time::Duration = std::time::Duration::from_millis(100);

impl WaitingSince {
    /// Hits stored below log offset `end` were appended `at`.
    fn appended(&self, end: u64, at: std::time::Instant) {
        if let Ok(mut appends) = self.appends.lock() {
            match appends.back_mut() {
                Some((last_end, since)) if at.duration_since(*since) < WAIT_BUCKET => {
                    *last_end = end.max(*last_end);
                }
                _ => appends.push_back((end, at)),
            }
        }
    }

    /// How long the oldest hit at or above `visible` has waited at `now`
    /// (forgetting the appends below it).
    pub fn oldest_wait(
        &self,
        visible: u64,
        now: std::time::Instant,
    ) -> Option<std::time::Duration> {
        let mut appends = self.appends.lock().ok()?;
        while appends.front().is_some_and(|(end, _)| *end <= visible) {
            appends.pop_front();
        }
        appends.front().map(|(_, since)| now.duration_since(*since))
    }
}

/// The default bound on how much longer than the delivery interval an
/// accepted hit may wait to become visible before ingest refuses: with the
/// default 1 s interval, a curate lag of 10 s at most (issue 26). Hits
/// spread over more dates than curate writes files for in a second are the
/// load that gets there; the byte and date bounds do not see it.
pub const DEFAULT_MAX_CURATE_DELAY: std::time::Duration = std::time::Duration::from_secs(9);

/// The bound on accepted-but-not-yet-visible log bytes, event dates and
/// waiting time (SPEC 14), and the free space they need on disk.
#[derive(Clone)]
pub struct Backlog {
    pub reader: LogReader,
    pub max_bytes: u64,
    /// `None`: free space is not watched (tests of the byte bound alone).
    pub space: Option<SpaceReserve>,
    /// Event dates with hits waiting for curate at most.
    pub max_pending_dates: usize,
    pub pending_dates: std::sync::Arc<PendingDates>,
    /// How long the oldest waiting hit may wait at most (the delivery
    /// interval plus the allowed delay); `None`: not bounded.
    pub max_wait: Option<std::time::Duration>,
    pub waiting: std::sync::Arc<WaitingSince>,
}

impl Backlog {
    /// Bytes accepted but not yet curated.
    pub fn bytes(&self, status: &PipelineStatus) -> u64 {
        self.reader
            .durable_end()
            .saturating_sub(status.visible_offset())
    }

    fn behind(&self, status: &PipelineStatus) -> Option<PortError> {
        let backlog = self.bytes(status);
        if let Some(short) = self.space.as_ref().and_then(|space| space.short(backlog)) {
            return Some(short);
        }
        let dates = self.pending_dates.count(status.visible_offset());
        if dates > self.max_pending_dates {
            return Some(PortError::Throttled {
                what: format!(
                    "pipeline behind: hits of {dates} event dates wait for curate (bound {})",
                    self.max_pending_dates
                ),
                source: None,
            });
        }
        // A hit accepted now waits for the backlog ahead of it: refusing
        // only once the oldest has waited the bound would let a backlog that
        // curates slowly (a file per hit when every hit has its own date)
        // keep the hits accepted meanwhile waiting far beyond it.
        // The pace of small cycles is mostly their fixed cost, so it is only
        // trusted once the oldest hit has waited a quarter of the bound: a
        // burst after a quiet minute is not refused on the quiet minute's pace.
        if let Some(max_wait) = self.max_wait {
            let waited = self
                .waiting
                .oldest_wait(status.visible_offset(), std::time::Instant::now())
                .unwrap_or_default();
            let to_curate = if waited >= max_wait / 4 {
                status.time_to_curate(backlog).unwrap_or_default()
            } else {
                std::time::Duration::ZERO
            };
            if waited.max(to_curate) > max_wait {
                return Some(PortError::Throttled {
                    what: format!(
                        "pipeline behind: the oldest accepted hit not yet visible has waited \
                         {:.1} s and the backlog takes {:.1} s to curate at the last cycles' \
                         pace (bound {:.1} s)",
                        waited.as_secs_f64(),
                        to_curate.as_secs_f64(),
                        max_wait.as_secs_f64()
                    ),
                    source: None,
                });
            }
        }
        (backlog >= self.max_bytes).then(|| PortError::Throttled {
            what: format!(
                "pipeline behind: {backlog} bytes of accepted hits wait for curate (bound {})",
                self.max_bytes
            ),
            source: None,
        })
    }
}

/// The local hit log behind the backlog bound: past it, appends are refused
/// with nothing stored, so a `202` is never given for a hit the pipeline
/// cannot take.
pub struct BoundedHitLog {
    pub log: std::sync::Arc<HitLogFile>,
    pub backlog: Backlog,
    pub status: std::sync::Arc<PipelineStatus>,
    /// Requests refused because of the bound.
    pub refused: AtomicU64,
    /// Whether the last request was refused: the log says when refusing
    /// starts and ends, not once per refused request.
    pub refusing: AtomicBool,
}

impl BoundedHitLog {
    /// A gate that has refused nothing yet.
    pub fn new(
        log: std::sync::Arc<HitLogFile>,
        backlog: Backlog,
        status: std::sync::Arc<PipelineStatus>,
    ) -> BoundedHitLog {
        BoundedHitLog {
            log,
            backlog,
            status,
            refused: AtomicU64::new(0),
            refusing: AtomicBool::new(false),
        }
    }

    /// Whether an append would be admitted now, without counting a
    /// refusal: what a request waiting for room polls.
    pub fn has_room(&self) -> bool {
        self.status.storage_fault().is_none() && self.backlog.behind(&self.status).is_none()
    }

    fn check(&self) -> Result<(), PortError> {
        if let Some(fault) = self.status.storage_fault() {
            return Err(PortError::unavailable("data directory", Reason(fault)));
        }
        if let Some(behind) = self.backlog.behind(&self.status) {
            self.refused.fetch_add(1, Ordering::Relaxed);
            if !self.refusing.load(Ordering::Relaxed)
                && !self.refusing.swap(true, Ordering::Relaxed)
            {
                tracing::warn!(error = %behind, "ingest refused from now on until the pipeline catches up");
            }
            return Err(behind);
        }
        if self.refusing.load(Ordering::Relaxed) && self.refusing.swap(false, Ordering::Relaxed) {
            tracing::info!(
                refused_so_far = self.refused.load(Ordering::Relaxed),
                "ingest accepted again: the pipeline is back within its backlog bound"
            );
        }
        Ok(())
    }
}

#[async_trait]
impl HitLog for BoundedHitLog {
    async fn append(&self, records: Vec<LogRecord>) -> Result<Vec<usize>, PortError> {
        self.check()?;
        // A request's hits mostly share a date or two: a date repeating the
        // one before is kept once here, the pending map takes the rest.
        let mut dates: Vec<[u8; 10]> = Vec::new();
        for record in &records {
            let date = event_date(&record.data);
            if dates.last() != Some(&date) {
                dates.push(date);
            }
        }
        let result = self.log.append(records).await;
        if result.is_ok() {
            let end = self.backlog.reader.durable_end();
            self.backlog.pending_dates.appended(dates, end);
            self.backlog
                .waiting
                .appended(end, std::time::Instant::now());
        }
        result
    }

    fn admits(&self) -> Result<(), PortError> {
        self.check()
    }
}

/// `GET /health` of the local deployment: the state store answers, no stage
/// is failing, and the pipeline is within its backlog bound.
pub struct LocalHealth {
    pub state: StateStore,
    pub backlog: Backlog,
    pub status: std::sync::Arc<PipelineStatus>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Reason(String);

#[async_trait]
impl HealthProbe for LocalHealth {
    async fn ping(&self) -> Result<(), PortError> {
        self.state.ping().await?;
        if let Some(fault) = self.status.storage_fault() {
            return Err(PortError::unavailable("data directory", Reason(fault)));
        }
        if let Some(StageFailure { stage, reason }) = self.status.failure() {
            return Err(PortError::unavailable(stage, Reason(reason)));
        }
        if let Some(last) = self.status.damaged_ranges().last() {
            // Degraded until restart: records were lost and someone should
            // look (`gender-service check`); everything else keeps flowing.
            let lost = self.status.damaged_records();
            return Err(PortError::corrupt(
                "log",
                format!("{lost} record(s) lost to damage since start; last: {last}"),
            ));
        }
        match self.backlog.behind(&self.status) {
            Some(behind) => Err(behind),
            None => Ok(()),
        }
    }
}

/// Checks every `interval` that the data directory is there and writable
/// (a probe file created, synced and removed); while it is not, ingest is
/// refused and `/health` fails (SPEC 16). Runs until the task is dropped.
pub async fn watch_data_dir(
    store: gender_embedded::DirObjectStore,
    status: std::sync::Arc<PipelineStatus>,
    interval: std::time::Duration,
) {
    loop {
        let probed = store.clone();
        let probe = tokio::task::spawn_blocking(move || probe_writable(&probed)).await;
        let fault = match probe {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("the data directory cannot be written: {e}")),
            Err(_) => Some("the data directory probe did not finish".to_owned()),
        };
        status.set_storage_fault(fault);
        tokio::time::sleep(interval).await;
    }
}

fn probe_writable(store: &gender_embedded::DirObjectStore) -> std::io::Result<()> {
    // The log directory must still be the one the log writes in.
    std::fs::metadata(store.root().join("log"))?;
    store.probe_writable_blocking()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_is_that_of_the_oldest_append_not_yet_visible() {
        let waiting = WaitingSince::default();
        let start = std::time::Instant::now();
        let at = |ms| start + std::time::Duration::from_millis(ms);
        assert_eq!(waiting.oldest_wait(0, at(0)), None);
        waiting.appended(100, at(0));
        waiting.appended(200, at(50)); // same bucket: its end moves up
        waiting.appended(300, at(400));
        let wait = |visible, now| waiting.oldest_wait(visible, at(now)).map(|d| d.as_millis());
        assert_eq!(wait(0, 1000), Some(1000));
        // Half of the first bucket visible: its first append may still wait.
        assert_eq!(wait(100, 1000), Some(1000));
        assert_eq!(wait(200, 1000), Some(600));
        assert_eq!(wait(300, 1000), None);
        assert_eq!(
            waiting.appends.lock().unwrap().len(),
            0,
            "visible appends forgotten"
        );
    }

    #[test]
    fn the_event_date_is_read_from_the_normalized_hit() {
        let hit = gender_core::IncomingHit {
            clientid: "visitor-1".into(),
            gender: gender_core::Gender::F,
            event_ms: Some(1_795_478_400_000),
            hitid: None,
        };
        assert_eq!(&event_date(&hit.to_json()), b"2026-11-24");
        let undated = gender_core::IncomingHit {
            event_ms: None,
            ..hit
        };
        assert_eq!(event_date(&undated.to_json()), ARRIVAL);
    }

    #[test]
    fn a_date_is_pending_until_the_visible_offset_passes_its_last_append() {
        let pending = PendingDates::default();
        pending.appended([*b"2026-01-01", *b"2026-01-02"], 100);
        pending.appended([*b"2026-01-02"], 200);
        assert_eq!(pending.count(0), 2);
        assert_eq!(pending.count(100), 1);
        assert_eq!(pending.count(200), 0);
    }
}
