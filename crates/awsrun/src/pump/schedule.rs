//! EventBridge's schedule -> the daily function (`terraform/modules/
//! schedule`): the scheduled event (`detail-type: Scheduled Event`, `time`
//! the firing time, 01:00 UTC of the day after the date to run), invoked
//! asynchronously, so a failed invocation is retried (Lambda's async
//! retries), and the function's own continuations (it invokes itself when
//! its 15 minutes run out) delivered as Lambda would: a new invocation
//! with the continuation event.
//!
//! Each invocation is given a deadline just past the function's margin, so
//! that a run longer than [`SLICE`] stops with its progress saved and
//! continues in a new invocation, the path a run at scale takes.

use async_trait::async_trait;
use gender_core::ports::Continuation;
use gender_core::{Date, PortError};
use gender_daily::{Daily, DailyReply, Invocation};
use std::sync::Mutex;
use std::time::Duration;

/// Work one invocation may do before its deadline's margin.
pub const SLICE: Duration = Duration::from_secs(2);
/// Lambda's retries of a failed asynchronous invocation.
pub const ASYNC_RETRIES: u32 = 2;

/// The self-invocations the function asked for.
#[derive(Default)]
pub struct Continuations(Mutex<Vec<Date>>);

#[async_trait]
impl Continuation for Continuations {
    async fn continue_daily(&self, date: Date) -> Result<(), PortError> {
        self.0.lock().unwrap().push(date);
        Ok(())
    }
}

impl Continuations {
    fn take(&self) -> Option<Date> {
        self.0.lock().unwrap().pop()
    }
}

/// What the schedule's firing came to.
#[derive(Debug, Clone)]
pub struct DailyOutcome {
    pub invocations: u32,
    pub continuations: u32,
    pub retries: u32,
    pub reply: DailyReply,
}

/// The scheduled event that runs the job for `date`.
pub fn scheduled_event(date: Date) -> serde_json::Value {
    serde_json::json!({
        "version": "0",
        "id": format!("awsrun-{date}"),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": format!("{}T01:00:00Z", date.add_days(1)),
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/gs-run-daily"],
        "detail": {},
    })
}

/// Fires the schedule for `date` and follows the job to its end.
pub async fn fire(daily: &Daily, continuations: &Continuations, date: Date) -> DailyOutcome {
    let mut event = scheduled_event(date);
    let mut outcome = DailyOutcome {
        invocations: 0,
        continuations: 0,
        retries: 0,
        reply: DailyReply::Skipped {
            date: date.to_string(),
            reason: "not run".into(),
        },
    };
    let mut failures = 0;
    loop {
        outcome.invocations += 1;
        assert!(
            outcome.invocations < 1000,
            "(e) the daily job did not finish in 1000 invocations"
        );
        let now = gender_core::time::system_now_ms();
        let invocation = Invocation {
            request_id: format!("awsrun-daily-{}", outcome.invocations),
            deadline_ms: now + (gender_daily::DEADLINE_MARGIN + SLICE).as_millis() as i64,
        };
        match daily.handle(&event, &invocation).await {
            Ok(reply) => {
                failures = 0;
                if let Some(next) = continuations.take() {
                    outcome.continuations += 1;
                    event =
                        serde_json::from_slice(&gender_aws::lambda::daily_continuation_event(next))
                            .expect("the continuation event is JSON");
                    continue;
                }
                if matches!(reply, DailyReply::Continued(_)) {
                    panic!("(e) the daily job stopped to continue but asked for no continuation");
                }
                outcome.reply = reply;
                return outcome;
            }
            Err(error) => {
                failures += 1;
                outcome.retries += 1;
                assert!(
                    failures <= ASYNC_RETRIES,
                    "(e) the daily job failed {failures} times in a row (Lambda's async retries \
                     exhausted): {error}"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
