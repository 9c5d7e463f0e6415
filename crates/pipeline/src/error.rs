use gender_core::PortError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PipelineError {
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("parquet encoding of {key}")]
    Parquet {
        key: String,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("arrow batch for {key}")]
    Arrow {
        key: String,
        #[source]
        source: arrow_schema::ArrowError,
    },
    #[error("{key}: {detail}")]
    BadObject { key: String, detail: String },
    #[error("raw object {0} does not exist")]
    RawMissing(String),
}

impl PipelineError {
    /// Only port failures can heal on retry; bad data stays bad.
    pub fn retryable(&self) -> bool {
        match self {
            PipelineError::Port(e) => e.retryable(),
            _ => false,
        }
    }
}
