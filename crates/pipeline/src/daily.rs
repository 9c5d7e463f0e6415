//! The daily job (SPEC 7): rollups for `D-6 ..= D` from curated hits, then
//! the 7-day window sums set or cleared per visitor. Only overwrites, so a
//! re-run gives identical results.
//!
//! Incremental: each rollup records in its Parquet key-value metadata a
//! digest of the curated hits objects it was built from (key, size and
//! version of each, from one LIST of the date's prefix). A date whose LIST
//! still gives that digest keeps its rollup; only dates that received (or
//! lost, or had replaced) curated objects are recomputed, and those are read
//! one row group at a time. Memory holds the visitors of the window (each
//! clientid once, with its counts), never the hits.

use crate::{PipelineError, codec};
use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use bytes::Bytes;
use gender_core::daily::RollupSummary;
use gender_core::ports::{ObjectInfo, ObjectStore, WindowStore};
use gender_core::{DailySummary, Date, Gender, VisitorMap, WindowSums, layout, window_dates};
use sha2::{Digest, Sha256};
use std::cmp::Ordering;
use std::io::{Seek, Write};

/// One date's rollup in memory: rows sorted by clientid, in batches.
struct Rollup {
    batches: Vec<RecordBatch>,
}

impl Rollup {
    fn columns(batch: &RecordBatch) -> (&StringArray, &Int64Array, &Int64Array) {
        let col = |i: usize| batch.column(i);
        (
            col(0).as_any().downcast_ref().expect("validated at load"),
            col(1).as_any().downcast_ref().expect("validated at load"),
            col(2).as_any().downcast_ref().expect("validated at load"),
        )
    }

    /// Rows and hits, if the rows are strictly sorted by clientid (what the
    /// window merge needs); `None` otherwise.
    fn check(&self) -> Option<(usize, u64)> {
        let (mut rows, mut hits) = (0, 0u64);
        let mut last: Option<&str> = None;
        for batch in &self.batches {
            let (ids, m, f) = Rollup::columns(batch);
            if ids.null_count() + m.null_count() + f.null_count() > 0 {
                return None;
            }
            for i in 0..batch.num_rows() {
                let id = ids.value(i);
                if last.is_some_and(|l| l >= id) || m.value(i) < 0 || f.value(i) < 0 {
                    return None;
                }
                last = Some(id);
                hits += (m.value(i) + f.value(i)) as u64;
            }
            rows += batch.num_rows();
        }
        Some((rows, hits))
    }
}

/// A position in a rollup during the window merge.
struct Cursor<'a> {
    batches: &'a [RecordBatch],
    batch: usize,
    row: usize,
}

impl<'a> Cursor<'a> {
    fn new(rollup: &'a Rollup) -> Cursor<'a> {
        let mut cursor = Cursor {
            batches: &rollup.batches,
            batch: 0,
            row: 0,
        };
        cursor.skip_empty();
        cursor
    }

    fn skip_empty(&mut self) {
        while self.batch < self.batches.len() && self.row >= self.batches[self.batch].num_rows() {
            self.batch += 1;
            self.row = 0;
        }
    }

    #[inline]
    fn current(&self) -> Option<(&'a str, i64, i64)> {
        let batch = self.batches.get(self.batch)?;
        let (ids, m, f) = Rollup::columns(batch);
        Some((ids.value(self.row), m.value(self.row), f.value(self.row)))
    }

    #[inline]
    fn advance(&mut self) {
        self.row += 1;
        self.skip_empty();
    }
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

/// Copies an object into an anonymous local file (read one chunk at a time).
async fn spool(store: &dyn ObjectStore, key: &str) -> Result<Option<std::fs::File>, PipelineError> {
    let Some(mut body) = store.get_stream(key).await? else {
        return Ok(None);
    };
    let io = |e: std::io::Error| PipelineError::BadObject {
        key: key.to_owned(),
        detail: format!("local temporary file: {e}"),
    };
    let mut file = tempfile::tempfile().map_err(io)?;
    while let Some(chunk) = body.next_chunk().await? {
        file.write_all(&chunk).map_err(io)?;
    }
    file.rewind().map_err(io)?;
    Ok(Some(file))
}

/// One date's rollup: still current (its recorded sources match a fresh
/// LIST), or recomputed from the curated hits and written.
async fn rollup_date(
    curated: &dyn ObjectStore,
    dt: Date,
    visitors_hint: usize,
) -> Result<(Rollup, RollupSummary, bool), PipelineError> {
    let sources: Vec<ObjectInfo> = curated
        .list_info(&layout::curated_hits_prefix(dt))
        .await?
        .into_iter()
        .filter(|o| o.key.ends_with(".parquet"))
        .collect();
    let digest = sources_digest(&sources);
    let key = layout::daily_rollup_key(dt);
    let summary = |visitors: usize, hits: u64| RollupSummary {
        date: dt.to_string(),
        visitors,
        hits,
    };

    if let Some(bytes) = curated.get(&key).await? {
        let bytes = Bytes::from(bytes);
        // An unreadable, foreign or unsorted rollup is simply rebuilt.
        if codec::daily_sources(&bytes, &key).ok().flatten().as_deref() == Some(&digest)
            && let Ok(batches) = codec::daily_batches(bytes, &key)
        {
            let rollup = Rollup { batches };
            if let Some((rows, hits)) = rollup.check() {
                return Ok((rollup, summary(rows, hits), false));
            }
        }
    }

    // Sized like the previous date, so the map rarely grows (each growth
    // rehashes every entry).
    let mut day = DayCounts {
        visitors: VisitorMap::with_capacity(visitors_hint),
        counts: Vec::with_capacity(visitors_hint),
        to_local: Vec::new(),
    };
    for source in &sources {
        let Some(file) = spool(curated, &source.key).await? else {
            continue; // deleted since the LIST: the next run sees a new digest
        };
        codec::for_each_hit_file_row(file, &source.key, &mut day)?;
    }
    let DayCounts {
        visitors, counts, ..
    } = day;
    let sorted = visitors.into_sorted();
    let hits = counts.iter().map(|[m, f]| m + f).sum();
    let batch = codec::daily_batch(
        sorted.iter().map(|(id, i)| {
            let [m, f] = counts[*i as usize];
            (id.as_str(), m as i64, f as i64)
        }),
        &key,
    )?;
    drop(counts);
    let rows = batch.num_rows();
    let body = codec::encode_daily_batch(&batch, &key, Some(&digest))?;
    drop(sorted);
    curated.put(&key, body).await?;
    Ok((
        Rollup {
            batches: vec![batch],
        },
        summary(rows, hits),
        true,
    ))
}

/// The writes that bring the stored windows (`stored`, sorted by clientid)
/// to `window` (sorted): new or changed sums are set, sums of visitors
/// without hits in the window are cleared, equal sums are left alone (their
/// stored window date stays that of the run that last changed them). At
/// 1,000 hits/s this is the difference between writing every visitor of the
/// window every day and writing the few million whose sums moved. Returns
/// the writes and how many of them are clears.
fn changed_windows(
    window: Vec<(String, Option<WindowSums>)>,
    stored: &[(String, WindowSums)],
) -> (Vec<(String, Option<WindowSums>)>, usize) {
    let mut writes: Vec<(String, Option<WindowSums>)> = Vec::new();
    let mut cleared = 0;
    let mut old = stored.iter().peekable();
    for (id, sums) in window {
        // Stored windows of visitors without hits in the window: cleared.
        while let Some((old_id, _)) = old.next_if(|(old_id, _)| old_id.as_str() < id.as_str()) {
            writes.push((old_id.clone(), None));
            cleared += 1;
        }
        let unchanged = match (old.next_if(|(old_id, _)| *old_id == id), sums) {
            (Some((_, before)), Some(now)) => before.m == now.m && before.f == now.f,
            _ => false,
        };
        if !unchanged {
            writes.push((id, sums));
        }
    }
    for (old_id, _) in old {
        writes.push((old_id.clone(), None));
        cleared += 1;
    }
    (writes, cleared)
}

/// The window sums of every visitor with hits in the window, sorted by
/// clientid: a merge of the sorted rollups.
fn merge_window(rollups: &[Rollup], date: Date) -> Vec<(String, Option<WindowSums>)> {
    let mut cursors: Vec<Cursor> = rollups.iter().map(Cursor::new).collect();
    let mut out = Vec::new();
    loop {
        let mut min: Option<&str> = None;
        for cursor in &cursors {
            if let Some((id, _, _)) = cursor.current()
                && min.is_none_or(|m| id.cmp(m) == Ordering::Less)
            {
                min = Some(id);
            }
        }
        let Some(min) = min else { break };
        let (mut m, mut f) = (0u64, 0u64);
        for cursor in &mut cursors {
            if let Some((id, cm, cf)) = cursor.current()
                && id == min
            {
                m += cm as u64;
                f += cf as u64;
                cursor.advance();
            }
        }
        if m + f > 0 {
            out.push((min.to_owned(), Some(WindowSums { m, f, date })));
        }
    }
    out
}

pub async fn run_daily(
    curated: &dyn ObjectStore,
    windows: &dyn WindowStore,
    date: Date,
    now_ms: i64,
) -> Result<DailySummary, PipelineError> {
    let dates = window_dates(date);
    let mut rollups = Vec::with_capacity(dates.len());
    let mut summaries = Vec::with_capacity(dates.len());
    let mut recomputed = 0;
    for &dt in &dates {
        let hint = summaries.last().map_or(0, |s: &RollupSummary| s.visitors);
        let (rollup, summary, rebuilt) = rollup_date(curated, dt, hint).await?;
        recomputed += usize::from(rebuilt);
        rollups.push(rollup);
        summaries.push(summary);
    }

    let window = merge_window(&rollups, date);
    drop(rollups);
    let visitors_in_window = window.len();
    let mut stored = windows.stored_windows().await?;
    stored.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let (updates, signals_cleared) = changed_windows(window, &stored);
    drop(stored);
    let windows_written = updates.len() - signals_cleared;
    windows.set_windows(&updates, now_ms).await?;
    tracing::info!(%date, visitors = visitors_in_window, windows_written, signals_cleared, rollups_recomputed = recomputed, "daily run finished");

    Ok(DailySummary {
        date: date.to_string(),
        window_from: dates[0].to_string(),
        window_to: date.to_string(),
        rollups: summaries,
        visitors_in_window,
        // Every visitor of the window has its signal (written now or
        // already equal), so a re-run reports the same.
        signals_set: visitors_in_window,
        signals_cleared,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums(m: u64, f: u64, day: i32) -> WindowSums {
        WindowSums {
            m,
            f,
            date: Date::from_days(day),
        }
    }

    #[test]
    fn only_new_changed_and_vanished_windows_are_written() {
        let stored = vec![
            ("a".to_owned(), sums(1, 0, 1)), // unchanged
            ("b".to_owned(), sums(2, 0, 1)), // changed
            ("c".to_owned(), sums(1, 1, 1)), // no hits in the window any more
            ("e".to_owned(), sums(0, 3, 1)), // after the last new one: cleared
        ];
        let window = vec![
            ("a".to_owned(), Some(sums(1, 0, 2))),
            ("b".to_owned(), Some(sums(2, 1, 2))),
            ("d".to_owned(), Some(sums(0, 1, 2))), // new
        ];
        let (writes, cleared) = changed_windows(window, &stored);
        assert_eq!(
            writes,
            [
                ("b".to_owned(), Some(sums(2, 1, 2))),
                ("c".to_owned(), None),
                ("d".to_owned(), Some(sums(0, 1, 2))),
                ("e".to_owned(), None),
            ]
        );
        assert_eq!(cleared, 2);
        let (again, _) = changed_windows(vec![("a".to_owned(), Some(sums(1, 0, 2)))], &stored[..1]);
        assert!(again.is_empty(), "a re-run writes nothing");
    }
}
