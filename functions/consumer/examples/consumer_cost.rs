//! What the stream consumer costs in DynamoDB, measured: the consumer runs
//! against moto server over simulated traffic, and after every write the
//! written item's size is read back and converted to capacity units by
//! DynamoDB's published rules (docs/DEPLOY.md, "Cost").
//!
//! ```text
//! cargo run --release -p gender-consumer --example consumer_cost -- [MODEL] [VISITORS] [MINUTES]
//! ```
//!
//! MODEL `steady`: every visitor sends 2 hits a minute, all hour long (the
//! cost section's first traffic model, the worst case for the size of the
//! deduplication set). MODEL `sessions`: the population of the daily job's
//! measured day (DEPLOY.md: 86.4 M hits of 2.00 M visitors, ~43 hits a
//! visitor a day), as visits of 4-20 pages one every 10-60 s, 1-4 visits a
//! day spread over the hours. Batches are what the event source mapping
//! hands the consumer with a 1 s window at 1,000 hits/s: the hits that
//! arrived in the same second.

use gender_consumer::{Config, Consumer, StreamEvent};
use gender_core::seen_set::Horizon;
use gender_testkit::{Moto, resources};
use std::collections::BTreeMap;

const TABLE: &str = "profiles";
const T0: i64 = 1_795_514_400_000;

/// One simulated hit: arrival (ms), visitor, gender.
type Hit = (i64, usize, bool);

fn steady(visitors: usize, minutes: i64, rng: &mut fastrand::Rng) -> Vec<Hit> {
    let mut hits = Vec::new();
    for v in 0..visitors {
        let bias = rng.f64();
        // Two hits a minute at random offsets, the visitor's own phase.
        for minute in 0..minutes {
            for _ in 0..2 {
                let at = T0 + minute * 60_000 + rng.i64(0..60_000);
                hits.push((at, v, rng.f64() < bias));
            }
        }
    }
    hits
}

fn sessions(visitors: usize, minutes: i64, rng: &mut fastrand::Rng) -> Vec<Hit> {
    let mut hits = Vec::new();
    let span = minutes * 60_000;
    for v in 0..visitors {
        let bias = rng.f64();
        // Visits a day scaled to the simulated span.
        let visits = ((rng.usize(1..=4) as i64 * span) / 86_400_000).max(1);
        for _ in 0..visits {
            let mut at = T0 + rng.i64(0..span);
            for _ in 0..rng.usize(4..=20) {
                hits.push((at, v, rng.f64() < bias));
                at += rng.i64(10_000..60_000);
            }
        }
    }
    hits
}

/// DynamoDB's item size: attribute names plus values (strings as UTF-8,
/// binary as bytes, numbers at about one byte per two significant digits
/// plus one).
fn item_size(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue as V;
    item.iter()
        .map(|(name, value)| {
            name.len()
                + match value {
                    V::S(s) => s.len(),
                    V::B(b) => b.as_ref().len(),
                    V::N(n) => {
                        let digits = n
                            .trim_start_matches('-')
                            .trim_start_matches('0')
                            .replace('.', "");
                        digits.len().div_ceil(2) + 1
                    }
                    _ => 0,
                }
        })
        .sum()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model = args.get(1).map_or("steady", String::as_str);
    let visitors: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(100);
    let minutes: i64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(70);
    let mut rng = fastrand::Rng::with_seed(21);
    let mut hits = match model {
        "steady" => steady(visitors, minutes, &mut rng),
        "sessions" => sessions(visitors, minutes, &mut rng),
        other => panic!("unknown model {other}: steady or sessions"),
    };
    hits.sort_by_key(|h| h.0);

    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let dynamo = resources::create_table(&sdk, TABLE).await;
    let (_sqs, dlq) = resources::create_queue(&sdk, "dlq").await;
    let consumer = Consumer::new(
        Config {
            table_name: TABLE.into(),
            dead_letter_queue_url: dlq,
            dedup_horizon: Horizon::from_seconds(3600),
        },
        &sdk,
    );

    // The hits of each second form one batch; a visitor's hits of a second
    // share a record when they came in one request: here, one record each.
    let mut batches: BTreeMap<i64, Vec<Hit>> = BTreeMap::new();
    for hit in hits.iter().copied() {
        batches.entry(hit.0 / 1000).or_default().push(hit);
    }
    let (mut sequence, mut updates, mut wru, mut rru) = (0u64, 0u64, 0u64, 0u64);
    let (mut size_sum, mut size_max, mut sizes_measured) = (0usize, 0usize, 0u64);
    let mut hit_id = 0u64;
    for (second, batch) in &batches {
        let records: Vec<serde_json::Value> = batch
            .iter()
            .map(|&(at, v, m)| {
                sequence += 1;
                hit_id += 1;
                let data = format!(
                    r#"{{"clientid":"v-{v:05}-3c9a1f7e2b","pageGender":"{}","timestamp":{at},"hitid":"{hit_id:016x}-4e1b-9a7c-2f6d8e0b1a3c"}}"#,
                    if m { "M" } else { "F" }
                );
                serde_json::json!({
                    "kinesis": {
                        "partitionKey": format!("v-{v:05}"),
                        "sequenceNumber": format!("49657986683135544286507457936321625675700{sequence:015}"),
                        "data": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, data),
                        "approximateArrivalTimestamp": at as f64 / 1000.0,
                    },
                    "eventID": format!("shardId-000000000000:{sequence}"),
                })
            })
            .collect();
        let event: StreamEvent =
            serde_json::from_value(serde_json::json!({ "Records": records })).unwrap();
        let (response, report) = consumer.handle_at(event, second * 1000).await;
        assert!(response.batch_item_failures.is_empty());
        updates += report.visitors as u64;
        // Every visitor of the batch was read; written items measured now
        // (UpdateItem bills the larger of the item before and after: after,
        // since items only grow within the horizon).
        let mut written: Vec<usize> = batch.iter().map(|h| h.1).collect();
        written.sort_unstable();
        written.dedup();
        for v in written {
            let item = dynamo
                .get_item()
                .table_name(TABLE)
                .key(
                    "pk",
                    aws_sdk_dynamodb::types::AttributeValue::S(format!("v-{v:05}-3c9a1f7e2b")),
                )
                .send()
                .await
                .unwrap()
                .item
                .unwrap();
            let size = item_size(&item);
            // Measured once the sets are full: after the first horizon.
            if *second * 1000 >= T0 + 3_600_000 || minutes <= 60 {
                size_sum += size;
                size_max = size_max.max(size);
                sizes_measured += 1;
                wru += size.div_ceil(1024) as u64;
                rru += size.div_ceil(4096) as u64;
            }
        }
    }
    let mean = size_sum as f64 / sizes_measured.max(1) as f64;
    println!(
        "model {model}: {visitors} visitors, {minutes} min, {} hits, {} batches",
        hits.len(),
        batches.len()
    );
    println!(
        "visitor-updates per hit: {:.3}",
        updates as f64 / hits.len() as f64
    );
    println!(
        "item size after a write (measured {sizes_measured}): mean {mean:.0} B, max {size_max} B"
    );
    println!(
        "per visitor-update: {:.3} WRU (UpdateItem), {:.3} RRU (consistent BatchGetItem)",
        wru as f64 / sizes_measured.max(1) as f64,
        rru as f64 / sizes_measured.max(1) as f64
    );
}
