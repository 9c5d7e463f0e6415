//! Hit-to-visible latency: the time from a hit's `202` until `GET /gender`
//! reflects it (SPEC 9: "within about 2 s"). Each probe posts a hit for a
//! brand-new visitor, so the first `200` is exactly that hit showing up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;

use crate::{Target, validate, workload};

/// How often a probe asks; small against the 1 s delivery interval.
const POLL_EVERY: Duration = Duration::from_millis(20);
/// A hit not visible by then counts as lost.
const GIVE_UP_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub struct VisibilityReport {
    /// One latency for each hit that became visible, sorted.
    pub latencies: Vec<Duration>,
    /// Hits still invisible after [`GIVE_UP_AFTER`].
    pub not_visible: usize,
    /// Probe requests that failed outright (status or transport).
    pub probe_errors: usize,
}

impl VisibilityReport {
    /// Nearest-rank percentile of the visible samples.
    pub fn percentile(&self, percent: f64) -> Option<Duration> {
        if self.latencies.is_empty() {
            return None;
        }
        let rank = (percent / 100.0 * self.latencies.len() as f64).ceil() as usize;
        Some(self.latencies[rank.clamp(1, self.latencies.len()) - 1])
    }

    pub fn max(&self) -> Option<Duration> {
        self.latencies.last().copied()
    }

    fn merge(&mut self, other: VisibilityReport) {
        self.latencies.extend(other.latencies);
        self.not_visible += other.not_visible;
        self.probe_errors += other.probe_errors;
    }
}

/// Runs `probes` probe loops until `stop` is set, then returns every sample.
pub async fn measure(target: Arc<Target>, probes: u16, stop: Arc<AtomicBool>) -> VisibilityReport {
    let run = format!("{:08x}", fastrand::u32(..));
    let loops: Vec<_> = (0..probes)
        .map(|probe| {
            let target = Arc::clone(&target);
            let stop = Arc::clone(&stop);
            let prefix = format!("loadtest-probe-{run}-{probe}");
            tokio::spawn(async move { probe_loop(&target, &prefix, &stop).await })
        })
        .collect();
    let mut report = VisibilityReport::default();
    for probe in loops {
        if let Ok(partial) = probe.await {
            report.merge(partial);
        }
    }
    report.latencies.sort_unstable();
    report
}

async fn probe_loop(target: &Target, prefix: &str, stop: &AtomicBool) -> VisibilityReport {
    let mut report = VisibilityReport::default();
    let mut sample = 0u64;
    while !stop.load(Ordering::Relaxed) {
        // A random pause spreads the posts over the delivery interval.
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..250))).await;
        let clientid = format!("{prefix}-{sample}");
        sample += 1;
        match probe_once(target, &clientid).await {
            Ok(Some(latency)) => report.latencies.push(latency),
            Ok(None) => report.not_visible += 1,
            Err(_) => report.probe_errors += 1,
        }
    }
    report
}

/// `Some(latency)` once visible, `None` if it never shows within the limit.
async fn probe_once(target: &Target, clientid: &str) -> Result<Option<Duration>, reqwest::Error> {
    let accepted = target
        .post("/hits")
        .header(CONTENT_TYPE, "application/json")
        .body(workload::hit_json(clientid))
        .send()
        .await?
        .error_for_status()?;
    let acknowledged = Instant::now();
    drop(accepted);
    let path = format!("/gender/{clientid}");
    while acknowledged.elapsed() < GIVE_UP_AFTER {
        let response = target.get(&path).send().await?;
        if response.status() == StatusCode::OK {
            let seen = acknowledged.elapsed();
            if validate::hit_total(&response.text().await?) == Some(1) {
                return Ok(Some(seen));
            }
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let report = VisibilityReport {
            latencies: (1..=100).map(Duration::from_millis).collect(),
            ..VisibilityReport::default()
        };
        assert_eq!(report.percentile(50.0), Some(Duration::from_millis(50)));
        assert_eq!(report.percentile(99.0), Some(Duration::from_millis(99)));
        assert_eq!(report.percentile(100.0), Some(Duration::from_millis(100)));
        assert_eq!(report.max(), Some(Duration::from_millis(100)));
        assert_eq!(VisibilityReport::default().percentile(50.0), None);
    }
}
