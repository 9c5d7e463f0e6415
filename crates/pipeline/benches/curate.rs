//! Curate's CPU path over one million hits, as `prepare_object` runs it
//! minus the object store: the raw NDJSON object streamed in 1 MiB chunks
//! through line parsing, the per-visitor fold and the Parquet writer (row
//! groups written to a local temporary file).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gender_core::{Aggregator, Hit, parse_raw_line};
use gender_pipeline::CurateStream;
use std::hint::black_box;

const HITS: usize = 1_000_000;

/// A raw object as delivery writes it: normalized lines of one date.
fn raw_object() -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(2);
    let mut out = Vec::with_capacity(HITS * 90);
    for _ in 0..HITS {
        let hit = Hit {
            clientid: format!("visitor-{:06}", rng.u32(0..100_000)).into(),
            gender: if rng.bool() {
                gender_core::Gender::M
            } else {
                gender_core::Gender::F
            },
            event_ms: 1_795_478_400_000 + rng.i64(0..86_400_000),
        };
        hit.write_ndjson(&mut out);
    }
    out
}

fn bench_curate(c: &mut Criterion) {
    let raw = raw_object();
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
