//! Curate of one raw NDJSON file through the library API, for the peer
//! benchmark (`scripts/peer-bench`), on one thread: the file is the raw
//! object of a directory store, the Parquet goes to `OUT_DIR` (a directory
//! store). With `--state DIR`, the per-visitor deltas (and the hit
//! identities the dedup index took in) are then applied to a new state store
//! in `DIR` as the local server's delivery applies them (one journal record,
//! durable when it returns), and the store is checkpointed into redb (which
//! the server does in the background); each phase is timed. Prints one JSON
//! line with the phases' seconds, the peak RSS at the end of the first two
//! (the last is the whole run's) and the counts the peers are checked
//! against.
//!
//! With `--own-prefix P`, hitids starting with P are the server's own
//! (counted without the dedup index, as the local server does); other
//! hitids are deduplicated.
//!
//!     cargo run --release -p gender-pipeline --example bench_curate -- FILE OUT_DIR [--state DIR] [--own-prefix P]

mod support;

use gender_core::Gender;
use gender_core::dedup::SeenIndex;
use gender_embedded::{DirObjectStore, ObjectDeltas, SeenKeys, StateStore};
use gender_pipeline::prepare_object;
use std::path::Path;
use std::time::Instant;

fn main() {
    let usage = || -> ! {
        eprintln!("usage: bench_curate FILE OUT_DIR [--state DIR] [--own-prefix P]");
        std::process::exit(2);
    };
    let mut args = std::env::args().skip(1);
    let (Some(file), Some(out)) = (args.next(), args.next()) else {
        usage()
    };
    let (mut state_dir, mut unique_prefix) = (None, None);
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--state", Some(dir)) => state_dir = Some(dir),
            ("--own-prefix", Some(prefix)) => unique_prefix = Some(prefix),
            _ => usage(),
        }
    }
    let file = Path::new(&file);
    let raw = DirObjectStore::new(file.parent().expect("a file in a directory"));
    let key = file
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a UTF-8 name");
    let curated = DirObjectStore::new(&out);
    // Opened before the clock starts: the server opens its store once.
    let states = state_dir.map(|dir| {
        std::fs::create_dir_all(&dir).expect("state directory");
        StateStore::open(Path::new(&dir).join("state.redb")).expect("state store")
    });
    let mut index = SeenIndex::new(3_600_000);
    if let Some(prefix) = unique_prefix {
        index = index.with_unique_prefix(prefix);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(1)
        .build()
        .expect("runtime");
    let start = Instant::now();
    let prepared = runtime
        .block_on(prepare_object(
            &raw, &curated, key,
            // As the local server runs it: lines with a hitid are deduplicated.
            &mut index,
        ))
        .expect("curate");
    let prepare_seconds = start.elapsed().as_secs_f64();
    // Where the peak is: the high-water mark at the end of each phase.
    let prepare_peak_kib = support::peak_rss_kib();
    // What the peers are checked against (not timed).
    let (m, f) = prepared
        .deltas
        .iter()
        .fold((0, 0), |(m, f), d| (m + d.m, f + d.f));
    let last_m = prepared
        .deltas
        .iter()
        .filter(|d| d.last_gender == Gender::M)
        .count();
    let (hits, invalid, visitors, files) = (
        prepared.hits,
        prepared.invalid_lines,
        prepared.deltas.len(),
        prepared.curated_keys.len(),
    );
    let (mut apply_seconds, mut checkpoint_seconds) = (0.0, 0.0);
    let mut apply_peak_kib = prepare_peak_kib;
    if let Some(states) = &states {
        // As delivery's `apply`: the object's deltas, its marker and the
        // identities the index took in, in one journal record.
        let now_ms = 0;
        let applied = Instant::now();
        let object = ObjectDeltas {
            object_id: key,
            deltas: &prepared.deltas,
            ack_queued: None,
        };
        let seen = SeenKeys {
            keys: index.pending_shared(),
            keep_since_ms: index.oldest_kept_ms(now_ms),
        };
        states
            .apply_objects_blocking(&[object], seen, now_ms)
            .expect("apply");
        index.remember_pending(now_ms);
        // Delivery lets go of the object's deltas once applied; the
        // checkpoint comes later, on its own thread.
        drop(prepared);
        apply_seconds = applied.elapsed().as_secs_f64();
        apply_peak_kib = support::peak_rss_kib();
        let checkpointed = Instant::now();
        states.checkpoint_blocking().expect("checkpoint");
        checkpoint_seconds = checkpointed.elapsed().as_secs_f64();
    }
    let seconds = prepare_seconds + apply_seconds + checkpoint_seconds;
    println!(
        "{{\"hits\":{hits},\"invalid\":{invalid},\"visitors\":{visitors},\"m\":{m},\"f\":{f},\"last_m\":{last_m},\"files\":{files},\"seconds\":{seconds},\"prepare_seconds\":{prepare_seconds},\"apply_seconds\":{apply_seconds},\"checkpoint_seconds\":{checkpoint_seconds},\"prepare_peak_kib\":{prepare_peak_kib},\"apply_peak_kib\":{apply_peak_kib},\"rss_kib\":{}}}",
        support::peak_rss_kib(),
    );
}
