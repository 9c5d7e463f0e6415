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

/// Whether an SDK error is worth another attempt: throttling, timeouts,
/// dispatch failures and 5xx are; validation and missing resources are not.
pub fn is_retryable_sdk_error<E, R>(err: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            code.contains("Throttl")
                || code.contains("LimitExceeded")
                || code.contains("ThroughputExceeded")
                || code == "InternalServerError"
                || code == "InternalFailure"
                || code == "ServiceUnavailable"
                || code == "SlowDown"
        }
        _ => false,
    }
}
