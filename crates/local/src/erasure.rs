//! Erasure of visitors in the local deployment (SPEC 17).
//!
//! `DELETE /visitors/{clientid}` records a pending erasure in the state
//! store with the log's durable end at that moment: every hit of the
//! visitor accepted before the request lies below that offset. Delivery
//! then delivers and curates up to exactly that offset and no further,
//! carries out the erasure ([`erase_visitors`]) while nothing newer is
//! curated, and only then goes on. So the erasure removes exactly the hits
//! accepted before the request, and hits accepted after it are counted
//! afresh.
//!
//! Carrying it out: the profiles go first (one transaction), then each date
//! of curated hits whose files hold the visitors is rewritten without them
//! and swapped in atomically like compaction, each daily rollup holding
//! them is rewritten (write and rename), and so is each raw object; last,
//! the erasures are marked complete and their clientids dropped, in one
//! transaction. A crash anywhere redoes the erasure from the start: a file
//! already rewritten has no rows left to remove, so the redo changes only
//! what the crash left undone.

use crate::error::CycleError;
use async_trait::async_trait;
use gender_core::erasure::{clientid_hash, new_erasure_id};
use gender_core::ports::Erasures;
use gender_core::{Date, ErasureRecord, ErasureStatus, PortError, layout};
use gender_embedded::partitions::{
    date_partitions, log_range_files, place_file, replace_partition,
};
use gender_embedded::{DirObjectStore, LogReader, StateStore};
use gender_pipeline::erase::{
    Visitors, hits_file_without_visitors, raw_without_visitors, rollup_without_visitors,
};
use std::path::Path;

/// The local [`Erasures`] port: requests go to the state store's erasure log.
pub struct LocalErasures {
    state: StateStore,
    log: LogReader,
    salt: Vec<u8>,
}

impl LocalErasures {
    /// Reads the deployment's salt (drawn and stored on first start).
    pub fn open(
        state: StateStore,
        log: LogReader,
    ) -> Result<LocalErasures, gender_embedded::EmbeddedError> {
        let mut candidate = [0u8; 32];
        getrandom::fill(&mut candidate).expect("the OS random source is available");
        let salt = state.erasure_salt_blocking(&candidate)?;
        Ok(LocalErasures { state, log, salt })
    }
}

fn unavailable(e: gender_embedded::EmbeddedError) -> PortError {
    PortError::unavailable("erasure log", e)
}

#[async_trait]
impl Erasures for LocalErasures {
    async fn request_erasure(
        &self,
        clientid: &str,
        now_ms: i64,
    ) -> Result<ErasureRecord, PortError> {
        let mut random = [0u8; 16];
        getrandom::fill(&mut random)
            .map_err(|e| PortError::unavailable("random id", e.to_string()))?;
        let record = ErasureRecord {
            id: new_erasure_id(random),
            status: ErasureStatus::Pending,
            requested_ms: now_ms,
            completed_ms: None,
            clientid_hash: clientid_hash(&self.salt, clientid),
        };
        // Every hit acknowledged before this request is durable below here.
        let log_offset = self.log.durable_end();
        let state = self.state.clone();
        let (stored, clientid) = (record.clone(), clientid.to_owned());
        tokio::task::spawn_blocking(move || {
            state.record_erasure_blocking(&stored, &clientid, log_offset)
        })
        .await
        .map_err(|e| PortError::unavailable("erasure log", e))?
        .map_err(unavailable)?;
        tracing::info!(erasure_id = %record.id, log_offset, "erasure requested");
        Ok(record)
    }

    async fn erasure(&self, id: &str) -> Result<Option<ErasureRecord>, PortError> {
        let state = self.state.clone();
        let id = id.to_owned();
        tokio::task::spawn_blocking(move || state.erasure_blocking(&id))
            .await
            .map_err(|e| PortError::unavailable("erasure log", e))?
            .map_err(unavailable)
    }
}

/// What one pass of [`erase_visitors`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Erased {
    pub curated_rows: u64,
    pub curated_files_rewritten: u64,
    pub rollups_rewritten: u64,
    pub raw_lines: u64,
}

/// A visitor to erase from the data delivered before `log_offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub clientid: String,
    pub log_offset: u64,
}

/// The visitors whose erasure covers an object holding the log range
/// ending at `end`: everything in it was accepted before their request.
fn covering(targets: &[Target], end: u64) -> Visitors {
    Visitors::new(
        targets
            .iter()
            .filter(|t| end <= t.log_offset)
            .map(|t| t.clientid.as_str()),
    )
}

/// Removes the rows of `targets` from the curated hits files, daily rollups
/// and raw objects under `store`'s root that hold only hits delivered before
/// each target's offset. Blocking, and it runs while delivery goes on: files
/// delivered later are left alone (their hits came after the request); a
/// date's new set of files is swapped in while holding `swaps`, which
/// delivery holds while it writes curated files, so no new file is lost in
/// a swap. The caller holds the curated lock
/// ([`CuratedLock`](crate::housekeeping::CuratedLock)), which keeps the
/// daily job, compaction and retention away meanwhile.
pub fn erase_visitors(
    store: &DirObjectStore,
    targets: &[Target],
    swaps: &tokio::sync::Mutex<()>,
) -> Result<Erased, CycleError> {
    let root = store.root();
    let mut erased = Erased::default();
    let everyone = covering(targets, 0);
    let curated_dates = date_partitions(&root.join(layout::CURATED_HITS_PREFIX))?;
    for (date, dir) in &curated_dates {
        erase_from_date(store, *date, dir, targets, &everyone, swaps, &mut erased)?;
    }
    // A rollup whose curated hits retention already deleted may still hold
    // the visitors (retention keeps rollups apart from curated hits).
    for (date, _) in date_partitions(&root.join(layout::CURATED_DAILY_PREFIX))? {
        if !curated_dates.iter().any(|(d, _)| *d == date) {
            erase_from_rollup(store, date, &everyone, &mut erased)?;
        }
    }
    // The daily job's window sums file holds every visitor of the window:
    // without it the next run merges every rollup (rewritten above).
    store.delete_durably_blocking(layout::DAILY_WINDOW_KEY)?;
    for key in store.list_blocking(layout::RAW_PREFIX)? {
        let Some((_, end)) = layout::log_range(&key) else {
            continue;
        };
        let visitors = covering(targets, end);
        if !visitors.is_empty() {
            erase_from_raw(store, &key, &visitors, &mut erased)?;
        }
    }
    Ok(erased)
}

/// Daily rollups are only written by the daily job, which waits. One
/// holding the visitors is rewritten without them (any of their hits,
/// should the daily job have run after a request) and without its record
/// of sources, so the next daily run rebuilds it from the curated files,
/// where hits accepted after the request are still there.
fn erase_from_rollup(
    store: &DirObjectStore,
    date: Date,
    visitors: &Visitors,
    erased: &mut Erased,
) -> Result<(), CycleError> {
    let key = layout::daily_rollup_key(date);
    if let Some(bytes) = store.get_blocking(&key)?
        && let Some(rewritten) = rollup_without_visitors(bytes.into(), &key, visitors, false)?
    {
        store.put_blocking(&key, &rewritten)?;
        erased.rollups_rewritten += 1;
    }
    Ok(())
}

/// Rewrites the files of one date that hold rows of the targets, then swaps
/// the date's new set of files in atomically. A date's rollup is built from
/// its curated files, so only a date whose files hold the visitors can have
/// them in its rollup; that rollup is rewritten before the files are
/// swapped, so a crash in between leaves the files to find again.
fn erase_from_date(
    store: &DirObjectStore,
    date: Date,
    dir: &Path,
    targets: &[Target],
    everyone: &Visitors,
    swaps: &tokio::sync::Mutex<()>,
    erased: &mut Erased,
) -> Result<(), CycleError> {
    let mut rewritten = Vec::new();
    let mut rows = 0;
    for file in log_range_files(dir)? {
        let Some((_, end)) = layout::log_range(&file.name) else {
            continue;
        };
        let visitors = covering(targets, end);
        if visitors.is_empty() {
            continue;
        }
        let key = layout::curated_hits_file_key(date, &file.name);
        let Some((out, removed)) = hits_file_without_visitors(&file.path, &key, &visitors)? else {
            continue;
        };
        rows += removed;
        rewritten.push((file.name, out));
    }
    if rewritten.is_empty() {
        return Ok(());
    }
    erase_from_rollup(store, date, everyone, erased)?;
    // Only the swap waits for delivery's curated writes (and holds them).
    let _no_writes = swaps.blocking_lock();
    let kept: Vec<String> = log_range_files(dir)?
        .into_iter()
        .map(|f| f.name)
        .filter(|name| !rewritten.iter().any(|(r, _)| r == name))
        .collect();
    let kept: Vec<&str> = kept.iter().map(String::as_str).collect();
    replace_partition(store.root(), dir, &kept, |staging| {
        for (name, out) in &rewritten {
            place_file(out.temp.path(), &staging.join(name))?;
        }
        Ok::<_, CycleError>(())
    })?;
    erased.curated_rows += rows;
    erased.curated_files_rewritten += rewritten.len() as u64;
    Ok(())
}

/// Rewrites a raw NDJSON object without the visitors' lines.
fn erase_from_raw(
    store: &DirObjectStore,
    key: &str,
    visitors: &Visitors,
    erased: &mut Erased,
) -> Result<(), CycleError> {
    let Some(body) = store.get_blocking(key)? else {
        return Ok(());
    };
    if let Some((kept, removed)) = raw_without_visitors(&body, visitors) {
        store.put_blocking(key, &kept)?;
        erased.raw_lines += removed;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_is_erased_for_the_requests_that_came_after_all_its_hits() {
        let targets = [
            Target {
                clientid: "early".into(),
                log_offset: 50,
            },
            Target {
                clientid: "late".into(),
                log_offset: 100,
            },
        ];
        let at_40 = covering(&targets, 40);
        assert!(at_40.contains("early") && at_40.contains("late"));
        let at_90 = covering(&targets, 90);
        assert!(
            !at_90.contains("early") && at_90.contains("late"),
            "hits after the first request"
        );
        assert!(covering(&targets, 101).is_empty());
    }
}
