//! Freshness (SPEC 19): the time from a `202` to a changed `GET /gender`,
//! for probe hits of visitors never seen before, sent while the traffic
//! runs. Each probe polls `GET /gender` every [`POLL`] until the visitor
//! is counted.

use crate::api::Api;
use std::time::{Duration, Instant};

pub const POLL: Duration = Duration::from_millis(20);
/// Probes in flight at once.
const STREAMS: usize = 4;

pub struct Freshness {
    /// Each probe's time to visible, sorted.
    pub millis: Vec<u64>,
    /// The probe visitors (one hit `M` each, also sent to the local deployment).
    pub visitors: Vec<String>,
}

impl Freshness {
    /// The `q`-quantile (nearest rank).
    pub fn quantile(&self, q: f64) -> u64 {
        if self.millis.is_empty() {
            return 0;
        }
        let rank = ((q * self.millis.len() as f64).ceil() as usize).clamp(1, self.millis.len());
        self.millis[rank - 1]
    }

    pub fn summary(&self) -> String {
        format!(
            "freshness: p50 {} ms, p99 {} ms, max {} ms over {} probes",
            self.quantile(0.5),
            self.quantile(0.99),
            self.millis.last().copied().unwrap_or(0),
            self.millis.len()
        )
    }
}

/// Sends `count` probes to `aws` (timed) and to `local` (not timed);
/// `label` tells the probe visitors of one call from another's.
pub async fn probe(aws: &Api, local: &Api, count: usize, seed: u64, label: &str) -> Freshness {
    let streams = (0..STREAMS).map(|s| async move {
        let mut rng = fastrand::Rng::with_seed(seed ^ ((s as u64 + 1) * 0x9e37_79b9));
        let mut out = Vec::new();
        for i in (s..count).step_by(STREAMS) {
            // Not in step with the mapping's polls.
            tokio::time::sleep(Duration::from_millis(rng.u64(100..700))).await;
            let clientid = format!("probe-{label}-{seed}-{i:03}");
            let body = serde_json::json!([{
                "clientid": clientid,
                "pageGender": "M",
                "timestamp": gender_core::time::format_rfc3339_millis(gender_core::time::system_now_ms()),
                "hitid": format!("probe-{i}"),
            }])
            .to_string();
            let (status, answer) = aws.post_hits(&body).await;
            assert_eq!(status, 202, "(f) probe {clientid}: {answer}");
            let accepted = Instant::now();
            loop {
                let (status, answer) = aws.gender(&clientid).await;
                if status == 200 {
                    break;
                }
                assert_eq!(status, 404, "(f) probe {clientid}: GET /gender answered {answer}");
                assert!(
                    accepted.elapsed() < Duration::from_secs(120),
                    "(f) probe {clientid} not visible 120 s after its 202"
                );
                tokio::time::sleep(POLL).await;
            }
            out.push((clientid.clone(), accepted.elapsed().as_millis() as u64));
            let (status, answer) = local.post_hits(&body).await;
            assert_eq!(status, 202, "(f) probe {clientid} (local): {answer}");
        }
        out
    });
    let results: Vec<(String, u64)> = futures::future::join_all(streams)
        .await
        .into_iter()
        .flatten()
        .collect();
    let mut millis: Vec<u64> = results.iter().map(|(_, ms)| *ms).collect();
    millis.sort_unstable();
    Freshness {
        millis,
        visitors: results.into_iter().map(|(v, _)| v).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let f = Freshness {
            millis: (1..=100).collect(),
            visitors: Vec::new(),
        };
        assert_eq!(f.quantile(0.5), 50);
        assert_eq!(f.quantile(0.99), 99);
        assert_eq!(f.quantile(1.0), 100);
        let one = Freshness {
            millis: vec![7],
            visitors: Vec::new(),
        };
        assert_eq!((one.quantile(0.5), one.quantile(0.99)), (7, 7));
    }
}
