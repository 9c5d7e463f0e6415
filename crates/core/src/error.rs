use thiserror::Error;

/// Why a hit (or a raw line) was rejected. The `Display` text is what clients see.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HitError {
    #[error("not a JSON object: {0}")]
    NotAnObject(String),
    #[error("clientid is required")]
    MissingClientId,
    #[error("clientid must be 1..=64 characters of [A-Za-z0-9._:-]")]
    InvalidClientId,
    #[error("pageGender is required")]
    MissingPageGender,
    #[error("pageGender must be \"M\" or \"F\"")]
    InvalidPageGender,
    #[error(
        "timestamp must be an RFC 3339 string with a date, a time and an offset, or integer epoch milliseconds"
    )]
    InvalidTimestamp,
    #[error("timestamp is before 2000-01-01T00:00:00Z")]
    TimestampTooOld,
    #[error("timestamp is more than 24 hours in the future")]
    TimestampInFuture,
    #[error("hitid must be 1..=64 characters of [A-Za-z0-9._:-]")]
    InvalidHitId,
    #[error("timestamp is required in a raw object line")]
    MissingTimestamp,
}

/// Failure of an adapter behind a port. `retryable` tells callers (and the
/// Lambda runtime) whether trying again can succeed.
#[derive(Debug, Error)]
pub enum PortError {
    #[error("{what}: throttled")]
    Throttled {
        what: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    #[error("{what}: unavailable")]
    Unavailable {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{what}: corrupt data: {detail}")]
    Corrupt { what: String, detail: String },
    #[error("{0}: shutting down")]
    ShuttingDown(String),
}

impl PortError {
    pub fn unavailable(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        PortError::Unavailable {
            what: what.into(),
            source: source.into(),
        }
    }

    pub fn corrupt(what: impl Into<String>, detail: impl Into<String>) -> Self {
        PortError::Corrupt {
            what: what.into(),
            detail: detail.into(),
        }
    }

    /// Throttling and transient unavailability can succeed on retry; corrupt data cannot.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            PortError::Throttled { .. } | PortError::Unavailable { .. }
        )
    }
}
