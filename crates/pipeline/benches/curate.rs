//! Curate's CPU path over one million hits, as `prepare_object` runs it
//! minus the object store: the raw NDJSON object streamed in 1 MiB chunks
//! through line parsing, the per-visitor fold and the Parquet writer (row
//! groups written to a local temporary file). Also the same object with a
//! producer `hitid` (a UUID) on every line, deduplicated (SPEC 15).

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use gender_core::dedup::{HitKey, SeenIndex};
use gender_core::{Aggregator, Hit, parse_raw_line};
use gender_pipeline::CurateStream;
use std::hint::black_box;

const HITS: usize = 1_000_000;

/// A UUID-shaped producer id, 36 characters.
fn uuid(rng: &mut fastrand::Rng) -> String {
    let (a, b) = (rng.u128(..), rng.u64(..));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a as u32,
        (a >> 32) as u16,
        (a >> 48) as u16 & 0xfff,
        b as u16,
        b >> 16
    )
}

/// Which `hitid` the lines carry.
#[derive(Clone, Copy)]
enum Ids {
    None,
    /// As the local server assigns them: `<instance>.<counter>`.
    Assigned,
    /// A producer's UUID.
    Producer,
}

const INSTANCE: &str = "k3Jx9aQ2LmZ.";

/// A raw object as delivery writes it: normalized lines of one date.
fn raw_object(ids: Ids) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(2);
    let mut out = Vec::with_capacity(HITS * 130);
    for n in 0..HITS {
        let hit = Hit {
            clientid: format!("visitor-{:06}", rng.u32(0..100_000)).into(),
            gender: if rng.bool() {
                gender_core::Gender::M
            } else {
                gender_core::Gender::F
            },
            event_ms: 1_795_478_400_000 + rng.i64(0..86_400_000),
            hitid: match ids {
                Ids::None => None,
                Ids::Assigned => Some(format!("{INSTANCE}{n:x}").into()),
                Ids::Producer => Some(uuid(&mut rng).into()),
            },
        };
        hit.write_ndjson(&mut out);
    }
    out
}

/// Bytes of curated Parquet per hit, printed beside the timings: the
/// price of the `hit_id` column's encoding in storage.
fn print_parquet_bytes_per_hit(label: &str, raw: &[u8]) {
    let mut stream = CurateStream::new("raw/dt=2026-11-24/size.ndjson");
    stream.push(raw).unwrap();
    let object = stream.finish().unwrap();
    let bytes: u64 = object
        .files
        .iter()
        .map(|f| f.temp.as_file().metadata().unwrap().len())
        .sum();
    eprintln!(
        "curated Parquet, {label}: {:.2} bytes per hit",
        bytes as f64 / object.hits as f64
    );
}

fn bench_curate(c: &mut Criterion) {
    let raw = raw_object(Ids::None);
    print_parquet_bytes_per_hit("no ids", &raw);
    let mut group = c.benchmark_group("curate");
    group.throughput(Throughput::Elements(HITS as u64));
    group.sample_size(10);
    group.bench_function("stream 1M hits: parse+aggregate+parquet", |b| {
        b.iter(|| {
            let mut stream = CurateStream::new("raw/dt=2026-11-24/bench.ndjson");
            for chunk in raw.chunks(1 << 20) {
                stream.push(chunk).unwrap();
            }
            let object = stream.finish().unwrap();
            black_box((object.deltas.len(), object.files.len()))
        })
    });
    let assigned = raw_object(Ids::Assigned);
    print_parquet_bytes_per_hit("ids this server assigned", &assigned);
    group.bench_function("stream 1M hits with the ids this server assigned", |b| {
        b.iter(|| {
            let mut index = SeenIndex::new(3_600_000).with_unique_prefix(INSTANCE);
            let mut stream =
                CurateStream::with_filter("raw/dt=2026-11-24/bench.ndjson", &mut index);
            for chunk in assigned.chunks(1 << 20) {
                stream.push(chunk).unwrap();
            }
            let object = stream.finish().unwrap();
            black_box((object.deltas.len(), object.files.len()))
        })
    });
    let with_ids = raw_object(Ids::Producer);
    print_parquet_bytes_per_hit("producer UUIDs", &with_ids);
    // An index already holding 5 M identities of earlier objects (about an
    // hour at 1,400 hits/s), so lookups pay the cache misses of a full one.
    let mut rng = fastrand::Rng::with_seed(9);
    let mut warm = SeenIndex::new(3_600_000);
    let earlier: Vec<HitKey> = (0..5_000_000).map(|_| HitKey(rng.u128(..))).collect();
    warm.remember(&earlier, 0);
    drop(earlier);
    group.bench_function("stream 1M hits with hitid, deduplicated", |b| {
        b.iter_batched(
            || warm.clone(),
            |mut index| {
                let mut stream =
                    CurateStream::with_filter("raw/dt=2026-11-24/bench.ndjson", &mut index);
                for chunk in with_ids.chunks(1 << 20) {
                    stream.push(chunk).unwrap();
                }
                let object = stream.finish().unwrap();
                black_box((object.deltas.len(), object.files.len(), object.duplicates));
                index
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("stream 1M hits with hitid, not deduplicated", |b| {
        b.iter(|| {
            let mut stream = CurateStream::new("raw/dt=2026-11-24/bench.ndjson");
            for chunk in with_ids.chunks(1 << 20) {
                stream.push(chunk).unwrap();
            }
            let object = stream.finish().unwrap();
            black_box((object.deltas.len(), object.files.len()))
        })
    });
    group.bench_function("parse only", |b| {
        b.iter(|| {
            let mut n = 0;
            for line in raw.split(|&b| b == b'\n') {
                if let Some(Ok(hit)) = parse_raw_line(line) {
                    n += hit.event_ms & 1;
                }
            }
            black_box(n)
        })
    });
    let hits: Vec<Hit> = raw
        .split(|&b| b == b'\n')
        .filter_map(|l| parse_raw_line(l)?.ok())
        .collect();
    group.bench_function("aggregate only", |b| {
        b.iter(|| {
            let mut aggregator = Aggregator::new();
            for hit in &hits {
                aggregator.add(&hit.clientid, hit.gender, hit.event_ms);
            }
            black_box(aggregator.finish().len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench_curate);
criterion_main!(benches);
