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
use bytes::Bytes;
use gender_core::daily::RollupSummary;
use gender_core::ports::{ObjectInfo, ObjectStore, WindowStore};
use gender_core::{DailySummary, Date, Gender, WindowSums, layout, window_dates};
use rustc_hash::FxHashMap;
use sha2::{Digest, Sha256};
use std::io::{Seek, Write};

/// Every visitor of the window once, with its window sums.
#[derive(Default)]
struct Window {
    index: FxHashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
    sums: Vec<[u64; 2]>,
}

impl Window {
    #[inline]
    fn intern(&mut self, clientid: &str) -> u32 {
        if let Some(&i) = self.index.get(clientid) {
            return i;
        }
        let i = self.names.len() as u32;
        self.index.insert(clientid.into(), i);
        self.names.push(clientid.into());
        self.sums.push([0, 0]);
        i
    }
}

/// One date's counts by visitor index while its hits are read.
struct DayCounts<'a> {
    window: &'a mut Window,
    /// The current dictionary's entries as visitor indexes.
    to_visitor: Vec<u32>,
    counts: Vec<[u64; 2]>,
    touched: Vec<u32>,
}

impl codec::HitRows for DayCounts<'_> {
    fn dictionary(&mut self, clientids: &arrow_array::StringArray) {
        self.to_visitor.clear();
        for id in clientids {
            let i = self.window.intern(id.unwrap_or(""));
            self.to_visitor.push(i);
        }
        self.counts.resize(self.window.names.len(), [0, 0]);
    }

    #[inline]
    fn row(&mut self, clientid: usize, gender: Gender) {
        let i = self.to_visitor[clientid] as usize;
        let counts = &mut self.counts[i];
        if *counts == [0, 0] {
            self.touched.push(i as u32);
        }
        match gender {
            Gender::M => counts[0] += 1,
            Gender::F => counts[1] += 1,
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

/// Adds one date's counts to the window: from its rollup when that is still
/// current, else recomputed from the curated hits and written.
async fn rollup_date(
    curated: &dyn ObjectStore,
    dt: Date,
    window: &mut Window,
) -> Result<(RollupSummary, bool), PipelineError> {
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
        // An unreadable rollup is simply rebuilt.
        if codec::daily_sources(&bytes, &key).ok().flatten().as_deref() == Some(&digest) {
            let (mut visitors, mut hits) = (0, 0u64);
            codec::for_each_daily_row(bytes, &key, |clientid, m, f| {
                let i = window.intern(clientid) as usize;
                window.sums[i][0] += m as u64;
                window.sums[i][1] += f as u64;
                visitors += 1;
                hits += (m + f) as u64;
            })?;
            return Ok((summary(visitors, hits), false));
        }
    }

    // Recompute: this date's counts by visitor index, and who has any.
    let mut day = DayCounts {
        window,
        to_visitor: Vec::new(),
        counts: Vec::new(),
        touched: Vec::new(),
    };
    for source in &sources {
        let Some(file) = spool(curated, &source.key).await? else {
            continue; // deleted since the LIST: the next run sees a new digest
        };
        codec::for_each_hit_file_row(file, &source.key, &mut day)?;
    }
    let DayCounts {
        window,
        counts: day,
        mut touched,
        ..
    } = day;
    touched.sort_unstable_by(|a, b| window.names[*a as usize].cmp(&window.names[*b as usize]));
    let mut hits = 0u64;
    for &i in &touched {
        let [m, f] = day[i as usize];
        window.sums[i as usize][0] += m;
        window.sums[i as usize][1] += f;
        hits += m + f;
    }
    let rows = touched.iter().map(|&i| {
        let [m, f] = day[i as usize];
        (&*window.names[i as usize], m as i64, f as i64)
    });
    let body = codec::encode_daily_rows(rows, &key, Some(&digest))?;
    curated.put(&key, body).await?;
    Ok((summary(touched.len(), hits), true))
}

pub async fn run_daily(
    curated: &dyn ObjectStore,
    windows: &dyn WindowStore,
    date: Date,
    now_ms: i64,
) -> Result<DailySummary, PipelineError> {
    let dates = window_dates(date);
    let mut window = Window::default();
    let mut rollups = Vec::with_capacity(dates.len());
    let mut recomputed = 0;
    for &dt in &dates {
        let (summary, rebuilt) = rollup_date(curated, dt, &mut window).await?;
        recomputed += usize::from(rebuilt);
        rollups.push(summary);
    }

    let mut in_window: Vec<u32> = (0..window.names.len() as u32)
        .filter(|&i| window.sums[i as usize] != [0, 0])
        .collect();
    in_window.sort_unstable_by(|a, b| window.names[*a as usize].cmp(&window.names[*b as usize]));
    let previously_set = windows.visitors_with_window().await?;
    let mut updates: Vec<(String, Option<WindowSums>)> = in_window
        .iter()
        .map(|&i| {
            let [m, f] = window.sums[i as usize];
            (
                window.names[i as usize].to_string(),
                Some(WindowSums { m, f, date }),
            )
        })
        .collect();
    let visitors_in_window = updates.len();
    let mut cleared: Vec<_> = previously_set
        .into_iter()
        .filter(|id| {
            window
                .index
                .get(id.as_str())
                .is_none_or(|&i| window.sums[i as usize] == [0, 0])
        })
        .map(|id| (id, None))
        .collect();
    cleared.sort_by(|a, b| a.0.cmp(&b.0));
    let signals_cleared = cleared.len();
    drop(window);
    updates.extend(cleared);
    windows.set_windows(&updates, now_ms).await?;
    tracing::info!(%date, visitors = visitors_in_window, signals_cleared, rollups_recomputed = recomputed, "daily run finished");

    Ok(DailySummary {
        date: date.to_string(),
        window_from: dates[0].to_string(),
        window_to: date.to_string(),
        rollups,
        visitors_in_window,
        signals_set: visitors_in_window,
        signals_cleared,
    })
}
