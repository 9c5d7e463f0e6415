//! The generated input, the same for both deployments: requests of a few
//! hits each, over the last few dates, a share with producer `hitid`s and
//! some of those sent again later with the same body (a producer's retry,
//! SPEC 15). Event times are unique, so "the latest hit" never depends on
//! the order two deployments happened to process a tie in.

use gender_core::Date;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashSet};

#[derive(Debug, Clone)]
pub struct TrafficConfig {
    pub seed: u64,
    pub visitors: usize,
    pub requests: usize,
    /// Event dates: the last `days` dates up to and including today.
    pub days: i32,
    /// The share of requests whose hits carry producer `hitid`s.
    pub producer_ids: f64,
    /// The share of those sent a second time, some requests later.
    pub resent: f64,
}

#[derive(Debug, Clone)]
pub struct PlannedHit {
    pub clientid: String,
    pub gender: &'static str,
    pub event_ms: i64,
    pub hitid: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Request {
    pub hits: Vec<PlannedHit>,
    /// The same body as an earlier request.
    pub resend: bool,
}

impl Request {
    pub fn body(&self) -> String {
        let hits: Vec<_> = self
            .hits
            .iter()
            .map(|h| {
                let mut hit = json!({
                    "clientid": h.clientid,
                    "pageGender": h.gender,
                    "timestamp": gender_core::time::format_rfc3339_millis(h.event_ms),
                });
                if let Some(id) = &h.hitid {
                    hit["hitid"] = json!(id);
                }
                hit
            })
            .collect();
        serde_json::Value::Array(hits).to_string()
    }

    /// Whether sending it again cannot count its hits twice.
    pub fn idempotent(&self) -> bool {
        self.hits.iter().all(|h| h.hitid.is_some())
    }
}

pub struct Traffic {
    pub requests: Vec<Request>,
    pub today: Date,
    pub first_date: Date,
}

impl Traffic {
    pub fn generate(config: &TrafficConfig, today: Date) -> Traffic {
        let mut rng = fastrand::Rng::with_seed(config.seed);
        let first_date = today.add_days(1 - config.days);
        // Each visitor leans one way, some not at all (ties, decided by `last`).
        let lean: Vec<f64> = (0..config.visitors)
            .map(|_| [0.2, 0.5, 0.8][rng.usize(0..3)])
            .collect();
        let mut n: i64 = 0;
        let mut requests: Vec<Request> = Vec::new();
        for r in 0..config.requests {
            let with_ids = rng.f64() < config.producer_ids;
            let hits = (0..rng.usize(1..=12))
                .map(|k| {
                    let v = rng.usize(0..config.visitors);
                    let date = first_date.add_days(rng.i32(0..config.days));
                    n += 1;
                    PlannedHit {
                        clientid: visitor(v),
                        gender: if rng.f64() < lean[v] { "M" } else { "F" },
                        // Unique times, an hour into the date, spread by 0.9 s.
                        event_ms: date.start_millis() + 3_600_000 + n * 900 + rng.i64(0..900),
                        hitid: with_ids.then(|| format!("p-{}-{r}-{k}", config.seed)),
                    }
                })
                .collect();
            requests.push(Request {
                hits,
                resend: false,
            });
        }
        // Resends, a few requests after the original (or at the end).
        let originals: Vec<usize> = (0..requests.len())
            .filter(|&i| requests[i].idempotent() && rng.f64() < config.resent)
            .collect();
        for (shift, i) in originals.into_iter().enumerate() {
            let mut again = requests[i + shift].clone();
            again.resend = true;
            let at = (i + shift + 1 + rng.usize(1..20)).min(requests.len());
            requests.insert(at, again);
        }
        Traffic {
            requests,
            today,
            first_date,
        }
    }

    /// What every visitor must be counted: each `(clientid, hitid)` once,
    /// each hit without a producer id once per send. `(m, f)`.
    pub fn expected(&self) -> BTreeMap<String, (u64, u64)> {
        let mut seen = HashSet::new();
        let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for hit in self.requests.iter().flat_map(|r| &r.hits) {
            if let Some(id) = &hit.hitid
                && !seen.insert((hit.clientid.clone(), id.clone()))
            {
                continue;
            }
            let entry = out.entry(hit.clientid.clone()).or_default();
            if hit.gender == "M" {
                entry.0 += 1;
            } else {
                entry.1 += 1;
            }
        }
        out
    }

    pub fn visitors(&self) -> BTreeSet<String> {
        self.requests
            .iter()
            .flat_map(|r| &r.hits)
            .map(|h| h.clientid.clone())
            .collect()
    }

    /// Hits sent, resends included.
    pub fn hits_sent(&self) -> usize {
        self.requests.iter().map(|r| r.hits.len()).sum()
    }
}

pub fn visitor(i: usize) -> String {
    format!("visitor-{i:04}")
}
