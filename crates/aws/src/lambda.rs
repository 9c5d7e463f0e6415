//! A function handing the rest of its work to a new invocation of itself:
//! an asynchronous `Invoke` (`InvocationType=Event`) of its own name, which
//! Lambda queues and answers with 202 at once.
//!
//! Limits that apply (Lambda API reference, `Invoke`): an asynchronous
//! payload of at most 1 MB (this one is a few dozen bytes);
//! `TooManyRequestsException` when the account or function is out of
//! concurrency (retried here, then by the caller's own retry); and Lambda's
//! recursive loop detection, which stops a chain of invocations of the same
//! function caused by one event after 16 (`RecursiveInvocationException`):
//! the daily job needs a handful at most (docs/DEPLOY.md).

use crate::error::is_retryable_sdk_error;
use crate::{AwsError, Backoff};
use async_trait::async_trait;
use aws_sdk_lambda::Client;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use gender_core::ports::Continuation;
use gender_core::{Date, PortError};

#[derive(Clone)]
pub struct SelfInvoke {
    client: Client,
    function_name: String,
    backoff: Backoff,
}

impl SelfInvoke {
    /// `function_name`: the function's own (Lambda sets `AWS_LAMBDA_FUNCTION_NAME`).
    pub fn new(client: Client, function_name: impl Into<String>) -> SelfInvoke {
        SelfInvoke {
            client,
            function_name: function_name.into(),
            backoff: Backoff::default(),
        }
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Queues an invocation with `payload` (JSON). Throttling
    /// (`TooManyRequestsException`) and the SDK's transient errors are
    /// retried with the backoff; anything else fails at once.
    pub async fn invoke_async(&self, payload: Vec<u8>) -> Result<(), AwsError> {
        self.backoff
            .retry("Invoke", || async {
                let output = self
                    .client
                    .invoke()
                    .function_name(&self.function_name)
                    .invocation_type(InvocationType::Event)
                    .payload(Blob::new(payload.clone()))
                    .send()
                    .await
                    .map_err(|err| {
                        let throttled = err
                            .as_service_error()
                            .is_some_and(|e| e.is_too_many_requests_exception());
                        let retryable = throttled || is_retryable_sdk_error(&err);
                        AwsError::sdk("Invoke", retryable, err)
                    })?;
                match output.status_code() {
                    202 => Ok(()),
                    status => Err(AwsError::sdk(
                        "Invoke",
                        true,
                        format!("status {status} instead of 202"),
                    )),
                }
            })
            .await
    }
}

/// The event a continuation of the daily job receives.
pub fn daily_continuation_event(date: Date) -> Vec<u8> {
    format!(r#"{{"date":"{date}","continue":true}}"#).into_bytes()
}

#[async_trait]
impl Continuation for SelfInvoke {
    async fn continue_daily(&self, date: Date) -> Result<(), PortError> {
        self.invoke_async(daily_continuation_event(date))
            .await
            .map_err(Into::into)
    }
}
