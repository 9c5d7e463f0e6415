//! A dead-letter queue on SQS for records a function cannot process and must
//! not retry (the stream consumer's poison records): each one becomes a
//! message an operator can read, fix and replay.

use crate::error::is_retryable_sdk_error;
use crate::{AwsError, Backoff};

/// SQS allows messages of up to 256 KiB.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

#[derive(Clone)]
pub struct DeadLetters {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    backoff: Backoff,
}

impl DeadLetters {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        DeadLetters {
            client,
            queue_url: queue_url.into(),
            backoff: Backoff::default(),
        }
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// `SendMessage` of `body` (at most [`MAX_MESSAGE_BYTES`]: the caller
    /// trims what it sends), retried while SQS throttles or fails.
    pub async fn send(&self, body: String) -> Result<(), AwsError> {
        let mut last = String::new();
        for attempt in 0..self.backoff.attempts {
            if attempt > 0 {
                self.backoff.pause(attempt).await;
            }
            match self
                .client
                .send_message()
                .queue_url(&self.queue_url)
                .message_body(body.clone())
                .send()
                .await
            {
                Ok(_) => return Ok(()),
                Err(err) if is_retryable_sdk_error(&err) => {
                    last = format!("{}", aws_sdk_sqs::error::DisplayErrorContext(&err));
                }
                Err(err) => return Err(AwsError::sdk("SendMessage", false, err)),
            }
        }
        Err(AwsError::Exhausted {
            operation: "SendMessage",
            attempts: self.backoff.attempts,
            last,
        })
    }
}
