//! Curate of one raw NDJSON file through the library API, for the peer
//! benchmark (`scripts/peer-bench`): the file is the raw object of a
//! directory store, the Parquet goes to `OUT_DIR` (a directory store), the
//! per-visitor deltas are computed but not applied (no state store), on one
//! thread. Prints one JSON line with the counts the peers are checked against.
//!
//! With UNIQUE_PREFIX, hitids starting with it are the server's own (counted
//! without the dedup index, as the local server does); other hitids are
//! deduplicated.
//!
//!     cargo run --release -p gender-pipeline --example bench_curate -- FILE OUT_DIR [UNIQUE_PREFIX]

mod support;

use gender_core::Gender;
use gender_core::dedup::SeenIndex;
use gender_embedded::DirObjectStore;
use gender_pipeline::prepare_object;
use std::path::Path;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (file, out, unique_prefix) = match &args[..] {
        [file, out] => (file, out, None),
        [file, out, prefix] => (file, out, Some(prefix.clone())),
        _ => {
            eprintln!("usage: bench_curate FILE OUT_DIR [UNIQUE_PREFIX]");
            std::process::exit(2);
        }
    };
    let file = Path::new(file);
    let raw = DirObjectStore::new(file.parent().expect("a file in a directory"));
    let key = file
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a UTF-8 name");
    let curated = DirObjectStore::new(out);
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
    let seconds = start.elapsed().as_secs_f64();
    let (m, f) = prepared
        .deltas
        .iter()
        .fold((0, 0), |(m, f), d| (m + d.m, f + d.f));
    let last_m = prepared
        .deltas
        .iter()
        .filter(|d| d.last_gender == Gender::M)
        .count();
    println!(
        "{{\"hits\":{},\"invalid\":{},\"visitors\":{},\"m\":{m},\"f\":{f},\"last_m\":{last_m},\"files\":{},\"seconds\":{seconds},\"rss_kib\":{}}}",
        prepared.hits,
        prepared.invalid_lines,
        prepared.deltas.len(),
        prepared.curated_keys.len(),
        support::peak_rss_kib(),
    );
}
