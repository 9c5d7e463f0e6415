//! The daily job as the local server runs it, for the peer benchmark
//! (`scripts/peer-bench`): `run_daily` over a data directory with
//! `curated/hits/dt=…/*.parquet`, its window sums written into the real
//! state store (redb with its journal), on a current-thread runtime.
//!
//!     bench_daily prepare DIR STATE DATE VISITORS first|next
//!     bench_daily run DIR STATE DATE
//!     bench_daily check STATE ID...
//!
//! `prepare` (untimed, its own process so that its memory is not the
//! run's): a fresh state store under STATE holding a profile for each of
//! `visitor-0000000 .. VISITORS-1` (curate creates profiles; daily only sets
//! their windows), no rollups and no record of a window applied. `first`
//! stops there: the run builds the 7 rollups and writes every window.
//! `next` then runs the daily job for DATE-1, so the run for DATE is the
//! nightly case: one new date rolled up, 6 rollups reused, the date that
//! left the window read back, only changed windows written.
//!
//! `run` times `run_daily(DATE)` (the store is opened before the clock
//! starts, as the server holds it open) and prints one JSON line: seconds,
//! CPU seconds (every thread of the process, 1/100 s ticks), peak RSS, the rollups' rows and hits, windows written. `check` prints
//! what the store holds: visitors with window sums, their totals, and the
//! sums of the clientids given (the peers are checked against these).

mod support;

use gender_core::{Date, Gender, VisitorDelta};
use gender_embedded::{DirObjectStore, ObjectDeltas, SeenKeys, StateStore};
use gender_pipeline::run_daily;
use std::path::Path;
use std::time::Instant;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(1)
        .build()
        .expect("runtime")
}

fn state_path(state: &str) -> std::path::PathBuf {
    Path::new(state).join("state.redb")
}

fn prepare(dir: &str, state: &str, date: Date, visitors: usize, next: bool) {
    let store = DirObjectStore::new(dir);
    store
        .delete_blocking(gender_core::layout::DAILY_APPLIED_KEY)
        .expect("remove the record of the window applied");
    let _ = std::fs::remove_dir_all(Path::new(dir).join("curated/daily"));
    let _ = std::fs::remove_dir_all(state);
    std::fs::create_dir_all(state).expect("state directory");
    let states = StateStore::open(state_path(state)).expect("state store");
    let deltas: Vec<VisitorDelta> = (0..visitors)
        .map(|i| VisitorDelta {
            clientid: format!("visitor-{i:07}"),
            m: 1,
            f: 0,
            last_gender: Gender::M,
            last_seen_ms: 0,
        })
        .collect();
    for (n, chunk) in deltas.chunks(256 * 1024).enumerate() {
        let object_id = format!("bench-profiles-{n}");
        let object = ObjectDeltas {
            object_id: &object_id,
            deltas: chunk,
            ack_queued: None,
        };
        states
            .apply_objects_blocking(&[object], SeenKeys::none(), 0)
            .expect("profiles");
    }
    states.checkpoint_blocking().expect("checkpoint");
    if next {
        runtime()
            .block_on(run_daily(&store, &states, date.add_days(-1), 0))
            .expect("the previous day's run");
    }
    println!(
        "{{\"prepared\":true,\"rss_kib\":{}}}",
        support::peak_rss_kib()
    );
}

fn run(dir: &str, state: &str, date: Date) {
    let store = DirObjectStore::new(dir);
    let states = StateStore::open(state_path(state)).expect("state store");
    let runtime = runtime();
    let start = Instant::now();
    let cpu_start = support::cpu_seconds();
    let summary = runtime
        .block_on(run_daily(&store, &states, date, 0))
        .expect("daily");
    let seconds = start.elapsed().as_secs_f64();
    let cpu_seconds = support::cpu_seconds() - cpu_start;
    let rollup_rows: usize = summary.rollups.iter().map(|r| r.visitors).sum();
    let rollup_hits: u64 = summary.rollups.iter().map(|r| r.hits).sum();
    println!(
        "{{\"seconds\":{seconds},\"cpu_seconds\":{cpu_seconds},\"rollup_rows\":{rollup_rows},\"rollup_hits\":{rollup_hits},\"visitors_in_window\":{},\"signals_cleared\":{},\"rss_kib\":{}}}",
        summary.visitors_in_window,
        summary.signals_cleared,
        support::peak_rss_kib()
    );
}

fn check(state: &str, ids: &[String]) {
    let states = StateStore::open(state_path(state)).expect("state store");
    let stored = states.stored_windows_blocking().expect("stored windows");
    let (m, f) = stored
        .iter()
        .fold((0u64, 0u64), |(m, f), (_, w)| (m + w.m, f + w.f));
    let sample: Vec<String> = ids
        .iter()
        .map(|id| {
            let window = states
                .get_profile_blocking(id)
                .expect("profile")
                .and_then(|p| p.window);
            match window {
                Some(w) => format!("\"{id}\":[{},{}]", w.m, w.f),
                None => format!("\"{id}\":null"),
            }
        })
        .collect();
    println!(
        "{{\"visitors\":{},\"m\":{m},\"f\":{f},\"sample\":{{{}}},\"rss_kib\":0}}",
        stored.len(),
        sample.join(",")
    );
}

fn usage() -> ! {
    eprintln!(
        "usage: bench_daily prepare DIR STATE DATE VISITORS first|next | run DIR STATE DATE | check STATE ID..."
    );
    std::process::exit(2);
}

fn main() {
    // GENDER_LOG=info shows the run's own account of its phases.
    if let Ok(filter) = std::env::var("GENDER_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let date = |s: &str| Date::parse(s).expect("a YYYY-MM-DD date");
    match args.first().map(String::as_str) {
        Some("prepare") => {
            let [_, dir, state, day, visitors, kind] = &args[..] else {
                usage()
            };
            let visitors = visitors.parse().expect("a number of visitors");
            let next = match kind.as_str() {
                "first" => false,
                "next" => true,
                _ => usage(),
            };
            prepare(dir, state, date(day), visitors, next);
        }
        Some("run") => {
            let [_, dir, state, day] = &args[..] else {
                usage()
            };
            run(dir, state, date(day));
        }
        Some("check") if args.len() >= 2 => check(&args[1], &args[2..]),
        _ => usage(),
    }
}
