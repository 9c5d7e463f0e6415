//! Start-up pieces shared by the Lambda crates under `functions/`: logging
//! that Lambda's log controls understand, the environment read once at cold
//! start, and the SDK configuration.

use gender_core::seen_set::Horizon;
use std::time::Duration;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// A function's environment is missing or wrong: the cold start fails with
/// the variable's name (not retryable: the configuration must change).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    MissingEnv(&'static str),
    #[error("environment variable {name} is invalid: {detail}")]
    InvalidEnv { name: &'static str, detail: String },
}

/// Reads a required environment variable, naming it when missing.
pub fn required_env(name: &'static str) -> Result<String, ConfigError> {
    optional_env(name).ok_or(ConfigError::MissingEnv(name))
}

/// Reads an optional environment variable; blank counts as unset.
pub fn optional_env(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Parses an optional environment variable, `default` when unset.
pub fn parsed_env<T>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match optional_env(name) {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse()
            .map_err(|e: T::Err| ConfigError::InvalidEnv {
                name,
                detail: format!("{text:?}: {e}"),
            }),
    }
}

/// `DEDUP_HORIZON_SECONDS` when unset: one hour (SPEC 15).
pub const DEFAULT_DEDUP_HORIZON_SECONDS: u64 = 3600;

/// `DEDUP_HORIZON_SECONDS` (curate and the stream consumer): whole seconds,
/// at most 7 days; empty or unset is one hour, `0` turns deduplication off.
pub fn dedup_horizon(value: Option<&str>) -> Result<Option<Horizon>, ConfigError> {
    let seconds = match value.map(str::trim) {
        None | Some("") => DEFAULT_DEDUP_HORIZON_SECONDS,
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|&s| s <= 7 * 86_400)
            .ok_or_else(|| ConfigError::InvalidEnv {
                name: "DEDUP_HORIZON_SECONDS",
                detail: format!("{text:?}: use whole seconds from 0 (off) to 604800"),
            })?,
    };
    Ok(Horizon::from_seconds(seconds))
}

/// [`dedup_horizon`] of the environment.
pub fn dedup_horizon_from_env() -> Result<Option<Horizon>, ConfigError> {
    dedup_horizon(std::env::var("DEDUP_HORIZON_SECONDS").ok().as_deref())
}

/// Per-call limits for SDK operations. A request-serving function sets them
/// below API Gateway's 30 s integration timeout, so a hung call ends in the
/// function's own JSON error instead of the gateway's.
#[derive(Debug, Clone, Copy)]
pub struct SdkTimeouts {
    /// One HTTP attempt.
    pub attempt: Duration,
    /// One operation, the SDK's own retries included.
    pub operation: Duration,
}

/// Loads the SDK configuration once (credentials, region, and
/// `AWS_ENDPOINT_URL` when pointing at an emulator).
pub async fn load_sdk_config(timeouts: Option<SdkTimeouts>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(t) = timeouts {
        loader = loader.timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(t.attempt)
                .operation_timeout(t.operation)
                .build(),
        );
    }
    loader.load().await
}

/// The log filter Lambda's advanced logging controls ask for
/// (`AWS_LAMBDA_LOG_LEVEL`), else `RUST_LOG`, else `info`. Lambda's FATAL
/// has no tracing level: it keeps errors only.
fn log_filter(lambda_level: Option<&str>, rust_log: Option<&str>) -> EnvFilter {
    let level = lambda_level.or(rust_log).unwrap_or("info").to_lowercase();
    let level = if level == "fatal" {
        "error".to_owned()
    } else {
        level
    };
    EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Logs to stdout for CloudWatch. With `AWS_LAMBDA_LOG_FORMAT=JSON` every
/// line is a JSON object with `timestamp` (RFC 3339) and `level`, which
/// Lambda needs to filter by level (without a timestamp it files every line
/// as INFO and a WARN/ERROR setting drops them all). Plain text carries no
/// time (CloudWatch stamps each line) and no colours.
pub fn init_tracing() {
    let lambda_level = std::env::var("AWS_LAMBDA_LOG_LEVEL").ok();
    let rust_log = std::env::var("RUST_LOG").ok();
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    install(
        log_filter(lambda_level.as_deref(), rust_log.as_deref()),
        json,
        std::io::stdout,
    );
}

fn install<W>(filter: EnvFilter, json: bool, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let logger = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(false)
        .with_writer(writer);
    if json {
        logger.json().flatten_event(true).init();
    } else {
        logger.without_time().init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The one test that installs the global subscriber (once per process).
    #[test]
    fn json_lines_carry_the_timestamp_and_level_lambda_filters_on() {
        let captured = Captured::default();
        let sink = captured.clone();
        install(log_filter(Some("WARN"), None), true, move || sink.clone());
        tracing::info!("filtered out at WARN");
        tracing::error!(object = "raw/a", "curate failed");
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let line: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(line["level"], "ERROR");
        assert_eq!(line["message"], "curate failed");
        assert_eq!(line["object"], "raw/a");
        // RFC 3339 with a UTC offset: what Lambda parses.
        let timestamp = line["timestamp"].as_str().expect("timestamp");
        assert!(
            timestamp.len() >= 20 && timestamp.as_bytes()[10] == b'T' && timestamp.ends_with('Z'),
            "{timestamp}"
        );
    }

    #[test]
    fn every_lambda_level_maps_to_a_filter() {
        for (level, expect) in [
            ("TRACE", "trace"),
            ("DEBUG", "debug"),
            ("INFO", "info"),
            ("WARN", "warn"),
            ("ERROR", "error"),
            ("FATAL", "error"),
        ] {
            assert_eq!(log_filter(Some(level), None).to_string(), expect, "{level}");
        }
        assert_eq!(log_filter(None, Some("debug")).to_string(), "debug");
        assert_eq!(log_filter(None, None).to_string(), "info");
    }

    #[test]
    fn env_values_are_parsed_with_the_variable_named() {
        assert_eq!(parsed_env::<u64>("GENDER_LAMBDA_TEST_UNSET", 7).unwrap(), 7);
        let err = required_env("GENDER_LAMBDA_TEST_UNSET").unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable GENDER_LAMBDA_TEST_UNSET is not set"
        );
    }
}
