//! The command line: our workload knobs next to every Goose option.
//!
//! Goose already owns the generic ones (`--host`, `--users`, `--run-time`,
//! `--report-file`, ...), so they are flattened in unchanged; ours say what
//! traffic to send and when the run fails. Each of ours can also come from a
//! `LOADTEST_*` environment variable, which is how `scripts/loadtest` and CI
//! pass them.

use std::time::Duration;

use clap::{Args, Parser};
use goose::config::GooseConfiguration;

use crate::LoadTestError;

#[derive(Parser)]
#[command(
    name = "gender-loadtest",
    about = "Load test of Gender Service: POST /hits and GET /gender/{clientid} at a fixed total rate",
    long_about = None
)]
pub struct Cli {
    #[command(flatten)]
    pub workload: WorkloadOptions,

    #[command(flatten)]
    pub goose: GooseConfiguration,
}

#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Gender Service workload")]
pub struct WorkloadOptions {
    /// Total requests per second over every user (Goose's --throttle-requests); 0 = unthrottled.
    #[arg(long, env = "LOADTEST_RPS", default_value_t = 1000)]
    pub rps: usize,

    /// Share of users that run the lookup scenario, in percent; the rest ingest.
    #[arg(long, env = "LOADTEST_LOOKUP_PERCENT", default_value_t = 80, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub lookup_percent: u8,

    /// Share of lookups that ask for a never-seen id (expecting 404), in percent.
    #[arg(long, env = "LOADTEST_UNKNOWN_PERCENT", default_value_t = 10, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub unknown_percent: u8,

    /// Share of ingest requests sent as a JSON array of --batch-size hits, in percent; the rest send one hit.
    #[arg(long, env = "LOADTEST_BATCH_PERCENT", default_value_t = 50, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub batch_percent: u8,

    /// Hits per batched ingest request (SPEC 3 allows 1..=500).
    #[arg(long, env = "LOADTEST_BATCH_SIZE", default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=500))]
    pub batch_size: u16,

    /// Distinct visitor ids the ingest scenario spreads its hits over.
    #[arg(long, env = "LOADTEST_VISITORS", default_value_t = 100_000)]
    pub visitors: u64,

    /// Visitors seeded before the run so that "known" lookups answer 200.
    #[arg(long, env = "LOADTEST_KNOWN_VISITORS", default_value_t = 1_000)]
    pub known_visitors: u32,

    /// The x-api-key credential.
    #[arg(long, env = "GENDER_API_KEY", hide_env_values = true)]
    pub api_key: String,

    /// Fail the run when more than this percent of requests fail.
    #[arg(long, env = "LOADTEST_MAX_ERROR_RATE", default_value_t = 0.0)]
    pub max_error_rate: f64,

    /// Fail the run when the p99 latency over all requests exceeds this many milliseconds.
    #[arg(long, env = "LOADTEST_MAX_P99_MS")]
    pub max_p99_ms: Option<f64>,

    /// Share of ingest requests that resend an earlier accepted body verbatim, in percent;
    /// above 0 every hit carries a producer hitid and the run ends by checking that
    /// profiles count each distinct hit once (SPEC 15).
    #[arg(long, env = "LOADTEST_DUPLICATE_PERCENT", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub duplicate_percent: u8,

    /// Visitors whose counts the duplicate check compares after the run.
    #[arg(long, env = "LOADTEST_DUPLICATE_SAMPLE", default_value_t = 500)]
    pub duplicate_sample: usize,

    /// Concurrent hit-to-visible probes during the run (POST a new visitor, poll GET until it shows); 0 = off.
    #[arg(long, env = "LOADTEST_VISIBILITY_PROBES", default_value_t = 0)]
    pub visibility_probes: u16,

    /// Fail the run when any probe waits longer than this many milliseconds for its hit to show.
    #[arg(long, env = "LOADTEST_MAX_VISIBLE_MS")]
    pub max_visible_ms: Option<f64>,

    /// Every this many seconds one of the users erases a visitor of the ingest pool
    /// (DELETE /visitors/{id}) and polls GET /erasures/{id} until it is complete; 0 = off.
    #[arg(long, env = "LOADTEST_ERASE_EVERY_SECS", default_value_t = 0)]
    pub erase_every_secs: u64,

    /// Fail the run when an erasure is not complete this many seconds after its 202.
    #[arg(long, env = "LOADTEST_MAX_ERASURE_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_erasure_secs: u64,
}

/// Users Goose starts when `--users` is not given: enough to hold 1,000 rps
/// with a few milliseconds of latency each.
const DEFAULT_USERS: usize = 32;

impl WorkloadOptions {
    pub fn ingest_percent(&self) -> u8 {
        100 - self.lookup_percent
    }

    pub fn erases(&self) -> bool {
        self.erase_every_secs > 0
    }

    pub fn erase_every(&self) -> Duration {
        Duration::from_secs(self.erase_every_secs)
    }

    /// How long an erasure may take before it counts as never completed.
    pub fn erasure_bound(&self) -> Duration {
        Duration::from_secs(self.max_erasure_secs)
    }

    /// Users each scenario needs at least: one per traffic scenario, plus the eraser.
    fn min_users(&self) -> usize {
        usize::from(self.ingest_percent() > 0)
            + usize::from(self.lookup_percent > 0)
            + usize::from(self.erases())
    }

    /// Goose thresholds for our limits, so they appear in its reports too.
    pub fn thresholds(&self) -> Vec<String> {
        let mut rules = vec![format!("error-rate<={}%", self.max_error_rate)];
        if let Some(p99) = self.max_p99_ms {
            rules.push(format!("p99<={p99}ms"));
        }
        rules
    }
}

/// The `--throttle-requests` value that yields `rps`. Goose's throttle releases
/// its tokens every `max(10 ms, 1 s / rate)` and tokio's timer wakes it about
/// 1 ms late each time, so asking for `rps` gives 10/11 of it at 100 rps and
/// above (measured: 903 for 1,000); ask for a little more to cancel that.
pub fn throttle_for(rps: usize) -> usize {
    let rps = rps as f64;
    let period_ms = (1000.0 / rps).max(10.0);
    (rps * (period_ms + 1.0) / period_ms).round() as usize
}

/// Applies our knobs to Goose's configuration; Goose flags given explicitly win.
pub fn goose_configuration(
    workload: &WorkloadOptions,
    mut goose: GooseConfiguration,
) -> Result<GooseConfiguration, LoadTestError> {
    if goose.host.is_none() {
        return Err(LoadTestError::Config(
            "no target: pass --host http://127.0.0.1:PORT (or https://...)".into(),
        ));
    }
    if !(0.0..100.0).contains(&workload.max_error_rate) {
        return Err(LoadTestError::Config(
            "--max-error-rate must be at least 0 and below 100".into(),
        ));
    }
    if workload.lookup_percent > 0 && workload.unknown_percent < 100 && workload.known_visitors == 0
    {
        return Err(LoadTestError::Config(
            "known lookups need --known-visitors of at least 1".into(),
        ));
    }
    if workload.erases() && workload.duplicate_percent > 0 {
        return Err(LoadTestError::Config(
            "--erase-every-secs cannot run with --duplicate-percent: the duplicate check expects \
             every accepted hit of its visitors to be counted, and an erasure removes some"
                .into(),
        ));
    }
    if workload.erases() && workload.ingest_percent() == 0 {
        return Err(LoadTestError::Config(
            "--erase-every-secs erases visitors of the ingest pool: it needs ingest \
             (--lookup-percent below 100)"
                .into(),
        ));
    }
    if workload.rps > 0 && goose.throttle_requests.is_none() {
        goose.throttle_requests = Some(throttle_for(workload.rps));
    }
    let users = *goose.users.get_or_insert(DEFAULT_USERS);
    if users < workload.min_users() {
        return Err(LoadTestError::Config(format!(
            "this mix needs at least {} users (one per scenario)",
            workload.min_users()
        )));
    }
    // Start every user within the first second; Goose's default is one per second.
    goose.increase_rate.get_or_insert_with(|| users.to_string());
    goose.threshold.extend(workload.thresholds());
    // Report the whole run rather than stopping at the first slow second.
    goose.no_threshold_abort = true;
    Ok(goose)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The configuration from these arguments, or the error's text.
    fn configure(args: &[&str]) -> Result<GooseConfiguration, String> {
        let base = [
            "gender-loadtest",
            "--host",
            "http://127.0.0.1:1",
            "--api-key",
            "k",
        ];
        let cli = Cli::try_parse_from(base.iter().chain(args)).map_err(|e| e.to_string())?;
        goose_configuration(&cli.workload, cli.goose).map_err(|e| e.to_string())
    }

    #[test]
    fn erasure_is_off_by_default_and_refused_with_the_duplicate_check() {
        let cli = Cli::try_parse_from(["gender-loadtest", "--api-key", "k"]).unwrap();
        assert!(!cli.workload.erases());
        assert!(configure(&["--erase-every-secs", "5"]).is_ok());
        assert!(configure(&["--duplicate-percent", "10"]).is_ok());
        let both = configure(&["--erase-every-secs", "5", "--duplicate-percent", "10"]);
        assert!(both.unwrap_err().contains("--duplicate-percent"));
    }

    #[test]
    fn erasure_needs_ingest_and_a_user_of_its_own() {
        let no_ingest = configure(&["--erase-every-secs", "5", "--lookup-percent", "100"]);
        assert!(no_ingest.unwrap_err().contains("ingest"));
        let two = configure(&["--erase-every-secs", "5", "--users", "2"]);
        assert!(two.unwrap_err().contains("at least 3 users"));
        assert!(configure(&["--erase-every-secs", "5", "--users", "3"]).is_ok());
        assert!(configure(&["--users", "2"]).is_ok());
        assert!(configure(&["--max-erasure-secs", "0"]).is_err());
    }

    #[test]
    fn throttle_compensates_the_late_timer() {
        assert_eq!(throttle_for(1000), 1100);
        assert_eq!(throttle_for(200), 220);
        // Below 100 rps one token per period: 50 rps sleeps 20 ms, wakes at 21.
        assert_eq!(throttle_for(50), 53);
    }
}
