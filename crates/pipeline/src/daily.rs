//! The daily job (SPEC 7): rollups for `D-6 ..= D` from curated hits, then
//! the 7-day window sums set or cleared per visitor. Only overwrites, so a
//! re-run gives identical results.

use crate::{PipelineError, codec};
use gender_core::daily::{DailyRow, RollupSummary, rollup, window_sums};
use gender_core::ports::{ObjectStore, WindowStore};
use gender_core::{DailySummary, Date, layout, window_dates};
use std::collections::BTreeSet;

/// Recomputes one date's rollup from every curated hits file of that date.
async fn rollup_date(curated: &dyn ObjectStore, dt: Date) -> Result<Vec<DailyRow>, PipelineError> {
    let mut hits = Vec::new();
    for key in curated.list(&layout::curated_hits_prefix(dt)).await? {
        if !key.ends_with(".parquet") {
            continue;
        }
        let Some(bytes) = curated.get(&key).await? else {
            continue;
        };
        hits.extend(codec::decode_hits(bytes, &key)?);
    }
    let rows = rollup(hits.iter().map(|h| (h.clientid.as_ref(), h.gender)));
    let key = layout::daily_rollup_key(dt);
    curated.put(&key, codec::encode_daily(&rows, &key)?).await?;
    Ok(rows)
}

pub async fn run_daily(
    curated: &dyn ObjectStore,
    windows: &dyn WindowStore,
    date: Date,
    now_ms: i64,
) -> Result<DailySummary, PipelineError> {
    let dates = window_dates(date);
    let mut all_rows = Vec::new();
    let mut rollups = Vec::with_capacity(dates.len());
    for &dt in &dates {
        let rows = rollup_date(curated, dt).await?;
        rollups.push(RollupSummary {
            date: dt.to_string(),
            visitors: rows.len(),
            hits: rows.iter().map(|r| (r.m + r.f) as u64).sum(),
        });
        all_rows.extend(rows);
    }

    let sums = window_sums(&all_rows, date);
    let previously_set: BTreeSet<String> =
        windows.visitors_with_window().await?.into_iter().collect();
    let mut updates: Vec<_> = sums.iter().map(|(id, s)| (id.clone(), Some(*s))).collect();
    let cleared: Vec<_> = previously_set
        .iter()
        .filter(|id| !sums.contains_key(*id))
        .map(|id| (id.clone(), None))
        .collect();
    let signals_cleared = cleared.len();
    updates.extend(cleared);
    windows.set_windows(&updates, now_ms).await?;
    tracing::info!(%date, visitors = sums.len(), signals_cleared, "daily run finished");

    Ok(DailySummary {
        date: date.to_string(),
        window_from: dates[0].to_string(),
        window_to: date.to_string(),
        rollups,
        visitors_in_window: sums.len(),
        signals_set: sums.len(),
        signals_cleared,
    })
}
