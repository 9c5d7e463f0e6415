//! The daily job on AWS (SPEC 7): fired by the EventBridge schedule (the date
//! is the day before the event's `time`), or invoked with `{"date": "YYYY-MM-DD"}`
//! for a manual run or a backfill.
//!
//! At 1,000 hits/s a day's window writes take longer than one invocation
//! (docs/DEPLOY.md), so a run near its deadline saves its progress and
//! queues `{"date": ..., "continue": true}` for a new invocation of this
//! function, which resumes it. A lease (an item of the profiles table) keeps
//! a second run from working while one is active: it answers that it
//! skipped.

use gender_aws::Backoff;
use gender_aws::dynamodb::DynamoProfiles;
use gender_aws::lambda::SelfInvoke;
use gender_aws::s3::S3ObjectStore;
use gender_core::daily::DailyStop;
use gender_core::ports::{Continuation, Lease, LeaseGrant};
use gender_core::time::{format_rfc3339_millis, parse_rfc3339_millis, system_now_ms};
use gender_core::{DailySummary, Date, default_daily_date};
use gender_lambda::{ConfigError, SdkTimeouts, parsed_env, required_env};
use gender_pipeline::{DailyOptions, DailyRun, PipelineError, run_daily_with, unfinished_request};
use lambda_runtime::Diagnostic;
use serde::Serialize;
use serde_json::Value;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// `DAILY_WRITES_PER_SECOND`'s default: half of what a new on-demand table
/// serves at once (4,000 writes/s; an older one up to double its previous
/// peak), leaving the rest to the counters' own writes at the documented
/// 1,000 hits/s.
pub const DEFAULT_WRITES_PER_SECOND: u32 = 2_000;
/// Kept before the invocation's deadline: the last batch, its checkpoint,
/// the lease's release and the continuation's `Invoke` fit in far less.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(60);
/// The lease's name, its term, and how often its holder extends it: a run
/// that dies leaves it to expire within a minute, before Lambda's first
/// retry of an asynchronous invocation.
const LEASE: &str = "daily";
const LEASE_TERM: Duration = Duration::from_secs(60);
const LEASE_RENEWAL: Duration = Duration::from_secs(15);
/// Window writes retried longer than the default: a table over its rate
/// throttles for seconds, not milliseconds.
pub const WRITE_BACKOFF: Backoff = Backoff {
    attempts: 8,
    base: Duration::from_millis(50),
    cap: Duration::from_secs(5),
};

/// SDK limits per call. The largest is a rollup's `PutObject` (tens of MB
/// for a busy date, sent within the attempt): 60 s leaves a wide margin at
/// S3's tens of MB/s per connection. An operation (the SDK's 3 attempts and
/// its pauses) ends within 180 s, well inside the function's 900 s timeout,
/// so a stalled call is retried instead of running the invocation out.
pub const SDK_TIMEOUTS: SdkTimeouts = SdkTimeouts {
    attempt: std::time::Duration::from_secs(60),
    operation: std::time::Duration::from_secs(180),
};

#[derive(Debug, Clone)]
pub struct Config {
    /// `CURATED_BUCKET`: curated hits are read from and rollups written to it.
    pub curated_bucket: String,
    /// `PROFILES_TABLE_NAME`: the DynamoDB profiles table.
    pub table_name: String,
    /// `DAILY_WRITES_PER_SECOND`: window writes a second at most, below what
    /// the table takes besides its other traffic.
    pub writes_per_second: NonZeroU32,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        let rate: u32 = parsed_env("DAILY_WRITES_PER_SECOND", DEFAULT_WRITES_PER_SECOND)?;
        Ok(Config {
            curated_bucket: required_env("CURATED_BUCKET")?,
            table_name: required_env("PROFILES_TABLE_NAME")?,
            writes_per_second: NonZeroU32::new(rate).ok_or(ConfigError::InvalidEnv {
                name: "DAILY_WRITES_PER_SECOND",
                detail: "must be at least 1".into(),
            })?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DailyError {
    #[error("event must be {{\"date\": \"YYYY-MM-DD\"}} or an EventBridge scheduled event: {0}")]
    BadEvent(String),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

impl From<gender_core::PortError> for DailyError {
    fn from(e: gender_core::PortError) -> DailyError {
        DailyError::Pipeline(e.into())
    }
}

impl From<DailyError> for Diagnostic {
    /// The error type tells operators (and retry policies) whether a retry can help.
    fn from(e: DailyError) -> Diagnostic {
        let retryable = matches!(&e, DailyError::Pipeline(p) if p.retryable());
        Diagnostic {
            error_type: if retryable {
                "Retryable"
            } else {
                "NonRetryable"
            }
            .into(),
            error_message: e.to_string(),
        }
    }
}

/// Which date an event asks for.
pub fn date_of(event: &Value) -> Result<Date, DailyError> {
    if let Some(date) = event.get("date") {
        let text = date
            .as_str()
            .ok_or_else(|| DailyError::BadEvent("date is not a string".into()))?;
        return Date::parse(text).ok_or_else(|| DailyError::BadEvent(format!("date {text:?}")));
    }
    if event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
        let time = event
            .get("time")
            .and_then(Value::as_str)
            .ok_or_else(|| DailyError::BadEvent("no time".into()))?;
        let ms = parse_rfc3339_millis(time)
            .map_err(|e| DailyError::BadEvent(format!("time {time:?}: {e}")))?;
        return Ok(default_daily_date(ms));
    }
    Err(DailyError::BadEvent(event.to_string()))
}

/// Whether the event is a continuation this function queued for itself.
fn is_continuation(event: &Value) -> bool {
    event.get("continue").and_then(Value::as_bool) == Some(true)
}

/// The invocation's identity and deadline (from Lambda's context).
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Owns the lease while this invocation runs.
    pub request_id: String,
    /// Epoch milliseconds at which Lambda ends the invocation.
    pub deadline_ms: i64,
}

impl From<&lambda_runtime::Context> for Invocation {
    fn from(context: &lambda_runtime::Context) -> Invocation {
        Invocation {
            request_id: context.request_id.clone(),
            deadline_ms: i64::try_from(context.deadline).unwrap_or(i64::MAX),
        }
    }
}

/// What an invocation did (its JSON is the function's result).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum DailyReply {
    /// The run finished: the store holds the date's window.
    Complete(DailySummary),
    /// Stopped near the deadline with its progress saved; a new invocation
    /// of this function carries on.
    Continued(DailyStop),
    /// Nothing done: another run holds the lease, or there was nothing left
    /// to continue.
    Skipped { date: String, reason: String },
}

pub struct Daily {
    curated: S3ObjectStore,
    profiles: DynamoProfiles,
    continuation: Arc<dyn Continuation>,
    writes_per_second: NonZeroU32,
}

impl Daily {
    /// `function_name`: this function's (a continuation invokes it).
    pub fn new(config: Config, sdk: &aws_config::SdkConfig, function_name: &str) -> Daily {
        let profiles = DynamoProfiles::new(aws_sdk_dynamodb::Client::new(sdk), config.table_name)
            .with_backoff(WRITE_BACKOFF);
        Daily::with_ports(
            S3ObjectStore::new(gender_aws::s3::client(sdk), config.curated_bucket),
            profiles,
            Arc::new(SelfInvoke::new(
                aws_sdk_lambda::Client::new(sdk),
                function_name,
            )),
            config.writes_per_second,
        )
    }

    pub fn with_ports(
        curated: S3ObjectStore,
        profiles: DynamoProfiles,
        continuation: Arc<dyn Continuation>,
        writes_per_second: NonZeroU32,
    ) -> Daily {
        Daily {
            curated,
            profiles,
            continuation,
            writes_per_second,
        }
    }

    pub async fn handle(
        &self,
        event: &Value,
        invocation: &Invocation,
    ) -> Result<DailyReply, DailyError> {
        let date = date_of(event)?;
        let owner = &invocation.request_id;
        let now = system_now_ms();
        let term = LEASE_TERM.as_millis() as i64;
        if let LeaseGrant::HeldBy { owner, until_ms } =
            self.profiles.acquire(LEASE, owner, now, now + term).await?
        {
            tracing::info!(%date, holder = %owner, "another daily run is active; skipped");
            return Ok(DailyReply::Skipped {
                date: date.to_string(),
                reason: format!(
                    "another run (request {owner}) holds the lease until {}",
                    format_rfc3339_millis(until_ms)
                ),
            });
        }
        let lost = Arc::new(AtomicBool::new(false));
        let renewals = tokio::spawn(keep_lease(
            self.profiles.clone(),
            owner.clone(),
            lost.clone(),
        ));
        let result = self
            .run(date, is_continuation(event), invocation, &lost)
            .await;
        renewals.abort();
        if let Err(e) = self.profiles.release(LEASE, owner).await {
            tracing::warn!(error = %e, "lease not released; it expires within a minute");
        }
        let reply = result?;
        if let DailyReply::Continued(stop) = &reply {
            // Queued after the lease is released, so the new invocation can take it.
            self.continuation.continue_daily(date).await?;
            tracing::info!(%date, written = stop.windows_written, "daily run continues in a new invocation");
        }
        Ok(reply)
    }

    async fn run(
        &self,
        date: Date,
        continuing: bool,
        invocation: &Invocation,
        lost: &AtomicBool,
    ) -> Result<DailyReply, DailyError> {
        if continuing && unfinished_request(&self.curated).await? != Some(date) {
            return Ok(DailyReply::Skipped {
                date: date.to_string(),
                reason: "nothing to continue: the run finished, or another request took it over"
                    .into(),
            });
        }
        let stop_at = invocation
            .deadline_ms
            .saturating_sub(DEADLINE_MARGIN.as_millis() as i64);
        let should_stop = || system_now_ms() >= stop_at || lost.load(Ordering::Relaxed);
        let options = DailyOptions {
            writes_per_second: Some(self.writes_per_second),
            should_stop: Some(&should_stop),
            // The erase function does not rewrite the window sums file yet,
            // so on AWS each run merges every rollup of both windows.
            window_file: false,
            ..DailyOptions::default()
        };
        let run = run_daily_with(
            &self.curated,
            &self.profiles,
            date,
            system_now_ms(),
            &options,
        )
        .await?;
        Ok(match run {
            DailyRun::Complete(summary) => DailyReply::Complete(summary),
            DailyRun::Stopped(_) if lost.load(Ordering::Relaxed) => DailyReply::Skipped {
                date: date.to_string(),
                reason:
                    "the lease was lost to another run, which carries on from the progress saved"
                        .into(),
            },
            DailyRun::Stopped(stop) => DailyReply::Continued(stop),
        })
    }
}

/// Extends the lease while the run works; marks it `lost` if another run
/// took it (after renewals failed for a whole term).
async fn keep_lease(profiles: DynamoProfiles, owner: String, lost: Arc<AtomicBool>) {
    loop {
        tokio::time::sleep(LEASE_RENEWAL).await;
        let now = system_now_ms();
        let term = LEASE_TERM.as_millis() as i64;
        match profiles.acquire(LEASE, &owner, now, now + term).await {
            Ok(LeaseGrant::Granted) => {}
            Ok(LeaseGrant::HeldBy { owner: holder, .. }) => {
                tracing::warn!(%holder, "daily lease lost; stopping");
                lost.store(true, Ordering::Relaxed);
                return;
            }
            Err(e) => tracing::warn!(error = %e, "daily lease not renewed; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates_from_manual_and_scheduled_events() {
        assert_eq!(
            date_of(&json!({"date": "2026-11-20"})).unwrap().to_string(),
            "2026-11-20"
        );
        let scheduled = json!({"detail-type": "Scheduled Event", "source": "aws.events", "time": "2026-11-24T01:00:00Z"});
        assert_eq!(date_of(&scheduled).unwrap().to_string(), "2026-11-23");
        assert!(matches!(
            date_of(&json!({"date": "2026-02-30"})),
            Err(DailyError::BadEvent(_))
        ));
        assert!(matches!(
            date_of(&json!({"hello": 1})),
            Err(DailyError::BadEvent(_))
        ));
        let diagnostic: Diagnostic = date_of(&json!({})).unwrap_err().into();
        assert_eq!(diagnostic.error_type, "NonRetryable");
        let continuation = json!({"date": "2026-11-20", "continue": true});
        assert!(is_continuation(&continuation) && !is_continuation(&scheduled));
        assert_eq!(date_of(&continuation).unwrap().to_string(), "2026-11-20");
    }

    #[test]
    fn replies_say_what_happened() {
        let skipped = DailyReply::Skipped {
            date: "2026-11-20".into(),
            reason: "busy".into(),
        };
        assert_eq!(
            serde_json::to_value(&skipped).unwrap(),
            json!({"outcome": "skipped", "date": "2026-11-20", "reason": "busy"})
        );
        let continued = DailyReply::Continued(DailyStop {
            date: "2026-11-20".into(),
            requested: "2026-11-20".into(),
            windows_written: 5,
            signals_cleared: 1,
        });
        assert_eq!(
            serde_json::to_value(&continued).unwrap()["outcome"],
            "continued"
        );
    }
}
