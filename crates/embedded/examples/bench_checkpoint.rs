//! Times the state store's checkpoint (the overlay merged into redb) for one
//! batch of visitors against a table of a given size: the batch's visitors
//! are all new, all already stored, or half and half, spread evenly over the
//! table's key range. Prints one JSON line per repetition.
//!
//!     cargo run --release -p gender-embedded --example bench_checkpoint -- TABLE BATCH new|existing|mixed [REPS]

use gender_core::Gender;
use gender_core::aggregate::VisitorDelta;
use gender_embedded::{ObjectDeltas, SeenKeys, StateStore};
use std::time::Instant;

fn delta(clientid: String) -> VisitorDelta {
    VisitorDelta {
        clientid,
        m: 1,
        f: 0,
        last_gender: Gender::M,
        last_seen_ms: 1,
    }
}

fn apply(states: &StateStore, name: &str, deltas: &[VisitorDelta]) {
    let object = ObjectDeltas {
        object_id: name,
        deltas,
        ack_queued: None,
    };
    states
        .apply_objects_blocking(&[object], SeenKeys::none(), 0)
        .expect("apply");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [table, batch, mode, rest @ ..] = &args[..] else {
        eprintln!("usage: bench_checkpoint TABLE BATCH new|existing|mixed [REPS]");
        std::process::exit(2);
    };
    let table: usize = table.parse().expect("TABLE");
    let batch: usize = batch.parse().expect("BATCH");
    let reps: usize = rest.first().map_or(3, |r| r.parse().expect("REPS"));
    for rep in 0..reps {
        let dir = tempfile::tempdir().expect("temporary directory");
        let states = StateStore::open(dir.path().join("state.redb")).expect("state store");
        let stored: Vec<VisitorDelta> = (0..table)
            .map(|i| delta(format!("visitor-{i:08}")))
            .collect();
        for (n, chunk) in stored.chunks(256 * 1024).enumerate() {
            apply(&states, &format!("table-{n}"), chunk);
        }
        states.checkpoint_blocking().expect("checkpoint");
        let step = (table / batch.max(1)).max(1);
        let deltas: Vec<VisitorDelta> = (0..batch)
            .map(|j| {
                let i = j * step;
                let new = match mode.as_str() {
                    "new" => true,
                    "existing" => false,
                    "mixed" => j % 2 == 0,
                    _ => panic!("mode: new, existing or mixed"),
                };
                // A new visitor sorts right after a stored one.
                delta(if new || i >= table {
                    format!("visitor-{i:08}n")
                } else {
                    format!("visitor-{i:08}")
                })
            })
            .collect();
        apply(&states, "batch", &deltas);
        let start = Instant::now();
        states.checkpoint_blocking().expect("checkpoint");
        let seconds = start.elapsed().as_secs_f64();
        println!(
            "{{\"rep\":{rep},\"table\":{table},\"batch\":{batch},\"mode\":\"{mode}\",\"checkpoint_ms\":{:.1}}}",
            seconds * 1e3
        );
    }
}
