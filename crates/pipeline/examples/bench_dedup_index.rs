//! Memory of the local dedup index (SPEC 15): remembers N random hit
//! identities and prints the bytes each costs (peak RSS growth / N), and
//! the time per lookup of a new identity once the index is full: one by
//! one (`lookup_ns`, random keys) and in runs of hashed ids as curate asks
//! (`run_lookup_ns`, hashing included).
//!
//!     cargo run --release -p gender-pipeline --example bench_dedup_index -- 10000000

mod support;

use gender_core::dedup::{HitFilter, HitKey, SeenIndex};
use std::time::Instant;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    let mut rng = fastrand::Rng::with_seed(5);
    let before = support::peak_rss_kib();
    let mut index = SeenIndex::new(3_600_000);
    // As curate fills it: batches of decisions remembered at each commit.
    let batch = 100_000;
    let start = Instant::now();
    for done in (0..n).step_by(batch) {
        for _ in done..(done + batch).min(n) {
            index.first_sighting_key(HitKey(rng.u128(..)));
        }
        index.remember_pending(0);
    }
    let fill = start.elapsed();
    let after = support::peak_rss_kib();
    let lookups = 1_000_000;
    let start = Instant::now();
    let mut new = 0;
    for _ in 0..lookups {
        new += usize::from(index.first_sighting_key(HitKey(rng.u128(..))));
    }
    let lookup = start.elapsed();
    // Taken back, so both measurements see the same full index (and
    // neither pays for a growth of the table that happens once per doubling).
    index.discard_pending();
    // The same through the run API curate uses: runs of ids hashed, then
    // decided with the memory of later keys fetched ahead.
    let ids: Vec<(String, String)> = (0..lookups)
        .map(|n| {
            (
                format!("visitor-{:06}", n % 100_000),
                format!("{:032x}", rng.u128(..)),
            )
        })
        .collect();
    let asked: Vec<Option<(&str, &str)>> = ids
        .iter()
        .map(|(c, h)| Some((c.as_str(), h.as_str())))
        .collect();
    let mut counted = vec![false; asked.len()];
    let start = Instant::now();
    let run = gender_core::aggregate::LINE_RUN;
    for (asked, counted) in asked.chunks(run).zip(counted.chunks_mut(run)) {
        index.first_sightings(asked, counted);
    }
    let run_lookup = start.elapsed();
    index.discard_pending();
    new += counted.iter().filter(|c| **c).count();
    println!(
        "{{\"identities\":{},\"bytes_per_identity\":{:.1},\"fill_ns_per_identity\":{:.0},\"lookup_ns\":{:.0},\"run_lookup_ns\":{:.0},\"new\":{new}}}",
        index.len(),
        (after - before) as f64 * 1024.0 / n as f64,
        fill.as_nanos() as f64 / n as f64,
        lookup.as_nanos() as f64 / lookups as f64,
        run_lookup.as_nanos() as f64 / lookups as f64,
    );
}
