//! The daily job over a data directory with `curated/hits/dt=…/*.parquet`,
//! for the peer benchmark (`scripts/peer-bench`): rollups read or rebuilt
//! and written under `curated/daily/`, window sums computed and handed to a
//! window store that only counts them (no state store), on one thread. Each
//! run starts from an empty table: the daily job's record of the window
//! applied is removed first, so every visitor of the window is written.
//! Prints one JSON line with the counts the peers are checked against.
//!
//!     cargo run --release -p gender-pipeline --example bench_daily -- DIR YYYY-MM-DD

mod support;

use async_trait::async_trait;
use gender_core::ports::WindowStore;
use gender_core::{Date, PortError, WindowSums};
use gender_embedded::DirObjectStore;
use gender_pipeline::run_daily;
use std::sync::Mutex;
use std::time::Instant;

/// Keeps the totals of what a run sets.
#[derive(Default)]
struct Totals(Mutex<(usize, u64, u64)>);

#[async_trait]
impl WindowStore for Totals {
    async fn set_windows(
        &self,
        updates: &[(String, Option<WindowSums>)],
        _now_ms: i64,
    ) -> Result<(), PortError> {
        let mut totals = self.0.lock().expect("not poisoned");
        for (_, window) in updates {
            if let Some(w) = window {
                totals.0 += 1;
                totals.1 += w.m;
                totals.2 += w.f;
            }
        }
        Ok(())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, date] = &args[..] else {
        eprintln!("usage: bench_daily DIR YYYY-MM-DD");
        std::process::exit(2);
    };
    let date = Date::parse(date).expect("a YYYY-MM-DD date");
    let store = DirObjectStore::new(dir);
    store
        .delete_blocking(gender_core::layout::DAILY_APPLIED_KEY)
        .expect("remove the record of the window applied");
    let totals = Totals::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(1)
        .build()
        .expect("runtime");
    let start = Instant::now();
    let summary = runtime
        .block_on(run_daily(&store, &totals, date, 0))
        .expect("daily");
    let seconds = start.elapsed().as_secs_f64();
    let (visitors, m, f) = *totals.0.lock().expect("not poisoned");
    let rollup_rows: usize = summary.rollups.iter().map(|r| r.visitors).sum();
    let rollup_hits: u64 = summary.rollups.iter().map(|r| r.hits).sum();
    println!(
        "{{\"visitors\":{visitors},\"m\":{m},\"f\":{f},\"rollup_rows\":{rollup_rows},\"rollup_hits\":{rollup_hits},\"seconds\":{seconds},\"rss_kib\":{}}}",
        support::peak_rss_kib()
    );
}
