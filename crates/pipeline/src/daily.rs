//! The daily job (SPEC 7): rollups for `D-6 ..= D` from curated hits, then
//! the 7-day window sums set or cleared per visitor. Only overwrites, so a
//! re-run gives identical results.
//!
//! Incremental: each rollup records in its Parquet key-value metadata a
//! digest of the curated hits objects it was built from (key, size and
//! version of each, from one LIST of the date's prefix). A date whose LIST
//! still gives that digest keeps its rollup; only dates that received (or
//! lost, or had replaced) curated objects are recomputed, and those are read
//! one row group at a time.
//!
//! The stored window sums are never read back. The state object
//! (`layout::DAILY_APPLIED_KEY`, see `core::daily`) records the window the
//! store holds and the digests of the rollups it was computed from; a run
//! streams a merge by clientid of the rollups of that window and of its own
//! (each read batch by batch from a local copy) and writes only the visitors
//! whose sums differ, in clientid order, at a configured rate, saving how far
//! it got every few seconds so that a stopped run resumes. Memory holds one
//! date's rebuild at most, never the window.
//!
//! The window sums file (`layout::DAILY_WINDOW_KEY`, [`WindowFileMeta`])
//! keeps the sums of the window applied, written as the merge streams them.
//! When it holds the applied window and each rollup it counted is still the
//! same object, the next run merges it (old = new = its sums) with only the
//! rollups of the dates that entered (added to the new sums) and left (taken
//! off), and for a date whose curated hits changed, its old rollup (off) and
//! its rebuilt one (on): the same sums as merging every rollup of both
//! windows, from 3 files instead of 8 on a normal night.

use crate::PipelineError;
use crate::codec::{self, DailyFile};
use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use gender_core::daily::{
    AppliedWindows, DailyProgress, DailyState, DailyStop, MergeRole, MergedSums, RollupSummary,
    WindowFileMeta, WindowRollup, inputs_digest, merge_dates, merge_role, start_progress,
    window_write,
};
use gender_core::ports::{ObjectInfo, ObjectStore, WindowStore};
use gender_core::{DailySummary, Date, Gender, VisitorMap, WindowSums, layout, window_dates};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{Seek, Write};
use std::num::NonZeroU32;
use std::time::Duration;
use tokio::time::Instant;

/// Rows decoded at a time from each merged rollup.
const MERGE_BATCH_ROWS: usize = 8 * 1024;

/// How a daily run writes (the defaults are the local deployment's).
pub struct DailyOptions<'a> {
    /// Window writes per second at most (what the profile table can take
    /// besides its other traffic); `None`: as fast as the store takes them.
    pub writes_per_second: Option<NonZeroU32>,
    /// Writes handed to the store at once when unpaced; paced, a tenth of a
    /// second's worth, so the table sees the rate rather than bursts.
    pub batch_writes: usize,
    /// How often the progress of the writes is saved.
    pub checkpoint_every: Duration,
    /// Asked after each rollup rebuilt and each batch written: `true` stops
    /// the run with its progress saved (the Lambda's deadline is near).
    pub should_stop: Option<&'a (dyn Fn() -> bool + Send + Sync)>,
    /// Keep the window sums file (`layout::DAILY_WINDOW_KEY`) and start the
    /// next day's run from it: it merges the file with the rollups of the
    /// dates that entered and left the window instead of every rollup of
    /// both windows. Erasure must then forget visitors in the file too.
    pub window_file: bool,
}

impl Default for DailyOptions<'_> {
    fn default() -> Self {
        DailyOptions {
            writes_per_second: None,
            // Locally one state-store transaction each: large, so that a
            // first run's millions of writes commit a few hundred times.
            batch_writes: 64 * 1024,
            checkpoint_every: Duration::from_secs(5),
            should_stop: None,
            window_file: true,
        }
    }
}

impl DailyOptions<'_> {
    fn stop_now(&self) -> bool {
        self.should_stop.is_some_and(|stop| stop())
    }

    fn batch_size(&self) -> usize {
        let most = self.batch_writes.max(1);
        match self.writes_per_second {
            Some(rate) => (rate.get() as usize / 10).clamp(1, most),
            None => most,
        }
    }
}

/// How a daily run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DailyRun {
    /// Every window of the date is stored.
    Complete(DailySummary),
    /// Stopped on request, progress saved: a run for the same date resumes.
    Stopped(DailyStop),
}

/// One date's counts while its curated hits are read: each distinct
/// clientid of a dictionary is looked up once, rows count by index.
struct DayCounts {
    visitors: VisitorMap<u32>,
    counts: Vec<[u64; 2]>,
    /// The current dictionary's entries as indexes into `counts`.
    to_local: Vec<u32>,
}

impl codec::HitRows for DayCounts {
    fn dictionary(&mut self, clientids: &StringArray) {
        self.to_local.clear();
        self.to_local.resize(clientids.len(), 0);
        let (counts, to_local) = (&mut self.counts, &mut self.to_local);
        let ids = clientids
            .iter()
            .enumerate()
            .map(|(pos, id)| (id.unwrap_or(""), pos));
        self.visitors.for_each_entry(
            ids,
            || u32::MAX,
            |index, pos| {
                if *index == u32::MAX {
                    *index = counts.len() as u32;
                    counts.push([0, 0]);
                }
                to_local[pos] = *index;
            },
        );
    }

    #[inline]
    fn row(&mut self, clientid: usize, gender: Gender) {
        let i = self.to_local[clientid] as usize;
        match gender {
            Gender::M => self.counts[i][0] += 1,
            Gender::F => self.counts[i][1] += 1,
        }
    }
}

/// What a rollup was built from: a digest over the sorted LIST of the date's
/// curated hits objects. The format tag changes if the rollup's meaning does.
pub fn sources_digest(sources: &[ObjectInfo]) -> String {
    let mut hash = Sha256::new();
    for source in sources {
        hash.update(source.key.as_bytes());
        hash.update(format!("\t{}\t", source.size).as_bytes());
        hash.update(source.version.as_bytes());
        hash.update(b"\n");
    }
    let hex: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("v1 files={} sha256={hex}", sources.len())
}

fn local_io(key: &str) -> impl Fn(std::io::Error) -> PipelineError + '_ {
    move |e| PipelineError::BadObject {
        key: key.to_owned(),
        detail: format!("local temporary file: {e}"),
    }
}

/// Copies an object into an anonymous local file (read one chunk at a time).
async fn spool(store: &dyn ObjectStore, key: &str) -> Result<Option<std::fs::File>, PipelineError> {
    let Some(mut body) = store.get_stream(key).await? else {
        return Ok(None);
    };
    let mut file = tempfile::tempfile().map_err(local_io(key))?;
    while let Some(chunk) = body.next_chunk().await? {
        file.write_all(&chunk).map_err(local_io(key))?;
    }
    file.rewind().map_err(local_io(key))?;
    Ok(Some(file))
}

/// One date's rollup, current and ready to be merged from a local copy.
struct RollupFile {
    date: Date,
    key: String,
    /// The digest of the curated objects it was built from.
    digest: String,
    file: DailyFile,
    /// Whether this run rebuilt it.
    rebuilt: bool,
}

/// What a run needs of a date's rollup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// The date is in the run's window: the rollup must be current (its
    /// recorded sources match a fresh LIST), else it is recomputed.
    Current,
    /// The date is only in the applied window: the rollup as stored is what
    /// the stored sums were computed from (or, if its digest says otherwise,
    /// what its visitors are written from); recomputed only when missing.
    /// Never rebuilt from curated hits that may have expired since.
    AsStored,
}

/// The date's curated hits objects (one LIST) and their digest.
async fn date_sources(
    curated: &dyn ObjectStore,
    dt: Date,
) -> Result<(Vec<ObjectInfo>, String), PipelineError> {
    let sources: Vec<ObjectInfo> = curated
        .list_info(&layout::curated_hits_prefix(dt))
        .await?
        .into_iter()
        .filter(|o| o.key.ends_with(".parquet"))
        .collect();
    let digest = sources_digest(&sources);
    Ok((sources, digest))
}

/// A stored rollup (or the window sums file) from a local copy; `None` when
/// missing, or unreadable or foreign (then simply rebuilt, or not used).
async fn stored_daily_file(
    curated: &dyn ObjectStore,
    key: &str,
) -> Result<Option<DailyFile>, PipelineError> {
    Ok(match spool(curated, key).await? {
        Some(local) => codec::open_daily_file(local, key, MERGE_BATCH_ROWS).ok(),
        None => None,
    })
}

/// One date's rollup, as `need` says: reused, or recomputed from the
/// curated hits and written.
async fn rollup_date(
    curated: &dyn ObjectStore,
    dt: Date,
    visitors_hint: usize,
    need: Need,
) -> Result<RollupFile, PipelineError> {
    let key = layout::daily_rollup_key(dt);
    let stored = stored_daily_file(curated, &key).await?;
    if need == Need::AsStored
        && let Some(file) = stored
    {
        return Ok(RollupFile {
            date: dt,
            digest: file.sources.clone().unwrap_or_default(),
            key,
            file,
            rebuilt: false,
        });
    }
    let (sources, digest) = date_sources(curated, dt).await?;
    if let Some(file) = stored
        && file.sources.as_deref() == Some(&digest)
    {
        return Ok(RollupFile {
            date: dt,
            key,
            digest,
            file,
            rebuilt: false,
        });
    }
    rebuild_rollup(curated, dt, key, &sources, digest, visitors_hint).await
}

/// Recomputes a date's rollup from its curated hits and writes it.
async fn rebuild_rollup(
    curated: &dyn ObjectStore,
    dt: Date,
    key: String,
    sources: &[ObjectInfo],
    digest: String,
    visitors_hint: usize,
) -> Result<RollupFile, PipelineError> {
    // Sized like the previous date, so the map rarely grows (each growth
    // rehashes every entry).
    let mut day = DayCounts {
        visitors: VisitorMap::with_capacity(visitors_hint),
        counts: Vec::with_capacity(visitors_hint),
        to_local: Vec::new(),
    };
    for source in sources {
        let Some(file) = spool(curated, &source.key).await? else {
            continue; // deleted since the LIST: the next run sees a new digest
        };
        codec::for_each_hit_file_row(file, &source.key, &mut day)?;
    }
    let DayCounts {
        visitors, counts, ..
    } = day;
    let sorted = visitors.into_sorted();
    let batch = codec::daily_batch(
        sorted.iter().map(|(id, i)| {
            let [m, f] = counts[*i as usize];
            (id, m as i64, f as i64)
        }),
        &key,
    )?;
    drop(counts);
    drop(sorted);
    let body = codec::encode_daily_batch(&batch, &key, Some(&digest))?;
    drop(batch);
    // The merge reads it back from a local copy, like the rollups it reuses.
    let mut local = tempfile::tempfile().map_err(local_io(&key))?;
    local.write_all(&body).map_err(local_io(&key))?;
    local.rewind().map_err(local_io(&key))?;
    curated.put(&key, body).await?;
    let file = codec::open_daily_file(local, &key, MERGE_BATCH_ROWS)?;
    Ok(RollupFile {
        date: dt,
        key,
        digest,
        file,
        rebuilt: true,
    })
}

/// A rollup read batch by batch during the merge, its order checked.
struct Cursor {
    date: Date,
    key: String,
    role: MergeRole,
    file: DailyFile,
    batch: Option<(StringArray, Int64Array, Int64Array)>,
    row: usize,
    /// The last clientid of the previous batch, to check that the first
    /// row of the next is greater.
    last: String,
    rows: usize,
    hits: u64,
}

impl Cursor {
    fn open(rollup: RollupFile, role: MergeRole) -> Result<Cursor, PipelineError> {
        let mut cursor = Cursor {
            date: rollup.date,
            key: rollup.key,
            role,
            file: rollup.file,
            batch: None,
            row: 0,
            last: String::new(),
            rows: 0,
            hits: 0,
        };
        cursor.load()?;
        Ok(cursor)
    }

    fn bad(&self, detail: String) -> PipelineError {
        PipelineError::BadObject {
            key: self.key.clone(),
            detail,
        }
    }

    /// Moves to the next non-empty batch when the current one is used up,
    /// and checks the row it lands on.
    fn load(&mut self) -> Result<(), PipelineError> {
        while self
            .batch
            .as_ref()
            .is_none_or(|(ids, _, _)| self.row >= ids.len())
        {
            // The order check across batches compares with the batch's last id.
            if let Some((ids, _, _)) = &self.batch
                && !ids.is_empty()
            {
                self.last.clear();
                self.last.push_str(ids.value(ids.len() - 1));
            }
            self.row = 0;
            match self.file.reader.next() {
                None => {
                    self.batch = None;
                    return Ok(());
                }
                Some(batch) => {
                    let batch: RecordBatch = batch.map_err(|source| PipelineError::Arrow {
                        key: self.key.clone(),
                        source,
                    })?;
                    let column = |i: usize| batch.column(i).clone();
                    let ids = column(0).as_any().downcast_ref::<StringArray>().cloned();
                    let m = column(1).as_any().downcast_ref::<Int64Array>().cloned();
                    let f = column(2).as_any().downcast_ref::<Int64Array>().cloned();
                    let (Some(ids), Some(m), Some(f)) = (ids, m, f) else {
                        return Err(self.bad("not a daily rollup".into()));
                    };
                    if ids.null_count() + m.null_count() + f.null_count() > 0 {
                        return Err(self.bad("null values".into()));
                    }
                    self.batch = Some((ids, m, f));
                }
            }
        }
        let (ids, m, f) = self.batch.as_ref().expect("loaded above");
        let (id, m, f) = (ids.value(self.row), m.value(self.row), f.value(self.row));
        let previous = match self.row {
            0 => self.last.as_str(),
            row => ids.value(row - 1),
        };
        if self.rows > 0 && id <= previous {
            return Err(self.bad(format!(
                "not sorted by clientid at row {}: delete it and run again (it is rebuilt)",
                self.rows
            )));
        }
        if m < 0 || f < 0 {
            return Err(self.bad(format!("negative counts at row {}", self.rows)));
        }
        self.rows += 1;
        self.hits += (m + f) as u64;
        Ok(())
    }

    #[inline]
    fn current(&self) -> Option<(&str, i64, i64)> {
        let (ids, m, f) = self.batch.as_ref()?;
        Some((ids.value(self.row), m.value(self.row), f.value(self.row)))
    }

    fn advance(&mut self) -> Result<(), PipelineError> {
        self.row += 1;
        self.load()
    }
}

/// The k-way merge by clientid of a run's rollups.
struct WindowMerge {
    cursors: Vec<Cursor>,
    id: String,
}

impl WindowMerge {
    /// The next visitor with its old and new sums; `None` at the end.
    fn next(&mut self) -> Result<Option<(&str, MergedSums)>, PipelineError> {
        // One pass: the least clientid, and which cursors are on it.
        let mut min: Option<&str> = None;
        let mut on_min: u64 = 0;
        for (i, cursor) in self.cursors.iter().enumerate() {
            let Some((id, _, _)) = cursor.current() else {
                continue;
            };
            match min.map(|m| id.cmp(m)) {
                None | Some(std::cmp::Ordering::Less) => {
                    min = Some(id);
                    on_min = 1 << i;
                }
                Some(std::cmp::Ordering::Equal) => on_min |= 1 << i,
                Some(std::cmp::Ordering::Greater) => {}
            }
        }
        let Some(min) = min else { return Ok(None) };
        self.id.clear();
        self.id.push_str(min);
        let mut sums = MergedSums::default();
        // Signed: a rollup the window sums file counts comes off the new sums.
        let mut new = [0i64; 2];
        for (i, cursor) in self.cursors.iter_mut().enumerate() {
            if on_min & (1 << i) == 0 {
                continue;
            }
            let (_, m, f) = cursor.current().expect("on the least clientid");
            if cursor.role.old {
                sums.old = [sums.old[0] + m as u64, sums.old[1] + f as u64];
            }
            if cursor.role.new {
                new = [new[0] + m, new[1] + f];
            }
            if cursor.role.removes {
                new = [new[0] - m, new[1] - f];
            }
            sums.old_unknown |= cursor.role.changed;
            cursor.advance()?;
        }
        if new[0] < 0 || new[1] < 0 {
            return Err(PipelineError::BadObject {
                key: layout::DAILY_WINDOW_KEY.to_owned(),
                detail: format!(
                    "counts fewer hits for {} than the rollups it was computed from: it is emptied, and the next run merges every rollup",
                    self.id
                ),
            });
        }
        sums.new = [new[0] as u64, new[1] as u64];
        Ok(Some((&self.id, sums)))
    }
}

async fn load_state(curated: &dyn ObjectStore) -> Result<DailyState, PipelineError> {
    let key = layout::DAILY_APPLIED_KEY;
    match curated.get(key).await? {
        None => Ok(DailyState::default()),
        Some(bytes) => DailyState::from_json(&bytes).map_err(|detail| PipelineError::BadObject {
            key: key.to_owned(),
            detail,
        }),
    }
}

async fn save_state(curated: &dyn ObjectStore, state: &DailyState) -> Result<(), PipelineError> {
    curated
        .put(layout::DAILY_APPLIED_KEY, state.to_json())
        .await
        .map_err(Into::into)
}

/// The date an unfinished run was asked for, if one is unfinished: what a
/// continuation carries on.
pub async fn unfinished_request(curated: &dyn ObjectStore) -> Result<Option<Date>, PipelineError> {
    Ok(load_state(curated).await?.run.map(|run| run.requested))
}

/// Paces batches to a rate: a batch waits until the writes before it have
/// had their time, and idle time earns no burst.
struct Pace {
    per_second: f64,
    next: Instant,
}

impl Pace {
    async fn admit(&mut self, writes: usize) {
        tokio::time::sleep_until(self.next).await;
        self.next = self.next.max(Instant::now())
            + Duration::from_secs_f64(writes as f64 / self.per_second);
    }
}

/// The writes of one run: batched, paced, their progress saved.
struct Writes<'a> {
    curated: &'a dyn ObjectStore,
    windows: &'a dyn WindowStore,
    options: &'a DailyOptions<'a>,
    now_ms: i64,
    pace: Option<Pace>,
    /// The batch is `batch[..used]`; the entries after it keep their
    /// strings' memory for the next batch (no allocation per write).
    batch: Vec<(String, Option<WindowSums>)>,
    used: usize,
    batch_size: usize,
    saved_at: Instant,
}

impl<'a> Writes<'a> {
    fn new(
        curated: &'a dyn ObjectStore,
        windows: &'a dyn WindowStore,
        options: &'a DailyOptions<'a>,
        now_ms: i64,
    ) -> Writes<'a> {
        let batch_size = options.batch_size();
        Writes {
            curated,
            windows,
            options,
            now_ms,
            pace: options.writes_per_second.map(|rate| Pace {
                per_second: f64::from(rate.get()),
                next: Instant::now(),
            }),
            batch: Vec::with_capacity(batch_size),
            used: 0,
            batch_size,
            saved_at: Instant::now(),
        }
    }

    /// Adds a write to the batch; `true` when the batch is full.
    fn push(&mut self, id: &str, write: Option<WindowSums>) -> bool {
        match self.batch.get_mut(self.used) {
            Some(slot) => {
                slot.0.clear();
                slot.0.push_str(id);
                slot.1 = write;
            }
            None => self.batch.push((id.to_owned(), write)),
        }
        self.used += 1;
        self.used >= self.batch_size
    }

    /// Sends the batch; then saves the progress when due. On failure the
    /// progress up to the previous batch is saved and the error returned.
    async fn flush(
        &mut self,
        applied: &Option<AppliedWindows>,
        progress: &mut DailyProgress,
    ) -> Result<(), PipelineError> {
        if self.used == 0 {
            return Ok(());
        }
        let batch = &self.batch[..self.used];
        if let Some(pace) = &mut self.pace {
            pace.admit(batch.len()).await;
        }
        if let Err(e) = self.windows.set_windows(batch, self.now_ms).await {
            self.save(applied, progress).await?;
            return Err(e.into());
        }
        progress.written += batch.len() as u64;
        progress.cleared += batch.iter().filter(|(_, w)| w.is_none()).count() as u64;
        progress.after = batch.last().map(|(id, _)| id.clone());
        self.used = 0;
        if self.saved_at.elapsed() >= self.options.checkpoint_every {
            self.save(applied, progress).await?;
        }
        Ok(())
    }

    async fn save(
        &mut self,
        applied: &Option<AppliedWindows>,
        progress: &DailyProgress,
    ) -> Result<(), PipelineError> {
        let state = DailyState {
            applied: applied.clone(),
            run: Some(progress.clone()),
        };
        save_state(self.curated, &state).await?;
        self.saved_at = Instant::now();
        Ok(())
    }
}

enum Step {
    Done(DailySummary),
    Stopped(DailyStop),
}

fn stop_of(progress: &DailyProgress) -> DailyStop {
    DailyStop {
        date: progress.date.to_string(),
        requested: progress.requested.to_string(),
        windows_written: progress.written,
        signals_cleared: progress.cleared,
    }
}

/// The rollups a run merges, and what it knows of its window's dates
/// without reading their rollups.
struct MergeInputs {
    cursors: Vec<Cursor>,
    /// The digest of each date's rollup the run depends on (its `inputs`).
    digests: BTreeMap<Date, String>,
    /// Dates of the run's window whose rollups the merge does not read (the
    /// window sums file counts them, unchanged).
    unread: BTreeMap<Date, WindowRollup>,
    rebuilt: usize,
    /// The merge starts from the window sums file.
    from_window_file: bool,
}

enum Gathered {
    Ready(MergeInputs),
    Stopped(DailyStop),
}

/// Stops a run between two rollups: those rebuilt so far are kept, and the
/// run is recorded so that its continuation knows it is one.
async fn stop_between_rollups(
    curated: &dyn ObjectStore,
    state: &mut DailyState,
    date: Date,
    requested: Date,
) -> Result<Gathered, PipelineError> {
    let run = state
        .run
        .get_or_insert_with(|| start_progress(None, date, requested, String::new()));
    run.requested = requested;
    let stop = stop_of(run);
    save_state(curated, state).await?;
    Ok(Gathered::Stopped(stop))
}

/// Every rollup of the applied window and of the run's, as they are now.
async fn gather_rollups(
    curated: &dyn ObjectStore,
    state: &mut DailyState,
    date: Date,
    requested: Date,
    options: &DailyOptions<'_>,
) -> Result<Gathered, PipelineError> {
    let applied = state.applied.clone();
    let dates = merge_dates(date, applied.as_ref());
    let window = window_dates(date);
    let mut rollups = Vec::with_capacity(dates.len());
    let mut hint = 0;
    for (i, &dt) in dates.iter().enumerate() {
        let need = if window.contains(&dt) {
            Need::Current
        } else {
            Need::AsStored
        };
        let rollup = rollup_date(curated, dt, hint, need).await?;
        hint = rollup.file.rows;
        let rebuilt = rollup.rebuilt;
        rollups.push(rollup);
        if rebuilt && i + 1 < dates.len() && options.stop_now() {
            return stop_between_rollups(curated, state, date, requested).await;
        }
    }
    let digests = rollups.iter().map(|r| (r.date, r.digest.clone())).collect();
    let rebuilt = rollups.iter().filter(|r| r.rebuilt).count();
    let cursors = rollups
        .into_iter()
        .map(|rollup| {
            let role = merge_role(rollup.date, date, applied.as_ref(), &rollup.digest);
            Cursor::open(rollup, role)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Gathered::Ready(MergeInputs {
        cursors,
        digests,
        unread: BTreeMap::new(),
        rebuilt,
        from_window_file: false,
    }))
}

/// The inputs of a run that starts from the window sums file: the file, the
/// rollups of the dates that entered the window (added) and left it (taken
/// off), and for a date whose curated hits changed since, its old rollup
/// (taken off) and its new one (added). `None` when the file does not hold
/// the applied window, or a rollup it counted is no longer what it counted:
/// the run then merges every rollup instead.
async fn gather_from_window_file(
    curated: &dyn ObjectStore,
    state: &mut DailyState,
    date: Date,
    requested: Date,
    options: &DailyOptions<'_>,
) -> Result<Option<Gathered>, PipelineError> {
    let Some(applied) = state.applied.clone() else {
        return Ok(None);
    };
    let Some(file) = stored_daily_file(curated, layout::DAILY_WINDOW_KEY).await? else {
        return Ok(None);
    };
    let Some(meta) = file.window.as_deref().and_then(WindowFileMeta::from_json) else {
        return Ok(None);
    };
    if !meta.holds(&applied) {
        return Ok(None);
    }
    // Every rollup the file counted must be the very object it counted.
    let versions = rollup_versions(curated).await?;
    let replaced = meta
        .rollups
        .iter()
        .any(|(dt, counted)| versions.get(dt) != Some(&counted.version));
    if replaced {
        return Ok(None);
    }
    let adds = MergeRole {
        old: false,
        new: true,
        changed: false,
        removes: false,
    };
    let takes_off = MergeRole {
        new: false,
        removes: true,
        ..adds
    };
    let window = window_dates(date);
    let dates = merge_dates(date, Some(&applied));
    let mut rollups: Vec<(RollupFile, MergeRole)> = Vec::new();
    let mut digests = BTreeMap::new();
    let mut unread = BTreeMap::new();
    let mut hint = meta.rollups.values().map(|r| r.visitors).max().unwrap_or(0);
    for (i, &dt) in dates.iter().enumerate() {
        let rebuilt = match (meta.rollups.get(&dt), window.contains(&dt)) {
            (Some(counted), true) => {
                let (sources, digest) = date_sources(curated, dt).await?;
                if digest == counted.digest {
                    digests.insert(dt, digest);
                    unread.insert(dt, counted.clone());
                    continue;
                }
                let key = layout::daily_rollup_key(dt);
                let Some(previous) = stored_daily_file(curated, &key).await? else {
                    return Ok(None);
                };
                if previous.sources.as_deref() != Some(counted.digest.as_str()) {
                    return Ok(None);
                }
                let old = RollupFile {
                    date: dt,
                    key: key.clone(),
                    digest: counted.digest.clone(),
                    file: previous,
                    rebuilt: false,
                };
                rollups.push((old, takes_off));
                let current = rebuild_rollup(curated, dt, key, &sources, digest, hint).await?;
                digests.insert(dt, current.digest.clone());
                rollups.push((current, adds));
                true
            }
            (Some(counted), false) => {
                let rollup = rollup_date(curated, dt, hint, Need::AsStored).await?;
                if rollup.digest != counted.digest {
                    return Ok(None);
                }
                digests.insert(dt, rollup.digest.clone());
                let rebuilt = rollup.rebuilt;
                rollups.push((rollup, takes_off));
                rebuilt
            }
            (None, _) => {
                let rollup = rollup_date(curated, dt, hint, Need::Current).await?;
                hint = rollup.file.rows;
                digests.insert(dt, rollup.digest.clone());
                let rebuilt = rollup.rebuilt;
                rollups.push((rollup, adds));
                rebuilt
            }
        };
        if rebuilt && i + 1 < dates.len() && options.stop_now() {
            return stop_between_rollups(curated, state, date, requested)
                .await
                .map(Some);
        }
    }
    let rebuilt = rollups.iter().filter(|(r, _)| r.rebuilt).count();
    let window_file = RollupFile {
        date: applied.date,
        key: layout::DAILY_WINDOW_KEY.to_owned(),
        digest: String::new(),
        file,
        rebuilt: false,
    };
    let counted = MergeRole {
        old: true,
        new: true,
        changed: false,
        removes: false,
    };
    let cursors = std::iter::once((window_file, counted))
        .chain(rollups)
        .map(|(rollup, role)| Cursor::open(rollup, role))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Gathered::Ready(MergeInputs {
        cursors,
        digests,
        unread,
        rebuilt,
        from_window_file: true,
    })))
}

/// The version of each date's stored rollup (one LIST).
async fn rollup_versions(
    curated: &dyn ObjectStore,
) -> Result<BTreeMap<Date, String>, PipelineError> {
    Ok(curated
        .list_info(layout::CURATED_DAILY_PREFIX)
        .await?
        .into_iter()
        .filter_map(|o| {
            let dt = layout::date_of_key(&o.key)?;
            (o.key == layout::daily_rollup_key(dt)).then_some((dt, o.version))
        })
        .collect())
}

/// Writes the window sums file; a failure only costs the next run its
/// shortcut (the file left in place does not hold the window applied now).
async fn put_window_file(
    curated: &dyn ObjectStore,
    writer: codec::WindowFileWriter,
    meta: &WindowFileMeta,
) {
    let key = layout::DAILY_WINDOW_KEY;
    let put = async {
        let temp = writer.finish(meta.to_json())?;
        curated.put_file(key, temp.path()).await?;
        Ok::<_, PipelineError>(())
    };
    if let Err(error) = put.await {
        tracing::warn!(%error, key, "the window sums file was not written: the next daily run merges every rollup");
    }
}

/// Brings the store from the applied window to the window ending on `date`.
async fn run_window(
    curated: &dyn ObjectStore,
    windows: &dyn WindowStore,
    state: &mut DailyState,
    date: Date,
    requested: Date,
    now_ms: i64,
    options: &DailyOptions<'_>,
) -> Result<Step, PipelineError> {
    let applied = state.applied.clone();
    let window = window_dates(date);
    let started = Instant::now();
    let from_file = match options.window_file {
        true => gather_from_window_file(curated, state, date, requested, options).await?,
        false => None,
    };
    let gathered = match from_file {
        Some(gathered) => gathered,
        None => gather_rollups(curated, state, date, requested, options).await?,
    };
    let inputs = match gathered {
        Gathered::Ready(inputs) => inputs,
        Gathered::Stopped(stop) => return Ok(Step::Stopped(stop)),
    };
    let MergeInputs {
        cursors,
        digests,
        unread,
        rebuilt,
        from_window_file,
    } = inputs;
    let inputs = inputs_digest(date, applied.as_ref(), &digests);
    let mut progress = start_progress(state.run.take(), date, requested, inputs);
    if progress.after.is_some() {
        tracing::info!(%date, written = progress.written, "resuming the writes of a stopped run");
    }
    let rollups_ready = started.elapsed();
    let mut merge = WindowMerge {
        cursors,
        id: String::new(),
    };
    let mut window_file = match options.window_file {
        true => Some(codec::WindowFileWriter::create(
            layout::DAILY_WINDOW_KEY,
            MERGE_BATCH_ROWS,
        )?),
        false => None,
    };
    let mut writes = Writes::new(curated, windows, options, now_ms);
    // Recorded before the first write: should the run die before its first
    // checkpoint, the next run knows the store may hold this window in part.
    writes.save(&applied, &progress).await?;
    let mut visitors_in_window = 0;
    loop {
        let next = match merge.next() {
            Ok(next) => next,
            Err(e) => {
                // A rollup broke its promises midway (unsorted, unreadable):
                // what was written from it may be wrong, so the progress is
                // abandoned, and the next run writes every clientid up to the
                // last one written whatever its sums. Nor is the window sums
                // file trusted again: it is emptied (an empty object is not
                // Parquet, so the next run merges every rollup), which needs
                // no permission to delete beside the one to write.
                progress.inputs = String::new();
                writes.save(&applied, &progress).await?;
                if from_window_file
                    && let Err(error) = curated.put(layout::DAILY_WINDOW_KEY, Vec::new()).await
                {
                    tracing::warn!(%error, "the window sums file could not be emptied");
                }
                return Err(e);
            }
        };
        let Some((id, mut sums)) = next else { break };
        if sums.new != [0, 0] {
            visitors_in_window += 1;
            if let Some(file) = &mut window_file {
                file.push(id, sums.new[0] as i64, sums.new[1] as i64)?;
            }
        }
        if progress.after.as_deref().is_some_and(|done| id <= done) {
            continue;
        }
        sums.old_unknown |= progress.unknown_upto.as_deref().is_some_and(|u| id <= u);
        let Some(write) = window_write(&sums, date) else {
            continue;
        };
        if writes.push(id, write) {
            writes.flush(&applied, &mut progress).await?;
            if options.stop_now() {
                writes.save(&applied, &progress).await?;
                tracing::info!(%date, %requested, written = progress.written, "daily run stopped, progress saved");
                return Ok(Step::Stopped(stop_of(&progress)));
            }
        }
    }
    writes.flush(&applied, &mut progress).await?;
    let merged = started.elapsed();

    let mut summaries: BTreeMap<Date, RollupSummary> = unread
        .into_iter()
        .map(|(dt, r)| {
            let summary = RollupSummary {
                date: dt.to_string(),
                visitors: r.visitors,
                hits: r.hits,
            };
            (dt, summary)
        })
        .collect();
    for cursor in &merge.cursors {
        if cursor.role.new && cursor.key != layout::DAILY_WINDOW_KEY {
            let summary = RollupSummary {
                date: cursor.date.to_string(),
                visitors: cursor.rows,
                hits: cursor.hits,
            };
            summaries.insert(cursor.date, summary);
        }
    }
    if let Some(file) = window_file {
        let versions = rollup_versions(curated).await?;
        let rollups = window
            .iter()
            .map(|dt| {
                let summary = &summaries[dt];
                let rollup = WindowRollup {
                    digest: digests[dt].clone(),
                    version: versions.get(dt).cloned().unwrap_or_default(),
                    visitors: summary.visitors,
                    hits: summary.hits,
                };
                (*dt, rollup)
            })
            .collect();
        put_window_file(curated, file, &WindowFileMeta::new(date, rollups)).await;
    }
    state.applied = Some(AppliedWindows {
        date,
        rollups: window.iter().map(|dt| (*dt, digests[dt].clone())).collect(),
    });
    state.run = None;
    save_state(curated, state).await?;
    let cursors_read = merge.cursors.len();
    tracing::info!(
        %date,
        visitors = visitors_in_window,
        windows_written = progress.written,
        signals_cleared = progress.cleared,
        files_merged = cursors_read,
        from_window_file,
        rollups_recomputed = rebuilt,
        rollups_ms = rollups_ready.as_millis() as u64,
        merge_and_writes_ms = (merged - rollups_ready).as_millis() as u64,
        total_ms = started.elapsed().as_millis() as u64,
        "daily run finished"
    );
    Ok(Step::Done(DailySummary {
        date: date.to_string(),
        window_from: window[0].to_string(),
        window_to: date.to_string(),
        rollups: summaries.into_values().collect(),
        visitors_in_window,
        // Every visitor of the window has its signal (written now or
        // already equal), so a re-run reports the same.
        signals_set: visitors_in_window,
        signals_cleared: progress.cleared as usize,
    }))
}

/// The daily job for `date`, writing as `options` say. An unfinished run of
/// another date (stopped, or failed) is finished first: until it is, the
/// store holds a mix of two windows.
pub async fn run_daily_with(
    curated: &dyn ObjectStore,
    windows: &dyn WindowStore,
    date: Date,
    now_ms: i64,
    options: &DailyOptions<'_>,
) -> Result<DailyRun, PipelineError> {
    let mut state = load_state(curated).await?;
    loop {
        let target = match &state.run {
            Some(run) if run.date != date => {
                tracing::info!(unfinished = %run.date, %date, "finishing an unfinished daily run first");
                run.date
            }
            _ => date,
        };
        match run_window(curated, windows, &mut state, target, date, now_ms, options).await? {
            Step::Stopped(stop) => return Ok(DailyRun::Stopped(stop)),
            Step::Done(summary) if target == date => return Ok(DailyRun::Complete(summary)),
            Step::Done(_) => {}
        }
    }
}

/// The daily job for `date` to its end, as fast as the store takes the
/// writes (the local deployment).
pub async fn run_daily(
    curated: &dyn ObjectStore,
    windows: &dyn WindowStore,
    date: Date,
    now_ms: i64,
) -> Result<DailySummary, PipelineError> {
    let options = DailyOptions::default();
    // Without `should_stop` a run never stops, so this loop turns once.
    loop {
        if let DailyRun::Complete(summary) =
            run_daily_with(curated, windows, date, now_ms, &options).await?
        {
            return Ok(summary);
        }
    }
}
