//! Goose load test of Gender Service (SPEC 12): `POST /hits` and
//! `GET /gender/{clientid}` at a fixed total rate (optionally with erasures,
//! SPEC 17), bodies validated, reports written by Goose, and a verdict
//! against the error-rate, p99, hit-to-visible and erasure thresholds.

pub mod duplicates;
pub mod erasure;
pub mod options;
pub mod scenarios;
pub mod seed;
pub mod validate;
pub mod visibility;
pub mod workload;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use goose::metrics::GooseMetrics;
use goose::prelude::*;

use erasure::{ErasureLog, ErasureReport};
use options::{Cli, WorkloadOptions};
use visibility::VisibilityReport;

#[derive(Debug, thiserror::Error)]
pub enum LoadTestError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("seeding known visitors: {0}")]
    Seed(String),
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    #[error(transparent)]
    Goose(Box<GooseError>),
}

/// The target host with its credential, for the requests made outside Goose
/// (seeding and visibility probes).
pub struct Target {
    client: reqwest::Client,
    base: String,
    api_key: String,
}

impl Target {
    pub fn new(host: &str, api_key: &str) -> Result<Self, LoadTestError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Target {
            client,
            base: host.trim_end_matches('/').to_string(),
            api_key: api_key.to_string(),
        })
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .get(format!("{}{path}", self.base))
            .header("x-api-key", &self.api_key)
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}{path}", self.base))
            .header("x-api-key", &self.api_key)
    }
}

/// What the run found: Goose's metrics and every threshold that failed.
pub struct Verdict {
    pub failures: Vec<String>,
}

/// Seeds, runs Goose (with the visibility probes alongside), prints the
/// summary and judges the thresholds.
pub async fn run(cli: Cli) -> Result<Verdict, LoadTestError> {
    let workload = cli.workload;
    let goose_config = options::goose_configuration(&workload, cli.goose)?;
    let host = goose_config.host.clone().unwrap_or_default();
    let target = Arc::new(Target::new(&host, &workload.api_key)?);

    if workload.lookup_percent > 0 && workload.unknown_percent < 100 {
        println!(
            "seeding {} known visitors on {host}",
            workload.known_visitors
        );
        seed::seed_known_visitors(&target, workload.known_visitors).await?;
    }

    let stop_probes = Arc::new(AtomicBool::new(false));
    let probes = tokio::spawn(visibility::measure(
        Arc::clone(&target),
        workload.visibility_probes,
        Arc::clone(&stop_probes),
    ));

    let ledger = Arc::new(duplicates::Ledger::new());
    let erasures = Arc::new(ErasureLog::default());
    let users = goose_config.users.unwrap_or_default();
    let mut attack = GooseAttack::initialize_with_config(goose_config).map_err(boxed)?;
    let scenarios =
        scenarios::scenarios(&workload, users, Arc::clone(&ledger), Arc::clone(&erasures))
            .map_err(boxed)?;
    for scenario in scenarios {
        attack = attack.register_scenario(scenario);
    }
    let (metrics, mut failures) = match attack.execute().await {
        Ok(metrics) => (metrics, Vec::new()),
        Err(GooseError::ThresholdsFailed { failed, metrics }) => {
            let reasons = failed
                .iter()
                .map(|rule| format!("threshold {} failed: observed {}", rule.rule, rule.observed))
                .collect();
            (*metrics.0, reasons)
        }
        Err(error) => return Err(boxed(error)),
    };
    stop_probes.store(true, Ordering::Relaxed);
    let visibility = probes.await.unwrap_or_default();

    print_summary(&workload, &metrics);
    if workload.visibility_probes > 0 {
        print_visibility(&visibility);
        failures.extend(visibility_failures(&workload, &visibility));
    }
    if workload.erases() {
        let report = erasures.report(Instant::now(), workload.erasure_bound());
        print_erasures(&report, workload.erasure_bound());
        failures.extend(report.failures(workload.erasure_bound()));
    }
    if workload.duplicate_percent > 0 {
        let report = duplicates::check(
            &target,
            &ledger,
            workload.duplicate_sample,
            Duration::from_secs(30),
        )
        .await?;
        println!(
            "duplicates: {} distinct hits accepted, {} hits resent; {} visitors checked, {} miscounted",
            report.distinct_hits,
            report.resent_hits,
            report.visitors_checked,
            report.mismatched.len()
        );
        for (clientid, want, found) in report.mismatched.iter().take(10) {
            failures.push(format!(
                "duplicates: {clientid} counts {found:?} (M, F), its distinct hits are {want:?}"
            ));
        }
        if report.visitors_checked == 0 {
            failures.push("duplicates: no accepted hit to check".to_owned());
        }
    }
    Ok(Verdict { failures })
}

fn boxed(error: GooseError) -> LoadTestError {
    LoadTestError::Goose(Box::new(error))
}

fn millis(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// One line per request name, plus the hits per second ingest achieved.
fn print_summary(workload: &WorkloadOptions, metrics: &GooseMetrics) {
    let seconds = metrics.duration.max(1) as f64;
    let mut names: Vec<&String> = metrics.requests.keys().collect();
    names.sort();
    println!("\n== Gender Service load test summary ({seconds} s measured)");
    println!(
        "{:<34} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "request", "requests", "failed", "req/s", "p50 ms", "p99 ms", "max ms"
    );
    let mut hits_accepted = 0usize;
    for name in names {
        let request = &metrics.requests[name];
        let timing = &request.raw_data;
        let total = request.success_count + request.fail_count;
        println!(
            "{:<34} {:>9} {:>7} {:>9.1} {:>9.2} {:>9.2} {:>9.2}",
            name,
            total,
            request.fail_count,
            total as f64 / seconds,
            millis(timing.percentile_us(0.5)),
            millis(timing.percentile_us(0.99)),
            millis(timing.maximum_time_us),
        );
        if name.ends_with(scenarios::INGEST_RESEND) {
            // Resent hits are not new hits.
        } else if name.ends_with(scenarios::INGEST_BATCH) {
            hits_accepted += request.success_count * usize::from(workload.batch_size);
        } else if name.ends_with(scenarios::INGEST_SINGLE) {
            hits_accepted += request.success_count;
        }
    }
    if workload.ingest_percent() > 0 {
        println!(
            "ingest: {hits_accepted} hits accepted, {:.0} hits/s",
            hits_accepted as f64 / seconds
        );
    }
}

fn print_visibility(report: &VisibilityReport) {
    let show = |value: Option<Duration>| {
        value.map_or("-".into(), |d| format!("{:.0}", d.as_secs_f64() * 1000.0))
    };
    println!(
        "hit-to-visible: {} samples, p50 {} ms, p99 {} ms, max {} ms, {} not visible in 10 s, {} probe errors",
        report.latencies.len(),
        show(report.percentile(50.0)),
        show(report.percentile(99.0)),
        show(report.max()),
        report.not_visible,
        report.probe_errors,
    );
}

fn print_erasures(report: &ErasureReport, bound: Duration) {
    let ms = |d: Duration| format!("{:.0}", d.as_secs_f64() * 1000.0);
    let spread = report.spread().map_or_else(
        || "-".to_owned(),
        |(min, median, max)| {
            format!(
                "min {} / median {} / max {} ms",
                ms(min),
                ms(median),
                ms(max)
            )
        },
    );
    let pending = report.still_pending.map_or_else(String::new, |age| {
        format!(", 1 still pending at the end ({} ms old)", ms(age))
    });
    println!(
        "erasures: {} requested, {} complete, time to complete {spread}; {} not complete within {} s{pending}",
        report.requested,
        report.completed.len(),
        report.never_completed,
        bound.as_secs(),
    );
}

fn visibility_failures(workload: &WorkloadOptions, report: &VisibilityReport) -> Vec<String> {
    let mut failures = Vec::new();
    if report.latencies.is_empty() {
        failures.push("hit-to-visible: no probe completed".to_string());
    }
    if report.not_visible + report.probe_errors > 0 {
        failures.push(format!(
            "hit-to-visible: {} hits never became visible, {} probe requests failed",
            report.not_visible, report.probe_errors
        ));
    }
    if let (Some(limit), Some(max)) = (workload.max_visible_ms, report.max()) {
        let max_ms = max.as_secs_f64() * 1000.0;
        if max_ms > limit {
            failures.push(format!(
                "hit-to-visible max {max_ms:.0} ms is over {limit} ms"
            ));
        }
    }
    failures
}
