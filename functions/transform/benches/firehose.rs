//! The Firehose-shaped transform: an invocation's JSON event (base64 record
//! data) in, the JSON answer (base64 lines, partition keys) out, as the
//! Lambda runtime hands them over. Same producer-shaped records as the core
//! transform benchmark, in batches of 10,000 (a full 6 MB invocation).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gender_transform::{RecordTransformer, TransformEvent, transform_event};
use std::hint::black_box;

const BATCH: usize = 10_000;
const BATCHES: usize = 100;
const ARRIVAL: i64 = 1_795_514_400_000;

fn events() -> Vec<Vec<u8>> {
    let mut rng = fastrand::Rng::with_seed(1);
    (0..BATCHES)
        .map(|b| {
            let mut json = String::from(r#"{"invocationId":"i","deliveryStreamArn":"arn:aws:firehose:eu-west-1:1:deliverystream/x","region":"eu-west-1","records":["#);
            for i in 0..BATCH {
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
                if i > 0 {
                    json.push(',');
                }
                json.push_str(&format!(
                    r#"{{"recordId":"4965647392513352143781300000000000000000000000{b:04}{i:012}","approximateArrivalTimestamp":{ARRIVAL},"data":"{}","kinesisRecordMetadata":{{"shardId":"shardId-000000000000","partitionKey":"visitor-{id:06}","approximateArrivalTimestamp":{ARRIVAL},"sequenceNumber":"49656473925133521437813000000000000000000000000000000000","subsequenceNumber":0}}}}"#,
                    BASE64.encode(record)
                ));
            }
            json.push_str("]}");
            json.into_bytes()
        })
        .collect()
}

fn bench_firehose(c: &mut Criterion) {
    let events = events();
    let mut group = c.benchmark_group("firehose");
    group.throughput(Throughput::Elements((BATCH * BATCHES) as u64));
    group.sample_size(10);
    // The events as the handler receives them: deserialized, so each
    // record's base64 text lies in memory as the runtime's parse left it.
    let parsed: Vec<TransformEvent> = events
        .iter()
        .map(|e| serde_json::from_slice(e).unwrap())
        .collect();
    // The records alone, through the handler's `RecordTransformer`: base64
    // data in, transform, base64 line out (appended to one buffer).
    group.bench_function("1M records, base64 in, base64 out", |b| {
        let (mut transformer, mut out) = (RecordTransformer::new(), String::new());
        b.iter(|| {
            out.clear();
            for record in parsed.iter().flat_map(|e| &e.records) {
                let arrival = record.approximate_arrival_timestamp;
                black_box(
                    transformer
                        .transform_base64(record.data.as_bytes(), arrival, &mut out)
                        .unwrap(),
                );
            }
            black_box(out.len())
        })
    });
    group.bench_function("1M records, JSON event in, JSON answer out", |b| {
        b.iter(|| {
            let mut bytes = 0;
            for event in &events {
                let event: TransformEvent = serde_json::from_slice(event).unwrap();
                let answer = serde_json::to_vec(&transform_event(event)).unwrap();
                bytes += answer.len();
            }
            black_box(bytes)
        })
    });
    group.bench_function("JSON event parse only", |b| {
        b.iter(|| {
            let mut n = 0;
            for event in &events {
                let event: TransformEvent = serde_json::from_slice(event).unwrap();
                n += event.records.len();
            }
            black_box(n)
        })
    });
    group.bench_function("transform only", |b| {
        b.iter(|| {
            let mut n = 0;
            for event in &parsed {
                n += transform_event(event.clone()).records.len();
            }
            black_box(n)
        })
    });
    let answers: Vec<_> = parsed.iter().map(|e| transform_event(e.clone())).collect();
    group.bench_function("JSON answer only", |b| {
        b.iter(|| {
            let mut n = 0;
            for answer in &answers {
                n += serde_json::to_vec(answer).unwrap().len();
            }
            black_box(n)
        })
    });
    group.finish();
}

criterion_group!(benches, bench_firehose);
criterion_main!(benches);
