//! Curate's CPU path over one million hits: parse the raw NDJSON object,
//! aggregate per visitor, and encode the Parquet file.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gender_core::aggregate::parse_raw_object;
use gender_core::{Hit, aggregate_hits};
use gender_pipeline::codec::encode_hits;
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
    group.bench_function("parse+aggregate+parquet 1M hits", |b| {
        b.iter(|| {
            let parsed = parse_raw_object(&raw);
            let deltas = aggregate_hits(&parsed.hits);
            let rows: Vec<&Hit> = parsed.hits.iter().collect();
            let parquet = encode_hits(&rows, "bench").unwrap();
            black_box((deltas.len(), parquet.len()))
        })
    });
    group.bench_function("parse only", |b| {
        b.iter(|| black_box(parse_raw_object(&raw).hits.len()))
    });
    let parsed = parse_raw_object(&raw);
    group.bench_function("aggregate only", |b| {
        b.iter(|| black_box(aggregate_hits(&parsed.hits).len()))
    });
    let rows: Vec<&Hit> = parsed.hits.iter().collect();
    group.bench_function("parquet only", |b| {
        b.iter(|| black_box(encode_hits(&rows, "bench").unwrap().len()))
    });
    group.finish();
}

criterion_group!(benches, bench_curate);
criterion_main!(benches);
