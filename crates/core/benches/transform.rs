//! The delivery transform over one million producer-shaped hits.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gender_core::transform::transform_record;
use std::hint::black_box;

const HITS: usize = 1_000_000;
const ARRIVAL: i64 = 1_795_514_400_000;

/// Records as the API stores them: some with a timestamp, some without,
/// plus a few unknown fields the way real producers send them.
fn records() -> Vec<Vec<u8>> {
    let mut rng = fastrand::Rng::with_seed(1);
    (0..HITS)
        .map(|i| {
            let id = rng.u32(0..100_000);
            let gender = if rng.bool() { "M" } else { "F" };
            let record = match i % 4 {
                0 => format!(r#"{{"clientid":"visitor-{id:06}","pageGender":"{gender}"}}"#),
                1 => format!(r#"{{"clientid":"visitor-{id:06}","pageGender":"{gender}","timestamp":{}}}"#, ARRIVAL - rng.i64(0..86_400_000)),
                2 => format!(
                    r#"{{"clientid":"visitor-{id:06}","pageGender":"{gender}","timestamp":"2026-11-24T{:02}:{:02}:{:02}.{:03}Z"}}"#,
                    rng.u32(0..10), rng.u32(0..60), rng.u32(0..60), rng.u32(0..1000)
                ),
                _ => format!(r#"{{"page":"/a/b","clientid":"visitor-{id:06}","pageGender":"{gender}","timestamp":"2026-11-24T09:30:00+01:00","ref":"x"}}"#),
            };
            record.into_bytes()
        })
        .collect()
}

fn bench_transform(c: &mut Criterion) {
    let records = records();
    let mut out = Vec::with_capacity(HITS * 90);
    let mut group = c.benchmark_group("transform");
    group.throughput(Throughput::Elements(HITS as u64));
    group.sample_size(10);
    group.bench_function("1M records", |b| {
        b.iter(|| {
            out.clear();
            for record in &records {
                black_box(transform_record(record, ARRIVAL, &mut out).unwrap());
            }
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench_transform);
criterion_main!(benches);
