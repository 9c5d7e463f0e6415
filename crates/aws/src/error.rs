use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use gender_core::PortError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AwsError {
    #[error("{operation} failed")]
    Sdk {
        operation: &'static str,
        retryable: bool,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{operation}: gave up after {attempts} attempts: {last}")]
    Exhausted {
        operation: &'static str,
        attempts: u32,
        last: String,
    },
    #[error("item {key}: {detail}")]
    BadItem { key: String, detail: String },
}

impl AwsError {
    pub fn sdk(
        operation: &'static str,
        retryable: bool,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        AwsError::Sdk {
            operation,
            retryable,
            source: source.into(),
        }
    }

    pub fn retryable(&self) -> bool {
        match self {
            AwsError::Sdk { retryable, .. } => *retryable,
            AwsError::Exhausted { .. } => true,
            _ => false,
        }
    }
}

impl From<AwsError> for PortError {
    fn from(e: AwsError) -> Self {
        match e {
            AwsError::BadItem { .. } => PortError::corrupt("aws", e.to_string()),
            AwsError::Exhausted { .. } => PortError::Throttled {
                what: e.to_string(),
                source: None,
            },
            other => PortError::unavailable("aws", other),
        }
    }
}

/// Error codes that another attempt of the same request can get past. The
/// SDK's standard retry (3 attempts) already retries most of them; these are
/// also retried by [`crate::Backoff::retry`] once the SDK gives up, and
/// `TransactionConflictException` only there (the SDK does not know it).
const RETRYABLE_CODES: &[&str] = &[
    // DynamoDB: a plain write (PutItem/UpdateItem/DeleteItem) met an item
    // that an ongoing transaction holds; a transaction met one that is being
    // committed with the same token. Both pass once that transaction ends.
    "TransactionConflictException",
    "TransactionInProgressException",
    // Throttling, by service: DynamoDB (table, partition and account
    // limits), Kinesis (per shard; LimitExceededException is its control
    // plane rate limit), S3 (per prefix), SSM (Parameter Store's TPS quota,
    // and TooManyUpdates for concurrent writes), SQS, Athena.
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "LimitExceededException",
    "BandwidthLimitExceeded",
    "SlowDown",
    "TooManyUpdates",
    "PriorRequestNotComplete",
    // The service's own failures.
    "InternalServerError",
    "InternalFailure",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Whether an SDK error is worth another attempt: throttling, transaction
/// conflicts, timeouts, dispatch failures, unreadable answers and any 5xx
/// are; failed conditions (`ConditionalCheckFailedException`, a
/// `TransactionCanceledException`, whose reasons decide, see dynamodb.rs),
/// validation errors and missing resources are not.
pub fn is_retryable_sdk_error<E>(err: &SdkError<E, HttpResponse>) -> bool
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        // A user error (a bad endpoint, say) fails the same way every time.
        SdkError::DispatchFailure(failure) => !failure.is_user(),
        SdkError::ServiceError(service) => {
            service.raw().status().is_server_error()
                || service
                    .err()
                    .code()
                    .is_some_and(|code| RETRYABLE_CODES.contains(&code))
        }
        _ => false,
    }
}

/// An error with its sources, one line: what a log or an
/// [`AwsError::Exhausted`] keeps of the last failure.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let more = inner.to_string();
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn service(status: u16, code: &str) -> SdkError<ErrorMetadata, HttpResponse> {
        SdkError::service_error(
            ErrorMetadata::builder().code(code).message("m").build(),
            HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty()),
        )
    }

    #[test]
    fn conflicts_throttling_and_server_errors_are_retryable() {
        for code in [
            "TransactionConflictException",
            "TransactionInProgressException",
            "ProvisionedThroughputExceededException",
            "RequestLimitExceeded",
            "ThrottlingException",
            "TooManyUpdates",
            "LimitExceededException",
        ] {
            assert!(is_retryable_sdk_error(&service(400, code)), "{code}");
        }
        assert!(is_retryable_sdk_error(&service(503, "SlowDown")));
        assert!(is_retryable_sdk_error(&service(500, "InternalServerError")));
        // Any 5xx, whatever its code says.
        assert!(is_retryable_sdk_error(&service(502, "Whatever")));
    }

    #[test]
    fn failed_conditions_and_bad_requests_are_not() {
        for code in [
            "ConditionalCheckFailedException",
            // Its cancellation reasons decide (a conflict, or a condition).
            "TransactionCanceledException",
            "ValidationException",
            "ResourceNotFoundException",
            "AccessDeniedException",
            "NoSuchKey",
            // SSM: too many parameters in the account is not a rate.
            "ParameterLimitExceeded",
            "ParameterNotFound",
        ] {
            assert!(!is_retryable_sdk_error(&service(400, code)), "{code}");
        }
        assert!(!is_retryable_sdk_error(&service(412, "PreconditionFailed")));
    }

    #[test]
    fn timeouts_and_dispatch_failures_are_retryable_but_user_errors_are_not() {
        let io = std::io::Error::other("connection reset");
        assert!(is_retryable_sdk_error::<ErrorMetadata>(
            &SdkError::timeout_error("attempt timeout")
        ));
        assert!(is_retryable_sdk_error::<ErrorMetadata>(
            &SdkError::dispatch_failure(ConnectorError::io(io.into()))
        ));
        assert!(is_retryable_sdk_error::<ErrorMetadata>(
            &SdkError::dispatch_failure(ConnectorError::timeout("connect".into()))
        ));
        assert!(!is_retryable_sdk_error::<ErrorMetadata>(
            &SdkError::dispatch_failure(ConnectorError::user("bad endpoint".into()))
        ));
        assert!(!is_retryable_sdk_error::<ErrorMetadata>(
            &SdkError::construction_failure("missing field")
        ));
    }

    #[test]
    fn the_chain_keeps_every_source_once() {
        let err = AwsError::sdk("GetItem", true, std::io::Error::other("reset"));
        assert_eq!(chain(&err), "GetItem failed: reset");
    }
}
