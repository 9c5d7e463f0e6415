//! The upkeep of the data directory beside delivery: erasures carried out
//! on the stored files (SPEC 17, [`crate::erasure`]), small curated files
//! and raw objects merged ([`crate::compaction`], SPEC 14), expired partitions deleted
//! ([`crate::retention`], SPEC 17). How files change on disk is
//! [`gender_embedded::partitions`]; when they change is decided here.
//!
//! Delivery tells [`Housekeeping`] which dates received curated files and
//! runs it at the end of every cycle, on the delivery thread, so compaction
//! and retention never overlap curate. What is due runs in this order:
//! erasure progress first (finish the running erasure, start the next), so
//! compaction never runs while a request's profile is gone but its files
//! are not yet erased (it could merge files from both sides of the
//! request's offset); then compaction, then retention.
//!
//! Two locks keep readers and writers of curated files apart:
//! - [`CuratedLock`], between the daily job, which reads a week of curated
//!   files, and the rewriters (compaction, retention, an erasure). The daily
//!   job waits for it; a rewrite starts only when it is free, else at a
//!   later cycle.
//! - the swap lock, held by curate while it writes curated files and by an
//!   erasure (which runs on its own thread while delivery goes on) while it
//!   swaps a date's files in, so no new file is lost in a swap.

use crate::compaction::{self, CompactionPolicy};
use crate::erasure::{Erased, Target, erase_visitors};
use crate::error::{CycleError, off_thread, on_state};
use crate::metrics::PipelineMetrics;
use crate::retention::{self, RetentionPolicy};
use gender_core::Date;
use gender_embedded::state::StateStore;
use gender_embedded::{DirObjectStore, LogRoller, PendingErasure, partitions};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// Dates (curated and raw each) one cycle compacts at most: a minute of
/// hits spread over thousands of dates leaves thousands to merge, and doing
/// them all at once held delivery up for seconds (issue 26). A round of
/// compaction takes as many cycles as it needs.
const COMPACT_DATES_PER_CYCLE: usize = 128;

/// How often retention looks for expired partitions (and once at start).
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// The lock between the reader of curated files as a whole (the daily job)
/// and their rewriters (compaction, retention, erasure). Cheap to clone:
/// clones are the same lock.
#[derive(Clone, Default)]
pub struct CuratedLock(Arc<Mutex<()>>);

impl CuratedLock {
    /// Waits until no rewrite runs and keeps new ones from starting; one
    /// reader at a time, so daily runs never overlap either.
    pub async fn read(&self) -> OwnedMutexGuard<()> {
        self.0.clone().lock_owned().await
    }

    /// For a rewrite: `None` while the daily job reads (try again later).
    fn try_rewrite(&self) -> Option<OwnedMutexGuard<()>> {
        self.0.clone().try_lock_owned().ok()
    }
}

/// When the upkeep runs and what it keeps.
pub struct HousekeepingSettings {
    /// "Today" for retention, and the completion time of erasures.
    pub clock: fn() -> i64,
    /// Which dates' curated files are merged, and into what size.
    pub compaction: CompactionPolicy,
    /// How often the dates that received curated files are looked at for
    /// compaction (zero: after every cycle).
    pub compaction_interval: Duration,
    /// Ages after which date partitions are deleted (SPEC 17), looked at
    /// every [`RETENTION_INTERVAL`] against `clock`.
    pub retention: RetentionPolicy,
}

impl HousekeepingSettings {
    /// The local defaults.
    pub fn new(clock: fn() -> i64) -> HousekeepingSettings {
        HousekeepingSettings {
            clock,
            compaction: CompactionPolicy::default(),
            compaction_interval: Duration::from_secs(60),
            retention: RetentionPolicy::default(),
        }
    }
}

/// An erasure running on a blocking thread beside delivery.
struct ErasureTask {
    ids: Vec<String>,
    handle: tokio::task::JoinHandle<Result<Erased, CycleError>>,
}

/// Compaction, retention and erasure progress, with the locks that keep
/// them from readers and from curate's writes (see the module).
pub struct Housekeeping {
    store: DirObjectStore,
    state: StateStore,
    metrics: Arc<PipelineMetrics>,
    settings: HousekeepingSettings,
    curated: CuratedLock,
    /// Held by curate while it writes curated files and by an erasure while
    /// it swaps a date's files, so no new file is lost in a swap.
    swaps: Arc<Mutex<()>>,
    /// Closes the log's segment after an erasure, so the segment holding
    /// the erased hits is deleted once delivered.
    roller: Option<LogRoller>,
    /// Dates that received curated files since they were last looked at.
    to_compact: BTreeSet<Date>,
    /// Arrival dates that received raw objects since they were last looked at.
    raw_to_compact: BTreeSet<Date>,
    /// The running compaction round: the dates it has still to look at,
    /// [`COMPACT_DATES_PER_CYCLE`] of them at the end of each cycle.
    round: BTreeSet<Date>,
    raw_round: BTreeSet<Date>,
    last_compaction: Option<tokio::time::Instant>,
    last_retention: Option<tokio::time::Instant>,
    /// The erasure running beside delivery, if any.
    erasing: Option<ErasureTask>,
}

impl Housekeeping {
    pub fn new(
        store: DirObjectStore,
        state: StateStore,
        metrics: Arc<PipelineMetrics>,
        settings: HousekeepingSettings,
    ) -> Housekeeping {
        Housekeeping {
            store,
            state,
            metrics,
            settings,
            curated: CuratedLock::default(),
            swaps: Arc::new(Mutex::new(())),
            roller: None,
            to_compact: BTreeSet::new(),
            raw_to_compact: BTreeSet::new(),
            round: BTreeSet::new(),
            raw_round: BTreeSet::new(),
            last_compaction: None,
            last_retention: None,
            erasing: None,
        }
    }

    /// Lets erasures close the log's current segment.
    pub fn with_log_roller(mut self, roller: LogRoller) -> Housekeeping {
        self.roller = Some(roller);
        self
    }

    /// The lock the daily job holds while it reads curated files.
    pub fn curated_lock(&self) -> CuratedLock {
        self.curated.clone()
    }

    /// Removes what an interrupted swap or removal left, and looks at every
    /// date with curated files for compaction (their state before the
    /// restart is unknown).
    pub(crate) async fn recover(&mut self) -> Result<(), CycleError> {
        let root = self.store.root().to_owned();
        let (dates, raw_dates) = off_thread(move || {
            partitions::clean_up_interrupted(&root)?;
            Ok((
                compaction::dates_with_curated_hits(&root)?,
                compaction::dates_with_raw(&root)?,
            ))
        })
        .await?;
        self.to_compact.extend(dates);
        self.raw_to_compact.extend(raw_dates);
        Ok(())
    }

    /// Held while curate writes curated files: no erasure swaps a date's
    /// files meanwhile.
    pub(crate) async fn curated_writes(&self) -> OwnedMutexGuard<()> {
        self.swaps.clone().lock_owned().await
    }

    /// Dates that just received curated files (looked at for compaction).
    pub(crate) fn dates_got_files(&mut self, dates: impl IntoIterator<Item = Date>) {
        self.to_compact.extend(dates);
    }

    /// An arrival date that just received a raw object (looked at for
    /// compaction).
    pub(crate) fn date_got_raw(&mut self, date: Date) {
        self.raw_to_compact.insert(date);
    }

    /// Runs what is due, in the order of the module's description. A
    /// failure comes with the name of its step, for `/health`.
    /// What is due at the end of a cycle. `flushing`: a flush waits for the
    /// cycle, and compaction waits for the next cycle without one, so a
    /// flush answers when the hits are visible, not when a minute's files
    /// of thousands of dates are merged (issue 26).
    pub(crate) async fn run(&mut self, flushing: bool) -> Result<(), (&'static str, CycleError)> {
        self.advance_erasures().await.map_err(|e| ("erasure", e))?;
        if !flushing {
            self.compact_if_due().await.map_err(|e| ("compaction", e))?;
        }
        self.retention_if_due().await.map_err(|e| ("retention", e))
    }

    /// Finishes the running erasure if it is done (completing its requests
    /// and closing the log segment), and starts one for the requests whose
    /// profiles are gone, unless the daily job is reading curated files.
    /// The erasure runs on its own thread while delivery goes on; it holds
    /// the curated lock, so compaction and retention wait for it too.
    async fn advance_erasures(&mut self) -> Result<(), CycleError> {
        if let Some(task) = &self.erasing {
            if !task.handle.is_finished() {
                return Ok(());
            }
            let task = self.erasing.take().expect("checked above");
            let erased = task.handle.await.map_err(|_| CycleError::Stopped)??;
            let now = (self.settings.clock)();
            let count = task.ids.len() as u64;
            let ids = task.ids;
            on_state(&self.state, move |s| {
                let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
                s.complete_erasures_blocking(&refs, now)
            })
            .await?;
            // The segment holding the erased hits goes once delivered.
            if let Some(roller) = &self.roller
                && let Err(e) = roller.roll().await
            {
                tracing::warn!(error = %e, "could not close the log segment after an erasure");
            }
            self.metrics
                .erasures_completed
                .fetch_add(count, Ordering::Relaxed);
            self.metrics
                .erased_rows
                .fetch_add(erased.curated_rows, Ordering::Relaxed);
            tracing::info!(
                erasures = count,
                curated_rows = erased.curated_rows,
                curated_files = erased.curated_files_rewritten,
                rollups = erased.rollups_rewritten,
                raw_lines = erased.raw_lines,
                "erasures complete"
            );
        }
        let ready: Vec<PendingErasure> =
            on_state(&self.state, StateStore::pending_erasures_blocking)
                .await?
                .into_iter()
                .filter(|e| e.profile_forgotten)
                .collect();
        if ready.is_empty() {
            return Ok(());
        }
        let Some(rewriting) = self.curated.try_rewrite() else {
            return Ok(()); // the daily job is reading; next cycle
        };
        let ids = ready.iter().map(|e| e.id.clone()).collect();
        let targets: Vec<Target> = ready
            .into_iter()
            .map(|e| Target {
                clientid: e.clientid,
                log_offset: e.log_offset,
            })
            .collect();
        let (store, swaps) = (self.store.clone(), self.swaps.clone());
        let handle = tokio::task::spawn_blocking(move || {
            let _rewriting = rewriting;
            erase_visitors(&store, &targets, &swaps)
        });
        self.erasing = Some(ErasureTask { ids, handle });
        Ok(())
    }

    /// Merges small curated files of the dates that received some, and
    /// small raw objects of the arrival dates that received some, once per
    /// interval, while the daily job (and an erasure) is not reading them.
    async fn compact_if_due(&mut self) -> Result<(), CycleError> {
        let in_round = !(self.round.is_empty() && self.raw_round.is_empty());
        let interval = self.settings.compaction_interval;
        let due = self
            .last_compaction
            .is_none_or(|at| at.elapsed() >= interval);
        if !in_round && (!due || (self.to_compact.is_empty() && self.raw_to_compact.is_empty())) {
            return Ok(());
        }
        let Some(_rewriting) = self.curated.try_rewrite() else {
            return Ok(()); // the daily job is reading; next time
        };
        if !in_round {
            self.last_compaction = Some(tokio::time::Instant::now());
            self.round = std::mem::take(&mut self.to_compact);
            self.raw_round = std::mem::take(&mut self.raw_to_compact);
        }
        let take = |round: &mut BTreeSet<Date>| -> Vec<Date> {
            std::iter::from_fn(|| round.pop_first())
                .take(COMPACT_DATES_PER_CYCLE)
                .collect()
        };
        let dates = take(&mut self.round);
        let raw_dates = take(&mut self.raw_round);
        let pending: HashSet<String> = if raw_dates.is_empty() {
            HashSet::new()
        } else {
            on_state(&self.state, StateStore::delivery_state)
                .await?
                .pending
                .into_iter()
                .collect()
        };
        let root = self.store.root().to_owned();
        let policy = self.settings.compaction;
        let (curated, raw) = off_thread(move || {
            let merged_away = |c: compaction::Compacted| c.files_before - c.files_after;
            let mut curated = 0;
            for date in dates {
                curated += merged_away(compaction::compact_date(&root, date, policy)?);
            }
            let mut raw = 0;
            for date in raw_dates {
                raw += merged_away(compaction::compact_raw_date(&root, date, policy, &pending)?);
            }
            Ok((curated, raw))
        })
        .await?;
        if curated > 0 {
            self.metrics
                .files_compacted
                .fetch_add(curated as u64, Ordering::Relaxed);
            tracing::info!(files_merged_away = curated, "compacted curated hits");
        }
        if raw > 0 {
            self.metrics
                .raw_files_compacted
                .fetch_add(raw as u64, Ordering::Relaxed);
            tracing::info!(files_merged_away = raw, "compacted raw objects");
        }
        Ok(())
    }

    /// Deletes expired date partitions (SPEC 17) at most once an interval,
    /// never while the daily job reads and never a raw object curate still
    /// needs. Runs on the delivery thread, so never during a compaction
    /// either.
    async fn retention_if_due(&mut self) -> Result<(), CycleError> {
        if self
            .last_retention
            .is_some_and(|at| at.elapsed() < RETENTION_INTERVAL)
        {
            return Ok(());
        }
        let Some(_rewriting) = self.curated.try_rewrite() else {
            return Ok(()); // the daily job is reading; next cycle
        };
        self.last_retention = Some(tokio::time::Instant::now());
        let pending: HashSet<String> = on_state(&self.state, StateStore::delivery_state)
            .await?
            .pending
            .into_iter()
            .collect();
        let root = self.store.root().to_owned();
        let policy = self.settings.retention;
        let today = Date::of_millis((self.settings.clock)());
        let report =
            off_thread(move || Ok(retention::enforce(&root, &policy, today, &pending)?)).await?;
        if !report.partitions.is_empty() {
            self.metrics
                .partitions_expired
                .fetch_add(report.partitions.len() as u64, Ordering::Relaxed);
            tracing::info!(partitions = ?report.partitions, kept_for_curate = report.raw_kept_pending, "retention deleted expired partitions");
        }
        Ok(())
    }
}
