//! What deduplication (SPEC 15) adds to curate's DynamoDB bill, measured
//! against moto server: the same stream of raw objects is curated with
//! deduplication off (today's path) and on, and after every object the
//! table is scanned so that each item's size before and after the object is
//! known. Units follow DynamoDB's rules: a consistent read costs
//! ceil(size / 4 KB) RRU (at least 1, also for a missing item), a write
//! ceil(max(size before, size after) / 1 KB) WRU, doubled inside a
//! transaction.
//!
//! The stream follows docs/DEPLOY.md's cost assumptions: one object a minute,
//! every visitor of an object with 2 hits in it, every hit with a `hitid`
//! (the API assigns one), the same visitors minute after minute, so that the
//! seen sets fill up to a full horizon (1 hour) and stay there. Item sizes
//! do not depend on how many visitors an object has, so fewer visitors than
//! the documented 30,000 give the same units per visitor-update.
//!
//! ```text
//! cargo run -p gender-curate --example dedup_cost            # 1,000 visitors, 70 objects
//! VISITORS=30000 OBJECTS=2 cargo run -p gender-curate --example dedup_cost
//! ```

use aws_sdk_dynamodb::types::AttributeValue;
use gender_aws::dynamodb::DynamoProfiles;
use gender_aws::s3::S3ObjectStore;
use gender_core::seen_set::Horizon;
use gender_core::{Gender, Hit};
use gender_curate::dedup::curate_deduplicated;
use gender_testkit::{Moto, resources};
use std::collections::HashMap;
use std::time::Instant;

const T0: i64 = 1_795_514_400_000; // 2026-11-24T10:00:00Z
const CHUNK: usize = 99;
/// us-east-1 on-demand prices used by docs/DEPLOY.md.
const WRU_USD_PER_M: f64 = 0.625;
const RRU_USD_PER_M: f64 = 0.125;
/// docs/DEPLOY.md, "Cost at 1,000 hits/s sustained": total per million hits
/// and its "DynamoDB curate writes" line, which this replaces.
const DOC_TOTAL_PER_M: f64 = 1.498;
const DOC_CURATE_WRITES_PER_M: f64 = 0.944;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// DynamoDB's item size: attribute names plus values (numbers: 1 byte per
/// two significant digits, plus 1).
fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(name, value)| {
            name.len()
                + match value {
                    AttributeValue::S(s) => s.len(),
                    AttributeValue::B(b) => b.as_ref().len(),
                    AttributeValue::N(n) => {
                        let digits = n
                            .trim_start_matches('-')
                            .replace('.', "")
                            .trim_start_matches('0')
                            .trim_end_matches('0')
                            .len();
                        digits.div_ceil(2) + 1
                    }
                    _ => 1,
                }
        })
        .sum()
}

async fn sizes(client: &aws_sdk_dynamodb::Client, table: &str) -> HashMap<String, usize> {
    let mut pages = client.scan().table_name(table).into_paginator().send();
    let mut out = HashMap::new();
    while let Some(page) = pages.next().await {
        for item in page.unwrap().items() {
            let key = item["pk"].as_s().unwrap().clone();
            out.insert(key, item_size(item));
        }
    }
    out
}

fn units(bytes: usize, unit: usize) -> u64 {
    bytes.div_ceil(unit).max(1) as u64
}

#[derive(Default, Debug, Clone, Copy)]
struct Meter {
    hits: u64,
    visitor_updates: u64,
    wru: u64,
    rru: u64,
    item_bytes: u64,
    max_item: usize,
}

impl Meter {
    fn usd_per_million_hits(&self) -> f64 {
        let per_hit = (self.wru as f64 * WRU_USD_PER_M + self.rru as f64 * RRU_USD_PER_M) / 1e6;
        per_hit / self.hits as f64 * 1e6
    }

    fn line(&self, label: &str) {
        let vu = self.visitor_updates as f64;
        println!(
            "{label:<28} {:>6.2} WRU + {:>5.2} RRU per visitor-update; mean item {:>5.0} B (max {:>5}); ${:.3} per million hits",
            self.wru as f64 / vu,
            self.rru as f64 / vu,
            self.item_bytes as f64 / vu,
            self.max_item,
            self.usd_per_million_hits()
        );
    }
}

#[tokio::main]
async fn main() {
    let visitors = env("VISITORS", 1_000);
    let objects = env("OBJECTS", 70);
    let horizon = Horizon::from_seconds(3600).unwrap();
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let s3 = gender_aws::s3::client(&sdk);
    resources::create_bucket(&s3, "raw").await;
    resources::create_bucket(&s3, "curated").await;
    let raw = S3ObjectStore::new(s3.clone(), "raw");
    let curated = S3ObjectStore::new(s3.clone(), "curated");
    let ids: Vec<String> = (0..visitors)
        .map(|v| {
            format!(
                "{:08x}-5a1e-4c2b-9d3f-{:012x}",
                v * 2_654_435_761 % (1 << 32),
                v
            )
        })
        .collect();
    println!(
        "{visitors} visitors x 2 hits per object, {objects} objects one minute apart, horizon 1 h"
    );

    let mut steady = HashMap::new();
    for dedup in [false, true] {
        let table = if dedup { "on" } else { "off" };
        let client = resources::create_table(&sdk, table).await;
        let profiles = DynamoProfiles::new(client.clone(), table);
        let mut total = Meter::default();
        let mut last10 = Meter::default();
        let started = Instant::now();
        let mut counter = 0u64;
        for object in 0..objects {
            let now = T0 + object as i64 * 60_000;
            let mut body = Vec::with_capacity(visitors * 2 * 130);
            for round in 0..2 {
                for (v, id) in ids.iter().enumerate() {
                    counter += 1;
                    Hit {
                        clientid: id.as_str().into(),
                        gender: if (v + round) % 3 == 0 {
                            Gender::F
                        } else {
                            Gender::M
                        },
                        event_ms: now - 30_000 + round as i64 * 1_000,
                        hitid: Some(format!("Zq81xPq0aLk.{counter}").into()),
                    }
                    .write_ndjson(&mut body);
                }
            }
            let key = format!("raw/dt=2026-11-24/object-{object}.ndjson");
            gender_core::ports::ObjectStore::put(&raw, &key, body)
                .await
                .unwrap();
            let before = sizes(&client, table).await;
            let object_id = format!("raw/{key}#etag{object}");
            if dedup {
                let report = curate_deduplicated(
                    &raw, &curated, &profiles, &key, &object_id, true, now, horizon,
                )
                .await
                .unwrap();
                assert_eq!((report.hits, report.redos), (visitors * 2, 0));
            } else {
                gender_pipeline::curate_object(
                    &raw, &curated, &profiles, &key, &object_id, true, now,
                )
                .await
                .unwrap();
            }
            let after = sizes(&client, table).await;
            let chunks = visitors.div_ceil(CHUNK);
            let mut m = Meter {
                hits: visitors as u64 * 2,
                visitor_updates: visitors as u64,
                ..Meter::default()
            };
            for id in &ids {
                let (b, a) = (before.get(id).copied().unwrap_or(0), after[id]);
                m.item_bytes += a as u64;
                m.max_item = m.max_item.max(a);
                // The transaction's update: twice the units of the larger image.
                m.wru += 2 * units(b.max(a), 1024);
                if dedup {
                    // The consistent read before it (missing items cost 1 too).
                    m.rru += units(b, 4096);
                } else {
                    // The conditional UpdateItem of last_gender/last_seen.
                    m.wru += units(a, 1024);
                }
            }
            for chunk in 0..chunks {
                let marker = after
                    .iter()
                    .find(|(k, _)| k.ends_with(&format!("{object_id}#{chunk}")))
                    .map(|(_, size)| *size)
                    .expect("the chunk's marker");
                m.wru += 2 * units(marker, 1024);
                if dedup {
                    m.rru += 1; // the marker's consistent read (missing: 1 RRU)
                }
            }
            add(&mut total, &m);
            if object + 10 >= objects {
                add(&mut last10, &m);
            }
        }
        println!(
            "dedup {}: {objects} objects in {:.1} s",
            if dedup { "on " } else { "off" },
            started.elapsed().as_secs_f64()
        );
        total.line("  all objects");
        last10.line("  last 10 (seen sets full)");
        steady.insert(dedup, last10);
    }
    let (off, on) = (steady[&false], steady[&true]);
    let other = DOC_TOTAL_PER_M - DOC_CURATE_WRITES_PER_M;
    let (total_off, total_on) = (
        other + off.usd_per_million_hits(),
        other + on.usd_per_million_hits(),
    );
    println!(
        "per million hits (DEPLOY.md's other lines ${other:.3} + curate DynamoDB): off ${total_off:.3}, on ${total_on:.3}, ratio {:.2}x",
        total_on / total_off
    );
}

fn add(into: &mut Meter, m: &Meter) {
    into.hits += m.hits;
    into.visitor_updates += m.visitor_updates;
    into.wru += m.wru;
    into.rru += m.rru;
    into.item_bytes += m.item_bytes;
    into.max_item = into.max_item.max(m.max_item);
}
